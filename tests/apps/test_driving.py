"""Driving app: the seed-002 reward term by term, metrics, video, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from apps_helpers import safe_distance
from needs import need

need("highway_env", "apps")

from rlfoundry.apps.driving.evaluate import (  # noqa: E402
    compare,
    evaluate_driving,
    idle_policy,
    random_policy,
    record_episode,
)
from rlfoundry.envs.evaluation import make_env  # noqa: E402

LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)


def _speed_term(speed: float) -> float:
    return float(np.clip(speed / 30.0, 0.0, 1.0))


def test_reward_terms_by_hand():
    env = make_env("rlfoundry/Highway-v0", lane_change_cost=0.25, brake_penalty=0.5)
    env.reset(seed=1)
    # IDLE at a steady speed: only the speed term.
    _, rew, _, _, info = env.step(IDLE)
    assert not info["braking"] and not info["lane_change"]
    assert rew == pytest.approx(_speed_term(info["speed"]))
    assert info["distance"] > 15.0  # metres in one 1-second step at >= 20 m/s
    # SLOWER sheds ~4.3 m/s in one second: abrupt braking (threshold 3 m/s^2).
    _, rew, _, _, info = env.step(SLOWER)
    assert info["decel"] > 3.0 and info["braking"]
    assert rew == pytest.approx(_speed_term(info["speed"]) - 0.5)
    # A lane change pays its cost.
    _, rew, _, _, info = env.step(LANE_LEFT)
    assert info["lane_change"]
    assert rew == pytest.approx(_speed_term(info["speed"]) - 0.25 - 0.5 * info["braking"])


def test_collision_is_penalised_and_terminates():
    env = make_env("rlfoundry/Highway-v0", collision_penalty=7.0)
    policy = random_policy(env, seed=0)
    for ep in range(20):
        obs, _ = env.reset(seed=ep)
        done = False
        while not done:
            obs, rew, terminated, truncated, info = env.step(policy(obs))
            done = terminated or truncated
        if info["crashed"]:
            assert terminated and not info["braking"]
            expected = _speed_term(info["speed"]) - 7.0 - 0.05 * info["lane_change"]
            assert rew == pytest.approx(expected)
            return
    pytest.fail("random driving never crashed in 20 episodes")


def test_observations_and_determinism():
    def roll(seed: int) -> np.ndarray:
        env = make_env("rlfoundry/Highway-v0")
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for act in [IDLE, FASTER, LANE_LEFT, IDLE, SLOWER, LANE_RIGHT]:
            obs, *_ = env.step(act)
            out.append(obs)
        return np.stack(out)

    a = roll(4)
    assert a.dtype == np.float32 and a.shape == (7, 25)
    np.testing.assert_array_equal(a, roll(4))
    env = make_env("rlfoundry/Merge-v0")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_fast_observation_is_highway_envs_bit_for_bit():
    """FastKinematics returns exactly KinematicObservation's float32 array, step by step."""
    for env_id, episodes in (
        ("rlfoundry/Highway-v0", 2),
        ("rlfoundry/Merge-v0", 1),
        ("rlfoundry/Roundabout-v0", 1),
    ):
        fast, slow = make_env(env_id), make_env(env_id, fast_obs=False)
        rng = np.random.default_rng(0)
        for ep in range(episodes):
            a, _ = fast.reset(seed=ep)
            b, _ = slow.reset(seed=ep)
            assert type(fast.unwrapped.observation_type).__name__ == "FastKinematics"
            assert type(slow.unwrapped.observation_type).__name__ == "KinematicObservation"
            np.testing.assert_array_equal(a, b)
            done = False
            while not done:
                act = int(rng.integers(5))
                a, rew_a, term, trunc, _ = fast.step(act)
                b, rew_b, *_ = slow.step(act)
                assert a.dtype == b.dtype == np.float32
                np.testing.assert_array_equal(a, b)
                assert rew_a == rew_b
                done = term or trunc


def test_evaluation_metrics_and_baselines():
    env = make_env("rlfoundry/Highway-v0")
    idle = evaluate_driving(idle_policy(env), env, episodes=2, seed=0)
    assert idle["braking_events"] == 0.0 and idle["lane_changes"] == 0.0
    # the tests' own loop over the same two scenarios (apps_helpers.safe_distance)
    again = safe_distance(idle_policy(env), env, 2, 0)
    assert idle["collision_rate"] == again["collision_rate"]
    assert idle["distance"] == pytest.approx(again["distance"], rel=1e-9)
    assert 15.0 < idle["mean_speed"] < 40.0  # m/s: highway speeds, not 0 or km/h
    assert idle["distance"] == pytest.approx(idle["mean_speed"] * idle["mean_length"], rel=0.1)
    table = compare({}, episodes=2, seed=0)
    assert list(table) == ["random", "always IDLE"]
    assert table["always IDLE"]["collision_rate"]["mean"] == idle["collision_rate"]


