"""PPO's loss and its gradient without autograd, bit-identical to ``loss.backward()``.

For a CartPole-sized actor-critic (two 64-64 MLPs, a minibatch of 256) the arithmetic of
a gradient step is small; what costs is dispatch: autograd records a graph node per
forward op and its engine walks them back. Forward and backward of a zoo CartPole step
took ~0.8 ms with autograd and ~0.4 ms here (measured under load, one thread; 7,800
such steps in 100k env steps). :func:`ppo_loss_grad` runs the forward
ops of :func:`rlfoundry.core.clipped_surrogate` and :func:`rlfoundry.core.value_loss`
and then, by hand, the backward formulas autograd would run for them (PyTorch's
``derivatives.yaml`` / ``FunctionsManual.cpp``): the same ATen ops on the same operands,
in the same order, so every gradient is bit for bit the one ``backward()`` gives
(``tests/test_handgrad.py`` checks it with ``torch.equal``). Ties of ``min`` split the
gradient in half, as autograd's ``minimum`` does; ``clamp`` passes it inside ``[lo, hi]``.

Covered: Discrete actions, tanh or ReLU MLPs (:func:`rlfoundry.algos.nets.mlp`), no
entropy bonus, no value clipping (the zoo's CartPole, Acrobot, MountainCar settings).
Anything else goes through autograd (:func:`supported`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

_ONE = torch.ones(())


def _tanh_backward(g: Tensor, y: Tensor) -> Tensor:
    """ATen's ``tanh_backward(g, y) = g * (1 - y * y)`` with its rounding: the kernel
    forms ``1 - y * y`` as one fused multiply-add, as ``addcmul`` does (the plain
    ``g * (1 - y * y)`` differs in the last bit for about two thirds of the entries).
    Public torch functions, not ``torch.ops.aten`` internals."""
    return torch.addcmul(_ONE, y, y, value=-1) * g


def _relu_backward(g: Tensor, y: Tensor) -> Tensor:
    """ATen's ``threshold_backward(g, y, 0)``: ``0 if y <= 0 else g``."""
    return g.masked_fill(y <= 0, 0)


def supported(agent: Any, ent_coef: float, clip_vloss: bool) -> bool:
    """Whether :func:`ppo_loss_grad` covers this agent and loss (else: autograd)."""
    acts = {torch.tanh, torch.relu}
    layers = [*agent._actor, *agent._critic]
    return (
        agent.discrete
        and ent_coef == 0.0
        and not clip_vloss
        and all(type(x) is tuple or x in acts for x in layers)
    )


