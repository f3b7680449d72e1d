"""Parameter-shared PPO for cooperative multi-agent tasks (PettingZoo parallel API), with
an independent or a centralised critic.

All agents act with ONE policy network; each sees its own observation plus a one-hot of
its index (so a shared network can still specialise by role). The critic is either

- ``independent`` (IPPO, de Witt et al. 2020, arXiv:2011.09533): ``V(o_i, i)``, the same
  inputs as the actor -- each agent treats the others as part of the environment;
- ``central`` (MAPPO, Yu et al. 2022, "The Surprising Effectiveness of PPO in
  Cooperative Multi-Agent Games", arXiv:2103.01955): ``V(o_1, ..., o_M, i)``, every
  agent's observation. It is only used in training (centralised training, decentralised
  execution): acting needs nothing but the agent's own observation.

    for each iteration:
        play num_envs copies for num_steps steps (whole episodes; each agent's reward is
        its own, which in simple_spread mixes the team's reward with its collisions)
        adv, ret = GAE per agent; a time-limit end bootstraps V(final observation)
        PPO epochs over all (step, env, agent) samples, one shared actor and critic

Every iteration starts fresh episodes (num_steps is a multiple of the episode length),
so a checkpoint never has to hold a half-played episode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlfoundry.algos.deep.onpolicy import explained_variance
from rlfoundry.algos.nets import clip_grad_norm, mlp
from rlfoundry.core import (
    clipped_surrogate,
    entropy_from_logits,
    gae,
    normalize_advantages,
    value_loss,
)
from rlfoundry.envs import teams
from rlfoundry.envs.evaluation import check_spaces, eval_seed
from rlfoundry.errors import ConfigError, EnvError, RLFoundryError
from rlfoundry.runtime.run import (
    CHECKPOINT,
    Run,
    generator_state,
    load_checkpoint_file,
    set_generator_state,
)
from rlfoundry.runtime.torch_state import (
    load_module_state,
    load_optimizer_state,
    module_state,
    optimizer_state,
)


@dataclass
class Config:
    env_id: str = "mpe2/simple_spread_v3"
    """Cooperative PettingZoo parallel task (mpe2/simple_spread_v3)."""
    total_steps: int = 500_000
    """Environment steps to train for (one step moves every agent), summed over the copies;
    rounded up to whole iterations."""
    seed: int = 0
    """Seed of every random generator (episode resets, action sampling, network init)."""
    eval_episodes: int = 50
    """Episodes of the final evaluation (summary.json), greedy and random policies."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the parallel env (e.g. {N: 3, local_ratio: 0.5, max_cycles: 25})."""
    critic: Literal["central", "independent"] = "central"
    """central: V sees every agent's observation (MAPPO); independent: only its own (IPPO)."""
    num_envs: int = 16
    """Copies of the task played side by side."""
    num_steps: int = 100
    """Steps per copy per iteration; a multiple of the episode length (max_cycles)."""
    learning_rate: float = 7e-4
    """Adam step size at the start of training."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over the iterations."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    update_epochs: int = 5
    """Passes over each iteration's samples."""
    num_minibatches: int = 2
    """Minibatches per epoch."""
    clip_coef: float = 0.2
    """Surrogate clipping epsilon."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip (MAPPO's default, 10)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actor and of the critic."""
    eval_every: int = 10
    """Iterations between greedy evaluations logged to metrics.csv (0: only at the end)."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def validate(self) -> None:
        for name in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Config key '{name}' must be at least 1; set a positive value.")
        if self.env_id not in teams.TEAM_ENVS:
            raise ConfigError(
                f"mappo trains on cooperative multi-agent tasks; set env_id to one of "
                f"{', '.join(teams.TEAM_ENVS)} (got '{self.env_id}')."
            )
        horizon = self.env_kwargs.get("max_cycles", 25)
        if self.num_steps % horizon:
            raise ConfigError(
                f"num_steps ({self.num_steps}) must be a multiple of the episode length "
                f"max_cycles ({horizon}) so that iterations hold whole episodes; change one."
            )


def check_env(env: gym.Env) -> None:
    """Raise EnvError unless ``env`` is one of the cooperative tasks of rlfoundry.envs.teams."""
    if not isinstance(env.unwrapped, teams.TeamEnv):
        raise EnvError(
            f"mappo trains on cooperative multi-agent tasks; use --env {' / '.join(teams.TEAM_ENVS)}."
        )


def check(cfg: Config) -> None:
    """Raise EnvError unless ``cfg``'s env is one of the cooperative tasks (:func:`check_env`)."""
    check_spaces(cfg, check_env)


