"""Sample estimators of KL(pi || ref) (J. Schulman, "Approximating KL Divergence", 2020,
http://joschu.net/blog/kl-approx.html).

The samples are drawn from `pi`; `logp = log pi(x)`, `ref_logp = log ref(x)`, any
matching shapes (per token `[B, L]`, per action `[N]`), elementwise out. Average the
result over samples (with `masked_mean` for tokens) to get the estimate.

    log_ratio = logp - ref_logp
    k1 = log_ratio                          unbiased, high variance, can be negative
    k2 = 0.5 * log_ratio^2                  biased (low bias near pi = ref), >= 0
    k3 = exp(-log_ratio) - 1 + log_ratio    unbiased, >= 0, lower variance than k1

Which one enters a loss changes the gradient, not only the estimate: as a reward
penalty k1 is the usual choice (InstructGPT); as a loss term GRPO uses k3 (Shao et
al. 2024). k3 grows like exp(-log_ratio): verl clamps it for float16/32 safety; no
clamp here, clamp at the call site if you need it.
"""

from __future__ import annotations

import torch
from torch import Tensor

KL_KINDS = ("k1", "k2", "k3")


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 = logp - ref_logp."""
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k2 = 0.5 * (logp - ref_logp)^2."""
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 = exp(-log_ratio) - 1 + log_ratio, log_ratio = logp - ref_logp.

    Written `expm1(-x) + x`: for tiny x, `exp(-x) - 1` loses the x^2/2 term to
    rounding and can come out slightly negative.
    """
    log_ratio = logp - ref_logp
    return torch.expm1(-log_ratio) + log_ratio


def kl_estimate(logp: Tensor, ref_logp: Tensor, kind: str = "k1") -> Tensor:
    """Elementwise KL(pi || ref) estimate of the named `kind`: "k1", "k2" or "k3"."""
    fns = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
    if kind not in fns:
        raise ValueError(f"unknown KL estimator kind {kind!r}; valid kinds: {', '.join(KL_KINDS)}.")
    return fns[kind](logp, ref_logp)
