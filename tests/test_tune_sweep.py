"""rlfoundry tune (Optuna) and rlfoundry sweep (Ray), and the across-seed summary."""

import csv
import json
import math
import sys

import pytest

from rlfoundry.cli.main import main
from rlfoundry.core.seeds import iqm, seed_summary


def test_iqm_and_seed_summary_by_hand():
    assert iqm([1, 2, 3, 100]) == 2.5  # drops 1 and 100
    assert iqm([5, 1, 9, 3, 7, 100, -50, 4]) == (3 + 4 + 5 + 7) / 4  # drops two each end
    assert iqm([2, 4]) == 3.0  # fewer than 4: the mean
    assert math.isnan(iqm([]))
    s = seed_summary([1.0, 3.0])
    assert s == {"n": 2, "mean": 2.0, "std": 1.0, "iqm": 2.0, "min": 1.0, "max": 3.0}


def test_tune_writes_a_best_config_that_train_takes(tmp_path, capsys):
    pytest.importorskip("optuna")
    from rlfoundry.cli.tune import run_study

    out = tmp_path / "study"
    s = run_study("ppo", "CartPole-v1", 3, out, steps=4096, eval_every=1024)
    assert s["trials"] == 3 and s["complete"] + s["pruned"] + s["failed"] == 3
    rows = json.loads((out / "study.json").read_text())["rows"]
    assert [r["number"] for r in rows] == [0, 1, 2]
    best = max((r for r in rows if r["state"] == "complete"), key=lambda r: r["value"])
    assert s["best_trial"] == best["number"]
    # the value is the trial's best periodic score, kept as its best.safetensors
    kept = json.loads(
        (tmp_path / "study" / "trials" / f"{best['number']:03d}" / "best.json").read_text()
    )
    assert kept["best_score"] == best["value"]
    assert (out / "importance.png").is_file() and set(s["importance"]) <= set(best["params"])
    run = tmp_path / "again"
    argv = ["train", "ppo", "--config", str(out / "best.yaml"), "--steps", "1024"]
    assert main([*argv, "--out", str(run), "--no-progress"]) == 0
    assert (
        "learning_rate: " + str(best["params"]["learning_rate"])
        in (run / "config.yaml").read_text()
    )
    capsys.readouterr()
    assert main(["tune", "qlearning", "--env", "FrozenLake-v1", "--out", str(tmp_path / "q")]) == 2
    assert "no search space for qlearning" in capsys.readouterr().err


def test_tune_and_sweep_without_their_extra_say_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.setitem(sys.modules, "ray", None)
    argv = ["tune", "ppo", "--env", "CartPole-v1", "--trials", "1", "--out", str(tmp_path / "t")]
    assert main(argv) == 2
    assert "pip install 'rlfoundry[tune]'" in capsys.readouterr().err
    argv = ["sweep", "ppo", "--envs", "CartPole-v1", "--seeds", "0", "--out", str(tmp_path / "s")]
    assert main(argv) == 2
    assert "pip install 'rlfoundry[sweep]'" in capsys.readouterr().err
    assert main([*argv[:3], "NoSuchEnv-v0", *argv[4:]]) == 2  # checked before Ray starts
    assert "Unknown environment 'NoSuchEnv-v0'" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_on_a_local_ray_writes_runs_and_the_aggregate(tmp_path):
    """2 seeds x 2 envs on a local Ray with 2 CPUs: four run directories, results.csv,
    and one aggregate row per env whose mean / std / IQM are those of its seeds."""
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    argv = ["sweep", "qlearning", "--envs", "FrozenLake-v1", "CliffWalking-v1"]
    argv += ["--seeds", "0", "1", "--steps", "3000", "--num-cpus", "2", "--out", str(out)]
    assert main(argv) == 0
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == [
        "CliffWalking-v1-s0",
        "CliffWalking-v1-s1",
        "FrozenLake-v1-s0",
        "FrozenLake-v1-s1",
    ]
    assert all((out / "runs" / r / "summary.json").is_file() for r in runs)
    with (out / "results.csv").open() as f:
        results = list(csv.DictReader(f))
    with (out / "aggregate.csv").open() as f:
        table = {r["env"]: r for r in csv.DictReader(f)}
    assert set(table) == {"FrozenLake-v1", "CliffWalking-v1"}
    for env, row in table.items():
        scores = [float(r["eval_mean_return"]) for r in results if r["env"] == env]
        want = seed_summary(scores)
        assert int(row["seeds"]) == 2
        for k in ("mean", "std", "iqm"):
            assert float(row[f"eval_mean_return_{k}"]) == pytest.approx(want[k])
    assert "| FrozenLake-v1 |" in (out / "aggregate.md").read_text()