# ---------------------------------------------------------------------------- agent
class TeamAgent(nn.Module):
    """One actor shared by all agents, and an independent or central critic."""

    def __init__(
        self, n_agents: int, d_obs: int, n_act: int, hidden: tuple[int, ...], critic: str
    ) -> None:
        super().__init__()
        self.M, self.central = n_agents, critic == "central"
        self.actor = mlp(d_obs + n_agents, n_act, hidden, nn.Tanh, out_gain=0.01)
        d_v = (n_agents * d_obs if self.central else d_obs) + n_agents
        self.critic = mlp(d_v, 1, hidden, nn.Tanh, out_gain=1.0)

    def actor_in(self, obs: torch.Tensor) -> torch.Tensor:
        """``[..., M, D]`` -> ``[..., M, D + M]``: each agent's observation and its index."""
        eye = torch.eye(self.M).expand(*obs.shape[:-1], self.M)
        return torch.cat([obs, eye], -1)

    def critic_in(self, obs: torch.Tensor) -> torch.Tensor:
        """``[..., M, D]`` -> critic inputs ``[..., M, D_v]`` (all observations if central)."""
        if not self.central:
            return self.actor_in(obs)
        joint = obs.flatten(-2).unsqueeze(-2).expand(*obs.shape[:-2], self.M, -1)
        return torch.cat([joint, torch.eye(self.M).expand(*obs.shape[:-1], self.M)], -1)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.actor_in(obs))  # [..., M, A]

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.critic_in(obs)).squeeze(-1)  # [..., M]


# ---------------------------------------------------------------------------- rollout
class Team:
    """``num_envs`` copies of the parallel env, stepped together."""

    def __init__(self, cfg: Config) -> None:
        self.envs = [teams.make_team_env(cfg.env_id, **cfg.env_kwargs) for _ in range(cfg.num_envs)]
        env = self.envs[0]
        self.agents = list(env.possible_agents)
        self.d_obs = int(np.prod(env.observation_space(self.agents[0]).shape))
        self.n_act = int(env.action_space(self.agents[0]).n)

    def _stack(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(obs[a], dtype=np.float32) for a in self.agents])  # [M, D]

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        return np.stack([self._stack(e.reset(seed=int(rng.integers(2**31)))[0]) for e in self.envs])

    def step(self, act: np.ndarray) -> tuple[np.ndarray, ...]:
        """Joint actions ``[N, M]`` -> ``(obs [N, M, D], rew [N, M], term [N], trunc [N])``;
        ``obs`` is the observation after the step (the final one at an episode's end)."""
        out = [
            e.step({a: int(x) for a, x in zip(self.agents, acts)})
            for e, acts in zip(self.envs, act)
        ]
        obs = np.stack([self._stack(o[0]) for o in out])
        rew = np.array([[o[1][a] for a in self.agents] for o in out], dtype=np.float32)
        term = np.array([all(o[2].values()) for o in out])
        trunc = np.array([all(o[3].values()) for o in out]) & ~term
        return obs, rew, term, trunc

    def close(self) -> None:
        for e in self.envs:
            e.close()


