"""PETS: probabilistic ensembles with trajectory sampling (Chua et al. 2018,
"Deep RL in a Handful of Trials using Probabilistic Dynamics Models", arXiv:1805.12114).

No policy network is learned. An ensemble of E probabilistic networks learns the
dynamics, and every action is chosen by model-predictive control (MPC): plan H steps
ahead in the model with the cross-entropy method (CEM), send the first action of the
best plan to the env, observe, plan again.

    collect random_episodes episodes with uniform random actions
    for each episode:
        fit the ensemble to all data: member e predicts N(mu_e, sigma_e^2) of
            delta = s' - s from (s, a), trained by Gaussian NLL on its own shuffles
        for each step:
            CEM over action sequences a_{t:t+H} ~ N(m, v), clipped to the bounds:
                roll each of P particles of each candidate through the model,
                particle p fixed to member p mod E for the whole horizon (TS-inf),
                next state sampled from that member's Gaussian;
                score = mean over particles of sum_k r(s_k, a_k);
                m, v <- moments of the top num_elites (smoothed by cem_alpha)
            act a_t = m[0]; warm-start the next plan with m shifted by one step

Two separate kinds of uncertainty enter the plan as in the paper: the ensemble spread
(epistemic: members disagree where data is thin) and each member's predicted
variance (aleatoric). Members are not fitted to bootstrap resamples but to independent
shuffles of all data (as mbrl-lib and most re-implementations do); their different
initialisations and minibatch orders keep them apart.

**PETS assumes the reward function is known**: the planner scores imagined states with
the task's reward written in torch (:data:`REWARD_FNS`, Pendulum-v1 here; its reward
depends only on the current observation and action, so it is exact on model states).
Only the dynamics are learned. Another env needs its reward added to that table.

The model is :mod:`rlfoundry.algos.model_based.ensemble`, the planner
:mod:`rlfoundry.algos.model_based.planner`; this file holds the config, the data and the
loop.

    rlfoundry train pets --env Pendulum-v1
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rlfoundry.algos.model_based.ensemble import Ensemble, fit_model
from rlfoundry.algos.model_based.planner import CEMPlanner
from rlfoundry.envs.evaluation import check_spaces, describe_space, make_env
from rlfoundry.envs.replay import ActionLog
from rlfoundry.errors import ConfigError, EnvError, RLFoundryError
from rlfoundry.runtime.run import CHECKPOINT, Run, load_checkpoint_file
from rlfoundry.runtime.torch_state import (
    load_module_state,
    load_optimizer_state,
    module_state,
    optimizer_state,
)


@dataclass
class Config:
    """PETS hyperparameters; defaults are tuned for Pendulum-v1 on one CPU thread."""

    env_id: str = "Pendulum-v1"
    """Gymnasium id of an env with Box observations and actions and a reward in REWARD_FNS."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gym.make (e.g. {g: 9.81})."""
    total_steps: int = 3_000
    """Real environment steps to train for (the model's imagined steps do not count)."""
    seed: int = 0
    """Seed of network init, random actions, CEM sampling, minibatch order and env resets."""
    eval_episodes: int = 5
    """Episodes of MPC evaluation written to summary.json (each step plans, so this is slow)."""
    random_episodes: int = 1
    """Episodes of uniform random actions before the first model is fitted."""
    ensemble_size: int = 5
    """Members E of the probabilistic ensemble."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of each member (SiLU MLP; the paper's 3 x 200 plans ~10x slower
    on a CPU and is not needed for Pendulum)."""
    learning_rate: float = 1e-3
    """AdamW step size of the model."""
    weight_decay: float = 5e-5
    """AdamW weight decay of the model."""
    batch_size: int = 256
    """Transitions per minibatch of each member."""
    model_updates: int = 300
    """Gradient steps each time the model is fitted (once per episode); each member takes
    its minibatches from its own reshuffled passes over all data."""
    horizon: int = 15
    """Planning horizon H in env steps."""
    population: int = 400
    """Candidate action sequences per CEM iteration."""
    num_elites: int = 40
    """Best candidates whose moments give the next sampling distribution."""
    cem_iters: int = 5
    """CEM iterations per planned action."""
    cem_alpha: float = 0.1
    """Weight of the old mean/variance in the CEM update (0: the elites' moments only)."""
    particles: int = 5
    """Particles P per candidate; particle p follows ensemble member p mod E (TS-inf),
    so a multiple of ensemble_size uses every member equally."""
    log_every: int = 200
    """Env steps between rows of plan time and steps per second (episode rows are per episode)."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def validate(self) -> None:
        """Raise ConfigError for values PETS cannot use."""
        checks = [
            (self.total_steps >= 1, "total_steps must be >= 1"),
            (
                self.random_episodes >= 1,
                "random_episodes must be >= 1 (the first model needs data)",
            ),
            (self.ensemble_size >= 1, "ensemble_size must be >= 1"),
            (all(h >= 1 for h in self.hidden), "hidden sizes must be >= 1"),
            (
                self.learning_rate > 0 and self.weight_decay >= 0,
                "learning_rate must be > 0 and weight_decay >= 0",
            ),
            (
                self.batch_size >= 1 and self.model_updates >= 1,
                "batch_size and model_updates must be >= 1",
            ),
            (self.horizon >= 1 and self.cem_iters >= 1, "horizon and cem_iters must be >= 1"),
            (
                1 <= self.num_elites <= self.population,
                "num_elites must lie in [1, population]",
            ),
            (0.0 <= self.cem_alpha < 1.0, "cem_alpha must lie in [0, 1)"),
            (self.particles >= 1, "particles must be >= 1"),
            (self.eval_episodes >= 0 and self.log_every >= 1, "eval_episodes >= 0, log_every >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"{msg}; fix it in the config file or --set.")


# --------------------------------------------------------------------------- known rewards


def pendulum_reward(obs: Tensor, act: Tensor) -> Tensor:
    """Pendulum-v1's reward of taking ``act [..., 1]`` in ``obs [..., 3]`` = (cos th, sin th,
    th_dot): ``-(th^2 + 0.1 th_dot^2 + 0.001 u^2)``, th wrapped to [-pi, pi], u clipped to
    [-2, 2] (gymnasium's ``PendulumEnv.step``). Shape ``[...]``."""
    th = torch.atan2(obs[..., 1], obs[..., 0])
    u = act[..., 0].clamp(-2.0, 2.0)
    return -(th**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * u**2)


#: env id -> reward(obs [..., D], act [..., A]) -> [...]: the rewards the planner knows.
REWARD_FNS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"Pendulum-v1": pendulum_reward}


