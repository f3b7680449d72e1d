"""Each policy against a benchmark: alpha, beta, information ratio, tracking error,
rolling Sharpe, and bootstrap confidence intervals on Sharpe and on the Sharpe gap.

The benchmark is buy-and-hold of the same asset over the same bars (the report's
``buy_and_hold`` row) unless another label is named. The formulas are the pure
functions of :mod:`.metrics`; this module only lines up the curves and writes the words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rlfoundry.apps.trading import metrics

#: Trailing window of the rolling Sharpe, in bars (about three months of daily bars).
ROLLING_WINDOW = 63


def compare(
    equity: np.ndarray,
    bench: np.ndarray,
    periods_per_year: float,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Benchmark-relative metrics of one equity curve against another of the same bars."""
    r, b = metrics.period_returns(equity), metrics.period_returns(bench)
    if len(r) != len(b):
        raise ValueError(f"The curves cover {len(r)} and {len(b)} periods; they must match.")
    p = periods_per_year
    return {
        "alpha": metrics.alpha(r, b, p),
        "beta": metrics.beta(r, b),
        "information_ratio": metrics.information_ratio(r, b, p),
        "tracking_error": metrics.tracking_error(r, b, p),
        "sharpe_ci": metrics.bootstrap_sharpe(r, p, n_boot=n_boot, level=level, seed=seed),
        "sharpe_diff_ci": metrics.bootstrap_sharpe(
            r, p, b=b, n_boot=n_boot, level=level, seed=seed
        ),
    }


def verdict(label: str, bench_label: str, diff: dict[str, float], level: float = 0.95) -> str:
    """One plain sentence: is the Sharpe gap to the benchmark significant?"""
    d, lo, hi = diff["estimate"], diff["lo"], diff["hi"]
    if not np.isfinite(d):
        return f"{label}: too few bars to test the Sharpe difference from {bench_label}."
    way = "above" if d >= 0 else "below"
    ci = f"{100 * level:.0f}% CI [{lo:+.2f}, {hi:+.2f}]"
    if diff["significant"]:
        word = "better" if d > 0 else "worse"
        return (
            f"{label}: Sharpe {abs(d):.2f} {way} {bench_label} ({ci}); the difference is "
            f"significant: it is {word} than {bench_label} on this period."
        )
    return (
        f"{label}: Sharpe {abs(d):.2f} {way} {bench_label} ({ci}); the interval contains 0, "
        f"so the difference is NOT significant."
    )


def benchmark_section(
    results: dict[str, list[Any]], benchmark: str = "buy_and_hold", seed: int = 0
) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    """Markdown lines and the numbers for every policy (every seed) against ``benchmark``.

    Returns ``([], {})`` when no ``benchmark`` row was backtested.
    """
    if benchmark not in results:
        return [], {}
    bench = results[benchmark][0]
    data: dict[str, list[dict[str, Any]]] = {}
    rows, sentences = [], []
    for label, runs in results.items():
        if label == benchmark:
            continue
        data[label] = [
            compare(bt.equity, bench.equity, bt.periods_per_year, seed=seed) for bt in runs
        ]
        for i, c in enumerate(data[label]):
            name = label if len(runs) == 1 else f"{label} (run {i})"
            s, d = c["sharpe_ci"], c["sharpe_diff_ci"]
            rows.append(
                f"| {name} | {100 * c['alpha']:+.1f}% | {c['beta']:.2f} | "
                f"{c['information_ratio']:+.2f} | {100 * c['tracking_error']:.1f}% | "
                f"{s['estimate']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}] | "
                f"{d['estimate']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}] | "
                f"{'yes' if d['significant'] else 'no'} |"
            )
            sentences.append(verdict(name, benchmark, d))
    b = metrics.bootstrap_sharpe(metrics.period_returns(bench.equity), bench.periods_per_year)
    lines = [
        f"## Against the benchmark ({benchmark})",
        "",
        f"Benchmark Sharpe {b['estimate']:.2f} (95% CI [{b['lo']:.2f}, {b['hi']:.2f}]). "
        "Alpha is Jensen's, annualised; information ratio and tracking error use the "
        "active return r - r_benchmark; confidence intervals: stationary bootstrap "
        "(Politis & Romano 1994, mean block n^(1/3) bars, 2,000 resamples, seed "
        f"{seed}), percentile 95%, the Sharpe difference resampled on the same days.",
        "",
        "| policy | alpha | beta | info. ratio | tracking error | Sharpe [95% CI] "
        f"| Sharpe − {benchmark} [95% CI] | significant |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|",
        *rows,
        "",
        *[f"- {s}" for s in sentences],
    ]
    return lines, data


def plot_rolling_sharpe(
    results: dict[str, list[Any]], path: Path, window: int = ROLLING_WINDOW
) -> Path | None:
    """Rolling ``window``-bar Sharpe of each policy's first run; None if too few bars."""
    first = next(iter(results.values()))[0]
    if len(first.equity) - 1 < window:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, ax = plt.subplots(figsize=(9, 3.5))
    for label, runs in results.items():
        bt = runs[0]
        rs = metrics.rolling_sharpe(metrics.period_returns(bt.equity), window, bt.periods_per_year)
        ax.plot(pd.to_datetime(bt.dates[window:]), rs, lw=1.0, label=label)
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_ylabel(f"rolling {window}-bar Sharpe")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
