"""PPO's loss and its gradient without autograd, bit-identical to ``loss.backward()``.

For a CartPole-sized actor-critic (two 64-64 MLPs, a minibatch of 256) the arithmetic of
a gradient step is a few microseconds; what costs is dispatch: autograd records a graph
node per forward op and its engine walks them back, ~0.5 ms a step, more than the forward
pass, the clip and the Adam step together (measured, PPO CartPole-v1 with the zoo
settings: 7,800 such steps in 100k env steps). :func:`ppo_loss_grad` runs the forward
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

_tanh_backward = torch.ops.aten.tanh_backward
_threshold_backward = torch.ops.aten.threshold_backward
_log_softmax_backward = torch.ops.aten._log_softmax_backward_data


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
    (``mm_mat1_backward``); tanh: ``tanh_backward(g, y)``; ReLU: ``threshold_backward``.
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
            g = _threshold_backward(g, saved[i + 1], 0)


def ppo_loss_grad(
    agent: Any,
    obs: Tensor,
    act: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    ret: Tensor,
    clip: float,
    vf_coef: float,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """``loss = clipped_surrogate(logp, old_logp, adv, clip) + vf_coef * value_loss(val,
    ret)`` for a Discrete ``agent`` on ``obs`` ``[B, D]``, ``act`` ``[B]``; sets ``p.grad``
    of every actor and critic parameter to d loss / d p (what ``backward()`` would, with
    the grads None before). Returns ``(pg_loss, v_loss, info)`` as the core functions do
    (detached; info: ratio, clip_fraction, approx_kl)."""
    with torch.no_grad():
        B = obs.shape[0]
        # forward: clipped_surrogate (ppo_token_loss, token-mean) and value_loss
        out, saved_a = _forward(agent._actor, obs)  # [B, A]
        lsm = torch.log_softmax(out, -1)
        idx = act.unsqueeze(-1)
        logp = lsm.gather(-1, idx).squeeze(-1)  # [B]
        ratio = torch.exp(logp - old_logp)
        surr = ratio * adv
        surr_c = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv
        pg_loss = (-torch.min(surr, surr_c)).mean()
        clipped = ((ratio < 1.0 - clip) | (ratio > 1.0 + clip)).to(ratio.dtype)
        log_ratio = old_logp - logp  # kl_k3(old_logp, logp)
        info = {
            "ratio": ratio.mean(),
            "clip_fraction": clipped.mean(),
            "approx_kl": (torch.expm1(-log_ratio) + log_ratio).mean(),
        }
        v, saved_c = _forward(agent._critic, obs)  # [B, 1]
        d = v.squeeze(-1) - ret
        v_loss = 0.5 * (d**2).mean()

        # backward of pg_loss: mean -> neg -> minimum -> mul / clamp -> exp -> gather
        # -> log_softmax, each as autograd computes it.
        g = -(torch.ones(()).expand(B) / B)
        tie = surr == surr_c
        g_half = torch.where(tie, g / 2, g)
        g_surr = g_half.masked_fill(surr > surr_c, 0)
        g_surr_c = g_half.masked_fill(surr < surr_c, 0)
        inside = (ratio >= 1.0 - clip).logical_and_(ratio <= 1.0 + clip)
        g_ratio = g_surr * adv + torch.where(inside, g_surr_c * adv, torch.zeros(()))
        g_logp = g_ratio * ratio
        g_lsm = torch.zeros_like(lsm).scatter_add_(-1, idx, g_logp.unsqueeze(-1))
        _backward(agent._actor, saved_a, _log_softmax_backward(g_lsm, lsm, -1, lsm.dtype))

        # backward of vf_coef * 0.5 * mean((val - ret) ** 2)
        g_mean = torch.ones(()) * vf_coef * 0.5
        g_d = (g_mean.expand(B) / B) * (2.0 * d.pow(1.0))
        _backward(agent._critic, saved_c, g_d.unsqueeze(-1))
    return pg_loss, v_loss, info
