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


class ArrayLog:
    """An append-only log of same-shaped arrays held in ONE growing NumPy array.

    A list of per-step arrays costs ~100 bytes of Python object per entry on top of the
    data (a 0-d int64 action: 8 bytes of data in a ~110-byte object) and a slow
    ``np.stack`` at every checkpoint; here the storage doubles when full (amortised
    O(1) appends) and :meth:`array` is a view.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._buf: np.ndarray | None = None
        self._n = 0
        self._capacity = max(int(capacity), 1)

    def append(self, x: Any) -> None:
        x = np.asarray(x)
        if self._buf is None:
            self._buf = np.empty((self._capacity, *x.shape), dtype=x.dtype)
        elif self._n == len(self._buf):
            grown = np.empty((2 * len(self._buf), *self._buf.shape[1:]), dtype=self._buf.dtype)
            grown[: self._n] = self._buf
            self._buf = grown
        self._buf[self._n] = x  # copies: the caller may reuse its array
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def array(self) -> np.ndarray | None:
        """The entries so far, ``[n, *shape]`` (a view; None before the first append)."""
        return None if self._buf is None else self._buf[: self._n]

    def clear(self) -> None:
        self._buf, self._n = None, 0


class ActionLog(gym.Wrapper):
    """Record the actions given to ``step`` so the episode stream can be replayed."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        self.seed = int(seed)
        self.log = ArrayLog()
        self._seeded = False

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        if not self._seeded:
            kwargs.setdefault("seed", self.seed)
            self._seeded = True
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.log.append(action)
        return self.env.step(action)

    @property
    def actions(self) -> np.ndarray:
        """The actions logged so far, ``[T, *action_shape]``."""
        arr = self.log.array()
        return np.zeros((0,), dtype=np.int64) if arr is None else arr

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The action log as one array, for the checkpoint."""
        return {"replay/actions": self.actions}

    def restore(self, actions: np.ndarray) -> tuple[Any, dict]:
        """Reset with the original seed and replay ``actions``; return the current observation."""
        self._seeded = False
        self.log.clear()
        obs, info = self.reset()
        for act in np.asarray(actions):
            act = act.item() if act.ndim == 0 else act
            obs, _, terminated, truncated, info = self.step(act)
            if terminated or truncated:
                obs, info = self.reset()
        return obs, info
