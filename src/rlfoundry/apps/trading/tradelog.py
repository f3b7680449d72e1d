"""The trade log and per-step positions of a backtest, as tables and CSV files.

``trades.csv``, one row per fill::

    policy, run, time, side, size, fill_price, commission, slippage

``time`` is the bar whose open filled the order (the decision was taken at the close
before it), ``side`` is ``buy`` or ``sell``, ``size`` the number of shares (positive),
``fill_price`` the open moved against the trader by the slippage rate, ``commission``
the commission paid and ``slippage`` the slippage paid (``size * |fill_price - open|``).

``positions.csv``, one row per equity point (the start and each step's close)::

    policy, run, time, shares, cash, close, exposure, equity

The two reconcile exactly with the equity curve (:func:`reconcile`, tested to 1e-9)::

    shares_t = sum_{fills <= t} sign_i * size_i
    cash_t   = cash_0 - sum_{fills <= t} (sign_i * size_i * fill_price_i + commission_i)
    equity_t = cash_t + shares_t * close_t
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TRADE_COLUMNS = ["time", "side", "size", "fill_price", "commission", "slippage"]
POSITION_COLUMNS = ["time", "shares", "cash", "close", "exposure", "equity"]


def trade_log(bt: Any) -> pd.DataFrame:
    """One row per fill of the :class:`~.backtest.Backtest` ``bt`` (:data:`TRADE_COLUMNS`)."""
    rows = [
        {
            "time": f["time"],
            "side": "buy" if f["size"] > 0 else "sell",
            "size": abs(f["size"]),
            "fill_price": f["fill_price"],
            "commission": f["commission"],
            "slippage": f["slippage"],
        }
        for f in bt.fills
    ]
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def positions(bt: Any) -> pd.DataFrame:
    """One row per equity point of ``bt`` (:data:`POSITION_COLUMNS`)."""
    held = bt.shares * bt.close
    exposure = np.divide(held, bt.equity, out=np.zeros_like(held), where=bt.equity > 0)
    return pd.DataFrame(
        {
            "time": bt.dates,
            "shares": bt.shares,
            "cash": bt.cash,
            "close": bt.close,
            "exposure": exposure,
            "equity": bt.equity,
        },
        columns=POSITION_COLUMNS,
    )


def reconcile(trades: pd.DataFrame, pos: pd.DataFrame, cash0: float) -> dict[str, float]:
    """Largest absolute gaps between the positions rebuilt from ``trades`` and ``pos``.

    Returns ``{"shares", "cash", "equity"}``: the max over steps of
    ``|rebuilt - logged|`` (0 up to rounding when the logs are consistent).
    """
    sign = np.where(trades["side"].to_numpy() == "buy", 1.0, -1.0)
    size = sign * trades["size"].to_numpy(dtype=np.float64)
    flow = size * trades["fill_price"].to_numpy(dtype=np.float64)
    flow += trades["commission"].to_numpy(dtype=np.float64)
    # Each fill belongs to the first equity point at or after its time (fills at that
    # bar's open, the point is that bar's close).
    at = np.searchsorted(pos["time"].to_numpy(dtype=str), trades["time"].to_numpy(dtype=str))
    n = len(pos)
    d_shares = np.bincount(at, weights=size, minlength=n)[:n]
    d_cash = np.bincount(at, weights=flow, minlength=n)[:n]
    shares = np.cumsum(d_shares)
    cash = cash0 - np.cumsum(d_cash)
    equity = cash + shares * pos["close"].to_numpy(dtype=np.float64)
    return {
        "shares": float(np.abs(shares - pos["shares"].to_numpy()).max()),
        "cash": float(np.abs(cash - pos["cash"].to_numpy()).max()),
        "equity": float(np.abs(equity - pos["equity"].to_numpy()).max()),
    }


def write_logs(results: dict[str, list[Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``trades.csv`` and ``positions.csv`` for every policy and run into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trades, pos = [], []
    for label, runs in results.items():
        for i, bt in enumerate(runs):
            if bt.shares is None:  # a stitched walk-forward curve has no per-fill record
                continue
            for frame, parts in ((trade_log(bt), trades), (positions(bt), pos)):
                frame.insert(0, "run", i)
                frame.insert(0, "policy", label)
                parts.append(frame)
    paths = out_dir / "trades.csv", out_dir / "positions.csv"
    cols = [["policy", "run", *TRADE_COLUMNS], ["policy", "run", *POSITION_COLUMNS]]
    for path, parts, c in zip(paths, (trades, pos), cols):
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=c)
        frame.to_csv(path, index=False, float_format="%.17g")
    return paths
