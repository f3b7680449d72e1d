"""Exact dynamic programming for tabular Gymnasium envs (any env exposing ``unwrapped.P``).

``P[s][a]`` is the toy-text format (FrozenLake, Taxi, CliffWalking, rlfoundry's GridWorld):
a list of outcomes ``(prob, next_s, reward, terminated)``. We turn it into dense arrays

    T[s, a, s']  = P(s' | s, a)                                  # [S, A, S]
    R[s, a]      = E[r | s, a] = sum_outcomes prob * reward       # [S, A]
    D[s, a, s']  = P(terminated | s, a, s')  in [0, 1]            # [S, A, S]

``terminated`` belongs to the *outcome*, not to ``s'``: two outcomes may reach the same
``s'`` and only one of them end the episode, and CliffWalking-v1 sends a fall back to the
start without ending. So every backup uses the continuation kernel

    C[s, a, s'] = T[s, a, s'] * (1 - D[s, a, s'])                 # mass that carries on,

and the Bellman optimality equation (Sutton & Barto 2018, eq. 3.20) reads

    Q*(s, a) = R(s, a) + gamma * sum_s' C[s, a, s'] * max_a' Q*(s', a').

Returns are judged the way the env scores them: undiscounted, episode cut at the
``TimeLimit`` (``env.spec.max_episode_steps``), averaged over
``env.unwrapped.initial_state_distrib``. That is a finite-horizon quantity, computed exactly by
backward induction in :func:`expected_return`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from rlfoundry.errors import EnvError

# Q-values within this (times max(1, |Q|)) of the best count as tied; ties go to the lowest
# action index so that value and policy iteration return the same policy.
TIE_TOL = 1e-8


class TabularModel(NamedTuple):
    """Dense model of a tabular env; unpacks as ``T, R, D = model``."""

    T: np.ndarray  # [S, A, S] transition probabilities
    R: np.ndarray  # [S, A] expected immediate reward
    D: np.ndarray  # [S, A, S] probability that the step s -a-> s' terminates

    @property
    def C(self) -> np.ndarray:
        """Continuation kernel ``T * (1 - D)`` [S, A, S]: probability of going on in s'."""
        return self.T * (1.0 - self.D)


@dataclass
class Solution:
    """Result of value or policy iteration."""

    V: np.ndarray  # [S] optimal state values under ``gamma``
    Q: np.ndarray  # [S, A] optimal action values
    policy: np.ndarray  # [S] greedy action (int), ties to the lowest index
    iterations: int  # sweeps (value iteration) or improvement steps (policy iteration)
    gamma: float
    converged: bool = True


@dataclass
class FiniteHorizonSolution:
    """Optimal non-stationary policy for an episode of at most ``horizon`` steps."""

    V: np.ndarray  # [H + 1, S]; V[k] = optimal value with k steps left (V[0] = 0)
    policy: np.ndarray  # [H, S]; policy[k - 1] = action to take with k steps left
    ret: float  # optimal expected return from the initial-state distribution


# --------------------------------------------------------------------------- the model


