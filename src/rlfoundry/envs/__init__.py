"""rlfoundry's environments, registered with Gymnasium on ``import rlfoundry.envs`` (and so
after ``import rlfoundry``: see :func:`rlfoundry.register_envs`).

- ``rlfoundry/GridWorld-v0``: :class:`GridWorld` on its default 7x7 layout, deterministic.
- ``rlfoundry/GridWorldSlippery-v0``: the same with ``slip=0.2``.
- ``rlfoundry/CartPole-v1``: Gymnasium's CartPole with a ``pole_length`` keyword
  (:mod:`rlfoundry.envs.cartpole`), for transfer between pole lengths.
- the two-player PettingZoo games of :mod:`rlfoundry.envs.games` (``pettingzoo/tictactoe_v3``,
  ``pettingzoo/connect_four_v3``, ``pettingzoo/rps_v2``) as single-agent views against a
  random opponent, for ``selfplay_ppo``.
- the meta-RL task distributions of :mod:`rlfoundry.envs.meta` (``rlfoundry/MetaBandit-v0``,
  ``rlfoundry/MetaMDP-v0``), for ``rl2``.
- the cooperative tasks of :mod:`rlfoundry.envs.teams` (``mpe2/simple_spread_v3``) as one
  env over the joint action, for ``mappo``.

Both GridWorld ids cut episodes at 100 steps, the limit the exact solvers in
:mod:`rlfoundry.mdp` count.

The application envs (trading, driving) are registered by :func:`rlfoundry.apps.register`:
applications sit above the environments and algorithms, which never import them.
"""

from __future__ import annotations

import gymnasium as gym

from rlfoundry.envs import cartpole, games, meta, teams
from rlfoundry.envs.gridworld import ACTION_NAMES, DEFAULT_LAYOUT, GridWorld, parse_layout

GRIDWORLD_ENVS: list[str] = ["rlfoundry/GridWorld-v0", "rlfoundry/GridWorldSlippery-v0"]

#: Every env id registered here, for ``rlfoundry list`` (with ``rlfoundry.apps.APP_ENVS``).
BUILTIN_ENVS: list[str] = (
    GRIDWORLD_ENVS + cartpole.CARTPOLE_ENVS + games.GAME_ENVS + meta.META_ENVS + teams.TEAM_ENVS
)

__all__ = [
    "ACTION_NAMES",
    "BUILTIN_ENVS",
    "DEFAULT_LAYOUT",
    "GRIDWORLD_ENVS",
    "GridWorld",
    "parse_layout",
]


def _register() -> None:
    # Idempotent: re-importing (or a reload in a notebook) must not warn about overrides.
    for env_id, kwargs in zip(GRIDWORLD_ENVS, ({}, {"slip": 0.2})):
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="rlfoundry.envs.gridworld:GridWorld",
                kwargs=kwargs,
                max_episode_steps=100,
            )


_register()
cartpole.register()
games.register()
meta.register()
teams.register()
