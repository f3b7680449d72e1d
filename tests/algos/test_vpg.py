"""VPG / REINFORCE: the weights of seed 003 and its variants against hand values, the
estimator against a hand-derived gradient, exact resume (Discrete and Box), env and
config errors, CLI smoke runs, and a CartPole learning test."""

from __future__ import annotations

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from trivial import assert_trivial_fails

from rlfoundry import api
from rlfoundry.algos.deep import vpg
from rlfoundry.cli.main import main
from rlfoundry.core import policy_gradient_loss
from rlfoundry.errors import ConfigError, EnvError
from rlfoundry.runtime.config import describe, load_yaml
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file

torch.set_num_threads(1)

TINY = {"batch_steps": 200, "hidden": [8], "value_iters": 3}


# --------------------------------------------------------------------------- weights


def test_weights_are_the_whole_return_by_default():
    rew = np.array([1.0, 2.0, 3.0])
    w = vpg.episode_weights(rew, vpg.Config())
    torch.testing.assert_close(w, torch.full((3,), 6.0))  # R(tau) at every step
    w = vpg.episode_weights(rew, vpg.Config(gamma=0.5))
    torch.testing.assert_close(w, torch.full((3,), 1.0 + 0.5 * 2.0 + 0.25 * 3.0))


def test_reward_to_go_and_baseline_weights():
    rew = np.array([1.0, 2.0, 3.0])
    cfg = vpg.Config(reward_to_go=True)
    torch.testing.assert_close(vpg.episode_weights(rew, cfg), torch.tensor([6.0, 5.0, 3.0]))
    cfg = vpg.Config(reward_to_go=True, baseline=True)
    val = torch.tensor([1.0, 1.0, 4.0])
    torch.testing.assert_close(vpg.episode_weights(rew, cfg, val), torch.tensor([5.0, 4.0, -1.0]))


def test_truncated_episode_bootstraps_the_reward_to_go():
    # gamma 0.5, V(s_T) = 8: G_2 = 3 + 0.5 * 8 = 7, G_1 = 2 + 3.5 = 5.5, G_0 = 1 + 2.75 = 3.75
    cfg = vpg.Config(reward_to_go=True, baseline=True, gamma=0.5)
    w = vpg.episode_weights(np.array([1.0, 2.0, 3.0]), cfg, torch.zeros(3), bootstrap=8.0)
    torch.testing.assert_close(w, torch.tensor([3.75, 5.5, 7.0]))
    # terminated (no bootstrap): plain discounted reward-to-go
    w = vpg.episode_weights(np.array([1.0, 2.0, 3.0]), cfg, torch.zeros(3))
    torch.testing.assert_close(w, torch.tensor([2.75, 3.5, 3.0]))


def test_loss_gradient_is_seed_003s_estimator():
    """g_hat = 1/|D| sum_tau sum_t grad log pi(a_t|s_t) R(tau), by hand for a softmax
    policy with logits theta (no state): grad log pi(a) = onehot(a) - softmax(theta)."""
    theta = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
    episodes = [([0, 2], 5.0), ([1, 1, 0], -2.0)]  # (actions, R(tau))
    logp = torch.cat([torch.log_softmax(theta, 0)[torch.tensor(a)] for a, _ in episodes])
    weights = torch.cat([torch.full((len(a),), r) for a, r in episodes])
    policy_gradient_loss(logp, weights, num_episodes=len(episodes)).backward()
    p = torch.softmax(theta.detach(), 0)
    g_hat = sum(r * (torch.eye(3)[a] - p) for acts, r in episodes for a in acts) / 2
    torch.testing.assert_close(-theta.grad, g_hat)


def test_gumbel_max_sampling_matches_the_softmax():
    cfg = vpg.Config(hidden=(4,))
    pi = vpg.Policy(cfg, 2, gym.spaces.Discrete(3))
    with torch.no_grad():
        pi.net[-1].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
        pi.net[-1].weight.zero_()
    rng = np.random.default_rng(0)
    x = np.zeros(2, np.float32)
    counts = np.bincount([int(pi.sample(x, rng)) for _ in range(20_000)], minlength=3)
    expected = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0).numpy()
    np.testing.assert_allclose(counts / 20_000, expected, atol=0.015)