def check_env(env: gym.Env) -> None:
    """Raise EnvError unless actions and observations are Box and the reward is known."""
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    if not isinstance(env.action_space, gym.spaces.Box):
        raise EnvError(
            f"PETS plans continuous action sequences, but {name} has actions "
            f"{describe_space(env.action_space)}; use dqn or ppo for discrete actions."
        )
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise EnvError(
            f"PETS models Box observations, but {name} has {describe_space(env.observation_space)}; "
            "wrap the env with gymnasium.wrappers.FlattenObservation."
        )
    if name not in REWARD_FNS:
        raise EnvError(
            f"PETS plans with a known reward function and none is registered for {name}; "
            f"add one to rlfoundry.algos.model_based.pets.REWARD_FNS (known: {', '.join(REWARD_FNS)})."
        )


def check(cfg: Config) -> None:
    """Raise EnvError unless ``cfg``'s env has Box spaces and a known reward (:func:`check_env`)."""
    check_spaces(cfg, check_env)


# --------------------------------------------------------------------------- data


class Dataset:
    """All real transitions ``(obs, act, next_obs)`` seen so far; PETS never discards data.
    ``next_obs`` is the true last observation of a truncated episode, not the reset one."""

    def __init__(self, capacity: int, d_obs: int, d_act: int) -> None:
        self.obs = torch.zeros(capacity, d_obs)
        self.act = torch.zeros(capacity, d_act)
        self.next_obs = torch.zeros(capacity, d_obs)
        self.size = 0

    def add(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        i = self.size
        self.obs[i] = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        self.act[i] = torch.as_tensor(np.asarray(act, dtype=np.float32))
        self.next_obs[i] = torch.as_tensor(np.asarray(next_obs, dtype=np.float32))
        self.size += 1

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        n = self.size
        return self.obs[:n], self.act[:n], self.next_obs[:n]

    def state_arrays(self) -> dict[str, Tensor]:
        obs, act, next_obs = self.tensors()
        return {"data/obs": obs, "data/act": act, "data/next_obs": next_obs}

    def load(self, tensors: dict[str, Tensor]) -> None:
        n = tensors["data/obs"].shape[0]
        if n > self.obs.shape[0] or tensors["data/obs"].shape[1:] != self.obs.shape[1:]:
            raise RLFoundryError(
                "The checkpoint's data does not fit this config's env or total_steps; "
                "resume with the config the run was started with."
            )
        for name in ("obs", "act", "next_obs"):
            getattr(self, name)[:n] = tensors[f"data/{name}"]
        self.size = n


def build(cfg: Config, env: gym.Env) -> tuple[Ensemble, CEMPlanner, torch.Generator]:
    """The ensemble (drawn from torch's global RNG), its planner and the planner's generator."""
    d_obs = int(np.prod(env.observation_space.shape))
    d_act = int(np.prod(env.action_space.shape))
    model = Ensemble(cfg.ensemble_size, d_obs, d_act, tuple(cfg.hidden))
    gen = torch.Generator().manual_seed(cfg.seed)
    low, high = env.action_space.low.reshape(-1), env.action_space.high.reshape(-1)
    planner = CEMPlanner(model, REWARD_FNS[env.spec.id], low, high, cfg, gen)
    return model, planner, gen


# --------------------------------------------------------------------------- training


def train(cfg: Config, run: Run) -> dict[str, Any]:
    env = ActionLog(make_env(cfg.env_id, **cfg.env_kwargs), seed=cfg.seed)
    check_env(env)
    model, planner, gen = build(cfg, env)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    d_obs, d_act = model.d_obs, planner.low.shape[0]
    data = Dataset(cfg.total_steps, d_obs, d_act)
    low, high = env.action_space.low.reshape(-1), env.action_space.high.reshape(-1)

    step, episodes, fits = 0, 0, 0
    ep_ret, ep_len = 0.0, 0
    plan_s, last_log = 0.0, 0  # planning seconds since the last row
    ckpt = run.load_checkpoint()  # after building the model: the global RNGs are as saved
    if ckpt is None:
        obs, _ = env.reset()
    else:
        step, tensors, state = ckpt
        load_module_state("model", model, tensors)
        load_optimizer_state("opt", opt, tensors, state["opt"])
        data.load(tensors)
        gen.set_state(tensors["gen"])
        planner.mean = tensors["plan_mean"].clone()
        episodes, fits = state["episodes"], state["fits"]
        ep_ret, ep_len = state["ep_ret"], state["ep_len"]
        plan_s, last_log = state["plan_s"], state["last_log"]
        obs, _ = env.restore(tensors["replay/actions"].numpy())

    def save(step: int) -> None:
        opt_t, opt_s = optimizer_state("opt", opt)
        tensors = {
            **module_state("model", model),
            **opt_t,
            **data.state_arrays(),
            **env.state_arrays(),
            "gen": gen.get_state(),
            "plan_mean": planner.mean,
        }
        state = {
            "opt": opt_s,
            "episodes": episodes,
            "fits": fits,
            "ep_ret": ep_ret,
            "ep_len": ep_len,
            "plan_s": plan_s,
            "last_log": last_log,
        }
        run.save_checkpoint(step, tensors, state)

    t_log = time.perf_counter()
    while step < cfg.total_steps:
        if fits == 0:  # no model yet: uniform random actions
            u = torch.rand(low.shape[0], generator=gen).numpy()
            act = (low + u * (high - low)).astype(np.float32)
        else:
            t0 = time.perf_counter()
            act = planner.act(obs)
            plan_s += time.perf_counter() - t0
        next_obs, rew, terminated, truncated, _ = env.step(act.reshape(env.action_space.shape))
        data.add(obs, act, next_obs)
        step += 1
        ep_ret += float(rew)
        ep_len += 1
        obs = next_obs
        if terminated or truncated:
            episodes += 1
            run.log(step, episode_return=ep_ret, episode_length=ep_len, episodes=episodes)
            run.progress(step, ret=ep_ret)
            ep_ret, ep_len = 0.0, 0
            obs, _ = env.reset()
            planner.reset()
            if episodes >= cfg.random_episodes:
                t0 = time.perf_counter()
                stats = fit_model(
                    model, opt, *data.tensors(), cfg.model_updates, cfg.batch_size, gen
                )
                fits += 1
                run.log(step, **stats, fit_seconds=time.perf_counter() - t0, transitions=step)
        if step - last_log >= cfg.log_every:
            now = time.perf_counter()
            run.log(step, plan_seconds=plan_s, sps=(step - last_log) / max(now - t_log, 1e-9))
            plan_s, last_log, t_log = 0.0, step, now
        if step >= cfg.total_steps or run.checkpoint_due(step):
            save(step)
            if run.should_stop(step):
                break
    run.progress(step)
    env.close()
    return {}


# --------------------------------------------------------------------------- evaluation


def load_policy(path: str | Path, cfg: Config) -> Callable[[Any], np.ndarray]:
    """MPC with the saved ensemble (CEM noise from its own generator seeded with cfg.seed,
    so an evaluation is repeatable)."""
    found = load_checkpoint_file(Path(path) / CHECKPOINT)
    if found is None:
        raise RLFoundryError(f"'{path}' has no {CHECKPOINT}; train the run first.")
    tensors, _ = found
    env = make_env(cfg.env_id, **cfg.env_kwargs)
    try:
        check_env(env)
        model, planner, _ = build(cfg, env)
        shape = env.action_space.shape
    finally:
        env.close()
    load_module_state("model", model, tensors)
    model.eval()
    return lambda obs: planner.act(obs).reshape(shape)
