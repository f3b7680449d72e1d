"""What the tabular agents (Q-learning, SARSA, Expected SARSA, Dyna-Q) share, and nothing else.

- :class:`TabularConfig`, the fields every tabular agent has;
- epsilon-greedy action selection from a Q row, ties broken at random;
- scalar twins of the TD targets in :mod:`rlfoundry.core` for the per-step hot loop;
- the checkpoint (Q-table, generator, episode tally, action log) and the resume;
- ``check_env`` / ``check``, ``load_policy`` and ``extra_eval`` (exact return of the greedy
  policy against the optimum, for envs that expose their transition table ``P``);
- :func:`exact_learning_curve`: the exact return of the greedy policy along a run.

Each algorithm file keeps its own loop in full; only these pieces live here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from rlfoundry.core.schedules import Schedule, make_schedule
from rlfoundry.envs.evaluation import check_spaces, describe_space, make_env
from rlfoundry.envs.replay import ActionLog
from rlfoundry.errors import ConfigError, EnvError, RLFoundryError
from rlfoundry.runtime.callbacks import Evaluate
from rlfoundry.runtime.run import (
    CHECKPOINT,
    Run,
    generator_state,
    load_checkpoint_file,
    set_generator_state,
)

ScheduleKind = Literal["constant", "linear", "exponential"]


@dataclass
class TabularConfig:
    """Fields shared by every tabular agent; each algorithm's ``Config`` extends it."""

    env_id: str = "rlfoundry/GridWorld-v0"
    """Gymnasium id of an environment with Discrete observations and actions."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gym.make, e.g. {map_name: 8x8} for FrozenLake-v1."""
    total_steps: int = 5_000
    """Real environment steps to train for (planning updates of Dyna-Q do not count)."""
    seed: int = 0
    """Seed of the environment resets and of the exploration generator."""
    gamma: float = 0.99
    """Discount factor of the TD target; 1.0 is fine on episodic tasks that always end."""
    learning_rate: float = 0.5
    """Step size alpha of the TD update at step 0."""
    lr_schedule: ScheduleKind = "constant"
    """How alpha goes from learning_rate to lr_end: constant (stays learning_rate), linear
    or exponential."""
    lr_end: float = 0.01
    """Step size at the end of its decay (ignored when lr_schedule is constant)."""
    lr_fraction: float = 1.0
    """Fraction of total_steps over which alpha decays to lr_end."""
    epsilon_start: float = 1.0
    """Exploration rate of the epsilon-greedy behaviour policy at step 0."""
    epsilon_end: float = 0.05
    """Exploration rate once the decay is over."""
    epsilon_schedule: ScheduleKind = "linear"
    """How epsilon goes from epsilon_start to epsilon_end: constant, linear or exponential."""
    epsilon_fraction: float = 0.5
    """Fraction of total_steps over which epsilon decays to epsilon_end."""
    q_init: float = 0.0
    """Initial value of every Q(s, a); above the true values it drives exploration (optimism)."""
    eval_episodes: int = 20
    """Episodes of the greedy-policy evaluation written to summary.json."""
    log_every: int = 100
    """Write one metrics row once this many env steps have passed since the last: mean return
    and length of the episodes finished since (1 logs every episode)."""

    def validate(self) -> None:
        """Raise ConfigError for values no tabular agent can use."""
        checks = [
            (self.total_steps >= 0, "total_steps must be >= 0"),
            (0.0 <= self.gamma <= 1.0, "gamma must lie in [0, 1]"),
            (
                self.learning_rate > 0.0 and self.lr_end > 0.0,
                "learning_rate and lr_end must be > 0",
            ),
            (0.0 <= self.epsilon_start <= 1.0, "epsilon_start must lie in [0, 1]"),
            (0.0 <= self.epsilon_end <= 1.0, "epsilon_end must lie in [0, 1]"),
            (0.0 <= self.lr_fraction <= 1.0, "lr_fraction must lie in [0, 1]"),
            (0.0 <= self.epsilon_fraction <= 1.0, "epsilon_fraction must lie in [0, 1]"),
            (self.eval_episodes >= 0, "eval_episodes must be >= 0"),
            (self.log_every >= 1, "log_every must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"{msg}; fix it in the config file or --set.")


def epsilon_at(cfg: TabularConfig) -> Schedule:
    """``step -> epsilon`` of ``cfg``."""
    duration = round(cfg.epsilon_fraction * cfg.total_steps)
    return make_schedule(cfg.epsilon_schedule, cfg.epsilon_start, cfg.epsilon_end, duration)


def lr_at(cfg: TabularConfig) -> Schedule:
    """``step -> alpha`` of ``cfg``."""
    duration = round(cfg.lr_fraction * cfg.total_steps)
    return make_schedule(cfg.lr_schedule, cfg.learning_rate, cfg.lr_end, duration)


# --------------------------------------------------------------------------- acting


def argmax_random_tie(q_row: np.ndarray, rng: np.random.Generator) -> int:
    """An action of highest value, uniformly among ties (a fresh Q-table is all ties, and
    ``argmax``'s lowest index would walk the agent into the same wall every episode)."""
    best = np.flatnonzero(q_row == q_row.max())
    if best.shape[0] == 1:
        return int(best[0])
    return int(best[rng.integers(best.shape[0])])


def epsilon_greedy(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """With probability ``epsilon`` a uniform action, else a greedy one (random tie-break)."""
    if rng.random() < epsilon:
        return int(rng.integers(q_row.shape[0]))
    return argmax_random_tie(q_row, rng)


def epsilon_greedy_probs(q_row: np.ndarray, epsilon: float) -> np.ndarray:
    """pi(a|s) of :func:`epsilon_greedy` [A]: ``epsilon / A`` each, plus ``(1 - epsilon)``
    shared equally by the maxima."""
    best = q_row == q_row.max()
    return epsilon / q_row.shape[0] + (1.0 - epsilon) * best / best.sum()


def greedy_policy(Q: np.ndarray) -> np.ndarray:
    """Deterministic greedy policy [S]: ``argmax_a Q[s, a]``, ties to the lowest index."""
    return np.argmax(Q, axis=1)


# --------------------------------------------------------------------------- TD targets
# Scalar twins of rlfoundry.core's targets. The core functions go through torch and cost
# ~70 us a call, more than an env step; these are the same formulas on one transition
# (tests/algos/test_tabular.py checks they agree). Only `terminated` cuts the bootstrap:
# a time-limit truncation still bootstraps (STYLE.md rule 3).


def q_learning_target(rew: float, next_q: np.ndarray, terminated: bool, gamma: float) -> float:
    """:func:`rlfoundry.core.q_learning_target`: ``rew + gamma * (1 - term) * max_a next_q[a]``."""
    return rew if terminated else rew + gamma * float(next_q.max())


def sarsa_target(rew: float, next_q_sa: float, terminated: bool, gamma: float) -> float:
    """:func:`rlfoundry.core.sarsa_target`: ``rew + gamma * (1 - term) * Q(s', a')``."""
    return rew if terminated else rew + gamma * float(next_q_sa)


def expected_sarsa_target(
    rew: float, next_q: np.ndarray, next_probs: np.ndarray, terminated: bool, gamma: float
) -> float:
    """:func:`rlfoundry.core.expected_sarsa_target`:
    ``rew + gamma * (1 - term) * sum_a pi(a|s') Q(s', a)``."""
    return rew if terminated else rew + gamma * float(next_probs @ next_q)


# --------------------------------------------------------------------------- env


def check_env(env: gym.Env) -> None:
    """Raise EnvError unless observations and actions are both ``Discrete`` (from 0)."""
    obs_space, act_space = env.observation_space, env.action_space
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    if not (
        isinstance(obs_space, gym.spaces.Discrete) and isinstance(act_space, gym.spaces.Discrete)
    ):
        raise EnvError(
            f"Tabular algorithms keep one Q-table row per state and cannot handle {name}'s "
            f"spaces (observations: {describe_space(obs_space)}, actions: "
            f"{describe_space(act_space)}); they need Discrete "
            "observations and actions, so use dqn or ppo for this env."
        )
    if obs_space.start != 0 or act_space.start != 0:
        raise EnvError(
            f"{name} numbers its states or actions from {obs_space.start}/{act_space.start}, "
            "but a Q-table is indexed from 0; wrap the env so its Discrete spaces start at 0."
        )


def check(cfg: TabularConfig) -> None:
    """Raise EnvError unless ``cfg``'s env has Discrete observations and actions from 0
    (:func:`check_env`)."""
    check_spaces(cfg, check_env)


def make_tabular_env(cfg: TabularConfig) -> tuple[ActionLog, int, int]:
    """The env wrapped in an :class:`ActionLog` (exact resume), and its numbers of states and
    actions."""
    env = ActionLog(make_env(cfg.env_id, **cfg.env_kwargs), seed=cfg.seed)
    check_env(env)
    return env, int(env.observation_space.n), int(env.action_space.n)


# --------------------------------------------------------------------------- bookkeeping


class EpisodeTally:
    """Return and length of the running episode, and the window of finished episodes that the
    next metrics row averages. All of it goes in the checkpoint, so a resumed run writes the
    same rows as an uninterrupted one."""

    def __init__(self, log_every: int) -> None:
        self.log_every = log_every
        self.ep_ret = 0.0  # running episode
        self.ep_len = 0
        self.episodes = 0  # finished episodes, whole run
        self.last_log = 0  # step of the last metrics row
        self.win_ret = 0.0  # sums over the episodes finished since the last row
        self.win_len = 0
        self.win_n = 0
        self.td_abs = 0.0  # sum of |TD error| over the steps since the last row
        self.td_n = 0

    def step(self, rew: float, td: float) -> None:
        self.ep_ret += rew
        self.ep_len += 1
        self.td_abs += abs(td)
        self.td_n += 1

    def end_episode(self, run: Run, step: int, **extra: float) -> None:
        """Close the episode; log a row (and move the progress bar) when one is due."""
        self.episodes += 1
        self.win_ret += self.ep_ret
        self.win_len += self.ep_len
        self.win_n += 1
        self.ep_ret, self.ep_len = 0.0, 0
        if step - self.last_log >= self.log_every:
            self.flush(run, step, **extra)

    def flush(self, run: Run, step: int, **extra: float) -> None:
        """Write one metrics row with what has accumulated since the last one."""
        row: dict[str, float] = {}
        if self.win_n:
            row["episode_return"] = self.win_ret / self.win_n
            row["episode_length"] = self.win_len / self.win_n
        if self.td_n:
            row["td_error"] = self.td_abs / self.td_n
        run.log(step, **row, episodes=self.episodes, **extra)
        run.progress(step, **({"ret": row["episode_return"]} if self.win_n else {}))
        self.last_log = step
        self.win_ret, self.win_len, self.win_n = 0.0, 0, 0
        self.td_abs, self.td_n = 0.0, 0

    def finish(self, run: Run, step: int, **extra: float) -> None:
        """Last row of the run, if anything happened since the previous one."""
        if self.win_n or self.td_n:
            self.flush(run, step, **extra)

    def state(self) -> dict[str, float]:
        return {k: v for k, v in vars(self).items() if k != "log_every"}

    def load(self, state: dict[str, float]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def save_checkpoint(
    run: Run,
    step: int,
    Q: np.ndarray,
    rng: np.random.Generator,
    env: ActionLog,
    tally: EpisodeTally,
    tensors: dict[str, np.ndarray] | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    """Q-table, action log and extra ``tensors``; generator, tally and extra ``state``."""
    run.save_checkpoint(
        step,
        {"q": Q, **env.state_arrays(), **(tensors or {})},
        {"rng": generator_state(rng), "tally": tally.state(), **(state or {})},
    )
    run.progress(step)


def resume(
    run: Run,
    env: ActionLog,
    Q: np.ndarray,
    rng: np.random.Generator,
    tally: EpisodeTally,
) -> tuple[int, Any, dict[str, np.ndarray], dict[str, Any]]:
    """Start or resume: ``(step, obs, tensors, state)``.

    A fresh run shows ``Q`` to the run's callbacks (:meth:`Run.warm_start`: a transfer
    starts from another table there) and resets the env: ``(0, obs, {}, {})``. With a
    checkpoint, ``Q``, ``rng`` and ``tally`` are restored in place and the env is
    fast-forwarded by replaying its action log (:class:`ActionLog`), so it sits exactly
    where it was at the save.
    """
    ckpt = run.load_checkpoint(restore_rng=False)  # the global RNGs: restored by Run
    if ckpt is None:
        run.warm_start({"q": Q})
        obs, _ = env.reset()
        return 0, obs, {}, {}
    step, tensors, state = ckpt
    saved = tensors["q"].numpy()
    if saved.shape != Q.shape:
        raise RLFoundryError(
            f"The checkpoint's Q-table has shape {tuple(saved.shape)} but {run.path}'s env needs "
            f"{Q.shape}; resume with the config the run was started with."
        )
    Q[...] = saved
    set_generator_state(rng, state["rng"])
    tally.load(state["tally"])
    obs, _ = env.restore(tensors["replay/actions"].numpy())
    return step, obs, {k: v.numpy() for k, v in tensors.items()}, state


def load_q(path: str | Path) -> np.ndarray:
    """The Q-table [S, A] saved in run directory ``path``."""
    found = load_checkpoint_file(Path(path) / CHECKPOINT)
    if found is None:
        raise RLFoundryError(f"'{path}' has no {CHECKPOINT}; train the run first.")
    return found[0]["q"].numpy()


def load_policy(path: str | Path, cfg: TabularConfig) -> Callable[[Any], int]:
    """The greedy policy of the saved Q-table (ties to the lowest action)."""
    act = greedy_policy(load_q(path))
    return lambda obs: int(act[int(obs)])


def extra_eval(path: str | Path, cfg: TabularConfig, policy: Callable[[Any], int]) -> dict:
    """Exact return of the greedy policy, the optimum and the gap, for envs with a table ``P``.

    Exact means no sampling: :func:`rlfoundry.mdp.evaluate_policy_exact` sums over the
    transition table under the env's time limit, so the gap is 0 exactly when the learned
    policy is as good as value iteration's.
    """
    from rlfoundry.mdp import evaluate_policy_exact, optimal_return

    env = make_env(cfg.env_id, **cfg.env_kwargs)
    try:
        if getattr(env.unwrapped, "P", None) is None:
            return {}
        pol = np.array([policy(s) for s in range(env.observation_space.n)])
        exact = evaluate_policy_exact(env, pol)
        best = optimal_return(env)
    except EnvError:  # a table that is not the true dynamics (e.g. Taxi's fickle passenger)
        return {}
    finally:
        env.close()
    return {"exact_return": exact, "optimal_return": best, "gap_to_optimum": best - exact}


# --------------------------------------------------------------------------- curves


def q_curve(every: int, score: Callable[[np.ndarray], Any]) -> Evaluate:
    """A callback that scores the run's Q-table with ``score(Q)``: at the start of a fresh
    run (step 0), every ``every`` real env steps and at the end; ``steps`` and ``values``
    hold the curve."""
    return Evaluate(
        every,
        score=lambda run, step, tensors: score(np.asarray(tensors["q"])),
        start=lambda modules, stats: score(modules["q"]),
    )


def exact_learning_curve(
    module: Any, cfg: TabularConfig, every: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train ``module`` (a tabular algorithm) with ``cfg`` and return ``(steps, exact
    return of the greedy policy)`` every ``every`` real env steps, step 0 included."""
    from rlfoundry.mdp import evaluate_policy_exact

    env = make_env(cfg.env_id, **cfg.env_kwargs)

    def score(Q: np.ndarray) -> float:
        return evaluate_policy_exact(env, greedy_policy(Q))

    curve = q_curve(every, score)
    quiet = {"progress": False, "tensorboard": False}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Run(tmp, cfg.total_steps, **quiet, callbacks=[curve]) as run,
    ):
        module.train(cfg, run)
    env.close()
    return np.asarray(curve.steps), np.asarray(curve.values)


def steps_to_optimum(
    steps: np.ndarray, values: np.ndarray, optimum: float, tol: float = 1e-9
) -> float:
    """First step of an :func:`exact_learning_curve` from which the greedy policy stays
    optimal to the end of the run; ``inf`` if it is not optimal at the last check."""
    bad = np.flatnonzero(values < optimum - tol)
    if len(bad) == 0:
        return float(steps[0])
    if bad[-1] == len(values) - 1:
        return float("inf")
    return float(steps[bad[-1] + 1])
