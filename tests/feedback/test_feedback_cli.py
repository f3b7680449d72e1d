"""Smoke runs of every ``rlfoundry feedback`` command on a tiny database."""

import json

import pytest
from fb_helpers import write_jsonl

from rlfoundry.cli.main import main
from rlfoundry.feedback.accounts import who_for_token
from rlfoundry.feedback.assign import next_assignment
from rlfoundry.feedback.db import make_engine
from rlfoundry.feedback.judgments import submit
from rlfoundry.feedback.projects import get_project
from rlfoundry.feedback.tasks import assignment_view


def run(capsys, *argv):
    code = main(["feedback", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_feedback_cli_round_trip(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'f.db'}"
    guide = tmp_path / "guide.txt"
    guide.write_text("Prefer the shorter correct answer.")
    assert run(capsys, "create-project", "ranks", "--kind", "rank", "--db", db)[0] == 0
    code, _, err = run(capsys, "create-project", "ranks", "--kind", "rank", "--db", db)
    assert code == 2 and "already exists" in err
    src = write_jsonl(
        tmp_path / "cmp.jsonl",
        [
            {"id": 1, "prompt": "2+2?", "responses": ["4", "5"]},
            {"id": 2, "prompt": "3+3?", "responses": ["6", {"text": "7", "model": "m"}]},
            {"id": "g", "prompt": "1+1?", "responses": ["2", "3"], "gold": 0},
        ],
    )
    code, out, _ = run(
        capsys,
        "import",
        str(src),
        "--db",
        db,
        "--overlap",
        "2",
        "--gold-every",
        "2",
        "--guidelines",
        str(guide),
    )
    assert code == 0 and "imported 3 items (1 gold) into 'cmp'" in out
    code, out, _ = run(capsys, "add-annotator", "ann", "--db", db, "--admin")
    ann = out.strip().splitlines()[-1]
    bob = run(capsys, "add-annotator", "bob", "--db", db)[1].strip().splitlines()[-1]
    assert run(capsys, "add-annotator", "bob", "--db", db)[0] == 2

    engine = make_engine(db)
    project = get_project(engine, "cmp")
    assert project.kind == "compare" and project.guidelines.startswith("Prefer")
    for token in (ann, bob):
        who = who_for_token(engine, token)
        while (a := next_assignment(engine, project.id, who.id)) is not None:
            view = assignment_view(engine, a.id)
            # both always pick the response whose text is the smaller number
            best = min(view["responses"], key=lambda r: r["text"])["letter"]
            submit(engine, who, a.id, {"choice": best})
    engine.dispose()

    code, out, _ = run(capsys, "stats", "--db", db, "--project", "cmp", "--json")
    stats = json.loads(out)[0]
    assert stats["items_complete"] == 2 and stats["judgments"] == 6
    assert stats["agreement"]["percent_agreement"] == 1.0
    assert stats["annotators"]["ann"]["gold_accuracy"] == 1.0
    code, out, _ = run(capsys, "stats", "--db", db)
    assert code == 0 and "percent agreement 1.000" in out

    pairs_path = tmp_path / "pairs.jsonl"
    code, _, err = run(
        capsys,
        "export",
        "--format",
        "pairs",
        "--db",
        db,
        "--project",
        "cmp",
        "--out",
        str(pairs_path),
    )
    assert code == 0 and "wrote 2 pairs" in err
    pairs = [json.loads(line) for line in pairs_path.read_text().splitlines()]
    assert {(p["prompt"], p["chosen"], p["rejected"]) for p in pairs} == {
        ("2+2?", "4", "5"),
        ("3+3?", "6", "7"),
    }
    assert all(p["agreement"] == 1.0 and p["n_annotators"] == 2 for p in pairs)


def test_generate_reports_a_bad_prompts_file_and_missing_pieces(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'g.db'}"
    code, _, err = run(
        capsys, "generate", "--model", "nope", "--prompts", str(tmp_path / "x.txt"), "--db", db
    )
    assert code == 2 and "does not exist" in err
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"id": 2}\n')
    code, _, err = run(capsys, "generate", "--model", "nope", "--prompts", str(bad), "--db", db)
    assert code == 2 and "line 2" in err


def test_bad_database_url_is_one_clear_error(capsys):
    code, _, err = run(capsys, "stats", "--db", "nosuchdriver://x")
    assert code == 2 and "--db" in err


@pytest.mark.parametrize("kind", ["compare", "rank", "rate"])
def test_every_kind_exports_through_the_cli(tmp_path, capsys, kind):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    n = 2 if kind == "compare" else 3
    src = write_jsonl(
        tmp_path / "k.jsonl",
        [{"id": 1, "prompt": "p", "responses": [f"r{i}" for i in range(n)]}],
    )
    assert run(capsys, "import", str(src), "--db", db, "--kind", kind, "--overlap", "1")[0] == 0
    token = run(capsys, "add-annotator", "a", "--db", db)[1].strip().splitlines()[-1]
    engine = make_engine(db)
    who = who_for_token(engine, token)
    a = next_assignment(engine, 1, who.id)
    letters = [r["letter"] for r in assignment_view(engine, a.id)["responses"]]
    payload = {
        "compare": {"choice": "A"},
        "rank": {"ranking": letters},
        "rate": {"ratings": dict(zip(letters, (5, 3, 1)))},
    }[kind]
    submit(engine, who, a.id, payload)
    engine.dispose()
    code, out, err = run(capsys, "export", "--db", db)
    pairs = [json.loads(line) for line in out.splitlines()]
    assert len(pairs) == {"compare": 1, "rank": 3, "rate": 3}[kind]
    assert all(p["source"] == kind for p in pairs)
    code, out, err = run(capsys, "export", "--db", db, "--format", "kto")
    rows = [json.loads(line) for line in out.splitlines()]
    # rate: 5 -> desirable, 3 -> left out, 1 -> undesirable; compare: winner desirable,
    # loser undesirable; rank: first desirable, last undesirable (feedback/formats.py)
    assert code == 0 and sorted(r["label"] for r in rows) == [False, True], (kind, rows)
