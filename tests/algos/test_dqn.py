"""DQN: TD targets (truncation bootstraps, termination does not), replay memory, exact
resume, env and config errors, CLI smoke runs, and a CartPole learning test."""

from __future__ import annotations

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from trivial import assert_trivial_fails

from rlfoundry import api
from rlfoundry.algos.deep import dqn
from rlfoundry.cli.main import main
from rlfoundry.envs.evaluation import make_env
from rlfoundry.errors import ConfigError, EnvError
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file

torch.set_num_threads(1)

TINY = {  # a few seconds: small net, early and frequent updates
    "hidden": [16, 16],
    "learning_starts": 100,
    "minibatch_size": 16,
    "train_freq": 4,
    "gradient_steps": 2,
    "target_update_interval": 50,
    "log_every": 100,
}


class Counter(gym.Env):
    """obs = [t]; never terminates unless ``end_at`` is set; a TimeLimit truncates it."""

    observation_space = gym.spaces.Box(-1e6, 1e6, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, end_at: int | None = None) -> None:
        self.end_at = end_at

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        terminated = self.end_at is not None and self.t >= self.end_at
        return np.array([float(self.t)], np.float32), 1.0, terminated, False, {}


gym.register("rlfoundry_test/Counter-v0", entry_point=Counter, max_episode_steps=3)


def _const_net(values: list[float]) -> nn.Module:
    """Q(s, .) = values for every s."""
    net = nn.Linear(1, len(values))
    nn.init.zeros_(net.weight)
    with torch.no_grad():
        net.bias.copy_(torch.tensor(values))
    return net


# --------------------------------------------------------------------------- targets


def test_td_target_bootstraps_truncated_and_not_terminated():
    online, target = _const_net([5.0, 0.0]), _const_net([1.0, 3.0])
    rew = torch.tensor([1.0, 1.0])
    next_obs = torch.zeros(2, 1)
    # row 0: truncated by a time limit (terminated=False) -> bootstraps; row 1: terminated
    term = torch.tensor([False, True])
    y = dqn.td_target(online, target, rew, next_obs, term, 0.9, double_q=False)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 3.0, 1.0]))
    # Double DQN: the online net picks a' = 0, the target net values it at 1.0
    y = dqn.td_target(online, target, rew, next_obs, term, 0.9, double_q=True)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 1.0, 1.0]))
    assert not y.requires_grad


def test_truncated_transitions_are_stored_unterminated_with_their_last_obs(tmp_path):
    """Counter-v0 is cut at t=3 by its TimeLimit: the stored transition must have
    terminated=False and next_obs=[3] (the real last state, not the reset obs [0])."""
    api.train(
        "dqn",
        env="rlfoundry_test/Counter-v0",
        steps=7,
        out=tmp_path / "r",
        progress=False,
        overrides={"learning_starts": 1000},
        evaluate_after=False,
    )
    tensors, state = load_checkpoint_file(tmp_path / "r" / CHECKPOINT)
    assert state["buffer_size"] == 7
    obs = tensors["buffer/obs"][:, 0].tolist()
    next_obs = tensors["buffer/next_obs"][:, 0].tolist()
    assert obs == [0, 1, 2, 0, 1, 2, 0]
    assert next_obs == [1, 2, 3, 1, 2, 3, 1]
    assert not tensors["buffer/terminated"].any()


def test_terminated_transitions_are_stored_terminated(tmp_path):
    out = tmp_path / "r"
    api.train(
        "dqn",
        env="rlfoundry_test/Counter-v0",
        steps=5,
        out=out,
        progress=False,
        overrides={"learning_starts": 1000, "env_kwargs": {"end_at": 2}},
        evaluate_after=False,
    )
    tensors, _ = load_checkpoint_file(out / CHECKPOINT)
    assert tensors["buffer/terminated"].tolist() == [False, True, False, True, False]