def _forward(layers: list[Any], x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """:func:`rlfoundry.algos.nets.mlp_forward` (``addmm``, as ``F.linear`` on 2-D input),
    keeping each layer's input / activation output for the backward pass."""
    saved = [x]
    for layer in layers:
        x = torch.addmm(layer[1], x, layer[0].t()) if type(layer) is tuple else layer(x)
        saved.append(x)
    return x, saved


def _backward(layers: list[Any], saved: list[Tensor], g: Tensor) -> None:
    """Write ``p.grad`` of every Linear in ``layers`` from ``g`` = dLoss/dOutput.

    addmm(b, x, W.t()): dW = g.t() @ x (``mm_mat2_backward``, W.t() being column-major),
    db = g summed over the batch (the engine's ``sum_to``), dx = g @ W
    (``mm_mat1_backward``); tanh: ``tanh_backward(g, y)``; ReLU: ``threshold_backward``,
    each with ATen's rounding.
    """
    for i in range(len(layers) - 1, -1, -1):
        layer, x = layers[i], saved[i]
        if type(layer) is tuple:
            w, b = layer
            w.grad = g.t().mm(x)
            b.grad = g.sum(0)
            if i:
                g = g.mm(w)
        elif layer is torch.tanh:
            g = _tanh_backward(g, saved[i + 1])
        else:
            g = _relu_backward(g, saved[i + 1])


_CONST: dict[tuple[int, float], tuple[Tensor, ...]] = {}


def _constants(B: int, vf_coef: float) -> tuple[Tensor, ...]:
    """The backward's constant seeds for batch size B, computed as autograd computes them:
    d pg_loss / d loss_tok (mean, then neg) and its half (for min()'s ties), and
    d (vf_coef * 0.5 * mean(err)) / d err. Cached: the same values at every step."""
    key = (B, float(vf_coef))
    if key not in _CONST:
        with torch.no_grad():
            g = -(torch.ones(()).expand(B) / B)
            g_err = (torch.ones(()) * vf_coef * 0.5).expand(B) / B
            _CONST[key] = (g, g / 2, g_err, torch.zeros(()))
    return _CONST[key]


def ppo_loss_grad(
    agent: Any,
    obs: Tensor,
    act: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    ret: Tensor,
    clip: float,
    vf_coef: float,
) -> tuple[Tensor, ...]:
    """The gradient of ``clipped_surrogate(logp, old_logp, adv, clip)[0] + vf_coef *
    value_loss(val, ret)`` for a Discrete ``agent`` on ``obs`` ``[B, D]``, ``act`` ``[B]``:
    sets ``p.grad`` of every actor and critic parameter (what ``backward()`` would, with
    the grads None before).

    The loss values are not needed for the step, so they are not computed here: the
    return is ``(old_logp, logp, ratio, surr, surr_clipped, val - ret)``, each ``[B]``,
    from which :func:`ppo_stats` gives the losses, KL and clip fraction of a whole
    update at once (a dozen fewer small ops per step).

    Runs under ``torch.no_grad()``, entering one if gradients are enabled (PPO holds one
    around a whole update instead of entering one per step)."""
    if torch.is_grad_enabled():
        with torch.no_grad():
            return ppo_loss_grad(agent, obs, act, old_logp, adv, ret, clip, vf_coef)
    g, g_half, g_err, zero = _constants(obs.shape[0], vf_coef)
    # forward: ppo_token_loss and value_loss's operands
    out, saved_a = _forward(agent._actor, obs)  # [B, A]
    lsm = torch.log_softmax(out, -1)
    idx = act.unsqueeze(-1)
    logp = lsm.gather(-1, idx).squeeze(-1)  # [B]
    ratio = torch.exp(logp - old_logp)
    surr = ratio * adv
    clamped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    surr_c = clamped * adv
    v, saved_c = _forward(agent._critic, obs)  # [B, 1]
    d = v.squeeze(-1) - ret

    # backward of pg_loss: mean -> neg -> minimum -> mul / clamp -> exp -> gather
    # -> log_softmax, each as autograd computes it. minimum: ties get half, the
    # larger side 0; clamp: the gradient passes where clamp(r) == r (inside [lo, hi]).
    g_min = torch.where(surr == surr_c, g_half, g)
    g_surr = g_min.masked_fill(surr > surr_c, 0)
    g_surr_c = g_min.masked_fill(surr < surr_c, 0)
    g_ratio = g_surr * adv + torch.where(clamped == ratio, g_surr_c * adv, zero)
    g_lsm = torch.zeros_like(lsm).scatter_add_(-1, idx, (g_ratio * ratio).unsqueeze(-1))
    _backward(agent._actor, saved_a, torch._log_softmax_backward_data(g_lsm, lsm, -1, lsm.dtype))

    # backward of vf_coef * 0.5 * mean(d ** 2): pow's is g * (2 * d ** 1), and
    # d ** 1 is an exact copy of d
    _backward(agent._critic, saved_c, (g_err * (2.0 * d)).unsqueeze(-1))
    return old_logp, logp, ratio, surr, surr_c, d


def ppo_stats(parts: list[tuple[Tensor, ...]], clip: float) -> dict[str, Tensor]:
    """Policy loss, value loss, approx KL (k3) and clip fraction, each the mean over all
    samples of an update, from the :func:`ppo_loss_grad` returns of its steps: the
    quantities :func:`rlfoundry.core.clipped_surrogate` and
    :func:`rlfoundry.core.value_loss` compute per step (the mean of the per-step means
    when the minibatches are of one size, up to float rounding)."""
    with torch.no_grad():
        old_logp, logp, ratio, surr, surr_c, d = (torch.cat(x) for x in zip(*parts))
        log_ratio = old_logp - logp
        return {
            "policy_loss": (-torch.min(surr, surr_c)).mean(),
            "value_loss": 0.5 * (d**2).mean(),
            "approx_kl": (torch.expm1(-log_ratio) + log_ratio).mean(),
            "clip_fraction": ((ratio < 1.0 - clip) | (ratio > 1.0 + clip)).float().mean(),
        }
