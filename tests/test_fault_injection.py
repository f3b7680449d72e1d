"""Fault injection, the way trusted systems test themselves: each case ends in the state of
a clean run, or is refused with one sentence and nothing lost.

- kill -9 (SIGKILL, no chance to save) at seeded random points of a seeded tabular, PPO,
  DQN and GRPO run, then `--resume` until done: the final checkpoint's tensors (weights,
  optimiser moments, RNG states) are bit-identical to an uninterrupted run's. The
  killed runs checkpoint often (`checkpoint_every`), the reference at the default 60 s,
  so this also shows the cadence does not change a run;
- a truncated and a corrupted checkpoint: one sentence from `eval`, `train --resume` and
  an LLM stage, naming the previous checkpoint, which then resumes exactly;
- a full disk (the checkpoint write raises ENOSPC): one sentence, the previous checkpoint
  intact, and the resume after space is freed ends like a clean run;
- a flaky judge (a loopback server failing 30% of requests with HTTP 500) still completes
  a GRPO run.

Every kill-and-resume process is a real `python -m rlfoundry`; the module takes about a
minute and a half on an idle 2-core machine (more when it is shared).
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from rlfoundry import api
from rlfoundry.cli.main import main
from rlfoundry.runtime import checkpoint as ckpt
from rlfoundry.runtime.run import CHECKPOINT, PREVIOUS, load_checkpoint_file

torch.set_num_threads(1)

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "CI": "1"}

GRPO = ["--set", "rollout_size=8", "--set", "group_size=4", "--set", "eval_every=0"]
GRPO += ["--set", "eval_size=8"]

#: name -> (CLI arguments of a new run, checkpoint_every of the killed one, api.train kwargs
#: of the same run, seed of the kill times). Budgets: a few seconds of CPU each.
CASES = {
    "qlearning": (
        ["train", "qlearning", "--env", "FrozenLake-v1", "--steps", "60000", "--seed", "3",
         "--set", "log_every=500"],
        "700",
        dict(name="qlearning", env="FrozenLake-v1", steps=60000, seed=3,
             overrides={"log_every": 500}),
        11,
    ),
    "ppo": (
        ["train", "ppo", "--env", "CartPole-v1", "--steps", "4096", "--seed", "0"],
        "1",
        dict(name="ppo", env="CartPole-v1", steps=4096, seed=0),
        12,
    ),
    "dqn": (
        ["train", "dqn", "--env", "CartPole-v1", "--steps", "3000", "--seed", "1"],
        "150",
        dict(name="dqn", env="CartPole-v1", steps=3000, seed=1),
        13,
    ),
    "grpo": (
        ["llm", "grpo", "--model", "tiny:nano", "--task", "arithmetic", "--steps", "4",
         "--seed", "0", *GRPO],
        "1",
        dict(name="llm-grpo", model="tiny:nano", task="arithmetic", steps=4, seed=0,
             overrides={"rollout_size": 8, "group_size": 4, "eval_every": 0, "eval_size": 8}),
        14,
    ),
}  # fmt: skip


def _cli(argv: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rlfoundry", *argv, "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _wait(proc: subprocess.Popen, ready, timeout: float = 240) -> bool:
    """Wait until `ready()` or the process ends; False if it ended first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)
    return True


