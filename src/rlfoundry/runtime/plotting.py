"""Learning-curve plots from ``metrics.csv`` files."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlfoundry import registry
from rlfoundry.errors import RLFoundryError
from rlfoundry.runtime.config import atomic_write_bytes, load_yaml


def read_metrics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a run's ``metrics.csv`` as float arrays (missing cells are NaN)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.exists():
        raise RLFoundryError(
            f"No metrics found at '{path}'; pass a run directory made by `rlfoundry train`."
        )
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    cols: dict[str, list[float]] = {k: [] for k in rows[0]}
    for row in rows:
        for k in cols:
            v = row.get(k)
            cols[k].append(float(v) if v not in (None, "") else np.nan)
    return {k: np.asarray(v) for k, v in cols.items()}


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    if window <= 1 or len(y) == 0:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y, dtype=np.float64)
    for i in range(len(y)):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def curve(
    metrics: dict[str, np.ndarray], key: str = "episode_return"
) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of ``key`` where it was logged."""
    if key not in metrics:
        return np.zeros(0), np.zeros(0)
    ok = ~np.isnan(metrics[key])
    return metrics["step"][ok], metrics[key][ok]


def step_unit(run: str | os.PathLike) -> str:
    """What a step of the run in ``run`` is, for an x-axis: environment steps (gym
    algorithms), iterations (LLM RL stages: one rollout and its update, several optimizer
    steps) or optimizer steps (the supervised LLM stages), read from its config.yaml."""
    try:
        entry = registry.REGISTRY.get(str(load_yaml(Path(run) / "config.yaml").get("algo")))
    except (OSError, RLFoundryError, AttributeError):
        entry = None
    if entry is None or entry.kind == "gym":
        return "environment steps"
    if entry.data_key == "prompts":
        return "iterations (rollout + update)"
    return "optimizer steps"


def plot_runs(
    runs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    key: str = "episode_return",
    labels: Sequence[str] | None = None,
    title: str | None = None,
    window: int | None = None,
    hlines: dict[str, float] | None = None,
    xlabel: str | None = None,
) -> Path:
    """Overlay ``key`` against steps for each run directory; write a PNG to ``out``. The
    x-axis says what a step is (:func:`step_unit` of the first run, unless ``xlabel``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, run in enumerate(runs):
        x, y = curve(read_metrics(run), key)
        if len(x) == 0:
            continue
        w = window or max(1, len(y) // 50)
        label = labels[i] if labels else Path(run).name
        ax.plot(x, y, alpha=0.2, color=f"C{i}")
        ax.plot(x, smooth(y, w), color=f"C{i}", label=f"{label}")
    for name, value in (hlines or {}).items():
        ax.axhline(value, ls="--", color="k", lw=1, label=name)
    ax.set_xlabel(xlabel or (step_unit(runs[0]) if runs else "steps"))
    ax.set_ylabel(key.replace("_", " "))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
