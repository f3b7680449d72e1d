"""rlfoundry's own DQN and PPO on the app envs, through ``rlfoundry train`` and the
shipped configs: CLI smoke runs and the driving learning test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apps_helpers import safe_distance
from needs import need

from rlfoundry.cli.main import main


def _train_cli(algo: str, env: str, run: Path, steps: int, *sets: str) -> dict:
    args = ["train", algo, "--env", env, "--steps", str(steps), "--out", str(run)]
    for s in sets:
        args += ["--set", s]
    assert main([*args, "--no-progress"]) == 0
    return json.loads((run / "summary.json").read_text())


def test_shipped_configs_load_and_fit_the_envs():
    """The tuned configs name only real Config keys, and DQN/PPO accept the envs' spaces."""
    from rlfoundry.api import resolve_config

    for algo in ("dqn", "ppo"):
        for env_id, hidden in (
            ("rlfoundry/Trading-v0", (64, 64)),
            ("rlfoundry/Highway-v0", (256, 256)),
        ):
            if env_id == "rlfoundry/Highway-v0":
                need("highway_env", "apps")
            module, cfg = resolve_config(algo, env=env_id)
            assert tuple(cfg.hidden) == hidden and cfg.gamma == 0.9
            module.check(cfg)


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_trade_backtest_of_a_trained_run(tmp_path: Path, capsys, algo: str):
    run = tmp_path / "run"
    # PPO's shipped segment is 2,048 steps; 128 keeps the smoke run small.
    sets = ("num_steps=128", "eval_episodes=1") if algo == "ppo" else ("eval_episodes=1",)
    summary = _train_cli(algo, "rlfoundry/Trading-v0", run, 400 if algo == "dqn" else 128, *sets)
    assert summary["eval_mean_length"] == 252  # one trading year per evaluation episode
    assert main(["trade", "backtest", str(run), "--random-seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert f"| {algo} agent | 1 |" in out and "| buy_and_hold | 1 |" in out
    assert (run / "backtest_test" / "report.md").is_file()


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_driving_train_eval_reports_driving_metrics(tmp_path: Path, capsys, algo: str):
    """`rlfoundry train` and `rlfoundry eval` of a driving run report collision rate, speed,
    distance and braking (the metrics hook that rlfoundry.apps registers); `drive eval` records a GIF."""
    need("highway_env", "apps")
    run = tmp_path / "run"
    sets = ["eval_episodes=1"]
    sets += ["learning_starts=10"] if algo == "dqn" else ["num_envs=1", "num_steps=32"]
    summary = _train_cli(algo, "rlfoundry/Highway-v0", run, 32, *sets)
    keys = ("collision_rate", "mean_speed", "distance", "braking_events", "lane_changes")
    assert all(f"eval_{k}" in summary for k in keys)
    # the hook's numbers are the saved policy's, on the run's evaluation scenario: the
    # tests' own loop (apps_helpers.safe_distance) replays it and must agree
    from rlfoundry.apps.driving.evaluate import load_run_policy
    from rlfoundry.envs.evaluation import eval_seed, make_env

    policy, env_id, env_kwargs = load_run_policy(run)
    again = safe_distance(policy, make_env(env_id, **env_kwargs), 1, eval_seed(0))
    assert summary["eval_collision_rate"] == again["collision_rate"]
    assert summary["eval_distance"] == pytest.approx(again["distance"], rel=1e-9)
    assert 15.0 < summary["eval_mean_speed"] < 40.0  # m/s: highway speeds, not 0 or km/h
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert "eval_collision_rate" in capsys.readouterr().out
    if algo == "dqn":
        gif = tmp_path / "ep.gif"
        argv = ["drive", "eval", str(run), "--episodes", "1", "--label", "dqn", "--video", str(gif)]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "| dqn | 1 |" in out and "| random | 1 |" in out and gif.is_file()


#: The driving learning test's bars (see its docstring): collision rate at most, metres
#: per episode at least.
COLLISION_BAR, DISTANCE_BAR = 0.55, 640.0


@pytest.mark.slow
def test_dqn_drives_farther_than_always_slower_and_crashes_less_than_the_other_constants(
    tmp_path: Path,
):
    """rlfoundry's DQN with the shipped Highway-v0 config (4,000 steps exploring over the
    first 1,200; the time-to-collision grid in the observation; a collision costs 20),
    seed 0, against every constant meta-action and the uniformly random policy on the same
    20 seeded traffic scenarios. About 2 CPU-minutes.

    Collisions and distance together: the agent must crash in at most 55 % of the
    scenarios and drive at least 640 m per scenario. Each constant fails one of the two
    (asserted; apps_helpers.safe_distance, collisions / m): always-SLOWER, the safest,
    0.05 / 584.8 fails the distance; LANE_LEFT 0.85 / 345.6, IDLE 0.90 / 328.9,
    LANE_RIGHT 0.95 / 322.3, FASTER 1.0 / 178.8 and random 1.0 / 238.3 fail the
    collisions. Crawling safely does not clear it, nor does driving fast into traffic.

    How the bars were set (2026-12-04, this config, a loaded 2-core machine): seeds 0-4
    crashed in 0.00, 0.05, 0.30, 0.10, 0.15 of the scenarios and drove 764.3, 680.4, 685.1,
    718.4, 726.2 m (per-scenario standard errors 16.3, 17.1, 50.9, 16.0, 53.4 m); training
    took 72-75 CPU-s. The distance bar is the lowest seed less two standard errors,
    680.4 - 2 x 17.1 = 646, rounded down to 10 m; the collision bar the highest seed
    plus two binomial standard errors of a 20-scenario rate, 0.30 + 2 x 0.10 = 0.505,
    rounded up to 0.05. Seed 0, this test, has 0 collisions and 764.3 m.

    What the bar does not say: that the agent is safer than always-SLOWER. On the safe
    distance (metres driven in scenarios without a collision, a crash counting 0),
    seeds 0-4 score 764.3, 653.8, 569.0, 657.5, 695.1 against always-SLOWER's 572.9:
    seed 2 buys its distance with 6 times SLOWER's collisions. Before the grid and the
    collision cost of 20 (kinematic features, cost 5) DQN crashed in 40-100 % of the
    scenarios at 3,000 steps (seeds 0-3, safe distance 0.0, 76.3, 0.0, 407.3) and 5-40 %
    at 8,000 (seeds 0-2, 651.8, 402.0, 425.0); with the grid and cost 5, 4,000 steps
    crashed in 30 % and 15 % (seeds 0, 1)."""
    need("highway_env", "apps")
    from rlfoundry.api import train
    from rlfoundry.apps.driving.evaluate import load_run_policy, random_policy
    from rlfoundry.envs.evaluation import make_env

    run = tmp_path / "run"
    train("dqn", env="rlfoundry/Highway-v0", seed=0, out=run, progress=False, evaluate_after=False)
    policy, env_id, env_kwargs = load_run_policy(run)
    assert env_kwargs == {"ttc_horizon": 5, "collision_penalty": 20.0}  # the shipped config
    env = make_env(env_id, **env_kwargs)
    agent = safe_distance(policy, env, 20, 100_000)
    names = env.unwrapped.action_type.actions  # type: ignore[attr-defined]
    trivial = {
        name: safe_distance(lambda obs, a=a: a, env, 20, 100_000) for a, name in names.items()
    }
    trivial["random"] = safe_distance(random_policy(env, seed=100_000), env, 20, 100_000)
    for name, score in trivial.items():  # no constant (nor random) clears both
        assert score["collision_rate"] > COLLISION_BAR or score["distance"] < DISTANCE_BAR, name
    assert agent["collision_rate"] <= COLLISION_BAR, agent
    assert agent["distance"] >= DISTANCE_BAR, agent
