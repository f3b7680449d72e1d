"""Off-policy actor-critic math for continuous actions: TD3 (Fujimoto et al. 2018,
arXiv:1802.09477) and SAC (Haarnoja et al. 2018, arXiv:1801.01290 and arXiv:1812.05905).

Both fit two critics Q1, Q2 to one target built from the *smaller* of two target critics
(clipped double Q-learning, TD3 sec. 4.1): the max over a learned Q overestimates, and
the minimum of two independent estimates counters it. Only `terminated` masks the
bootstrap; a transition cut by a time limit bootstraps like any other (STYLE.md rule 3).

Actions live in the squashed space [-1, 1]^A here; the trainers rescale them to the
env's bounds when they step it.

Shapes: `rew`, `terminated`, `q1`, `q2`, `logp` are `[B]`; `act`, `mean`, `log_std`,
`noise` are `[B, A]`. Targets are returned detached (semi-gradient TD).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor


def _bootstrap(rew: Tensor, next_v: Tensor, terminated: Tensor, gamma: float) -> Tensor:
    # where, not `* (1 - term)`: a terminal state's value may be garbage (0 * nan = nan)
    return (rew + gamma * torch.where(terminated.bool(), 0.0, next_v)).detach()


def clipped_double_q_target(
    rew: Tensor, next_q1: Tensor, next_q2: Tensor, terminated: Tensor, gamma: float
) -> Tensor:
    """TD3's target (Fujimoto et al. 2018, eq. 10), `[B]`:

        y = rew + gamma * (1 - terminated) * min(Q1'(s', a~), Q2'(s', a~))

    `next_q1`, `next_q2` are the target critics at the smoothed target action a~
    (:func:`smoothed_target_action`)."""
    return _bootstrap(rew, torch.minimum(next_q1, next_q2), terminated, gamma)


def soft_q_target(
    rew: Tensor,
    next_q1: Tensor,
    next_q2: Tensor,
    next_logp: Tensor,
    terminated: Tensor,
    gamma: float,
    alpha: float | Tensor,
) -> Tensor:
    """SAC's soft Bellman target (Haarnoja et al. 2018b, eqs. 3 and 5 with two critics), `[B]`:

        y = rew + gamma * (1 - terminated) * (min(Q1'(s', a'), Q2'(s', a')) - alpha * log pi(a'|s'))

    with a' ~ pi(.|s') freshly sampled from the current policy; `next_logp` is its
    log-probability. The `- alpha * log pi` term is the entropy bonus of the next state:
    the value of a state includes how random the policy may still be there."""
    next_v = torch.minimum(next_q1, next_q2) - alpha * next_logp
    return _bootstrap(rew, next_v, terminated, gamma)


def smoothed_target_action(
    next_act: Tensor, noise: Tensor, noise_clip: float, low: float = -1.0, high: float = 1.0
) -> Tensor:
    """TD3's target policy smoothing (Fujimoto et al. 2018, eq. 15), `[B, A]`:

        a~ = clip(mu'(s') + clip(noise, -c, c), low, high),    noise ~ N(0, sigma)

    `next_act` is the target actor's action mu'(s'); `noise` is drawn by the caller (so a
    test can give it). Averaging the target over a small neighbourhood of the action keeps
    the critic from fitting narrow peaks that the actor would then exploit."""
    return (next_act + noise.clamp(-noise_clip, noise_clip)).clamp(low, high)


def squashed_gaussian(mean: Tensor, log_std: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """A reparameterised tanh-Gaussian sample and its log-probability (SAC appendix C):

        u = mean + exp(log_std) * eps,   act = tanh(u)                      [B, A]
        logp = sum_i [ log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2) ]   [B]

    `eps ~ N(0, I)` is drawn by the caller; gradients flow to `mean` and `log_std` through
    `u` (the reparameterisation trick). log(1 - tanh(u)^2) is computed as
    2 * (log 2 - u - softplus(-2u)), exact and finite for any u (tanh(u)^2 rounds to 1
    from |u| ~ 9 on in float32)."""
    u = mean + log_std.exp() * eps
    log_normal = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    log_jac = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return torch.tanh(u), (log_normal - log_jac).sum(-1)


def sac_actor_loss(logp: Tensor, q1: Tensor, q2: Tensor, alpha: float | Tensor) -> Tensor:
    """SAC's policy loss (Haarnoja et al. 2018b, eq. 7 reparameterised as eq. 8), a scalar:

        L_pi = mean(alpha * log pi(a|s) - min(Q1(s, a), Q2(s, a))),   a ~ pi(.|s)

    Minimising it raises the soft value of the policy's own actions."""
    return (alpha * logp - torch.minimum(q1, q2)).mean()


def entropy_coef_loss(log_alpha: Tensor, logp: Tensor, target_entropy: float) -> Tensor:
    """SAC's temperature loss (Haarnoja et al. 2018b, eq. 18), on log alpha as in the
    authors' code and Stable-Baselines3, a scalar:

        L(alpha) = -log_alpha * mean(log pi(a|s) + target_entropy)     (logp detached)

    Its gradient is -mean(logp + H). When the policy's entropy -logp is below the target
    H, logp + H > 0, the gradient is negative and a descent step raises alpha: the entropy
    bonus weighs more until the entropy is back at the target (and the other way round)."""
    return -(log_alpha * (logp.detach() + target_entropy)).mean()


@torch.no_grad()
def polyak_update(target: Iterable[Tensor], online: Iterable[Tensor], tau: float) -> None:
    """Soft target update in place (Lillicrap et al. 2016, DDPG):

        theta' <- tau * theta + (1 - tau) * theta'

    over matching lists of tensors; tau = 1 copies exactly."""
    target, online = list(target), list(online)
    if len(target) != len(online):
        raise ValueError(f"polyak_update got {len(target)} target and {len(online)} tensors")
    if tau == 1.0:
        torch._foreach_copy_(target, online)
    else:
        torch._foreach_lerp_(target, online, tau)