# --------------------------------------------------------------------------- resume


def _metrics(path):
    with open(path / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "sps"} for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    "env_id,extra",
    [
        ("CartPole-v1", {"reward_to_go": True, "baseline": True, "gamma": 0.99}),
        ("Pendulum-v1", {}),  # Box actions, every episode truncated at 200
    ],
)
def test_resume_gives_identical_parameters(tmp_path, env_id, extra):
    kw = dict(env=env_id, steps=1600, seed=2, progress=False, evaluate_after=False)
    cfg = {**TINY, **extra}
    api.train("vpg", out=tmp_path / "a", overrides=cfg, **kw)
    s = api.train("vpg", out=tmp_path / "b", overrides=cfg, stop_at_step=700, **kw)
    assert s["status"] == "interrupted" and 700 <= s["steps"] < 1600
    s = api.train(resume=tmp_path / "b", progress=False, evaluate_after=False)
    assert s["status"] == "finished"
    a, sa = load_checkpoint_file(tmp_path / "a" / CHECKPOINT)
    b, sb = load_checkpoint_file(tmp_path / "b" / CHECKPOINT)
    assert set(a) == set(b) and sa["epoch"] == sb["epoch"] >= 3
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert sa["rng"] == sb["rng"]
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")


# --------------------------------------------------------------------------- errors


class DictObs(gym.Env):
    observation_space = gym.spaces.Dict({"x": gym.spaces.Discrete(2)})
    action_space = gym.spaces.MultiBinary(2)


def test_unsupported_spaces_are_clear_errors():
    with pytest.raises(EnvError, match="Discrete or Box actions"):
        vpg.check_env(DictObs())
    env = DictObs()
    env.action_space = gym.spaces.Discrete(2)
    with pytest.raises(EnvError, match="FlattenObservation"):
        vpg.check_env(env)


def test_baseline_needs_reward_to_go():
    with pytest.raises(ConfigError, match="reward_to_go"):
        # the shipped CartPole config turns both on, so switch reward_to_go off explicitly
        api.resolve_config("vpg", overrides={"baseline": True, "reward_to_go": False})
    with pytest.raises(ConfigError, match="batch_steps"):
        api.resolve_config("vpg", overrides={"batch_steps": 0})


def test_every_config_field_has_a_docstring():
    assert all(doc for *_, doc in describe(vpg.Config))


# --------------------------------------------------------------------------- CLI


def test_cli_train_eval_smoke(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "vpg", "--env", "CartPole-v1", "--steps", "500", "--out", str(out)]
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    sets += ["--set", "eval_episodes=2", "--set", "render_video=true"]
    assert main([*argv, *sets, "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["eval_episodes"] == 2
    assert (out / "eval.gif").read_bytes()[:6] == b"GIF89a"  # --set render_video=true
    assert main(["eval", str(out), "--episodes", "2"]) == 0
    assert main(["list", "vpg"]) == 0
    assert "reward_to_go" in capsys.readouterr().out


def test_box_actions_train_and_evaluate(tmp_path):
    s = api.train(
        "vpg",
        env="Pendulum-v1",
        steps=400,
        out=tmp_path / "p",
        progress=False,
        overrides={**TINY, "eval_episodes": 1},
    )
    assert s["status"] == "finished" and np.isfinite(s["eval_mean_return"])
    _, cfg = api.resolve_config("vpg", config=load_yaml(tmp_path / "p" / "config.yaml"))
    act = vpg.load_policy(tmp_path / "p", cfg)(np.zeros(3, np.float32))
    assert act.shape == (1,) and -2.0 <= float(act[0]) <= 2.0


# --------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_vpg_solves_cartpole(tmp_path):
    """Budget: 250,000 env steps (50 batches of >= 5,000 steps), the shipped config
    (configs/vpg/CartPole-v1.yaml: reward-to-go with a learned baseline). Seed 0, the
    first tried: the deterministic policy at the end averages >= 475 over 20 episodes."""
    s = api.train("vpg", env="CartPole-v1", seed=0, out=tmp_path / "cp", progress=False)
    assert s["eval_mean_return"] >= 475, s
    assert_trivial_fails(475, "CartPole-v1", episodes=20)  # the best constant and random fail it
