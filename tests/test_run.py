from __future__ import annotations

import csv
import random
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlfoundry import registry
from rlfoundry.envs.replay import ActionLog
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime import rundir
from rlfoundry.runtime.distributed import Dist
from rlfoundry.runtime.run import CHECKPOINT, Run, load_checkpoint_file


def rows(path):
    with open(path / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_metrics_csv_grows_columns(tmp_path):
    with Run(tmp_path, 100, progress=False) as run:
        run.log(1, episode_return=1.0)
        run.log(2, loss=0.5)
        run.log(3, episode_return=2.0, loss=0.25)
    got = rows(tmp_path)
    assert list(got[0]) == ["step", "episode_return", "loss"]
    assert [r["step"] for r in got] == ["1", "2", "3"]
    assert got[1]["episode_return"] == "" and got[1]["loss"] == "0.5"
    assert any((tmp_path / "tb").iterdir())


def test_checkpoint_round_trip_restores_rng(tmp_path):
    with Run(tmp_path, 100, progress=False) as run:
        torch.manual_seed(3)
        np.random.seed(4)
        random.seed(5)
        run.save_checkpoint(
            7, {"q": np.arange(6.0).reshape(2, 3), "w": torch.ones(2)}, {"episode": 3}
        )
        expected = (torch.rand(2), np.random.rand(), random.random())
        run.log(5, x=1.0)
        run.log(9, x=2.0)
    assert (tmp_path / CHECKPOINT).exists()
    assert not list(tmp_path.glob("*.tmp"))
    with Run(tmp_path, 100, resume=True, progress=False) as run:
        step, tensors, state = run.load_checkpoint()
        assert step == 7 and state["episode"] == 3
        assert torch.equal(tensors["q"], torch.arange(6.0, dtype=torch.float64).reshape(2, 3))
        assert torch.equal(torch.rand(2), expected[0])
        assert np.random.rand() == expected[1] and random.random() == expected[2]
    # rows logged after the checkpoint are dropped so the resumed log matches an uninterrupted one
    assert [r["step"] for r in rows(tmp_path)] == ["5"]


def test_stop_at_step_marks_interrupted(tmp_path):
    with Run(tmp_path, 100, progress=False, stop_at_step=10) as run:
        assert not run.should_stop(9)
        assert run.should_stop(10) and run.interrupted and run.checkpoint_due(10)


def test_load_checkpoint_file_missing(tmp_path):
    assert load_checkpoint_file(tmp_path / CHECKPOINT) is None


def test_action_log_replay_restores_exact_env_state():
    env = ActionLog(gym.make("FrozenLake-v1"), seed=11)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    for _ in range(300):
        obs, _, term, trunc, _ = env.step(int(rng.integers(4)))
        if term or trunc:
            obs, _ = env.reset()
    log = env.state_arrays()["replay/actions"]
    future = []
    for _ in range(50):
        o, r, term, trunc, _ = env.step(1)
        future.append((o, r, term, trunc))
        if term or trunc:
            env.reset()

    twin = ActionLog(gym.make("FrozenLake-v1"), seed=11)
    again, _ = twin.restore(log)
    assert again == obs
    replayed = []
    for _ in range(50):
        o, r, term, trunc, _ = twin.step(1)
        replayed.append((o, r, term, trunc))
        if term or trunc:
            twin.reset()
    assert replayed == future


# ---------------------------------------------------------------------- the opener (rundir)


@dataclass
class _Cfg:
    total_steps: int = 10
    seed: int = 0


def test_open_run_writes_config_yaml_and_refuses_an_existing_run(tmp_path):
    from rlfoundry.runtime.config import load_yaml

    out = tmp_path / "run"
    with pytest.raises(RLFoundryError, match=f"Cannot resume: '{out}' has no {CHECKPOINT}"):
        rundir.open_run(out, "qlearning", _Cfg(), resume=True)
    with rundir.open_run(out, "qlearning", _Cfg(total_steps=7), progress=False) as run:
        assert run.total_steps == 7 and run.path == out
    saved = load_yaml(out / "config.yaml")
    assert list(saved) == ["algo", "total_steps", "seed", "rlfoundry_version"]
    assert saved["algo"] == "qlearning" and saved["total_steps"] == 7
    with pytest.raises(RLFoundryError, match="already holds a run; resume it with --resume"):
        rundir.open_run(out, "qlearning", _Cfg())
    assert rundir.read_saved(out) == ("qlearning", saved)


def test_only_rank_zero_writes(tmp_path):
    out = tmp_path / "run"
    with rundir.open_run(out, "qlearning", _Cfg(), d=Dist(rank=1, world=2)) as run:
        run.log(1, loss=0.5)
    assert run.path == out / ".rank1" and not (out / "config.yaml").exists()
    assert not (out / ".rank1" / "tb").exists()


def test_read_saved_knows_old_llm_runs_and_missing_ones(tmp_path):
    (tmp_path / "config.yaml").write_text("stage: reward-model\nsteps: 3\n")
    name, data = rundir.read_saved(tmp_path)
    assert name == "llm-reward-model" and data["steps"] == 3
    with pytest.raises(RLFoundryError, match="Cannot resume: .* does not exist"):
        rundir.read_saved(tmp_path / "nope")


def test_warm_starts_are_the_registry_entries_that_say_so(tmp_path):
    allowed = [e.name for e in registry.REGISTRY.values() if e.warm_start]
    assert allowed == ["ppo", "a2c", "dqn"]
    with pytest.raises(ConfigError, match="--init-from works with ppo, a2c, dqn, not vpg"):
        rundir.check_init_from(tmp_path, "vpg")
    with pytest.raises(ConfigError, match="not a run directory"):
        rundir.check_init_from(tmp_path, "ppo")