def _kill_at_random_points(argv, every, out: Path, seed: int, kills: int) -> list:
    """Start the run, SIGKILL it `kills` times at seeded random moments (the first soon after
    its directory exists, mostly in its set-up; each later one after the resumed process
    wrote a new checkpoint), then resume it to the end. Returns where each kill landed."""
    rng = random.Random(seed)
    landed = []
    proc = _cli([*argv, "--out", str(out), "--set", f"checkpoint_every={every}"])
    for k in range(kills):
        if k == 0:
            alive = _wait(proc, (out / "config.yaml").exists)
            delay = rng.uniform(0.0, 0.6)
        else:
            proc = _cli(_resume(argv, out))
            before = _stamp(out / CHECKPOINT)
            alive = _wait(proc, lambda b=before: _stamp(out / CHECKPOINT) not in (None, b))
            delay = rng.uniform(0.0, 1.0)
        time.sleep(delay if alive else 0.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        found = load_checkpoint_file(out / CHECKPOINT) if (out / CHECKPOINT).exists() else None
        landed.append((proc.returncode, found[1]["step"] if found else None))
    done = subprocess.run(
        [sys.executable, "-m", "rlfoundry", *_resume(argv, out), "--no-progress"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return landed


def _resume(argv: list[str], out: Path) -> list[str]:
    """`train --resume DIR` or `llm STAGE --resume DIR`, for the command in `argv`."""
    return (
        ["train", "--resume", str(out)] if argv[0] == "train" else [*argv[:2], "--resume", str(out)]
    )


def _same_tensors(a: Path, b: Path) -> None:
    ta, sa = load_checkpoint_file(a / CHECKPOINT)
    tb, sb = load_checkpoint_file(b / CHECKPOINT)
    assert sa["step"] == sb["step"]
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


@pytest.mark.parametrize("name", list(CASES))
def test_kill_9_then_resume_is_bit_identical(tmp_path, name):
    argv, every, kw, seed = CASES[name]
    kw = dict(kw)
    ref = api.train(kw.pop("name"), out=tmp_path / "ref", progress=False, **kw)
    assert ref["status"] == "finished"
    landed = _kill_at_random_points(argv, every, tmp_path / "cut", seed, kills=2)
    print(name, "killed with the checkpoint at step", [step for _, step in landed])
    _same_tensors(tmp_path / "ref", tmp_path / "cut")
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["status"] == "finished"
    if name == "qlearning":  # no wall-time columns: the whole log matches too
        ref_rows = (tmp_path / "ref" / "metrics.csv").read_text()
        assert (tmp_path / "cut" / "metrics.csv").read_text() == ref_rows


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_many_kills_then_resume_is_bit_identical(tmp_path, name):
    argv, every, kw, seed = CASES[name]
    kw = dict(kw)
    api.train(kw.pop("name"), out=tmp_path / "ref", progress=False, **kw)
    _kill_at_random_points(argv, every, tmp_path / "cut", seed + 100, kills=6)
    _same_tensors(tmp_path / "ref", tmp_path / "cut")


# ---------------------------------------------------------------------- damaged checkpoints


def _qlearning(out: Path, steps: int = 3000, **kw) -> dict:
    return api.train(
        "qlearning", env="FrozenLake-v1", steps=steps, seed=3, out=out, progress=False,
        overrides={"log_every": 200, "checkpoint_every": "500"}, evaluate_after=False, **kw,
    )  # fmt: skip


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path) -> None:
    """Change one byte in the tensor data (the header still parses)."""
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip], ids=["truncated", "corrupted"])
def test_a_damaged_checkpoint_is_one_sentence_and_the_previous_one_resumes(
    tmp_path, capsys, damage
):
    full = tmp_path / "full"
    _qlearning(full)
    cut = tmp_path / "cut"
    assert _qlearning(cut, stop_at_step=2200)["status"] == "interrupted"
    prev_step = load_checkpoint_file(cut / PREVIOUS)[1]["step"]
    assert prev_step < 2200
    damage(cut / CHECKPOINT)
    kept = {p.name: p.read_bytes() for p in cut.iterdir() if p.is_file()}
    capsys.readouterr()
    for argv in (["eval", str(cut)], ["train", "--resume", str(cut), "--no-progress"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: The checkpoint") and err.count("\n") == 1, err
        assert "is damaged" in err and f"'{cut / PREVIOUS}' (step {prev_step}) is intact" in err
        assert "Traceback" not in err and "SafetensorError" not in err
    assert {p.name: p.read_bytes() for p in cut.iterdir() if p.is_file()} == kept  # untouched
    # what the sentence says to do
    os.replace(cut / PREVIOUS, cut / CHECKPOINT)
    assert main(["train", "--resume", str(cut), "--no-progress"]) == 0
    _same_tensors(full, cut)
    assert (full / "metrics.csv").read_text() == (cut / "metrics.csv").read_text()


def test_a_damaged_checkpoint_without_a_previous_one(tmp_path, capsys):
    out = tmp_path / "run"
    _qlearning(out, steps=300)
    (out / PREVIOUS).unlink()
    _truncate(out / CHECKPOINT)
    assert main(["eval", str(out)]) == 2
    err = capsys.readouterr().err
    assert "it is truncated" in err and "no intact earlier checkpoint is kept" in err


def test_a_damaged_llm_checkpoint_is_one_sentence(tmp_path):
    out = tmp_path / "sft"
    kw = dict(model="tiny:nano", task="arithmetic", steps=4, progress=False)
    s = api.train("llm-sft", out=out, stop_at_step=2, eval_every=0, **kw)
    assert s["status"] == "interrupted"
    _flip(out / CHECKPOINT)
    with pytest.raises(ckpt.CheckpointError, match="checksum does not match") as err:
        api.train(resume=out, progress=False)
    assert "SafetensorError" not in str(err.value)


def test_a_truncated_final_model_is_one_sentence_in_every_command(tmp_path, capsys):
    """A run's `model/model.safetensors` cut short (an interrupted copy): `llm eval`,
    `llm generate`, every stage's `--model DIR` and `rm:DIR` say so in one sentence,
    before any run directory is written; a run that did not finish is told to resume,
    which writes the model again, identical."""
    src = tmp_path / "sft"
    api.train("llm-sft", model="tiny:nano", task="arithmetic", steps=2, out=src,
              progress=False, eval_size=4)  # fmt: skip
    weights = src / "model" / "model.safetensors"
    good = weights.read_bytes()
    _truncate(weights)
    capsys.readouterr()
    grpo = ["llm", "grpo", "--task", "arithmetic", "--steps", "1", *GRPO, "--no-progress"]
    for argv in (
        ["llm", "eval", str(src), "--task", "arithmetic", "-n", "2"],
        ["llm", "generate", str(src), "--prompt", "1+1="],
        ["llm", "sft", "--model", str(src), "--steps", "1", "--no-progress"],
        ["llm", "dpo", "--model", str(src), "--steps", "1", "--no-progress"],
        [*grpo, "--model", str(src)],
        [*grpo, "--model", "tiny:nano", "--reward", f"rm:{src}"],
    ):
        out = tmp_path / "new"
        assert main([*argv, "--out", str(out)] if "--steps" in argv else argv) == 2, argv
        err = capsys.readouterr().err
        line = f"error: The model weights '{weights}' are damaged: it is truncated"
        assert err.startswith(line) and err.count("\n") == 1, (argv, err)
        assert "copy the model directory again" in err and "Traceback" not in err
        assert not out.exists(), argv
    from rlfoundry.apps.trading.llm_evaluator import LocalModel
    from rlfoundry.errors import RLFoundryError

    with pytest.raises(RLFoundryError, match="are damaged: it is truncated"):
        LocalModel(src / "model")
    # a run killed while it wrote its model: --resume writes it again from the checkpoint
    (src / "summary.json").unlink()
    assert main(["llm", "eval", str(src), "-n", "2"]) == 2
    assert f"`rlfoundry llm sft --resume {src}` writes it again" in capsys.readouterr().err
    assert main(["llm", "sft", "--resume", str(src), "--no-progress"]) == 0
    assert weights.read_bytes() == good
    assert main(["llm", "eval", str(src), "-n", "2"]) == 0


def test_the_model_of_a_run_that_did_not_finish_is_one_sentence(tmp_path, capsys):
    out = tmp_path / "sft"
    s = api.train("llm-sft", model="tiny:nano", steps=3, out=out, stop_at_step=1, progress=False)
    assert s["status"] == "interrupted" and not (out / "model").exists()
    capsys.readouterr()
    assert main(["llm", "generate", str(out), "--prompt", "1+1="]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: '{out}' is a run that has not written its model yet")
    assert f"finish it with `rlfoundry llm sft --resume {out}`" in err and err.count("\n") == 1


def test_the_final_model_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """`models.write_model_dir`: a save that fails half-way (a full disk) leaves the model
    that was there, byte for byte, and no temporary folder; files get a plain open's mode
    (safetensors alone writes 0600)."""
    import stat

    from rlfoundry.llm import models

    model, tok = models.load_model("tiny:nano"), models.load_tokenizer("tiny")
    path = tmp_path / "run" / "model"
    old = os.umask(0o022)
    try:
        models.save_model(model, tok, path)
    finally:
        os.umask(old)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    assert {stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()} == {0o644}

    def half_then_full(tmp):
        tmp.mkdir()
        (tmp / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError):
        models.write_model_dir(path, half_then_full)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["model"]


# ---------------------------------------------------------------------- full disk


def test_a_full_disk_is_one_sentence_and_loses_nothing(tmp_path, capsys, monkeypatch):
    argv = ["train", "qlearning", "--env", "FrozenLake-v1", "--steps", "3000", "--seed", "3"]
    argv += ["--set", "log_every=200", "--set", "checkpoint_every=500", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    out = tmp_path / "cut"
    real, calls = ckpt.atomic_write_bytes, {"n": 0}

    def disk_fills_up(path, data):
        calls["n"] += 1
        if calls["n"] >= 4:  # the first checkpoints fit, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(ckpt, "atomic_write_bytes", disk_fills_up)
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: Cannot write"), err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "no space is left" in err and "intact" in err and f"--resume {out}" in err
    assert "Traceback" not in err
    step = load_checkpoint_file(out / CHECKPOINT)[1]["step"]  # readable: nothing lost
    assert 0 < step < 3000 and f"checkpoint of step {step} is intact" in err
    assert not list(out.glob(".*.tmp"))
    monkeypatch.setattr(ckpt, "atomic_write_bytes", real)  # space freed
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    _same_tensors(tmp_path / "full", out)


# ---------------------------------------------------------------------- a flaky judge


class _FlakyJudge:
    """A loopback OpenAI-compatible judge that fails 30% of requests (HTTP 500, seeded)
    and otherwise replies `Score: N`, N the completion's length (at most 9)."""

    def __init__(self, fail: float = 0.3, seed: int = 0):
        self.ok = self.failed = 0
        rng, lock, outer = random.Random(seed), threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    bad = rng.random() < fail
                    outer.failed += bad
                    outer.ok += not bad
                if bad:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = body["messages"][-1]["content"].split("Answer: ")[1].split("\n")[0]
                text = f"Score: {min(len(answer.strip()), 9)}"
                data = json.dumps({"choices": [{"message": {"content": text}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_flaky_judge_still_completes_a_grpo_run(tmp_path):
    judge = _FlakyJudge(fail=0.3, seed=0)
    try:
        summary = api.train(
            "llm-grpo", model="tiny:nano", task="arithmetic", steps=3, out=tmp_path / "g",
            progress=False, reward=[f"judge:{judge.url}"], rollout_size=8, group_size=4,
            eval_every=0, eval_size=8, judge_retries=8,
        )  # fmt: skip
    finally:
        judge.close()
    assert summary["status"] == "finished" and summary["steps"] == 3
    assert judge.failed >= 3 and judge.ok >= 2 + 3 * 8  # two pre-flights, 24 completions
    from rlfoundry.runtime.plotting import read_metrics

    m = read_metrics(tmp_path / "g")
    assert np.nansum(m["judge/retries"]) >= 1 and np.nansum(m["judge/invalid"]) == 0
