"""Headless Chromium drives the app: log in, compare, rank, rate; the export then trains
a reward model (``rlfoundry llm reward-model``).

Chromium is Debian's (``apt-get install chromium``; ``./run.sh test`` installs it).
Outside CI the test skips when it is missing; in CI (``CI`` set) it must run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fb_browser import CHROMIUM, CHROMIUM_ARGS, ServerThread, need_chromium
from fb_helpers import load

need_chromium()

from playwright.sync_api import sync_playwright  # noqa: E402

from rlfoundry.cli.main import build_parser, main  # noqa: E402
from rlfoundry.feedback.accounts import add_annotator, who_for_token  # noqa: E402
from rlfoundry.feedback.app import create_app  # noqa: E402
from rlfoundry.feedback.judgments import own_judgments  # noqa: E402

XSS = "<script>alert('xss')</script>"


def reward_model_cli() -> bool:
    """Is ``rlfoundry llm reward-model`` registered (the stage another module provides)?"""
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # argparse keeps subparsers here
        llm = action.choices.get("llm")
        if llm is None:
            return False
        for sub in llm._subparsers._group_actions if llm._subparsers else []:
            return "reward-model" in sub.choices
    return False


def test_annotator_compares_ranks_rates_and_the_export_trains(engine, tmp_path):
    load(
        engine,
        tmp_path,
        "cmp",
        "compare",
        [{"id": "c1", "prompt": f"Greet me {XSS}", "responses": [f"Hi {XSS}", "Hello there"]}],
        overlap=1,
        gold_every=0,
    )
    load(
        engine,
        tmp_path,
        "rank",
        "rank",
        [{"id": "r1", "prompt": "Name a fruit", "responses": ["apple", "brick", "cherry"]}],
        overlap=1,
        gold_every=0,
    )
    load(
        engine,
        tmp_path,
        "rate",
        "rate",
        [{"id": "t1", "prompt": "Capital of France?", "responses": ["Paris", "Lyon"]}],
        overlap=1,
        gold_every=0,
    )
    token = add_annotator(engine, "ann")
    shown: dict[str, str] = {}
    dialogs: list[str] = []
    with ServerThread(create_app(engine)) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(10_000)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        page.goto(srv.url + "/")
        assert page.url == srv.url + "/login"
        page.fill("input[name=token]", token)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.url == srv.url + "/"
        assert page.locator("tr", has_text="cmp").inner_text().count("0 / 1 done") == 1

        # compare: 2 = "B is better"; digits typed in the reason box are text, not shortcuts
        with page.expect_navigation():
            page.locator("tr", has_text="cmp").get_by_role("link").click()
        assert XSS in page.inner_text("#prompt")  # shown as text, not run
        assert "0 / 1 done" in page.inner_text("header")
        assert "Guidelines" in page.inner_text("details.guide")
        shown["B"] = page.inner_text(".resp[data-letter=B] .text")
        shown["A"] = page.inner_text(".resp[data-letter=A] .text")
        page.keyboard.press("2")
        assert page.is_checked("input[name=choice][value=B]")
        page.fill("#reason", "B greets 1 time")
        page.press("#reason", "1")
        assert page.is_checked("input[name=choice][value=B]")
        with page.expect_navigation():
            page.press("#reason", "Enter")
        assert "All done" in page.inner_text("main")

        # rank: press 3 then 1 -> C > A > B (the last one fills itself in)
        page.goto(srv.url + "/")
        with page.expect_navigation():
            page.locator("tr", has_text="rank").get_by_role("link").click()
        rank_text = {k: page.inner_text(f".resp[data-letter={k}] .text") for k in "ABC"}
        page.keyboard.press("3")
        page.keyboard.press("1")
        assert page.inner_text("#ranking") == "C > A > B"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "All done" in page.inner_text("main")

        # rate: 4 for the highlighted A, which moves the highlight to B, then 2
        page.goto(srv.url + "/")
        with page.expect_navigation():
            page.locator("tr", has_text="rate").get_by_role("link").click()
        rate_text = {k: page.inner_text(f".resp[data-letter={k}] .text") for k in "AB"}
        page.keyboard.press("4")
        page.keyboard.press("2")
        assert page.is_checked("input[name=rating_A][value='4']")
        assert page.is_checked("input[name=rating_B][value='2']")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "All done" in page.inner_text("main")
        page.goto(srv.url + "/")
        assert page.locator("tr", has_text="rate").inner_text().count("1 / 1 done") == 1
        browser.close()
    assert dialogs == []  # no injected script ever ran

    who = who_for_token(engine, token)
    mine = own_judgments(engine, who)
    assert [(j["project"], j["reason"]) for j in mine][0] == ("cmp", "B greets 1 time1")
    assert all(j["active_ms"] is not None and j["wall_ms"] >= 0 for j in mine)

    db = str(engine.url)
    out = tmp_path / "pairs.jsonl"
    assert main(["feedback", "export", "--format", "pairs", "--db", db, "--out", str(out)]) == 0
    pairs = {(p["chosen"], p["rejected"]) for p in map(json.loads, out.read_text().splitlines())}
    a, b, c = rank_text["A"], rank_text["B"], rank_text["C"]
    assert pairs == {
        (shown["B"], shown["A"]),
        (c, a),
        (c, b),
        (a, b),
        (rate_text["A"], rate_text["B"]),
    }

    assert reward_model_cli(), "`rlfoundry llm reward-model` is not registered"
    # the export trains a reward model through the CLI, as a user would run it: the
    # five judgments are also the evaluation pairs (eval_data), so the held-out metric
    # here says the model learnt this annotator's preferences (a tiny, seconds-long run)
    run_dir = tmp_path / "rm"
    proc = subprocess.run(
        [sys.executable, "-m", "rlfoundry", "llm", "reward-model", "--data", str(out)]
        + ["--out", str(run_dir), "--steps", "30", "--seed", "0", "--json", "--no-progress"]
        + ["--set", "batch_size=5", "--set", "eval_every=10", "--set", f"eval_data={out}"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["eval_pairs"] == 5, summary
    assert summary["eval_accuracy"] >= 0.8, summary
    assert (run_dir / "model" / "config.json").is_file()
    assert (run_dir / "metrics.csv").is_file()
