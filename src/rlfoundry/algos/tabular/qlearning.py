"""Tabular Q-learning, the Q-table of seed 001 (Watkins 1989; Sutton & Barto 2018, sec. 6.5).

After every real step (s, a, r, s'):

    Q(s, a) <- Q(s, a) + alpha * (r + gamma * max_a' Q(s', a') * (1 - terminated) - Q(s, a))

The target is :func:`rlfoundry.core.q_learning_target`. It is off-policy: the agent
explores epsilon-greedily, but the target follows the greedy action, so Q approaches Q*
whatever the exploration (given every pair keeps being tried and alpha decays). Only
``terminated`` stops the bootstrap; an episode cut by the time limit still had a future.

    rlfoundry train qlearning --env FrozenLake-v1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlfoundry.algos.tabular import common as tabular
from rlfoundry.algos.tabular.common import (  # noqa: F401  (the module contract)
    TabularConfig,
    check,
    check_env,
    extra_eval,
    load_policy,
)
from rlfoundry.runtime.run import Run


@dataclass
class Config(TabularConfig):
    """Q-learning needs no fields beyond the shared tabular ones."""


def train(cfg: Config, run: Run) -> dict[str, Any]:
    env, n_obs, n_act = tabular.make_tabular_env(cfg)
    Q = np.full((n_obs, n_act), cfg.q_init)  # [S, A]
    rng = np.random.default_rng(cfg.seed)
    epsilon_at, lr_at = tabular.epsilon_at(cfg), tabular.lr_at(cfg)
    tally = tabular.EpisodeTally(cfg.log_every)
    step, obs, _, _ = tabular.resume(run, env, Q, rng, tally)

    while step < cfg.total_steps:
        eps, alpha = epsilon_at(step), lr_at(step)
        act = tabular.epsilon_greedy(Q[obs], eps, rng)
        next_obs, rew, terminated, truncated, _ = env.step(act)
        step += 1
        target = tabular.q_learning_target(float(rew), Q[next_obs], terminated, cfg.gamma)
        td = target - Q[obs, act]
        Q[obs, act] += alpha * td
        tally.step(float(rew), td)
        obs = next_obs
        if terminated or truncated:
            tally.end_episode(run, step, epsilon=eps, lr=alpha)
            obs, _ = env.reset()
        if run.checkpoint_due(step):
            tabular.save_checkpoint(run, step, Q, rng, env, tally)
            if run.stop_requested:
                env.close()
                return {}

    tally.finish(run, step, epsilon=epsilon_at(step), lr=lr_at(step))
    tabular.save_checkpoint(run, step, Q, rng, env, tally)
    env.close()
    return {}
