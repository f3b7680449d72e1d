"""Advantage Actor-Critic, synchronous (A2C; Mnih et al. 2016, arXiv:1602.01783, the
synchronous variant of A3C as in OpenAI baselines and SB3).

    for each iteration:
        collect num_steps x num_envs transitions with the current policy
        adv, ret = GAE(rew, V)                         (lambda = 1: n-step returns)
        loss = policy_gradient_loss(logp, adv) + vf_coef * value_loss - ent_coef * entropy
        ONE optimiser step on the whole segment

That is seed 003's policy-gradient loss ``-1/|D| sum log pi(a|s) * weight`` with the
advantage as the weight and a learned critic as baseline. It is PPO with one epoch, one
minibatch and no ratio clipping (at the single step the ratio is exactly 1), so the
agent, the rollout and the checkpoint are PPO's, from the on-policy toolkit
:mod:`rlfoundry.algos.deep.onpolicy`; only the update differs, and it is written out in
full below.

Optimiser: RMSprop(alpha=0.99, eps=1e-5) by default, as SB3 and the A3C paper (which
found RMSprop more robust than momentum methods for these updates); ``optimizer: adam``
gives Adam with eps 1e-5 like PPO. Note PyTorch's RMSprop adds eps outside the square
root, unlike TensorFlow's; SB3 uses the PyTorch one for classic control as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rlfoundry.algos.deep.onpolicy import (
    Agent,
    Rollout,
    check_env,
    explained_variance,
    load_agent,
    restore,
    save,
)
from rlfoundry.algos.nets import clip_grad_norm
from rlfoundry.core import normalize_advantages, policy_gradient_loss, value_loss
from rlfoundry.envs.evaluation import check_spaces
from rlfoundry.errors import ConfigError
from rlfoundry.runtime.run import Run


@dataclass
class Config:
    env_id: str = "CartPole-v1"
    """Gymnasium id of the environment (Box or Discrete observations; Discrete or Box actions)."""
    total_steps: int = 500_000
    """Environment steps to train for, summed over the vector envs; rounded down to whole
    segments of num_envs * num_steps (at least one)."""
    seed: int = 0
    """Seed of every random generator (env resets, action sampling, network init)."""
    eval_episodes: int = 20
    """Episodes of the deterministic evaluation written to summary.json."""
    periodic_episodes: int = 10
    """Episodes of each periodic evaluation (``eval_every``) that picks best.safetensors;
    more make the pick less noisy (rlfoundry.envs.periodic)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gymnasium.make (e.g. {continuous: true})."""
    num_envs: int = 8
    """Parallel copies of the env (a gymnasium vector env)."""
    num_steps: int = 5
    """Steps per env in each segment; one gradient step per segment of num_envs * num_steps."""
    async_envs: bool = False
    """Step the envs in subprocesses (AsyncVectorEnv); worth it only for slow simulators."""
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    """RMSprop (alpha, eps below; A3C paper and SB3) or Adam (eps 1e-5)."""
    learning_rate: float = 7e-4
    """Step size at the start of training."""
    anneal_lr: bool = False
    """Decay the step size linearly to 0 over the iterations (SB3's default is constant)."""
    rms_alpha: float = 0.99
    """RMSprop smoothing constant."""
    rms_eps: float = 1e-5
    """RMSprop epsilon (PyTorch's default is 1e-8; SB3 uses 1e-5)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda; 1.0 gives the classic n-step return advantages of A2C."""
    norm_adv: bool = False
    """Normalise advantages over each segment (off in SB3's A2C)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss, which is 0.5 * MSE (CleanRL's convention): SB3's vf_coef c,
    on a plain MSE, is the same gradient as rlfoundry's 2 * c."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip over actor and critic together."""
    norm_obs: bool = False
    """Normalise observations with running mean/std (stored in the checkpoint, used at eval)."""
    norm_reward: bool = False
    """Scale rewards by the running std of the discounted return (SB3 VecNormalize)."""
    clip_obs: float = 10.0
    """Clip normalised observations to +-clip_obs."""
    clip_reward: float = 10.0
    """Clip normalised rewards to +-clip_reward."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actor and of the critic (separate networks)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (Box actions only)."""
    render_video: bool = False
    """After training, write eval.gif of one deterministic evaluation episode."""
    torch_threads: int = 1
    """CPU threads for torch (small MLPs are fastest on one)."""

    def validate(self) -> None:
        for name in ("total_steps", "num_envs", "num_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Config key '{name}' must be at least 1; set a positive value.")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError("gamma must be in (0, 1] and gae_lambda in [0, 1]; fix them.")
        if self.learning_rate <= 0:
            raise ConfigError("learning_rate must be positive; fix it.")
        if self.periodic_episodes < 1:
            raise ConfigError("periodic_episodes must be at least 1; set a positive value.")


def check(cfg: Config) -> None:
    """Raise EnvError unless ``cfg``'s env has Box/Discrete observations and Discrete/Box
    actions (:func:`rlfoundry.algos.deep.onpolicy.check_env`)."""
    check_spaces(cfg, check_env)


def train(cfg: Config, run: Run) -> dict[str, Any]:
    rollout = Rollout(cfg)
    agent = Agent(
        rollout.obs_space, rollout.act_space, cfg.hidden, cfg.activation, cfg.log_std_init
    )
    params = list(agent.parameters())
    if cfg.optimizer == "rmsprop":
        opt: torch.optim.Optimizer = torch.optim.RMSprop(
            params,
            lr=cfg.learning_rate,
            alpha=cfg.rms_alpha,
            eps=cfg.rms_eps,
            foreach=True,
        )
    else:
        opt = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5, fused=True)
    iteration, step = restore(run, agent, opt, rollout)

    num_iterations = max(1, cfg.total_steps // (cfg.num_envs * cfg.num_steps))
    log_every = max(1, num_iterations // 500)  # ~500 update rows, not one per 40 steps
    t0, step0 = time.perf_counter(), step
    try:
        while iteration < num_iterations:
            frac = 1.0 - iteration / num_iterations
            lr = cfg.learning_rate * frac if cfg.anneal_lr else cfg.learning_rate
            opt.param_groups[0]["lr"] = lr

            step = rollout.collect(agent, run, step)
            adv, ret = rollout.advantages(agent, cfg.gamma, cfg.gae_lambda)
            b_obs, b_act, _, b_val = rollout.batch()
            b_adv, b_ret = adv.reshape(-1), ret.reshape(-1)

            logp, ent, val = agent.evaluate(b_obs, b_act)
            if cfg.norm_adv:
                b_adv = normalize_advantages(b_adv)
            pg_loss = policy_gradient_loss(logp, b_adv)  # -mean(logp * adv)
            v_loss = value_loss(val, b_ret)
            entropy = ent.mean()
            loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_grad_norm(params, cfg.max_grad_norm)
            opt.step()
            iteration += 1

            if iteration % log_every == 0 or iteration == num_iterations:
                run.log(
                    step,
                    policy_loss=pg_loss.detach(),
                    value_loss=v_loss.detach(),
                    entropy=entropy.detach(),
                    explained_variance=explained_variance(b_val, b_ret),
                    lr=lr,
                    sps=(step - step0) / (time.perf_counter() - t0),
                )
                recent = np.mean(rollout.recent) if rollout.recent else float("nan")
                run.progress(step, ret=recent)
            if iteration == num_iterations or run.checkpoint_due(step):
                save(run, step, agent, opt, rollout, iteration)
            if run.should_stop(step):
                return {}
    finally:
        rollout.close()
    return {}


def load_policy(path: str | Path, cfg: Config) -> Any:
    """Deterministic policy (argmax / Gaussian mean, clipped) for ``rlfoundry eval``."""
    return load_agent(path, cfg)[1]
