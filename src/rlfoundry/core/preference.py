"""Preference losses beyond DPO's sigmoid: IPO, hinge (SLiC) and KTO.

The paired losses share `dpo_loss`'s signature,

    loss, chosen_reward, rejected_reward = fn(pi_c, pi_r, ref_c, ref_r, beta, label_smoothing)

with sequence log-probs `[B]` (summed over completion tokens), and are looked up in
`DPO_LOSSES[cfg.loss_type]`. With `h = (pi_c - ref_c) - (pi_r - ref_r)`, the difference
of the implicit rewards over beta, each is a function of h alone:

    sigmoid  -log sigmoid(beta h)               DPO (Rafailov et al. 2023)
    ipo      (h - 1 / (2 beta))^2               IPO (Azar et al. 2023)
    hinge    max(0, 1 - beta h)                 SLiC-HF (Zhao et al. 2023)

The implicit rewards returned are `beta * (pi - ref)`, detached, for every type.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from rlfoundry.core.losses import dpo_loss, pair_margin

PairLoss = Callable[[Tensor, Tensor, Tensor, Tensor, float, float], tuple[Tensor, Tensor, Tensor]]


def ipo_loss(
    policy_chosen_logp: Tensor,
    policy_rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Identity Preference Optimisation (Azar et al. 2023, arXiv:2310.12036, eq. 17):

        h = (pi_c - ref_c) - (pi_r - ref_r)
        L = mean((h - 1 / (2 beta))^2)

    A squared loss with a finite target margin `1 / (2 beta)` (beta is the paper's tau):
    unlike DPO's sigmoid it stops pushing once the margin is reached, so it does not
    drive the rejected probability to 0 on deterministic preferences. The paper uses
    sums of token log-probs as here (TRL divides by the length). `label_smoothing` is
    not used (IPO has no label noise model); it must be 0.
    """
    if label_smoothing:
        raise ValueError("ipo_loss has no label smoothing; pass label_smoothing=0.")
    h, chosen_rew, rejected_rew = pair_margin(
        policy_chosen_logp, policy_rejected_logp, ref_chosen_logp, ref_rejected_logp, beta
    )
    loss = ((h - 1.0 / (2.0 * beta)) ** 2).mean()
    return loss, chosen_rew, rejected_rew


def hinge_loss(
    policy_chosen_logp: Tensor,
    policy_rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Hinge loss on the implicit-reward margin (SLiC-HF, Zhao et al. 2023,
    arXiv:2305.10425, eq. 2 with the reference ratio of Rafailov et al.'s section 5;
    TRL's `loss_type="hinge"`):

        L = mean(max(0, 1 - beta h)),   h = (pi_c - ref_c) - (pi_r - ref_r)

    Pairs whose margin beta h already exceeds 1 give no gradient. `label_smoothing`
    must be 0.
    """
    if label_smoothing:
        raise ValueError("hinge_loss has no label smoothing; pass label_smoothing=0.")
    h, chosen_rew, rejected_rew = pair_margin(
        policy_chosen_logp, policy_rejected_logp, ref_chosen_logp, ref_rejected_logp, beta
    )
    loss = torch.relu(1.0 - beta * h).mean()
    return loss, chosen_rew, rejected_rew


DPO_LOSSES: dict[str, PairLoss] = {"sigmoid": dpo_loss, "ipo": ipo_loss, "hinge": hinge_loss}
"""DPO's `loss_type` -> paired preference loss."""


def kto_loss(
    policy_logp: Tensor,
    ref_logp: Tensor,
    desirable: Tensor,
    kl: Tensor | float,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Kahneman-Tversky Optimization (Ethayarajh et al. 2024, arXiv:2402.01306, eq. 8) on
    UNPAIRED examples, each labelled desirable or not:

        r   = log pi(y|x) - log ref(y|x)                       implicit reward / beta
        z0  = max(0, kl), detached                             the reference point
        v   = lambda_D sigmoid(beta (r - z0))   if desirable
              lambda_U sigmoid(beta (z0 - r))   otherwise
        L   = mean(lambda_y - v)

    `policy_logp`, `ref_logp` `[B]` sequence log-probs, `desirable` `[B]` bool; `kl` the
    batch estimate of KL(pi || ref), in the paper the mean of `r` over mismatched
    (prompt, completion) pairs of the same batch. At pi = ref (r = 0, z0 = 0) every
    example's loss is lambda_y / 2. Returns `(loss, beta * r detached [B])`.
    """
    z0 = torch.as_tensor(kl, dtype=policy_logp.dtype, device=policy_logp.device)
    z0 = z0.detach().clamp(min=0)
    r = policy_logp - ref_logp
    good = desirable.to(torch.bool)
    lam = torch.where(good, desirable_weight, undesirable_weight).to(r.dtype)
    v = lam * torch.where(good, F.sigmoid(beta * (r - z0)), F.sigmoid(beta * (z0 - r)))
    return (lam - v).mean(), (beta * r).detach()
