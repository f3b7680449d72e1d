"""Backtest metrics against values worked out by hand.

Equity V = [100, 110, 99, 108.9]: returns r = [+0.1, -0.1, +0.1], P = 3 periods/year.
    cumulative  = 108.9 / 100 - 1                         = 0.089
    annualised  = 1.089 ** (3 / 3) - 1                    = 0.089
    mean(r)     = 0.1 / 3 = 0.033333
    std(r, 1)   = sqrt((0.0667^2 + 0.1333^2 + 0.0667^2) / 2) = sqrt(0.013333) = 0.115470
    volatility  = 0.115470 * sqrt(3)                      = 0.2
    Sharpe      = 0.033333 / 0.115470 * sqrt(3)           = 0.5
    downside    = sqrt((0 + 0.01 + 0) / 3)                = 0.057735
    Sortino     = 0.033333 / 0.057735 * sqrt(3)           = 1.0
    max DD      = 1 - 99 / 110                            = 0.1
    Calmar      = 0.089 / 0.1                             = 0.89
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlfoundry.apps.trading import metrics as m

V = np.array([100.0, 110.0, 99.0, 108.9])


def test_returns_and_growth():
    np.testing.assert_allclose(m.period_returns(V), [0.1, -0.1, 0.1])
    assert m.cumulative_return(V) == pytest.approx(0.089)
    assert m.annualized_return(V, 3) == pytest.approx(0.089)
    # Two years of 252 daily bars that double the money: sqrt(2) - 1 a year.
    two_years = np.geomspace(1.0, 2.0, 505)
    assert m.annualized_return(two_years, 252) == pytest.approx(math.sqrt(2) - 1)


def test_risk_ratios():
    assert m.annual_volatility(V, 3) == pytest.approx(0.2)
    assert m.sharpe_ratio(V, 3) == pytest.approx(0.5)
    assert m.sortino_ratio(V, 3) == pytest.approx(1.0)
    assert m.max_drawdown(V) == pytest.approx(0.1)
    assert m.calmar_ratio(V, 3) == pytest.approx(0.89)
    np.testing.assert_allclose(m.drawdown(V), [0.0, 0.0, 0.1, 0.01])


def test_degenerate_curves_do_not_divide_by_zero():
    flat = np.full(5, 100.0)
    assert m.sharpe_ratio(flat, 252) == 0.0
    assert m.sortino_ratio(flat, 252) == 0.0
    assert m.calmar_ratio(flat, 252) == 0.0
    assert m.max_drawdown(flat) == 0.0
    assert m.annualized_return(np.array([100.0, 0.0]), 252) == -1.0


def test_round_trips_win_rate_and_turnover():
    # Long in period 0, the exit order fills inside period 1, long again from period 2:
    # trade 1 = V2/V0 - 1 = 99/100 - 1 = -0.01; trade 2 (still open) = V3/V2 - 1 = 0.1.
    pos = np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(m.round_trips(V, pos), [-0.01, 0.1])
    assert m.win_rate(V, pos) == pytest.approx(0.5)
    # A reversal from long to short closes one trade and opens another.
    np.testing.assert_allclose(
        m.round_trips(V, np.array([1.0, -1.0, -1.0])), [-0.01, 108.9 / 110 - 1]
    )
    assert math.isnan(m.win_rate(V, np.zeros(3)))
    # Traded 100 then 110: 210 / mean(V) = 210 / 104.475, times P / n = 3 / 3.
    assert m.turnover(np.array([100.0, -110.0, 0.0]), V, 3) == pytest.approx(210 / 104.475)


def test_summarize_collects_everything():
    out = m.summarize(
        V, np.array([1.0, 0.0, 1.0]), np.array([100.0, 110.0, 0.0]), np.array([0.5, 0.5, 0.0]), 3
    )
    assert out["trades"] == 2
    assert out["total_costs"] == pytest.approx(0.01)
    assert out["sharpe"] == pytest.approx(0.5)
    assert set(out) >= {
        "cumulative_return",
        "annualized_return",
        "annual_volatility",
        "sortino",
        "max_drawdown",
        "calmar",
        "win_rate",
        "turnover",
    }
