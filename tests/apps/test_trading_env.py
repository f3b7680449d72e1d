"""Trading-v0: accounting by hand, no look-ahead, determinism, data handling."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from apps_helpers import random_walk, write_bars

from rlfoundry.apps.trading.data import (
    FEATURES,
    WARMUP,
    add_features,
    chronological_split,
    load_ohlcv,
    resolve_period,
    walk_forward_folds,
)
from rlfoundry.apps.trading.env import BUY, HOLD, SELL, TradingEnv
from rlfoundry.envs.replay import ActionLog
from rlfoundry.errors import RLFoundryError


def test_one_round_trip_by_hand(tmp_path: Path):
    n = WARMUP + 10
    close = np.full(n, 100.0)
    open_ = np.full(n, 100.0)
    t = WARMUP  # first decision bar with window=1
    open_[t + 1], close[t + 1] = 110.0, 121.0
    open_[t + 2], close[t + 2] = 100.0, 90.0
    csv = write_bars(tmp_path / "bars.csv", close, open_)
    env = TradingEnv(
        str(csv),
        "all",
        window=1,
        episode_length=0,
        initial_cash=1000.0,
        commission=0.01,
        slippage=0.02,
        rebalance_band=0.0,
    )
    obs, info = env.reset(seed=0)
    assert env.t == t and info["value"] == 1000.0

    # BUY fills at the next open 110 plus 2% slippage, 1% commission on the traded value:
    # shares = 1000 / (110 * 1.02 * 1.01); value at the close of 121 = shares * 121.
    obs, rew, *_, info = env.step(BUY)
    shares = 1000 / (110 * 1.02 * 1.01)
    assert info["shares"] == pytest.approx(shares)
    assert info["value"] == pytest.approx(shares * 121)
    assert rew == pytest.approx(100 * (shares * 121 - 1000) / 1000)
    assert info["cost"] == pytest.approx(1000 / 1.01 * 0.01 + shares * 110 * 0.02)
    assert info["traded"] == pytest.approx(1000 / 1.01)
    assert obs[-2] == pytest.approx(1.0, abs=1e-9)  # fully invested

    # SELL at the next open 100 minus 2% slippage, minus 1% commission.
    v1 = shares * 121
    obs, rew, terminated, truncated, info = env.step(SELL)
    assert info["value"] == pytest.approx(shares * 98 * 0.99)
    assert rew == pytest.approx(100 * (shares * 98 * 0.99 - v1) / v1)
    assert info["shares"] == 0.0 and obs[-2] == 0.0 and obs[-1] == pytest.approx(1.0)

    # HOLD never trades, and a flat portfolio earns nothing.
    _, rew, *_, info = env.step(HOLD)
    assert rew == 0.0 and info["traded"] == 0.0


def test_observation_ignores_every_future_bar(tmp_path: Path):
    """Changing all bars after bar k leaves every observation up to bar k unchanged."""
    k = WARMUP + 120
    a = random_walk(300, seed=1)
    b = a.copy()
    b[k + 1 :] = random_walk(300 - k - 1, seed=2) * 3.0  # a different future
    env_a = TradingEnv(str(write_bars(tmp_path / "a.csv", a)), "all", episode_length=0)
    env_b = TradingEnv(str(write_bars(tmp_path / "b.csv", b)), "all", episode_length=0)
    oa, _ = env_a.reset(seed=0)
    ob, _ = env_b.reset(seed=0)
    rng = np.random.default_rng(0)
    while env_a.t < k:
        np.testing.assert_array_equal(oa, ob)
        act = int(rng.integers(3))
        oa, ra, *_ = env_a.step(act)
        ob, rb, *_ = env_b.step(act)
        if env_a.t < k:  # the step's reward depends on bar t+1 only
            assert ra == rb
    np.testing.assert_array_equal(oa, ob)  # observation at bar k itself
    assert not np.array_equal(env_a.step(BUY)[0], env_b.step(BUY)[0])  # bar k+1 differs


def _planted_env(tmp_path: Path, n: int = 1500) -> TradingEnv:
    """A random walk whose volume on bar t tells the direction of bar t itself.

    ``open[t] == close[t-1]`` (no gaps), so the whole return of bar t+1 is earned by the
    position set at decision t, and only bar t+1's own volume reveals it: a signal that
    exists only in the future of every decision.
    """
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    up = np.r_[False, close[1:] > close[:-1]]
    volume = np.where(up, 3000.0, 1000.0)
    csv = write_bars(tmp_path / "planted.csv", close, volume=volume)
    return TradingEnv(str(csv), "all", episode_length=0, commission=0.0, slippage=0.0)


def test_future_only_signal_cannot_be_used(tmp_path: Path):
    env = _planted_env(tmp_path)
    vol_idx = (env.window - 1) * len(FEATURES) + FEATURES.index("volume")

    def run(policy) -> float:
        obs, _ = env.reset(seed=0)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(policy(obs))
            done = term or trunc
        return info["value"] / env.initial_cash - 1.0

    # Peeking at the next bar's volume (which the env never shows) would be a gold mine...
    peek = run(lambda obs: BUY if env.bars["volume"].iloc[env.t + 1] > 2000 else SELL)
    # ...but the same rule on the newest volume the observation holds earns nothing.
    fair = run(lambda obs: BUY if obs[vol_idx] > 0 else SELL)
    buy_hold = run(lambda obs: BUY)
    assert peek > 10.0  # more than +1000%
    assert abs(fair - buy_hold) < 0.5 * abs(peek)
    assert fair < 2.0

    # No function of the observation predicts the next reward: a least-squares probe fit
    # on the first half scores ~0 correlation on the second; the same probe given the
    # future volume finds the signal at once.
    obs, _ = env.reset(seed=0)
    xs, ys, fut = [], [], []
    done = False
    while not done:
        xs.append(obs)
        fut.append(float(env.bars["volume"].iloc[env.t + 1] > 2000))
        obs, rew, term, trunc, _ = env.step(BUY)
        ys.append(rew)
        done = term or trunc
    x, y = np.asarray(xs, np.float64), np.asarray(ys)
    x_fut = np.c_[x, fut]
    half = len(y) // 2

    def probe_corr(feats: np.ndarray) -> float:
        a = np.c_[feats, np.ones(len(feats))]
        w, *_ = np.linalg.lstsq(a[:half], y[:half], rcond=1e-6)
        return float(np.corrcoef(a[half:] @ w, y[half:])[0, 1])

    assert abs(probe_corr(x)) < 0.15
    assert probe_corr(x_fut) > 0.6


def test_features_are_causal():
    bars = load_ohlcv("sp500").iloc[:400]
    full = add_features(bars)
    for k in (WARMUP + 5, 200, 399):
        part = add_features(bars.iloc[: k + 1])
        pd.testing.assert_frame_equal(part, full.iloc[: k + 1])
    assert full.iloc[:WARMUP].isna().all().all()
    assert np.isfinite(full.iloc[WARMUP:].to_numpy()).all()


def test_replay_restores_exact_state():
    env = ActionLog(TradingEnv(episode_length=30), seed=3)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(100):  # crosses several episodes
        _, _, term, trunc, _ = env.step(int(rng.integers(3)))
        if term or trunc:
            env.reset()
    obs, *_ = env.step(BUY)
    state = (env.unwrapped.t, env.unwrapped.shares, env.unwrapped.cash)
    log = env.state_arrays()["replay/actions"][:-1]

    other = ActionLog(TradingEnv(episode_length=30), seed=3)
    other.restore(log)
    obs2, *_ = other.step(BUY)
    np.testing.assert_array_equal(obs, obs2)
    assert (other.unwrapped.t, other.unwrapped.shares, other.unwrapped.cash) == state


def test_registered_and_passes_gymnasium_checker():
    from gymnasium.utils.env_checker import check_env

    from rlfoundry.envs.evaluation import make_env

    env = make_env("rlfoundry/Trading-v0", data="googl", episode_length=50)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert isinstance(env.action_space, gym.spaces.Discrete)


def test_position_size_variant_and_shorting():
    env = TradingEnv(sizes=[0.0, 0.5, 1.0], episode_length=20)
    env.reset(seed=0)
    _, _, _, _, info = env.step(1)
    assert info["exposure"] == pytest.approx(0.5, abs=0.03)
    assert env.action_space.n == 3
    short = TradingEnv(allow_short=True, episode_length=20)
    short.reset(seed=0)
    _, _, _, _, info = short.step(SELL)
    assert info["exposure"] == pytest.approx(-1.0, abs=0.03)
    with pytest.raises(RLFoundryError, match="sizes"):
        TradingEnv(sizes=[0.0, 2.0])


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("sp500", "1999-01-04", "2018-12-31"),
        ("nasdaq", "1999-01-04", "2018-12-31"),
        ("googl", "2009-05-22", "2018-08-29"),
        ("eurusd", "2017-01-01", "2017-12-29"),
    ],
)
def test_shipped_data_sets(name: str, first: str, last: str):
    bars = load_ohlcv(name)
    assert str(bars.index[0].date()) == first and str(bars.index[-1].date()) == last
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars.index.is_monotonic_increasing


def test_splits_are_chronological_and_disjoint():
    split = chronological_split(1061)
    assert split.train[0] == WARMUP
    assert split.train[1] == split.val[0] and split.val[1] == split.test[0]
    assert split.test[1] == 1061
    folds = walk_forward_folds(100, 500, 3)
    for (tr, te), (_, te_next) in zip(folds, folds[1:]):
        assert tr[1] == te[0] and te[1] == te_next[0]
    rolling = walk_forward_folds(100, 500, 3, train_bars=50)
    assert all(te[0] - tr[0] == 50 for tr, te in rolling)
    idx = load_ohlcv("sp500").index
    a, b = resolve_period(idx, "2016-01-01:2016-12-31")
    assert idx[a].year == 2016 and idx[b - 1].year == 2016 and idx[b].year == 2017


def test_errors_name_the_fix(tmp_path: Path):
    with pytest.raises(RLFoundryError, match="OHLCV CSV"):
        load_ohlcv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Open,Close\n2001-01-01,1,1\n")
    with pytest.raises(RLFoundryError, match="High"):
        load_ohlcv(bad)
    with pytest.raises(RLFoundryError, match="period"):
        TradingEnv(period="later")
