"""A short run of benchmarks/feedback_load.py: 10 concurrent annotators, at most 5 s,
against a real ``rlfoundry feedback serve`` on 127.0.0.1. The pool is small enough to
run out, so the final state must be exact: every item judged by exactly ``overlap``
annotators, no judgment lost, duplicated or crossed between annotators."""

import importlib.util
import sys
from pathlib import Path

from needs import need

need("uvicorn", "feedback")
need("httpx", "feedback")

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


def test_oversized_bodies_do_not_grow_the_server(tmp_path):
    """The acceptance figure of issue 13 at a tenth of the size (20 clients x 20 MB;
    ``python benchmarks/feedback_load.py --bodies`` runs 20 x 200 MB): the server's
    resident memory stays under 1.2x its idle figure, it answers 413 to every body it
    would parse, and it serves a normal judgment afterwards."""
    need("psutil", "dev")
    bench = load_bench()
    r = bench.run_bodies(clients=20, body_mb=20, workdir=tmp_path)
    assert r["ratio"] < 1.2, r
    assert r["sent_mb"] == 400  # every client pushed its whole body through
    # JSON and form routes refuse both kinds (12 with Content-Length, 4 chunked); the
    # /next route never reads a body and answers as usual (401, or 200 with a token)
    assert r["statuses"].get(413) == 16, r["statuses"]
    assert r["server_alive"] and r["judgment_after"] == 201


def test_the_memory_measure_sees_bodies_that_are_parsed(tmp_path):
    """The control of the test above: the same 20 x 20 MB with the limit off
    (``--max-body-size 0``) are read and parsed, and the same measure goes well past
    1.2x idle (4.3x measured, idle 79 MB; 1.8x expected at the 324 MB idle of
    benchmarks/RESULTS.md), so the 1.2x bound above can fail."""
    need("psutil", "dev")
    r = load_bench().run_bodies(clients=20, body_mb=20, max_body="0", workdir=tmp_path)
    assert r["ratio"] > 1.4, r
    assert r["statuses"].get(413) is None and r["statuses"].get(400), r["statuses"]