def test_replay_buffer_is_a_ring():
    buf = dqn.ReplayBuffer(3, 1)
    for i in range(5):
        buf.add(np.array([i]), i % 2, float(i), np.array([i + 1]), i == 4)
    assert buf.size == 3 and buf.pos == 2
    assert sorted(buf.rew.tolist()) == [2.0, 3.0, 4.0]  # the two oldest were overwritten
    obs, act, rew, next_obs, term = (x[0] for x in buf.sample(64, np.random.default_rng(0)))
    assert obs.shape == (64, 1) and act.dtype == torch.int64
    torch.testing.assert_close(next_obs, obs + 1)
    assert set(rew.tolist()) <= {2.0, 3.0, 4.0}
    assert term.tolist() == [r == 4.0 for r in rew.tolist()]
    # n minibatches at once are the same draws as n calls
    many = buf.sample(8, np.random.default_rng(1), n=3)[2]
    rng = np.random.default_rng(1)
    assert torch.equal(many, torch.stack([buf.sample(8, rng)[2][0] for _ in range(3)]))


def test_target_update_hard_and_soft():
    a, b = _const_net([1.0, 2.0]), _const_net([3.0, 6.0])
    dqn.update_target(a, b, 0.5)
    torch.testing.assert_close(b.bias, torch.tensor([2.0, 4.0]))
    dqn.update_target(a, b, 1.0)
    assert torch.equal(b.bias, a.bias)


def test_epsilon_schedule():
    cfg = dqn.Config(total_steps=1000, exploration_fraction=0.1, epsilon_end=0.05)
    assert dqn.epsilon_at(cfg, 0) == 1.0
    assert dqn.epsilon_at(cfg, 50) == pytest.approx(0.525)
    assert dqn.epsilon_at(cfg, 100) == dqn.epsilon_at(cfg, 999) == 0.05


@pytest.mark.parametrize("gradient_steps,expected", [(-1, 25 * 4), (3, 25 * 3)])
def test_gradient_steps_per_rollout(tmp_path, gradient_steps, expected):
    """train_freq 4, learning_starts 100, 200 steps: rollouts end at steps 104, ..., 200
    (25 of them) with training; -1 means one gradient step per env step of the rollout,
    not every step since learning_starts (SB3)."""
    cfg = {**TINY, "learning_starts": 100, "gradient_steps": gradient_steps}
    api.train(
        "dqn",
        env="CartPole-v1",
        steps=200,
        out=tmp_path / "g",
        progress=False,
        overrides=cfg,
        evaluate_after=False,
    )
    _, state = load_checkpoint_file(tmp_path / "g" / CHECKPOINT)
    assert state["n_updates"] == expected


# --------------------------------------------------------------------------- resume


def _metrics(path):
    with open(path / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "sps"} for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    "extra",
    [{}, {"double_q": True, "tau": 0.5, "num_envs": 2, "max_grad_norm": 0.0}],
    ids=["dqn", "double-soft-2envs"],
)
def test_resume_gives_identical_parameters(tmp_path, extra):
    kw = dict(env="CartPole-v1", steps=1200, seed=3, progress=False, evaluate_after=False)
    cfg = {**TINY, **extra}
    api.train("dqn", out=tmp_path / "a", overrides=cfg, **kw)
    s = api.train("dqn", out=tmp_path / "b", overrides=cfg, stop_at_step=600, **kw)
    assert s["status"] == "interrupted" and s["steps"] == 600
    s = api.train(resume=tmp_path / "b", progress=False, evaluate_after=False)
    assert s["status"] == "finished" and s["steps"] == 1200
    a, sa = load_checkpoint_file(tmp_path / "a" / CHECKPOINT)
    b, sb = load_checkpoint_file(tmp_path / "b" / CHECKPOINT)
    assert set(a) == set(b)
    assert any(k.startswith("q/") for k in a) and sa["n_updates"] > 0
    for key in a:  # networks, target, Adam moments, replay memory, action logs, RNG
        assert torch.equal(a[key], b[key]), key
    assert sa["rng"] == sb["rng"] and sa["n_updates"] == sb["n_updates"]
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")


# --------------------------------------------------------------------------- errors


