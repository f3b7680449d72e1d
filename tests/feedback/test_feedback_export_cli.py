"""``feedback export`` (every format and sink) and ``feedback leaderboard`` end to end."""

import csv
import json

import pytest
from fb_helpers import write_jsonl
from needs import need

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


@pytest.fixture
def db(tmp_path, capsys):
    """Project 'duel', overlap 2: 'big' always beats 'small'; item 3 judged by one only."""
    db = f"sqlite:///{tmp_path / 'x.db'}"
    rows = [
        {
            "id": k,
            "prompt": f"p{k}",
            "responses": [
                {"text": f"s{k}", "model": "small"},
                {"text": f"a longer answer {k}", "model": "big"},
            ],
        }
        for k in range(3)
    ]
    src = write_jsonl(tmp_path / "duel.jsonl", rows)
    assert run(capsys, "import", str(src), "--db", db, "--gold-every", "0")[0] == 0
    tokens = [run(capsys, "add-annotator", n, "--db", db)[1].split()[-1] for n in ("a", "b")]
    engine = make_engine(db)
    pid = get_project(engine, "duel").id
    for t, limit in zip(tokens, (3, 2)):
        who = who_for_token(engine, t)
        for _ in range(limit):
            a = next_assignment(engine, pid, who.id)
            view = assignment_view(engine, a.id)
            best = max(view["responses"], key=lambda r: len(r["text"]))["letter"]
            submit(engine, who, a.id, {"choice": best})
    engine.dispose()
    return db


def test_pairs_complete_only_and_single_vote(db, tmp_path, capsys):
    code, out, err = run(capsys, "export", "--db", db)
    pairs = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and sorted(p["agreement"] is None for p in pairs) == [False, False, True]
    code, out, err = run(capsys, "export", "--db", db, "--complete-only")
    pairs = [json.loads(x) for x in out.splitlines()]
    assert len(pairs) == 2 and all(p["agreement"] == 1.0 for p in pairs)
    assert "1 items left out for too few votes" in err
    code, out, _ = run(capsys, "export", "--db", db, "--min-votes", "3")
    assert out == ""


def test_raw_parquet_kto_csv_and_datasets(db, tmp_path, capsys):
    pq = need("pyarrow.parquet", "feedback")
    raw = tmp_path / "raw.parquet"
    code, _, err = run(capsys, "export", "--db", db, "--format", "raw", "--out", str(raw))
    assert code == 0 and "5 judgments of 3 items" in err
    table = pq.read_table(raw).to_pylist()
    assert len(table) == 5 and all(r["models"] == ["small", "big"] for r in table)
    assert {json.loads(r["label"]) for r in table} == {1}

    kto = tmp_path / "kto.csv"
    assert run(capsys, "export", "--db", db, "--format", "kto", "--out", str(kto))[0] == 0
    rows = list(csv.DictReader(kto.open()))
    assert len(rows) == 6
    assert {(r["model"], r["label"]) for r in rows} == {("big", "True"), ("small", "False")}

    need("datasets", "llm")
    from datasets import load_from_disk

    out = tmp_path / "kto_ds"
    assert run(capsys, "export", "--db", db, "--format", "kto", "--out", str(out))[0] == 0
    ds = load_from_disk(str(out))
    assert set(ds.column_names) >= {"prompt", "completion", "label"} and len(ds) == 6
    code, _, err = run(capsys, "export", "--db", db, "--format", "kto", "--out", str(out))
    assert code == 2 and "already exists" in err


def test_bad_export_targets_are_one_sentence(db, tmp_path, capsys):
    code, _, err = run(capsys, "export", "--db", db, "--out", str(tmp_path / "x.txt"))
    assert code == 2 and "suffix" in err
    code, _, err = run(capsys, "export", "--db", db, "--to", "csv")
    assert code == 2 and "--out" in err


def test_leaderboard_table_json_and_plot(db, tmp_path, capsys):
    plot = tmp_path / "lb.png"
    code, out, _ = run(
        capsys, "leaderboard", "--db", db, "--bootstrap", "200", "--plot", str(plot), "--json"
    )
    rows = json.loads(out)
    assert code == 0 and [r["model"] for r in rows] == ["big", "small"]
    assert rows[0]["win_rate"] == 1.0 and rows[0]["games"] == 5
    assert rows[0]["elo_lo"] <= rows[0]["elo"] <= rows[0]["elo_hi"]
    assert plot.stat().st_size > 1000
    code, out, _ = run(capsys, "leaderboard", "--db", db, "--bootstrap", "50", "--plot", "")
    assert code == 0 and "95% CI" in out and "big" in out
