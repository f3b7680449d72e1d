"""Discounted returns and reward-to-go.

Notation (seed 002): the return from step t is `G_t = sum_k gamma^k r_{t+k+1}`, where
`r_{t+1}` is the reward that follows action `a_t`. In code that reward is stored at the
same index as the action, `rew[t]`, so `G_t = sum_k gamma^k rew[t+k]`.

These functions accept torch tensors, numpy arrays or python numbers; see `_convert`:
tensor in, tensor out; otherwise numpy (or a python float for a scalar) out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.core._convert import as_flag, as_tensors, restore

ArrayLike = Any  # Tensor | np.ndarray | float | list


def discounted_returns(
    rew: ArrayLike,
    gamma: float,
    terminated: ArrayLike | None = None,
    bootstrap: ArrayLike | None = None,
) -> Tensor | np.ndarray:
    """Discounted return `G_t` for every step of a rollout segment.

    Recursion, from the last step backwards (time is the first dimension):

        G_{T-1} = rew[T-1] + gamma * (1 - terminated[T-1]) * bootstrap
        G_t     = rew[t]   + gamma * (1 - terminated[t])   * G_{t+1}

    so the sum restarts after every step where `terminated[t]` is true (the next step
    belongs to a new episode) and `bootstrap` (e.g. `V(s_T)`) stands in for the rewards
    after the segment when the last episode was cut off rather than finished.

    Args:
        rew: rewards, `[T]` or `[T, N]` (N parallel environments).
        gamma: discount factor.
        terminated: bool (or 0/1) flags, same shape as `rew`; None means no episode ends
            inside the segment.
        bootstrap: value after the last step, scalar or `[N]`; None means 0.

    Returns:
        `G`, same shape as `rew`.

    Limitation: a boundary inside the segment is treated as a termination. An episode
    truncated *inside* the segment needs its own bootstrap value at that step; use
    `gae(..., lam=1.0)`, whose `ret` is exactly that bootstrapped return.
    With `terminated=None, bootstrap=None` this is the reward-to-go of one episode.
    """
    (rew, terminated, bootstrap), dtype, tensor_in = as_tensors(rew, terminated, bootstrap)
    rew = rew.to(dtype)
    if rew.ndim == 0:
        raise ValueError("discounted_returns needs rewards with a time dimension, [T] or [T, N].")
    if terminated is not None and terminated.shape != rew.shape:
        raise ValueError(
            f"terminated has shape {tuple(terminated.shape)} but rew has {tuple(rew.shape)}; "
            "pass one flag per reward."
        )
    with torch.no_grad():
        g = torch.zeros_like(rew[0])
        if bootstrap is not None:
            g = torch.broadcast_to(bootstrap.to(dtype), g.shape).clone()
        done = None if terminated is None else as_flag(terminated)
        out = torch.empty_like(rew)
        for t in reversed(range(rew.shape[0])):
            # torch.where rather than `* (1 - done)`: a NaN/inf bootstrap behind a
            # terminal step must not leak into the return (0 * inf = nan).
            nxt = g if done is None else torch.where(done[t], 0.0, g)
            g = rew[t] + gamma * nxt
            out[t] = g
    return restore(out, tensor_in)


def reward_to_go(rew: ArrayLike, gamma: float = 1.0) -> Tensor | np.ndarray:
    """Reward-to-go of one finished episode, `[T] -> [T]`: `G_t = sum_{k>=0} gamma^k rew[t+k]`.

    The lower-variance weight for the policy gradient (seed 003's variant of
    `R(tau)`): an action cannot affect rewards that came before it, so only the
    rewards from t on are kept (Spinning Up, "Don't Let the Past Distract You").
    Same as `discounted_returns(rew, gamma)`.
    """
    return discounted_returns(rew, gamma)


def episode_return(rew: ArrayLike, gamma: float = 1.0) -> Tensor | float:
    """Return of a whole episode, `R(tau) = sum_t gamma^t rew[t]`, `[T] -> []` (scalar).

    With `gamma=1` this is the undiscounted return that seed 003 multiplies every
    `log pi(a_t|s_t)` by. An empty episode has return 0.
    """
    (rew,), dtype, tensor_in = as_tensors(rew)
    rew = rew.to(dtype)
    if rew.ndim != 1:
        raise ValueError(
            f"episode_return expects one episode of shape [T], got {tuple(rew.shape)}."
        )
    disc = gamma ** torch.arange(rew.shape[0], dtype=dtype, device=rew.device)  # [T]
    return restore((rew * disc).sum(), tensor_in)