def play(
    agent: TeamAgent, team: Team, steps: int, rng: np.random.Generator, greedy: bool = False
) -> dict[str, Any]:
    """``steps`` steps of every copy from fresh episodes: ``[T, N, M, ...]`` tensors, the
    final observations of finished episodes and the team returns of those episodes."""
    N, M = len(team.envs), len(team.agents)
    obs = torch.zeros(steps, N, M, team.d_obs)
    act = torch.zeros(steps, N, M, dtype=torch.long)
    rew = torch.zeros(steps, N, M)
    term = torch.zeros(steps, N, M, dtype=torch.bool)
    trunc = torch.zeros(steps, N, M, dtype=torch.bool)
    final = torch.zeros(steps, N, M, team.d_obs)
    returns: list[float] = []
    ep_ret = np.zeros(N)
    x = torch.from_numpy(team.reset(rng))
    for t in range(steps):
        with torch.inference_mode():
            logits = agent.logits(x)
            a = (
                logits.argmax(-1)
                if greedy
                else torch.multinomial(torch.softmax(logits.reshape(N * M, -1), -1), 1).reshape(
                    N, M
                )
            )
        obs[t], act[t] = x, a
        nxt, r, te, tr = team.step(a.numpy())
        rew[t] = torch.from_numpy(r)
        ep_ret += r.sum(1)
        done = te | tr
        term[t] = torch.from_numpy(te)[:, None].expand(N, M)
        trunc[t] = torch.from_numpy(tr)[:, None].expand(N, M)
        x = torch.from_numpy(nxt)
        if done.any():
            final[t] = x  # V(final obs) for the time-limit bootstrap
            returns += ep_ret[done].tolist()
            ep_ret[done] = 0.0
            for i in np.flatnonzero(done):
                ob, _ = team.envs[i].reset(seed=int(rng.integers(2**31)))
                x[i] = torch.from_numpy(team._stack(ob))
    return {
        "obs": obs,
        "act": act,
        "rew": rew,
        "term": term,
        "trunc": trunc,
        "final": final,
        "next_obs": x,
        "returns": returns,
    }


def random_returns(team: Team, episodes: int, seed: int) -> list[float]:
    """Team returns of uniformly random joint actions: the baseline to beat."""
    rng = np.random.default_rng(seed)
    N, M, out = len(team.envs), len(team.agents), []
    while len(out) < episodes:
        team.reset(rng)
        ret, done = np.zeros(N), np.zeros(N, dtype=bool)
        while not done.all():
            _, r, te, tr = team.step(rng.integers(team.n_act, size=(N, M)))
            ret += r.sum(1)
            done = te | tr
        out += ret.tolist()
    return out[:episodes]


def evaluate(agent: TeamAgent, team: Team, episodes: int, seed: int, horizon: int) -> float:
    """Mean team return of the greedy joint policy over ``episodes`` episodes."""
    rng = np.random.default_rng(seed)
    out: list[float] = []
    while len(out) < episodes:
        out += play(agent, team, horizon, rng, greedy=True)["returns"]
    return float(np.mean(out[:episodes]))


