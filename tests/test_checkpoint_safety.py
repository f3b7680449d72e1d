"""Runs that lose a bounded amount of work and never leave a dead end (issue 13): the
first checkpoint, `checkpoint_every`, checksums and the previous checkpoint, which
directories a run may use (`--overwrite`), a finished run's resume, re-evaluations and
plots in their own files, file modes, tuned configs that say when they apply,
`solve --set env_kwargs`, `eval_every=0` on every LLM stage, and `llm pipeline --resume`.
Each reproduction of the issue ends in a clean state with one sentence and no traceback.
"""

from __future__ import annotations

import json
import os
import random
import stat

import numpy as np
import pytest
import torch
import yaml

from rlfoundry import api
from rlfoundry.cli.main import main
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime import checkpoint as ckpt
from rlfoundry.runtime import rundir
from rlfoundry.runtime.run import (
    CHECKPOINT,
    PREVIOUS,
    Run,
    load_checkpoint_file,
    parse_checkpoint_every,
)

torch.set_num_threads(1)

GRID = "rlfoundry/GridWorld-v0"
Q = ["train", "qlearning", "--env", "FrozenLake-v1", "--steps", "600", "--seed", "2"]
Q += ["--set", "log_every=100", "--no-progress"]


def _files(path):
    """Every file under `path` (tb/ included) with its bytes and mtime."""
    return {
        str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------- checkpoint_every


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, (0, 60.0)),
        ("60s", (0, 60.0)),
        ("1000", (1000, float("inf"))),
        (250, (250, float("inf"))),
        ("5m", (0, 300.0)),
        ("1000,60s", (1000, 60.0)),
        ("1_000, 1h", (1000, 3600.0)),
        ("0", (0, float("inf"))),
    ],
)
def test_checkpoint_every_reads_steps_and_times(value, expected):
    assert parse_checkpoint_every(value) == expected


@pytest.mark.parametrize("value", ["often", "1.5", "-3", "10q"])
def test_a_bad_checkpoint_every_is_one_sentence_before_any_directory(tmp_path, capsys, value):
    with pytest.raises(ConfigError, match="checkpoint_every must be steps"):
        parse_checkpoint_every(value)
    out = tmp_path / "run"
    assert main([*Q, "--out", str(out), "--set", f"checkpoint_every={value}"]) == 2
    assert "checkpoint_every must be steps" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_fresh_run_checkpoints_at_its_first_chance_then_every_n_steps(tmp_path):
    with Run(
        tmp_path / "a", 1000, progress=False, tensorboard=False, checkpoint_every="100"
    ) as run:
        due = []
        for step in range(1, 400):
            if run.checkpoint_due(step):
                due.append(step)
                run.save_checkpoint(step, {"w": torch.zeros(1)})
    assert due == [1, 101, 201, 301]
    # a resumed run already has its checkpoint: the count continues from it
    with Run(tmp_path / "a", 1000, resume=True, progress=False, checkpoint_every="100") as run:
        assert run.step == 301 and not run.checkpoint_due(302) and run.checkpoint_due(401)


def test_saving_neither_draws_from_nor_moves_the_random_generators(tmp_path):
    with Run(tmp_path, 10, progress=False, tensorboard=False) as run:
        torch.manual_seed(1), np.random.seed(1), random.seed(1)
        run.save_checkpoint(1, {"w": torch.randn(3)}, {"a": 1})
        run.save_checkpoint(2, {"w": torch.zeros(3)})
        got = (torch.rand(2).tolist(), np.random.rand(), random.random())
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    torch.randn(3)
    assert got == (torch.rand(2).tolist(), np.random.rand(), random.random())


