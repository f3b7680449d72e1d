"""highway-env with the driving reward of seed 002: speed, collisions, abrupt braking.

Seed 002 rewards "minimizing travel time" and penalises "abrupt braking, collisions".
highway-env's own reward has a speed term and a collision term but nothing for braking,
so :class:`DrivingReward` replaces it with (per policy step of ``dt`` seconds)::

    rew = speed_weight * clip((v - v_lo) / (v_hi - v_lo), 0, 1)     # travel speed / time
          - collision_penalty * crashed
          - brake_penalty * [(v_prev - v) / dt > brake_threshold]   # abrupt braking
          - lane_change_cost * [action is LANE_LEFT or LANE_RIGHT]

``v`` is the ego vehicle's speed (m/s) at the end of the step; by default ``v_lo = 0``
and ``v_hi`` is the top target speed, so the speed term is the fraction of the best
possible progress made this step (see :data:`SPEED_RANGE`). A collision's own speed
drop is not counted as braking. The default ``brake_threshold`` of 3 m/s^2 (about 0.3 g,
beyond comfortable braking) flags every SLOWER meta-action (which sheds ~4.3 m/s in one
second in highway-fast) and every emergency stop, but not IDLE or lane changes.
``info`` carries ``speed``, ``crashed``, ``braking``, ``decel``, ``distance`` (metres
travelled this step) and ``lane_change`` for the driving evaluation.

Observations are highway-env's Kinematics (5 vehicles x 5 features) flattened to a
float32 vector, so the MLPs of DQN and PPO take them directly. They are computed by
:class:`FastKinematics`, the same numbers as highway-env's ``KinematicObservation``
(bit for bit, tested) without a pandas DataFrame per step, which was 28 % of a
highway-fast step. ``ttc_horizon > 0`` appends the time-to-collision grid
(:class:`TimeToCollision`; the shipped DQN config uses 5).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import gymnasium as gym
import numpy as np

from rlfoundry.errors import EnvError

#: Speeds (m/s) mapped to a speed reward of 0 and 1, per base scenario.
#: The low end is 0, so the speed term is progress (distance per step) and every step
#: survived earns something: with highway-env's own (20, 30) range, crawling at 20 m/s
#: earned nothing and a fast crash paid better than driving safely to the end.
SPEED_RANGE: dict[str, tuple[float, float]] = {
    "highway-fast-v0": (0.0, 30.0),
    "highway-v0": (0.0, 30.0),
    "merge-v1": (0.0, 30.0),
    "roundabout-v1": (0.0, 16.0),
}


_KIN_FEATURES = ("presence", "x", "y", "vx", "vy")


@functools.cache
def _fast_kinematics_class() -> type:
    from highway_env.envs.common.observation import KinematicObservation
    from highway_env.vehicle.kinematics import Vehicle

    class FastKinematics(KinematicObservation):
        """highway-env's ``KinematicObservation.observe`` on NumPy rows instead of DataFrames.

        Same vehicles (``close_objects_to``), same arithmetic (``to_dict``'s differences to
        the observer, ``normalize_obs``'s ``lmap`` and clip, zero rows for missing
        vehicles), so the float32 result is identical. Configurations it does not cover
        (other features, shuffled order, non-vehicle objects) use highway-env's code.
        """

        def observe(self) -> np.ndarray:
            if (
                not self.env.road
                or self.order != "sorted"
                or not set(self.features) <= set(_KIN_FEATURES)
            ):
                return super().observe()
            ego = self.observer_vehicle
            close = self.env.road.close_objects_to(
                ego,
                self.env.PERCEPTION_DISTANCE,
                count=self.vehicles_count - 1,
                see_behind=self.see_behind,
                sort=True,
                vehicles_only=not self.include_obstacles,
            )
            others = close[-self.vehicles_count + 1 :] if close else []
            if not all(isinstance(v, Vehicle) for v in [ego, *others]):
                return super().observe()

            def row(v: Any) -> list[float]:
                vel = v.velocity
                return [1.0, v.position[0], v.position[1], vel[0], vel[1]]

            rows = np.asarray([row(ego)] + [row(v) for v in others], dtype=np.float64)  # [k, 5]
            if not self.absolute and len(rows) > 1:
                rows[1:, 1:] -= rows[0, 1:]
            cols = {f: rows[:, _KIN_FEATURES.index(f)] for f in self.features}
            if self.normalize:
                cols = self.normalize_obs(cols)  # works on any mapping of columns
            obs = np.zeros((self.vehicles_count, len(self.features)), dtype=np.float64)
            obs[: len(rows)] = np.stack([cols[f] for f in self.features], axis=1)
            return obs.astype(np.float32)

    return FastKinematics


def use_fast_kinematics(env: gym.Env) -> None:
    """Swap the base env's ``KinematicObservation`` (exactly that class) for
    :class:`FastKinematics`; highway-env rebuilds it on every reset, so call after reset."""
    from highway_env.envs.common.observation import KinematicObservation

    base = env.unwrapped
    slow = getattr(base, "observation_type", None)
    if type(slow) is KinematicObservation:
        cls = _fast_kinematics_class()
        fast = cls.__new__(cls)
        fast.__dict__.update(slow.__dict__)
        base.observation_type = fast  # type: ignore[attr-defined]


class TimeToCollision(gym.ObservationWrapper):
    """Append highway-env's time-to-collision grid to the flat observation.

    For each of 3 target speeds (the ego's current one and its neighbours) and 3 lanes
    (its own and the two beside it), the grid marks the 1-second steps of the next
    ``horizon`` at which the ego, driving at that speed in that lane, is predicted to
    reach another vehicle (highway-env's ``TimeToCollisionObservation``, computed from
    the current positions and speeds at constant velocity). The kinematic features say
    where the neighbours are; the grid says which meta-action runs into one, the
    quantity a driver brakes or changes lane for.
    """

    def __init__(self, env: gym.Env, horizon: int) -> None:
        super().__init__(env)
        from highway_env.envs.common.observation import TimeToCollisionObservation

        self.ttc = TimeToCollisionObservation(self.env.unwrapped, horizon=int(horizon))
        n = int(np.prod(env.observation_space.shape)) + 9 * int(horizon)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        grid = self.ttc.observe()  # [3 speeds, 3 lanes, horizon]
        return np.concatenate([obs, grid.reshape(-1)]).astype(np.float32)


class DrivingReward(gym.Wrapper):
    """Replace highway-env's reward with the seed-002 reward; see the module docstring."""

    def __init__(
        self,
        env: gym.Env,
        speed_weight: float = 1.0,
        collision_penalty: float = 5.0,
        brake_penalty: float = 0.5,
        brake_threshold: float = 3.0,
        lane_change_cost: float = 0.05,
        speed_range: tuple[float, float] = (0.0, 30.0),
        fast_obs: bool = True,
    ) -> None:
        super().__init__(env)
        self.fast_obs = bool(fast_obs)
        self.speed_weight = float(speed_weight)
        self.collision_penalty = float(collision_penalty)
        self.brake_penalty = float(brake_penalty)
        self.brake_threshold = float(brake_threshold)
        self.lane_change_cost = float(lane_change_cost)
        self.v_lo, self.v_hi = (float(x) for x in speed_range)
        if self.v_hi <= self.v_lo:
            raise EnvError(f"speed_range {speed_range} must be (low, high) with low < high.")
        names = self.env.unwrapped.action_type.actions  # type: ignore[attr-defined]
        self._lane_actions = {i for i, n in names.items() if n in ("LANE_LEFT", "LANE_RIGHT")}
        self.dt = 1.0 / float(self.env.unwrapped.config["policy_frequency"])  # type: ignore[attr-defined]
        self._speed = 0.0
        self._pos = np.zeros(2)

    def _ego(self) -> Any:
        return self.env.unwrapped.vehicle  # type: ignore[attr-defined]

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        if self.fast_obs:
            use_fast_kinematics(self.env)
        ego = self._ego()
        self._speed, self._pos = float(ego.speed), np.array(ego.position, dtype=np.float64)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, _, terminated, truncated, info = self.env.step(action)
        ego = self._ego()
        speed = float(ego.speed)
        pos = np.array(ego.position, dtype=np.float64)
        crashed = bool(ego.crashed)
        decel = (self._speed - speed) / self.dt
        braking = (not crashed) and decel > self.brake_threshold
        lane_change = int(np.asarray(action).item()) in self._lane_actions
        speed_term = float(np.clip((speed - self.v_lo) / (self.v_hi - self.v_lo), 0.0, 1.0))
        rew = (
            self.speed_weight * speed_term
            - self.collision_penalty * crashed
            - self.brake_penalty * braking
            - self.lane_change_cost * lane_change
        )
        info = dict(info)
        info.update(
            speed=speed,
            crashed=crashed,
            braking=braking,
            decel=decel,
            distance=float(np.linalg.norm(pos - self._pos)),
            lane_change=lane_change,
            base_reward=info.get("rewards"),
        )
        info.pop("rewards", None)
        self._speed, self._pos = speed, pos
        return obs, float(rew), terminated, truncated, info


def make_driving_env(
    base: str = "highway-fast-v0",
    speed_weight: float = 1.0,
    collision_penalty: float = 5.0,
    brake_penalty: float = 0.5,
    brake_threshold: float = 3.0,
    lane_change_cost: float = 0.05,
    speed_range: tuple[float, float] | list[float] | None = None,
    config: dict[str, Any] | None = None,
    render_mode: str | None = None,
    fast_obs: bool = True,
    ttc_horizon: int = 0,
) -> gym.Env:
    """A highway-env scenario with :class:`DrivingReward` and flat float32 observations.

    ``config`` updates highway-env's own config (e.g. ``{"vehicles_count": 30}``);
    ``fast_obs=False`` keeps highway-env's own (slower, identical) observation code;
    ``ttc_horizon > 0`` appends the :class:`TimeToCollision` grid over that many seconds.
    """
    try:
        import highway_env  # noqa: F401  (registers highway-env's ids)
    except ImportError:
        raise EnvError(
            "The driving envs need highway-env; install it with `pip install highway-env`."
        ) from None
    if render_mode is not None and os.environ.get("SDL_VIDEODRIVER", "dummy") == "dummy":
        # Render without a display. SDL's "dummy" driver gives all-black frames under
        # pygame-ce (which highway-env installs); "offscreen" draws them properly.
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
    if base not in SPEED_RANGE:
        raise EnvError(f"Unknown driving scenario '{base}'; use one of {', '.join(SPEED_RANGE)}.")
    env = gym.make(base, config=config or {}, render_mode=render_mode, disable_env_checker=True)
    env = gym.wrappers.FlattenObservation(env)
    env = gym.wrappers.TransformObservation(
        env,
        lambda o: np.asarray(o, dtype=np.float32),
        gym.spaces.Box(-np.inf, np.inf, env.observation_space.shape, np.float32),
    )
    if ttc_horizon < 0:
        raise EnvError(f"ttc_horizon must be 0 (off) or a number of seconds; got {ttc_horizon}.")
    if ttc_horizon:
        env = TimeToCollision(env, ttc_horizon)
    return DrivingReward(
        env,
        speed_weight=speed_weight,
        collision_penalty=collision_penalty,
        brake_penalty=brake_penalty,
        brake_threshold=brake_threshold,
        lane_change_cost=lane_change_cost,
        speed_range=tuple(speed_range) if speed_range else SPEED_RANGE[base],
        fast_obs=fast_obs,
    )