# ---------------------------------------------------------------------------- train
def train(cfg: Config, run: Run) -> dict[str, Any]:
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    team = Team(cfg)
    M = len(team.agents)
    agent = TeamAgent(M, team.d_obs, team.n_act, cfg.hidden, cfg.critic)
    params = list(agent.parameters())
    opt = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5)
    iteration, step = 0, 0
    ckpt = run.load_checkpoint() if run.resume else None
    if ckpt is not None:
        step, tensors, state = ckpt
        load_module_state("agent", agent, tensors)
        load_optimizer_state("optim", opt, tensors, state["optim"])
        set_generator_state(rng, state["rng"])
        iteration = int(state["iteration"])

    T, N = cfg.num_steps, cfg.num_envs
    num_iterations = max(1, -(-cfg.total_steps // (T * N)))
    eval_team = Team(cfg)
    t0, step0 = time.perf_counter(), step
    try:
        while iteration < num_iterations:
            frac = 1.0 - iteration / num_iterations
            lr = cfg.learning_rate * frac if cfg.anneal_lr else cfg.learning_rate
            opt.param_groups[0]["lr"] = lr
            b = play(agent, team, T, rng)
            step += T * N
            with torch.no_grad():
                logp_old = (
                    torch.log_softmax(agent.logits(b["obs"]), -1)
                    .gather(-1, b["act"][..., None])
                    .squeeze(-1)
                )
                val = agent.value(b["obs"])  # [T, N, M]
                next_val = torch.cat([val[1:], agent.value(b["next_obs"])[None]])
                ends = b["term"] | b["trunc"]
                if ends.any():  # after an episode end, val[t + 1] is the NEXT episode's start
                    next_val = torch.where(b["trunc"], agent.value(b["final"]), next_val)
            adv, ret = gae(
                b["rew"], val, next_val, b["term"], b["trunc"], cfg.gamma, cfg.gae_lambda
            )
            flat = {
                k: v.flatten(0, 1)
                for k, v in (
                    ("obs", b["obs"]),
                    ("act", b["act"]),
                    ("logp", logp_old),
                    ("adv", adv),
                    ("ret", ret),
                )
            }
            B = T * N  # minibatches of (step, env) pairs, every agent of each
            mb = B // cfg.num_minibatches
            stats: dict[str, list[torch.Tensor]] = {
                k: []
                for k in ("policy_loss", "value_loss", "approx_kl", "clip_fraction", "entropy")
            }
            for _ in range(cfg.update_epochs):
                perm = torch.randperm(B)
                for start in range(0, mb * cfg.num_minibatches, mb):
                    idx = perm[start : start + mb]
                    logits = agent.logits(flat["obs"][idx])  # [mb, M, A]
                    logp = (
                        torch.log_softmax(logits, -1)
                        .gather(-1, flat["act"][idx, ..., None])
                        .squeeze(-1)
                    )
                    ent = entropy_from_logits(logits).mean()
                    pg_loss, info = clipped_surrogate(
                        logp,
                        flat["logp"][idx],
                        normalize_advantages(flat["adv"][idx]),
                        cfg.clip_coef,
                    )
                    v_loss = value_loss(agent.value(flat["obs"][idx]), flat["ret"][idx])
                    loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    clip_grad_norm(params, cfg.max_grad_norm)
                    opt.step()
                    for k, v in (
                        ("policy_loss", pg_loss),
                        ("value_loss", v_loss),
                        ("approx_kl", info["approx_kl"]),
                        ("clip_fraction", info["clip_fraction"]),
                        ("entropy", ent),
                    ):
                        stats[k].append(v.detach())
            iteration += 1
            metrics: dict[str, Any] = {k: torch.stack(v).mean() for k, v in stats.items()}
            metrics["explained_variance"] = explained_variance(val.flatten(), ret.flatten())
            if b["returns"]:
                metrics["episode_return"] = float(
                    np.mean(b["returns"])
                )  # team return, sampled actions
            last = iteration == num_iterations
            if last or (cfg.eval_every and iteration % cfg.eval_every == 0):
                # fixed seed and its own envs: evaluating does not change the training run
                metrics["eval_return"] = evaluate(
                    agent,
                    eval_team,
                    2 * N,
                    cfg.seed + 1_000_003,
                    cfg.env_kwargs.get("max_cycles", 25),
                )
            run.log(step, **metrics, lr=lr, sps=(step - step0) / (time.perf_counter() - t0))
            run.progress(step, ret=metrics.get("episode_return", float("nan")))
            if last or run.checkpoint_due(step):
                opt_t, opt_s = optimizer_state("optim", opt)
                run.save_checkpoint(
                    step,
                    {**module_state("agent", agent), **opt_t},
                    {"optim": opt_s, "iteration": iteration, "rng": generator_state(rng)},
                )
            if run.should_stop(step):
                return {}
    finally:
        team.close()
        eval_team.close()
    return {}


# ---------------------------------------------------------------------------- policy
def load_agent(path: str | Path, cfg: Config) -> tuple[TeamAgent, Team]:
    found = load_checkpoint_file(Path(path) / CHECKPOINT)
    if found is None:
        raise RLFoundryError(f"'{path}' has no {CHECKPOINT}; train a run there first.")
    team = Team(cfg)
    agent = TeamAgent(len(team.agents), team.d_obs, team.n_act, cfg.hidden, cfg.critic)
    load_module_state("agent", agent, found[0])
    return agent.eval(), team


def load_policy(path: str | Path, cfg: Config) -> Any:
    """Greedy joint policy: stacked observations ``[M, D]`` -> actions ``[M]``; each agent's
    action depends only on its own observation (decentralised execution)."""
    agent, team = load_agent(path, cfg)
    team.close()

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return (
                agent.logits(torch.as_tensor(np.asarray(obs, dtype=np.float32))).argmax(-1).numpy()
            )

    return policy


def extra_eval(path: str | Path, cfg: Config, policy: Any) -> dict[str, Any]:
    """Mean team return of uniformly random actions on the same number of episodes."""
    team = Team(cfg)
    try:
        rand = random_returns(team, cfg.eval_episodes, eval_seed(cfg.seed))
    finally:
        team.close()
    return {"random_mean_return": float(np.mean(rand)), "random_std_return": float(np.std(rand))}