def test_video_has_every_simulation_frame(tmp_path: Path):
    import imageio.v3 as iio

    env = make_env("rlfoundry/Highway-v0")
    info = record_episode(idle_policy(env), "rlfoundry/Highway-v0", tmp_path / "ep.gif", seed=3)
    frames = iio.imread(tmp_path / "ep.gif")
    # 5 simulation frames per 1-second decision, plus the first one.
    assert info["frames"] == 5 * info["steps"] + 1
    assert frames.shape[0] > 1 and frames.mean() > 20  # drawn, not black


def test_drive_eval_cli(tmp_path: Path, capsys):
    from rlfoundry.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(
        [
            "drive",
            "eval",
            "--episodes",
            "1",
            "--out",
            str(tmp_path),
            "--video",
            str(tmp_path / "v.gif"),
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "| always IDLE | 1 |" in out and "video:" in out
    assert (tmp_path / "driving_eval.md").is_file() and (tmp_path / "v.gif").is_file()


def test_apps_register_their_envs_and_driving_metrics_once():
    """apps.register() is idempotent; it fills the env-metrics hook that every algorithm's
    evaluation reads (envs.evaluation.env_metrics), so no algorithm knows the driving app."""
    import gymnasium as gym

    import rlfoundry.envs as envs
    from rlfoundry import apps
    from rlfoundry.envs.evaluation import env_metrics

    apps.register()
    apps.register()
    assert all(env_id in gym.registry for env_id in apps.APP_ENVS)
    assert not set(apps.APP_ENVS) & set(envs.BUILTIN_ENVS)  # listed by apps, not by envs

    class Cfg:
        env_id, env_kwargs, eval_episodes, seed = "rlfoundry/Highway-v0", {}, 1, 0

    got = env_metrics(Cfg, lambda obs: IDLE)
    keys = ("collision_rate", "mean_speed", "distance", "braking_events", "lane_changes")
    assert sorted(got) == sorted(f"eval_{k}" for k in keys)
    env = make_env("rlfoundry/Highway-v0")
    want = evaluate_driving(lambda obs: IDLE, env, 1, 10_000)  # eval_seed(0)
    assert got["eval_distance"] == want["distance"]
    Cfg.env_id = "CartPole-v1"  # no app registered metrics for it
    assert env_metrics(Cfg, lambda obs: 0) == {}


def test_time_to_collision_grid_is_appended_and_marks_the_car_ahead():
    """``ttc_horizon=5`` appends highway-env's 3 speeds x 3 lanes x 5 s time-to-collision
    grid after the 25 kinematic features, which stay as they were. Checked by hand: with
    one car 20 m ahead in the ego's lane and 5 m/s slower, the ego at its current target
    speed has its front bumper at the car's rear after (20 - 5) / 5 = 3 s (5 m cars;
    highway-env weighs that point 0.5) and reaches its centre after 20 / 5 = 4 s (weight
    1), so that cell reads [0, 0, 0, 0.5, 1]; the lanes beside, empty, are marked nowhere."""
    plain, ttc = make_env("rlfoundry/Highway-v0"), make_env("rlfoundry/Highway-v0", ttc_horizon=5)
    a, _ = plain.reset(seed=3)
    b, _ = ttc.reset(seed=3)
    assert b.shape == (25 + 45,) == ttc.observation_space.shape and b.dtype == np.float32
    np.testing.assert_array_equal(a, b[:25])
    for act in (IDLE, SLOWER, LANE_LEFT):
        a, *_ = plain.step(act)
        b, *_ = ttc.step(act)
        np.testing.assert_array_equal(a, b[:25])
    with pytest.raises(Exception, match="ttc_horizon"):
        make_env("rlfoundry/Highway-v0", ttc_horizon=-1)

    from highway_env.vehicle.kinematics import Vehicle

    base = ttc.unwrapped
    ttc.reset(seed=3)
    ego = base.vehicle
    ego.lane_index = ego.target_lane_index = ("0", "1", 1)  # the middle lane of three
    ego.position = np.array([100.0, 4.0])
    ego.speed = float(ego.index_to_speed(ego.speed_index))  # at its target speed
    ahead = Vehicle(base.road, np.array([120.0, 4.0]), 0.0, ego.speed - 5.0)
    ahead.lane_index = ("0", "1", 1)
    base.road.vehicles = [ego, ahead]
    grid = ttc.get_wrapper_attr("observation")(np.zeros(25, np.float32))[25:].reshape(3, 3, 5)
    np.testing.assert_array_equal(grid[1, 1], [0, 0, 0, 0.5, 1])
    assert not grid[:, 0].any() and not grid[:, 2].any(), grid
