"""Issue 17's acceptance test, in headless Chromium from an empty database: an admin
creates a project, imports items and creates two annotators and a reviewer on the web;
the annotators disagree on one item; the reviewer adjudicates it; `raw` and `kto` are
exported as Parquet with the decision in them; the leaderboard prints its CIs."""

from __future__ import annotations

import json
import re

from fb_browser import ACTIVE_JS, ServerThread, launch, login, need_chromium, new_page

need_chromium()

import pyarrow.parquet as pq  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from rlfoundry.cli.main import main  # noqa: E402
from rlfoundry.feedback.accounts import add_annotator  # noqa: E402
from rlfoundry.feedback.app import create_app  # noqa: E402

N_ITEMS = 4
ITEMS = [
    {
        "id": f"i{k}",
        "prompt": f"Question {k}: explain **recursion**",
        "responses": [
            {"text": f"good answer {k}", "model": "strong-model"},
            {"text": f"bad answer {k}", "model": "weak-model"},
        ],
    }
    for k in range(N_ITEMS)
]


def create_person(page, url, name, role, project):
    page.goto(url + "/admin/people")
    page.fill("#new-person input[name=name]", name)
    page.select_option("#new-person select[name=role]", role)
    page.check(f"#new-person input[name=project][value={project}]")
    with page.expect_navigation():
        page.click("#new-person button[type=submit]")
    assert name in page.inner_text("#new-token")
    return page.inner_text("#token").strip()


def annotate(page, url, prefer_bad: set[str]):
    """Judge every item of project 1 with the keyboard: 'good' wins unless the item's
    prompt number is in ``prefer_bad``."""
    page.goto(url + "/p/1")
    for _ in range(N_ITEMS):
        k = re.search(r"Question (\d+)", page.inner_text("#prompt")).group(1)
        want = ("bad" if f"i{k}" in prefer_bad else "good") + f" answer {k}"
        pos = 1 if page.inner_text(".resp[data-letter=A] .text") == want else 2
        page.keyboard.press(str(pos))
        with page.expect_navigation():
            page.keyboard.press("Enter")
    assert "All done" in page.inner_text("main")


