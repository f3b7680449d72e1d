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


# --------------------------------------------------------------------- against a benchmark
# ``r`` and ``b`` are the strategy's and the benchmark's period returns over the same
# periods (``[n]`` each); the risk-free rate is zero, as above.


def beta(r: np.ndarray, b: np.ndarray) -> float:
    """``cov(r, b) / var(b)`` (both ``ddof=1``); 0 when the benchmark never moves."""
    r, b = np.asarray(r, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(r) < 2:
        return 0.0
    var = b.var(ddof=1)
    return float(np.cov(r, b, ddof=1)[0, 1] / var) if var > 1e-30 else 0.0


def alpha(r: np.ndarray, b: np.ndarray, periods_per_year: float) -> float:
    """Jensen's alpha, annualised: ``(mean(r) - beta * mean(b)) * P``."""
    r, b = np.asarray(r, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(r) == 0:
        return 0.0
    return float((r.mean() - beta(r, b) * b.mean()) * periods_per_year)


def tracking_error(r: np.ndarray, b: np.ndarray, periods_per_year: float) -> float:
    """``std(r - b, ddof=1) * sqrt(P)``: the volatility of the active return."""
    a = np.asarray(r, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(a.std(ddof=1) * math.sqrt(periods_per_year)) if len(a) > 1 else 0.0


def information_ratio(r: np.ndarray, b: np.ndarray, periods_per_year: float) -> float:
    """``mean(r - b) / std(r - b, ddof=1) * sqrt(P)``; 0 when ``r == b`` throughout."""
    a = np.asarray(r, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(a) < 2:
        return 0.0
    sd = a.std(ddof=1)
    return float(a.mean() / sd * math.sqrt(periods_per_year)) if sd > 1e-15 else 0.0


def sharpe_of_returns(r: np.ndarray, periods_per_year: float) -> np.ndarray | float:
    """Sharpe ratio of returns along the last axis: ``mean / std(ddof=1) * sqrt(P)``.

    ``[n] -> float`` or ``[B, n] -> [B]``; rows with zero spread score 0.
    """
    r = np.asarray(r, dtype=np.float64)
    sd = r.std(axis=-1, ddof=1)
    safe = np.where(sd > 1e-15, sd, 1.0)
    out = np.where(sd > 1e-15, r.mean(axis=-1) / safe, 0.0) * math.sqrt(periods_per_year)
    return float(out) if out.ndim == 0 else out


def rolling_sharpe(r: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    """Sharpe of each trailing ``window`` of returns: ``[n] -> [n - window + 1]``.

    Entry ``i`` covers returns ``i .. i + window - 1`` (it is known at the end of them).
    """
    r = np.asarray(r, dtype=np.float64)
    if window < 2 or len(r) < window:
        return np.zeros(0)
    windows = np.lib.stride_tricks.sliding_window_view(r, window)  # [n - w + 1, w]
    return np.asarray(sharpe_of_returns(windows, periods_per_year))


def stationary_bootstrap_indices(
    n: int, n_boot: int, mean_block: float, rng: np.random.Generator
) -> np.ndarray:
    """Resampling indices of the stationary bootstrap (Politis & Romano 1994), ``[B, n]``.

    Each resample is a run of blocks: a block starts at a uniformly drawn index and
    continues (wrapping around the end) until a new block starts, which happens at each
    step with probability ``1 / mean_block``, so block lengths are geometric with mean
    ``mean_block``. Blocks keep the short-range dependence (volatility clustering) that
    an i.i.d. resample of daily returns would destroy.
    """
    p_new = 1.0 / max(float(mean_block), 1.0)
    new = rng.random((n_boot, n)) < p_new
    new[:, 0] = True
    starts = rng.integers(0, n, (n_boot, n))
    pos = np.arange(n)
    last = np.maximum.accumulate(np.where(new, pos, 0), axis=1)  # where each block began
    return (np.take_along_axis(starts, last, axis=1) + pos - last) % n


def default_block(n: int) -> float:
    """Mean block length ``n ** (1/3)`` (the rate Politis & White 2004 show is optimal)."""
    return max(1.0, round(n ** (1.0 / 3.0)))


def bootstrap_sharpe(
    r: np.ndarray,
    periods_per_year: float,
    b: np.ndarray | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    mean_block: float | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Percentile confidence interval of the Sharpe ratio, by the stationary bootstrap.

    With a benchmark ``b``, the interval is of ``Sharpe(r) - Sharpe(b)``, both resampled
    with the *same* indices so their correlation is kept. Returns ``{"estimate", "lo",
    "hi"}`` and ``significant``: 1.0 when the interval excludes 0, else 0.0.
    """
    r = np.asarray(r, dtype=np.float64)
    n = len(r)
    if n < 3:
        nan = float("nan")
        return {"estimate": nan, "lo": nan, "hi": nan, "significant": 0.0}
    rng = np.random.default_rng(seed)
    idx = stationary_bootstrap_indices(n, n_boot, mean_block or default_block(n), rng)
    stat = sharpe_of_returns(r[idx], periods_per_year)  # [B]
    estimate = sharpe_of_returns(r, periods_per_year)
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        stat = stat - sharpe_of_returns(b[idx], periods_per_year)
        estimate = estimate - sharpe_of_returns(b, periods_per_year)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(stat, [tail, 100.0 - tail])
    return {
        "estimate": float(estimate),
        "lo": float(lo),
        "hi": float(hi),
        "significant": float(lo > 0.0 or hi < 0.0),
    }
