"""A2C: the update, exact resume, CLI smoke runs, learning."""

from __future__ import annotations

import json

import pytest
import torch
from trivial import assert_trivial_fails

from rlfoundry.algos.deep import a2c
from rlfoundry.api import resolve_config, train
from rlfoundry.cli.main import main
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file

torch.set_num_threads(1)


def test_config_mirrors_sb3_a2c_defaults():
    cfg = a2c.Config()
    assert (cfg.num_steps, cfg.learning_rate, cfg.gae_lambda, cfg.optimizer) == (
        5,
        7e-4,
        1.0,
        "rmsprop",
    )
    assert (cfg.rms_alpha, cfg.rms_eps, cfg.norm_adv) == (0.99, 1e-5, False)
    _, tuned = resolve_config("a2c", env="CartPole-v1")
    assert tuned.num_envs == 8


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_resume_is_exact(tmp_path, optimizer):
    kw = dict(
        env="CartPole-v1",
        steps=400,
        seed=2,
        progress=False,
        evaluate_after=False,
        overrides={"num_envs": 4, "num_steps": 5, "optimizer": optimizer, "norm_obs": True},
    )
    train("a2c", out=tmp_path / "a", **kw)
    s = train("a2c", out=tmp_path / "b", stop_at_step=200, **kw)
    assert s["status"] == "interrupted" and s["steps"] == 200
    train(resume=tmp_path / "b", progress=False, evaluate_after=False)
    ta, _ = load_checkpoint_file(tmp_path / "a" / CHECKPOINT)
    tb, _ = load_checkpoint_file(tmp_path / "b" / CHECKPOINT)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_cli_train_eval_and_gif(tmp_path, env_id):
    out = tmp_path / "run"
    argv = ["train", "a2c", "--env", env_id, "--steps", "400", "--out", str(out)]
    argv += ["--no-progress", "--set", "render_video=true", "--set", "eval_episodes=2"]
    argv += ["--set", "num_envs=2"]  # Pendulum episodes (200 steps) finish within 400
    assert main(argv) == 0
    assert (out / "eval.gif").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["eval_episodes"] == 2
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("episode_return", "policy_loss", "value_loss", "entropy", "explained_variance"):
        assert key in header, key
    assert main(["eval", str(out), "--episodes", "1"]) == 0


@pytest.mark.slow
def test_a2c_solves_cartpole(tmp_path):
    """Tuned config (rl-zoo's: 8 envs x 5 steps, RMSprop 7e-4) on a budget of 200k steps
    instead of the zoo's 500k (the returns reach 500 by ~150k), seed 0: the first seed
    tried. Deterministic evaluation over 20 unseen episodes must average >= 475."""
    s = train("a2c", env="CartPole-v1", steps=200_000, seed=0, out=tmp_path / "r", progress=False)
    assert s["eval_mean_return"] >= 475, s
    assert_trivial_fails(475, "CartPole-v1", episodes=20)  # the best constant and random fail it
