"""Masked reductions and the per-token loss aggregation modes of LLM RL.

How per-token losses are averaged changes the gradient, not just the logged number:
averaging within each sequence first gives every token of a short answer more weight
than a token of a long one (Liu et al. 2025, "Understanding R1-Zero-Like Training",
Dr. GRPO), and normalising each micro-batch by its own token count makes gradient
accumulation depend on how the batch was split (TRL's "grad accumulation 8x1 equals
1x8" tests; OpenRLHF `tests/test_loss_aggregation.py`). `aggregate_loss` names each
choice explicitly.
"""

from __future__ import annotations

import torch
from torch import Tensor

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def _valid(x: Tensor, mask: Tensor | None) -> Tensor:
    """Bool mask broadcast to `x`'s shape (all true if `mask` is None)."""
    if mask is None:
        return torch.ones_like(x, dtype=torch.bool)
    return torch.broadcast_to(mask if mask.dtype == torch.bool else mask != 0, x.shape)


def masked_sum(x: Tensor, mask: Tensor | None, dim: int | None = None) -> Tensor:
    """Sum of `x` over entries where `mask` is true (0/1 masks accepted).

    `torch.where`, not `x * mask`: padding positions may hold inf/NaN (e.g. a log-prob
    of a pad token) and 0 * inf would poison the sum.
    """
    m = _valid(x, mask)
    xm = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return xm.sum() if dim is None else xm.sum(dim)


def masked_mean(x: Tensor, mask: Tensor | None, dim: int | None = None) -> Tensor:
    """Mean of `x` over valid entries: `sum(x * mask) / sum(mask)`, over `dim` or all.

    A slice with no valid entries gives 0 (not NaN): it contributes no gradient.
    """
    if mask is None and x.numel():
        # Fast path, the per-step losses of PPO/A2C: one kernel instead of seven, which
        # on a CartPole minibatch is most of the reduction's cost (dispatch, not math).
        return x.mean() if dim is None else x.mean(dim)
    m = _valid(x, mask)
    count = m.sum() if dim is None else m.sum(dim)
    return masked_sum(x, m, dim) / count.clamp(min=1).to(x.dtype)


def masked_var(
    x: Tensor, mask: Tensor | None, dim: int | None = None, unbiased: bool = False
) -> Tensor:
    """Variance of `x` over valid entries.

    `unbiased=False` (default) divides by n, `unbiased=True` by n - 1 (clamped to 1,
    so a single valid entry gives variance 0 instead of NaN).
    """
    m = _valid(x, mask)
    mean = masked_mean(x, m, dim)
    if dim is not None:
        mean = mean.unsqueeze(dim)
    sq = masked_sum((x - mean) ** 2, m, dim)
    n = m.sum() if dim is None else m.sum(dim)
    denom = n - 1 if unbiased else n
    return sq / denom.clamp(min=1).to(x.dtype)


def aggregate_loss(
    loss_tok: Tensor,
    mask: Tensor | None,
    mode: str,
    num_tokens: int | float | Tensor | None = None,
    max_len: int | None = None,
) -> Tensor:
    """Reduce a per-token loss `[B, L]` (mask `[B, L]`) to a scalar.

    Modes (B sequences, `n_b` valid tokens in sequence b, `l_bt` the token loss):
      - "token-mean": `sum_{b,t} l_bt / num_tokens`, with `num_tokens` = number of valid
        tokens here by default. Pass the GLOBAL count of valid tokens in the whole
        optimizer batch and summing the losses of the micro-batches reproduces the
        full-batch loss exactly, so accumulation 4x1 and 1x4 give the same gradient.
      - "seq-mean-token-mean": `1/B sum_b (1/n_b sum_t l_bt)` (original GRPO). Each
        sequence weighs the same, so tokens of short sequences weigh more.
      - "seq-mean-token-sum": `1/B sum_b sum_t l_bt`.
      - "seq-mean-token-sum-norm": `1/B sum_b (sum_t l_bt) / max_len` (Dr. GRPO, Liu et
        al. 2025): a constant divisor, so no length bias. `max_len` should be the fixed
        generation budget; None falls back to `L`, which varies with padding.
        (verl's mode of the same name omits the 1/B.)

    The seq-* modes average over the B sequences of this call; a sequence with no
    valid token counts as 0. For accumulation, scale by `B / B_total` yourself.
    `num_tokens` only applies to "token-mean"; `max_len` only to the -norm mode.
    """
    if mode not in AGG_MODES:
        raise ValueError(
            f"unknown loss aggregation mode {mode!r}; valid modes: {', '.join(AGG_MODES)}."
        )
    if num_tokens is not None and mode != "token-mean":
        raise ValueError(f"num_tokens only applies to mode 'token-mean', not {mode!r}.")
    if max_len is not None and mode != "seq-mean-token-sum-norm":
        raise ValueError(f"max_len only applies to mode 'seq-mean-token-sum-norm', not {mode!r}.")
    if mode == "token-mean" and mask is None and num_tokens is None:
        return masked_mean(loss_tok, None)
    m = _valid(loss_tok, mask)
    if mode == "token-mean":
        denom = m.sum() if num_tokens is None else torch.as_tensor(num_tokens)
        return masked_sum(loss_tok, m) / denom.clamp(min=1).to(loss_tok.dtype)
    if loss_tok.ndim < 2:
        raise ValueError(f"mode {mode!r} needs a [B, L] loss, got shape {tuple(loss_tok.shape)}.")
    if mode == "seq-mean-token-mean":
        return masked_mean(loss_tok, m, dim=-1).mean()
    seq_sum = masked_sum(loss_tok, m, dim=-1)  # [B]
    if mode == "seq-mean-token-sum":
        return seq_sum.mean()
    return (seq_sum / (loss_tok.shape[-1] if max_len is None else max_len)).mean()
