from __future__ import annotations

import csv
import random
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlfoundry import registry
from rlfoundry.envs.evaluation import eval_seed, make_env
from rlfoundry.envs.replay import ActionLog
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime import rundir
from rlfoundry.runtime.callbacks import Callback, Evaluate, RecordVideo, StartFrom
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


# --------------------------------------------------------------------------- callbacks


class _Recorder(Callback):
    """Writes down every hook the Run calls, and asks for a checkpoint at step 5."""

    def __init__(self):
        self.calls = []

    def on_start(self, run, modules, stats):
        self.calls.append(("start", sorted(modules)))

    def checkpoint_due(self, step):
        return step == 5

    def on_checkpoint(self, run, step, tensors, state):
        self.calls.append(("checkpoint", step, state["step"]))

    def on_end(self, run):
        self.calls.append(("end", run.step))


def test_run_calls_its_callbacks_in_order(tmp_path):
    rec = _Recorder()
    with Run(tmp_path, 10, progress=False, tensorboard=False, callbacks=[rec]) as run:
        run.checkpoint_interval_s = 1e9
        assert not run.warm_start({"q": np.zeros((2, 2))})  # no init_from: nothing loaded
        assert run.checkpoint_due(1)  # a fresh run's first chance: always
        run.save_checkpoint(1, {"q": np.zeros(2)})
        assert [run.checkpoint_due(s) for s in (4, 5, 6)] == [False, True, False]
        run.save_checkpoint(5, {"q": np.zeros(2)})
        run.progress(10)
    assert rec.calls == [("start", ["q"]), ("checkpoint", 1, 1), ("checkpoint", 5, 5), ("end", 10)]


def test_no_end_hook_for_an_interrupted_run_or_an_error(tmp_path):
    rec = _Recorder()
    with Run(tmp_path / "a", 10, progress=False, stop_at_step=3, callbacks=[rec]) as run:
        run.should_stop(3)
    with pytest.raises(RuntimeError), Run(tmp_path / "b", 10, progress=False, callbacks=[rec]):
        raise RuntimeError("boom")
    assert rec.calls == []
    with Run(tmp_path / "a", 10, resume=True, progress=False, callbacks=[rec]) as run:
        assert not run.warm_start({"q": np.zeros(2)})  # a resumed run does not start again
    assert rec.calls == [("end", 0)]


def test_evaluate_scores_at_each_interval_and_the_end(tmp_path):
    """Checkpoints at steps 3, 6, 8 (the loop can stop only there), every=4: scores at 6
    (first at or after 4) and at 8 (the last checkpoint), plus step 0 from on_start;
    keep_best copies the checkpoint of the best score."""
    ev = Evaluate(
        4,
        score=lambda run, step, tensors: float(tensors["w"].sum()),
        start=lambda modules, stats: -1.0,
        keep_best=True,
    )
    with Run(tmp_path, 8, progress=False, tensorboard=False, callbacks=[ev]) as run:
        run.warm_start({})
        for step, w in ((3, 1.0), (6, 5.0), (8, 2.0)):
            assert run.checkpoint_due(step)  # 3: a fresh run's first chance; 6, 8: the interval
            run.save_checkpoint(step, {"w": torch.full((2,), w)})
    assert ev.steps == [0, 6, 8] and ev.values == [-1.0, 10.0, 4.0]
    best, _ = load_checkpoint_file(tmp_path / "best.safetensors")
    assert torch.equal(best["w"], torch.full((2,), 5.0))


def test_evaluate_scores_the_last_checkpoint_at_the_end(tmp_path):
    """A run whose last update ends short of total_steps (PPO's whole segments) is still
    scored at its last checkpoint, once, when it finishes."""
    ev = Evaluate(100, score=lambda run, step, tensors: step)
    with Run(tmp_path, 1000, progress=False, tensorboard=False, callbacks=[ev]) as run:
        run.save_checkpoint(100, {"w": torch.zeros(1)})
        run.save_checkpoint(960, {"w": torch.zeros(1)})
        assert ev.steps == [100, 960]
        run.save_checkpoint(990, {"w": torch.zeros(1)})  # not a multiple: scored at the end
        assert ev.steps == [100, 960]
    assert ev.steps == [100, 960, 990]


