"""Summaries of one score over several seeds (Agarwal et al. 2021, "Deep RL at the Edge of
the Statistical Precipice", the rliable library): the interquartile mean is less moved by
one lucky or failed seed than the mean, and uses more runs than the median."""

from __future__ import annotations

import math
from collections.abc import Sequence


def iqm(scores: Sequence[float]) -> float:
    """Interquartile mean: the mean of the scores left after dropping the lowest and the
    highest ``floor(n / 4)`` (``scipy.stats.trim_mean(x, 0.25)``, rliable's IQM).
    ``iqm([1, 2, 3, 100]) == 2.5``; with fewer than 4 scores it is the mean; NaN if empty."""
    xs = sorted(float(x) for x in scores)
    k = len(xs) // 4
    mid = xs[k : len(xs) - k]
    return sum(mid) / len(mid) if mid else math.nan


def seed_summary(scores: Sequence[float]) -> dict[str, float]:
    """``n``, ``mean``, ``std`` (population, as NumPy's default), ``iqm``, ``min``, ``max``."""
    xs = [float(x) for x in scores]
    n = len(xs)
    if not n:
        return {
            "n": 0,
            "mean": math.nan,
            "std": math.nan,
            "iqm": math.nan,
            "min": math.nan,
            "max": math.nan,
        }
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / n)
    return {"n": n, "mean": mean, "std": std, "iqm": iqm(xs), "min": min(xs), "max": max(xs)}
