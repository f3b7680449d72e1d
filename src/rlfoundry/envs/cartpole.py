"""CartPole with a pole of any length, for transfer between related control tasks.

``rlfoundry/CartPole-v1`` is Gymnasium's ``CartPole-v1`` (same dynamics, reward, 500-step
limit and reward threshold 475) with one more keyword, ``pole_length``: the FULL length
of the pole in metres, 1.0 by default, which is Gymnasium's pole. Gymnasium's physics
uses the half-length ``length`` (0.5) and ``polemass_length = masspole * length``; both
are set from ``pole_length`` so the equations of motion stay consistent (Barto, Sutton
and Anderson 1983; Florian 2007 for the corrected equations Gymnasium uses). The mass of
the pole is unchanged (0.1 kg).

A longer pole falls more slowly (its angular acceleration scales roughly as 1 / length),
so it is easier to balance; a shorter one is harder. Observations and actions are the
same for every length, so a network trained on one length runs unchanged on another:

    rlfoundry train ppo --env rlfoundry/CartPole-v1 --set env_kwargs='{pole_length: 0.25}'
"""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from rlfoundry.errors import EnvError

CARTPOLE_ENVS: list[str] = ["rlfoundry/CartPole-v1"]


class CartPole(CartPoleEnv):
    """Gymnasium's CartPole with ``pole_length`` (full length, metres; default 1.0)."""

    def __init__(
        self,
        pole_length: float = 1.0,
        sutton_barto_reward: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if not pole_length > 0:
            raise EnvError(
                f"pole_length must be a positive length in metres, got {pole_length!r}; "
                "set e.g. env_kwargs={pole_length: 0.5}."
            )
        super().__init__(sutton_barto_reward=sutton_barto_reward, render_mode=render_mode)
        self.pole_length = float(pole_length)
        self.length = self.pole_length / 2  # Gymnasium's `length` is the half-length
        self.polemass_length = self.masspole * self.length


def register() -> None:
    """Register ``rlfoundry/CartPole-v1`` (idempotent)."""
    if CARTPOLE_ENVS[0] not in gym.registry:
        gym.register(
            CARTPOLE_ENVS[0],
            entry_point="rlfoundry.envs.cartpole:CartPole",
            max_episode_steps=500,
            reward_threshold=475.0,
        )
