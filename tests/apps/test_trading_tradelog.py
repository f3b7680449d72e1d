"""The trade log and positions CSVs reconcile with the equity curve; the benchmark section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from apps_helpers import random_walk, write_bars

from rlfoundry.apps.trading.backtest import run_backtest
from rlfoundry.apps.trading.baselines import random_policy
from rlfoundry.apps.trading.env import TradingEnv
from rlfoundry.apps.trading.tradelog import positions, reconcile, trade_log
from rlfoundry.cli.main import main


def test_trade_log_rebuilds_the_equity_curve(tmp_path: Path):
    csv = write_bars(tmp_path / "bars.csv", random_walk(500, seed=4))
    env = TradingEnv(str(csv), "all", episode_length=0, sizes=[0.0, 0.3, 0.6, 1.0])
    bt = run_backtest(random_policy(env, seed=1), env)
    trades, pos = trade_log(bt), positions(bt)
    assert len(trades) == np.count_nonzero(bt.traded) > 50
    assert set(trades["side"]) == {"buy", "sell"} and (trades["size"] > 0).all()
    gaps = reconcile(trades, pos, env.initial_cash)
    assert max(gaps.values()) < 1e-9, gaps
    np.testing.assert_array_equal(pos["equity"].to_numpy(), bt.equity)
    # Each fill's slippage is the price move against the trader times the size, and
    # commission + slippage per fill are the backtest's costs.
    fills = pd.DataFrame(bt.fills)
    np.testing.assert_allclose(
        trades["slippage"],
        trades["size"] * (trades["fill_price"] - fills["open"]).abs(),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        (trades["commission"] + trades["slippage"]).to_numpy(), bt.costs[bt.costs > 0], rtol=1e-12
    )
    # A log with one fill dropped no longer reconciles: the check can fail.
    assert max(reconcile(trades.drop(index=10), pos, env.initial_cash).values()) > 1.0


def test_report_writes_logs_and_benchmark_verdicts(tmp_path: Path, capsys):
    csv = write_bars(tmp_path / "bars.csv", random_walk(700, seed=5))
    out = tmp_path / "rep"
    args = ["trade", "report", "--data", str(csv), "--period", "all", "--out", str(out)]
    assert main([*args, "--random-seeds", "2"]) == 0
    trades = pd.read_csv(out / "trades.csv")
    pos = pd.read_csv(out / "positions.csv")
    assert list(trades.columns) == [
        "policy",
        "run",
        "time",
        "side",
        "size",
        "fill_price",
        "commission",
        "slippage",
    ]
    assert set(trades["policy"]) == {"buy_and_hold", "ma_crossover", "random"}
    for (policy, run), t in trades.groupby(["policy", "run"]):
        p = pos[(pos["policy"] == policy) & (pos["run"] == run)].reset_index(drop=True)
        assert max(reconcile(t.reset_index(drop=True), p, 10_000.0).values()) < 1e-9
    bh = trades[trades["policy"] == "buy_and_hold"]
    assert len(bh) == 1 and bh["side"].iloc[0] == "buy"

    report = (out / "report.md").read_text()
    assert "Against the benchmark (buy_and_hold)" in report
    assert "| ma_crossover |" in report and "| random (run 1) |" in report
    assert "significant" in report and (out / "rolling_sharpe.png").is_file()
    bench = json.loads((out / "metrics.json").read_text())["benchmark"]
    c = bench["ma_crossover"][0]
    assert set(c) >= {"alpha", "beta", "information_ratio", "tracking_error", "sharpe_diff_ci"}
    assert c["sharpe_diff_ci"]["lo"] <= c["sharpe_diff_ci"]["estimate"] <= c["sharpe_diff_ci"]["hi"]


@pytest.mark.parametrize("significant", [True, False])
def test_verdict_says_it_plainly(significant: bool):
    from rlfoundry.apps.trading.benchmark import verdict

    ci = {
        "estimate": 0.5,
        "lo": 0.1 if significant else -0.2,
        "hi": 0.9,
        "significant": float(significant),
    }
    text = verdict("agent", "buy_and_hold", ci)
    assert ("NOT significant" in text) != significant
