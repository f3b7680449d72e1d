"""Driving metrics: collision rate, speed, distance, braking and lane changes of a policy.

Episode ``i`` of an evaluation resets with ``seed + i``, so every policy meets the same
traffic. ``mean_speed`` averages the ego speed over all evaluated steps (m/s),
``distance`` is metres driven per episode, ``braking_events`` counts abrupt-braking
steps per episode (as defined in :mod:`rlfoundry.apps.driving.env`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

Policy = Callable[[Any], Any]

#: The metrics added to a driving run's ``summary.json`` (as ``eval_<name>``).
SUMMARY_KEYS = ("collision_rate", "mean_speed", "distance", "braking_events", "lane_changes")


def evaluate_driving(policy: Policy, env: gym.Env, episodes: int, seed: int) -> dict[str, float]:
    """Driving metrics of ``policy`` over ``episodes`` seeded episodes of ``env``."""
    crashes, returns, lengths, dists, brakes, lanes = [], [], [], [], [], []
    speeds: list[float] = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, ret, n, dist, brk, lane = False, 0.0, 0, 0.0, 0, 0
        info: dict[str, Any] = {}
        while not done:
            obs, rew, terminated, truncated, info = env.step(policy(obs))
            ret += float(rew)
            n += 1
            dist += info["distance"]
            brk += int(info["braking"])
            lane += int(info["lane_change"])
            speeds.append(info["speed"])
            done = terminated or truncated
        crashes.append(float(info.get("crashed", False)))
        returns.append(ret)
        lengths.append(n)
        dists.append(dist)
        brakes.append(brk)
        lanes.append(lane)
    return {
        "episodes": episodes,
        "collision_rate": float(np.mean(crashes)),
        "mean_speed": float(np.mean(speeds)),
        "distance": float(np.mean(dists)),
        "braking_events": float(np.mean(brakes)),
        "lane_changes": float(np.mean(lanes)),
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
    }


def summary_metrics(policy: Policy, env: gym.Env, episodes: int, seed: int) -> dict[str, Any]:
    """``eval_collision_rate``, ``eval_mean_speed`` (m/s), ``eval_distance`` (m per
    episode), ``eval_braking_events`` and ``eval_lane_changes`` (per episode) for a run's
    ``summary.json``; registered for the driving envs by :func:`rlfoundry.apps.register`."""
    m = evaluate_driving(policy, env, episodes, seed)
    return {f"eval_{k}": m[k] for k in SUMMARY_KEYS}
