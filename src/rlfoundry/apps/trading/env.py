"""``rlfoundry/Trading-v0``: trade one asset on real daily or hourly bars.

Timing (no look-ahead). At step ``t`` the agent has seen bar ``t`` close; the
observation holds the last ``window`` bars of :data:`~rlfoundry.apps.trading.data.FEATURES`
up to and including bar ``t``, plus its position and cash as fractions of portfolio
value. The order it places fills at the **open of bar t+1**, paying slippage
(``open * (1 +- slippage)``) and a commission on the traded value; the reward is the
change in portfolio value from the close of ``t`` to the close of ``t+1`` after those
costs, relative to the value at ``t`` and scaled by ``reward_scale``::

    rew_t = reward_scale * (V_{t+1} - V_t) / V_t,    V = cash + shares * close

Actions. Default ``Discrete(3)``: 0 = SELL (go flat, or fully short when
``allow_short``), 1 = HOLD, 2 = BUY (go fully long). With ``sizes=[0, 0.5, 1]`` (the
position-size variant) action ``i`` sets the target exposure to ``sizes[i]`` of the
portfolio. Shares are fractional; a target within ``rebalance_band`` of the current
exposure does not trade.

Episodes. ``episode_length`` bars from a start drawn with the env's seeded generator
inside ``period`` (training), or the whole period from its first bar when
``episode_length`` is 0 (backtests). Reaching the end of the data is a time limit
(``truncated``); only a portfolio worth <= 0 terminates. Everything random comes from
``reset(seed=...)``, so the env replays exactly from its action log.

An optional LLM evaluator (``llm={...}``, see :mod:`.llm_evaluator`) reviews every order
before it fills: as an action filter its veto turns the order into HOLD, as reward
shaping its score is added to the reward.
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
from rlfoundry.errors import EnvError

SELL, HOLD, BUY = 0, 1, 2
ACTION_NAMES = ("SELL", "HOLD", "BUY")


@functools.lru_cache(maxsize=8)
def _load(source: str) -> tuple[pd.DataFrame, np.ndarray]:
    bars = load_ohlcv(source)
    feats = add_features(bars).to_numpy(dtype=np.float32)
    return bars, feats


def episode_window(
    rng: np.random.Generator, first: int, last: int, episode_length: int
) -> tuple[int, int]:
    """(start bar, last bar) of an episode: the whole span [first, last] when
    ``episode_length`` is 0 or not shorter than it, else a window of that many bars whose
    start ``rng`` draws uniformly."""
    if episode_length <= 0 or episode_length >= last - first:
        return first, last
    start = int(rng.integers(first, last - episode_length + 1))
    return start, start + episode_length - 1


class TradingEnv(gym.Env):
    """One-asset trading on OHLCV bars; see the module docstring for timing and reward."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        data: str = "sp500",
        period: str = "train",
        window: int = 20,
        episode_length: int = 252,
        initial_cash: float = 10_000.0,
        commission: float = 0.001,
        slippage: float = 0.0005,
        sizes: list[float] | None = None,
        allow_short: bool = False,
        rebalance_band: float = 0.05,
        reward_scale: float = 100.0,
        split_fractions: tuple[float, float, float] | list[float] = (0.7, 0.15, 0.15),
        llm: dict[str, Any] | Any | None = None,
        render_mode: str | None = None,
    ) -> None:
        if window < 1:
            raise EnvError(f"window={window} must be at least 1 bar.")
        if commission < 0 or slippage < 0:
            raise EnvError(
                "commission and slippage are fractions of traded value and must be >= 0."
            )
        self.data_name = str(data)
        self.bars, self._feats = _load(self.data_name)
        self.period = period
        self.start, self.stop = resolve_period(self.bars.index, period, tuple(split_fractions))
        self.window = int(window)
        self.first = max(self.start, WARMUP + self.window - 1)  # first decision bar
        self.last = self.stop - 2  # last decision bar: its order fills at stop - 1
        if self.last - self.first < 1:
            raise EnvError(
                f"Period '{period}' of '{data}' is too short for window={window}; widen it or shrink the window."
            )
        self.episode_length = int(episode_length or 0)
        self.initial_cash = float(initial_cash)
        self.commission = float(commission)
        self.slippage = float(slippage)
        self.allow_short = bool(allow_short)
        self.rebalance_band = float(rebalance_band)
        self.reward_scale = float(reward_scale)
        self.sizes = None if sizes is None else [float(s) for s in sizes]
        if self.sizes is not None:
            lo = -1.0 if allow_short else 0.0
            if not self.sizes or any(s < lo or s > 1.0 for s in self.sizes):
                raise EnvError(f"sizes={sizes} must be exposures in [{lo:g}, 1], e.g. [0, 0.5, 1].")
        self.periods_per_year = periods_per_year(self.bars.index)
        self._open = self.bars["open"].to_numpy()
        self._close = self.bars["close"].to_numpy()
        self.render_mode = render_mode

        n_feat = len(FEATURES) * self.window + 2
        # Features are clipped to [-5, 5] in data.py; exposure and cash fractions to [-10, 10].
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (n_feat,), np.float32)
        self.action_space = gym.spaces.Discrete(3 if self.sizes is None else len(self.sizes))

        self.llm = None
        if llm:
            from rlfoundry.apps.trading.llm_evaluator import LLMEvaluator

            self.llm = llm if isinstance(llm, LLMEvaluator) else LLMEvaluator.from_config(llm)

        self.t = self.first
        self.end = self.last
        self.cash = self.initial_cash
        self.shares = 0.0
        self.last_fill: dict[str, float] | None = None

    # ------------------------------------------------------------------ helpers
    def value(self, t: int | None = None) -> float:
        """Portfolio value at the close of bar ``t`` (default: the current bar)."""
        return self.cash + self.shares * self._close[self.t if t is None else t]

    def exposure(self) -> float:
        """Signed value held in the asset as a fraction of portfolio value, at bar t's close."""
        v = self.value()
        return self.shares * self._close[self.t] / v if v > 0 else 0.0

    def history(self, bars: int | None = None) -> pd.DataFrame:
        """OHLCV bars up to and including the current decision bar ``t`` (never later)."""
        lo = 0 if bars is None else max(0, self.t + 1 - bars)
        return self.bars.iloc[lo : self.t + 1]

    def features(self, bars: int = 1) -> pd.DataFrame:
        """Feature rows up to and including bar ``t``."""
        lo = max(0, self.t + 1 - bars)
        return pd.DataFrame(
            self._feats[lo : self.t + 1], index=self.bars.index[lo : self.t + 1], columns=FEATURES
        )

    def target_exposure(self, action: int) -> float | None:
        """Exposure ``action`` asks for, or None for HOLD."""
        if self.sizes is not None:
            return self.sizes[action]
        if action == HOLD:
            return None
        if action == BUY:
            return 1.0
        return -1.0 if self.allow_short else 0.0

    def action_name(self, action: int) -> str:
        if self.sizes is None:
            return ACTION_NAMES[action]
        return f"TARGET {self.sizes[action]:+.0%}"

    def would_trade(self, action: int) -> bool:
        target = self.target_exposure(action)
        return target is not None and abs(target - self.exposure()) > self.rebalance_band

    def _obs(self) -> np.ndarray:
        win = self._feats[self.t - self.window + 1 : self.t + 1].reshape(-1)
        v = self.value()
        extra = np.array([self.exposure(), self.cash / v if v > 0 else 0.0], dtype=np.float32)
        return np.concatenate([np.nan_to_num(win), np.clip(extra, -10.0, 10.0)]).astype(np.float32)

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t, self.end = episode_window(
            self.np_random, self.first, self.last, self.episode_length
        )
        self.cash, self.shares = self.initial_cash, 0.0
        self.last_fill = None
        return self._obs(), self._info(0.0, 0.0, 0.0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not self.action_space.contains(action):
            raise EnvError(f"Action {action} is outside {self.action_space}.")
        v_before = self.value()
        llm_info: dict[str, Any] = {}
        shaping = 0.0
        proposed = action
        if self.llm is not None and self.would_trade(action):
            verdict = self.llm.review(self, action)
            llm_info = {
                "llm_score": verdict.score,
                "llm_risk": verdict.risk,
                "llm_veto": verdict.veto,
            }
            if verdict.veto and self.llm.filter:
                action = HOLD if self.sizes is None else self._closest_size(self.exposure())
            shaping = self.llm.shaping_reward(verdict)

        # The order fills at the next bar's open.
        t1 = self.t + 1
        self.last_fill = None
        notional, cost = self._execute(self.target_exposure(action), self._open[t1])
        self.t = t1
        v_after = self.value()
        rew = self.reward_scale * (v_after - v_before) / v_before + shaping
        terminated = v_after <= 0
        truncated = self.t >= self.end + 1 and not terminated
        info = self._info(notional, cost, shaping)
        info.update(llm_info, proposed_action=proposed, action=action, fill=self.last_fill)
        return self._obs(), float(rew), bool(terminated), bool(truncated), info

    def _closest_size(self, exposure: float) -> int:
        return int(np.argmin([abs(s - exposure) for s in self.sizes or [0.0]]))

    def _execute(self, target: float | None, open_price: float) -> tuple[float, float]:
        """Trade to ``target`` exposure at ``open_price``; return (traded value, costs).

        The fill itself (signed ``size`` in shares, ``fill_price``, ``commission`` and the
        ``slippage`` paid, ``|size| * open * slippage``) is kept in :attr:`last_fill`.
        """
        if target is None:
            return 0.0, 0.0
        v_open = self.cash + self.shares * open_price
        if v_open <= 0:
            return 0.0, 0.0
        held = self.shares * open_price / v_open
        if abs(target - held) <= self.rebalance_band:
            return 0.0, 0.0
        buying = target * v_open > self.shares * open_price
        fill = open_price * (1.0 + self.slippage if buying else 1.0 - self.slippage)
        # Size the order so commission and slippage are paid out of the same value.
        new_shares = target * v_open / (fill * (1.0 + self.commission))
        delta = new_shares - self.shares
        notional = abs(delta) * fill
        commission = self.commission * notional
        slip = abs(delta) * open_price * self.slippage
        self.cash -= delta * fill + commission
        self.shares = new_shares
        self.last_fill = {
            "size": delta,
            "fill_price": fill,
            "open": open_price,
            "commission": commission,
            "slippage": slip,
        }
        return notional, commission + slip

    def _info(self, notional: float, cost: float, shaping: float) -> dict[str, Any]:
        return {
            "date": str(self.bars.index[self.t]),
            "value": self.value(),
            "exposure": self.exposure(),
            "shares": self.shares,
            "cash": self.cash,
            "traded": notional,
            "cost": cost,
            "llm_shaping": shaping,
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return (
            f"{self.bars.index[self.t].date()} close={self._close[self.t]:.2f} "
            f"exposure={self.exposure():+.2f} value={self.value():.2f}"
        )
