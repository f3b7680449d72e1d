"""GAE, advantage normalisation and the GRPO / RLOO group baselines."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlfoundry.core import (
    discounted_returns,
    gae,
    group_relative_advantages,
    leave_one_out_advantages,
    normalize_advantages,
    overlong_penalty,
)

torch.set_num_threads(1)
SETTINGS = settings(max_examples=60, deadline=None)


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


F, T = False, True

# Hand case, gamma = lam = 0.5. Episode 1 = steps 0-1, TRUNCATED at step 1 (time limit);
# V(final obs of episode 1) = 10. Episode 2 = steps 2-3, cut off by the segment end,
# bootstrap V(s_4) = 6.
REW = t(1, 1, 1, 1)
VAL = t(1, 2, 3, 2)
NEXT_VAL = t(2, 10, 2, 6)  # [V(s1), V(final obs), V(s3), V(s4)]
TERM = torch.tensor([F, F, F, F])
TRUNC = torch.tensor([F, T, F, F])


def test_gae_hand_case_with_truncation():
    # delta_t = r + 0.5*(1-term)*next_val - val
    #   d0 = 1 + 0.5*2 - 1 = 1;   d1 = 1 + 0.5*10 - 2 = 4   (bootstraps from the final obs)
    #   d2 = 1 + 0.5*2 - 3 = -1;  d3 = 1 + 0.5*6 - 2 = 2
    # A_t = d_t + 0.25*(1-done_t)*A_{t+1}
    #   A3 = 2; A2 = -1 + 0.25*2 = -0.5; A1 = 4 (episode boundary); A0 = 1 + 0.25*4 = 2
    adv, ret = gae(REW, VAL, NEXT_VAL, TERM, TRUNC, 0.5, 0.5)
    assert torch.allclose(adv, t(2, 4, -0.5, 2))
    assert torch.allclose(ret, t(3, 6, 2.5, 4))  # adv + val


def test_gae_fails_if_truncation_treated_as_termination():
    # The CleanRL bug (issues 198, 457): done = term or trunc in the delta.
    # Then d1 = 1 - 2 = -1, A1 = -1, A0 = 1 + 0.25*(-1) = 0.75 -- not the hand values.
    wrong, _ = gae(REW, VAL, NEXT_VAL, TERM | TRUNC, torch.zeros(4, dtype=torch.bool), 0.5, 0.5)
    assert torch.allclose(wrong, t(0.75, -1, -0.5, 2))
    adv, _ = gae(REW, VAL, NEXT_VAL, TERM, TRUNC, 0.5, 0.5)
    assert not torch.allclose(adv, wrong)
    # The final-obs value at the truncated step matters: +2 there moves A1 by gamma*2 = 1
    # and A0 by gamma*lam*1 = 0.25.
    bumped = NEXT_VAL.clone()
    bumped[1] += 2
    adv2, _ = gae(REW, VAL, bumped, TERM, TRUNC, 0.5, 0.5)
    assert torch.allclose(adv2 - adv, t(0.25, 1, 0, 0))


def test_gae_terminated_step_ignores_next_value():
    term = torch.tensor([F, T, F, F])
    no_trunc = torch.zeros(4, dtype=torch.bool)
    adv, _ = gae(REW, VAL, NEXT_VAL, term, no_trunc, 0.5, 0.5)
    garbage = NEXT_VAL.clone()
    garbage[1] = float("nan")  # V of a terminal state's successor: undefined
    adv_nan, _ = gae(REW, VAL, garbage, term, no_trunc, 0.5, 0.5)
    # d1 = 1 - 2 = -1; A0 = 1 + 0.25*(-1) = 0.75
    assert torch.allclose(adv, t(0.75, -1, -0.5, 2))
    assert torch.equal(adv, adv_nan)


@pytest.mark.parametrize("boundary", ["terminated", "truncated"])
def test_gae_does_not_leak_across_episode_boundaries(boundary):
    flags = torch.tensor([F, T, F, F])
    none = torch.zeros(4, dtype=torch.bool)
    term, trunc = (flags, none) if boundary == "terminated" else (none, flags)
    adv, _ = gae(REW, VAL, NEXT_VAL, term, trunc, 0.9, 0.95)
    # Change everything about episode 2 (steps 2-3): episode 1 must not move.
    rew2, val2, nv2 = REW.clone(), VAL.clone(), NEXT_VAL.clone()
    rew2[2:] = t(100, -50)
    val2[2:] = t(7, -7)
    nv2[2:] = t(-7, 30)
    adv2, _ = gae(rew2, val2, nv2, term, trunc, 0.9, 0.95)
    assert torch.equal(adv[:2], adv2[:2])
    assert not torch.equal(adv[2:], adv2[2:])


def test_gae_batched_columns_are_independent_and_float_flags():
    # [T, N=2]: column 0 is the hand case, column 1 the same with a termination.
    rew = torch.stack([REW, REW], 1)
    val = torch.stack([VAL, VAL], 1)
    nv = torch.stack([NEXT_VAL, NEXT_VAL], 1)
    term = torch.stack([TERM, torch.tensor([F, T, F, F])], 1).double()  # 0/1 floats
    trunc = torch.stack([TRUNC, torch.zeros(4, dtype=torch.bool)], 1).double()
    adv, ret = gae(rew, val, nv, term, trunc, 0.5, 0.5)
    assert torch.allclose(adv[:, 0], t(2, 4, -0.5, 2))
    assert torch.allclose(adv[:, 1], t(0.75, -1, -0.5, 2))
    assert torch.allclose(ret, adv + val)


def test_gae_shape_mismatch_raises():
    with pytest.raises(ValueError, match="one shape"):
        gae(REW, VAL, NEXT_VAL[:3], TERM, TRUNC, 0.5, 0.5)


def test_gae_output_is_detached():
    val = VAL.clone().requires_grad_()
    adv, ret = gae(REW, val, NEXT_VAL, TERM, TRUNC, 0.5, 0.5)
    assert not adv.requires_grad and not ret.requires_grad


floats = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@st.composite
def rollouts(draw, with_trunc):
    n = draw(st.integers(1, 12))
    rew = t(*draw(st.lists(floats, min_size=n, max_size=n)))
    val = t(*draw(st.lists(floats, min_size=n + 1, max_size=n + 1)))  # V(s_0..s_T)
    term = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    trunc = (
        torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n))) & ~term
        if with_trunc
        else torch.zeros(n, dtype=torch.bool)
    )
    next_val = val[1:].clone()
    # behind a terminal step the next value is arbitrary (it must be masked out)
    junk = t(*draw(st.lists(floats, min_size=n, max_size=n)))
    next_val = torch.where(term, junk, next_val)
    # behind a truncated step it is V(final obs), not V(first obs of the next episode)
    final = t(*draw(st.lists(floats, min_size=n, max_size=n)))
    next_val = torch.where(trunc, final, next_val)
    gamma = draw(st.floats(0.0, 1.0))
    return rew, val[:-1], next_val, term, trunc, gamma


@SETTINGS
@given(rollouts(with_trunc=False))
def test_gae_lambda_one_is_bootstrapped_return_minus_value(r):
    rew, val, next_val, term, trunc, gamma = r
    adv, ret = gae(rew, val, next_val, term, trunc, gamma, 1.0)
    g = discounted_returns(rew, gamma, terminated=term, bootstrap=next_val[-1])
    assert torch.allclose(adv, g - val, atol=1e-9)
    assert torch.allclose(ret, g, atol=1e-9)


@SETTINGS
@given(rollouts(with_trunc=True), st.floats(0.0, 1.0))
def test_gae_lambda_zero_is_td_error(r, _):
    rew, val, next_val, term, trunc, gamma = r
    adv, _ = gae(rew, val, next_val, term, trunc, gamma, 0.0)
    td = rew + gamma * torch.where(term, 0.0, next_val) - val
    assert torch.allclose(adv, td, atol=1e-12)


def test_normalize_advantages_hand():
    # mean 2, population std sqrt(((-1)^2 + 0 + 1^2)/3) = sqrt(2/3) = 0.816497
    got = normalize_advantages(t(1, 2, 3))
    assert torch.allclose(got, t(-1.224745, 0, 1.224745), atol=1e-6)
    # masked entry is ignored in the statistics and comes back as 0
    got = normalize_advantages(t(1, 2, 3, 50), mask=torch.tensor([T, T, T, F]))
    assert torch.allclose(got, t(-1.224745, 0, 1.224745, 0), atol=1e-6)
    # a single entry: 0, not NaN
    assert normalize_advantages(t(5)).tolist() == [0.0]


@SETTINGS
@given(st.lists(floats, min_size=2, max_size=40), st.data())
def test_normalize_advantages_mean_zero_std_one(xs, data):
    adv = t(*xs)
    mask = torch.tensor(data.draw(st.lists(st.booleans(), min_size=len(xs), max_size=len(xs))))
    valid = adv[mask]
    if valid.numel() < 2 or valid.std(unbiased=False) < 1e-3:
        return  # constant input: nothing to scale
    out = normalize_advantages(adv, mask)
    assert abs(out[mask].mean().item()) < 1e-9
    assert out[mask].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert (out[~mask] == 0).all()


def test_group_relative_hand():
    rew = t(1, 2, 3, 0, 0, 4)  # 2 prompts x 3 completions, prompt-major
    # group 1: mean 2, unbiased std sqrt((1 + 0 + 1) / 2) = 1 -> [-1, 0, 1] / (1 + 1e-6)
    #   (the population std sqrt(2/3) would give +-1.2247 instead)
    # group 2: mean 4/3, deviations [-4/3, -4/3, 8/3],
    #   unbiased var = (16/9 + 16/9 + 64/9) / 2 = 48/9, std = 2.309401
    #   -> [-0.577350, -0.577350, 1.154701]
    got = group_relative_advantages(rew, 3)
    want = t(-1, 0, 1, -0.577350, -0.577350, 1.154701)
    assert torch.allclose(got, want, atol=1e-5)
    # Dr. GRPO: centred only
    got = group_relative_advantages(rew, 3, scale_std=False)
    assert torch.allclose(got, t(-1, 0, 1, -4 / 3, -4 / 3, 8 / 3))


@SETTINGS
@given(st.integers(1, 4), st.integers(2, 6), floats)
def test_group_relative_identical_rewards_give_zeros(n_prompts, k, r):
    adv = group_relative_advantages(torch.full((n_prompts * k,), r), k)
    assert torch.equal(adv, torch.zeros_like(adv))  # zero, and no NaN


def test_group_baselines_validate_layout():
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_relative_advantages(t(1, 2, 3), 2)
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out_advantages(t(1, 2, 3), 1)


def test_leave_one_out_hand():
    # 1 - (2+3)/2 = -1.5;  2 - (1+3)/2 = 0;  3 - (1+2)/2 = 1.5
    assert torch.allclose(leave_one_out_advantages(t(1, 2, 3), 3), t(-1.5, 0, 1.5))
    # k = 2: each is compared with the other one: [1-4, 4-1]
    assert torch.allclose(leave_one_out_advantages(t(1, 4), 2), t(-3, 3))


@SETTINGS
@given(st.integers(1, 4), st.integers(2, 6), st.data())
def test_leave_one_out_properties(n_prompts, k, data):
    xs = data.draw(st.lists(floats, min_size=n_prompts * k, max_size=n_prompts * k))
    rew = t(*xs)
    adv = leave_one_out_advantages(rew, k).reshape(n_prompts, k)
    g = rew.reshape(n_prompts, k)
    assert torch.allclose(adv.sum(1), torch.zeros(n_prompts, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(adv, k / (k - 1) * (g - g.mean(1, keepdim=True)), atol=1e-9)


def test_loo_and_grpo_relation_without_std():
    rew = t(0, 1, 1, 1)
    # centred: [-0.75, 0.25, 0.25, 0.25]; RLOO = 4/3 * centred
    loo = leave_one_out_advantages(rew, 4)
    assert torch.allclose(loo, 4 / 3 * group_relative_advantages(rew, 4, scale_std=False))
    assert math.isclose(loo[0].item(), -1.0)


def test_overlong_penalty_by_hand():
    """DAPO's soft overlong punishment: 0 up to max_len - buffer, a linear ramp to -1 at
    max_len, -1 for a completion cut off by the budget whatever its length."""
    lengths = torch.tensor([10, 48, 52, 56, 64, 64, 3])
    truncated = torch.tensor([False, False, False, False, False, True, True])
    got = overlong_penalty(lengths, truncated, max_len=64, buffer=16)
    assert got.tolist() == pytest.approx([0.0, 0.0, -0.25, -0.5, -1.0, -1.0, -1.0])
    # buffer 0: only the truncated ones
    assert overlong_penalty(lengths, truncated, 64).tolist() == [0, 0, 0, 0, 0, -1, -1]
