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

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

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


class CartPoleVec(VectorEnv):
    """``num_envs`` copies of ``gym.make("CartPole-v1")`` stepped as NumPy arrays, with the
    results of ``SyncVectorEnv`` (SAME_STEP auto-reset) bit for bit.

    Gymnasium's own ``CartPoleVectorEnv`` (``gym.make_vec(..., vectorization_mode=
    "vector_entry_point")``) has the same vectorised physics but only NEXT_STEP auto-reset
    and one generator for all copies. Here each copy keeps its own generator, seeded
    ``seed + i`` as SyncVectorEnv seeds its sub-envs, draws its reset state as
    ``CartPoleEnv.reset`` does, and the equations are CartPoleEnv.step's in the same order
    of float64 operations (NumPy's array and scalar sin/cos agree), with the TimeLimit of
    500 steps. So observations, rewards and flags equal the Python envs', one vector step
    costing what one copy's step costs there (tests/test_cartpole_vec.py checks 20k steps).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, max_episode_steps: int = 500) -> None:
        one = CartPoleEnv()
        for k in ("gravity", "masspole", "total_mass", "length", "polemass_length",
                  "force_mag", "tau", "theta_threshold_radians", "x_threshold"):  # fmt: skip
            setattr(self, k, getattr(one, k))
        self.num_envs, self.max_episode_steps = int(num_envs), int(max_episode_steps)
        self.single_observation_space = one.observation_space
        self.single_action_space = one.action_space
        self.observation_space = batch_space(one.observation_space, self.num_envs)
        self.action_space = batch_space(one.action_space, self.num_envs)
        self.spec = gym.spec("CartPole-v1")
        self.state = np.zeros((self.num_envs, 4))  # [N, (x, x_dot, theta, theta_dot)]
        self.elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self.rngs: list[np.random.Generator] = []

    def _reset_state(self, i: int) -> None:
        self.state[i] = self.rngs[i].uniform(low=-0.05, high=0.05, size=(4,))
        self.elapsed[i] = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None or not self.rngs:
            self.rngs = [
                seeding.np_random(None if seed is None else int(seed) + i)[0]
                for i in range(self.num_envs)
            ]
        for i in range(self.num_envs):
            self._reset_state(i)
        return self.state.astype(np.float32), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(np.asarray(actions) == 1, self.force_mag, -self.force_mag)
        costheta, sintheta = np.cos(theta), np.sin(theta)
        # CartPoleEnv.step, operation for operation (Florian 2007's corrected equations)
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + self.tau * x_dot  # Euler, as CartPole-v1
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        self.state = np.stack((x, x_dot, theta, theta_dot), axis=1)
        term = (
            (x < -self.x_threshold)
            | (x > self.x_threshold)
            | (theta < -self.theta_threshold_radians)
            | (theta > self.theta_threshold_radians)
        )
        self.elapsed += 1
        trunc = self.elapsed >= self.max_episode_steps
        obs = self.state.astype(np.float32)
        info: dict[str, Any] = {}
        done = term | trunc
        if done.any():  # SAME_STEP: the final observation goes to info, the reset one out
            final = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final[i] = obs[i].copy()
                self._reset_state(i)
                obs[i] = self.state[i].astype(np.float32)
            info = {"final_obs": final, "_final_obs": done.copy()}
        return obs, np.ones(self.num_envs), term, trunc, info
