"""Logit processors of token sampling: repetition penalty, top-k and top-p (nucleus).

Pure functions on `[B, V]` tensors. A removed token gets -inf; the filters are applied
in the order of transformers' `generate`: repetition penalty on the raw logits, then
temperature, then top-k, then top-p.
"""

from __future__ import annotations

import torch
from torch import Tensor


def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL's repetition penalty (Keskar et al. 2019, arXiv:1909.05858, section 4.1), as
    transformers applies it: every token already in the context (`seen` `[B, V]` bool,
    prompt and generated tokens) has its logit divided by `penalty` when positive and
    multiplied by it when negative, so a penalty > 1 always makes it less likely.

        l'_v = l_v / penalty   if seen_v and l_v > 0
               l_v * penalty   if seen_v and l_v <= 0
               l_v             otherwise
    """
    if penalty == 1.0:
        return logits
    hit = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, hit, logits)


def top_k_filter(logp: Tensor, top_k: int) -> Tensor:
    """Keep the `top_k` largest entries of each row of `logp` `[B, V]` (ties with the
    k-th are kept too); the rest become -inf. `top_k` 0 or >= V keeps everything."""
    if not top_k or not 0 < top_k < logp.shape[-1]:
        return logp
    kth = torch.topk(logp, top_k, dim=-1).values[:, -1:]
    return logp.masked_fill(logp < kth, float("-inf"))


def top_p_filter(logp: Tensor, top_p: float) -> Tensor:
    """Nucleus filtering (Holtzman et al. 2020, arXiv:1904.09751): keep the smallest set
    of most likely tokens whose probability reaches `top_p`, from NORMALISED log-probs
    `logp` `[B, V]` (entries already at -inf stay out). The most likely token is always
    kept; `top_p` 1 keeps everything."""
    if top_p >= 1.0:
        return logp
    sorted_lp, idx = torch.sort(logp, dim=-1, descending=True)
    cum = sorted_lp.exp().cumsum(-1)
    drop = cum - sorted_lp.exp() > top_p  # mass before this token already reaches top_p
    sorted_lp = sorted_lp.masked_fill(drop, float("-inf"))
    return torch.full_like(logp, float("-inf")).scatter(-1, idx, sorted_lp)


def draw_categorical(prob: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row from unnormalised probabilities `prob` `[B, V]` -> indices `[B]`,
    by inverting the CDF: index i is drawn when c_{i-1} <= u * c_V < c_i, with
    c_i = prob_1 + ... + prob_i and u ~ U[0, 1), one uniform number per row.

    Zero-probability entries are never drawn (their interval is empty). On the CPU this
    costs one cumulative sum: `torch.multinomial` and an exponential race (argmax of
    prob / E, E ~ Exp(1)) spend most of their time drawing V random numbers per row,
    about 20x longer at a 49k vocabulary (`benchmarks/llm_generation.py`).
    """
    cdf = prob.cumsum(-1)  # [B, V], non-decreasing
    total = cdf[:, -1:]  # [B, 1]
    u = torch.rand(total.shape, generator=generator, device=cdf.device, dtype=cdf.dtype)
    # u * total < total in exact arithmetic; keep it so after rounding
    x = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, x, right=True).squeeze(-1).clamp_(max=prob.shape[-1] - 1)
