"""Tabular SARSA, on-policy TD control (Rummery & Niranjan 1994; Sutton & Barto 2018, sec. 6.4).

After every real step (s, a, r, s') the agent first picks its next action a' with the
same epsilon-greedy policy, then

    Q(s, a) <- Q(s, a) + alpha * (r + gamma * Q(s', a') * (1 - terminated) - Q(s, a))

with the target :func:`rlfoundry.core.sarsa_target`. Because a' is the action the agent
really takes, Q is the value of the exploring policy, not of the greedy one: on
CliffWalking SARSA learns the safe path away from the edge where Q-learning learns the
edge (S&B example 6.6). It becomes greedy only as epsilon goes to 0.

    rlfoundry train sarsa --env CliffWalking-v1
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
    """SARSA needs no fields beyond the shared tabular ones."""


def train(cfg: Config, run: Run) -> dict[str, Any]:
    env, n_obs, n_act = tabular.make_tabular_env(cfg)
    Q = np.full((n_obs, n_act), cfg.q_init)  # [S, A]
    rng = np.random.default_rng(cfg.seed)
    epsilon_at, lr_at = tabular.epsilon_at(cfg), tabular.lr_at(cfg)
    tally = tabular.EpisodeTally(cfg.log_every)
    step, obs, _, state = tabular.resume(run, env, Q, rng, tally)
    # The action for `obs` is drawn one step ahead, so a checkpoint must carry it.
    act = state["act"] if state else tabular.epsilon_greedy(Q[obs], epsilon_at(step), rng)

    while step < cfg.total_steps:
        eps, alpha = epsilon_at(step), lr_at(step)
        next_obs, rew, terminated, truncated, _ = env.step(act)
        step += 1
        # Drawn even after a truncation: the bootstrap needs a', though the episode ends.
        next_act = tabular.epsilon_greedy(Q[next_obs], epsilon_at(step), rng)
        target = tabular.sarsa_target(float(rew), Q[next_obs, next_act], terminated, cfg.gamma)
        td = target - Q[obs, act]
        Q[obs, act] += alpha * td
        tally.step(float(rew), td)
        obs, act = next_obs, next_act
        if terminated or truncated:
            tally.end_episode(run, step, epsilon=eps, lr=alpha)
            obs, _ = env.reset()
            act = tabular.epsilon_greedy(Q[obs], epsilon_at(step), rng)
        if run.checkpoint_due(step):
            tabular.save_checkpoint(run, step, Q, rng, env, tally, state={"act": act})
            if run.stop_requested:
                env.close()
                return {}

    tally.finish(run, step, epsilon=epsilon_at(step), lr=lr_at(step))
    tabular.save_checkpoint(run, step, Q, rng, env, tally, state={"act": act})
    env.close()
    return {}
