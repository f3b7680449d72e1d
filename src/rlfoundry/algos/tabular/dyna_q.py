"""Tabular Dyna-Q: Q-learning plus planning with a learned model (Sutton & Barto 2018, sec. 8.2).

Every real step (s, a, r, s') does three things:

1. direct RL: the Q-learning update of :mod:`rlfoundry.algos.tabular.qlearning`;
2. model learning: record the outcome (r, s', terminated) of (s, a);
3. planning, ``planning_steps`` (n) times: pick a previously tried (s, a) uniformly,
   draw an outcome from the model and apply the same Q-learning update to it.

Planning replays experience at no cost in real steps, so Dyna-Q needs fewer of them
than Q-learning to find the optimum (tests/algos/test_tabular_learning.py measures
it; ``benchmarks/tabular_dyna.py`` draws the curves).

The model. S&B's tabular Dyna-Q assumes a deterministic env and keeps the last outcome
of each pair. That is biased on a stochastic env (FrozenLake, the slippery GridWorld):
planning would replay whatever happened last as if it were certain. We keep instead the
*empirical distribution*: every distinct outcome of a pair with how often it was seen,
and sample an outcome in proportion to its count. On a deterministic env it is the same
as the last outcome; on a stochastic one the planning updates average to the
maximum-likelihood model's expected update. Pairs are sampled uniformly over those
tried (S&B sample a state, then an action tried in it; uniform over pairs is the common
simplification). With ``planning_steps = 0`` this file does exactly what
``qlearning`` does, draw for draw.

    rlfoundry train dyna_q --env rlfoundry/GridWorld-v0
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
from rlfoundry.errors import ConfigError
from rlfoundry.runtime.run import Run


@dataclass
class Config(TabularConfig):
    """Dyna-Q: the tabular fields plus the number of planning updates per real step."""

    planning_steps: int = 10
    """Simulated Q-learning updates from the learned model after each real step (n in S&B 8.2)."""

    def validate(self) -> None:
        super().validate()
        if self.planning_steps < 0:
            raise ConfigError("planning_steps must be >= 0; fix it in the config file or --set.")


class Model:
    """Empirical model of the tried pairs: ``(s, a) -> [[count, r, s', terminated], ...]``."""

    def __init__(self) -> None:
        self.pairs: list[tuple[int, int]] = []  # tried pairs, first-seen order
        self.outcomes: dict[tuple[int, int], list[list]] = {}
        self.visits: dict[tuple[int, int], int] = {}

    def add(self, s: int, a: int, r: float, s2: int, term: bool, count: int = 1) -> None:
        key = (s, a)
        outs = self.outcomes.get(key)
        if outs is None:
            self.pairs.append(key)
            outs = self.outcomes[key] = []
            self.visits[key] = 0
        self.visits[key] += count
        for out in outs:
            if out[1] == r and out[2] == s2 and out[3] == term:
                out[0] += count
                return
        outs.append([count, r, s2, term])

    def sample(self, i: int, u: float) -> tuple[int, int, float, int, bool]:
        """Pair ``i`` and its outcome at quantile ``u`` in [0, 1) of the empirical distribution."""
        s, a = self.pairs[i]
        left = u * self.visits[(s, a)]
        outs = self.outcomes[(s, a)]
        for count, r, s2, term in outs:
            left -= count
            if left < 0:
                return s, a, r, s2, term
        _, r, s2, term = outs[-1]  # u * n rounded up to n
        return s, a, r, s2, term

    def arrays(self) -> dict[str, np.ndarray]:
        """One row per (pair, outcome), in sampling order, for the checkpoint."""
        rows = [(s, a, *out) for (s, a) in self.pairs for out in self.outcomes[(s, a)]]
        if not rows:
            rows_i, rew = np.zeros((0, 5), dtype=np.int64), np.zeros(0)
        else:
            rows_i = np.array([(s, a, c, s2, int(t)) for s, a, c, _, s2, t in rows], np.int64)
            rew = np.array([r for _, _, _, r, _, _ in rows], np.float64)
        return {"model/rows": rows_i, "model/rew": rew}  # rows: [K, 5] s, a, count, s', term

    @classmethod
    def from_arrays(cls, rows: np.ndarray, rew: np.ndarray) -> Model:
        model = cls()
        for (s, a, count, s2, term), r in zip(rows.tolist(), rew.tolist()):
            model.add(s, a, r, s2, bool(term), count)
        return model


def train(cfg: Config, run: Run) -> dict[str, Any]:
    env, n_obs, n_act = tabular.make_tabular_env(cfg)
    Q = np.full((n_obs, n_act), cfg.q_init)  # [S, A]
    rng = np.random.default_rng(cfg.seed)
    epsilon_at, lr_at = tabular.epsilon_at(cfg), tabular.lr_at(cfg)
    tally = tabular.EpisodeTally(cfg.log_every)
    step, obs, tensors, _ = tabular.resume(run, env, Q, rng, tally)
    model = Model.from_arrays(tensors["model/rows"], tensors["model/rew"]) if tensors else Model()
    n, gamma = cfg.planning_steps, cfg.gamma

    while step < cfg.total_steps:
        eps, alpha = epsilon_at(step), lr_at(step)
        act = tabular.epsilon_greedy(Q[obs], eps, rng)
        next_obs, rew, terminated, truncated, _ = env.step(act)
        step += 1
        rew = float(rew)
        # (1) direct RL: the Q-learning update
        td = tabular.q_learning_target(rew, Q[next_obs], terminated, gamma) - Q[obs, act]
        Q[obs, act] += alpha * td
        # (2) model learning
        model.add(int(obs), act, rew, int(next_obs), bool(terminated))
        # (3) planning: n simulated Q-learning updates from the model
        if n:
            pair_idx = rng.integers(len(model.pairs), size=n).tolist()
            quantiles = rng.random(n).tolist()
            for i, u in zip(pair_idx, quantiles):
                s, a, r, s2, term = model.sample(i, u)
                Q[s, a] += alpha * (tabular.q_learning_target(r, Q[s2], term, gamma) - Q[s, a])
        tally.step(rew, td)
        obs = next_obs
        if terminated or truncated:
            tally.end_episode(run, step, epsilon=eps, lr=alpha)
            obs, _ = env.reset()
        if run.checkpoint_due(step):
            tabular.save_checkpoint(run, step, Q, rng, env, tally, tensors=model.arrays())
            if run.stop_requested:
                env.close()
                return {}

    tally.finish(run, step, epsilon=epsilon_at(step), lr=lr_at(step))
    tabular.save_checkpoint(run, step, Q, rng, env, tally, tensors=model.arrays())
    env.close()
    return {}
