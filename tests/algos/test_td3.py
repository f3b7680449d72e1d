"""TD3: delayed actor updates, exploration noise, and the shipped Pendulum config learns
(what SAC and TD3 share is tests/algos/test_offpolicy.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trivial import assert_trivial_fails

from rlfoundry import api
from rlfoundry.algos.deep import td3
from rlfoundry.envs.evaluation import evaluate, make_env
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file
from rlfoundry.runtime.torch_state import load_module_state

torch.set_num_threads(1)

TINY = {"hidden": [16, 16], "learning_starts": 100, "minibatch_size": 16, "log_every": 100}
BAR = -200.0  # the bar: mean deterministic eval return on Pendulum-v1


def _train(tmp_path, name, steps, **over):
    api.train(
        "td3", env="Pendulum-v1", steps=steps, seed=0, out=tmp_path / name,
        progress=False, evaluate_after=False, overrides={**TINY, **over},
    )  # fmt: skip
    return load_checkpoint_file(tmp_path / name / CHECKPOINT)


def test_the_actor_and_the_targets_move_only_every_policy_delay_steps(tmp_path):
    init, _ = _train(tmp_path, "init", 100)  # learning_starts 100: no update yet
    late, state = _train(
        tmp_path, "late", 300, policy_delay=1000
    )  # 200 critic steps, no actor step
    assert state["n_updates"] == 200
    for key in init:
        if key.split("/")[0] in ("actor", "actor_target", "critic_target"):
            assert torch.equal(init[key], late[key]), key
    assert not torch.equal(init["critic/weights.0"], late["critic/weights.0"])
    every, _ = _train(tmp_path, "every", 300, policy_delay=1)
    for key in ("actor/net.0.weight", "actor_target/net.0.weight", "critic_target/weights.0"):
        assert not torch.equal(init[key], every[key]), key
    # policy_delay 2: 100 actor steps in 200 updates, logged as such
    _train(tmp_path, "two", 300, log_every=300)
    rows = (tmp_path / "two" / "metrics.csv").read_text().splitlines()
    head, last = rows[0].split(","), rows[-1].split(",")
    assert float(last[head.index("n_updates")]) == 200 and last[head.index("actor_loss")]


@pytest.mark.parametrize(("noise", "same"), [(0.0, True), (0.5, False)])
def test_exploration_adds_noise_to_the_actor(tmp_path, noise, same):
    """learning_starts 0: the first action is the initial actor's (the first update comes
    after it, and moves only the critic with policy_delay 2), plus the exploration noise."""
    tensors, _ = _train(tmp_path, "r", 1, learning_starts=0, exploration_noise=noise)
    _, cfg = api.resolve_config("td3", overrides=TINY)
    actor = td3.Actor(3, 1, cfg.hidden)
    load_module_state("actor", actor, tensors)
    with torch.no_grad():
        mu = actor(tensors["buffer/obs"][:1])
    assert torch.equal(mu, tensors["buffer/act"][:1]) == same


def test_constant_and_random_policies_fail_the_learning_bar():
    env = make_env("Pendulum-v1")
    rng = np.random.default_rng(1)
    result = evaluate(lambda obs: rng.uniform(-2, 2, 1).astype(np.float32), env, 10, 10_000)
    assert result["eval_mean_return"] < BAR - 500
    # nor does any constant torque (-2, 0, +2) on the same episodes
    assert_trivial_fails(BAR - 500, "Pendulum-v1", episodes=10)


def test_td3_reaches_minus_200_on_pendulum_within_20k_steps(tmp_path):
    """Seed 0 with the shipped config (configs/td3/Pendulum-v1.yaml). Every 2,000 steps
    the run is stopped, the deterministic policy plays 10 episodes (seeds 10,000+) and the
    run is resumed (exact resume); it passes once a mean >= -200 is seen within 20k steps.

    How the bar and budget were set: the shipped config, seeds 0-4, evaluated the same way
    every 2k steps up to 20k (2026-12-03): seeds 0-3 first reached >= -200 at 6k steps
    (-153.0, -148.2, -160.8, -160.3), seed 4 at 8k (-117.7); all ended at -110.1 to -113.3
    at 20k (seed 4 dipped to -853 at 14k-16k and recovered). Uniform random torques score
    about -1,100 (test_constant_and_random_policies_fail_the_learning_bar).
    """
    out, means = tmp_path / "p", []
    for stop in range(2_000, 20_001, 2_000):
        if stop == 2_000:
            api.train("td3", env="Pendulum-v1", seed=0, out=out, progress=False, stop_at_step=stop)
        else:
            api.train(resume=out, progress=False, stop_at_step=stop, evaluate_after=False)
        means.append(
            api.evaluate_run(out, episodes=10, seed=10_000, write=False)["eval_mean_return"]
        )
        if means[-1] >= BAR:
            break
    assert max(means) >= BAR, f"deterministic eval every 2k steps: {means}"
