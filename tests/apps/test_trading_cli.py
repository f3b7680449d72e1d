"""Smoke runs of ``rlfoundry trade report`` on a small CSV."""

from __future__ import annotations

import json
from pathlib import Path

from apps_helpers import random_walk, write_bars

from rlfoundry.cli.main import main


def test_trade_report_cli(tmp_path: Path, capsys):
    csv = write_bars(tmp_path / "bars.csv", random_walk(600, seed=5))
    out = tmp_path / "rep"
    rc = main(
        [
            "trade",
            "report",
            "--data",
            str(csv),
            "--period",
            "test",
            "--out",
            str(out),
            "--random-seeds",
            "2",
            "--set",
            "commission=0.002",
            "--policy",
            "rlfoundry.apps.trading.baselines:ma_crossover",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    for row in (
        "| rlfoundry.apps.trading.baselines:ma_crossover | 1 |",
        "| buy_and_hold | 1 |",
        "| random | 2 |",
    ):
        assert row in text
    report = (out / "report.md").read_text()
    assert "commission 0.20%" in report and "equity_drawdown.png" in report
    assert (out / "equity_drawdown.png").stat().st_size > 10_000
    data = json.loads((out / "metrics.json").read_text())
    assert set(data["table"]["buy_and_hold"]) >= {"sharpe", "max_drawdown", "total_costs"}


def test_trade_cli_errors_are_one_sentence(tmp_path: Path, capsys):
    assert main(["trade", "backtest", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["trade", "report", "--policy", "nope", "--out", str(tmp_path)]) == 2
    assert "Unknown policy" in capsys.readouterr().err


def test_stitch_chains_out_of_sample_segments():
    import numpy as np

    from rlfoundry.apps.trading.backtest import Backtest
    from rlfoundry.apps.trading.cli import stitch

    a = Backtest(
        "x",
        ["d0", "d1", "d2"],
        np.array([100.0, 110.0, 121.0]),
        np.ones(2),
        np.array([100.0, 0.0]),
        np.array([1.0, 0.0]),
        252,
    )
    b = Backtest(
        "x",
        ["d2", "d3"],
        np.array([100.0, 90.0]),
        np.zeros(1),
        np.array([50.0]),
        np.array([2.0]),
        252,
    )
    s = stitch([a, b])
    # b's -10% applies to the 121 that a ended with; its flows scale by 121 / 100.
    np.testing.assert_allclose(s.equity, [100.0, 110.0, 121.0, 108.9])
    np.testing.assert_allclose(s.traded, [100.0, 0.0, 60.5])
    np.testing.assert_allclose(s.costs, [1.0, 0.0, 2.42])
    assert s.dates == ["d0", "d1", "d2", "d3"]
