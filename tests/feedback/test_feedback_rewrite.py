"""The "rewrite the better response" task: label, form, reviewer, SFT export, and
`rlfoundry llm sft --data` training on that export."""

from __future__ import annotations

import json

import pytest
from fb_helpers import bearer, load, next_task, web_login

from rlfoundry.cli.main import main
from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback.accounts import add_annotator
from rlfoundry.feedback.formats import to_kto, to_sft
from rlfoundry.feedback.labels import LabelError, from_display, pair_outcome, to_display
from rlfoundry.feedback.projects import parse_text
from rlfoundry.feedback.reports import items_for_export

ITEMS = [
    {"id": "r1", "prompt": "2+2=?", "responses": ["It is 5.", "The answer is 4, I think!!"]},
    {"id": "r2", "messages": [{"role": "user", "content": "Say hi"}], "responses": ["hi"]},
]


def test_rewrite_label_round_trip_and_checks():
    label = from_display("rewrite", [1, 0], {"choice": "A", "rewrite": "4\r\nfor sure"})
    assert label == {"best": 1, "text": "4\nfor sure"}
    assert to_display("rewrite", [1, 0], label) == {"choice": "A", "rewrite": "4\nfor sure"}
    assert pair_outcome("rewrite", label, 0, 1) == "j"
    with pytest.raises(LabelError, match="Write the improved response"):
        from_display("rewrite", [0, 1], {"choice": "B", "rewrite": "  "})
    with pytest.raises(LabelError, match="Choose the better response"):
        from_display("rewrite", [0, 1], {"choice": "C", "rewrite": "x"})
    with pytest.raises(LabelError, match="limit is 20000"):
        from_display("rewrite", [0], {"choice": "A", "rewrite": "x" * 20_001})
    bad = json.dumps({"id": 1, "prompt": "p", "responses": ["a", "b", "c"]})
    with pytest.raises(RLFoundryError, match="needs 1 or 2 responses"):
        parse_text(bad, "rewrite", "f.jsonl")
    gold = json.dumps({"id": 1, "prompt": "p", "responses": ["a"], "gold": 0})
    with pytest.raises(RLFoundryError, match="takes no gold"):
        parse_text(gold, "rewrite", "f.jsonl")


def test_rewrites_export_as_sft(client, engine, tmp_path, capsys):
    assert _judge_and_export(client, engine, tmp_path, capsys).is_file()


def _judge_and_export(client, engine, tmp_path, capsys):
    """Two annotators rewrite both items (one through the form, one through the API),
    the reviewer settles r1; the export's path."""
    load(engine, tmp_path, "rw", "rewrite", ITEMS, overlap=2, gold_every=0)
    ann, bob = add_annotator(engine, "ann"), add_annotator(engine, "bob")
    rev = add_annotator(engine, "rev", reviewer=True)
    # ann through the HTML form, bob through the API
    csrf = web_login(client, ann)
    for _ in range(2):
        task = next_task(client, ann, 1)
        page = client.get("/p/1").text
        assert 'name="rewrite"' in page and 'class="source"' in page
        if len(task["responses"]) == 2:
            best = next(r for r in task["responses"] if "4" in r["text"])
            data = {"choice": best["letter"], "rewrite": "The answer is 4."}
        else:
            data = {"choice": "A", "rewrite": "Hi! How can I help?"}
        form = {"csrf": csrf, "assignment_id": task["assignment_id"], **data}
        assert client.post("/p/1/submit", data=form, follow_redirects=False).status_code == 303
    client.cookies.clear()
    for _ in range(2):  # bob picks the other response of r1 and keeps its text
        task = next_task(client, bob, 1)
        pick = next(r for r in task["responses"] if "4" not in r["text"])
        r = client.post(
            f"/api/assignments/{task['assignment_id']}/judgment",
            headers=bearer(bob),
            json={"choice": pick["letter"], "rewrite": pick["text"]},
        )
        assert r.status_code == 201
    items = items_for_export(engine, "rw")
    rows, without = to_sft(items)
    assert without == 0 and len(rows) == 4
    mine = {r["item_id"]: r for r in rows if r["annotator"] == "ann"}
    assert mine["r1"]["completion"] == "The answer is 4." and mine["r1"]["source_index"] == 1
    assert mine["r1"]["edited"] is True
    assert mine["r2"]["prompt"] == [{"role": "user", "content": "Say hi"}]  # messages kept
    assert not any(r["edited"] for r in rows if r["annotator"] == "bob")
    assert to_kto(items)[0] == []  # an edit is not a desirability signal
    # a reviewer's rewrite replaces the annotators' for that item
    q = client.get("/api/review/1", headers=bearer(rev)).json()["queue"]
    assert [x["external_id"] for x in q] == ["r1"]  # ann and bob chose differently
    r = client.post(
        f"/api/review/items/{q[0]['item_id']}",
        headers=bearer(rev),
        json={"choice": "B", "rewrite": "4"},
    )
    assert r.status_code == 201
    rows, _ = to_sft(items_for_export(engine, "rw"))
    assert [r["completion"] for r in rows if r["item_id"] == "r1"] == ["4"]

    out = tmp_path / "sft.jsonl"
    db = str(engine.url)
    assert main(["feedback", "export", "--format", "sft", "--db", db, "--out", str(out)]) == 0
    assert "3 SFT examples (rewrites) from 2 items" in capsys.readouterr().err
    return out


