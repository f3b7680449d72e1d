"""Proximal Policy Optimization with a clipped surrogate (Schulman et al. 2017,
arXiv:1707.06347), for Discrete and Box action spaces.

The loop, top to bottom (seed 003's policy gradient, with PPO's trust region):

    for each iteration:
        collect num_steps x num_envs transitions with the current policy
        adv, ret = GAE(rew, V)                         (truncation bootstraps V(final_obs))
        for update_epochs epochs, for each minibatch:
            loss = clipped_surrogate + vf_coef * value_loss - ent_coef * entropy
            one Adam step (global grad-norm clip)

Implementation choices follow "The 37 Implementation Details of PPO" (Huang et al.,
ICLR blog track 2022) and CleanRL's ``ppo.py``: orthogonal init, Adam eps 1e-5, linear
LR annealing, minibatch advantage normalisation, optional value clipping, one shared
optimiser for separate actor and critic networks. Unlike CleanRL, a truncated episode
bootstraps from the value of its final observation (CleanRL issues 198 and 457); the
math (GAE, surrogate, value loss, entropy, KL) comes from :mod:`rlfoundry.core`.

The agent, the rollout and the checkpoint are the on-policy toolkit
(:mod:`rlfoundry.algos.deep.onpolicy`), shared with A2C, which is this algorithm with one
gradient step per segment and no clipping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from rlfoundry.algos.deep import handgrad
from rlfoundry.algos.deep.onpolicy import (
    Agent,
    Rollout,
    check_env,
    explained_variance,
    load_agent,
    restore,
    save,
)
from rlfoundry.algos.nets import FusedAdam, adam_step, clip_grad_norm
from rlfoundry.core import clipped_surrogate, normalize_advantages, value_loss
from rlfoundry.envs.evaluation import check_spaces, env_metrics
from rlfoundry.errors import ConfigError
from rlfoundry.runtime.run import Run


@dataclass
class Config:
    env_id: str = "CartPole-v1"
    """Gymnasium id of the environment (Box or Discrete observations; Discrete or Box actions)."""
    total_steps: int = 100_000
    """Environment steps to train for, summed over the vector envs; rounded down to whole
    segments of num_envs * num_steps (at least one)."""
    seed: int = 0
    """Seed of every random generator (env resets, action sampling, network init, minibatches)."""
    eval_episodes: int = 20
    """Episodes of the deterministic evaluation written to summary.json."""
    periodic_episodes: int = 10
    """Episodes of each periodic evaluation (``eval_every``) that picks best.safetensors;
    more make the pick less noisy (rlfoundry.envs.periodic)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gymnasium.make (e.g. {continuous: true})."""
    num_envs: int = 8
    """Parallel copies of the env (a gymnasium vector env)."""
    num_steps: int = 256
    """Steps per env in each rollout segment; a segment holds num_envs * num_steps samples."""
    async_envs: bool = False
    """Step the envs in subprocesses (AsyncVectorEnv); worth it only for slow simulators."""
    learning_rate: float = 3e-4
    """Adam step size at the start of training."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over the iterations (PPO paper, CleanRL)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda (1: Monte Carlo advantages, 0: one-step TD errors)."""
    update_epochs: int = 10
    """Passes over each segment."""
    minibatch_size: int = 64
    """Samples per gradient step (SB3's batch_size); the last minibatch of an epoch may be
    smaller."""
    norm_adv: bool = True
    """Normalise advantages to mean 0, std 1 within each minibatch."""
    clip_coef: float = 0.2
    """Surrogate clipping epsilon: the probability ratio is clipped to [1 - eps, 1 + eps]."""
    anneal_clip: bool = False
    """Decay clip_coef linearly to 0 with the iterations (rl-zoo's lin_0.2)."""
    clip_vloss: bool = False
    """Clip the value update to +-clip_coef around the rollout values (off: Andrychowicz et al. 2021)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip over actor and critic together."""
    target_kl: float | None = None
    """Stop the epochs of an update early once the approximate KL of a minibatch exceeds
    1.5 * target_kl (SB3's rule); None: never."""
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

    #: Old config keys of this algorithm (accepted with a FutureWarning).
    RENAMED: ClassVar[dict[str, str]] = {"batch_size": "minibatch_size"}

    def validate(self) -> None:
        positive = ("total_steps", "num_envs", "num_steps", "update_epochs", "minibatch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"Config key '{name}' must be at least 1; set a positive value.")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError("gamma must be in (0, 1] and gae_lambda in [0, 1]; fix them.")
        if self.learning_rate <= 0 or self.clip_coef <= 0:
            raise ConfigError("learning_rate and clip_coef must be positive; fix them.")
        if self.periodic_episodes < 1:
            raise ConfigError("periodic_episodes must be at least 1; set a positive value.")


def check(cfg: Config) -> None:
    """Raise EnvError unless ``cfg``'s env has Box/Discrete observations and Discrete/Box
    actions (:func:`rlfoundry.algos.deep.onpolicy.check_env`)."""
    check_spaces(cfg, check_env)


# ---------------------------------------------------------------------------- train
def train(cfg: Config, run: Run) -> dict[str, Any]:
    rollout = Rollout(cfg)
    agent = Agent(
        rollout.obs_space, rollout.act_space, cfg.hidden, cfg.activation, cfg.log_std_init
    )
    # fused: one kernel for all parameters; ~4x faster than the per-tensor loop here.
    # FusedAdam: torch.optim.Adam(fused=True), minus the ~1 s import of torch._dynamo.
    params = list(agent.parameters())
    opt = FusedAdam(params, lr=cfg.learning_rate, eps=1e-5)
    iteration, step = restore(run, agent, opt, rollout)

    seg = cfg.num_envs * cfg.num_steps
    # autograd's per-op graph and engine cost more than a CartPole minibatch's arithmetic
    by_hand = handgrad.supported(agent, cfg.ent_coef, cfg.clip_vloss)
    num_iterations = max(1, cfg.total_steps // seg)
    t0, step0 = time.perf_counter(), step
    try:
        while iteration < num_iterations:
            frac = 1.0 - iteration / num_iterations  # 1 at the first update, 1/I at the last
            lr = cfg.learning_rate * frac if cfg.anneal_lr else cfg.learning_rate
            opt.param_groups[0]["lr"] = lr
            clip = cfg.clip_coef * frac if cfg.anneal_clip else cfg.clip_coef

            step = rollout.collect(agent, run, step)
            adv, ret = rollout.advantages(agent, cfg.gamma, cfg.gae_lambda)
            b_obs, b_act, b_logp, b_val = rollout.batch()
            b_adv, b_ret = adv.reshape(-1), ret.reshape(-1)

            stats: dict[str, list[torch.Tensor]] = {
                k: [] for k in ("policy_loss", "value_loss", "approx_kl", "clip_fraction")
            }
            parts: list[tuple[torch.Tensor, ...]] = []  # by_hand: stats once per update
            use_ent = cfg.ent_coef != 0.0  # else the entropy is only logged, once below
            stop = False
            whole = cfg.minibatch_size >= seg  # one minibatch: no shuffle, normalise once
            if whole and cfg.norm_adv:
                b_adv = normalize_advantages(b_adv)
            # by hand: one no_grad around the whole update, not one per gradient step, and
            # with one minibatch its operands taken once
            whole_mb = (b_obs, b_act, b_logp, b_adv, b_ret) if whole else None
            with torch.set_grad_enabled(not by_hand):
                for _ in range(cfg.update_epochs):
                    perm = None if whole else torch.randperm(seg)
                    for start in range(0, seg, cfg.minibatch_size):
                        idx = slice(None) if whole else perm[start : start + cfg.minibatch_size]
                        mb_adv = b_adv[idx]
                        if cfg.norm_adv and not whole:
                            mb_adv = normalize_advantages(mb_adv)
                        if by_hand:  # the gradients backward() gives below, bit for bit, cheaper
                            mb = whole_mb or (
                                b_obs[idx],
                                b_act[idx],
                                b_logp[idx],
                                mb_adv,
                                b_ret[idx],
                            )
                            parts.append(handgrad.ppo_loss_grad(agent, *mb, clip, cfg.vf_coef))
                            if cfg.target_kl is not None:
                                kl = handgrad.ppo_stats(parts[-1:], clip)["approx_kl"]
                                if kl > 1.5 * cfg.target_kl:
                                    stop = True  # as below: no step with this minibatch
                                    parts.pop()
                                    break
                        else:
                            logp, ent, val = agent.evaluate(b_obs[idx], b_act[idx], use_ent)
                            pg_loss, info = clipped_surrogate(logp, b_logp[idx], mb_adv, clip)
                            if (
                                cfg.target_kl is not None
                                and info["approx_kl"] > 1.5 * cfg.target_kl
                            ):
                                stop = True  # SB3: skip this step and end the update
                                break
                            v_loss = value_loss(
                                val, b_ret[idx], b_val[idx], clip if cfg.clip_vloss else None
                            )
                            loss = pg_loss + cfg.vf_coef * v_loss
                            if use_ent:
                                loss = loss - cfg.ent_coef * ent.mean()
                            for p in params:  # opt.zero_grad(set_to_none=True), minus its overhead
                                p.grad = None
                            loss.backward()
                        clip_grad_norm(params, cfg.max_grad_norm)
                        adam_step(opt)
                        if by_hand:
                            continue
                        for k, v in (
                            ("policy_loss", pg_loss),
                            ("value_loss", v_loss),
                            ("approx_kl", info["approx_kl"]),
                            ("clip_fraction", info["clip_fraction"]),
                        ):
                            stats[k].append(v.detach())
                    if stop:
                        break
            iteration += 1
            if parts:
                stats = {k: [v] for k, v in handgrad.ppo_stats(parts, clip).items()}
            with torch.no_grad():
                entropy = agent.entropy(agent.policy_out(b_obs)).mean()  # after the update

            run.log(
                step,
                **{k: torch.stack(v).mean() for k, v in stats.items() if v},
                entropy=entropy,
                grad_steps=len(parts) or len(stats["policy_loss"]),  # fewer: target_kl stop
                explained_variance=explained_variance(b_val, b_ret),
                lr=lr,
                clip_coef=clip,
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


def extra_eval(path: str | Path, cfg: Config, policy: Any) -> dict[str, Any]:
    """The metrics an application registered for ``cfg.env_id`` (the driving envs' collision
    rate, speed, distance, braking; {} elsewhere): :func:`rlfoundry.envs.evaluation.env_metrics`."""
    return env_metrics(cfg, policy)
