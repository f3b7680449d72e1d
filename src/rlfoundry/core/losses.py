"""Losses shared by every algorithm: vanilla policy gradient, PPO's clipped surrogate
and value loss, entropy, Bradley-Terry reward modelling and DPO.

Per-token losses (`[B, L]` with a `mask`) and per-step losses (`[N]`, mask None) go
through the same code; see `aggregate.aggregate_loss` for how tokens are averaged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rlfoundry.core.aggregate import aggregate_loss, masked_mean
from rlfoundry.core.kl import kl_k3
from rlfoundry.core.surrogates import ppo_token_loss


def policy_gradient_loss(logp: Tensor, weights: Tensor, num_episodes: int | None = None) -> Tensor:
    """Seed 003's policy-gradient loss:

        L = -1/|D| sum_{tau in D} sum_t log pi(a_t|s_t) * R(tau)

    `logp` holds `log pi(a_t|s_t)` for every step of every episode in D (any shape,
    e.g. `[T]` or the concatenation of episodes); `weights` broadcasts against it and is
    `R(tau)` repeated over the steps of tau, or the reward-to-go, or an advantage.
    `|D| = num_episodes`; None divides by the number of elements (a plain mean).
    Weights are detached: they are the constants the gradient is weighted by.

    The value of this loss has NO meaning (seed 003): it exists only so that autograd
    produces the policy-gradient estimate `g_hat`. Do not read it as a performance
    measure; it can go up while the policy improves.
    """
    total = -(logp * weights.detach()).sum()
    return total / (logp.numel() if num_episodes is None else num_episodes)


def clipped_surrogate(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    clip_eps: float,
    mask: Tensor | None = None,
    agg: str = "token-mean",
    clip_eps_high: float | None = None,
    *,
    num_tokens: int | float | Tensor | None = None,
    max_len: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate (Schulman et al. 2017, arXiv:1707.06347, eq. 7), negated:

        ratio = exp(logp - old_logp)
        l     = -min(ratio * adv, clip(ratio, 1 - clip_eps, 1 + clip_eps_high) * adv)

    then aggregated over valid entries with `aggregate_loss(l, mask, agg, num_tokens,
    max_len)`. Shapes: `[N]` per step (CartPole) or `[B, L]` per token with `mask`
    `[B, L]`; `adv` broadcasts (e.g. `[B, 1]` for one advantage per sequence).
    `clip_eps_high` (None = `clip_eps`) allows a larger upper bound so that unlikely
    tokens can still gain probability (DAPO "clip-higher", Yu et al. 2025).

    Returns `(loss, info)`; `info` holds detached scalar tensors (no GPU sync), each
    a mean over valid entries:
      - "ratio": mean ratio;
      - "clip_fraction": share of entries with the ratio outside the clip range;
      - "approx_kl": k3 estimate of KL(old || new), `(ratio - 1) - log ratio`
        (samples come from the old policy; as CleanRL logs it).
    """
    loss_tok, info = ppo_token_loss(logp, old_logp, adv, mask, clip_eps, clip_eps_high)
    loss = aggregate_loss(loss_tok, mask, agg, num_tokens=num_tokens, max_len=max_len)
    with torch.no_grad():
        info["approx_kl"] = masked_mean(kl_k3(old_logp, logp), mask)
    return loss, info


