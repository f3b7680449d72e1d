"""A short run of benchmarks/feedback_load.py: 10 concurrent annotators, at most 5 s,
against a real ``rlfoundry feedback serve`` on 127.0.0.1. The pool is small enough to
run out, so the final state must be exact: every item judged by exactly ``overlap``
annotators, no judgment lost, duplicated or crossed between annotators."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "feedback_load.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("feedback_load", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_concurrent_annotators_keep_every_invariant(tmp_path):
    bench = load_bench()
    # Annotators stop when the server says the pool is done, so the bound is only a guard
    # against a hang: the run must exhaust the pool and end with the exact final state.
    r = bench.run(annotators=10, seconds=120, items=60, gold=4, overlap=3, workdir=tmp_path)
    assert r["problems"] == []
    assert r["bound"] == ["127.0.0.1"]  # no --host given: loopback only
    assert r["exhausted"], f"the pool was not finished in {r['seconds']} s"
    assert r["items_complete"] == r["items"] == 60
    assert r["judgments"] >= 60 * 3
    # the adversarial requests were actually made and refused
    assert any(k.startswith("cross:404") for k in r["statuses"]), r["statuses"]


def test_results_section_replaces_only_its_own_markers(tmp_path):
    bench = load_bench()
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\n<!-- other -->\nkeep me\n<!-- /other -->\n")
    bench.write_results(f"{bench.MARK_START}\nfirst\n{bench.MARK_END}", path)
    bench.write_results(f"{bench.MARK_START}\nsecond\n{bench.MARK_END}", path)
    text = path.read_text()
    assert "keep me" in text and "second" in text and "first" not in text
    assert text.count(bench.MARK_START) == 1
