"""The replay memory of the off-policy algorithms (SAC, TD3): a preallocated ring buffer of
transitions ``(obs, act, rew, next_obs, terminated)``, sampled uniformly, saved whole in
the checkpoint so a resumed run draws the same minibatches as an uninterrupted one.

``next_obs`` is stored explicitly (not as the next row's ``obs``) because after the last
step of an episode the env is reset: the next row starts a new episode, while a truncated
transition must bootstrap from its true last observation. Only ``terminated`` is stored:
truncation is not a property of the transition's future (Pardo et al. 2018).
"""

from __future__ import annotations

import numpy as np
import torch

from rlfoundry.errors import RLFoundryError

FIELDS = ("obs", "act", "rew", "next_obs", "terminated")


class ReplayBuffer:
    """``capacity`` transitions; the oldest are overwritten once it is full.

    Observations are flat float32 ``[D]``; actions have ``act_shape`` and ``act_dtype``
    (``(A,)`` float32 for continuous control, ``()`` int64 for discrete actions).
    """

    def __init__(
        self,
        capacity: int,
        obs_width: int,
        act_shape: tuple[int, ...] = (),
        act_dtype: type | np.dtype = np.int64,
    ) -> None:
        self.capacity = int(capacity)
        # np.zeros maps untouched pages lazily: a 1M-row buffer costs memory as it fills
        self.obs = np.zeros((self.capacity, obs_width), dtype=np.float32)  # [C, D]
        self.next_obs = np.zeros((self.capacity, obs_width), dtype=np.float32)  # [C, D]
        self.act = np.zeros((self.capacity, *act_shape), dtype=act_dtype)  # [C, *A]
        self.rew = np.zeros(self.capacity, dtype=np.float32)  # [C]
        self.terminated = np.zeros(self.capacity, dtype=np.bool_)  # [C]
        self.pos = 0  # next row to write
        self.size = 0

    def add(
        self, obs: np.ndarray, act: np.ndarray, rew: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        i = self.pos
        self.obs[i] = obs
        self.act[i] = act
        self.rew[i] = rew
        self.next_obs[i] = next_obs
        self.terminated[i] = terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, rng: np.random.Generator, n: int = 1
    ) -> tuple[torch.Tensor, ...]:
        """``n`` uniform minibatches (with replacement) at once: ``(obs [n, B, D], act
        [n, B, *A], rew [n, B], next_obs [n, B, D], terminated [n, B])``. One gather per
        training phase instead of one per gradient step; the indices are the same draws
        as ``n`` calls of size ``B``."""
        idx = rng.integers(0, self.size, size=(n, batch_size))
        return tuple(torch.from_numpy(getattr(self, name)[idx]) for name in FIELDS)

    # -- checkpoint: the filled rows, and where the ring stands
    def state_arrays(self, prefix: str = "buffer/") -> dict[str, np.ndarray]:
        n = self.size
        return {f"{prefix}{name}": getattr(self, name)[:n] for name in FIELDS}

    def state(self) -> dict[str, int]:
        return {"buffer_pos": self.pos, "buffer_size": self.size}

    def load(self, tensors: dict[str, torch.Tensor], state: dict, prefix: str = "buffer/") -> None:
        size = int(state["buffer_size"])
        obs = tensors[f"{prefix}obs"]
        if size > self.capacity or tuple(obs.shape[1:]) != self.obs.shape[1:]:
            raise RLFoundryError(
                "The checkpoint's replay memory does not fit this config's buffer_size or env; "
                "resume with the config the run was started with."
            )
        for name in FIELDS:
            getattr(self, name)[:size] = tensors[f"{prefix}{name}"].numpy()
        self.pos, self.size = int(state["buffer_pos"]), size
