"""Data parallelism: 2 CPU processes (gloo, torchrun) end with the parameters of one
process trained on the same global batch, for GRPO's update, SFT, DPO and the reward
model, with and without FSDP; the gradient norms before clipping match too (a rank
that trained on the whole batch, or a mean where a sum is due, doubles or halves
them, which AdamW's scale invariance would hide in the parameters). Plus the launch
errors and `accelerate launch`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from needs import need
from safetensors.torch import load_file

from rlfoundry.errors import ConfigError

WORKER = str(Path(__file__).with_name("ddp_worker.py"))
LAUNCH_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_ERROR_FILE",
)


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for key in LAUNCH_VARS:
        env.pop(key, None)
    return env


def _run(cmd, timeout=300):
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _torchrun(*args, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    return _run([*cmd, str(nproc), *args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case of ddp_worker.py once alone and once as 2 processes (one launch each)."""
    base = tmp_path_factory.mktemp("ddp")
    one, two = base / "one", base / "two"
    r1 = _run([sys.executable, WORKER, "all", str(one)])
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = _torchrun(WORKER, "all", str(two))
    assert r2.returncode == 0, r2.stderr[-3000:]
    return one, two


def _assert_same_params(a_path, b_path):
    a, b = load_file(str(a_path)), load_file(str(b_path))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k


def _column(path, key):
    with open(path) as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "fsdp"])
def test_grpo_update_two_processes_equal_one(runs, agg):
    one, two = runs
    ref = one / f"update-{'token-mean' if agg == 'fsdp' else agg}.safetensors"
    _assert_same_params(ref, two / f"update-{agg}.safetensors")
    torch.manual_seed(0)
    from rlfoundry.llm.models import load_model

    start = dict(load_model("tiny").named_parameters())
    a = load_file(str(ref))
    assert max(float((a[k] - start[k].detach()).abs().max()) for k in a) > 1e-3  # it trained
    n1 = json.loads(ref.with_suffix(".json").read_text())
    n2 = json.loads((two / f"update-{agg}.json").read_text())
    assert max(n1) > 0 and n1 == pytest.approx(n2, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize(
    "stage, two_dir",
    [
        ("sft", "sft"),
        ("sft", "sft-fsdp"),
        ("dpo", "dpo"),
        ("rm", "rm"),
        ("sft-lora", "sft-lora"),
        ("dpo-lora", "dpo-lora"),
        ("sft-lora", "sft-fsdp-lora"),
    ],
)
def test_stage_two_processes_equal_one(runs, stage, two_dir):
    one, two = runs
    _assert_same_params(
        one / stage / "model/model.safetensors", two / two_dir / "model/model.safetensors"
    )
    for key in ("loss", "grad_norm"):  # the global batch's numbers, logged by rank 0
        a, b = (
            _column(one / stage / "metrics.csv", key),
            _column(two / two_dir / "metrics.csv", key),
        )
        assert len(a) == 3 and a == pytest.approx(b, rel=1e-4), key
    assert json.loads((two / two_dir / "summary.json").read_text())["processes"] == 2
    # each rank's loss saw its half of the 3 x 8 rows (not all 24: no duplicated work)
    assert json.loads((one / "rows-rank0.json").read_text())[stage] == 24
    for rank in (0, 1):
        assert json.loads((two / f"rows-rank{rank}.json").read_text())[two_dir] == 12
    assert not (two / two_dir / ".rank1" / "summary.json").exists()  # only rank 0 writes


@pytest.mark.parametrize(
    "stage, two_dir",
    [("dpo", "dpo-resumed"), ("sft", "sft-fsdp-resumed"), ("sft-lora", "sft-fsdp-lora-resumed")],
)
def test_two_processes_resume_exactly(runs, stage, two_dir):
    """Stopped at step 2 and resumed, each rank from its own checkpoint (FSDP: its shard)."""
    one, two = runs
    _assert_same_params(
        one / stage / "model/model.safetensors", two / two_dir / "model/model.safetensors"
    )
    assert _column(one / stage / "metrics.csv", "grad_norm") == pytest.approx(
        _column(two / two_dir / "metrics.csv", "grad_norm"), rel=1e-4
    )


def test_resume_with_another_number_of_processes_is_refused(runs, tmp_path):
    import shutil

    from rlfoundry.api import train

    run = tmp_path / "dpo"
    shutil.copytree(runs[1] / "dpo-resumed", run)
    (run / "summary.json").unlink()
    with pytest.raises(ConfigError, match="different number of processes than the 1 launched"):
        train(resume=str(run), progress=False)


def test_resuming_with_three_ranks_a_run_of_two_is_one_sentence_per_rank(tmp_path):
    """Issue 13's reproduction: a run stopped under 2 ranks (torchrun's report names its
    resume command), resumed with 3: each rank prints the sentence; what torchrun adds
    (its own launcher's traceback and report) carries that sentence, never a worker's
    traceback or "To enable traceback see"; no checkpoint changes."""
    run = tmp_path / "sft"
    args = ["-m", "rlfoundry", "llm", "sft", "--model", "tiny:nano", "--out", str(run)]
    args += ["--set", "batch_size=6", "--steps", "3", "--stop-at", "1", "--no-progress"]
    r = _torchrun(*args)
    assert "exitcode  : 130" in r.stderr, r.stderr[-3000:]
    assert f"traceback : Interrupted; continue with: rlfoundry llm sft --resume {run}" in r.stderr
    before = {p: p.read_bytes() for p in run.rglob("*.safetensors")}
    assert len(before) == 2  # rank 0's in DIR, rank 1's in DIR/.rank1
    r = _torchrun("-m", "rlfoundry", "llm", "sft", "--resume", str(run), "--no-progress", nproc=3)
    sentence = (
        "This run's checkpoints were written by a different number of processes than the 3 "
        "launched now; resume it with as many processes as it was started with."
    )
    assert r.returncode != 0
    assert r.stderr.count(f"error: {sentence}") == 3, r.stderr[-3000:]
    assert "[rank" not in r.stderr and "To enable traceback" not in r.stderr
    assert f"traceback : {sentence}" in r.stderr  # the root cause torchrun names
    import rlfoundry

    assert str(Path(rlfoundry.__file__).parent) not in r.stderr  # torchrun's frames, not ours
    assert {p: p.read_bytes() for p in run.rglob("*.safetensors")} == before


def test_an_interrupted_run_puts_its_resume_command_in_torchruns_report(tmp_path, monkeypatch):
    """A stopped run exits 130, which torchrun reports as a failure: the report's
    `traceback :` field says how to continue (written where torchrun reads it)."""
    from rlfoundry.api import train

    report = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(report))
    out = tmp_path / "run"
    s = train("llm-sft", out=str(out), total_steps=3, stop_at_step=1, progress=False)
    assert s["status"] == "interrupted"
    message = json.loads(report.read_text())["message"]["message"]
    assert message == f"Interrupted; continue with: rlfoundry llm sft --resume {out}"


