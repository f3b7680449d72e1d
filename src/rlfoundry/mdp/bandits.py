"""Classic bandit algorithms and regret, vectorised over a batch of Bernoulli tasks.

The baselines RL^2 (:mod:`rlfoundry.algos.meta.rl2`) is compared with. Each algorithm plays
``n`` independent ``k``-armed Bernoulli bandits with arm means ``means [n, k]`` for
``horizon`` pulls and returns the arms it pulled ``[n, H]`` and the rewards ``[n, H]``.
Pure NumPy, seeded by the generator passed in; ties between arms are broken uniformly
at random (a fixed lowest-index tie-break would favour arm 0).

Regret is the *pseudo-regret* (Lattimore & Szepesvari 2020, "Bandit Algorithms", ch. 4):

    R_t = sum_{s <= t} (max_a mu_a - mu_{A_s})

which uses the arm means instead of the sampled rewards, so it has no reward noise.
"""

from __future__ import annotations

import numpy as np


def bernoulli_tasks(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``[n, k]`` arm means drawn uniformly from [0, 1] (the task distribution of RL^2's
    bandit experiments, Duan et al. 2016)."""
    return rng.random((n, k))


def argmax_random(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax of ``[n, k]`` with ties broken uniformly at random (one uniform draw
    per entry; the largest draw among the maxima wins)."""
    best = x == x.max(axis=1, keepdims=True)
    return np.argmax(np.where(best, rng.random(x.shape), -1.0), axis=1)


def _pull(means: np.ndarray, act: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    p = means[np.arange(means.shape[0]), act]
    return (rng.random(p.shape) < p).astype(np.float64)


def ucb1(
    means: np.ndarray, horizon: int, rng: np.random.Generator, c: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """UCB1 (Auer, Cesa-Bianchi & Fischer 2002): pull every arm once, then

        A_t = argmax_a  mean_a + sqrt(c * ln t / n_a)

    with t the number of pulls so far (c = 2 is the paper's constant)."""
    n, k = means.shape
    count = np.zeros((n, k))
    total = np.zeros((n, k))
    acts = np.zeros((n, horizon), dtype=np.int64)
    rews = np.zeros((n, horizon))
    rows = np.arange(n)
    for t in range(horizon):
        if t < k:
            act = np.full(n, t)
        else:
            score = total / count + np.sqrt(c * np.log(t) / count)
            act = argmax_random(score, rng)
        r = _pull(means, act, rng)
        count[rows, act] += 1
        total[rows, act] += r
        acts[:, t], rews[:, t] = act, r
    return acts, rews


def thompson(
    means: np.ndarray, horizon: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Thompson sampling with Beta(1, 1) priors (Thompson 1933; Agrawal & Goyal 2012):
    draw theta_a ~ Beta(1 + successes_a, 1 + failures_a) and pull argmax theta."""
    n, k = means.shape
    succ = np.zeros((n, k))
    fail = np.zeros((n, k))
    acts = np.zeros((n, horizon), dtype=np.int64)
    rews = np.zeros((n, horizon))
    rows = np.arange(n)
    for t in range(horizon):
        act = np.argmax(rng.beta(1 + succ, 1 + fail), axis=1)
        r = _pull(means, act, rng)
        succ[rows, act] += r
        fail[rows, act] += 1 - r
        acts[:, t], rews[:, t] = act, r
    return acts, rews


def epsilon_greedy(
    means: np.ndarray, horizon: int, rng: np.random.Generator, eps: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Epsilon-greedy: a uniformly random arm with probability ``eps``, else the arm with
    the best sample mean (an arm never pulled has estimate 0; ties broken at random)."""
    n, k = means.shape
    count = np.zeros((n, k))
    total = np.zeros((n, k))
    acts = np.zeros((n, horizon), dtype=np.int64)
    rews = np.zeros((n, horizon))
    rows = np.arange(n)
    for t in range(horizon):
        est = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        greedy = argmax_random(est, rng)
        explore = rng.random(n) < eps
        act = np.where(explore, rng.integers(k, size=n), greedy)
        r = _pull(means, act, rng)
        count[rows, act] += 1
        total[rows, act] += r
        acts[:, t], rews[:, t] = act, r
    return acts, rews


def random_arms(
    means: np.ndarray, horizon: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random arms: the no-learning reference (linear regret)."""
    n, k = means.shape
    acts = rng.integers(k, size=(n, horizon))
    rews = np.stack([_pull(means, acts[:, t], rng) for t in range(horizon)], axis=1)
    return acts, rews


BASELINES = {
    "ucb1": ucb1,
    "thompson": thompson,
    "epsilon_greedy": epsilon_greedy,
    "random": random_arms,
}


def cumulative_regret(means: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """Pseudo-regret ``[n, H]``: running sum of ``max_a mu_a - mu_{A_t}`` per task."""
    gap = means.max(axis=1, keepdims=True) - np.take_along_axis(means, acts, axis=1)
    return np.cumsum(gap, axis=1)
