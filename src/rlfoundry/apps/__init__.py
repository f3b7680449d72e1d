"""Applications of the library to the seeds' worked examples.

- :mod:`rlfoundry.apps.trading` (seed 000): ``rlfoundry/Trading-v0``, backtests against
  baselines, and an LLM that reviews the agent's orders; ``rlfoundry/Portfolio-v0``,
  weights over several assets.
- :mod:`rlfoundry.apps.driving` (seed 002): highway-env wrapped with the seed's driving
  reward (speed, collisions, abrupt braking, lane changes).

Applications sit above the environments and algorithms, which never import them: an app
plugs in through two hooks, both filled by :func:`register` (idempotent; importing this
package calls it). It registers the app envs with Gymnasium, and the driving metrics
(collision rate, speed, distance, braking, lane changes) with
:func:`rlfoundry.envs.evaluation.register_env_metrics`, so the evaluation of a driving
run reports them whatever the algorithm. ``rlfoundry.api`` and the CLI call it.
"""

from __future__ import annotations

import gymnasium as gym

from rlfoundry.apps.driving.metrics import summary_metrics
from rlfoundry.envs.evaluation import register_env_metrics

#: The driving envs, whose evaluation adds collision rate, speed, distance and braking.
DRIVING_ENVS: tuple[str, ...] = (
    "rlfoundry/Highway-v0",
    "rlfoundry/Merge-v0",
    "rlfoundry/Roundabout-v0",
)

#: Env ids registered here, for ``rlfoundry list``.
APP_ENVS: list[str] = ["rlfoundry/Trading-v0", "rlfoundry/Portfolio-v0", *DRIVING_ENVS]


def register() -> None:
    """Register the app envs with Gymnasium and the driving envs' evaluation metrics;
    calling it again changes nothing."""
    if "rlfoundry/Trading-v0" not in gym.registry:
        gym.register(
            "rlfoundry/Trading-v0",
            entry_point="rlfoundry.apps.trading.env:TradingEnv",
            disable_env_checker=True,
        )
    if "rlfoundry/Portfolio-v0" not in gym.registry:
        gym.register(
            "rlfoundry/Portfolio-v0",
            entry_point="rlfoundry.apps.trading.portfolio:PortfolioEnv",
            disable_env_checker=True,
        )
    bases = {"Highway": "highway-fast-v0", "Merge": "merge-v1", "Roundabout": "roundabout-v1"}
    for name, base in bases.items():
        env_id = f"rlfoundry/{name}-v0"
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="rlfoundry.apps.driving.env:make_driving_env",
                kwargs={"base": base},
                disable_env_checker=True,
            )
        register_env_metrics(env_id, summary_metrics)


register()
