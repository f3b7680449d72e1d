"""Policy-gradient, PPO, value, entropy, Bradley-Terry, DPO losses and KL estimators."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlfoundry.core import (
    bradley_terry_loss,
    categorical_entropy,
    clipped_surrogate,
    dpo_loss,
    entropy_from_logits,
    gaussian_entropy,
    kl_estimate,
    kl_k1,
    kl_k2,
    kl_k3,
    pairwise_accuracy,
    policy_gradient_loss,
    value_loss,
)

torch.set_num_threads(1)
SETTINGS = settings(max_examples=60, deadline=None)
LOG2 = math.log(2)
floats = st.floats(-20, 20, allow_nan=False, allow_infinity=False)


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_policy_gradient_loss_seed_003():
    # D = 2 episodes: A has 2 steps with R = 3, B has 1 step with R = -1.
    logp = t(-1, -2, -0.5).requires_grad_()
    weights = t(3, 3, -1)  # R(tau) broadcast over each episode's steps
    # L = -1/2 * ((-1)(3) + (-2)(3) + (-0.5)(-1)) = -1/2 * (-8.5) = 4.25
    loss = policy_gradient_loss(logp, weights, num_episodes=2)
    assert loss.item() == pytest.approx(4.25)
    loss.backward()
    # dL/dlogp = -R / |D|
    assert torch.allclose(logp.grad, t(-1.5, -1.5, 0.5))
    # num_episodes None: mean over the 3 elements, 8.5 / 3
    assert policy_gradient_loss(logp, weights).item() == pytest.approx(8.5 / 3)


def test_policy_gradient_weights_are_constants():
    logp = t(-1.0).requires_grad_()
    w = t(2.0).requires_grad_()
    policy_gradient_loss(logp, w).backward()
    assert w.grad is None


# ratios [1.5, 0.5, 0.5, 1.5, 1.1], adv [1, 1, -1, -1, 2], eps = 0.2:
#   -min(1.5*1, 1.2*1)     = -1.2   (clipped: no more push up)
#   -min(0.5*1, 0.8*1)     = -0.5   (unclipped side is the pessimistic one)
#   -min(-0.5, 0.8*-1)     =  0.8   (clipped: no more push down)
#   -min(-1.5, 1.2*-1)     =  1.5   (unclipped)
#   -min(2.2, 2.2)         = -2.2
#   mean = (-1.2 - 0.5 + 0.8 + 1.5 - 2.2) / 5 = -1.6 / 5 = -0.32
RATIOS = t(1.5, 0.5, 0.5, 1.5, 1.1)
ADV = t(1, 1, -1, -1, 2)


def test_clipped_surrogate_hand():
    old_logp = t(-1, -2, -3, -0.5, -1.5)
    logp = (old_logp + RATIOS.log()).requires_grad_()
    loss, info = clipped_surrogate(logp, old_logp, ADV, 0.2)
    assert loss.item() == pytest.approx(-0.32)
    loss.backward()
    # grad of -ratio*adv/5 wrt logp is -ratio*adv/5 where unclipped is active, 0 where clipped:
    # [0, -0.5/5, 0, 1.5/5, -2.2/5]
    assert torch.allclose(logp.grad, t(0, -0.1, 0, 0.3, -0.44))
    assert info["ratio"].item() == pytest.approx(5.1 / 5)
    assert info["clip_fraction"].item() == pytest.approx(4 / 5)
    # k3 of old vs new: (r - 1) - log r -> 1.5: 0.5 - 0.405465 = 0.094535;
    # 0.5: -0.5 + 0.693147 = 0.193147; 1.1: 0.1 - 0.095310 = 0.004690
    # mean = (2*0.094535 + 2*0.193147 + 0.004690) / 5 = 0.116011
    assert info["approx_kl"].item() == pytest.approx(0.116011, abs=1e-6)
    assert not any(v.requires_grad for v in info.values())


def test_clipped_surrogate_asymmetric_dapo():
    old_logp = t(0.0)
    logp = old_logp + math.log(1.25)
    # symmetric eps 0.2: clipped to 1.2 -> -1.2; clip-higher 0.28: 1.25 is inside -> -1.25
    sym, info_sym = clipped_surrogate(logp, old_logp, t(1), 0.2)
    high, info_high = clipped_surrogate(logp, old_logp, t(1), 0.2, clip_eps_high=0.28)
    assert sym.item() == pytest.approx(-1.2)
    assert high.item() == pytest.approx(-1.25)
    assert info_sym["clip_fraction"].item() == 1.0 and info_high["clip_fraction"].item() == 0.0


def test_clipped_surrogate_masked_tokens():
    # [B=2, L=2]; the padded token has a huge ratio that must not count anywhere.
    old_logp = torch.zeros(2, 2, dtype=torch.float64)
    logp = t(0, 0, 0, 5).reshape(2, 2)
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = t(1, 3).reshape(2, 1)  # one advantage per sequence
    # ratio 1 on valid tokens: token-mean = -(1 + 1 + 3) / 3; seq-mean-token-mean = -(1 + 3)/2
    loss, info = clipped_surrogate(logp, old_logp, adv, 0.2, mask)
    assert loss.item() == pytest.approx(-5 / 3)
    assert info["clip_fraction"].item() == 0.0 and info["ratio"].item() == pytest.approx(1.0)
    loss, _ = clipped_surrogate(logp, old_logp, adv, 0.2, mask, agg="seq-mean-token-mean")
    assert loss.item() == pytest.approx(-2.0)


@SETTINGS
@given(st.lists(floats, min_size=1, max_size=20), st.data())
def test_clipped_surrogate_at_ratio_one(adv, data):
    adv = t(*adv)
    logp = t(*data.draw(st.lists(floats, min_size=len(adv), max_size=len(adv))))
    loss, info = clipped_surrogate(logp, logp.clone(), adv, 0.2)
    assert loss.item() == pytest.approx(-adv.mean().item(), abs=1e-9)
    assert info["clip_fraction"].item() == 0.0
    assert info["approx_kl"].item() == 0.0


def test_value_loss_hand():
    # 0.5 * ((1-2)^2 + (3-2)^2) / 2 = 0.5
    assert value_loss(t(1, 3), t(2, 2)).item() == pytest.approx(0.5)
    # masked third entry ignored
    assert value_loss(
        t(1, 3, 100), t(2, 2, 0), mask=torch.tensor([1, 1, 0])
    ).item() == pytest.approx(0.5)
    # clipped: val 2.1, old 1.0, ret 2, eps 0.2 -> val_clipped = 1.2;
    # max((0.1)^2, (0.8)^2) = 0.64 -> 0.32  (unclipped alone would be 0.005)
    val = t(2.1).requires_grad_()
    loss = value_loss(val, t(2.0), old_val=t(1.0), clip_eps=0.2)
    assert loss.item() == pytest.approx(0.32)
    loss.backward()
    assert val.grad.item() == 0.0  # the clipped branch wins and is flat in val
    assert value_loss(t(2.1), t(2.0)).item() == pytest.approx(0.005)
    with pytest.raises(ValueError, match="old_val"):
        value_loss(t(1.0), t(2.0), clip_eps=0.2)


def test_entropies_hand():
    # uniform over 4: log 4
    assert entropy_from_logits(torch.zeros(4)).item() == pytest.approx(math.log(4))
    # p = [0.25, 0.75]: 0.25*1.386294 + 0.75*0.287682 = 0.562335
    logits = t(0, math.log(3))
    assert entropy_from_logits(logits).item() == pytest.approx(0.562335, abs=1e-6)
    assert categorical_entropy(t(0.25, 0.75)).item() == pytest.approx(0.562335, abs=1e-6)
    # a masked action (-inf logit) contributes 0, not NaN, and gradients stay finite
    lg = t(0, 0, float("-inf")).requires_grad_()
    h = entropy_from_logits(lg)
    h.backward()
    assert h.item() == pytest.approx(LOG2) and torch.isfinite(lg.grad).all()
    assert categorical_entropy(t(1, 0)).item() == 0.0
    # batch shape kept: [2, 3] -> [2]
    assert entropy_from_logits(torch.zeros(2, 3)).shape == (2,)
    # Gaussian, log_std 0 per dim: 0.5*log(2*pi*e) = 1.418939; D = 2 -> 2.837877
    assert gaussian_entropy(torch.zeros(2)).item() == pytest.approx(2.837877, abs=1e-6)
    # std 2: 1.418939 + log 2 = 2.112086, as torch.distributions says
    ref = torch.distributions.Normal(0.0, 2.0).entropy().item()
    assert (
        gaussian_entropy(torch.tensor([LOG2])).item()
        == pytest.approx(ref)
        == pytest.approx(2.112086)
    )


def test_bradley_terry_hand():
    # -log sigmoid(2 - 0) = log(1 + e^-2) = log 1.135335 = 0.126928
    assert bradley_terry_loss(t(2), t(0)).item() == pytest.approx(0.126928, abs=1e-6)
    # a margin equal to the gap brings it back to log 2
    assert bradley_terry_loss(t(2), t(0), margin=2.0).item() == pytest.approx(LOG2)
    # badly wrong pair: -log sigmoid(-1000) = 1000, finite (log(sigmoid) would be inf)
    assert bradley_terry_loss(t(-1000), t(0)).item() == pytest.approx(1000.0)
    # accuracy: 1 > 0 yes, 2 > 2 tie counts wrong, 3 > 4 no -> 1/3
    assert pairwise_accuracy(t(1, 2, 3), t(0, 2, 4)).item() == pytest.approx(1 / 3)


@SETTINGS
@given(st.lists(floats, min_size=1, max_size=10))
def test_bradley_terry_equal_rewards_is_log2(r):
    r = t(*r)
    assert bradley_terry_loss(r, r.clone()).item() == pytest.approx(LOG2)


def test_dpo_hand():
    # chosen: policy -1 vs ref -2 -> +1; rejected: -3 vs -2 -> -1; z = 0.1 * (1 - (-1)) = 0.2
    # loss = -log sigmoid(0.2) = log(1 + e^-0.2) = log 1.818731 = 0.598139
    loss, rc, rr = dpo_loss(t(-1), t(-3), t(-2), t(-2), beta=0.1)
    assert loss.item() == pytest.approx(0.598139, abs=1e-6)
    assert rc.item() == pytest.approx(0.1) and rr.item() == pytest.approx(-0.1)
    # cDPO, ls = 0.1: 0.9 * 0.598139 + 0.1 * log(1 + e^0.2) = 0.538325 + 0.079814 = 0.618139
    loss, _, _ = dpo_loss(t(-1), t(-3), t(-2), t(-2), beta=0.1, label_smoothing=0.1)
    assert loss.item() == pytest.approx(0.618139, abs=1e-6)


def test_dpo_rewards_detached_and_gradient_direction():
    pc, pr = t(-1).requires_grad_(), t(-3).requires_grad_()
    loss, rc, rr = dpo_loss(pc, pr, t(-2), t(-2), beta=0.1)
    loss.backward()
    assert not rc.requires_grad and not rr.requires_grad
    # raising the chosen log-prob lowers the loss; raising the rejected one raises it
    assert pc.grad.item() < 0 < pr.grad.item()


@SETTINGS
@given(st.lists(floats, min_size=2, max_size=2), st.floats(0.01, 5), st.floats(0, 0.5))
def test_dpo_at_reference_is_log2(lps, beta, ls):
    c, r = t(lps[0]), t(lps[1])
    loss, rc, rr = dpo_loss(c, r, c.clone(), r.clone(), beta=beta, label_smoothing=ls)
    assert loss.item() == pytest.approx(LOG2)
    assert rc.item() == 0.0 and rr.item() == 0.0


def test_kl_estimators_hand():
    # log_ratio = log 0.5 - log 0.25 = log 2 = 0.693147
    lp, ref = t(math.log(0.5)), t(math.log(0.25))
    assert kl_k1(lp, ref).item() == pytest.approx(0.693147, abs=1e-6)
    assert kl_k2(lp, ref).item() == pytest.approx(0.5 * 0.693147**2, abs=1e-6)  # 0.240227
    assert kl_k3(lp, ref).item() == pytest.approx(0.5 - 1 + 0.693147, abs=1e-6)  # 0.193147
    for kind, fn in (("k1", kl_k1), ("k2", kl_k2), ("k3", kl_k3)):
        assert kl_estimate(lp, ref, kind).item() == fn(lp, ref).item()
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_estimate(lp, ref, "k4")


def test_k1_and_k3_are_unbiased_exactly():
    # Expectation under pi, computed exactly over a 3-outcome support:
    # E_pi[k3] = sum q - 1 + KL = KL because sum q = 1.
    p, q = t(0.5, 0.3, 0.2), t(0.2, 0.3, 0.5)
    kl = (p * (p / q).log()).sum()  # 0.5 ln 2.5 + 0.2 ln 0.4 = 0.458145 - 0.183258 = 0.274887
    assert kl.item() == pytest.approx(0.274887, abs=1e-6)
    assert (p * kl_k1(p.log(), q.log())).sum().item() == pytest.approx(kl.item())
    assert (p * kl_k3(p.log(), q.log())).sum().item() == pytest.approx(kl.item())
    # k2 is biased (here it overestimates): sum p * 0.5 * log(p/q)^2 != KL
    assert (p * kl_k2(p.log(), q.log())).sum().item() != pytest.approx(kl.item(), abs=1e-3)


@SETTINGS
@given(floats, floats)
def test_k2_k3_nonnegative(a, b):
    lp, ref = t(a), t(b)
    assert kl_k2(lp, ref).item() >= 0
    assert kl_k3(lp, ref).item() >= 0


@SETTINGS
@given(st.floats(-1e-6, 1e-6))
def test_k3_nonnegative_near_zero(x):
    # exp(-x) - 1 + x would round below 0 here; expm1 keeps it >= 0
    assert kl_k3(t(x), t(0)).item() >= 0
