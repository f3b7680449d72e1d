"""Evaluate a policy on an environment, and make environments with clear errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlfoundry.errors import EnvError

Policy = Callable[[Any], Any]


def env_ids() -> list[str]:
    """Built-in rlfoundry envs first, then every id registered with Gymnasium."""
    import rlfoundry.envs  # noqa: F401  (registers the built-in envs)

    ours = sorted(k for k in gym.registry if k.startswith("rlfoundry/"))
    return ours + sorted(k for k in gym.registry if not k.startswith("rlfoundry/"))


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` with one clear error naming valid ids when ``env_id`` is unknown."""
    import rlfoundry.envs  # noqa: F401

    if env_id not in gym.registry:
        ours = [k for k in gym.registry if k.startswith("rlfoundry/")]
        close = [k for k in gym.registry if env_id.split("-")[0].lower() in k.lower()][:8]
        hint = f" Similar: {', '.join(close)}." if close else ""
        raise EnvError(
            f"Unknown environment '{env_id}'; use a Gymnasium id such as CartPole-v1 or one "
            f"of the built-in envs ({', '.join(ours)}); `rlfoundry list` shows them all.{hint}"
        )
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as err:
        raise EnvError(f"Environment '{env_id}' needs an extra package: {err}") from None
    except TypeError as err:
        raise EnvError(f"Environment '{env_id}' rejected its keyword arguments: {err}") from None


def evaluate(
    policy: Policy,
    env: gym.Env,
    episodes: int,
    seed: int,
) -> dict[str, Any]:
    """Run ``episodes`` episodes of ``policy`` on ``env`` (episode i reset with ``seed + i``).

    Returns mean/std of the undiscounted episode return and the episode lengths.
    """
    returns, lengths = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total, n = False, 0.0, 0
        while not done:
            obs, rew, terminated, truncated, _ = env.step(policy(obs))
            total += float(rew)
            n += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(n)
    arr = np.asarray(returns, dtype=np.float64)
    return {
        "eval_mean_return": float(arr.mean()) if len(arr) else float("nan"),
        "eval_std_return": float(arr.std()) if len(arr) else float("nan"),
        "eval_episodes": int(episodes),
        "eval_mean_length": float(np.mean(lengths)) if lengths else float("nan"),
        "eval_returns": [float(x) for x in arr],
    }
