"""Bandit baselines and regret (rlfoundry.mdp.bandits), against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from rlfoundry.mdp import bandits


def test_cumulative_regret_by_hand():
    means = np.array([[0.2, 0.8], [0.5, 0.4]])
    acts = np.array([[0, 1, 0], [1, 1, 0]])
    np.testing.assert_allclose(
        bandits.cumulative_regret(means, acts), [[0.6, 0.6, 1.2], [0.1, 0.2, 0.2]]
    )


def test_ucb1_tries_every_arm_once_then_follows_the_bound():
    rng = np.random.default_rng(0)
    means = bandits.bernoulli_tasks(rng, 50, 4)
    acts, rews = bandits.ucb1(means, 30, rng)
    np.testing.assert_array_equal(acts[:, :4], np.tile(np.arange(4), (50, 1)))
    assert set(np.unique(rews)) <= {0.0, 1.0}
    # step 4 (t = 4 pulls so far, each arm once): the bonus is equal, so the best sample wins
    bonus_equal_pick = acts[:, 4]
    first_rewards = rews[:, :4]
    assert all(first_rewards[i, bonus_equal_pick[i]] == first_rewards[i].max() for i in range(50))


def test_epsilon_one_is_uniform_and_zero_is_greedy():
    rng = np.random.default_rng(1)
    means = np.tile([0.0, 0.0, 1.0], (400, 1))  # deterministic rewards
    acts, _ = bandits.epsilon_greedy(means, 40, rng, eps=0.0)
    # greedy: once arm 2 has paid 1 it is never left (the others stay at 0)
    first = (acts == 2).argmax(1)
    assert all((acts[i, first[i] :] == 2).all() for i in range(400) if (acts[i] == 2).any())
    acts, _ = bandits.epsilon_greedy(means, 40, rng, eps=1.0)
    counts = np.bincount(acts.ravel(), minlength=3) / acts.size
    np.testing.assert_allclose(counts, 1 / 3, atol=0.02)


def test_seeded_runs_repeat():
    means = bandits.bernoulli_tasks(np.random.default_rng(2), 20, 5)
    for fn in bandits.BASELINES.values():
        a1, r1 = fn(means, 25, np.random.default_rng(3))
        a2, r2 = fn(means, 25, np.random.default_rng(3))
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(r1, r2)


def test_regret_ordering_on_5_armed_bandits():
    """Thompson < epsilon-greedy < random at H=100 (Duan et al. 2016, table 1 has
    Thompson 8.7 and random-ish baselines much higher), and learners' regret is sublinear."""
    means = bandits.bernoulli_tasks(np.random.default_rng(4), 1000, 5)
    final = {}
    for name, fn in bandits.BASELINES.items():
        acts, _ = fn(means, 100, np.random.default_rng(5))
        reg = bandits.cumulative_regret(means, acts).mean(0)
        final[name] = reg[-1]
        if name != "random":
            assert reg[99] - reg[49] < reg[49], name  # the second half costs less than the first
    assert final["thompson"] < final["epsilon_greedy"] < final["random"]
    assert final["ucb1"] < final["random"]
    assert 6.0 < final["thompson"] < 11.0
    assert final["random"] == pytest.approx(100 * np.mean(means.max(1) - means.mean(1)), rel=0.05)