@pytest.mark.slow
def test_llm_sft_trains_on_the_rewrite_export(client, engine, tmp_path, capsys):
    """`rlfoundry llm sft --data` takes the export as it is (about 20 s: torch and the
    tiny model load, two steps)."""
    out = _judge_and_export(client, engine, tmp_path, capsys)
    run = tmp_path / "sft_run"
    args = ["llm", "sft", "--data", str(out), "--model", "tiny:nano", "--steps", "2"]
    rc = main(
        [*args, "--out", str(run), "--no-progress", "--set", "batch_size=3", "--set", "eval_size=0"]
    )
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert (run / "model" / "config.json").is_file()


def test_choosing_a_response_fills_the_rewrite_box_in_the_browser(engine, tmp_path):
    from fb_browser import ServerThread, launch, login, need_chromium, new_page

    need_chromium()
    from playwright.sync_api import sync_playwright

    from rlfoundry.feedback.app import create_app

    load(engine, tmp_path, "rw", "rewrite", ITEMS[:1], overlap=1, gold_every=0)
    token = add_annotator(engine, "ann")
    dialogs: list[str] = []
    with ServerThread(create_app(engine)) as srv, sync_playwright() as pw:
        browser = launch(pw)
        page = new_page(browser, dialogs)
        login(page, srv.url, token)
        page.goto(srv.url + "/p/1")
        text_b = page.inner_text(".resp[data-letter=B] .text")
        page.keyboard.press("2")  # B is better: its text lands in the box
        assert page.input_value("#rewrite") == text_b
        page.keyboard.press("1")  # untouched box: follows the choice
        assert page.input_value("#rewrite") == page.inner_text(".resp[data-letter=A] .text")
        page.fill("#rewrite", "The answer is 4.\nNothing more.")  # Enter in the box is a newline
        page.click("text=B is better: rewrite it")
        assert page.input_value("#rewrite") == "The answer is 4.\nNothing more."  # edits kept
        with page.expect_navigation():
            page.click("#submit")
        assert "All done" in page.inner_text("main")
        browser.close()
    (row,) = to_sft(items_for_export(engine, "rw"))[0]
    assert row["completion"] == "The answer is 4.\nNothing more." and row["edited"]
    assert ITEMS[0]["responses"][row["source_index"]] == text_b
    assert dialogs == []


def test_parquet_refuses_text_and_messages_prompts_in_one_column(tmp_path):
    from rlfoundry.feedback.writers import write_rows

    rows = [{"prompt": "text"}, {"prompt": [{"role": "user", "content": "hi"}]}]
    with pytest.raises(RLFoundryError, match="export single- and multi-turn items separately"):
        write_rows(rows, str(tmp_path / "x.parquet"), "parquet")
    assert not (tmp_path / "x.parquet").exists()
    write_rows(rows, str(tmp_path / "x.jsonl"), "jsonl")  # JSONL takes both
    write_rows(rows[1:], str(tmp_path / "y.parquet"), "parquet")  # one kind: fine


def test_the_example_item_files_import_and_render(client, engine, tmp_path):
    from pathlib import Path

    from rlfoundry.feedback.projects import create_project, import_items, parse_jsonl

    root = Path(__file__).resolve().parents[2] / "examples"
    for name, kind in (
        ("feedback_chat_items.jsonl", "compare"),
        ("feedback_rewrite_items.jsonl", "rewrite"),
    ):
        create_project(engine, kind, kind, overlap=1, gold_every=0)
        items = parse_jsonl(root / name, kind)
        assert import_items(engine, kind, items, root / name) == 2
    token = add_annotator(engine, "ann")
    web_login(client, token)
    page = client.get("/p/1").text  # either chat item: both end on a user turn
    assert 'class="turn role-user"' in page and "Conversation" in page
    assert 'id="rewrite"' in client.get("/p/2").text