def test_evaluate_leaves_the_training_random_stream_alone(tmp_path):
    """A score that builds a network (draws from torch's generator) or draws from NumPy's
    and Python's global generators does not move them for the training."""

    def noisy(run, step, tensors):
        torch.nn.Linear(3, 3)
        return np.random.rand() + random.random()

    ev = Evaluate(1, score=noisy)
    with Run(tmp_path, 10, progress=False, tensorboard=False, callbacks=[ev]) as run:
        torch.manual_seed(1), np.random.seed(1), random.seed(1)
        run.save_checkpoint(1, {"w": torch.zeros(1)})
        got = (torch.rand(1), np.random.rand(), random.random())
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    assert got == (torch.rand(1), np.random.rand(), random.random())


def test_start_from_sets_a_fresh_table_and_refuses_another_shape(tmp_path):
    q = np.zeros((3, 2))
    with Run(
        tmp_path / "a", 10, progress=False, callbacks=[StartFrom({"q": np.ones((3, 2))})]
    ) as run:
        run.warm_start({"q": q})
    assert (q == 1).all()
    with (
        pytest.raises(ConfigError, match="shape"),
        Run(tmp_path / "b", 10, progress=False, callbacks=[StartFrom({"q": np.ones(4)})]) as run,
    ):
        run.warm_start({"q": q})


def test_record_video_writes_a_gif_after_training(tmp_path):
    rec = RecordVideo(
        lambda path: lambda obs: 0,
        lambda: make_env("CartPole-v1", render_mode="rgb_array"),
        seed=eval_seed(0),
    )
    with Run(tmp_path, 10, progress=False, tensorboard=False, callbacks=[rec]):
        pass
    assert (tmp_path / "eval.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    assert eval_seed(3) == 10_003


# ---------------------------------------------------------------------- the opener (rundir)


@dataclass
class _Cfg:
    total_steps: int = 10
    seed: int = 0


def test_open_run_writes_config_yaml_and_refuses_an_existing_run(tmp_path):
    from rlfoundry.runtime.config import load_yaml

    out = tmp_path / "run"
    with pytest.raises(RLFoundryError, match=f"Cannot resume: '{out}' holds no run"):
        rundir.open_run(out, "qlearning", _Cfg(), resume=True)
    with rundir.open_run(out, "qlearning", _Cfg(total_steps=7), progress=False) as run:
        assert run.total_steps == 7 and run.path == out
    saved = load_yaml(out / "config.yaml")
    assert list(saved) == ["algo", "total_steps", "seed", "rlfoundry_version"]
    assert saved["algo"] == "qlearning" and saved["total_steps"] == 7
    with pytest.raises(RLFoundryError, match="already holds a run .* resume it with `rlfoundry"):
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
    assert allowed == ["ppo", "a2c", "dqn", "sac", "td3"]
    with pytest.raises(
        ConfigError, match="--init-from works with ppo, a2c, dqn, sac, td3, not vpg"
    ):
        rundir.check_init_from(tmp_path, "vpg")
    with pytest.raises(ConfigError, match="not a run directory"):
        rundir.check_init_from(tmp_path, "ppo")


def test_tensorboard_gets_every_finite_scalar_of_a_log_row(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Run(tmp_path, 2, progress=False) as run:
        run.log(1, loss=0.5, reward=float("nan"), lr=1e-3)
        run.log(2, loss=0.25, reward=1.0, lr=1e-3)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    got = {k: [(e.step, e.value) for e in acc.Scalars(k)] for k in acc.Tags()["scalars"]}
    assert got == {
        "loss": [(1, 0.5), (2, 0.25)],
        "reward": [(2, 1.0)],  # nan is left out
        "lr": [(1, pytest.approx(1e-3)), (2, pytest.approx(1e-3))],
    }
