"""Discounted returns, reward-to-go and episode return against hand arithmetic."""

import math

import numpy as np
import pytest
import torch

from rlfoundry.core import discounted_returns, episode_return, reward_to_go

torch.set_num_threads(1)


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_plain_reward_to_go():
    # G2 = 3; G1 = 2 + 0.5*3 = 3.5; G0 = 1 + 0.5*3.5 = 2.75
    assert torch.allclose(discounted_returns(t(1, 2, 3), 0.5), t(2.75, 3.5, 3.0))
    # gamma = 1: [1+2+3, 2+3, 3]
    assert torch.allclose(reward_to_go(t(1, 2, 3)), t(6, 5, 3))
    assert torch.allclose(reward_to_go(t(1, 2, 3), 0.5), t(2.75, 3.5, 3.0))


def test_reset_at_termination_and_bootstrap():
    term = torch.tensor([False, True, False])
    # G2 = 3 + 0.5*4 = 5 (bootstrap); G1 = 2 (terminated: nothing after); G0 = 1 + 0.5*2 = 2
    got = discounted_returns(t(1, 2, 3), 0.5, terminated=term, bootstrap=4.0)
    assert torch.allclose(got, t(2, 2, 5))


def test_bootstrap_ignored_when_last_step_terminated():
    term = torch.tensor([False, False, True])
    # NaN must not leak through the terminal mask (0 * nan = nan with a multiplicative mask)
    got = discounted_returns(t(1, 2, 3), 0.5, terminated=term, bootstrap=float("nan"))
    assert torch.allclose(got, t(2.75, 3.5, 3.0))


def test_batched_time_first_with_vector_bootstrap():
    rew = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]])  # [T=3, N=2]
    term = torch.tensor([[False, False], [False, True], [False, False]])
    boot = torch.tensor([0.0, 2.0])  # [N]
    # env 0: [2.75, 3.5, 3] as above.
    # env 1: G2 = 1 + 0.5*2 = 2; G1 = 0 (terminated); G0 = 0 + 0.5*0 = 0
    got = discounted_returns(rew, 0.5, terminated=term, bootstrap=boot)
    assert torch.allclose(got, torch.tensor([[2.75, 0.0], [3.5, 0.0], [3.0, 2.0]]))


def test_float_flags_accepted():
    got = discounted_returns(t(1, 2, 3), 0.5, terminated=t(0, 1, 0), bootstrap=4.0)
    assert torch.allclose(got, t(2, 2, 5))


def test_episode_return():
    # R = 1 + 0.5*2 + 0.25*3 = 2.75; undiscounted 6
    assert episode_return(t(1, 2, 3), 0.5).item() == pytest.approx(2.75)
    assert episode_return(t(1, 2, 3)).item() == pytest.approx(6.0)
    assert episode_return(t()).item() == 0.0


def test_numpy_and_python_in_numpy_and_float_out():
    got = discounted_returns(np.array([1, 2, 3]), 0.5)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_allclose(got, [2.75, 3.5, 3.0])
    got = discounted_returns([1.0, 2.0, 3.0], 0.5, terminated=[False, True, False], bootstrap=4.0)
    np.testing.assert_allclose(got, [2, 2, 5])
    r = episode_return([1, 2, 3], 0.5)
    assert isinstance(r, float) and r == pytest.approx(2.75)


def test_tensor_in_keeps_dtype():
    got = discounted_returns(torch.tensor([1.0, 2.0]), 0.9)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    # 1 + 0.9*2 = 2.8
    assert got[0].item() == pytest.approx(2.8)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="one flag per reward"):
        discounted_returns(t(1, 2, 3), 0.5, terminated=torch.tensor([True]))
    with pytest.raises(ValueError, match="time dimension"):
        discounted_returns(torch.tensor(1.0), 0.5)
    with pytest.raises(ValueError, match=r"\[T\]"):
        episode_return(torch.ones(2, 2))


def test_long_horizon_matches_closed_form():
    # constant reward 1 over T steps: G_0 = (1 - gamma^T) / (1 - gamma)
    g = discounted_returns(torch.ones(200, dtype=torch.float64), 0.99)
    assert g[0].item() == pytest.approx((1 - 0.99**200) / 0.01)
    assert math.isclose(g[-1].item(), 1.0)
