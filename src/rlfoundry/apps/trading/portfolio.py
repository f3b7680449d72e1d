"""``rlfoundry/Portfolio-v0``: hold weights over N assets, paying costs on turnover.

Data. ``data`` names N series (default: S&P 500, NASDAQ Composite, Alphabet and WTI
crude oil, the offline sets of :mod:`.data`, with their sources and licences there),
kept on the dates all of them share (2009-05-22 .. 2018-08-29 for the default four).
Each asset's features are :data:`~.data.FEATURES` computed on its own full history
(causal, so the intersection adds no look-ahead).

Timing, as in :class:`~.env.TradingEnv`. At step ``t`` the agent has seen bar ``t``
close; the observation holds the last ``window`` bars of every asset's features up to
and including bar ``t`` (``[window, N, F]``, flattened) and the current weights of
the N assets and cash at bar ``t``'s close. The action is a vector of ``N + 1``
non-negative numbers (assets, then cash), normalised to target weights ``w``
(all zeros means all cash). The portfolio is rebalanced at the **open of bar t+1**::

    V_o   = cash + sum_i shares_i * open_i            (value at the open)
    tau   = sum_i |w_i - shares_i * open_i / V_o|     (turnover, cash excluded)
    cost  = (commission + slippage) * tau * V_o
    shares_i = w_i * (V_o - cost) / open_i,  cash = w_cash * (V_o - cost)

unless ``tau <= rebalance_band`` (default 0.02), when nothing trades (so holding the
current weights, which drift between the close and the open, costs nothing); then
held to the close: ``rew_t = reward_scale * (V_{t+1} - V_t) / V_t``. Costs are
charged on the turnover towards the pre-cost target, a first-order approximation of
the exact self-financing rebalance (the gap is ``cost * tau``, under 1e-6 of value for
a 0.15 % cost rate). Episodes: ``episode_length`` bars from a seeded start inside
``period``, or the whole period when it is 0; the end of the data truncates.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from rlfoundry.apps.trading.data import (
    FEATURES,
    WARMUP,
    add_features,
    load_ohlcv,
    periods_per_year,
    resolve_period,
)
from rlfoundry.apps.trading.env import episode_window
from rlfoundry.errors import EnvError

DEFAULT_ASSETS: tuple[str, ...] = ("sp500", "nasdaq", "googl", "wti")


@functools.lru_cache(maxsize=4)
def load_panel(sources: tuple[str, ...]) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Dates shared by every source and ``{open, close, volume: [T, N], feats: [T, N, F]}``."""
    frames = [load_ohlcv(s) for s in sources]
    feats = [add_features(f) for f in frames]
    dates = frames[0].index
    for f in frames[1:]:
        dates = dates.intersection(f.index)
    if len(dates) < WARMUP + 10:
        raise EnvError(
            f"The assets {', '.join(sources)} share only {len(dates)} dates; pick series "
            "that overlap in time."
        )
    panel = {
        k: np.stack([f.loc[dates, k].to_numpy() for f in frames], axis=1)
        for k in ("open", "close", "volume")
    }
    panel["feats"] = np.stack(
        [f.loc[dates].to_numpy(dtype=np.float32) for f in feats], axis=1
    )  # [T, N, F]
    return pd.DatetimeIndex(dates, name="date"), panel


