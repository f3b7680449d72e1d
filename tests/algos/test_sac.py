"""SAC: the learned temperature moves towards its entropy target, a fixed one stays put,
and the shipped Pendulum config learns (what SAC and TD3 share is tests/algos/test_offpolicy.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trivial import assert_trivial_fails

from rlfoundry import api
from rlfoundry.envs.evaluation import evaluate, make_env
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file

torch.set_num_threads(1)

TINY = {"hidden": [16, 16], "learning_starts": 100, "minibatch_size": 16, "log_every": 100}
BAR = -200.0  # the bar: mean deterministic eval return on Pendulum-v1


def _train(tmp_path, name, steps, **over):
    return api.train(
        "sac", env="Pendulum-v1", steps=steps, seed=0, out=tmp_path / name,
        progress=False, evaluate_after=False, overrides={**TINY, **over},
    )  # fmt: skip


@pytest.mark.parametrize(("target", "direction"), [(5.0, 1), (-50.0, -1)])
def test_auto_alpha_moves_towards_the_entropy_target(tmp_path, target, direction):
    """A 1-D tanh-Gaussian cannot reach entropy +5 (so alpha must rise) and easily exceeds
    -50 (so alpha must fall); 300 updates at learning rate 1e-3 move log alpha ~0.3."""
    s = _train(tmp_path, "r", 400, target_entropy=target, learning_rate=1e-3)
    assert s["n_updates"] == 300
    assert direction * np.log(s["alpha"]) > 0.1, s["alpha"]


def test_a_fixed_alpha_stays_and_has_no_optimiser(tmp_path):
    s = _train(tmp_path, "r", 300, ent_coef=0.05)
    assert s["alpha"] == pytest.approx(0.05)
    tensors, state = load_checkpoint_file(tmp_path / "r" / CHECKPOINT)
    assert "alpha_opt" not in state["optimizers"]
    assert not any(k.startswith("alpha_opt/") for k in tensors)


def test_constant_and_random_policies_fail_the_learning_bar():
    """The bar of the learning test means something: uniform random torques score about
    -1,100 on the same evaluation episodes (seeds 10,000+)."""
    env = make_env("Pendulum-v1")
    rng = np.random.default_rng(0)
    result = evaluate(lambda obs: rng.uniform(-2, 2, 1).astype(np.float32), env, 10, 10_000)
    assert result["eval_mean_return"] < BAR - 500
    # nor does any constant torque (-2, 0, +2) on the same episodes
    assert_trivial_fails(BAR - 500, "Pendulum-v1", episodes=10)


def test_sac_reaches_minus_200_on_pendulum_within_20k_steps(tmp_path):
    """Seed 0 with the shipped config (configs/sac/Pendulum-v1.yaml: the zoo's, on 64-64
    networks). Every 2,000 steps the run is stopped, the deterministic policy plays 10
    episodes (seeds 10,000+) and the run is resumed (exact resume: the same run as an
    uninterrupted one); it passes once a mean >= -200 is seen within 20k steps.

    How the bar and budget were set: the shipped config, seeds 0-4, evaluated the same way
    every 2k steps up to 20k (2026-12-03): every seed first reached >= -200 at 4k steps
    (-124.9, -124.9, -125.3, -188.7, -153.9) and ended at -108.5 to -122.0 at 20k (seed 4
    dipped to -697.5 at 10k and recovered). Uniform random torques score about -1,100
    (test_constant_and_random_policies_fail_the_learning_bar), so the bar cannot pass by chance.
    """
    out, means = tmp_path / "p", []
    for stop in range(2_000, 20_001, 2_000):
        if stop == 2_000:
            api.train("sac", env="Pendulum-v1", seed=0, out=out, progress=False, stop_at_step=stop)
        else:
            api.train(resume=out, progress=False, stop_at_step=stop, evaluate_after=False)
        means.append(
            api.evaluate_run(out, episodes=10, seed=10_000, write=False)["eval_mean_return"]
        )
        if means[-1] >= BAR:
            break
    assert max(means) >= BAR, f"deterministic eval every 2k steps: {means}"
