"""Exact environment state across a resume, without pickling the environment.

A Gymnasium environment seeded once with ``reset(seed=s)`` is a deterministic function
of the actions it is given. So instead of serialising its internals (unsafe, and
impossible for many simulators) we log every action and, on resume, rebuild the same
environment, reset it with the same seed and replay the log. The environment then
sits in exactly the state it had at the checkpoint, its random generator included,
and a resumed run ends where an uninterrupted one would.

Contract: the training loop calls ``reset()`` right after every terminated or
truncated step (as every loop here does); the replay does the same.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class ActionLog(gym.Wrapper):
    """Record the actions given to ``step`` so the episode stream can be replayed."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        self.seed = int(seed)
        self.actions: list[Any] = []
        self._seeded = False

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        if not self._seeded:
            kwargs.setdefault("seed", self.seed)
            self._seeded = True
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.actions.append(np.asarray(action).copy())
        return self.env.step(action)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The action log as one array, for the checkpoint."""
        if not self.actions:
            return {"replay/actions": np.zeros((0,), dtype=np.int64)}
        return {"replay/actions": np.stack(self.actions)}

    def restore(self, actions: np.ndarray) -> tuple[Any, dict]:
        """Reset with the original seed and replay ``actions``; return the current observation."""
        self._seeded = False
        self.actions = []
        obs, info = self.reset()
        for act in np.asarray(actions):
            act = act.item() if act.ndim == 0 else act
            obs, _, terminated, truncated, info = self.step(act)
            if terminated or truncated:
                obs, info = self.reset()
        return obs, info