def value_loss(
    val: Tensor,
    ret: Tensor,
    old_val: Tensor | None = None,
    clip_eps: float | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """`mean(0.5 * (val - ret)^2)` over valid entries, optionally clipped.

    With `clip_eps` (needs `old_val`), as in OpenAI baselines PPO2 and CleanRL:

        val_clipped = old_val + clip(val - old_val, -clip_eps, clip_eps)
        loss = mean(0.5 * max((val - ret)^2, (val_clipped - ret)^2))

    Clipping is off by default: Andrychowicz et al. 2021 ("What Matters in On-Policy
    RL") and Engstrom et al. 2020 found it does not help and can hurt.
    Shapes: `[N]` or `[B, L]`, all alike; `ret` is treated as a constant (detached).
    """
    ret = ret.detach()
    err = (val - ret) ** 2
    if clip_eps is not None:
        if old_val is None:
            raise ValueError("value_loss with clip_eps needs old_val, the values at rollout time.")
        val_clipped = old_val + torch.clamp(val - old_val, -clip_eps, clip_eps)
        err = torch.max(err, (val_clipped - ret) ** 2)
    return 0.5 * masked_mean(err, mask)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the categorical distribution `softmax(logits)`, `[..., A] -> [...]`:

        H = -sum_a p_a log p_a,   log p = log_softmax(logits)

    Logits of -inf (masked actions) contribute 0 instead of NaN (0 * -inf).
    """
    logp = F.log_softmax(logits, dim=-1)
    p = logp.exp()
    return -(p * torch.where(p > 0, logp, 0.0)).sum(dim=-1)


def categorical_entropy(probs: Tensor) -> Tensor:
    """Entropy from probabilities, `[..., A] -> [...]`: `-sum_a p_a log p_a`, with
    `0 log 0 = 0`. Prefer `entropy_from_logits` when you have logits (more accurate)."""
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def gaussian_entropy(log_std: Tensor) -> Tensor:
    """Entropy of a diagonal Gaussian, `[..., D] -> [...]`:

        H = sum_i (0.5 * log(2 pi e) + log_std_i)

    It does not depend on the mean. Summed over the last (action) dimension.
    """
    return (0.5 * math.log(2 * math.pi * math.e) + log_std).sum(dim=-1)


def bradley_terry_loss(
    r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | float | None = None
) -> Tensor:
    """Reward-model loss under the Bradley-Terry model (Ouyang et al. 2022, eq. 1):

        L = mean(-log sigmoid(r_chosen - r_rejected - margin))

    `r_chosen`, `r_rejected` `[B]`; `margin` (scalar or `[B]`, Llama 2's preference
    margin) defaults to 0. `logsigmoid`, not `log(sigmoid(.))`, which underflows to
    log(0) = -inf for large negative differences.
    """
    diff = r_chosen - r_rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def pairwise_accuracy(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    """Share of pairs with `r_chosen > r_rejected` (a tie counts as wrong), detached."""
    return (r_chosen > r_rejected).float().mean().detach()


def pair_margin(
    policy_chosen_logp: Tensor,
    policy_rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    beta: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """The margin every paired preference loss is a function of, and the implicit rewards
    it logs (Rafailov et al. 2023, eq. 5), from sequence log-probs `[B]`:

        h = (pi_c - ref_c) - (pi_r - ref_r)                       [B]
        chosen_reward, rejected_reward = beta (pi - ref)          [B] each, detached

    Returns `(h, chosen_reward, rejected_reward)`.
    """
    chosen_lr = policy_chosen_logp - ref_chosen_logp
    rejected_lr = policy_rejected_logp - ref_rejected_logp
    return chosen_lr - rejected_lr, (beta * chosen_lr).detach(), (beta * rejected_lr).detach()


def dpo_loss(
    policy_chosen_logp: Tensor,
    policy_rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Direct Preference Optimization (Rafailov et al. 2023, arXiv:2305.18290, eq. 7).

    Inputs are sequence log-probs `[B]` (summed over the completion tokens):

        z = beta * ((pi_c - ref_c) - (pi_r - ref_r))
        L = mean(-(1 - ls) * log sigmoid(z) - ls * log sigmoid(-z))

    `label_smoothing = ls` is conservative DPO (cDPO, Mitchell 2023): it assumes each
    preference label is flipped with probability ls. At policy == ref, z = 0 and L = log 2.

    Returns `(loss, chosen_reward, rejected_reward)`; the implicit rewards
    `beta * (pi - ref)` are `[B]` and detached (for logging / reward accuracy).
    """
    h, chosen_rew, rejected_rew = pair_margin(
        policy_chosen_logp, policy_rejected_logp, ref_chosen_logp, ref_rejected_logp, beta
    )
    z = beta * h
    losses = -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return losses.mean(), chosen_rew, rejected_rew
