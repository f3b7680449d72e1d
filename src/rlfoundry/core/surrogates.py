"""Per-token policy losses of LLM RL, one function per `loss_type`, and group filtering.

Every function of `POLICY_LOSSES` has one signature,

    loss_tok, info = fn(logp, old_logp, adv, mask, clip_eps, clip_eps_high)

with `logp`, `old_logp`, `mask` `[B, T]` (tokens of B completions), `adv` broadcasting
against them (`[B, 1]`: one advantage per completion) and returns the UNaggregated loss
`[B, T]`: the caller reduces it with `aggregate_loss(loss_tok, mask, loss_agg, ...)`, so
every loss type works with every aggregation mode, micro-batching and data parallelism.
`info` holds detached scalars (masked means): "ratio" and "clip_fraction".

A trainer picks its loss with `POLICY_LOSSES[cfg.loss_type]`, never with a branch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rlfoundry.core.aggregate import masked_mean, masked_sum

PolicyLoss = Callable[
    [Tensor, Tensor, Tensor, Tensor | None, float, float | None], tuple[Tensor, dict[str, Tensor]]
]


def ppo_token_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    mask: Tensor | None,
    clip_eps: float,
    clip_eps_high: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped surrogate per token (Schulman et al. 2017, eq. 7), negated:

        ratio_t = exp(logp_t - old_logp_t)
        l_t     = -min(ratio_t A, clip(ratio_t, 1 - eps, 1 + eps_high) A)

    `clip_eps_high` None = `clip_eps` (DAPO's clip-higher when larger).
    """
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(logp - old_logp)
    surr = ratio * adv
    surr_clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + eps_high) * adv
    loss_tok = -torch.min(surr, surr_clipped)
    with torch.no_grad():
        clipped = ((ratio < 1.0 - clip_eps) | (ratio > 1.0 + eps_high)).to(ratio.dtype)
        info = {"ratio": masked_mean(ratio, mask), "clip_fraction": masked_mean(clipped, mask)}
    return loss_tok, info


def sequence_log_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor | None) -> Tensor:
    """`[B, 1]`: the mean over each completion's valid tokens of `logp - old_logp`, the log
    of GSPO's length-normalised sequence ratio (0 for a completion with no valid token)."""
    if mask is None:
        return (logp - old_logp).mean(-1, keepdim=True)
    return masked_mean(logp - old_logp, mask, dim=-1).unsqueeze(-1)


def gspo_token_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    mask: Tensor | None,
    clip_eps: float,
    clip_eps_high: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Group Sequence Policy Optimization (Zheng et al. 2025, arXiv:2507.18071, eq. 5-7):
    one importance ratio per completion, the geometric mean of its token ratios, clipped
    as a whole:

        s_i = exp(1/|y_i| sum_t (logp_it - old_logp_it))
        l_i = -min(s_i A_i, clip(s_i, 1 - eps, 1 + eps_high) A_i)

    `l_i` is repeated over the tokens of completion i; `loss_agg="seq-mean-token-mean"`
    then gives the paper's `1/G sum_i l_i` exactly (with "token-mean" each completion
    weighs by its length). The paper's clip ranges are small (3e-4 / 4e-4), since s_i
    averages the token log-ratios.
    """
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    s = torch.exp(sequence_log_ratio(logp, old_logp, mask))  # [B, 1]
    loss_seq = -torch.min(s * adv, torch.clamp(s, 1.0 - clip_eps, 1.0 + eps_high) * adv)
    loss_tok = loss_seq.expand_as(logp)
    with torch.no_grad():
        clipped = ((s < 1.0 - clip_eps) | (s > 1.0 + eps_high)).to(s.dtype)
        info = {"ratio": s.mean(), "clip_fraction": clipped.mean()}
    return loss_tok, info


def cispo_token_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    mask: Tensor | None,
    clip_eps: float,
    clip_eps_high: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped IS-weight Policy Optimization (MiniMax-M1, arXiv:2506.13585, eq. 4-5):
    clip the importance weight, not the update, and stop its gradient, so every token
    keeps a gradient (PPO drops the tokens whose ratio left the clip range):

        w_t = sg(min(ratio_t, 1 + eps_high))
        l_t = -w_t A log pi(y_t)

    Only the upper bound applies, as in the paper's experiments (no lower bound);
    `clip_eps` is the upper range unless `clip_eps_high` is given. At ratio 1 the
    gradient equals REINFORCE's and PPO's.
    """
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(logp - old_logp)
    w = torch.clamp(ratio, max=1.0 + eps_high).detach()
    loss_tok = -w * adv * logp
    with torch.no_grad():
        clipped = (ratio > 1.0 + eps_high).to(ratio.dtype)
        info = {"ratio": masked_mean(ratio, mask), "clip_fraction": masked_mean(clipped, mask)}
    return loss_tok, info


POLICY_LOSSES: dict[str, PolicyLoss] = {
    "ppo": ppo_token_loss,
    "gspo": gspo_token_loss,
    "cispo": cispo_token_loss,
}
"""`loss_type` -> per-token policy loss (see the module docstring for the signature)."""


def nonconstant_groups(rew: Tensor, group_size: int) -> Tensor:
    """`[B / group_size]` bool: which prompt-major groups of `rew` `[B]` hold at least two
    different rewards. A group whose rewards are all equal has zero advantage under any
    group baseline and no gradient; DAPO's dynamic sampling (Yu et al. 2025,
    arXiv:2503.14476, eq. 11) drops it and samples more prompts instead."""
    g = rew.view(-1, group_size)
    return (g != g[:, :1]).any(dim=1)


def sequence_logp(logp: Tensor, mask: Tensor | None) -> Tensor:
    """`[B]`: log pi(y|x) = the sum of a completion's valid token log-probs `[B, T]`."""
    return masked_sum(logp, mask, dim=-1)
