"""The loss and sampling variants of LLM RL against numbers worked out by hand:
GSPO, CISPO (core.surrogates), IPO, hinge, KTO (core.preference), dynamic sampling's
group filter, and the repetition penalty / top-k / top-p filters (core.sampling)."""

from __future__ import annotations

import math

import pytest
import torch

from rlfoundry.core import aggregate_loss, clipped_surrogate, dpo_loss
from rlfoundry.core.losses import pair_margin
from rlfoundry.core.preference import DPO_LOSSES, hinge_loss, ipo_loss, kto_loss
from rlfoundry.core.sampling import apply_repetition_penalty, top_k_filter, top_p_filter
from rlfoundry.core.surrogates import (
    POLICY_LOSSES,
    cispo_token_loss,
    gspo_token_loss,
    nonconstant_groups,
)

LN2 = math.log(2.0)


def test_ppo_entry_is_the_clipped_surrogate():
    g = torch.Generator().manual_seed(0)
    logp, old = -torch.rand(3, 4, generator=g), -torch.rand(3, 4, generator=g)
    adv, mask = torch.tensor([[1.0], [-2.0], [0.5]]), torch.rand(3, 4, generator=g) > 0.3
    tok, info = POLICY_LOSSES["ppo"](logp, old, adv, mask, 0.2, 0.28)
    want, want_info = clipped_surrogate(logp, old, adv, 0.2, mask, "token-mean", 0.28)
    assert torch.equal(aggregate_loss(tok, mask, "token-mean"), want)
    assert torch.equal(info["clip_fraction"], want_info["clip_fraction"])


def test_gspo_one_clipped_ratio_per_sequence():
    # seq 0: token log-ratios [ln 2, 0] -> s = exp(ln2 / 2) = sqrt 2, A = +1:
    #        min(1.414, clip to 1.2) = 1.2 -> loss -1.2 on each token, no gradient
    # seq 1: log-ratio [-ln 2, (padding)] -> s = 0.5, A = +1: min(0.5, 0.8) = 0.5 -> -0.5,
    #        d(-s)/d logp_10 = -s * 1/|y_1| = -0.5
    old = torch.tensor([[-1.0, -2.0], [-1.0, -3.0]])
    logp = (old + torch.tensor([[LN2, 0.0], [-LN2, 123.0]])).requires_grad_()
    mask = torch.tensor([[True, True], [True, False]])
    adv = torch.ones(2, 1)
    tok, info = gspo_token_loss(logp, old, adv, mask, 0.2)
    assert torch.allclose(tok, torch.tensor([[-1.2, -1.2], [-0.5, -0.5]]))
    assert info["clip_fraction"] == 1.0  # both ratios lie outside [0.8, 1.2], as PPO counts
    assert torch.isclose(info["ratio"], torch.tensor((math.sqrt(2) + 0.5) / 2))
    loss = aggregate_loss(tok, mask, "seq-mean-token-mean")  # the paper's 1/G sum_i
    assert torch.isclose(loss, torch.tensor(-0.85))
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[0.0, 0.0], [-0.25, 0.0]]))
    # at ratio 1 the gradient is A_i times the mean token gradient of sequence i
    lp = old.clone().requires_grad_()
    aggregate_loss(
        gspo_token_loss(lp, old, adv, mask, 0.2)[0], mask, "seq-mean-token-mean"
    ).backward()
    assert torch.allclose(lp.grad, torch.tensor([[-0.25, -0.25], [-0.5, 0.0]]))


def test_cispo_clips_the_weight_and_keeps_the_gradient():
    # ratios [2, 1], eps_high 0.2 -> weights sg([1.2, 1.0]); A = 2
    # loss_t = -w_t A logp_t = [-1.2 * 2 * ln 0.5, -2 * ln 0.25] = [2.4 ln 2, 4 ln 2]
    logp = torch.log(torch.tensor([[0.5, 0.25]])).requires_grad_()
    old = torch.log(torch.tensor([[0.25, 0.25]]))
    tok, info = cispo_token_loss(logp, old, torch.tensor([[2.0]]), None, 0.2)
    assert torch.allclose(tok, torch.tensor([[2.4 * LN2, 4 * LN2]]))
    assert info["clip_fraction"] == 0.5
    tok.sum().backward()
    # the clipped token still gets -w A = -2.4 (PPO's clipped surrogate would give 0)
    assert torch.allclose(logp.grad, torch.tensor([[-2.4, -2.0]]))
    lp = logp.detach().clone().requires_grad_()
    ppo, _ = POLICY_LOSSES["ppo"](lp, old, torch.tensor([[2.0]]), None, 0.2, None)
    ppo.sum().backward()
    assert lp.grad[0, 0] == 0 and lp.grad[0, 1] != 0
    # clip_eps_high overrides clip_eps as the upper range
    tok, _ = cispo_token_loss(logp.detach(), old, torch.tensor([[2.0]]), None, 0.2, 0.5)
    assert torch.isclose(tok[0, 0], torch.tensor(3.0 * LN2))


