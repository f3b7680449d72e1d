"""Training through ``rlfoundry.api.train`` on the app envs with the shipped configs.

These need the DQN implementation (``rlfoundry.algos.dqn``); they skip until it exists.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rlfoundry.cli import main

needs_dqn = pytest.mark.skipif(
    importlib.util.find_spec("rlfoundry.algos.dqn") is None,
    reason="rlfoundry.algos.dqn not built yet",
)


@needs_dqn
def test_trade_backtest_of_a_trained_run(tmp_path: Path, capsys):
    from rlfoundry.api import train

    run = tmp_path / "run"
    train("dqn", env="rlfoundry/Trading-v0", steps=600, seed=0, out=run, progress=False)
    assert main(["trade", "backtest", str(run), "--random-seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "| dqn agent | 1 |" in out and "| buy_and_hold | 1 |" in out
    assert (run / "backtest_test" / "report.md").is_file()


@needs_dqn
@pytest.mark.slow
def test_short_dqn_run_crashes_less_than_random(tmp_path: Path):
    """~3 minutes on one core: 2,000 steps of DQN on highway-fast, 20 eval episodes."""
    pytest.importorskip("highway_env")
    from rlfoundry.api import train
    from rlfoundry.apps.driving.evaluate import compare, load_run_policy

    run = tmp_path / "run"
    train(
        "dqn",
        env="rlfoundry/Highway-v0",
        steps=2000,
        seed=0,
        out=run,
        progress=False,
        evaluate_after=False,
    )
    policy, env_id, env_kwargs = load_run_policy(run)
    table = compare({"dqn": [lambda env: policy]}, env_id, env_kwargs, episodes=20, seed=100_000)
    assert table["dqn"]["collision_rate"]["mean"] < table["random"]["collision_rate"]["mean"]
