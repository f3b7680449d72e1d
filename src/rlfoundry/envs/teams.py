"""Cooperative PettingZoo tasks (parallel API) for :mod:`rlfoundry.algos.multiagent.mappo`.

- :func:`make_team_env` builds ``mpe2/simple_spread_v3`` (3 agents cover 3 landmarks and
  avoid collisions; discrete actions, 25 steps, every agent gets the shared reward mixed
  with its own collision penalty).
- :class:`TeamEnv` is the whole team as one Gymnasium env: observations of all agents
  stacked ``[M, D]``, a MultiDiscrete joint action, and the team reward (the sum of the
  agents' rewards). It is registered under the same id so that ``rlfoundry train/eval``
  can build and check it, and so that a joint policy can be scored like any other.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlfoundry.errors import EnvError

TEAM_ENVS: list[str] = ["mpe2/simple_spread_v3"]


def make_team_env(env_id: str, **kwargs: Any) -> Any:
    """The PettingZoo parallel env for ``env_id`` (one of :data:`TEAM_ENVS`)."""
    if env_id not in TEAM_ENVS:
        raise EnvError(f"Unknown cooperative task '{env_id}'; use one of {', '.join(TEAM_ENVS)}.")
    try:
        from mpe2 import simple_spread_v3
    except ImportError:
        raise EnvError(
            f"'{env_id}' needs mpe2; install it with `pip install 'rlfoundry[beyond]'`."
        ) from None
    try:
        return simple_spread_v3.parallel_env(**kwargs)
    except TypeError as err:
        raise EnvError(f"Task '{env_id}' rejected its keyword arguments: {err}") from None


class TeamEnv(gym.Env):
    """A cooperative parallel env as one single-agent env over the joint action."""

    metadata = {"render_modes": []}

    def __init__(self, task: str, **kwargs: Any) -> None:
        self.env = make_team_env(task, **kwargs)
        self.agents = list(self.env.possible_agents)
        first = self.agents[0]
        d = int(np.prod(self.env.observation_space(first).shape))
        self.observation_space = spaces.Box(-np.inf, np.inf, (len(self.agents), d), np.float32)
        self.action_space = spaces.MultiDiscrete(
            [self.env.action_space(first).n] * len(self.agents)
        )

    def _stack(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(obs[a], dtype=np.float32) for a in self.agents])

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        obs, _ = self.env.reset(seed=seed)
        return self._stack(obs), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, rew, term, trunc, _ = self.env.step(
            {a: int(x) for a, x in zip(self.agents, np.asarray(action))}
        )
        terminated = all(term.values())
        truncated = all(trunc.values()) and not terminated
        return self._stack(obs), float(sum(rew.values())), terminated, truncated, {}

    def close(self) -> None:
        self.env.close()


def register() -> None:
    """Register the cooperative task ids with Gymnasium as :class:`TeamEnv` (idempotent)."""
    for env_id in TEAM_ENVS:
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="rlfoundry.envs.teams:TeamEnv",
                kwargs={"task": env_id},
                disable_env_checker=True,
            )