@pytest.mark.parametrize("name", ["grpo", "grpo-fsdp"])
def test_grpo_trainer_under_torchrun(runs, name):
    out = runs[1] / name
    assert (out / "summary.json").is_file()
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + 2 steps, written once (by rank 0)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out / "model")  # FSDP: gathered, whole
    assert sum(p.numel() for p in model.parameters()) > 1000


def test_batch_that_does_not_split_fails_on_every_rank_before_work(tmp_path):
    out = tmp_path / "run"
    args = ["-m", "rlfoundry", "llm", "sft", "--model", "tiny:nano", "--out", str(out)]
    r = _torchrun(*args, "--set", "batch_size=7", "--steps", "1")
    sentence = "batch_size = 7 does not split evenly over 2 processes"
    assert r.returncode != 0
    # one sentence per rank (the launcher may join two ranks' lines, so count, not split)
    assert r.stderr.count(f"error: {sentence}") == 2, r.stderr[-2000:]
    assert "[rank" not in r.stderr  # no worker traceback
    assert "exitcode  : 2" in r.stderr  # each worker exits with the CLI's code 2
    assert f"traceback : {sentence}" in r.stderr  # torchrun's report names the cause
    assert not out.exists()


def test_fsdp_needs_several_processes(tmp_path):
    from rlfoundry.api import train

    with pytest.raises(ConfigError, match="fsdp=true shards the model over processes"):
        train("llm-sft", out=str(tmp_path / "run"), overrides={"fsdp": True}, progress=False)
    with pytest.raises(ConfigError, match="fsdp=true"):
        train("llm-grpo", out=str(tmp_path / "run"), overrides={"model": "tiny", "fsdp": True})
    assert not (tmp_path / "run").exists()


def test_world_size_checks_before_work():
    from rlfoundry.runtime.distributed import check_batch_split

    check_batch_split(8, 2, world=2)
    with pytest.raises(ConfigError, match="batch_size = 9 does not split evenly over 2"):
        check_batch_split(9, 0, world=2)
    with pytest.raises(ConfigError, match=r"micro_batch_size = 3 does not divide .* \(4 = "):
        check_batch_split(8, 3, world=2)


def test_launch_env_reads_torchrun_and_mpi():
    from rlfoundry.runtime.distributed import launch_env

    assert launch_env({}).world == 1
    d = launch_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (d.rank, d.world, d.local_rank) == (3, 4, 1)
    mpi = {
        "OMPI_COMM_WORLD_RANK": "1",
        "OMPI_COMM_WORLD_SIZE": "2",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
    }
    d = launch_env(mpi)
    assert (d.rank, d.world, d.local_rank, d.main) == (1, 2, 1, False)
    assert d.shard(8) == slice(4, 8)