def test_nonconstant_groups():
    rew = torch.tensor([1.0, 1.0, 0.0, 1.0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, -1, 2, 2, 2])
    assert nonconstant_groups(rew, 4).tolist() == [True, False, False, True]


def test_ipo_and_hinge_by_hand():
    # h = (pi_c - ref_c) - (pi_r - ref_r) = (-1 + 1.5) - (-2 + 1.5) = 1
    pc = torch.tensor([-1.0], requires_grad=True)
    pr, rc, rr = torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5])
    loss, r_c, r_r = ipo_loss(pc, pr, rc, rr, beta=0.25)  # target 1 / (2 beta) = 2
    assert torch.isclose(loss, torch.tensor(1.0))  # (1 - 2)^2
    loss.backward()
    assert torch.isclose(pc.grad, torch.tensor([-2.0]))  # 2 (h - 2)
    assert torch.isclose(r_c, torch.tensor([0.125])) and torch.isclose(r_r, torch.tensor([-0.125]))
    assert torch.isclose(hinge_loss(pc, pr, rc, rr, beta=0.5)[0], torch.tensor(0.5))  # 1 - 0.5
    pc.grad = None
    loss = hinge_loss(pc, pr, rc, rr, beta=2.0)[0]  # margin 2 > 1: no loss, no gradient
    loss.backward()
    assert loss == 0 and pc.grad == 0
    assert DPO_LOSSES["sigmoid"] is dpo_loss
    with pytest.raises(ValueError, match="label smoothing"):
        ipo_loss(pc, pr, rc, rr, 0.1, 0.1)


def test_pair_margin_by_hand():
    # h = (-1 - -1.5) - (-2 - -1.25) = 0.5 + 0.75 = 1.25; rewards beta (pi - ref), detached
    pc = torch.tensor([-1.0], requires_grad=True)
    pr, rc, rr = torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.25])
    h, r_c, r_r = pair_margin(pc, pr, rc, rr, beta=0.5)
    assert torch.equal(h, torch.tensor([1.25])) and h.requires_grad
    assert torch.equal(r_c, torch.tensor([0.25])) and torch.equal(r_r, torch.tensor([-0.375]))
    assert not r_c.requires_grad and not r_r.requires_grad


def test_kto_by_hand():
    # r = [0.5, -0.5], z0 = 0.1, beta = 1
    # desirable:   1 - sigmoid(0.5 - 0.1)    = 1 - sigmoid(0.4) = 0.401312
    # undesirable: 1 - sigmoid(0.1 - (-0.5)) = 1 - sigmoid(0.6) = 0.354344
    pol, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.5])
    good = torch.tensor([True, False])
    loss, rew = kto_loss(pol, ref, good, 0.1, beta=1.0)
    assert torch.isclose(loss, torch.tensor((0.401312 + 0.354344) / 2), atol=1e-6)
    assert torch.allclose(rew, torch.tensor([0.5, -0.5]))
    loss, _ = kto_loss(pol, ref, good, 0.1, beta=1.0, desirable_weight=2.0)
    assert torch.isclose(loss, torch.tensor((2 * 0.401312 + 0.354344) / 2), atol=1e-6)
    # the reference point is clamped at 0; at pi = ref every loss is lambda / 2
    assert torch.isclose(kto_loss(ref, ref, good, -3.0, beta=0.1)[0], torch.tensor(0.5))
    # gradient: raises a desirable completion's log-prob, lowers an undesirable one's
    p = pol.clone().requires_grad_()
    kto_loss(p, ref, good, 0.1, beta=1.0)[0].backward()
    assert p.grad[0] < 0 < p.grad[1]


def test_repetition_penalty_top_k_top_p_by_hand():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    seen = torch.tensor([[False, True, False, True]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[2.0, 0.5, 0.0, -2.0]]  # seen: 1 / 2 = 0.5, -1 * 2 = -2
    assert apply_repetition_penalty(logits, seen, 1.0) is logits
    lp = torch.log(torch.tensor([[0.15, 0.5, 0.05, 0.3]]))
    kept = lambda x: torch.isfinite(x)[0].tolist()  # noqa: E731
    assert kept(top_k_filter(lp, 2)) == [False, True, False, True]
    assert kept(top_k_filter(lp, 0)) == [True] * 4
    # sorted 0.5, 0.3, 0.15, 0.05; mass before each: 0, 0.5, 0.8, 0.95
    assert kept(top_p_filter(lp, 0.4)) == [False, True, False, False]
    assert kept(top_p_filter(lp, 0.75)) == [False, True, False, True]
    assert kept(top_p_filter(lp, 0.85)) == [True, True, False, True]
    assert torch.equal(top_p_filter(lp, 0.85)[0, [0, 1, 3]], lp[0, [0, 1, 3]])
    assert kept(top_p_filter(lp, 1.0)) == [True] * 4
