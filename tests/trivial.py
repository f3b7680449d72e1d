"""Trivial policies for learning tests: a learning bar means something only if the best
constant action and the uniformly random policy fail it (issue 18).

``trivial_returns`` plays each constant action (Discrete: every action; Box: the low end,
zero and the high end of the action box) and the random policy on the same seeded
episodes the learning tests evaluate on, and returns their mean episode returns."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rlfoundry.envs.evaluation import make_env


def _constants(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {f"always {a}": int(a) for a in range(space.start, space.start + space.n)}
    assert isinstance(space, gym.spaces.Box), space
    return {
        "always low": space.low.copy(),
        "always 0": np.zeros(space.shape, space.dtype),
        "always high": space.high.copy(),
    }


def trivial_returns(
    env_id: str, episodes: int = 10, seed: int = 10_000, **env_kwargs: Any
) -> dict[str, float]:
    """Mean return over ``episodes`` episodes (episode ``i`` resets with ``seed + i``) of
    every constant action and of the uniformly random policy (its sampler seeded too)."""
    env = make_env(env_id, **env_kwargs)
    try:
        policies: dict[str, Any] = dict(_constants(env.action_space))
        env.action_space.seed(seed)
        policies["random"] = None
        out = {}
        for name, act in policies.items():
            rets = []
            for i in range(episodes):
                env.reset(seed=seed + i)
                done, ret = False, 0.0
                while not done:
                    a = env.action_space.sample() if act is None else act
                    _, rew, terminated, truncated, _ = env.step(a)
                    ret += float(rew)
                    done = terminated or truncated
                rets.append(ret)
            out[name] = float(np.mean(rets))
        return out
    finally:
        env.close()


def assert_trivial_fails(bar: float, env_id: str, **kwargs: Any) -> dict[str, float]:
    """Assert that no constant action and not the random policy reach ``bar`` (a mean
    return to reach, higher is better); return their scores for the message."""
    scores = trivial_returns(env_id, **kwargs)
    assert max(scores.values()) < bar, (bar, scores)
    return scores
