"""Per-task learners on random MDP trials (rlfoundry.mdp.learners)."""

from __future__ import annotations

import numpy as np
import pytest

from rlfoundry.envs import meta
from rlfoundry.mdp import learners as mdp_learners


def _tasks(n: int, seed: int, **kw) -> meta.MDPTasks:
    tasks = meta.MDPTasks(n, **kw)
    tasks.reset(np.random.default_rng(seed))
    return tasks


def test_optimistic_q_learning_tries_every_action_then_exploits():
    """One state, two actions with mean rewards +5 / -5, episodes of one step. From
    Q = 10 (alpha 0.5, greedy), a pulled action's Q drops to about 7.5 or 2.5, below the
    untried one's 10: the first two pulls cover both actions, then it keeps the +5 one.
    From Q = 0 and greedy, it would never try the second action after a good first pull."""
    tasks = _tasks(1, 0, states=1, actions=2, episode_len=1, episodes=8)
    tasks.mu[:] = [[[5.0, -5.0]]]
    rew = mdp_learners.q_learning(tasks, np.random.default_rng(0), 0.5, 0.9, 0.0, q0=10.0)
    assert rew.shape == (8, 1)
    assert sorted(np.sign(rew[:2, 0])) == [-1, 1]
    assert (rew[2:, 0] > 0).all()


def test_expected_reward_is_mu_of_the_current_state():
    """Hand-set means: task k's mean reward for (state, action) is 100k + 10s + a, so the
    expected reward of each task's current state and action can be read off by hand."""
    tasks = _tasks(3, 1, states=3, actions=2)
    tasks.mu[:] = [[[100 * k + 10 * s + a for a in range(2)] for s in range(3)] for k in range(3)]
    tasks.s = np.array([2, 0, 1])
    got = tasks.expected_reward(np.array([1, 0, 1]))
    np.testing.assert_array_equal(got, [21.0, 100.0, 211.0])


@pytest.mark.parametrize("name", ["q_learning", "epsilon_greedy_q", "psrl"])
def test_learners_beat_random_and_stay_below_the_optimum(name):
    """On 500 shared tasks (5 states, 3 actions, 5 episodes of 10 steps) each learner's
    mean trial return lies between the random policy's and the optimal policy's (measured
    on 2,000 tasks: random 49.9, PSRL 63.3, eps-greedy Q 69.9, optimistic Q 76.2, optimum
    94.3)."""
    tasks = _tasks(500, 3)
    best = (tasks.optimal_episode_return() * tasks.episodes).mean()
    rand = (tasks.random_episode_return() * tasks.episodes).mean()
    ret = mdp_learners.BASELINES[name](tasks, np.random.default_rng(4)).sum(0).mean()
    assert rand + 8 < ret < best, (rand, ret, best)


def test_random_actions_match_the_random_policys_expected_return():
    tasks = _tasks(2000, 5)
    expected = (tasks.random_episode_return() * tasks.episodes).mean()
    ret = mdp_learners.random_actions(tasks, np.random.default_rng(6)).sum(0).mean()
    assert ret == pytest.approx(expected, abs=1.5)