def tabular_model(env: gym.Env) -> TabularModel:
    """Dense ``(T, R, D)`` arrays of ``env.unwrapped.P`` (see the module docstring)."""
    base = env.unwrapped
    P = getattr(base, "P", None)
    if P is None:
        raise EnvError(
            f"{type(base).__name__} exposes no transition table (unwrapped.P), so it cannot be "
            "solved exactly; use a tabular env such as FrozenLake-v1, Taxi-v4, CliffWalking-v1 "
            "or rlfoundry/GridWorld-v0."
        )
    if getattr(base, "fickle_passenger", False):
        # Taxi's fickle passenger changes destination inside step(), outside P.
        raise EnvError(
            "Taxi with fickle_passenger=True changes the destination outside its table P, so "
            "P is not its true dynamics; make it with fickle_passenger=False to solve it exactly."
        )
    obs_space, act_space = base.observation_space, base.action_space
    if not (
        isinstance(obs_space, gym.spaces.Discrete) and isinstance(act_space, gym.spaces.Discrete)
    ):
        raise EnvError(
            f"{type(base).__name__} needs Discrete observation and action spaces to be solved "
            f"exactly, but has {obs_space} and {act_space}."
        )
    if obs_space.start != 0 or act_space.start != 0:
        raise EnvError(
            f"{type(base).__name__} numbers its states or actions from a non-zero start; "
            "exact solvers index P from 0, so use Discrete spaces starting at 0."
        )
    S, A = int(obs_space.n), int(act_space.n)
    T = np.zeros((S, A, S))
    R = np.zeros((S, A))
    term = np.zeros((S, A, S))  # terminating mass; divided by T below
    for s in range(S):
        for a in range(A):
            for prob, s2, rew, terminated in P[s][a]:
                T[s, a, s2] += prob
                R[s, a] += prob * rew
                term[s, a, s2] += prob * float(terminated)
    bad = np.abs(T.sum(axis=2) - 1.0) > 1e-6
    if bad.any():
        s, a = np.argwhere(bad)[0]
        raise EnvError(
            f"P[{s}][{a}] of {type(base).__name__} has probabilities summing to "
            f"{T[s, a].sum():.6g}, not 1; fix the env's transition table."
        )
    D = np.divide(term, T, out=np.zeros_like(T), where=T > 0)
    return TabularModel(T, R, D)


def _as_model(env_or_model: gym.Env | TabularModel | tuple) -> TabularModel:
    if isinstance(env_or_model, gym.Env):
        return tabular_model(env_or_model)
    T, R, D = env_or_model
    return TabularModel(np.asarray(T, float), np.asarray(R, float), np.asarray(D, float))


def _check_gamma(gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}; use e.g. 0.99 or 1.0.")


def greedy(Q: np.ndarray) -> np.ndarray:
    """``argmax_a Q[s, a]`` per state [S], ties (within ``TIE_TOL``) to the lowest index."""
    best = Q.max(axis=1, keepdims=True)
    tied = best - Q <= TIE_TOL * np.maximum(1.0, np.abs(best))
    return np.argmax(tied, axis=1)  # first True


# --------------------------------------------------------------------------- control


def value_iteration(
    env_or_model: gym.Env | TabularModel | tuple,
    gamma: float,
    tol: float = 1e-10,
    max_iter: int = 100_000,
) -> Solution:
    """Optimal ``V, Q`` and greedy policy by value iteration.

    Sweeps the Bellman optimality backup from ``V = 0``

        Q_k(s, a) = R(s, a) + gamma * sum_s' C[s, a, s'] V_k(s'),   V_{k+1}(s) = max_a Q_k(s, a)

    until ``max_s |V_{k+1} - V_k| < tol`` (``converged=False`` if ``max_iter`` runs out).
    With ``gamma = 1`` it converges when every policy that never terminates earns -inf or 0
    (Taxi, CliffWalking, GridWorld, FrozenLake), but ties between optimal actions can then
    yield a greedy policy that never terminates and so misses ``V`` (FrozenLake8x8: return 0;
    Bertsekas & Tsitsiklis 1991 on stochastic shortest paths). That case warns; a gamma just
    below 1 (0.999) breaks such ties toward ending sooner.
    """
    _check_gamma(gamma)
    model = _as_model(env_or_model)
    R = model.R  # [S, A]
    S, A = R.shape
    C = model.C.reshape(S * A, S)  # [S*A, S]: one matmul per sweep
    V = np.zeros(S)
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        V_new = (R.reshape(-1) + gamma * (C @ V)).reshape(S, A).max(axis=1)
        if not np.all(np.isfinite(V_new)):
            raise ValueError(
                "value iteration diverged (a policy can collect unbounded reward); use gamma < 1."
            )
        delta = np.max(np.abs(V_new - V))
        V = V_new
        if delta < tol:
            converged = True
            break
    Q = R + gamma * (C @ V).reshape(S, A)
    policy = greedy(Q)
    if gamma == 1.0 and converged:
        rows = np.arange(S)
        V_pi = _evaluate_infinite(model.C[rows, policy], R[rows, policy], 1.0)
        if not np.allclose(V_pi, Q.max(axis=1), atol=1e-6):
            warnings.warn(
                "with gamma=1 the greedy policy ties into one that never terminates and does "
                "not attain the optimal values; solve with gamma=0.999 instead.",
                RuntimeWarning,
                stacklevel=2,
            )
    return Solution(
        V=Q.max(axis=1), Q=Q, policy=policy, iterations=it, gamma=gamma, converged=converged
    )


