"""rlfoundry/CartPole-v1: Gymnasium's CartPole with a pole_length keyword."""

from __future__ import annotations

import numpy as np
import pytest

from rlfoundry.envs.evaluation import make_env
from rlfoundry.errors import EnvError


def _rollout(env, seed: int, steps: int = 40) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for t in range(steps):
        obs, _, term, trunc, _ = env.step(t % 3 % 2)  # 0 1 0 0 1 0 ...
        out.append(obs)
        if term or trunc:
            break
    return np.stack(out)


def test_default_pole_is_gymnasiums_cartpole():
    ours, theirs = make_env("rlfoundry/CartPole-v1"), make_env("CartPole-v1")
    assert ours.spec.max_episode_steps == theirs.spec.max_episode_steps == 500
    assert ours.spec.reward_threshold == 475.0
    np.testing.assert_array_equal(_rollout(ours, 3), _rollout(theirs, 3))


def test_pole_length_sets_half_length_and_moment_consistently():
    env = make_env("rlfoundry/CartPole-v1", pole_length=2.0)
    u = env.unwrapped
    assert u.length == 1.0 and u.polemass_length == pytest.approx(u.masspole * 1.0)
    # Same physics as Gymnasium's env with its half-length set by hand.
    ref = make_env("CartPole-v1").unwrapped
    ref.length, ref.polemass_length = 1.0, ref.masspole * 1.0
    a, b = _rollout(env, 5), _rollout(ref, 5)
    np.testing.assert_allclose(a, b)
    # ... and different from the default pole: a long pole falls more slowly.
    default = _rollout(make_env("rlfoundry/CartPole-v1"), 5)
    n = min(len(a), len(default))
    assert n > 10 and not np.allclose(a[5:n, 2], default[5:n, 2])


def test_bad_pole_length_is_one_clear_error():
    with pytest.raises(EnvError, match="pole_length must be a positive"):
        make_env("rlfoundry/CartPole-v1", pole_length=0.0)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_shipped_configs_equal_cartpoles(algo):
    """configs/ALGO/rlfoundry_CartPole-v1.yaml is a copy of CartPole-v1.yaml: keep them equal."""
    from rlfoundry.api import tuned_config

    assert tuned_config(algo, "rlfoundry/CartPole-v1") == tuned_config(algo, "CartPole-v1") != {}