def test_checkpoint_every_is_kept_in_config_yaml_and_may_change_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*Q, "--out", str(out), "--set", "checkpoint_every=200,30s", "--stop-at", "300"])
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["checkpoint_every"] == "200,30s" and saved["algo"] == "qlearning"
    argv = ["train", "--resume", str(out), "--set", "checkpoint_every=50", "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["list", "ppo"]) == 0
    assert "checkpoint_every" in capsys.readouterr().out


# ---------------------------------------------------------------------- the file


def test_the_checkpoint_carries_a_checksum_and_keeps_the_previous_one(tmp_path):
    with Run(tmp_path, 10, progress=False, tensorboard=False) as run:
        run.save_checkpoint(1, {"w": torch.ones(2)})
        assert not (tmp_path / PREVIOUS).exists()
        run.save_checkpoint(2, {"w": torch.full((2,), 2.0)})
    data = (tmp_path / CHECKPOINT).read_bytes()
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    assert len(meta["sha256"]) == 64 and json.loads(meta["state"])["step"] == 2
    tensors, state = load_checkpoint_file(tmp_path / PREVIOUS)
    assert state["step"] == 1 and torch.equal(tensors["w"], torch.ones(2))
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "cut,needle",
    [
        (lambda d: d[:5], "it holds only 5 bytes"),
        (lambda d: d[: len(d) // 2], "it is truncated"),
        (lambda d: b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"x" * 40, "not valid JSON"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum does not match"),
    ],
)
def test_every_kind_of_damage_is_one_checkpoint_error(tmp_path, cut, needle):
    with Run(tmp_path, 10, progress=False, tensorboard=False) as run:
        run.save_checkpoint(1, {"w": torch.arange(4.0)})
        run.save_checkpoint(2, {"w": torch.arange(4.0) + 1})
    path = tmp_path / CHECKPOINT
    path.write_bytes(cut(path.read_bytes()))
    with pytest.raises(ckpt.CheckpointError, match=needle) as err:
        load_checkpoint_file(path)
    assert f"'{tmp_path / PREVIOUS}' (step 1) is intact" in str(err.value)
    assert str(err.value).count(". ") == 0  # one sentence


def test_old_checkpoints_without_a_checksum_still_load(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(1)}, str(tmp_path / CHECKPOINT), metadata={"state": '{"step": 3}'})
    tensors, state = load_checkpoint_file(tmp_path / CHECKPOINT)
    assert state == {"step": 3} and torch.equal(tensors["w"], torch.ones(1))


def test_run_files_get_the_mode_a_plain_open_gives(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert main([*Q, "--out", str(out)]) == 0
        assert main(["eval", str(out), "--episodes", "2"]) == 0
    finally:
        os.umask(old)
    names = ["config.yaml", "metrics.csv", CHECKPOINT, PREVIOUS, "summary.json"]
    names += ["learning_curve.png", next(out.glob("eval-*.json")).name]
    for name in names:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


# ---------------------------------------------------------------------- which directory


def test_a_run_killed_before_its_first_checkpoint_is_resumed_from_step_0(tmp_path, capsys):
    """The directory of a run that died in its set-up (config.yaml, no checkpoint) is no
    dead end: --resume starts it again with its config and ends as a clean run."""
    assert main([*Q, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "died"
    _, cfg = api.resolve_config("qlearning", "FrozenLake-v1", 600, 2, overrides={"log_every": 100})
    rundir.open_run(out, "qlearning", cfg, progress=False).close()  # set up, then "killed"
    (out / "metrics.csv").write_text("step,episode_return\n1,0.0\n")  # a partial log
    assert not (out / CHECKPOINT).exists()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert "no checkpoint yet" in capsys.readouterr().err
    ref, got = (
        load_checkpoint_file(tmp_path / "ref" / CHECKPOINT),
        load_checkpoint_file(out / CHECKPOINT),
    )
    assert torch.equal(ref[0]["q"], got[0]["q"])
    assert (tmp_path / "ref" / "metrics.csv").read_text() == (out / "metrics.csv").read_text()


def test_a_metrics_row_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    with Run(tmp_path, 100, progress=False, tensorboard=False) as run:
        run.log(1, x=1.0)
        run.save_checkpoint(2, {"w": torch.zeros(1)})
        run.log(2, x=2.0)
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("3,3.")  # the kill came in the middle of a row
    with Run(tmp_path, 100, resume=True, progress=False, tensorboard=False) as run:
        run.log(3, x=3.5)
    assert (tmp_path / "metrics.csv").read_text() == "step,x\n1,1.0\n2,2.0\n3,3.5\n"


def test_writes_cut_short_by_a_kill_are_cleared_on_resume(tmp_path):
    """A kill during an atomic write leaves `.NAME.tmp` files, and during an LLM stage's
    final model a `.model.new.tmp` folder (found by the GRPO kill -9 test): the resume
    clears both and goes on."""
    with Run(tmp_path, 10, progress=False, tensorboard=False) as run:
        run.save_checkpoint(1, {"w": torch.zeros(1)})
    (tmp_path / ".checkpoint.safetensors.x1.tmp").write_bytes(b"half")
    (tmp_path / ".model.new.tmp").mkdir()
    (tmp_path / ".model.new.tmp" / "model.safetensors").write_bytes(b"half")
    with Run(tmp_path, 10, resume=True, progress=False, tensorboard=False) as run:
        assert run.step == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_damaged_source_of_init_from_is_refused_before_any_write(tmp_path, capsys):
    src = tmp_path / "src"
    argv = ["train", "dqn", "--env", "CartPole-v1", "--steps", "200", "--no-progress"]
    argv += ["--set", "learning_starts=50", "--set", "eval_episodes=1"]
    assert main([*argv, "--out", str(src)]) == 0
    ckpt_path = src / CHECKPOINT
    ckpt_path.write_bytes(ckpt_path.read_bytes()[:-10])
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "ft"), "--init-from", str(src)]) == 2
    assert "is damaged: it is truncated" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "ft").exists()


def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*Q, "--out", str(out)]) == 0
    before = _files(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "is a finished run" in err and "nothing was changed" in err
    assert _files(out) == before  # no summary, checkpoint, metrics or tb file rewritten


def test_resuming_a_finished_llm_stage_changes_nothing(tmp_path, capsys):
    out = tmp_path / "sft"
    api.train("llm-sft", model="tiny:nano", steps=2, out=out, progress=False, eval_size=4)
    before = _files(out)
    summary = api.train(resume=out, progress=False)
    assert summary["status"] == "finished" and summary["steps"] == 2
    assert _files(out) == before


def test_an_llm_stage_keeps_the_same_directory_rules(tmp_path, capsys):
    """`llm STAGE` on the command line: a finished run's resume says so and changes
    nothing, a used or foreign directory is refused in one sentence before the model
    loads, and --overwrite starts it again."""
    sft = ["llm", "sft", "--model", "tiny:nano", "--steps", "1", "--set", "eval_size=2"]
    sft += ["--no-progress"]
    out = tmp_path / "sft"
    assert main([*sft, "--out", str(out)]) == 0
    before = _files(out)
    capsys.readouterr()
    assert main(["llm", "sft", "--resume", str(out), "--no-progress"]) == 0
    assert "is a finished run (1 steps): nothing to resume" in capsys.readouterr().err
    assert main([*sft, "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "already holds a run (finished)" in line and f"llm sft --resume {out}" in line
    assert _files(out) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    assert main([*sft, "--out", str(mine)]) == 2
    assert "is not empty and holds no run" in _one_error_line(capsys.readouterr().err)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert main([*sft, "--out", str(out), "--overwrite", "--seed", "4"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 4


def test_a_directory_that_is_not_a_run_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.csv").write_text("my own numbers\n")
    (out / "notes.txt").write_text("keep me\n")
    assert main([*Q, "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "is not empty and holds no run" in line and "--overwrite" in line
    assert (out / "metrics.csv").read_text() == "my own numbers\n"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "notes.txt"]
    # --overwrite: the user says so; the files a run writes are replaced, the others stay
    assert main([*Q, "--out", str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "keep me\n"
    assert (out / "metrics.csv").read_text().startswith("step,")


def test_a_run_is_replaced_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*Q, "--out", str(out)]) == 0
    assert main(["eval", str(out), "--episodes", "1"]) == 0
    before = _files(out)
    capsys.readouterr()
    assert main([*Q, "--out", str(out), "--seed", "5"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "already holds a run (finished)" in line and f"--resume {out}" in line
    assert _files(out) == before
    assert main([*Q, "--out", str(out), "--seed", "5", "--overwrite"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 5
    assert not list(out.glob("eval-*.json"))  # the old run's files went with it
    assert main(["train", "--resume", str(out), "--overwrite"]) == 2
    assert "pass one" in _one_error_line(capsys.readouterr().err)


def test_overwrite_deletes_nothing_when_the_new_config_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*Q, "--out", str(out)]) == 0
    before = _files(out)
    assert main([*Q, "--out", str(out), "--overwrite", "--set", "gamma=2"]) == 2
    assert "gamma" in _one_error_line(capsys.readouterr().err)
    assert _files(out) == before


def test_eval_and_plot_never_overwrite_the_training_record(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*Q, "--out", str(out)]) == 0
    summary, curve = (out / "summary.json").read_bytes(), (out / "learning_curve.png").read_bytes()
    assert main(["eval", str(out), "--episodes", "5"]) == 0
    assert main(["eval", str(out), "--episodes", "3"]) == 0
    evals = sorted(out.glob("eval-*.json"))
    assert [json.loads(p.read_text())["eval_episodes"] for p in evals] == [5, 3]
    capsys.readouterr()
    assert main(["plot", str(out)]) == 0
    plotted = capsys.readouterr().out.strip()
    assert plotted.startswith(str(out / "learning_curve-")) and plotted.endswith(".png")
    assert (out / "summary.json").read_bytes() == summary
    assert (out / "learning_curve.png").read_bytes() == curve


def test_a_failing_reward_at_step_1_leaves_a_run_that_resumes(tmp_path, monkeypatch):
    """An LLM stage whose reward raises before its first checkpoint: one sentence; once
    the reward is fixed, --resume runs it from step 0 (no need to delete anything)."""
    out = tmp_path / "grpo"
    ov = {"rollout_size": 8, "group_size": 4, "eval_every": 0, "eval_size": 8}
    ov["reward"] = f"{__name__}:reward_broken_until_fixed"
    kw = dict(model="tiny:nano", task="arithmetic", steps=2, progress=False)
    _FIXED["ok"] = False
    with pytest.raises(RLFoundryError, match="reward_broken_until_fixed' raised"):
        api.train("llm-grpo", out=out, overrides=ov, **kw)
    assert (out / "config.yaml").exists() and not (out / CHECKPOINT).exists()
    _FIXED["ok"] = True
    summary = api.train(resume=out, progress=False)
    assert summary["status"] == "finished" and summary["steps"] == 2
    ref = api.train("llm-grpo", out=tmp_path / "ref", overrides=ov, **kw)
    assert ref["status"] == "finished"
    a, b = (
        load_checkpoint_file(out / CHECKPOINT)[0],
        load_checkpoint_file(tmp_path / "ref" / CHECKPOINT)[0],
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


_FIXED = {"ok": False}


def reward_broken_until_fixed(prompt: str, completion: str) -> float:
    if not _FIXED["ok"]:
        raise KeyError("label")
    return float(len(completion) % 3 == 0)


# ---------------------------------------------------------------------- tuned configs


def test_the_tuned_config_used_is_named_on_the_console_and_in_config_yaml(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "qlearning", "--env", GRID, "--steps", "100", "--out", str(out)]) == 0
    assert "tuned config: configs/qlearning/rlfoundry_GridWorld-v0.yaml" in capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["tuned_config"] == "configs/qlearning/rlfoundry_GridWorld-v0.yaml"
    assert saved["q_init"] == 1.0  # from the tuned file


def test_a_tuned_config_is_not_applied_to_other_env_kwargs(tmp_path, capsys):
    out = tmp_path / "slippery"
    argv = ["train", "qlearning", "--env", GRID, "--steps", "100", "--out", str(out)]
    assert main([*argv, "--set", "env_kwargs={slip: 0.2}"]) == 0
    err = capsys.readouterr().err
    assert "note: not using the tuned config configs/qlearning/rlfoundry_GridWorld-v0.yaml" in err
    assert "tuned for env_kwargs {}" in err and "'slip': 0.2" in err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert "tuned_config" not in saved and saved["q_init"] == 0.0  # the defaults
    # a kwarg the file declares free keeps it (any pole length)
    found = rundir.find_tuned("ppo", "rlfoundry/CartPole-v1", {"pole_length": 0.5})
    assert found.path == "configs/ppo/rlfoundry_CartPole-v1.yaml" and found.values


def test_no_tuned_starts_from_the_defaults(tmp_path, capsys):
    out = tmp_path / "plain"
    argv = ["train", "qlearning", "--env", GRID, "--steps", "100", "--out", str(out)]
    assert main([*argv, "--no-tuned"]) == 0
    assert "tuned config" not in capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert "tuned_config" not in saved and saved["q_init"] == 0.0 and saved["total_steps"] == 100


def test_solve_takes_env_kwargs(capsys):
    assert main(["solve", GRID, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["solve", GRID, "--json", "--set", "env_kwargs={slip: 0.2}"]) == 0
    slippery = json.loads(capsys.readouterr().out)
    assert slippery["env_kwargs"] == {"slip": 0.2}
    assert slippery["optimal_return"] < plain["optimal_return"]
    assert main(["solve", GRID, "--set", "gamma=0.5"]) == 2
    assert "solve takes only --set env_kwargs" in _one_error_line(capsys.readouterr().err)
    assert main(["solve", GRID, "--set", "env_kwargs=[1, 2]"]) == 2
    assert "needs a mapping" in _one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------------- LLM stages


@pytest.mark.parametrize(
    "name,overrides",
    [
        ("llm-dpo", {"model": "tiny", "batch_size": 8}),
        ("llm-reward-model", {"batch_size": 8}),
    ],
)
def test_eval_every_0_means_at_the_end(tmp_path, name, overrides):
    out = tmp_path / name
    summary = api.train(
        name, steps=2, out=out, overrides={**overrides, "eval_every": 0}, progress=False
    )
    assert summary["status"] == "finished"
    rows = [r.split(",") for r in (out / "metrics.csv").read_text().splitlines()]
    col = rows[0].index(next(h for h in rows[0] if h.startswith("eval_")))
    evaluated = {int(r[0]): r[col] != "" for r in rows[1:] if r[0] != "0"}
    assert evaluated == {1: False, 2: True}


def test_pipeline_refuses_a_used_directory_and_resumes(tmp_path, capsys):
    from rlfoundry.llm.pipeline import run_pipeline

    out = tmp_path / "pipe"
    kw = dict(
        task="arithmetic", out=out, progress=False,
        pretrain_overrides={"total_steps": 2},
        sft_overrides={"total_steps": 2, "eval_size": 4},
        grpo_overrides={"total_steps": 1, "rollout_size": 8, "group_size": 4, "eval_size": 8,
                        "minibatch_size": 0, "update_epochs": 1,
                        "reward": [f"{__name__}:reward_broken_until_fixed"]},
    )  # fmt: skip
    _FIXED["ok"] = False
    with pytest.raises(RLFoundryError, match="reward_broken_until_fixed"):
        run_pipeline(**kw)
    sft_ckpt = (out / "sft" / CHECKPOINT).stat().st_mtime_ns
    capsys.readouterr()
    assert main(["llm", "pipeline", "--out", str(out), "--no-progress"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "already holds a pipeline" in line and f"rlfoundry llm pipeline --resume {out}" in line
    _FIXED["ok"] = True
    assert main(["llm", "pipeline", "--resume", str(out), "--no-progress"]) == 0
    assert "held-out exact match" in capsys.readouterr().out
    assert (out / "sft" / CHECKPOINT).stat().st_mtime_ns == sft_ckpt  # finished: not redone
    result = json.loads((out / "pipeline.json").read_text())
    assert result["task"] == "arithmetic" and 0 <= result["accuracy_after"] <= 1
    assert json.loads((out / "grpo" / "summary.json").read_text())["status"] == "finished"
    before = _files(out)
    assert main(["llm", "pipeline", "--resume", str(out), "--no-progress"]) == 0
    assert "is a finished pipeline" in capsys.readouterr().err
    assert _files(out) == before
    assert main(["llm", "pipeline", "--resume", str(out), "--overwrite"]) == 2
    assert "pass one" in _one_error_line(capsys.readouterr().err)
    run_pipeline(**kw, overwrite=True)  # --overwrite: every stage again
    assert (out / "sft" / CHECKPOINT).stat().st_mtime_ns != sft_ckpt
    assert json.loads((out / "pipeline.json").read_text())["task"] == "arithmetic"