def test_box_actions_are_refused_before_any_work(tmp_path):
    env = make_env("Pendulum-v1")
    with pytest.raises(EnvError, match="use ppo"):
        dqn.check_env(env)
    with pytest.raises(EnvError, match="continuous actions"):
        api.train("dqn", env="Pendulum-v1", out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "key,value", [("tau", 0.0), ("gradient_steps", 0), ("buffer_size", 0), ("gamma", 1.5)]
)
def test_bad_config_values(key, value):
    with pytest.raises(ConfigError, match=key):
        api.resolve_config("dqn", overrides={key: value})


def test_every_config_field_has_a_docstring():
    from rlfoundry.runtime.config import describe

    assert all(doc for *_, doc in describe(dqn.Config))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "LunarLander-v3"])
def test_shipped_configs_are_valid(env_id):
    tuned = api.tuned_config("dqn", env_id)
    assert tuned, f"no tuned config for {env_id}"
    _, cfg = api.resolve_config("dqn", env=env_id)
    assert cfg.total_steps == tuned["total_steps"]


# --------------------------------------------------------------------------- CLI


def test_cli_train_eval_list_smoke(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "dqn", "--env", "CartPole-v1", "--steps", "400", "--out", str(out)]
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    sets += ["--set", "eval_episodes=2", "--set", "render_video=true"]
    assert main([*argv, *sets, "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["eval_episodes"] == 2
    assert (out / "learning_curve.png").exists()
    assert (out / "eval.gif").read_bytes()[:6] == b"GIF89a"  # --set render_video=true
    assert main(["eval", str(out), "--episodes", "2"]) == 0
    assert main(["list", "dqn"]) == 0
    assert "target_update_interval" in capsys.readouterr().out
    assert main(["train", "dqn", "--env", "Pendulum-v1", "--out", str(tmp_path / "p")]) == 2
    assert "use ppo" in capsys.readouterr().err


def test_discrete_observations_are_one_hot(tmp_path):
    s = api.train(
        "dqn",
        env="FrozenLake-v1",
        steps=300,
        out=tmp_path / "f",
        progress=False,
        overrides={**TINY, "eval_episodes": 2},
    )
    assert s["status"] == "finished" and s["eval_episodes"] == 2
    tensors, _ = load_checkpoint_file(tmp_path / "f" / CHECKPOINT)
    # FrozenLake's 16 cells enter the network as 16 one-hot inputs ...
    first = next(v for k, v in tensors.items() if k.startswith("q/") and v.ndim == 2)
    assert first.shape[1] == 16, first.shape
    # ... and every stored transition's observations are one-hot rows of width 16
    for key in ("buffer/obs", "buffer/next_obs"):
        x = tensors[key].numpy()
        assert x.shape == (300, 16) and set(np.unique(x)) == {0.0, 1.0}
        assert (x.sum(1) == 1).all()
    # episodes start in cell 0, and the walk reaches other cells
    obs = tensors["buffer/obs"].numpy().argmax(1)
    assert obs[0] == 0 and len(set(obs.tolist())) > 3


# --------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_dqn_reaches_475_on_cartpole(tmp_path):
    """Seed 0 (the first tried) with the shipped config (rl-baselines3-zoo's, 50k steps).

    "Reaches within the budget" is checked the way benchmarks/classic.py checks it: every
    5,000 steps the run is stopped, the deterministic policy plays 10 episodes (seeds
    10,000+), and the run is resumed (exact resume: the same run as an uninterrupted one).
    It passes once a mean >= 475 is seen by 50k steps (within the brief's 100k).
    """
    out, means = tmp_path / "cp", []
    for stop in range(5_000, 50_001, 5_000):
        if stop == 5_000:
            api.train("dqn", env="CartPole-v1", seed=0, out=out, progress=False, stop_at_step=stop)
        else:
            api.train(resume=out, progress=False, stop_at_step=stop, evaluate_after=False)
        means.append(
            api.evaluate_run(out, episodes=10, seed=10_000, write=False)["eval_mean_return"]
        )
        if means[-1] >= 475:
            break
    assert max(means) >= 475, f"deterministic eval every 5k steps: {means}"
    assert_trivial_fails(475, "CartPole-v1", episodes=10)  # the best constant and random fail it
