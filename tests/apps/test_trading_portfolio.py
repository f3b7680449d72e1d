"""Portfolio-v0: costs by hand, the min-variance baseline, and the single-asset env's
look-ahead tests (a different future changes no observation; a future-only signal
cannot be used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from apps_helpers import random_walk, write_bars

from rlfoundry.apps.trading.data import FEATURES, WARMUP
from rlfoundry.apps.trading.portfolio import (
    PortfolioEnv,
    equal_weight,
    min_variance,
    min_variance_weights,
    run_portfolio,
)
from rlfoundry.envs.replay import ActionLog
from rlfoundry.errors import RLFoundryError


def _panel(tmp_path: Path, closes: list[np.ndarray], volumes=None, tag: str = "") -> list[str]:
    return [
        str(
            write_bars(
                tmp_path / f"a{i}{tag}.csv", c, volume=None if volumes is None else volumes[i]
            )
        )
        for i, c in enumerate(closes)
    ]


def test_rebalance_costs_by_hand(tmp_path: Path):
    n = WARMUP + 10
    a, b = np.full(n, 100.0), np.full(n, 50.0)
    t = WARMUP
    a[t + 1 :], b[t + 1 :] = 110.0, 50.0  # the opens equal the previous closes
    env = PortfolioEnv(_panel(tmp_path, [a, b]), "all", window=1, episode_length=0,
                       initial_cash=1000.0, commission=0.01, slippage=0.01)  # fmt: skip
    env.reset(seed=0)
    assert env.t == t
    # 50/50 from cash at bar t+1's opens (100 and 50): turnover 1, cost 2% of 1000.
    _, rew, *_, info = env.step([1.0, 1.0, 0.0])
    assert info["turnover"] == pytest.approx(1.0) and info["cost"] == pytest.approx(20.0)
    sa, sb = 490.0 / 100.0, 490.0 / 50.0
    np.testing.assert_allclose(env.shares, [sa, sb])
    assert info["value"] == pytest.approx(sa * 110 + sb * 50)  # A rose 10% by the close
    assert rew == pytest.approx(100 * (sa * 110 + sb * 50 - 1000) / 1000)
    # Asking for the weights it already holds trades nothing.
    _, _, *_, info = env.step(env.weights())
    assert info["turnover"] == 0.0 and info["cost"] == 0.0
    # All zeros means cash: sells everything at a cost on turnover sum |w_i| = 1.
    v = env.value()
    _, _, *_, info = env.step([0.0, 0.0, 0.0])
    assert info["cost"] == pytest.approx(0.02 * v) and env.shares.sum() == 0.0


def test_min_variance_weights_by_hand():
    # Uncorrelated variances 1 and 4: w ∝ (1, 1/4) -> (0.8, 0.2).
    np.testing.assert_allclose(min_variance_weights(np.diag([1.0, 4.0])), [0.8, 0.2])
    # Corr 0.9, variances 1 and 4: unconstrained w ∝ Σ⁻¹1 gives the risky one a
    # negative weight; long-only keeps only the first.
    cov = np.array([[1.0, 1.8], [1.8, 4.0]])
    np.testing.assert_allclose(min_variance_weights(cov), [1.0, 0.0])


def test_min_variance_beats_equal_weight_on_risk(tmp_path: Path):
    closes = [random_walk(800, seed=s, vol=v) for s, v in ((1, 0.005), (2, 0.02), (3, 0.03))]
    env = PortfolioEnv(_panel(tmp_path, closes), "all", episode_length=0)
    mv, ew = run_portfolio(min_variance(env), env), run_portfolio(equal_weight(env), env)
    vol = lambda e: np.std(np.diff(e) / e[:-1])  # noqa: E731
    assert vol(mv["equity"]) < 0.6 * vol(ew["equity"])
    assert mv["costs"].sum() > 0 and (mv["turnover"] > 0).sum() < len(mv["turnover"]) / 10


def test_observation_ignores_every_future_bar(tmp_path: Path):
    k = WARMUP + 120
    a = [random_walk(300, seed=s) for s in (1, 2, 3)]
    b = [x.copy() for x in a]
    for i, x in enumerate(b):
        x[k + 1 :] = random_walk(300 - k - 1, seed=10 + i) * 3.0  # a different future
    env_a = PortfolioEnv(_panel(tmp_path, a, tag="a"), "all", episode_length=0)
    env_b = PortfolioEnv(_panel(tmp_path, b, tag="b"), "all", episode_length=0)
    oa, _ = env_a.reset(seed=0)
    ob, _ = env_b.reset(seed=0)
    rng = np.random.default_rng(0)
    while env_a.t < k:
        np.testing.assert_array_equal(oa, ob)
        act = rng.random(4)
        oa, ra, *_ = env_a.step(act)
        ob, rb, *_ = env_b.step(act)
        if env_a.t < k:
            assert ra == rb
    np.testing.assert_array_equal(oa, ob)
    assert not np.array_equal(env_a.step(act)[0], env_b.step(act)[0])


def test_future_only_signal_cannot_be_used(tmp_path: Path):
    """Asset 0's volume on bar t tells bar t's own direction (no gaps: open = last close),
    so only the next bar's volume, never shown, predicts the next reward."""
    n = 1500
    rng = np.random.default_rng(7)
    c0 = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    c1 = random_walk(n, seed=8)
    vol0 = np.where(np.r_[False, c0[1:] > c0[:-1]], 3000.0, 1000.0)
    env = PortfolioEnv(_panel(tmp_path, [c0, c1], volumes=[vol0, None]), "all",
                       episode_length=0, commission=0.0, slippage=0.0)  # fmt: skip
    vol_idx = ((env.window - 1) * env.n + 0) * len(FEATURES) + FEATURES.index("volume")
    long0, cash = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])

    def run(policy) -> float:
        obs, _ = env.reset(seed=0)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(policy(obs))
            done = term or trunc
        return info["value"] / env.initial_cash - 1.0

    peek = run(lambda obs: long0 if env._volume[env.t + 1, 0] > 2000 else cash)
    fair = run(lambda obs: long0 if obs[vol_idx] > 0 else cash)
    hold = run(lambda obs: long0)
    assert peek > 10.0
    assert abs(fair - hold) < 0.5 * abs(peek) and fair < 2.0

    obs, _ = env.reset(seed=0)
    xs, ys, fut = [], [], []
    done = False
    while not done:
        xs.append(obs)
        fut.append(float(env._volume[env.t + 1, 0] > 2000))
        obs, rew, term, trunc, _ = env.step(long0)
        ys.append(rew)
        done = term or trunc
    x, y = np.asarray(xs, np.float64), np.asarray(ys)
    half = len(y) // 2

    def probe_corr(feats: np.ndarray) -> float:
        a = np.c_[feats, np.ones(len(feats))]
        w, *_ = np.linalg.lstsq(a[:half], y[:half], rcond=1e-6)
        return float(np.corrcoef(a[half:] @ w, y[half:])[0, 1])

    assert abs(probe_corr(x)) < 0.15
    assert probe_corr(np.c_[x, fut]) > 0.6


