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


def safe_distance(policy, env, episodes: int, seed: int) -> dict[str, float]:
    """Collisions and distance together, on the driving evaluation's scenarios (episode
    ``i`` resets with ``seed + i``): ``safe_distance`` is the mean over episodes of the
    metres driven in an episode that ends without a collision (a crash scores 0), beside
    the plain ``collision_rate`` and ``distance`` (m per episode)."""
    crashes, dists = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, dist, info = False, 0.0, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            dist += info["distance"]
            done = terminated or truncated
        crashes.append(float(bool(info.get("crashed", False))))
        dists.append(dist)
    c, d = np.asarray(crashes), np.asarray(dists)
    return {
        "collision_rate": float(c.mean()),
        "distance": float(d.mean()),
        "safe_distance": float((d * (1.0 - c)).mean()),
    }
