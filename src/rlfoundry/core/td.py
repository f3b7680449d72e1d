"""One-step TD targets for Q-learning, Double DQN, SARSA and Expected SARSA.

    y = rew + gamma * (1 - terminated) * <value of the next state>

Only `terminated` masks the bootstrap. A truncated transition (time limit) still has a
future, so it bootstraps like any other (STYLE.md rule 3; Pardo et al. 2018).

Shapes: `rew`, `terminated` are `[B]` (or scalars for one tabular transition);
`next_q` is `[B, A]` (or one table row `[A]`). Returns `[B]` (or a scalar).
Targets are returned detached: TD learning holds the target fixed (semi-gradient).
Tensors in give a tensor out; numpy arrays / python numbers give numpy or a python
float out (see `_convert`), so a tabular agent can call them on `Q[s_next]` directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.core._convert import as_flag, as_tensors, restore

ArrayLike = Any  # Tensor | np.ndarray | float


def _target(rew: Tensor, next_v: Tensor, terminated: Tensor, gamma: float) -> Tensor:
    # where, not `* (1 - term)`: Q of a terminal state may be garbage (0 * nan = nan).
    return (rew + gamma * torch.where(as_flag(terminated), 0.0, next_v)).detach()


def q_learning_target(
    rew: ArrayLike, next_q: ArrayLike, terminated: ArrayLike, gamma: float
) -> Tensor | np.ndarray | float:
    """Q-learning / DQN target `rew + gamma * (1 - term) * max_a next_q[a]` (Watkins 1989)."""
    (rew, next_q, terminated), dtype, tensor_in = as_tensors(rew, next_q, terminated)
    y = _target(rew.to(dtype), next_q.to(dtype).amax(dim=-1), terminated, gamma)
    return restore(y, tensor_in)


def double_q_target(
    rew: ArrayLike,
    next_q_online: ArrayLike,
    next_q_target: ArrayLike,
    terminated: ArrayLike,
    gamma: float,
) -> Tensor | np.ndarray | float:
    """Double DQN target (van Hasselt et al. 2016, arXiv:1509.06461):

        a* = argmax_a next_q_online[a];   y = rew + gamma * (1 - term) * next_q_target[a*]

    Choosing the action with one network and valuing it with the other removes the
    upward bias of `max` over noisy estimates.
    """
    (rew, q_on, q_tg, terminated), dtype, tensor_in = as_tensors(
        rew, next_q_online, next_q_target, terminated
    )
    a_star = q_on.argmax(dim=-1, keepdim=True)  # [B, 1]
    next_v = q_tg.to(dtype).gather(-1, a_star).squeeze(-1)  # [B]
    return restore(_target(rew.to(dtype), next_v, terminated, gamma), tensor_in)


def sarsa_target(
    rew: ArrayLike, next_q_sa: ArrayLike, terminated: ArrayLike, gamma: float
) -> Tensor | np.ndarray | float:
    """SARSA target `rew + gamma * (1 - term) * Q(s', a')`, with `a'` the action actually
    taken next (on-policy). `next_q_sa` is `[B]` (or a scalar)."""
    (rew, next_q_sa, terminated), dtype, tensor_in = as_tensors(rew, next_q_sa, terminated)
    return restore(_target(rew.to(dtype), next_q_sa.to(dtype), terminated, gamma), tensor_in)


def expected_sarsa_target(
    rew: ArrayLike, next_q: ArrayLike, next_probs: ArrayLike, terminated: ArrayLike, gamma: float
) -> Tensor | np.ndarray | float:
    """Expected SARSA target `rew + gamma * (1 - term) * sum_a pi(a|s') Q(s', a)`
    (van Seijen et al. 2009): averages over the next action instead of sampling it,
    which removes that source of variance. `next_probs` has the shape of `next_q`."""
    (rew, next_q, next_probs, terminated), dtype, tensor_in = as_tensors(
        rew, next_q, next_probs, terminated
    )
    next_v = (next_probs.to(dtype) * next_q.to(dtype)).sum(dim=-1)
    return restore(_target(rew.to(dtype), next_v, terminated, gamma), tensor_in)