def _policy_matrix(policy: np.ndarray, S: int, A: int) -> np.ndarray:
    """Deterministic ``[S]`` or stochastic ``[S, A]`` policy as probabilities ``[S, A]``."""
    pol = np.asarray(policy)
    if pol.shape == (S,):
        if not np.issubdtype(pol.dtype, np.integer) and not np.all(pol == np.round(pol)):
            raise ValueError("a deterministic policy must hold integer actions, one per state.")
        act = pol.astype(int)
        if act.min() < 0 or act.max() >= A:
            raise ValueError(f"policy actions must lie in [0, {A}); got {act.min()}..{act.max()}.")
        return np.eye(A)[act]
    if pol.shape == (S, A):
        pi = pol.astype(float)
        if (pi < -1e-12).any() or not np.allclose(pi.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("a stochastic policy [S, A] needs non-negative rows that sum to 1.")
        return pi
    raise ValueError(
        f"policy must have shape [S]={(S,)} (one action per state) or [S, A]={S, A} "
        f"(action probabilities); got {pol.shape}."
    )


def _reaching(edges: np.ndarray, target: np.ndarray) -> np.ndarray:
    """States [S] with a path (of any length, 0 included) to a ``target`` state."""
    hit = target.copy()
    while True:
        new = hit | (edges @ hit.astype(float) > 0)
        if np.array_equal(new, hit):
            return hit
        hit = new


def _evaluate_infinite(C_pi: np.ndarray, r_pi: np.ndarray, gamma: float) -> np.ndarray:
    """``V = r_pi + gamma C_pi V`` solved exactly; with ``gamma = 1`` never-ending loops need care.

    With ``gamma = 1`` a state's value is finite only if every recurrent state it can reach
    pays nothing; otherwise it is +-inf (a CliffWalking policy that pushes into the top wall
    forever earns -1 per step: -inf), or nan when both signs can recur.
    """
    S = len(r_pi)
    if gamma < 1.0:
        return np.linalg.solve(np.eye(S) - gamma * C_pi, r_pi)
    edges = (C_pi > 0).astype(float)  # [S, S]
    can_end = _reaching(edges, C_pi.sum(axis=1) < 1.0 - 1e-12)
    recurrent = np.zeros(S, dtype=bool)
    stuck = np.flatnonzero(~can_end)  # a closed set: the episode never ends from here
    if len(stuck):
        # reach[x, y] within the stuck set, by repeated squaring; x is recurrent iff every y
        # it reaches reaches x back (finite Markov chain).
        reach = (np.eye(len(stuck)) + edges[np.ix_(stuck, stuck)]) > 0
        for _ in range(math.ceil(math.log2(len(stuck) + 1))):
            reach = (reach.astype(float) @ reach.astype(float)) > 0
        recurrent[stuck] = np.all(reach.T | ~reach, axis=1)
    paying = recurrent & (np.abs(r_pi) > 1e-12)
    pos = _reaching(edges, paying & (r_pi > 0))
    neg = _reaching(edges, paying & (r_pi < 0))
    V = np.zeros(S)
    V[pos] = np.inf
    V[neg] = -np.inf
    V[pos & neg] = np.nan  # inf - inf: the expected sum does not exist
    idx = np.flatnonzero(~pos & ~neg & ~recurrent)
    if len(idx):
        # Transient states that avoid paying loops: I - C is invertible on them, and the
        # zero-paying recurrent states they may fall into contribute 0.
        V[idx] = np.linalg.solve(np.eye(len(idx)) - C_pi[np.ix_(idx, idx)], r_pi[idx])
    return V


def policy_iteration(
    env_or_model: gym.Env | TabularModel | tuple,
    gamma: float,
    max_iter: int = 1_000,
    init_policy: np.ndarray | None = None,
) -> Solution:
    """Optimal ``V, Q`` and greedy policy by Howard's policy iteration.

    Alternates exact evaluation ``V_pi = (I - gamma C_pi)^-1 R_pi`` with greedy improvement
    ``pi(s) <- argmax_a R(s, a) + gamma sum_s' C[s, a, s'] V_pi(s')``, keeping the current
    action on ties so it cannot cycle, until the policy is stable. With ``gamma = 1`` every
    evaluated policy must terminate with probability 1 (pass a terminating ``init_policy``);
    ``gamma < 1`` always works.
    """
    _check_gamma(gamma)
    model = _as_model(env_or_model)
    R = model.R  # [S, A]
    S, A = R.shape
    C = model.C  # [S, A, S]
    C_flat = C.reshape(S * A, S)
    pol = np.zeros(S, dtype=int) if init_policy is None else np.asarray(init_policy, int).copy()
    rows = np.arange(S)
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        V = _evaluate_infinite(C[rows, pol], R[rows, pol], gamma)
        if not np.all(np.isfinite(V)):
            raise ValueError(
                f"policy iteration with gamma={gamma} met a policy that never terminates from "
                "some state; use gamma < 1 or an init_policy that ends every episode."
            )
        Q = R + gamma * (C_flat @ V).reshape(S, A)
        best = Q.max(axis=1)
        keep = Q[rows, pol] >= best - TIE_TOL * np.maximum(1.0, np.abs(best))
        new = np.where(keep, pol, greedy(Q))
        if np.array_equal(new, pol):
            converged = True
            break
        pol = new
    # Report the lowest-index greedy policy, as value iteration does.
    return Solution(
        V=Q.max(axis=1), Q=Q, policy=greedy(Q), iterations=it, gamma=gamma, converged=converged
    )


# --------------------------------------------------------------------------- evaluation


def expected_return(
    model: TabularModel | tuple,
    policy: np.ndarray,
    init: np.ndarray,
    gamma: float = 1.0,
    horizon: float | None = None,
) -> float:
    """Exact ``E[sum_{t<H} gamma^t r_t]`` of ``policy`` from the state distribution ``init``.

    Backward induction over the steps left, with ``r_pi(s) = sum_a pi(a|s) R(s, a)`` and
    ``C_pi(s, s') = sum_a pi(a|s) C[s, a, s']``:

        V_0 = 0,   V_{k+1} = r_pi + gamma * C_pi V_k,   return = init . V_H

    which is the env's episode under a ``TimeLimit`` of ``H`` steps (truncation adds
    nothing after step H). ``horizon=None`` or ``math.inf`` solves the infinite sum
    exactly; with ``gamma = 1`` it is +-inf when the policy loops forever while paid.
    """
    _check_gamma(gamma)
    model = _as_model(model)
    S, A = model.R.shape
    pi = _policy_matrix(policy, S, A)  # [S, A]
    r_pi = np.einsum("sa,sa->s", pi, model.R)
    C_pi = np.einsum("sa,sak->sk", pi, model.C)
    init = np.asarray(init, float)
    if horizon is None or math.isinf(horizon):
        V = _evaluate_infinite(C_pi, r_pi, gamma)
        with np.errstate(invalid="ignore"):
            # 0 * inf is nan: states the start never reaches must not poison the sum.
            return float(np.sum(init[init > 0] * V[init > 0]))
    if horizon < 0 or int(horizon) != horizon:
        raise ValueError(f"horizon must be a non-negative whole number of steps, got {horizon}.")
    V = np.zeros(S)
    for _ in range(int(horizon)):
        V = r_pi + gamma * (C_pi @ V)
    return float(init @ V)


def time_limit(env: gym.Env) -> int | None:
    """The episode step limit of ``env``: its ``TimeLimit`` wrapper, else its spec, else None."""
    e = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, gym.wrappers.TimeLimit):
            return int(e._max_episode_steps)
        e = e.env
    spec = getattr(env, "spec", None)
    return spec.max_episode_steps if spec is not None else None


