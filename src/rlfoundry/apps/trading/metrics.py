"""Backtest metrics as pure functions of NumPy arrays (no env, no pandas, no state).

Notation: ``equity`` is the portfolio value ``V_0..V_n`` at each bar's close (``n+1``
points), ``r_t = V_t / V_{t-1} - 1`` the ``n`` simple period returns, and ``P`` the
number of periods per year (252 for daily bars). Volatility-based ratios use the
sample standard deviation (``ddof=1``) and a zero risk-free rate, as in most
backtesting libraries (e.g. empyrical, quantstats). Every function is tested against
hand-computed values in ``tests/apps/test_trading_metrics.py``.
"""

from __future__ import annotations

import math

import numpy as np


def period_returns(equity: np.ndarray) -> np.ndarray:
    """``r_t = V_t / V_{t-1} - 1``; shape ``[n]`` from ``[n+1]``."""
    v = np.asarray(equity, dtype=np.float64)
    return v[1:] / v[:-1] - 1.0


def cumulative_return(equity: np.ndarray) -> float:
    """``V_n / V_0 - 1``."""
    v = np.asarray(equity, dtype=np.float64)
    return float(v[-1] / v[0] - 1.0)


def annualized_return(equity: np.ndarray, periods_per_year: float) -> float:
    """Compound annual growth rate ``(V_n / V_0) ** (P / n) - 1``."""
    v = np.asarray(equity, dtype=np.float64)
    n = len(v) - 1
    if n <= 0:
        return 0.0
    growth = v[-1] / v[0]
    if growth <= 0:
        return -1.0
    return float(growth ** (periods_per_year / n) - 1.0)


def annual_volatility(equity: np.ndarray, periods_per_year: float) -> float:
    """``std(r, ddof=1) * sqrt(P)``."""
    r = period_returns(equity)
    if len(r) < 2:
        return 0.0
    return float(r.std(ddof=1) * math.sqrt(periods_per_year))


def sharpe_ratio(equity: np.ndarray, periods_per_year: float) -> float:
    """``mean(r) / std(r, ddof=1) * sqrt(P)``; 0 when the returns are constant."""
    r = period_returns(equity)
    if len(r) < 2:
        return 0.0
    sd = r.std(ddof=1)
    return float(r.mean() / sd * math.sqrt(periods_per_year)) if sd > 1e-15 else 0.0


def sortino_ratio(equity: np.ndarray, periods_per_year: float) -> float:
    """``mean(r) / DD * sqrt(P)`` with downside deviation ``DD = sqrt(mean(min(r, 0)^2))``.

    The mean runs over all ``n`` periods (Sortino & Price 1994); 0 if no period lost.
    """
    r = period_returns(equity)
    if len(r) == 0:
        return 0.0
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    return float(r.mean() / dd * math.sqrt(periods_per_year)) if dd > 1e-15 else 0.0


def drawdown(equity: np.ndarray) -> np.ndarray:
    """``1 - V_t / max_{s<=t} V_s`` at every point, shape ``[n+1]`` (0 at new highs)."""
    v = np.asarray(equity, dtype=np.float64)
    return 1.0 - v / np.maximum.accumulate(v)


def max_drawdown(equity: np.ndarray) -> float:
    """Largest peak-to-trough loss as a positive fraction, ``max_t drawdown_t``."""
    return float(drawdown(equity).max())


def calmar_ratio(equity: np.ndarray, periods_per_year: float) -> float:
    """``annualized_return / max_drawdown``; 0 when there was no drawdown."""
    mdd = max_drawdown(equity)
    return annualized_return(equity, periods_per_year) / mdd if mdd > 1e-15 else 0.0


def round_trips(equity: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Return of each trade, from entering a position to leaving or reversing it.

    ``position[t]`` is the signed holding set by the order of period ``t`` (period ``t``
    runs from ``V_t`` to ``V_{t+1}``; shape ``[n]``). Orders fill at the next open, so
    the position is entered inside period ``start`` and left inside the first period
    ``end`` whose order closes or reverses it: the trade's return is
    ``V_{end+1} / V_start - 1`` and includes both fills' costs. A trade still open at
    the end counts at its mark-to-market value ``V_n / V_start - 1``.
    """
    v = np.asarray(equity, dtype=np.float64)
    s = np.sign(np.asarray(position, dtype=np.float64))
    out = []
    t, n = 0, len(s)
    while t < n:
        if s[t] == 0:
            t += 1
            continue
        start = t
        while t < n and s[t] == s[start]:
            t += 1
        out.append(v[min(t + 1, n)] / v[start] - 1.0)
    return np.asarray(out, dtype=np.float64)


def win_rate(equity: np.ndarray, position: np.ndarray) -> float:
    """Fraction of :func:`round_trips` with a positive return (NaN with no trade)."""
    trips = round_trips(equity, position)
    return float((trips > 0).mean()) if len(trips) else float("nan")


def turnover(traded_notional: np.ndarray, equity: np.ndarray, periods_per_year: float) -> float:
    """Annual turnover: ``sum |traded value| / mean(V) * P / n``.

    1.0 means the whole portfolio is traded once a year (buy-and-hold over ``k`` years
    gives about ``1 / k``).
    """
    v = np.asarray(equity, dtype=np.float64)
    n = len(v) - 1
    if n <= 0:
        return 0.0
    total = float(np.abs(np.asarray(traded_notional, dtype=np.float64)).sum())
    return total / float(v.mean()) * periods_per_year / n


def summarize(
    equity: np.ndarray,
    position: np.ndarray,
    traded_notional: np.ndarray,
    costs: np.ndarray,
    periods_per_year: float,
) -> dict[str, float]:
    """Every metric of the backtest report in one dict (fractions, not percent).

    ``costs`` are the commission plus slippage paid each period; ``total_costs`` is
    their sum divided by the starting value ``V_0``.
    """
    notional = np.asarray(traded_notional, dtype=np.float64)
    v = np.asarray(equity, dtype=np.float64)
    return {
        "cumulative_return": cumulative_return(v),
        "annualized_return": annualized_return(v, periods_per_year),
        "annual_volatility": annual_volatility(v, periods_per_year),
        "sharpe": sharpe_ratio(v, periods_per_year),
        "sortino": sortino_ratio(v, periods_per_year),
        "max_drawdown": max_drawdown(v),
        "calmar": calmar_ratio(v, periods_per_year),
        "win_rate": win_rate(v, position),
        "trades": float(np.count_nonzero(notional)),
        "turnover": turnover(notional, v, periods_per_year),
        "total_costs": float(np.sum(costs)) / float(v[0]),
    }