class PortfolioEnv(gym.Env):
    """Weights over N assets and cash; see the module docstring for timing and costs."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        data: list[str] | tuple[str, ...] = DEFAULT_ASSETS,
        period: str = "train",
        window: int = 20,
        episode_length: int = 252,
        initial_cash: float = 10_000.0,
        commission: float = 0.001,
        slippage: float = 0.0005,
        reward_scale: float = 100.0,
        rebalance_band: float = 0.02,
        split_fractions: tuple[float, float, float] | list[float] = (0.7, 0.15, 0.15),
    ) -> None:
        if isinstance(data, str) or len(data) < 2:
            raise EnvError(f"data={data!r} must name at least two assets, e.g. ['sp500', 'wti'].")
        if window < 1 or commission < 0 or slippage < 0:
            raise EnvError("window must be >= 1 and commission, slippage >= 0.")
        self.assets = tuple(str(d) for d in data)
        self.dates, panel = load_panel(self.assets)
        self._open, self._close = panel["open"], panel["close"]
        self._volume, self._feats = panel["volume"], panel["feats"]
        self.n = len(self.assets)
        self.start, self.stop = resolve_period(self.dates, period, tuple(split_fractions))
        self.window = int(window)
        self.first = max(self.start, WARMUP + self.window - 1)
        self.last = self.stop - 2
        if self.last - self.first < 1:
            raise EnvError(f"Period '{period}' is too short for window={window}.")
        self.episode_length = int(episode_length or 0)
        self.initial_cash = float(initial_cash)
        self.cost_rate = float(commission) + float(slippage)
        self.reward_scale = float(reward_scale)
        self.rebalance_band = float(rebalance_band)
        self.periods_per_year = periods_per_year(self.dates)
        n_obs = self.window * self.n * len(FEATURES) + self.n + 1
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (n_obs,), np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, (self.n + 1,), np.float32)
        self.t, self.end = self.first, self.last
        self.cash, self.shares = self.initial_cash, np.zeros(self.n)

    # ------------------------------------------------------------------ views of the past
    def value(self) -> float:
        return float(self.cash + self.shares @ self._close[self.t])

    def weights(self) -> np.ndarray:
        """Current weights of the N assets and cash at bar ``t``'s close, ``[N + 1]``."""
        v = self.value()
        held = self.shares * self._close[self.t]
        return np.r_[held, self.cash] / v if v > 0 else np.r_[np.zeros(self.n), 1.0]

    def returns(self, bars: int) -> np.ndarray:
        """Close-to-close returns of the last ``bars`` bars up to ``t``, ``[bars, N]``."""
        lo = max(1, self.t + 1 - bars)
        c = self._close[lo - 1 : self.t + 1]
        return c[1:] / c[:-1] - 1.0

    def _obs(self) -> np.ndarray:
        win = self._feats[self.t - self.window + 1 : self.t + 1].reshape(-1)
        extra = np.clip(self.weights(), -10.0, 10.0).astype(np.float32)
        return np.concatenate([np.nan_to_num(win), extra]).astype(np.float32)

    def target_weights(self, action: Any) -> np.ndarray:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), 0.0, None)
        if a.shape != (self.n + 1,) or not np.isfinite(a).all():
            raise EnvError(f"The action must be {self.n + 1} finite weights (assets, then cash).")
        total = a.sum()
        return a / total if total > 0 else np.r_[np.zeros(self.n), 1.0]

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t, self.end = episode_window(
            self.np_random, self.first, self.last, self.episode_length
        )
        self.cash, self.shares = self.initial_cash, np.zeros(self.n)
        return self._obs(), self._info(0.0, 0.0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        w = self.target_weights(action)
        v_before = self.value()
        t1 = self.t + 1
        o = self._open[t1]
        v_open = float(self.cash + self.shares @ o)
        tau = float(np.abs(w[:-1] - self.shares * o / v_open).sum()) if v_open > 0 else 0.0
        cost = 0.0
        if tau > self.rebalance_band:
            cost = self.cost_rate * tau * v_open
            v_after = v_open - cost
            self.shares = w[:-1] * v_after / o
            self.cash = float(w[-1] * v_after)
        else:
            tau = 0.0  # within the band: no trade
        self.t = t1
        v = self.value()
        rew = self.reward_scale * (v - v_before) / v_before
        terminated = v <= 0
        truncated = self.t >= self.end + 1 and not terminated
        return self._obs(), float(rew), bool(terminated), bool(truncated), self._info(tau, cost)

    def _info(self, turnover: float, cost: float) -> dict[str, Any]:
        return {
            "date": str(self.dates[self.t]),
            "value": self.value(),
            "weights": self.weights(),
            "turnover": turnover,
            "cost": cost,
        }


# ---------------------------------------------------------------------- baselines
def min_variance_weights(cov: np.ndarray) -> np.ndarray:
    """Long-only minimum-variance weights: ``w ∝ Σ⁻¹1`` on the assets kept, dropping
    any asset whose weight comes out negative and solving again (active set)."""
    n = len(cov)
    active = np.ones(n, dtype=bool)
    ridge = 1e-10 * np.trace(cov) / n
    while True:
        sub = cov[np.ix_(active, active)] + ridge * np.eye(active.sum())
        x = np.linalg.solve(sub, np.ones(active.sum()))
        w = np.zeros(n)
        w[active] = x / x.sum()
        if (w >= 0).all():
            return w
        active &= w > 0  # drop the negative ones (at least one stays: the sum is 1)


def min_variance(env: PortfolioEnv, lookback: int = 126, every: int = 21) -> Any:
    """Rebalance to the long-only min-variance weights of the last ``lookback`` bars'
    returns (known at ``t``) every ``every`` bars; hold the weights in between."""
    state: dict[str, Any] = {"since": every, "w": None}

    def policy(obs: Any) -> np.ndarray:
        if state["since"] >= every or state["w"] is None:
            r = env.returns(lookback)
            state["w"] = np.r_[min_variance_weights(np.cov(r, rowvar=False)), 0.0]
            state["since"] = 0
            return state["w"]
        state["since"] += 1
        return env.weights()  # let the weights drift: no trade

    return policy


def equal_weight(env: PortfolioEnv, every: int = 21) -> Any:
    """Equal weights, rebalanced every ``every`` bars."""
    state = {"since": every}
    target = np.r_[np.full(env.n, 1.0 / env.n), 0.0]

    def policy(obs: Any) -> np.ndarray:
        if state["since"] >= every:
            state["since"] = 0
            return target
        state["since"] += 1
        return env.weights()

    return policy


def run_portfolio(policy: Any, env: PortfolioEnv) -> dict[str, Any]:
    """One full-period episode: equity ``[n + 1]``, turnover and costs ``[n]``, dates."""
    obs, info = env.reset(seed=0)
    dates, equity, turnover, costs = [info["date"]], [info["value"]], [], []
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(policy(obs))
        dates.append(info["date"])
        equity.append(info["value"])
        turnover.append(info["turnover"])
        costs.append(info["cost"])
        done = term or trunc
    return {
        "dates": dates,
        "equity": np.asarray(equity),
        "turnover": np.asarray(turnover),
        "costs": np.asarray(costs),
    }
