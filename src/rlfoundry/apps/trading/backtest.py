"""Backtests: run policies over a whole period, compare them, and write a report.

A backtest is one deterministic episode of :class:`TradingEnv` over a full period
(``episode_length=0``) with the same costs the agent trained with. The report puts
every policy's :func:`~rlfoundry.apps.trading.metrics.summarize` metrics side by side
as mean +- std over seeds (training seeds for agents, generator seeds for the random
policy; buy-and-hold and the crossover are deterministic), and plots equity and
drawdown curves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlfoundry.apps.trading import metrics
from rlfoundry.apps.trading.baselines import BASELINES
from rlfoundry.apps.trading.benchmark import benchmark_section, plot_rolling_sharpe
from rlfoundry.apps.trading.env import TradingEnv
from rlfoundry.apps.trading.tradelog import write_logs
from rlfoundry.errors import RLFoundryError

PolicyFactory = Callable[[TradingEnv], Callable[[Any], int]]

#: Metric columns of the report, with how to print them.
COLUMNS: list[tuple[str, str, str]] = [
    ("cumulative_return", "cum. return", "pct"),
    ("annualized_return", "ann. return", "pct"),
    ("annual_volatility", "ann. vol", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("max_drawdown", "max DD", "pct"),
    ("calmar", "Calmar", "num"),
    ("win_rate", "win rate", "pct"),
    ("trades", "trades", "int"),
    ("turnover", "turnover/yr", "num"),
    ("total_costs", "costs", "pct"),
]


@dataclass
class Backtest:
    """Everything one policy did over one period."""

    label: str
    dates: list[str]
    """Bar dates of the ``n + 1`` equity points."""
    equity: np.ndarray
    """Portfolio value at each close, ``[n + 1]``."""
    position: np.ndarray
    """Exposure set by each step's order, ``[n]``."""
    traded: np.ndarray
    """Traded value of each step's fill, ``[n]``."""
    costs: np.ndarray
    """Commission + slippage paid each step, ``[n]``."""
    periods_per_year: float
    llm: dict[str, int] = field(default_factory=dict)
    """Reviews, vetoes and cache hits of the LLM evaluator, when one was used."""
    fills: list[dict[str, Any]] = field(default_factory=list)
    """Every fill: ``time`` (the bar whose open filled it), signed ``size`` in shares,
    ``fill_price``, ``open``, ``commission``, ``slippage`` (see :mod:`.tradelog`)."""
    shares: np.ndarray | None = None
    """Shares held at each close, ``[n + 1]``."""
    cash: np.ndarray | None = None
    """Cash at each close, ``[n + 1]``."""
    close: np.ndarray | None = None
    """The asset's close at each equity point, ``[n + 1]``."""
    reviews: list[dict[str, Any]] = field(default_factory=list)
    """Each LLM review: ``step``, ``proposed`` and ``done`` actions, ``veto``, ``score``."""

    def metrics(self) -> dict[str, float]:
        out = metrics.summarize(
            self.equity, self.position, self.traded, self.costs, self.periods_per_year
        )
        if self.llm:
            out["llm_vetoes"] = float(self.llm.get("vetoes", 0))
        return out


def env_for_backtest(env_kwargs: dict[str, Any], period: str, **changes: Any) -> TradingEnv:
    """A full-period env with the training env's data, window and costs."""
    kwargs = {k: v for k, v in env_kwargs.items() if k not in ("period", "episode_length")}
    kwargs.update(changes)
    return TradingEnv(period=period, episode_length=0, **kwargs)


