"""Task distributions for meta-RL (RL^2, Duan et al. 2016, arXiv:1611.02779).

Each reset draws a new task; one *trial* is a fixed number of steps on that task, and
the agent must explore and exploit within the trial. Two families, both batched over
``n`` tasks in NumPy (the trainer steps hundreds of tasks at once):

- :class:`BanditTasks`: ``k``-armed Bernoulli bandits, arm means ~ U[0, 1], a trial is
  ``horizon`` pulls.
- :class:`MDPTasks`: random tabular MDPs with ``S`` states and ``A`` actions,
  transitions ~ Dirichlet(1), rewards ~ N(mu_sa, 1) with mu_sa ~ N(1, 1) (Duan et al.'s
  setup); a trial is ``episodes`` episodes of ``episode_len`` steps, each from a uniform
  random start state, on the same MDP.

The observation is what RL^2 feeds its recurrent policy at every step,

    x_t = [one_hot(s_t) (S), one_hot(a_{t-1}) (A), r_{t-1}, d_{t-1}]

with ``d`` = 1 where the previous step ended an episode inside the trial. At the first
step of a trial the action part is all zeros, which tells a recurrent policy to reset.
A bandit is the MDP with one state and one step per episode (and ``d`` always 1, so it
is left out).

:class:`MetaTaskEnv` is one task at a time as a Gymnasium env (one episode = one trial),
registered as ``rlfoundry/MetaBandit-v0`` and ``rlfoundry/MetaMDP-v0``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

META_ENVS: list[str] = ["rlfoundry/MetaBandit-v0", "rlfoundry/MetaMDP-v0"]


class BanditTasks:
    """``n`` Bernoulli bandits stepped together."""

    def __init__(self, n: int, arms: int = 5, horizon: int = 100) -> None:
        self.n, self.n_act, self.trial_len = n, arms, horizon
        self.obs_dim = arms + 1
        self.means = np.zeros((n, arms))

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` new tasks; the first observation ``[n, obs_dim]`` (all zeros)."""
        self.means = rng.random((self.n, self.n_act))
        self.t = 0
        return np.zeros((self.n, self.obs_dim), dtype=np.float32)

    def step(self, act: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Pull arms ``act [n]``: ``(next obs [n, obs_dim], reward [n])``."""
        p = self.means[np.arange(self.n), act]
        rew = (rng.random(self.n) < p).astype(np.float32)
        obs = np.zeros((self.n, self.obs_dim), dtype=np.float32)
        obs[np.arange(self.n), act] = 1.0
        obs[:, -1] = rew
        self.t += 1
        return obs, rew

    def expected_reward(self, act: np.ndarray) -> np.ndarray:
        """Mean reward ``[n]`` of pulling ``act`` (the arm's success probability)."""
        return self.means[np.arange(self.n), act]

    def regret(self, act: np.ndarray) -> np.ndarray:
        """Pseudo-regret of one step ``[n]``: best mean minus the pulled arm's mean."""
        return self.means.max(1) - self.means[np.arange(self.n), act]


class MDPTasks:
    """``n`` random tabular MDPs stepped together."""

    def __init__(
        self, n: int, states: int = 5, actions: int = 3, episode_len: int = 10, episodes: int = 5
    ) -> None:
        self.n, self.S, self.n_act = n, states, actions
        self.episode_len, self.episodes = episode_len, episodes
        self.trial_len = episode_len * episodes
        self.obs_dim = states + actions + 2

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        n, S, A = self.n, self.S, self.n_act
        self.P = rng.dirichlet(np.ones(S), size=(n, S, A))  # [n, S, A, S]
        self.mu = rng.normal(1.0, 1.0, size=(n, S, A))
        self.t = 0
        self.s = rng.integers(S, size=n)
        return self._obs(np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n), first=True)

    def _obs(
        self, act: np.ndarray, rew: np.ndarray, done: np.ndarray, first: bool = False
    ) -> np.ndarray:
        obs = np.zeros((self.n, self.obs_dim), dtype=np.float32)
        rows = np.arange(self.n)
        obs[rows, self.s] = 1.0
        if not first:
            obs[rows, self.S + act] = 1.0
        obs[:, -2] = rew
        obs[:, -1] = done
        return obs

    def expected_reward(self, act: np.ndarray) -> np.ndarray:
        """Mean reward ``[n]`` of taking ``act`` in the current states, ``mu(s, a)``."""
        return self.mu[np.arange(self.n), self.s, act]

    def step(self, act: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(self.n)
        rew = rng.normal(self.mu[rows, self.s, act], 1.0).astype(np.float32)
        cdf = self.P[rows, self.s, act].cumsum(1)
        nxt = np.minimum((rng.random((self.n, 1)) > cdf).sum(1), self.S - 1)
        self.t += 1
        done = self.t % self.episode_len == 0
        self.s = rng.integers(self.S, size=self.n) if done else nxt
        return self._obs(act, rew, np.full(self.n, float(done))), rew

    def optimal_episode_return(self) -> np.ndarray:
        """Expected return ``[n]`` of one episode under the optimal (finite-horizon,
        non-stationary) policy of each known MDP, from the uniform start distribution."""
        V = np.zeros((self.n, self.S))
        for _ in range(self.episode_len):
            V = (self.mu + np.einsum("nsat,nt->nsa", self.P, V)).max(2)
        return V.mean(1)

    def random_episode_return(self) -> np.ndarray:
        """Expected episode return ``[n]`` of the uniformly random policy."""
        V = np.zeros((self.n, self.S))
        for _ in range(self.episode_len):
            V = (self.mu + np.einsum("nsat,nt->nsa", self.P, V)).mean(2)
        return V.mean(1)


def make_tasks(kind: str, n: int, **kwargs: Any) -> BanditTasks | MDPTasks:
    """``BanditTasks`` (kind "bandit") or ``MDPTasks`` (kind "mdp") of ``n`` tasks."""
    return BanditTasks(n, **kwargs) if kind == "bandit" else MDPTasks(n, **kwargs)


class MetaTaskEnv(gym.Env):
    """One task at a time: each reset draws a new task, an episode is one trial.

    The observation is RL^2's input (see the module docstring), so a recurrent policy
    needs nothing else; its return is the trial's total reward.
    """

    metadata = {"render_modes": []}

    def __init__(self, kind: str = "bandit", **kwargs: Any) -> None:
        self.kind = kind
        self.tasks = make_tasks(kind, 1, **kwargs)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.tasks.obs_dim,), np.float32)
        self.action_space = spaces.Discrete(self.tasks.n_act)

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self.tasks.reset(self.np_random)[0], {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, rew = self.tasks.step(np.array([int(action)]), self.np_random)
        done = self.tasks.t >= self.tasks.trial_len
        return obs[0], float(rew[0]), done, False, {}  # nothing follows a trial


def register() -> None:
    """Register the meta-RL ids with Gymnasium (idempotent)."""
    for env_id, kind in zip(META_ENVS, ("bandit", "mdp")):
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="rlfoundry.envs.meta:MetaTaskEnv",
                kwargs={"kind": kind},
                disable_env_checker=True,
            )
