"""Applications of the library to the seeds' worked examples.

- :mod:`rlfoundry.apps.trading` (seed 000): ``rlfoundry/Trading-v0``, backtests against
  baselines, and an LLM that reviews the agent's orders.
- :mod:`rlfoundry.apps.driving` (seed 002): highway-env wrapped with the seed's driving
  reward (speed, collisions, abrupt braking, lane changes).

Importing this package registers the envs with Gymnasium; ``rlfoundry.envs`` imports it.
"""

from __future__ import annotations

import gymnasium as gym

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


_register()
