"""Baseline policies for the backtest: buy-and-hold, moving-average crossover, random.

Each is built from the env (``make(env) -> policy``) and reads only what the env
exposes up to the current bar (:meth:`TradingEnv.history`), so baselines face the same
no-look-ahead rule as the agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rlfoundry.apps.trading.env import BUY, SELL, TradingEnv

Policy = Callable[[Any], int]


def _long_action(env: TradingEnv) -> int:
    return BUY if env.sizes is None else int(np.argmax(env.sizes))


def _flat_action(env: TradingEnv) -> int:
    return SELL if env.sizes is None else int(np.argmin(np.abs(env.sizes)))


def buy_and_hold(env: TradingEnv) -> Policy:
    """Go fully long at the first open and stay there."""
    act = _long_action(env)
    return lambda obs: act


def ma_crossover(env: TradingEnv, fast: int = 20, slow: int = 50) -> Policy:
    """Long while the ``fast``-bar mean close is above the ``slow``-bar one, flat otherwise."""
    if fast >= slow:
        raise ValueError(f"fast={fast} must be shorter than slow={slow}.")
    long_act, flat_act = _long_action(env), _flat_action(env)

    def policy(obs: Any) -> int:
        close = env.history(slow)["close"].to_numpy()
        if len(close) < slow:
            return flat_act
        return long_act if close[-fast:].mean() > close.mean() else flat_act

    return policy


def random_policy(env: TradingEnv, seed: int = 0) -> Policy:
    """Uniformly random actions from its own seeded generator."""
    rng = np.random.default_rng(seed)
    n = int(env.action_space.n)
    return lambda obs: int(rng.integers(n))


BASELINES: dict[str, Callable[..., Policy]] = {
    "buy_and_hold": buy_and_hold,
    "ma_crossover": ma_crossover,
    "random": random_policy,
}
