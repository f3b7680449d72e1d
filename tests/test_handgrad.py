"""The hand-written PPO gradient (rlfoundry.algos.deep.handgrad) is autograd's, bit for bit."""

import pytest
import torch
from gymnasium import spaces

from rlfoundry.algos.deep.handgrad import ppo_loss_grad, ppo_stats, supported
from rlfoundry.algos.deep.onpolicy import Agent
from rlfoundry.core import clipped_surrogate, normalize_advantages, value_loss


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("batch", [256, 7])
def test_hand_gradient_equals_autograd(activation, batch):
    torch.manual_seed(batch)
    agent = Agent(spaces.Box(-1, 1, (4,)), spaces.Discrete(3), (64, 32), activation)
    params = list(agent.parameters())
    obs, act = torch.randn(batch, 4), torch.randint(0, 3, (batch,))
    with torch.no_grad():
        for p in params:  # away from the init, so that the ratios spread and clip
            p.add_(0.3 * torch.randn_like(p))
        logp_now = agent.logp_value(obs, act)[0]
    old_logp = logp_now + 0.3 * torch.randn(batch)
    old_logp[:3] = logp_now[:3]  # ratio exactly 1: min()'s tie, where autograd halves
    adv, ret = normalize_advantages(torch.randn(batch)), torch.randn(batch)

    logp, _, val = agent.evaluate(obs, act, False)
    pg, info = clipped_surrogate(logp, old_logp, adv, 0.2)
    vl = value_loss(val, ret)
    (pg + 0.7 * vl).backward()
    ref = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None

    parts = ppo_loss_grad(agent, obs, act, old_logp, adv, ret, 0.2, 0.7)
    assert 0 < float(info["clip_fraction"]) < 1  # both branches of the clip are exercised
    assert all(torch.equal(a, p.grad) for a, p in zip(ref, params, strict=True))
    stats = ppo_stats([parts], 0.2)  # one step: the core functions' values exactly
    assert torch.equal(stats["policy_loss"], pg) and torch.equal(stats["value_loss"], vl)
    assert all(torch.equal(stats[k], info[k]) for k in ("approx_kl", "clip_fraction"))
    # two steps: the mean of the two steps' values
    both = ppo_stats([parts, parts], 0.2)
    torch.testing.assert_close(both["policy_loss"], pg)


def test_supported_only_where_the_formulas_hold():
    box, disc = spaces.Box(-1, 1, (4,)), spaces.Discrete(2)
    assert supported(Agent(box, disc), 0.0, False)
    assert not supported(Agent(box, disc), 0.01, False)  # entropy bonus: autograd
    assert not supported(Agent(box, disc), 0.0, True)  # clipped value loss: autograd
    assert not supported(Agent(box, spaces.Box(-1, 1, (2,))), 0.0, False)  # Gaussian
