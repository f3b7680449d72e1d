"""PPO/RLOO token bookkeeping against hand-computed numbers: where the score and the KL
penalty land, per-token GAE over completions of different lengths, the adaptive KL
controller, RLOO's KL-shaped reward, and the reward model reading the EOS position."""

from __future__ import annotations

import pytest
import torch

from rlfoundry.llm.ppo import adaptive_kl, advantages_and_returns, token_rewards


def test_token_rewards_put_score_on_last_token():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0], [0.5, -0.5, 9.0, 9.0]])
    rew = token_rewards(torch.tensor([1.0, -2.0]), kl, mask, kl_coef=0.5)
    expected = torch.tensor([[-0.05, -0.1, -0.15 + 1.0, 0.0], [-0.25, 0.25 - 2.0, 0.0, 0.0]])
    assert torch.allclose(rew, expected)


def test_gae_per_completion_by_hand():
    # one completion of 3 tokens, one of 2 (then padding); gamma=1, lam=0.5
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    rew = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    val = torch.tensor([[0.5, 0.4, 0.3], [1.0, 1.5, 7.0]])  # 7.0 sits on padding
    adv, ret = advantages_and_returns(rew, val, mask, gamma=1.0, lam=0.5)
    # row 0: deltas d2 = 1 - 0.3 = 0.7, d1 = 0 + 0.3 - 0.4 = -0.1, d0 = 0.4 - 0.5 = -0.1
    #        A2 = 0.7, A1 = -0.1 + 0.5*0.7 = 0.25, A0 = -0.1 + 0.5*0.25 = 0.025
    # row 1: d1 = 2 - 1.5 = 0.5 (terminal: no bootstrap from the padding's 7.0),
    #        d0 = 1.5 - 1.0 = 0.5; A1 = 0.5, A0 = 0.5 + 0.25 = 0.75
    assert torch.allclose(adv[0], torch.tensor([0.025, 0.25, 0.7]))
    assert torch.allclose(adv[1, :2], torch.tensor([0.75, 0.5]))
    assert torch.allclose(ret[mask], (adv + torch.where(mask, val, 0.0))[mask])


def test_adaptive_kl_controller():
    # KL above target: coefficient grows, capped at +20% error
    assert adaptive_kl(0.1, kl=12.0, target=6.0, n=100, horizon=1000) == pytest.approx(
        0.1 * (1 + 0.2 * 0.1)
    )
    # KL at a quarter of the target: error clipped at -0.2
    assert adaptive_kl(0.1, kl=1.5, target=6.0, n=500, horizon=1000) == pytest.approx(0.1 * 0.9)
    assert adaptive_kl(0.1, kl=6.0, target=6.0, n=500, horizon=1000) == pytest.approx(0.1)


def test_rloo_shaped_reward_subtracts_sequence_kl():
    from rlfoundry.llm.rloo import shaped_reward
    from rlfoundry.llm.rollout import Rollout

    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    old = torch.tensor([[-1.0, -2.0, -50.0], [-0.5, -0.5, -0.5]])
    ref = torch.tensor([[-1.5, -1.0, 0.0], [-0.5, -1.0, -1.5]])
    ro = Rollout(
        prompts=["p", "p"],
        completions=["a", "b"],
        input_ids=torch.zeros(2, 4, dtype=torch.long),
        attention_mask=torch.ones(2, 4, dtype=torch.long),
        completion_mask=mask,
        old_logp=old,
        truncated=torch.zeros(2, dtype=torch.bool),
    )
    out = shaped_reward(0.1)(torch.tensor([1.0, 0.0]), ro, ref)
    # k1 sums: row 0: 0.5 - 1.0 = -0.5 (padding ignored); row 1: 0 + 0.5 + 1.0 = 1.5
    assert torch.allclose(out, torch.tensor([1.0 + 0.05, 0.0 - 0.15]))
    assert torch.equal(
        shaped_reward(0.0)(torch.tensor([1.0, 0.0]), ro, ref), torch.tensor([1.0, 0.0])
    )
