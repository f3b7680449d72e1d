"""Judgment history, skip and flag, the reviewer role, the review queue and how a
reviewer's decision reaches the exports."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from fb_helpers import bearer, judge, load, next_task, web_login
from sqlalchemy import select

from rlfoundry.feedback.accounts import add_annotator, add_members
from rlfoundry.feedback.db import Assignment, Item, JudgmentRevision, Mark, read_session
from rlfoundry.feedback.export import select_items, to_pairs
from rlfoundry.feedback.formats import to_kto, to_raw
from rlfoundry.feedback.leaderboard import games
from rlfoundry.feedback.reports import items_for_export
from rlfoundry.feedback.review import item_agreement, needs_review

ITEMS = [
    {
        "id": f"i{k}",
        "prompt": f"q{k}",
        "responses": [{"text": f"good{k}", "model": "m1"}, {"text": f"bad{k}", "model": "m2"}],
    }
    for k in range(3)
]


@pytest.fixture
def team(engine, tmp_path):
    load(engine, tmp_path, "p", "compare", ITEMS, overlap=2, gold_every=0)
    return {
        "ann": add_annotator(engine, "ann"),
        "bob": add_annotator(engine, "bob"),
        "cat": add_annotator(engine, "cat"),
        "rev": add_annotator(engine, "rev", reviewer=True),
        "outsider": add_annotator(engine, "outsider", reviewer=True, projects=[]),
        "boss": add_annotator(engine, "boss", admin=True, projects=[]),
    }


def letter_of(task, text):
    return next(r["letter"] for r in task["responses"] if r["text"] == text)


def test_edits_append_history_and_the_latest_wins(client, engine, team):
    t = judge(client, team["ann"], 1, choice="tie")
    jid = t["judgment_id"]
    for choice in ("A", "B"):
        r = client.put(
            f"/api/judgments/{jid}", headers=bearer(team["ann"]), json={"choice": choice}
        )
        assert r.status_code == 200
    hist = client.get(f"/api/judgments/{jid}/history", headers=bearer(team["ann"])).json()
    assert [h["choice"] for h in hist] == ["tie", "A", "B"]
    assert [h["version"] for h in hist] == [1, 2, 3]
    # another annotator cannot read it
    assert (
        client.get(f"/api/judgments/{jid}/history", headers=bearer(team["bob"])).status_code == 404
    )
    with read_session(engine) as s:
        assert len(list(s.scalars(select(JudgmentRevision)))) == 3
    raw = to_raw(items_for_export(engine, "p"))
    shown_b = next(r["text"] for r in t["responses"] if r["letter"] == "B")
    (row,) = [r for r in raw if r["annotator"] == "ann"]
    assert row["responses"][json.loads(row["label"])] == shown_b  # the last edit


def test_skip_and_flag_leave_the_queue_and_free_the_slot(client, engine, team):
    t = next_task(client, team["ann"], 1)
    aid = t["assignment_id"]
    r = client.post(f"/api/assignments/{aid}/flag", headers=bearer(team["ann"]), json={})
    assert r.status_code == 422 and "Say why" in r.json()["detail"]
    r = client.post(
        f"/api/assignments/{aid}/flag", headers=bearer(team["ann"]), json={"reason": "prompt cut"}
    )
    assert r.status_code == 200
    # the item never comes back to ann; she gets the other items, then nothing
    seen = {t["prompt"]}
    for _ in range(2):
        seen.add(judge(client, team["ann"], 1, choice="A")["prompt"])
    assert len(seen) == 3
    assert next_task(client, team["ann"], 1)["done"]
    # a skip (reason optional) works the same way
    t2 = next_task(client, team["bob"], 1)
    r = client.post(
        f"/api/assignments/{t2['assignment_id']}/skip", headers=bearer(team["bob"]), json={}
    )
    assert r.status_code == 200
    assert next_task(client, team["bob"], 1)["prompt"] != t2["prompt"]
    # someone else's assignment: 404; marks are stored with reasons
    t3 = next_task(client, team["cat"], 1)
    r = client.post(
        f"/api/assignments/{t3['assignment_id']}/skip", headers=bearer(team["ann"]), json={}
    )
    assert r.status_code == 404
    with read_session(engine) as s:
        marks = {(m.kind, m.reason) for m in s.scalars(select(Mark))}
    assert marks == {("flag", "prompt cut"), ("skip", "")}
    # the flagged item's slot went back to the pool
    with read_session(engine) as s:
        flagged = s.scalar(select(Item).where(Item.prompt == t["prompt"]))
        assert flagged.n_assigned == sum(
            1 for a in s.scalars(select(Assignment)) if a.item_id == flagged.id
        )
        assert all(
            a.annotator_id != 1 for a in s.scalars(select(Assignment)) if a.item_id == flagged.id
        )


def _disagree(client, team, item_prompt_choice):
    """ann and bob judge every item; ``item_prompt_choice(prompt) -> (ann's, bob's)``
    pick "good" or "bad" by text."""
    for name, k in (("ann", 0), ("bob", 1)):
        for _ in range(3):
            task = next_task(client, team[name], 1)
            want = item_prompt_choice(task["prompt"])[k]
            text = want + task["prompt"][1:]
            r = client.post(
                f"/api/assignments/{task['assignment_id']}/judgment",
                headers=bearer(team[name]),
                json={"choice": letter_of(task, text)},
            )
            assert r.status_code == 201


def test_review_queue_roles_and_decision_reach_the_export(client, engine, team):
    # q0: both say good; q1: they disagree; q2: they disagree
    _disagree(client, team, lambda p: {"q0": ("good", "good")}.get(p, ("good", "bad")))
    # roles: an annotator gets 403, a reviewer outside the project 404
    assert client.get("/api/review/1", headers=bearer(team["ann"])).status_code == 403
    assert client.get("/api/review/1", headers=bearer(team["outsider"])).status_code == 404
    web_login(client, team["ann"])
    assert client.get("/review").status_code == 403
    client.cookies.clear()
    q = client.get("/api/review/1", headers=bearer(team["rev"])).json()
    assert sorted(r["external_id"] for r in q["queue"]) == ["i1", "i2"]
    assert {r["agreement"] for r in q["queue"]} == {0.0}
    # a threshold of 0 shows nothing but flags
    assert client.get("/api/review/1?below=0", headers=bearer(team["rev"])).json()["queue"] == []
    assert client.get("/api/review/1?below=2", headers=bearer(team["rev"])).status_code == 422
    # the reviewer decides i1 for "bad1" (A = response 0 = good1, B = bad1) and discards i2
    ids = {r["external_id"]: r["item_id"] for r in q["queue"]}
    r = client.post(
        f"/api/review/items/{ids['i1']}",
        headers=bearer(team["rev"]),
        json={"choice": "B", "note": "bad1 is right"},
    )
    assert r.status_code == 201
    r = client.post(
        f"/api/review/items/{ids['i2']}", headers=bearer(team["rev"]), json={"discard": True}
    )
    assert r.status_code == 201
    assert (
        client.post(
            f"/api/review/items/{ids['i1']}", headers=bearer(team["ann"]), json={"choice": "A"}
        ).status_code
        == 403
    )
    assert client.get("/api/review/1", headers=bearer(team["rev"])).json()["queue"] == []
    # the admin (no membership) may review too; the page shows votes and the decision
    web_login(client, team["boss"])
    html = client.get(f"/review/i/{ids['i1']}").text
    assert "bad1 is right" in html and "<td>ann</td>" in html and "<td>bob</td>" in html

    items = items_for_export(engine, "p")
    kept, _ = select_items(items, complete_only=True)
    assert sorted(it.item_id for it in kept) == ["i0", "i1"]  # i2 discarded
    pairs, _ = to_pairs(kept)
    by_item = {p["item_id"]: p for p in pairs}
    assert by_item["i1"]["chosen"] == "bad1" and by_item["i1"]["adjudicated"] is True
    assert by_item["i1"]["agreement"] == 0.5  # the annotators' own agreement
    assert by_item["i0"]["chosen"] == "good0" and by_item["i0"]["adjudicated"] is False
    kto, _ = to_kto(kept)
    assert {(r["item_id"], r["completion"], r["label"]) for r in kto if r["item_id"] == "i1"} == {
        ("i1", "bad1", True),
        ("i1", "good1", False),
    }
    raw = to_raw(items)
    assert {(r["item_id"], r["review"], r["reviewer"]) for r in raw} == {
        ("i0", None, None),
        ("i1", "1", "rev"),
        ("i2", "discard", "rev"),
    }
    # the leaderboard: i0's two votes for m1, i1's decision once for m2, nothing of i2
    names, w = games(kept)
    assert names == ["m1", "m2"] and w.sum(axis=0).tolist() == [[0, 2], [1, 0]]


def test_flagged_items_reach_the_queue_and_leave_it_once_decided(client, engine, team):
    t = next_task(client, team["ann"], 1)
    client.post(
        f"/api/assignments/{t['assignment_id']}/flag",
        headers=bearer(team["ann"]),
        json={"reason": "<b>offensive</b>"},
    )
    q = client.get("/api/review/1", headers=bearer(team["rev"])).json()["queue"]
    assert [(r["votes"], r["flags"]) for r in q] == [(0, ["<b>offensive</b>"])]
    web_login(client, team["rev"])
    html = client.get("/review/p/1").text
    assert "&lt;b&gt;offensive&lt;/b&gt;" in html and "<b>offensive" not in html
    # the HTML form needs the CSRF token
    url = f"/review/i/{q[0]['item_id']}"
    assert client.post(url, data={"choice": "A"}).status_code == 403
    csrf = web_login(client, team["rev"])
    r = client.post(url, data={"choice": "A", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/review/1", headers=bearer(team["rev"])).json()["queue"] == []
    # an unchosen label is refused with the annotator's sentence
    r = client.post(url, data={"csrf": csrf})
    assert r.status_code == 422 and "Choose A, B, tie or both bad" in r.text


def test_item_agreement_by_hand():
    assert item_agreement("compare", [0]) is None
    assert item_agreement("compare", [0, 0, 1]) == pytest.approx(1 / 3, abs=1e-4)
    # rank, 3 responses: units (0,1) (0,2) (1,2); two rankings agree on 2 of 3 pairs
    assert item_agreement("rank", [[0, 1, 2], [0, 2, 1]]) == pytest.approx(2 / 3, abs=1e-4)
    assert item_agreement("rate", [[5, 1], [5, 2]]) == 0.5


def test_needs_review_by_hand():
    t0, t1, t2 = (datetime(2026, 1, 1, h) for h in (1, 2, 3))
    split = [(0, t0), (1, t0)]
    assert needs_review("compare", split, [], None, 1.0) == (True, 0.0, [])
    assert needs_review("compare", split, [], None, 0.0) == (False, 0.0, [])  # nothing is < 0
    assert needs_review("compare", [(0, t0), (0, t0)], [], None, 1.0) == (False, 1.0, [])
    assert needs_review("compare", [(0, t0)], [], None, 1.0) == (False, None, [])  # one vote
    # decided at t1: the split alone no longer counts, a vote edited at t2 does
    assert needs_review("compare", split, [], t1, 1.0)[0] is False
    assert needs_review("compare", [(0, t0), (1, t2)], [], t1, 1.0)[0] is True
    # flags: only those after the decision
    flags = [("old", t0), ("new", t2)]
    assert needs_review("compare", [], flags, None, 1.0) == (True, None, ["old", "new"])
    assert needs_review("compare", [], flags, t1, 1.0) == (True, None, ["new"])
    assert needs_review("compare", [], flags[:1], t1, 1.0) == (False, None, [])


def test_an_edit_after_the_decision_reopens_the_item(client, engine, team):
    t = judge(client, team["ann"], 1, choice="A")
    for _ in range(3):  # bob votes tie everywhere: only ann's item has two votes
        judge(client, team["bob"], 1, choice="tie")
    (q,) = client.get("/api/review/1", headers=bearer(team["rev"])).json()["queue"]
    r = client.post(
        f"/api/review/items/{q['item_id']}", headers=bearer(team["rev"]), json={"choice": "tie"}
    )
    assert r.status_code == 201
    assert client.get("/api/review/1", headers=bearer(team["rev"])).json()["queue"] == []
    r = client.put(
        f"/api/judgments/{t['judgment_id']}", headers=bearer(team["ann"]), json={"choice": "B"}
    )
    assert r.status_code == 200
    (again,) = client.get("/api/review/1", headers=bearer(team["rev"])).json()["queue"]
    assert again["item_id"] == q["item_id"] and again["agreement"] == 0.0


def test_my_judgments_page_edits_append_versions(client, engine, team, tmp_path):
    load(
        engine,
        tmp_path,
        "r",
        "rank",
        [{"id": "k", "prompt": "order", "responses": ["x", "y", "z"]}],
        overlap=1,
        gold_every=0,
    )
    add_members(engine, "r", ["ann"])
    t = judge(client, team["ann"], 2, ranking=["C", "A", "B"])
    jid = t["judgment_id"]
    csrf = web_login(client, team["ann"])
    assert f'href="/mine/{jid}"' in client.get("/mine").text
    page = client.get(f"/mine/{jid}").text
    # the current ranking C > A > B is preselected: C is rank 1, A rank 2, B rank 3
    for letter, rank in (("A", 2), ("B", 3), ("C", 1)):
        sel = re.search(rf'name="rank_{letter}">(.*?)</select>', page, re.S).group(1)
        assert re.search(rf'value="{rank}"\s*selected', sel), (letter, sel)
    form = {"csrf": csrf, "rank_A": "1", "rank_B": "2", "rank_C": "3", "reason": "changed my mind"}
    assert client.post(f"/mine/{jid}", data={**form, "csrf": ""}).status_code == 403
    r = client.post(f"/mine/{jid}", data=form, follow_redirects=False)
    assert r.status_code == 303
    r = client.post(f"/mine/{jid}", data={**form, "rank_C": "1"})  # two rank-1s
    assert r.status_code == 422 and "different rank" in r.text
    hist = client.get(f"/api/judgments/{jid}/history", headers=bearer(team["ann"])).json()
    assert [h["ranking"] for h in hist] == [["C", "A", "B"], ["A", "B", "C"]]
    assert "changed my mind" in client.get(f"/mine/{jid}").text
    client.cookies.clear()
    csrf = web_login(client, team["bob"])  # someone else's judgment: as if absent
    assert client.get(f"/mine/{jid}").status_code == 404
    assert client.post(f"/mine/{jid}", data={**form, "csrf": csrf}).status_code == 404


def test_skip_and_flag_buttons_of_the_task_page(client, engine, team):
    csrf = web_login(client, team["ann"])
    page = client.get("/p/1").text
    aid = re.search(r'name="assignment_id" value="(\d+)"', page).group(1)
    prompt = re.search(r'id="prompt"><p>(q\d)</p>', page).group(1)
    form = {"assignment_id": aid, "action": "flag", "reason": ""}
    assert client.post("/p/1/mark", data=form).status_code == 403  # no CSRF token
    r = client.post("/p/1/mark", data={**form, "csrf": csrf})
    assert r.status_code == 422 and "Say why you flag this item" in r.text
    r = client.post(
        "/p/1/mark", data={**form, "csrf": csrf, "action": "skip"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/p/1"
    assert f'id="prompt"><p>{prompt}</p>' not in client.get("/p/1").text  # the next item
    with read_session(engine) as s:
        assert [(m.kind, m.annotator_id) for m in s.scalars(select(Mark))] == [("skip", 1)]
