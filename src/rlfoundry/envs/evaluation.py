"""Make environments with clear errors, evaluate a policy on them, and the hooks through
which higher layers add to an evaluation.

- :func:`make_env`, :func:`check_spaces` (a gym algorithm's ``check(cfg)``);
- :func:`evaluate` and :func:`eval_seed`, the seeds of the held-out evaluation episodes;
- :func:`register_env_metrics` / :func:`env_metrics`: extra summary fields an application
  contributes for its own envs (:mod:`rlfoundry.apps` adds the driving metrics), looked up
  by env id so that no algorithm knows any application;
- :func:`record_video` and :func:`run_callbacks` (``render_video``: a GIF after training).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from rlfoundry.errors import EnvError
from rlfoundry.runtime.video import headless, record_gif

if TYPE_CHECKING:
    from rlfoundry.runtime.callbacks import Callback

Policy = Callable[[Any], Any]

#: Evaluation episodes are reset with seeds from ``seed + EVAL_SEED_OFFSET`` on, so they
#: are never among the training episodes of a run seeded ``seed`` (nor of its neighbours).
EVAL_SEED_OFFSET = 10_000


def describe_space(space: gym.Space) -> str:
    """A space in words for an error sentence: ``Discrete(4)`` stays as it is, a Box is
    ``a Box of 4 floats`` rather than its repr with every bound (``Box([-4.8 -inf ...``)."""
    if isinstance(space, gym.spaces.Box):
        shape = "x".join(str(n) for n in space.shape)
        kind = "float" if np.issubdtype(space.dtype, np.floating) else "integer"
        plural = "" if int(np.prod(space.shape)) == 1 else "s"
        if len(space.shape) == 1:
            return f"a Box of {shape} {kind}{plural}"
        return f"a {shape} Box of {kind}s"
    return (
        type(space).__name__
        if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple)
        else str(space)
    )


def eval_seed(seed: int) -> int:
    """Seed of the first held-out evaluation episode of a run trained with ``seed``."""
    return int(seed) + EVAL_SEED_OFFSET


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

    Where ``env`` is a plain ``gym.make("CartPole-v1")`` and ``policy`` has a ``batch``
    attribute (a deterministic policy for a ``[B, ...]`` batch of observations, as
    :func:`rlfoundry.algos.deep.onpolicy.make_policy` gives), the episodes are played all
    at once on :class:`rlfoundry.envs.cartpole.CartPoleVec` (copy i reset with
    ``seed + i``: the same episodes, observation for observation), one batched policy call
    per step instead of one per episode and step.
    """
    batch = getattr(policy, "batch", None)
    if batch is not None and episodes > 0 and _plain_cartpole(env):
        returns, lengths = _play_cartpole(batch, episodes, seed)
    else:
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


def _plain_cartpole(env: gym.Env) -> bool:
    """Whether ``env`` is ``gym.make("CartPole-v1")`` as made by default: Gymnasium's
    CartPoleEnv under only the wrappers ``gym.make`` adds, no keyword, the 500-step limit."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv
    from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

    spec = getattr(env, "spec", None)
    if spec is None or spec.id != "CartPole-v1" or spec.kwargs or spec.max_episode_steps != 500:
        return False
    layer, limited = env, False
    while isinstance(layer, gym.Wrapper):
        if type(layer) not in (TimeLimit, OrderEnforcing, PassiveEnvChecker):
            return False
        limited |= type(layer) is TimeLimit and layer._max_episode_steps == 500
        layer = layer.env
    return limited and type(layer) is CartPoleEnv and layer.render_mode is None


def _play_cartpole(
    batch: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int
) -> tuple[list[float], list[int]]:
    """Returns and lengths of ``episodes`` CartPole-v1 episodes (episode i reset with
    ``seed + i``), played at once on a CartPoleVec: each copy's first episode counts."""
    from rlfoundry.envs.cartpole import CartPoleVec

    env = CartPoleVec(episodes)
    obs, _ = env.reset(seed=seed)
    total, length = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    alive = np.ones(episodes, dtype=bool)
    while alive.any():
        obs, rew, term, trunc, _ = env.step(batch(obs))
        total += rew * alive
        length += alive
        alive &= ~(term | trunc)
    return [float(x) for x in total], [int(n) for n in length]


def check_spaces(cfg: Any, check_env: Callable[[gym.Env], None]) -> None:
    """A gym algorithm's ``check(cfg)``: make ``cfg.env_id`` with ``cfg.env_kwargs``, let
    ``check_env`` raise its EnvError if the spaces do not suit the algorithm, close the
    env. Runs before anything is written."""
    env = make_env(cfg.env_id, **(getattr(cfg, "env_kwargs", None) or {}))
    try:
        check_env(env)
    finally:
        env.close()


# --------------------------------------------------------------------------- env metrics

#: ``metrics(policy, env, episodes, seed) -> {field: value}`` for one env's summary.
EnvMetrics = Callable[[Policy, gym.Env, int, int], dict[str, Any]]
_ENV_METRICS: dict[str, EnvMetrics] = {}


def register_env_metrics(env_id: str, metrics: EnvMetrics) -> None:
    """Add ``metrics`` to the evaluation of every run on ``env_id`` (replacing any earlier
    one): how an application contributes its own measures without an algorithm knowing it."""
    _ENV_METRICS[env_id] = metrics


def env_metrics(cfg: Any, policy: Policy) -> dict[str, Any]:
    """The registered extra fields of ``cfg.env_id`` for ``policy``, measured on
    ``cfg.eval_episodes`` episodes reset from :func:`eval_seed` on ({} when none are
    registered or no episodes are asked for)."""
    metrics = _ENV_METRICS.get(cfg.env_id)
    if metrics is None or cfg.eval_episodes <= 0:
        return {}
    env = make_env(cfg.env_id, **(cfg.env_kwargs or {}))
    try:
        return metrics(policy, env, cfg.eval_episodes, eval_seed(cfg.seed))
    finally:
        env.close()


# --------------------------------------------------------------------------- video


def record_video(
    policy: Policy,
    env_id: str,
    path: str | Path,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Record one episode of ``policy`` on ``env_id`` (reset with ``seed``) to the GIF at
    ``path`` (:func:`rlfoundry.runtime.video.record_gif`); return the path."""
    headless()
    env = make_env(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    return record_gif(policy, env, path, seed)


def run_callbacks(cfg: Any, load_policy: Callable[[Path, Any], Policy]) -> list[Callback]:
    """The callbacks a gym algorithm's config asks for: with ``render_video``, a GIF of one
    evaluation episode (seed :func:`eval_seed`) of the final policy, ``load_policy(path,
    cfg)``, written to ``RUN_DIR/eval.gif`` after training."""
    if not getattr(cfg, "render_video", False):
        return []
    from rlfoundry.runtime.callbacks import RecordVideo  # the Run's module imports torch

    kwargs = dict(getattr(cfg, "env_kwargs", None) or {})

    def make() -> gym.Env:
        return make_env(cfg.env_id, render_mode="rgb_array", **kwargs)

    return [RecordVideo(lambda path: load_policy(path, cfg), make, eval_seed(cfg.seed))]
