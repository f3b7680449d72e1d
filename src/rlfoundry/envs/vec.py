"""Vector environments, their exact replay on resume, and running normalisers.

- :func:`make_vec_env`: N copies of an env stepped together, auto-resetting in the SAME
  step (Gymnasium >= 1.0 ``AutoresetMode.SAME_STEP``): when sub-env ``i`` terminates or
  truncates, ``step`` already returns its reset observation, and the last observation of
  the finished episode is in ``info["final_obs"][i]`` (an object array, valid where
  ``info["_final_obs"][i]``). That final observation is what a truncated episode must
  bootstrap from (STYLE.md rule 3; Pardo et al. 2018).
- :class:`VecActionLog`: the vector version of :class:`rlfoundry.envs.replay.ActionLog`.
  It records the ``[T, N]`` actions; on resume it rebuilds the env with the same seed
  and replays them, so every sub-env is back in its exact state (RNG included) without
  pickling anything.
- :class:`RunningMeanStd`, :class:`ObsNormalizer`, :class:`RewardNormalizer`: plain
  objects the algorithm applies to what the env returns. They are deliberately NOT
  wrappers: the replay must drive the raw env (replaying through a normalising wrapper
  would update its statistics a second time), and their statistics must go into the
  checkpoint and be reused by ``load_policy`` at evaluation time. Gymnasium's own
  ``NormalizeObservation`` / ``NormalizeReward`` wrappers keep their statistics inside
  the wrapper with no way to save or restore them, so they cannot give an exact resume
  nor an evaluation with the training statistics.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from rlfoundry.envs.evaluation import make_env
from rlfoundry.envs.replay import ArrayLog
from rlfoundry.errors import RLFoundryError


def make_vec_env(
    env_id: str,
    num_envs: int,
    seed: int,
    async_: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> VectorEnv:
    """``num_envs`` copies of ``env_id`` in a Sync (default) or Async vector env, SAME_STEP
    auto-reset. The sub-envs are seeded on the first ``reset(seed=seed)`` (sub-env ``i``
    gets ``seed + i``, Gymnasium's rule); ``seed`` here seeds the spaces' samplers.

    Sync is faster for cheap envs (CartPole steps in microseconds, far less than the
    inter-process round trip of AsyncVectorEnv); use ``async_=True`` for slow simulators.
    """
    if env_id == "CartPole-v1" and not env_kwargs and not async_:
        # The same numbers as the SyncVectorEnv below, at the cost of one copy's step
        from rlfoundry.envs.cartpole import CartPoleVec

        envs: VectorEnv = CartPoleVec(int(num_envs))
        envs.action_space.seed(int(seed))
        envs.observation_space.seed(int(seed))
        return envs
    make_env(env_id, **(env_kwargs or {})).close()  # clear EnvError now, not in a subprocess
    thunk = functools.partial(make_env, env_id, **(env_kwargs or {}))
    fns = [thunk] * int(num_envs)
    if async_:
        envs = AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    else:
        envs = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    envs.action_space.seed(int(seed))
    envs.observation_space.seed(int(seed))
    return envs


class VecActionLog(gym.vector.VectorWrapper):
    """Record every action given to a vector env so its state can be rebuilt by replay.

    The first ``reset()`` is seeded with ``seed``; later resets happen inside the vector
    env (SAME_STEP auto-reset) from the sub-envs' own generators, so the whole episode
    stream is a deterministic function of ``seed`` and the logged actions.
    """

    def __init__(self, env: VectorEnv, seed: int) -> None:
        super().__init__(env)
        self.seed = int(seed)
        self.log = ArrayLog(capacity=256)  # [T, N, ...]: one array, not one object per step

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        kwargs.setdefault("seed", self.seed)
        return self.env.reset(**kwargs)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        self.log.append(actions)
        return self.env.step(actions)

    def state_arrays(self, prefix: str = "replay/") -> dict[str, np.ndarray]:
        """The log as one ``[T, N, ...]`` array, for the checkpoint."""
        arr = self.log.array()
        if arr is None:
            shape = (0, self.num_envs, *(self.single_action_space.shape or ()))
            return {f"{prefix}actions": np.zeros(shape, dtype=self.single_action_space.dtype)}
        return {f"{prefix}actions": arr}

    def restore(self, actions: np.ndarray | torch.Tensor) -> tuple[Any, dict]:
        """Reset with the original seed and replay ``actions`` ``[T, N, ...]``; return the
        observation and info after the last one (the state at the checkpoint)."""
        actions = actions.numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        self.log.clear()
        obs, info = self.reset()
        for act in actions:
            obs, _, _, _, info = self.step(act)
        return obs, info


class RunningMeanStd:
    """Running mean and (population) variance over a stream of batches.

    Batches are merged with the parallel-variance formula of Chan, Golub and LeVeque
    (1979), so the result equals the statistics of all batches concatenated:

        delta = mean_b - mean;  n' = n + n_b
        mean' = mean + delta * n_b / n'
        var'  = (var * n + var_b * n_b + delta^2 * n * n_b / n') / n'

    ``epsilon`` is the weight of the initial (mean 0, var 1) guess, as in SB3/OpenAI
    baselines (1e-4: it avoids a zero variance before the first batch); 0 makes the
    statistics exactly those of the data. Kept in float64.
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, x: np.ndarray) -> None:
        """Merge a batch ``[B, *shape]``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return
        self.update_from_moments(x.mean(axis=0), x.var(axis=0), x.shape[0])

    def update_from_moments(self, mean_b: np.ndarray, var_b: np.ndarray, n_b: int) -> None:
        n = self.count
        tot = n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / tot)
        m2 = self.var * n + var_b * n_b + delta**2 * (n * n_b / tot)
        self.var = m2 / tot
        self.count = tot

    def state_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}mean": np.asarray(self.mean, dtype=np.float64),
            f"{prefix}var": np.asarray(self.var, dtype=np.float64),
            f"{prefix}count": np.asarray([self.count], dtype=np.float64),
        }

    def load(self, tensors: dict[str, Any], prefix: str) -> None:
        # reshape: the checkpoint stores a 0-d statistic as shape [1]
        shape = self.mean.shape
        self.mean = np.asarray(tensors[f"{prefix}mean"], dtype=np.float64).reshape(shape).copy()
        self.var = np.asarray(tensors[f"{prefix}var"], dtype=np.float64).reshape(shape).copy()
        self.count = float(np.asarray(tensors[f"{prefix}count"])[0])


class ObsNormalizer:
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)`` with running statistics.

    Call :meth:`update` on every batch the env returns during training, :meth:`__call__`
    to normalise (including ``final_obs`` used for bootstrapping), and freeze it at
    evaluation time by only calling :meth:`__call__`. As in SB3's VecNormalize.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, eps: float = 1e-8) -> None:
        self.rms = RunningMeanStd(shape)
        self.clip = float(clip)
        self.eps = float(eps)

    def update(self, obs: np.ndarray) -> None:
        self.rms.update(obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        out = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def state_arrays(self, prefix: str = "obs_rms/") -> dict[str, np.ndarray]:
        return self.rms.state_arrays(prefix)

    def load(self, tensors: dict[str, Any], prefix: str = "obs_rms/") -> None:
        self.rms.load(tensors, prefix)


class RewardNormalizer:
    """Scale rewards by the std of the discounted return (SB3 VecNormalize, CleanRL's
    NormalizeReward; Engstrom et al. 2020 "Implementation Matters", reward scaling).

        ret_i <- gamma * ret_i + rew_i;   update var with ret;   rew / sqrt(var + eps)

    The running return of sub-env ``i`` restarts at 0 after its episode ends, by
    termination OR truncation: the next step belongs to a new episode either way (this
    is bookkeeping of the scale, not bootstrapping). Rewards are not centred: shifting
    them would change the optimal policy of episodic tasks.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.rms = RunningMeanStd(())
        self.ret = np.zeros(num_envs, dtype=np.float64)
        self.gamma = float(gamma)
        self.clip = float(clip)
        self.eps = float(eps)

    def __call__(
        self, rew: np.ndarray, terminated: np.ndarray, truncated: np.ndarray
    ) -> np.ndarray:
        """Update the statistics with this step and return the scaled rewards ``[N]``."""
        self.ret = self.ret * self.gamma + rew
        self.rms.update(self.ret)
        out = np.clip(rew / np.sqrt(self.rms.var + self.eps), -self.clip, self.clip)
        self.ret[terminated | truncated] = 0.0
        return out.astype(np.float32)

    def state_arrays(self, prefix: str = "rew_rms/") -> dict[str, np.ndarray]:
        return {**self.rms.state_arrays(prefix), f"{prefix}ret": self.ret}

    def load(self, tensors: dict[str, Any], prefix: str = "rew_rms/") -> None:
        self.rms.load(tensors, prefix)
        self.ret = np.asarray(tensors[f"{prefix}ret"], dtype=np.float64).copy()


def check_replayed(obs: np.ndarray, saved: np.ndarray | torch.Tensor, env_id: str) -> None:
    """Raise if the replayed env is not where the checkpoint says it was."""
    saved = saved.numpy() if isinstance(saved, torch.Tensor) else np.asarray(saved)
    if not np.array_equal(np.asarray(obs), saved):
        raise RLFoundryError(
            f"Replaying the action log of '{env_id}' did not reproduce the checkpoint's "
            "observation, so the env is not deterministic given its seed; resume is not "
            "possible for it (start a new run)."
        )
