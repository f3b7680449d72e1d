"""Meta-RL task distributions (rlfoundry.envs.meta)."""

from __future__ import annotations

import numpy as np

from rlfoundry.envs import meta
from rlfoundry.envs.evaluation import make_env


def test_bandit_observation_is_previous_action_and_reward():
    tasks = meta.BanditTasks(3, arms=4, horizon=10)
    rng = np.random.default_rng(0)
    obs = tasks.reset(rng)
    assert obs.shape == (3, 5) and not obs.any()
    tasks.means[:] = [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    obs, rew = tasks.step(np.array([0, 1, 2]), rng)
    np.testing.assert_array_equal(rew, [1, 0, 1])
    np.testing.assert_array_equal(obs, [[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 0, 1]])
    np.testing.assert_allclose(tasks.regret(np.array([1, 1, 2])), [1, 0, 0])


def test_mdp_trial_structure_and_oracle():
    tasks = meta.MDPTasks(200, states=4, actions=2, episode_len=3, episodes=2)
    rng = np.random.default_rng(1)
    obs = tasks.reset(rng)
    assert obs.shape == (200, 4 + 2 + 2) and (obs[:, :4].sum(1) == 1).all()
    assert not obs[:, 4:].any()
    dones = []
    for _ in range(tasks.trial_len):
        obs, _ = tasks.step(rng.integers(2, size=200), rng)
        dones.append(obs[0, -1])
        assert (obs[:, 4:6].sum(1) == 1).all()
    assert dones == [0, 0, 1, 0, 0, 1]
    best, rand = tasks.optimal_episode_return(), tasks.random_episode_return()
    assert (best >= rand - 1e-9).all() and best.mean() > rand.mean()
    # one-step check by hand: with episode_len 1 the oracle is the mean of max_a mu
    one = meta.MDPTasks(5, states=3, actions=2, episode_len=1, episodes=1)
    one.reset(rng)
    np.testing.assert_allclose(one.optimal_episode_return(), one.mu.max(2).mean(1))


def test_gym_view_draws_a_new_task_per_reset():
    env = make_env("rlfoundry/MetaBandit-v0", arms=3, horizon=4)
    obs, _ = env.reset(seed=0)
    m0 = env.unwrapped.tasks.means.copy()
    steps = 0
    done = False
    while not done:
        obs, rew, term, trunc, _ = env.step(1)
        steps += 1
        done = term or trunc
        assert obs[1] == 1 and obs[-1] == rew
    assert steps == 4 and term
    env.reset()
    assert not np.array_equal(m0, env.unwrapped.tasks.means)