def initial_distribution(env: gym.Env) -> np.ndarray:
    """``env.unwrapped.initial_state_distrib`` [S], the toy-text start-state distribution."""
    init = getattr(env.unwrapped, "initial_state_distrib", None)
    if init is None:
        raise EnvError(
            f"{type(env.unwrapped).__name__} has no initial_state_distrib, so its expected "
            "return cannot be computed exactly; give the env that attribute (probabilities "
            "over start states)."
        )
    return np.asarray(init, float)


def evaluate_policy_exact(
    env: gym.Env,
    policy: np.ndarray,
    gamma: float = 1.0,
    horizon: float | None = None,
) -> float:
    """Exact expected return of ``policy`` ([S] actions or [S, A] probabilities) on ``env``.

    Starts from ``env.unwrapped.initial_state_distrib`` and counts the episode time limit:
    ``horizon=None`` takes it from the env's ``TimeLimit`` (``spec.max_episode_steps``), and
    an env without one (CliffWalking-v1) is evaluated over the infinite horizon. Pass
    ``math.inf`` to ignore a limit. See :func:`expected_return` for the recursion.
    """
    if horizon is None:
        horizon = time_limit(env)
    return expected_return(tabular_model(env), policy, initial_distribution(env), gamma, horizon)


def finite_horizon_optimal(
    env: gym.Env, horizon: int | None = None, gamma: float = 1.0
) -> FiniteHorizonSolution:
    """Optimal non-stationary policy and return for episodes of at most ``horizon`` steps.

        V_0 = 0,   V_k(s) = max_a R(s, a) + gamma * sum_s' C[s, a, s'] V_{k-1}(s')

    This is the true optimum under a ``TimeLimit``; the best *stationary* policy (what a
    Q-learner converges to) can be slightly worse, e.g. on FrozenLake-v1.
    """
    _check_gamma(gamma)
    horizon = time_limit(env) if horizon is None else horizon
    if horizon is None:
        raise ValueError(
            "the env has no time limit; pass horizon= (steps) to finite_horizon_optimal."
        )
    model = tabular_model(env)
    S, A = model.R.shape
    C = model.C.reshape(S * A, S)
    V = np.zeros((horizon + 1, S))
    pol = np.zeros((horizon, S), dtype=int)
    for k in range(1, horizon + 1):
        Q = model.R + gamma * (C @ V[k - 1]).reshape(S, A)
        pol[k - 1] = greedy(Q)
        V[k] = Q.max(axis=1)
    return FiniteHorizonSolution(V=V, policy=pol, ret=float(initial_distribution(env) @ V[horizon]))


