"""Synthetic OHLCV data for the trading tests: small, fast, and with known prices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def write_bars(
    path: Path,
    close: np.ndarray,
    open_: np.ndarray | None = None,
    volume: np.ndarray | None = None,
    start: str = "2001-01-01",
) -> Path:
    """Write daily bars (business days from ``start``) with the given closes to a CSV."""
    close = np.asarray(close, dtype=np.float64)
    open_ = np.r_[close[0], close[:-1]] if open_ is None else np.asarray(open_, dtype=np.float64)
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    volume = np.full(len(close), 1000.0) if volume is None else volume
    dates = pd.bdate_range(start, periods=len(close))
    pd.DataFrame(
        {
            "Date": dates.strftime("%Y-%m-%d"),
            "Open": open_,
            "High": high,
            "Low": low,
            "Close": close,
            "Volume": volume,
        }
    ).to_csv(path, index=False)
    return path


def random_walk(n: int, seed: int, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
