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


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="DQN does not yet beat always-SLOWER (572.9 safe m): 3,000 steps, seeds 0-3: "
    "0.0, 76.3, 0.0, 407.3; the shipped 8,000 steps, seeds 0-2: 651.8, 402.0, 425.0 "
    "(issue 18, item 1). Needs a budget or config where every seed clears it.",
)
def test_short_dqn_run_drives_farther_without_collisions_than_any_constant_action(tmp_path: Path):
    """rlfoundry's DQN with the shipped Highway-v0 config cut to 3,000 steps (epsilon
    decaying over the same first 1,200 steps as the full 8,000-step run, so this is that
    run's beginning), against every constant meta-action (always-IDLE among them) and the
    uniformly random policy, on the same 20 seeded traffic scenarios. About 2 CPU-minutes.

    The score takes collisions and distance together: ``safe_distance``, the metres driven
    per scenario, a scenario that ends in a collision counting 0. Crashing less by crawling
    does not clear the bar, nor does driving fast into traffic. The bar is the best
    constant action's score on the same scenarios, so no constant clears it (asserted).
    Measured (apps_helpers.safe_distance, one loaded 2-core machine): always-SLOWER 5 %
    collisions, 584.8 m, safe 572.9 m (the best constant); LANE_LEFT 112.5, IDLE 75.0,
    LANE_RIGHT 37.5, FASTER 0.0; random 100 % collisions, 0.0.

    The DQN does not clear it, hence the strict xfail (an unexpected pass fails the run,
    so the marker must then go and the margin be derived from seeds). This 3,000-step run,
    seeds 0-3: 0.0, 76.3, 0.0, 407.3 safe m (100 %, 90 %, 100 %, 40 % collisions). The
    full shipped run (8,000 steps, about 2 CPU-minutes of training), seeds 0-2: 651.8,
    402.0, 425.0 (5 %, 40 %, 35 %): one seed of three beats always-SLOWER, so a test at
    that budget would pass or fail with the CPU's float rounding. The old bar (fewer
    collisions than random, 1.5x its distance) was cleared by always-SLOWER itself."""
    need("highway_env", "apps")
    from rlfoundry.api import train
    from rlfoundry.apps.driving.evaluate import load_run_policy, random_policy
    from rlfoundry.envs.evaluation import make_env

    run = tmp_path / "run"
    train(
        "dqn",
        env="rlfoundry/Highway-v0",
        steps=3000,
        seed=0,
        out=run,
        overrides={"exploration_fraction": 0.4},
        progress=False,
        evaluate_after=False,
    )
    policy, env_id, env_kwargs = load_run_policy(run)
    env = make_env(env_id, **env_kwargs)
    scores = {"agent": safe_distance(policy, env, 20, 100_000)}
    names = env.unwrapped.action_type.actions  # type: ignore[attr-defined]
    for a, name in names.items():
        scores[name] = safe_distance(lambda obs, a=a: a, env, 20, 100_000)
    scores["random"] = safe_distance(random_policy(env, seed=100_000), env, 20, 100_000)
    best = max(names.values(), key=lambda n: scores[n]["safe_distance"])
    bar = scores[best]["safe_distance"]
    # the bar is above always-IDLE and random, and the best constant only equals it
    assert bar > scores["IDLE"]["safe_distance"] and bar > scores["random"]["safe_distance"]
    assert scores["agent"]["safe_distance"] > bar, (best, scores)
