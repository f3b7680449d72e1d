"""Per-task learners for the random-MDP trials of :mod:`rlfoundry.envs.meta`.

The references RL^2 (:mod:`rlfoundry.algos.meta.rl2`) is compared with on ``MDPTasks``: each
learner starts from scratch on every task and has the same budget as RL^2, one trial
(``episodes`` episodes of ``episode_len`` steps, the same MDP throughout). All are
vectorised over the ``n`` tasks of an ``MDPTasks`` that was just reset, play the trial
through ``tasks.step`` (so rewards, transitions and restarts come from the generator
passed in) and return the rewards ``[T, n]``.

- :func:`q_learning`: tabular Q-learning, epsilon-greedy over Q, optionally with an
  optimistic initial value (exploration by optimism, Sutton & Barto 2018, sec. 2.6).
- :func:`psrl`: posterior sampling for RL (Strens 2000; Osband et al. 2013), the MDP
  analogue of Thompson sampling and the Bayes-aware reference: it knows the task prior
  (transitions ~ Dirichlet(1), mean rewards ~ N(1, 1), reward noise N(0, 1)). Duan et
  al. 2016 compare RL^2 with it on the same task family.
- :func:`random_actions`: the no-learning reference.
"""

from __future__ import annotations

import numpy as np

from rlfoundry.envs.meta import MDPTasks
from rlfoundry.mdp.bandits import argmax_random


def q_learning(
    tasks: MDPTasks,
    rng: np.random.Generator,
    alpha: float = 0.5,
    gamma: float = 0.9,
    eps: float = 0.1,
    q0: float = 0.0,
) -> np.ndarray:
    """Tabular Q-learning over one trial per task, from ``Q = q0`` everywhere:

        Q(s, a) <- Q(s, a) + alpha * (r + gamma * (1 - d) * max_a' Q(s', a') - Q(s, a))

    with ``d`` = 1 at the last step of an episode (the next state is a fresh start, not
    a successor). Acts epsilon-greedily on Q (ties broken at random). ``q0`` above the
    returns makes untried actions look good: exploration by optimism."""
    n, S, A = tasks.n, tasks.S, tasks.n_act
    rows = np.arange(n)
    Q = np.full((n, S, A), float(q0))
    rews = np.zeros((tasks.trial_len, n))
    for t in range(tasks.trial_len):
        s = tasks.s.copy()
        greedy = argmax_random(Q[rows, s], rng)
        act = np.where(rng.random(n) < eps, rng.integers(A, size=n), greedy)
        _, r = tasks.step(act, rng)
        done = tasks.t % tasks.episode_len == 0
        # on `done` tasks.s is already the next episode's start: nothing to bootstrap
        target = r + (0.0 if done else gamma * Q[rows, tasks.s].max(1))
        Q[rows, s, act] += alpha * (target - Q[rows, s, act])
        rews[t] = r
    return rews


def psrl(tasks: MDPTasks, rng: np.random.Generator) -> np.ndarray:
    """Posterior sampling for RL: at the start of every episode draw an MDP from the
    posterior of the task prior given the trial so far,

        P(.|s, a) ~ Dirichlet(1 + counts(s, a, .)),
        mu(s, a)  ~ N((1 + sum r) / (1 + n_sa), 1 / (1 + n_sa))    (prior N(1, 1), noise 1)

    and follow that MDP's optimal finite-horizon (time-dependent) policy for the episode."""
    n, S, A, L = tasks.n, tasks.S, tasks.n_act, tasks.episode_len
    rows = np.arange(n)
    counts = np.zeros((n, S, A, S))
    rsum = np.zeros((n, S, A))
    rcount = np.zeros((n, S, A))
    rews = np.zeros((tasks.trial_len, n))
    policy = np.zeros((L, n, S), dtype=np.int64)
    for t in range(tasks.trial_len):
        h = t % L
        if h == 0:  # new episode: sample an MDP, plan it backwards over L steps
            P = rng.gamma(1.0 + counts)  # normalised gamma draws are Dirichlet
            P /= P.sum(-1, keepdims=True)
            mu = rng.normal((1.0 + rsum) / (1.0 + rcount), 1.0 / np.sqrt(1.0 + rcount))
            V = np.zeros((n, S))
            for k in reversed(range(L)):
                Qk = mu + np.einsum("nsat,nt->nsa", P, V)
                policy[k] = argmax_random(Qk.reshape(n * S, A), rng).reshape(n, S)
                V = Qk.max(2)
        s = tasks.s.copy()
        act = policy[h, rows, s]
        _, r = tasks.step(act, rng)
        if tasks.t % L:  # at an episode's end tasks.s is a fresh start, not a successor
            counts[rows, s, act, tasks.s] += 1
        rsum[rows, s, act] += r
        rcount[rows, s, act] += 1
        rews[t] = r
    return rews


def random_actions(tasks: MDPTasks, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random actions for one trial: ``[T, n]`` rewards."""
    rews = np.zeros((tasks.trial_len, tasks.n))
    for t in range(tasks.trial_len):
        _, rews[t] = tasks.step(rng.integers(tasks.n_act, size=tasks.n), rng)
    return rews


def optimistic_q_learning(tasks: MDPTasks, rng: np.random.Generator) -> np.ndarray:
    """:func:`q_learning` greedy from ``Q = 2`` (alpha 0.3, gamma 0.5): the best of a
    108-setting grid (alpha x gamma x eps x q0) on 2,000 tasks of a separate seed."""
    return q_learning(tasks, rng, alpha=0.3, gamma=0.5, eps=0.0, q0=2.0)


def epsilon_greedy_q_learning(tasks: MDPTasks, rng: np.random.Generator) -> np.ndarray:
    """:func:`q_learning` from ``Q = 0`` with eps 0.1 (alpha 1, gamma 0: the best eps-0.1
    setting of that grid without optimism)."""
    return q_learning(tasks, rng, alpha=1.0, gamma=0.0, eps=0.1, q0=0.0)


BASELINES = {
    "q_learning": optimistic_q_learning,
    "epsilon_greedy_q": epsilon_greedy_q_learning,
    "psrl": psrl,
    "random": random_actions,
}