def run_backtest(policy: Callable[[Any], Any], env: TradingEnv, label: str = "policy") -> Backtest:
    """Run ``policy`` through ``env``'s whole period once."""
    obs, info = env.reset(seed=0)
    dates, equity = [info["date"]], [info["value"]]
    shares, cash = [info["shares"]], [info["cash"]]
    close = [float(env.bars["close"].iloc[env.t])]
    position, traded, costs, fills, reviews = [], [], [], [], []
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        dates.append(info["date"])
        equity.append(info["value"])
        position.append(info["exposure"])
        traded.append(info["traded"])
        costs.append(info["cost"])
        shares.append(info["shares"])
        cash.append(info["cash"])
        close.append(float(env.bars["close"].iloc[env.t]))
        if info["fill"] is not None:
            fills.append({"time": info["date"], "step": len(position) - 1, **info["fill"]})
        if "llm_veto" in info:
            reviews.append(
                {
                    "step": len(position) - 1,
                    "proposed": info["proposed_action"],
                    "done": info["action"],
                    "veto": bool(info["llm_veto"]),
                    "score": float(info["llm_score"]),
                }
            )
        done = terminated or truncated
    llm = dict(env.llm.stats) if env.llm is not None else {}
    return Backtest(
        label,
        dates,
        np.asarray(equity),
        np.asarray(position),
        np.asarray(traded),
        np.asarray(costs),
        env.periods_per_year,
        llm,
        fills,
        np.asarray(shares),
        np.asarray(cash),
        np.asarray(close),
        reviews,
    )


def run_suite(
    policies: dict[str, list[PolicyFactory]],
    env_kwargs: dict[str, Any],
    period: str = "test",
    random_seeds: int = 3,
    baselines: bool = True,
    llm: dict[str, Any] | None = None,
) -> dict[str, list[Backtest]]:
    """Backtest each entry of ``policies`` (one factory per seed) and the three baselines.

    With ``llm``, every non-baseline policy is run a second time with the LLM evaluator
    switched on (label suffix ``+ LLM``), so its effect shows in the same table.
    """
    out: dict[str, list[Backtest]] = {}
    for label, factories in policies.items():
        for suffix, extra in [("", {})] + ([(" + LLM", {"llm": llm})] if llm else []):
            runs = []
            for make in factories:
                env = env_for_backtest(env_kwargs, period, **extra)
                runs.append(run_backtest(make(env), env, label + suffix))
            out[label + suffix] = runs
    if baselines:
        for name in ("buy_and_hold", "ma_crossover"):
            env = env_for_backtest(env_kwargs, period)
            out[name] = [run_backtest(BASELINES[name](env), env, name)]
        runs = []
        for seed in range(random_seeds):
            env = env_for_backtest(env_kwargs, period)
            runs.append(run_backtest(BASELINES["random"](env, seed=seed), env, "random"))
        out["random"] = runs
    return out


def aggregate(results: dict[str, list[Backtest]]) -> dict[str, dict[str, Any]]:
    """``{label: {metric: {"mean", "std"}, "seeds": k}}`` (std over seeds, ddof=0)."""
    table: dict[str, dict[str, Any]] = {}
    for label, runs in results.items():
        rows = [r.metrics() for r in runs]
        entry: dict[str, Any] = {"seeds": len(rows)}
        for key in rows[0]:
            vals = np.asarray([row[key] for row in rows], dtype=np.float64)
            finite = vals[np.isfinite(vals)]
            entry[key] = {
                "mean": float(finite.mean()) if len(finite) else float("nan"),
                "std": float(finite.std()) if len(finite) else float("nan"),
            }
        table[label] = entry
    return table


def _cell(stat: dict[str, float], kind: str, seeds: int) -> str:
    m, s = stat["mean"], stat["std"]
    if not np.isfinite(m):
        return "n/a"
    if kind == "pct":
        txt, err = f"{100 * m:.1f}%", f"{100 * s:.1f}"
    elif kind == "int":
        txt, err = f"{m:.0f}", f"{s:.0f}"
    else:
        txt, err = f"{m:.2f}", f"{s:.2f}"
    return f"{txt} ± {err}" if seeds > 1 else txt