def test_registered_checker_replay_and_shipped_data():
    from gymnasium.utils.env_checker import check_env

    from rlfoundry.envs.evaluation import make_env

    env = make_env("rlfoundry/Portfolio-v0", episode_length=40)
    check_env(env.unwrapped, skip_render_check=True)
    u = env.unwrapped
    assert u.assets == ("sp500", "nasdaq", "googl", "wti") and u.n == 4
    assert str(u.dates[0].date()) == "2009-05-22" and str(u.dates[-1].date()) == "2018-08-29"

    log = ActionLog(PortfolioEnv(episode_length=30), seed=3)
    log.reset()
    rng = np.random.default_rng(0)
    for _ in range(70):
        _, _, term, trunc, _ = log.step(rng.random(5).astype(np.float32))
        if term or trunc:
            log.reset()
    state = (log.unwrapped.t, log.unwrapped.cash, log.unwrapped.shares.copy())
    other = ActionLog(PortfolioEnv(episode_length=30), seed=3)
    other.restore(log.state_arrays()["replay/actions"])
    assert other.unwrapped.t == state[0] and other.unwrapped.cash == state[1]
    np.testing.assert_array_equal(other.unwrapped.shares, state[2])


def test_errors_name_the_fix():
    with pytest.raises(RLFoundryError, match="at least two assets"):
        PortfolioEnv(data=["sp500"])
    with pytest.raises(RLFoundryError, match="finite weights"):
        env = PortfolioEnv(episode_length=10)
        env.reset(seed=0)
        env.step([1.0, 0.0])