def test_accelerate_one_process_launch_is_recognised(tmp_path):
    need("accelerate", "llm")
    from rlfoundry.runtime.launch import accelerate_request, parse_accelerate_argv

    env = {"ACCELERATE_MIXED_PRECISION": "no", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    argv = ["python", "/venv/bin/accelerate", "launch", "--num_processes", "2", "-m", "rlfoundry"]
    req = accelerate_request(env, argv + ["llm", "sft"])
    assert req is not None and (req.num_processes, req.num_machines) == (2, 1)
    assert accelerate_request({**env, "WORLD_SIZE": "2"}, argv) is None  # torchrun did it
    assert accelerate_request({"MASTER_ADDR": "x"}, argv) is None  # not accelerate
    assert accelerate_request(env, ["python", "train.py"]) is None  # not its child
    # the number of processes may come from an accelerate config file
    cfg = tmp_path / "multi.yaml"
    cfg.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nnum_machines: 2\n"
        "machine_rank: 1\nmain_process_ip: 10.0.0.1\nmain_process_port: 29555\n"
        "num_processes: 4\nmixed_precision: 'no'\nuse_cpu: true\n"
    )
    req = parse_accelerate_argv(["accelerate", "launch", "--config_file", str(cfg), "x.py"])
    assert req is not None
    assert (req.num_processes, req.num_machines, req.machine_rank) == (4, 2, 1)
    assert (req.main_process_ip, req.main_process_port) == ("10.0.0.1", 29555)
    example = Path(__file__).parents[2] / "examples/accelerate/multi_node.yaml"
    req = parse_accelerate_argv(["accelerate", "launch", "--config_file", str(example), "t.py"])
    assert req is not None and (req.num_processes, req.num_machines) == (16, 2)


@pytest.mark.slow
def test_accelerate_launch_runs_two_ranks(tmp_path):
    """`accelerate launch --num_processes 2` on a CPU: two ranks, not one, and a batch
    that does not split stops before any work with one sentence per rank."""
    need("accelerate", "llm")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2"]
    cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    sft = ["-m", "rlfoundry", "llm", "sft", "--model", "tiny:nano", "--steps", "2", "--no-progress"]
    sft += ["--set", "batch_size=8", "--set", "eval_size=0", "--set", "target_accuracy=0"]
    r = _run([*cmd, *sft, "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["processes"] == 2
    assert (out / ".rank1").is_dir()
    # --quiet: accelerate's launcher adds no traceback of its own (it exits with 1)
    bad = _run([*cmd, "--quiet", *sft, "--out", str(tmp_path / "bad"), "--set", "batch_size=7"])
    assert bad.returncode == 1
    assert bad.stderr.count("batch_size = 7 does not split evenly over 2 processes") == 2
    assert "Traceback" not in bad.stderr and "exitcode" not in bad.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.gpu(2)  # nccl on 2 CUDA devices; deselected without them (tests/conftest.py)
@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_fsdp_on_two_gpus(tmp_path, stage):
    """FSDP on 2 GPUs with nccl (each rank on its own GPU): the model saves whole, and
    SFT's losses follow one CPU process on the same batches (to GPU arithmetic's precision)."""
    sets = {"sft": {"model": "tiny:nano", "batch_size": 8, "eval_size": 0, "target_accuracy": 0},
            "grpo": {"model": "tiny", "rollout_size": 16, "group_size": 4, "beta": 0.04,
                     "eval_every": 0, "eval_size": 8}}[stage]  # fmt: skip

    def argv(out, **extra):
        pairs = [x for k, v in {**sets, **extra}.items() for x in ("--set", f"{k}={v}")]
        return [
            "-m",
            "rlfoundry",
            "llm",
            stage,
            "--steps",
            "3",
            "--no-progress",
            *pairs,
            "--out",
            str(out),
        ]

    gpu = _torchrun(*argv(tmp_path / "gpu", fsdp="true"))
    assert gpu.returncode == 0, gpu.stderr[-3000:]
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "gpu" / "model")
    if stage == "sft":
        env = {**_env(), "CUDA_VISIBLE_DEVICES": ""}
        cmd = [sys.executable, *argv(tmp_path / "cpu")]
        cpu = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert cpu.returncode == 0, cpu.stderr[-3000:]
        a = _column(tmp_path / "cpu" / "metrics.csv", "loss")
        assert a == pytest.approx(_column(tmp_path / "gpu" / "metrics.csv", "loss"), rel=1e-2)
