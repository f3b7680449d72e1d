"""TD3 / SAC math against hand arithmetic: clipped double-Q and soft Bellman targets,
target policy smoothing, the tanh-Gaussian log-probability, the actor and temperature
losses, and the Polyak update."""

import math

import pytest
import torch

from rlfoundry.core import (
    clipped_double_q_target,
    entropy_coef_loss,
    polyak_update,
    sac_actor_loss,
    smoothed_target_action,
    soft_q_target,
    squashed_gaussian,
)

torch.set_num_threads(1)


def test_clipped_double_q_target_takes_the_smaller_critic_and_masks_terminated():
    rew = torch.tensor([1.0, 1.0, 2.0])
    q1, q2 = torch.tensor([3.0, 5.0, 1.0]), torch.tensor([4.0, 2.0, 7.0])
    term = torch.tensor([False, False, True])
    # min = [3, 2, -]; y = [1 + 0.5 * 3, 1 + 0.5 * 2, 2 (terminated: no bootstrap)]
    y = clipped_double_q_target(rew, q1, q2, term, 0.5)
    assert y.tolist() == [2.5, 2.0, 2.0]
    # a terminal state's garbage value does not leak into the target
    nan = torch.tensor([float("nan")])
    assert (
        clipped_double_q_target(torch.tensor([2.0]), nan, nan, torch.tensor([True]), 0.9).item()
        == 2.0
    )


def test_soft_q_target_subtracts_alpha_logp_of_the_next_action():
    rew = torch.tensor([1.0, 0.0, 3.0])
    q1, q2 = torch.tensor([2.0, 4.0, 9.0]), torch.tensor([3.0, 1.0, 9.0])
    logp = torch.tensor([-1.0, 2.0, 0.0])
    term = torch.tensor([False, False, True])
    # soft value: [min(2,3) - 0.5 * -1 = 2.5, min(4,1) - 0.5 * 2 = 0]; y = rew + 0.9 * V
    y = soft_q_target(rew, q1, q2, logp, term, 0.9, 0.5)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 2.5, 0.0, 3.0]))
    assert not y.requires_grad
    # alpha = 0: SAC's target is TD3's clipped double-Q target
    torch.testing.assert_close(
        soft_q_target(rew, q1, q2, logp, term, 0.9, 0.0),
        clipped_double_q_target(rew, q1, q2, term, 0.9),
    )
    # alpha may be a tensor (learned temperature); the target stays detached
    alpha = torch.tensor(0.5, requires_grad=True)
    assert not soft_q_target(rew, q1, q2, logp, term, 0.9, alpha).requires_grad


def test_smoothed_target_action_clips_the_noise_then_the_action():
    next_act = torch.tensor([[0.9, -0.2, 0.0]])
    noise = torch.tensor([[0.3, -0.7, 0.1]])
    # noise clipped to +-0.5: [0.3, -0.5, 0.1]; sum [1.2, -0.7, 0.1]; action clipped to [-1, 1]
    out = smoothed_target_action(next_act, noise, 0.5)
    torch.testing.assert_close(out, torch.tensor([[1.0, -0.7, 0.1]]))


def test_squashed_gaussian_by_hand():
    # mean 0, std 1, eps 0: u = 0, a = 0, logp = 2 * log N(0; 0, 1) = -log(2 pi) = -1.837877
    act, logp = squashed_gaussian(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2))
    assert act.tolist() == [[0.0, 0.0]]
    assert logp.item() == pytest.approx(-1.837877, abs=1e-6)
    # mean 0.5, std 2, eps 1: u = 2.5, a = tanh(2.5) = 0.986614;
    # log N = -1/2 - log 2 - log(2 pi)/2 = -2.112086; log(1 - tanh(2.5)^2) = -3.627136
    # logp = -2.112086 + 3.627136 = 1.515051
    act, logp = squashed_gaussian(
        torch.tensor([[0.5]]), torch.tensor([[math.log(2.0)]]), torch.tensor([[1.0]])
    )
    assert act.item() == pytest.approx(0.986614, abs=1e-6)
    assert logp.item() == pytest.approx(1.515051, abs=1e-5)


