"""Tabular Expected SARSA (van Seijen et al. 2009; Sutton & Barto 2018, sec. 6.6).

SARSA with the next action averaged out instead of sampled:

    Q(s, a) <- Q(s, a) + alpha * (r + gamma * (1 - terminated) * sum_a' pi(a'|s') Q(s', a') - Q(s, a))

with pi the epsilon-greedy policy the agent follows and the target
:func:`rlfoundry.core.expected_sarsa_target`. Removing the variance of the sampled a'
lets it take larger steps than SARSA (alpha = 1 is fine on deterministic envs); with
epsilon = 0 the expectation is the max and it is Q-learning.

    rlfoundry train expected_sarsa --env CliffWalking-v1
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
    """Expected SARSA needs no fields beyond the shared tabular ones."""


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
        # pi(.|s'): the policy that will act in s', i.e. with next step's epsilon.
        probs = tabular.epsilon_greedy_probs(Q[next_obs], epsilon_at(step))  # [A]
        target = tabular.expected_sarsa_target(
            float(rew), Q[next_obs], probs, terminated, cfg.gamma
        )
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
