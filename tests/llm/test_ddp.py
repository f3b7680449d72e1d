"""Data parallel GRPO: 2 CPU processes (gloo, torchrun) end with the parameters of one
process trained on the same global batch; the real trainer runs under torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rlfoundry.llm.generation", reason="rlfoundry.llm.generation not written yet")
import torch
from safetensors.torch import load_file

WORKER = str(Path(__file__).with_name("ddp_worker.py"))


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _torchrun(*args):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*cmd, WORKER, *args], env=_env(), capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_two_processes_equal_one(tmp_path, agg):
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    r1 = subprocess.run(
        [sys.executable, WORKER, "update", str(one), agg],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = _torchrun("update", str(two), agg)
    assert r2.returncode == 0, r2.stderr[-3000:]
    a, b = load_file(one), load_file(two)
    torch.manual_seed(0)
    from rlfoundry.llm.models import load_model

    start = dict(load_model("tiny").named_parameters())
    moved = max(float((a[k] - start[k].detach()).abs().max()) for k in a)
    assert moved > 1e-3  # the runs did train
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k


def test_grpo_trainer_under_torchrun(tmp_path):
    out = tmp_path / "run"
    r = _torchrun("train", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "model" / "config.json").is_file()
    assert (out / "summary.json").is_file() and (out / "metrics.csv").is_file()
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + 2 steps, written once (by rank 0)
