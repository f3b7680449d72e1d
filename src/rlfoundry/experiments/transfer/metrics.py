"""Transfer and forgetting metrics (Taylor & Stone 2009; Chaudhry et al. 2018; Lopez-Paz &
Ranzato 2017): plain NumPy on curves and on the return matrix ``R[i, j]``."""

from __future__ import annotations

import numpy as np


def time_to_threshold(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """First step at which ``values`` reaches ``threshold`` (``inf`` if it never does)."""
    hit = np.flatnonzero(np.asarray(values) >= threshold - 1e-9)
    return float(steps[hit[0]]) if len(hit) else float("inf")


def forgetting(R: np.ndarray) -> np.ndarray:
    """``R[j, j] - R[n-1, j]`` for ``j < n-1`` of a ``[n, n]`` matrix whose row i holds the
    returns on every task after learning task i: the drop from right after learning j."""
    R = np.asarray(R, dtype=np.float64)
    n = R.shape[0]
    return np.array([R[j, j] - R[n - 1, j] for j in range(n - 1)])


def max_forgetting(R: np.ndarray) -> np.ndarray:
    """``max_{i < n-1} R[i, j] - R[n-1, j]`` for ``j < n-1`` (Chaudhry et al. 2018): the drop
    from the best the agent ever did on task j, at or after learning it."""
    R = np.asarray(R, dtype=np.float64)
    n = R.shape[0]
    return np.array([R[j : n - 1, j].max() - R[n - 1, j] for j in range(n - 1)])


def backward_transfer(R: np.ndarray) -> float:
    """``mean_{j < n-1} (R[n-1, j] - R[j, j])`` (GEM's BWT): negative means forgetting."""
    return float(-forgetting(R).mean())