def test_squashed_gaussian_matches_torch_distributions_and_stays_finite():
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g) * 0.5
    eps = torch.randn(64, 3, generator=g)
    act, logp = squashed_gaussian(mean, log_std, eps)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), torch.distributions.TanhTransform()
    )
    u = mean + log_std.exp() * eps
    ref = dist.base_dist.log_prob(u) - torch.distributions.TanhTransform().log_abs_det_jacobian(
        u, torch.tanh(u)
    )
    torch.testing.assert_close(logp, ref.sum(-1))
    torch.testing.assert_close(act, torch.tanh(u))
    # far in the tail tanh(u)^2 rounds to 1 in float32; the log-Jacobian must not be -inf
    _, logp = squashed_gaussian(torch.tensor([[20.0]]), torch.zeros(1, 1), torch.zeros(1, 1))
    # log N(0) - (2 * (log 2 - 20 - softplus(-40))) = -0.918939 + 40 - 1.386294
    assert logp.item() == pytest.approx(37.694767, abs=1e-4)


def test_squashed_gaussian_gradients_reach_mean_and_log_std():
    mean = torch.tensor([[0.3]], requires_grad=True)
    log_std = torch.tensor([[-0.5]], requires_grad=True)
    act, _ = squashed_gaussian(mean, log_std, torch.tensor([[1.0]]))
    act.sum().backward()
    # d tanh(u)/d mean = 1 - tanh(u)^2 with u = 0.3 + exp(-0.5) = 0.906531
    u = 0.3 + math.exp(-0.5)
    assert mean.grad.item() == pytest.approx(1 - math.tanh(u) ** 2, rel=1e-5)
    assert log_std.grad.item() == pytest.approx((1 - math.tanh(u) ** 2) * math.exp(-0.5), rel=1e-5)


def test_sac_actor_loss():
    logp = torch.tensor([1.0, -2.0])
    q1, q2 = torch.tensor([3.0, 0.0]), torch.tensor([2.0, 1.0])
    # [0.5 * 1 - min(3, 2), 0.5 * -2 - min(0, 1)] = [-1.5, -1.0]; mean -1.25
    assert sac_actor_loss(logp, q1, q2, 0.5).item() == -1.25


def test_entropy_coef_loss_value_and_direction():
    log_alpha = torch.tensor(math.log(2.0), requires_grad=True)
    logp = torch.tensor([-1.0, -3.0], requires_grad=True)
    # mean(logp + H) = mean([-2, -4]) = -3 with H = -1; loss = -log 2 * -3 = 2.079442
    loss = entropy_coef_loss(log_alpha, logp, -1.0)
    assert loss.item() == pytest.approx(3 * math.log(2.0))
    loss.backward()
    # entropy 2 above the target -1: gradient +3, so descent lowers alpha; logp gets none
    assert log_alpha.grad.item() == pytest.approx(3.0)
    assert logp.grad is None
    # entropy below the target (logp + H > 0): the gradient is negative, alpha rises
    log_alpha.grad = None
    entropy_coef_loss(log_alpha, torch.tensor([2.0]), 1.0).backward()
    assert log_alpha.grad.item() == pytest.approx(-3.0)


def test_polyak_update_soft_and_hard():
    target, online = [torch.tensor([0.0, 10.0])], [torch.tensor([4.0, 2.0])]
    polyak_update(target, online, 0.25)  # 0.25 * online + 0.75 * target
    assert target[0].tolist() == [1.0, 8.0]
    polyak_update(target, online, 1.0)
    assert torch.equal(target[0], online[0])
    net, copy = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    polyak_update(copy.parameters(), net.parameters(), 1.0)
    assert all(torch.equal(a, b) for a, b in zip(copy.parameters(), net.parameters()))
    with pytest.raises(ValueError):
        polyak_update([torch.zeros(1)], [], 0.5)