# Gamma used to *solve* for the policy; its return is then judged undiscounted under the time
# limit. Every gamma in [0.99, 1] gives the same policy on FrozenLake-v1 (0.7402), Taxi-v4
# (7.93) and CliffWalking-v1 (-13), but 1.0 ties into a never-ending policy on
# FrozenLake8x8-v1 (return 0) while 0.999 gives 0.886 there.
DEFAULT_SOLVE_GAMMA = 0.999


def optimal_return(
    env_id_or_env: str | gym.Env,
    gamma: float = DEFAULT_SOLVE_GAMMA,
    horizon: float | None = None,
    **make_kwargs: Any,
) -> float:
    """Exact undiscounted return, under the time limit, of the value-iteration policy.

    The policy is greedy for ``gamma`` (default 0.999, see ``DEFAULT_SOLVE_GAMMA``); its
    return is then computed by :func:`evaluate_policy_exact` with ``gamma = 1``. Values with
    gymnasium 1.4: FrozenLake-v1 0.7402 (also the best deterministic stationary policy, by
    enumerating all 4^11; the often-quoted 0.744 is the non-stationary :func:`finite_horizon_optimal`),
    Taxi-v4 7.930, CliffWalking-v1 -13 (no time limit: infinite horizon).
    """
    if isinstance(env_id_or_env, str):
        import rlfoundry.envs  # noqa: F401  (registers rlfoundry/GridWorld-v0)

        env = gym.make(env_id_or_env, **make_kwargs)
    else:
        env = env_id_or_env
    sol = value_iteration(env, gamma=gamma)
    return evaluate_policy_exact(env, sol.policy, gamma=1.0, horizon=horizon)