def markdown_table(table: dict[str, dict[str, Any]]) -> str:
    """The metrics as a Markdown table, one row per policy."""
    head = "| policy | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |"
    sep = "|---|---:|" + "---:|" * len(COLUMNS)
    rows = [head, sep]
    for label, entry in table.items():
        cells = [_cell(entry[key], kind, entry["seeds"]) for key, _, kind in COLUMNS]
        rows.append(f"| {label} | {entry['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_equity(results: dict[str, list[Backtest]], path: Path, title: str) -> Path:
    """Equity (normalised to 1) and drawdown of every policy; seeds as thin lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, runs) in enumerate(results.items()):
        color = colors[i % len(colors)]
        x = pd.to_datetime(runs[0].dates)
        curves = np.stack([r.equity / r.equity[0] for r in runs])
        for c in curves if len(runs) > 1 else []:
            ax1.plot(x, c, color=color, alpha=0.25, lw=0.8)
        mean = curves.mean(axis=0)
        ax1.plot(x, mean, color=color, lw=1.6, label=f"{label} (n={len(runs)})")
        ax2.plot(x, -100 * metrics.drawdown(mean), color=color, lw=1.2)
    ax1.set_ylabel("equity (start = 1)")
    ax1.set_title(title)
    ax1.legend(fontsize=8, loc="upper left")
    ax1.grid(alpha=0.3)
    ax2.set_ylabel("drawdown of mean (%)")
    ax2.grid(alpha=0.3)
    ax2.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    results: dict[str, list[Backtest]],
    out_dir: str | Path,
    title: str,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Write ``report.md``, ``metrics.json``, ``equity_drawdown.png``, ``rolling_sharpe.png``
    and the trade and position logs (``trades.csv``, ``positions.csv``) into ``out_dir``.

    With a ``buy_and_hold`` row, the report compares every policy with it
    (:mod:`.benchmark`): alpha, beta, information ratio, tracking error and bootstrap
    confidence intervals on Sharpe and on the Sharpe difference.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not results:
        raise RLFoundryError("Nothing to report: no policy was backtested.")
    table = aggregate(results)
    first = next(iter(results.values()))[0]
    plot = plot_equity(results, out_dir / "equity_drawdown.png", title)
    lines = [
        f"# {title}",
        "",
        f"Period: {first.dates[0][:10]} to {first.dates[-1][:10]} ({len(first.equity) - 1} bars, "
        f"{first.periods_per_year:.0f} bars/year). Mean ± std over seeds; costs are commission "
        "plus slippage as a fraction of starting capital; orders fill at the next bar's open.",
        "",
        markdown_table(table),
        "",
        f"![equity and drawdown]({plot.name})",
    ]
    bench_lines, bench = benchmark_section(results)
    if bench_lines:
        lines += ["", *bench_lines]
    rolling = plot_rolling_sharpe(results, out_dir / "rolling_sharpe.png")
    if rolling is not None:
        lines += ["", f"![rolling Sharpe]({rolling.name})"]
    trades, positions = write_logs(results, out_dir)
    lines += [
        "",
        f"Every fill: `{trades.name}`; shares, cash and equity at each bar: `{positions.name}`.",
    ]
    llm_rows = {k: v[0].llm for k, v in results.items() if v[0].llm}
    if llm_rows:
        lines += [
            "",
            "LLM evaluator (first seed): "
            + "; ".join(
                f"{k}: {v.get('reviews', 0)} orders reviewed, {v.get('vetoes', 0)} vetoed, "
                f"{v.get('unparsed', 0)} unparsed replies"
                for k, v in llm_rows.items()
            ),
        ]
    lines += [""] + [f"- {n}" for n in notes or []]
    (out_dir / "report.md").write_text("\n".join(lines).rstrip() + "\n")
    payload = {
        "title": title,
        "period": [first.dates[0], first.dates[-1]],
        "table": table,
        "curves": {k: [r.equity.tolist() for r in v] for k, v in results.items()},
        "dates": first.dates,
        "benchmark": bench,
    }
    (out_dir / "metrics.json").write_text(json.dumps(payload, indent=1) + "\n")
    return table
