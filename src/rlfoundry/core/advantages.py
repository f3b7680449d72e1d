"""Advantage estimators: GAE for the Gymnasium side, group baselines for the LLM side.

All of them return constants for the loss: they are computed without gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rlfoundry.core._convert import as_flag
from rlfoundry.core.aggregate import masked_mean, masked_var


def gae(
    rew: Tensor,
    val: Tensor,
    next_val: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016, arXiv:1506.02438).

        delta_t = rew_t + gamma * (1 - term_t) * next_val_t - val_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   done_t = term_t or trunc_t
        ret_t   = A_t + val_t

    Termination and truncation are different (STYLE.md rule 3): a terminated step has
    no future, so its next value is masked to 0; a truncated (time-limit) step still has
    one, so it bootstraps from `next_val_t`, which must be V of the FINAL observation of
    that episode (the one before the vector env's auto-reset, `info["final_obs"]`).
    Treating truncation as termination (`done = term or trunc` in the delta) biases
    values on time-limited tasks: CleanRL issues #198 and #457; Pardo et al. 2018,
    "Time Limits in Reinforcement Learning". At both kinds of boundary the recursion
    stops, since step t+1 belongs to a new episode.

    Args:
        rew, val, next_val: `[T]` or `[T, N]`. `val[t] = V(s_t)`, `next_val[t] = V(s_{t+1})`
            (for the last step of the segment: V of the observation after it).
        terminated, truncated: bool or 0/1 flags, same shape.
        gamma: discount; lam: GAE lambda (lam=1: Monte Carlo return - V; lam=0: TD error).

    Returns:
        `(adv, ret)`, both the shape of `rew`, detached.
    """
    shapes = {tuple(x.shape) for x in (rew, val, next_val, terminated, truncated)}
    if len(shapes) != 1:
        raise ValueError(
            "gae needs rew, val, next_val, terminated and truncated of one shape ([T] or "
            f"[T, N]); got {[tuple(x.shape) for x in (rew, val, next_val, terminated, truncated)]}."
        )
    with torch.no_grad():
        term = as_flag(terminated)
        done = term | as_flag(truncated)
        # where, not `* (1 - term)`: the next value behind a terminal step may be garbage.
        delta = rew + gamma * torch.where(term, 0.0, next_val) - val  # [T, N]
        adv = torch.empty_like(delta)
        if delta.device.type == "cpu":
            # The same recursion on NumPy views of the same memory: the same IEEE operations
            # in the same dtype (a Python float scalar is cast to it in both libraries, NEP
            # 50), so the same bits, at a fraction of torch's per-op cost for [N] rows.
            d, dn, out = delta.numpy(), done.numpy(), adv.numpy()
            last_np = np.zeros_like(d[0])
            for t in reversed(range(d.shape[0])):
                last_np = d[t] + gamma * lam * np.where(dn[t], 0.0, last_np)
                out[t] = last_np
            return adv, adv + val
        last = torch.zeros_like(delta[0])  # A_{T} = 0: nothing after the segment
        for t in reversed(range(delta.shape[0])):
            last = delta[t] + gamma * lam * torch.where(done[t], 0.0, last)
            adv[t] = last
        return adv, adv + val


def normalize_advantages(adv: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """`(adv - mean) / (std + eps)`, mean and std over the valid entries.

    std is the population std (divide by n), so the result has mean 0 and population
    std 1 (up to eps); one valid entry gives 0, not NaN. Masked entries come back as 0
    so padding never carries a weight into a loss. Shape is kept.
    """
    with torch.no_grad():
        mean = masked_mean(adv, mask)
        std = masked_var(adv, mask).sqrt()
        out = (adv - mean) / (std + eps)
        if mask is not None:
            m = mask if mask.dtype == torch.bool else mask != 0
            out = torch.where(torch.broadcast_to(m, out.shape), out, 0.0)
        return out


def _groups(rew: Tensor, group_size: int) -> Tensor:
    """`[B] -> [B / k, k]`, prompt-major (the k completions of a prompt are adjacent)."""
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 for a group baseline, got {group_size}.")
    if rew.ndim != 1 or rew.shape[0] % group_size != 0:
        raise ValueError(
            f"rew must be [B] with B a multiple of group_size={group_size}; got shape {tuple(rew.shape)}."
        )
    return rew.reshape(-1, group_size)


def group_relative_advantages(
    rew: Tensor, group_size: int, scale_std: bool = True, eps: float = 1e-6
) -> Tensor:
    """GRPO advantages (Shao et al. 2024, DeepSeekMath): `(r_i - mean_g) / (std_g + eps)`.

    `rew` is `[B]` with `B = num_prompts * group_size`, laid out prompt-major; the mean
    and std are over the `group_size` completions of the same prompt. std is the
    UNBIASED sample std (divide by k - 1), as `torch.std` and TRL's GRPOTrainer compute
    it. `scale_std=False` drops the division (Dr. GRPO, Liu et al. 2025): dividing by
    std up-weights prompts that are nearly always or never solved.
    A group with identical rewards gets zero advantages (no NaN). Returns `[B]`.
    """
    with torch.no_grad():
        g = _groups(rew, group_size)  # [P, k]
        centered = g - g.mean(dim=1, keepdim=True)
        if scale_std:
            centered = centered / (g.std(dim=1, keepdim=True) + eps)
        # The mean of k equal floats is not always exactly that float; the rounding
        # residue (~1e-7 in float32) divided by a std of the same size comes out O(0.1),
        # so an all-equal group would get a spurious signal. Zero it exactly.
        same = (g == g[:, :1]).all(dim=1, keepdim=True)  # [P, 1]
        return torch.where(same, 0.0, centered).reshape(-1)


def leave_one_out_advantages(rew: Tensor, group_size: int) -> Tensor:
    """RLOO advantages (Ahmadian et al. 2024; Kool et al. 2019): each completion's
    baseline is the mean reward of the OTHER k - 1 completions of its prompt:

        A_i = r_i - 1/(k-1) sum_{j != i} r_j = k/(k-1) * (r_i - mean_g)

    The baseline does not depend on r_i, so the gradient estimate stays unbiased.
    `rew` `[B]`, prompt-major, `B = num_prompts * group_size`; returns `[B]`.
    """
    with torch.no_grad():
        g = _groups(rew, group_size)  # [P, k]
        others = (g.sum(dim=1, keepdim=True) - g) / (group_size - 1)
        return (g - others).reshape(-1)


def overlong_penalty(lengths: Tensor, truncated: Tensor, max_len: int, buffer: int = 0) -> Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025, arXiv:2503.14476, eq. 13), in [-1, 0].

        0                              if len <= max_len - buffer
        (max_len - buffer - len) / buffer   if max_len - buffer < len <= max_len
        -1                             if truncated (no end within max_len)

    `lengths` `[B]` completion tokens, `truncated` `[B]` bool; `buffer` 0 punishes only the
    truncated completions. A stage adds `weight * overlong_penalty(...)` to the reward, so
    that of two wrong answers the one cut off by the budget scores lower.
    """
    lengths = lengths.to(torch.float32)
    pen = torch.zeros_like(lengths)
    if buffer > 0:
        pen = ((max_len - buffer - lengths) / buffer).clamp(-1.0, 0.0)
    return torch.where(as_flag(truncated).to(pen.device), torch.full_like(pen, -1.0), pen)
