"""Per-model win rates and Bradley-Terry strengths from judgments, with bootstrap CIs.

Every judgment of an item whose responses carry model names (import responses as
``{"text": ..., "model": ...}``) is split into games between pairs of responses
(``labels.pair_outcome``): a win scores 1, a tie or "both bad" 1/2 to each side. Pairs of
responses from the same model, or from an unnamed one, are not games. An item a reviewer
decided counts once, with the decision's label (``ItemJudgments.final``); a discarded one
not at all.

Bradley-Terry (Bradley & Terry 1952): P(i beats j) = p_i / (p_i + p_j). The strengths
maximise the likelihood of the win matrix ``W`` (``W[i, j]``: i's score against j,
``N = W + W^T`` games) and are found with Hunter's (2004) MM update

    p_i <- W_i / sum_j N_ij / (p_i + p_j),   W_i = sum_j W_ij,

renormalised to geometric mean 1. ``prior`` adds that many virtual tied games between
every two models (half a win each way): it keeps a model that won or lost everything
finite and makes the comparison graph connected, at the price of pulling strengths
towards each other (0 gives the plain maximum-likelihood estimate). Scores are reported
as ``log p`` (mean 0) and on the Elo scale, ``1000 + 400 log10 p``, as in Chatbot Arena.

Confidence intervals: percentile bootstrap over *items* (an item's games share a prompt
and annotators, so they are resampled together), seeded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rlfoundry.feedback.export import ItemJudgments
from rlfoundry.feedback.labels import pair_outcome

ELO_BASE, ELO_SCALE = 1000.0, 400.0 / math.log(10.0)
SCORE = {"i": 1.0, "j": 0.0, "tie": 0.5, "both_bad": 0.5}


def games(items: list[ItemJudgments]) -> tuple[list[str], np.ndarray]:
    """Models (sorted) and per-item win matrices ``[G, M, M]`` (``W[g, a, b]``: a's score
    against b in item g). Items without a game between two named models are left out."""
    names = sorted({m for it in items for m in it.models if m is not None})
    col = {m: k for k, m in enumerate(names)}
    mats = []
    for it in items:
        w = np.zeros((len(names), len(names)))
        n = len(it.responses)
        for _, label in it.final:  # a reviewer's decision replaces the votes
            for i in range(n):
                for j in range(i + 1, n):
                    mi = it.models[i] if i < len(it.models) else None
                    mj = it.models[j] if j < len(it.models) else None
                    if mi is None or mj is None or mi == mj:
                        continue
                    s = SCORE[pair_outcome(it.kind, label, i, j)]
                    w[col[mi], col[mj]] += s
                    w[col[mj], col[mi]] += 1.0 - s
        if w.any():
            mats.append(w)
    shape = (len(mats), len(names), len(names))
    return names, np.stack(mats) if mats else np.zeros(shape)


def win_rate(w: np.ndarray) -> np.ndarray:
    """Score per game of each model, ``W_i / sum_j N_ij`` (nan for a model with no games).
    ``w``: ``[M, M]``."""
    played = (w + w.T).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(played > 0, w.sum(1) / np.where(played > 0, played, 1), np.nan)


def bradley_terry(
    w: np.ndarray, *, prior: float = 1.0, tol: float = 1e-10, max_iter: int = 10_000
) -> np.ndarray:
    """Log-strengths ``log p`` (mean 0), ``[M]``, of the win matrix ``w`` ``[M, M]``.

    With ``prior=0`` the maximum-likelihood estimate exists only when every model has
    won and lost against a connected graph of opponents (Hunter 2004, Assumption 1);
    where a model never won or never lost it returns all nan (a bootstrap then ignores
    that resample) rather than an infinite strength.
    """
    m = w.shape[0]
    w = w + prior / 2.0 * (1.0 - np.eye(m))
    n = w + w.T
    wins = w.sum(1)
    if np.any(wins <= 0) or np.any(w.sum(0) <= 0):
        return np.full(m, np.nan)
    p = np.ones(m)
    for _ in range(max_iter):
        denom = (n / (p[:, None] + p[None, :])).sum(1)
        new = wins / denom
        new = new / math.exp(np.log(new).mean())
        done = np.max(np.abs(new - p)) < tol
        p = new
        if done:
            break
    return np.log(p) - np.log(p).mean()


def bootstrap(
    mats: np.ndarray,
    stat: Any,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI ``(lo, hi)`` of ``stat(W)`` over items resampled with replacement.

    ``mats``: per-item win matrices ``[G, M, M]``; ``stat`` maps a ``[M, M]`` matrix to
    ``[M]``. nan entries (a model absent from a resample) are ignored.
    """
    rng = np.random.default_rng(seed)
    g = mats.shape[0]
    draws = np.stack([stat(mats[rng.integers(0, g, g)].sum(0)) for _ in range(n_boot)])
    a = (1.0 - level) / 2.0 * 100.0
    return np.nanpercentile(draws, a, axis=0), np.nanpercentile(draws, 100.0 - a, axis=0)


def to_elo(log_p: np.ndarray) -> np.ndarray:
    return ELO_BASE + ELO_SCALE * log_p


def leaderboard(
    items: list[ItemJudgments],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    prior: float = 1.0,
) -> list[dict[str, Any]]:
    """One row per model, best Elo first: games, win rate and Elo with their CIs."""
    names, mats = games(items)
    if not names or mats.shape[0] == 0:
        return []
    w = mats.sum(0)
    rate = win_rate(w)
    elo = to_elo(bradley_terry(w, prior=prior))
    rate_lo, rate_hi = bootstrap(mats, win_rate, n_boot=n_boot, seed=seed, level=level)
    elo_lo, elo_hi = bootstrap(
        mats,
        lambda x: to_elo(bradley_terry(x, prior=prior)),
        n_boot=n_boot,
        seed=seed,
        level=level,
    )
    rows = [
        {
            "model": name,
            "games": float((w + w.T).sum(1)[k]),
            "win_rate": float(rate[k]),
            "win_rate_lo": float(rate_lo[k]),
            "win_rate_hi": float(rate_hi[k]),
            "elo": float(elo[k]),
            "elo_lo": float(elo_lo[k]),
            "elo_hi": float(elo_hi[k]),
        }
        for k, name in enumerate(names)
    ]
    return sorted(rows, key=lambda r: -r["elo"])


def plot_leaderboard(rows: list[dict[str, Any]], path: str, level: float = 0.95) -> None:
    """Elo with its CI per model, best at the top, saved as an image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.5 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    elo = np.array([r["elo"] for r in rows])
    err = np.array([[r["elo"] - r["elo_lo"] for r in rows], [r["elo_hi"] - r["elo"] for r in rows]])
    ax.errorbar(elo, y, xerr=np.clip(err, 0, None), fmt="o", capsize=4)
    ax.set_yticks(y, [r["model"] for r in rows])
    ax.set_xlabel(f"Bradley-Terry strength, Elo scale ({level:.0%} bootstrap CI)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