def test_admin_annotators_reviewer_export_and_leaderboard(engine, tmp_path, capsys, monkeypatch):
    boss = add_annotator(engine, "boss", admin=True)  # the first admin comes from the CLI
    items = tmp_path / "arena.jsonl"
    items.write_text("".join(json.dumps(it) + "\n" for it in ITEMS))
    dialogs: list[str] = []
    with ServerThread(create_app(engine)) as srv, sync_playwright() as pw:
        browser = launch(pw)
        admin = new_page(browser, dialogs)
        login(admin, srv.url, boss)
        # the admin creates the project, uploads its items, creates the people
        admin.goto(srv.url + "/admin")
        admin.fill("#new-project input[name=name]", "arena")
        admin.select_option("#new-project select[name=kind]", "compare")
        admin.fill("#new-project input[name=overlap]", "2")
        admin.fill("#new-project textarea[name=guidelines]", "Prefer the **correct** answer.")
        with admin.expect_navigation():
            admin.click("#new-project button[type=submit]")
        assert admin.url == srv.url + "/admin/p/1"
        admin.set_input_files("#import input[name=file]", str(items))
        with admin.expect_navigation():
            admin.click("#import button[type=submit]")
        assert f"Imported {N_ITEMS} items (0 gold) from arena.jsonl." in admin.inner_text("#notice")
        tokens = {
            name: create_person(admin, srv.url, name, role, "arena")
            for name, role in (("ann", "annotator"), ("bob", "annotator"), ("rev", "reviewer"))
        }
        # two annotators disagree on i0 and agree on the rest (both prefer the bad i3)
        for name, prefer_bad in (("ann", {"i3"}), ("bob", {"i0", "i3"})):
            page = new_page(browser, dialogs)
            login(page, srv.url, tokens[name])
            page.goto(srv.url + "/p/1")
            assert page.inner_text("details.guide strong") == "correct"  # markdown guidelines
            annotate(page, srv.url, prefer_bad)
            # annotators cannot open the review queue or the admin pages
            assert page.goto(srv.url + "/review").status == 403
            assert page.goto(srv.url + "/admin").status == 403
        # the reviewer sees i0 (agreement 0), and decides for the good answer
        rev = new_page(browser, dialogs)
        login(rev, srv.url, tokens["rev"])
        rev.goto(srv.url + "/review")
        with rev.expect_navigation():
            rev.click("text=open queue")
        queue = rev.inner_text("#queue")
        assert "i0" in queue and "0.000" in queue and "i1" not in queue
        with rev.expect_navigation():
            rev.click("#queue a")
        votes = rev.inner_text("#votes")
        assert "ann" in votes and "bob" in votes
        assert rev.locator("main").evaluate(ACTIVE_JS) == 0
        good = "A" if rev.inner_text(".resp[data-letter=A] .text") == "good answer 0" else "B"
        rev.check(f"#decide input[name=choice][value={good}]")
        rev.fill("#decide textarea[name=note]", "the good answer is correct")
        with rev.expect_navigation():
            rev.click("#decide button[type=submit]")
        assert "Nothing to review here." in rev.inner_text("main")
        # the admin watches progress and agreement
        admin.goto(srv.url + "/admin/p/1")
        text = admin.inner_text("main")
        assert f"{N_ITEMS} / {N_ITEMS} items complete, {2 * N_ITEMS} judgments" in text
        assert "1 reviewed" in text and "Percent agreement 0.750" in text
        browser.close()
    assert dialogs == []

    db = str(engine.url)
    raw, kto = tmp_path / "raw.parquet", tmp_path / "kto.parquet"
    for fmt, out in (("raw", raw), ("kto", kto)):
        assert main(["feedback", "export", "--format", fmt, "--db", db, "--out", str(out)]) == 0
    rows = pq.read_table(raw).to_pylist()
    assert len(rows) == 2 * N_ITEMS
    i0 = [r for r in rows if r["item_id"] == "i0"]
    assert {r["annotator"]: json.loads(r["label"]) for r in i0} == {"ann": 0, "bob": 1}
    assert {(r["review"], r["reviewer"]) for r in i0} == {("0", "rev")}  # response 0 = good
    assert all(r["models"] == ["strong-model", "weak-model"] for r in rows)
    krows = pq.read_table(kto).to_pylist()
    assert {(r["item_id"], r["model"], r["label"], r["adjudicated"]) for r in krows} == {
        *((f"i{k}", "strong-model", k != 3, k == 0) for k in range(N_ITEMS)),
        *((f"i{k}", "weak-model", k == 3, k == 0) for k in range(N_ITEMS)),
    }
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "160")
    plot = tmp_path / "lb.png"
    args = ["feedback", "leaderboard", "--db", db, "--bootstrap", "200", "--plot", str(plot)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "win rate [95% CI]" in out and "Elo (Bradley-Terry) [95% CI]" in out
    num = r"(-?\d+(?:\.\d+)?)"
    for model in ("strong-model", "weak-model"):
        line = next(ln for ln in out.splitlines() if model in ln)
        m = re.search(rf"{num} \[{num}, {num}\]\D+{num} \[{num}, {num}\]", line)
        assert m, line
        wr, wr_lo, wr_hi, elo, elo_lo, elo_hi = map(float, m.groups())
        assert wr_lo <= wr <= wr_hi and elo_lo <= elo <= elo_hi
        assert wr_lo < wr_hi and elo_lo < elo_hi  # i3 went the other way: a real interval
    # i0 counts once (the decision), i1-i3 twice: 7 games, strong-model won 5
    assert re.search(r"strong-model\D+7 +\S+ 0\.714 \[", out), out
    assert plot.is_file()
