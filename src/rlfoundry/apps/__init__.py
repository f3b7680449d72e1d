"""Applications of the library to the seeds' worked examples.

- :mod:`rlfoundry.apps.trading` (seed 000): ``rlfoundry/Trading-v0``, backtests against
  baselines, and an LLM that reviews the agent's orders.
- :mod:`rlfoundry.apps.driving` (seed 002): highway-env wrapped with the seed's driving
  reward (speed, collisions, abrupt braking, lane changes).

Importing this package registers the envs with Gymnasium; ``rlfoundry.envs`` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

#: The driving envs, whose evaluation adds collision rate, speed, distance and braking.
DRIVING_ENVS: tuple[str, ...] = (
    "rlfoundry/Highway-v0",
    "rlfoundry/Merge-v0",
    "rlfoundry/Roundabout-v0",
)

#: Env ids registered here, for ``rlfoundry list``.
APP_ENVS: list[str] = [
    "rlfoundry/Trading-v0",
    "rlfoundry/Highway-v0",
    "rlfoundry/Merge-v0",
    "rlfoundry/Roundabout-v0",
]


def _register() -> None:
    if "rlfoundry/Trading-v0" in gym.registry:
        return
    gym.register(
        "rlfoundry/Trading-v0",
        entry_point="rlfoundry.apps.trading.env:TradingEnv",
        disable_env_checker=True,
    )
    for name, base in (
        ("Highway", "highway-fast-v0"),
        ("Merge", "merge-v1"),
        ("Roundabout", "roundabout-v1"),
    ):
        gym.register(
            f"rlfoundry/{name}-v0",
            entry_point="rlfoundry.apps.driving.env:make_driving_env",
            kwargs={"base": base},
            disable_env_checker=True,
        )


def extra_metrics(
    env_id: str,
    env_kwargs: dict[str, Any] | None,
    policy: Callable[[Any], Any],
    episodes: int,
    seed: int,
) -> dict[str, Any]:
    """App-specific evaluation fields for ``summary.json`` ({} for any other env).

    DQN's and PPO's ``extra_eval`` call this, so ``rlfoundry eval RUN_DIR`` of a driving
    run reports ``eval_collision_rate``, ``eval_mean_speed`` (m/s), ``eval_distance``
    (m per episode), ``eval_braking_events`` and ``eval_lane_changes`` (per episode),
    measured on ``episodes`` episodes reset with ``seed + i``.
    """
    if env_id not in DRIVING_ENVS or episodes <= 0:
        return {}
    from rlfoundry.apps.driving.evaluate import evaluate_driving
    from rlfoundry.envs.evaluation import make_env

    env = make_env(env_id, **(env_kwargs or {}))
    try:
        m = evaluate_driving(policy, env, episodes, seed)
    finally:
        env.close()
    keys = ("collision_rate", "mean_speed", "distance", "braking_events", "lane_changes")
    return {f"eval_{k}": m[k] for k in keys}


_register()
