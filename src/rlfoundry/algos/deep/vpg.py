"""VPG / REINFORCE, exactly as seed 003 derives it (Williams 1992; Spinning Up's VPG).

Collect a batch D of whole trajectories with the current policy, then take one gradient
step on

    L = -1/|D| sum_{tau in D} sum_t log pi(a_t|s_t) * w_t                (seed 003)

whose gradient is the sample estimate g_hat of grad J(pi_theta). The weight w_t is

- ``R(tau)``, the return of the whole trajectory (the seed's formula; the default),
- the reward-to-go ``sum_{t'>=t} gamma^(t'-t) r_t'`` with ``reward_to_go=True``: an action
  cannot change the rewards that came before it, so dropping them removes noise and
  keeps the estimate unbiased (Spinning Up, "Don't Let the Past Distract You"),
- ``rtg_t - V(s_t)`` with ``baseline=True``: subtracting any function of the state keeps
  the estimate unbiased (E[grad log pi * b(s)] = 0) and a learned V(s) ~ E[rtg | s] cuts
  its variance most. V is fitted by MSE on the rtg after each policy step.

The loss is :func:`rlfoundry.core.policy_gradient_loss` (its value means nothing; only
its gradient does), the returns :func:`rlfoundry.core.episode_return` /
:func:`rlfoundry.core.reward_to_go` / :func:`rlfoundry.core.discounted_returns`.

Terminated is not truncated: with a baseline, the reward-to-go of an episode cut by the
time limit is bootstrapped with V of its last observation, as if it had gone on.
Without a baseline there is nothing to bootstrap with, and R(tau) is the finite-horizon
return of the seed. Checkpoints are taken between batches (the batch holds whole
trajectories); an episode still running at ``total_steps`` is dropped.

    rlfoundry train vpg --env CartPole-v1 --set reward_to_go=true
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Normal

from rlfoundry.algos.nets import mlp, obs_encoder
from rlfoundry.core import (
    discounted_returns,
    episode_return,
    policy_gradient_loss,
    reward_to_go,
    value_loss,
)
from rlfoundry.envs.evaluation import check_spaces, describe_space, make_env
from rlfoundry.envs.replay import ActionLog
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
    """VPG hyperparameters; the defaults are seed 003's plain estimator."""

    env_id: str = "CartPole-v1"
    """Gymnasium id of an environment with Discrete or Box actions and Box/Discrete observations."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gym.make."""
    total_steps: int = 200_000
    """Environment steps to train for."""
    seed: int = 0
    """Seed of network init, the action-sampling generator and the env resets."""
    eval_episodes: int = 20
    """Episodes of the deterministic evaluation (argmax / mean action) in summary.json."""
    periodic_episodes: int = 10
    """Episodes of each periodic evaluation (``eval_every``) that picks best.safetensors;
    more make the pick less noisy (rlfoundry.envs.periodic)."""
    batch_steps: int = 5_000
    """Collect whole episodes until the batch D holds at least this many steps, then update."""
    hidden: tuple[int, ...] = (32,)
    """Hidden layer sizes of the policy (and value) network (tanh MLP, orthogonal init)."""
    learning_rate: float = 1e-2
    """Adam step size of the policy (one step per batch)."""
    gamma: float = 1.0
    """Discount of R(tau) / the reward-to-go; 1.0 is the undiscounted return of the textbook policy gradient."""
    reward_to_go: bool = False
    """Weight log pi(a_t|s_t) by the reward-to-go from t instead of the whole return R(tau)."""
    baseline: bool = False
    """Subtract a learned V(s_t) from the reward-to-go (needs reward_to_go=true)."""
    value_learning_rate: float = 1e-3
    """Adam step size of the value network."""
    value_iters: int = 80
    """Full-batch gradient steps on the value MSE after every policy step."""
    log_std_init: float = -0.5
    """Initial log standard deviation of the Gaussian policy (Box actions only)."""
    render_video: bool = False
    """After training, write eval.gif of one deterministic evaluation episode."""

    #: Old config keys of this algorithm (accepted with a FutureWarning).
    RENAMED: ClassVar[dict[str, str]] = {"value_lr": "value_learning_rate"}

    def validate(self) -> None:
        """Raise ConfigError for values VPG cannot use."""
        checks = [
            (self.total_steps >= 0, "total_steps must be >= 0"),
            (self.batch_steps >= 1, "batch_steps must be >= 1"),
            (
                self.learning_rate > 0.0 and self.value_learning_rate > 0.0,
                "learning_rate and value_learning_rate must be > 0",
            ),
            (0.0 <= self.gamma <= 1.0, "gamma must lie in [0, 1]"),
            (self.value_iters >= 1, "value_iters must be >= 1"),
            (self.eval_episodes >= 0, "eval_episodes must be >= 0"),
            (self.periodic_episodes >= 1, "periodic_episodes must be >= 1"),
            (all(h >= 1 for h in self.hidden), "hidden sizes must be >= 1"),
            (
                self.reward_to_go or not self.baseline,
                "baseline=true subtracts V(s_t), an estimate of the reward-to-go, so it needs "
                "reward_to_go=true",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"{msg}; fix it in the config file or --set.")


# --------------------------------------------------------------------------- env


def check_env(env: gym.Env) -> None:
    """Raise EnvError unless actions are Discrete or Box and observations Box or Discrete."""
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    if not isinstance(env.action_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise EnvError(
            f"VPG samples from a categorical or Gaussian policy, but {name} has actions "
            f"{describe_space(env.action_space)}; use an env with Discrete or Box actions "
            "(or flatten its action space with a wrapper)."
        )
    if not isinstance(env.observation_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise EnvError(
            f"VPG needs Box or Discrete observations, but {name} has {describe_space(env.observation_space)}; "
            "wrap the env with gymnasium.wrappers.FlattenObservation."
        )


def check(cfg: Config) -> None:
    """Raise EnvError unless ``cfg``'s env has Discrete or Box actions and Box or Discrete
    observations (:func:`check_env`)."""
    check_spaces(cfg, check_env)


# --------------------------------------------------------------------------- policy


class Policy(nn.Module):
    """pi_theta(a|s): categorical over logits (Discrete) or a Gaussian with a learned,
    state-independent log std (Box), as in Spinning Up."""

    def __init__(self, cfg: Config, obs_width: int, act_space: gym.Space) -> None:
        super().__init__()
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        out = int(act_space.n) if self.discrete else int(np.prod(act_space.shape))
        # gain 0.01: near-uniform initial actions (Huang et al. 2022, detail 2)
        self.net = mlp(obs_width, out, cfg.hidden, activation=nn.Tanh, out_gain=0.01)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((out,), float(cfg.log_std_init)))

    def dist(self, obs: torch.Tensor) -> Distribution:
        if self.discrete:
            return Categorical(logits=self.net(obs))
        return Normal(self.net(obs), self.log_std.exp())

    def sample(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One action for one encoded observation ``x`` [D], drawn with ``rng``.

        Gumbel-max (argmax of logits + Gumbel noise) samples exactly from softmax(logits),
        and ``mean + std * N(0, 1)`` from the Gaussian; both are ~10x cheaper per step
        than building a torch Distribution, and ``rng`` goes in the checkpoint."""
        with torch.inference_mode():
            out = self.net(torch.from_numpy(x)).numpy()
            if self.discrete:
                return np.argmax(out - np.log(-np.log(rng.random(out.shape[0]))))
            std = self.log_std.exp().numpy()
        return (out + std * rng.standard_normal(out.shape[0])).astype(np.float32)

    def log_prob(self, d: Distribution, act: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) [B]; the Gaussian's is summed over action dimensions."""
        return d.log_prob(act) if self.discrete else d.log_prob(act).sum(-1)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action: argmax of the logits, or the Gaussian mean."""
        out = self.net(obs)
        return out.argmax(-1) if self.discrete else out


def to_env_action(act: np.ndarray, act_space: gym.Space) -> Any:
    """What the env is given: the integer (offset by the space's start), or the Gaussian
    sample clipped to the bounds (the unclipped sample is what log pi was computed on)."""
    if isinstance(act_space, gym.spaces.Discrete):
        return int(act) + int(act_space.start)
    return np.clip(act, act_space.low, act_space.high).reshape(act_space.shape)


# --------------------------------------------------------------------------- weights


def episode_weights(
    rew: np.ndarray,
    cfg: Config,
    val: torch.Tensor | None = None,
    bootstrap: float | None = None,
) -> torch.Tensor:
    """The weights w_t [T] of one finished episode (see the module docstring).

    ``val`` is V(s_t) [T] (baseline), ``bootstrap`` V of the last observation of a
    truncated episode (None when it terminated).
    """
    rew_t = torch.as_tensor(rew, dtype=torch.float32)  # [T]
    if not cfg.reward_to_go:
        return torch.full_like(rew_t, float(episode_return(rew_t, cfg.gamma)))
    if bootstrap is None:
        rtg = reward_to_go(rew_t, cfg.gamma)
    else:
        rtg = discounted_returns(rew_t, cfg.gamma, bootstrap=torch.tensor(bootstrap))
    return rtg if val is None else rtg - val


# --------------------------------------------------------------------------- training


def train(cfg: Config, run: Run) -> dict[str, Any]:
    env = ActionLog(make_env(cfg.env_id, **cfg.env_kwargs), seed=cfg.seed)
    check_env(env)
    obs_width, encode = obs_encoder(env.observation_space)
    act_space = env.action_space

    pi = Policy(cfg, obs_width, act_space)
    pi_opt = torch.optim.Adam(pi.parameters(), lr=cfg.learning_rate)
    v_net = mlp(obs_width, 1, cfg.hidden, activation=nn.Tanh) if cfg.baseline else None
    v_opt = (
        torch.optim.Adam(v_net.parameters(), lr=cfg.value_learning_rate)
        if v_net is not None
        else None
    )

    rng = np.random.default_rng(cfg.seed)  # action sampling
    step, episodes, epoch = 0, 0, 0
    ckpt = run.load_checkpoint()  # after building the nets, so the global RNGs are as saved
    if ckpt is None:
        obs, _ = env.reset()
    else:
        step, tensors, state = ckpt
        load_module_state("pi", pi, tensors)
        load_optimizer_state("pi_opt", pi_opt, tensors, state["pi_opt"])
        if v_net is not None:
            load_module_state("v", v_net, tensors)
            load_optimizer_state("v_opt", v_opt, tensors, state["v_opt"])
        episodes, epoch = state["episodes"], state["epoch"]
        set_generator_state(rng, state["rng"])
        obs, _ = env.restore(tensors["replay/actions"].numpy())

    def save(step: int) -> None:
        pi_t, pi_s = optimizer_state("pi_opt", pi_opt)
        tensors = {**module_state("pi", pi), **pi_t, **env.state_arrays()}
        state = {"pi_opt": pi_s, "rng": generator_state(rng), "episodes": episodes, "epoch": epoch}
        if v_net is not None:
            v_t, v_s = optimizer_state("v_opt", v_opt)
            tensors.update(module_state("v", v_net), **v_t)
            state["v_opt"] = v_s
        run.save_checkpoint(step, tensors, state)

    t_start, step_start = time.perf_counter(), step
    while step < cfg.total_steps:
        # ---- collect D: whole trajectories until batch_steps steps (or the budget) are in
        b_obs: list[np.ndarray] = []  # per step [D]
        b_act: list[np.ndarray] = []
        eps: list[
            tuple[int, int, np.ndarray, np.ndarray | None]
        ] = []  # (start, end, rew, last obs)
        ep_start, ep_rew = 0, []
        while True:
            x = encode(obs)
            act = pi.sample(x, rng)
            obs, rew, terminated, truncated, _ = env.step(to_env_action(act, act_space))
            step += 1
            b_obs.append(x)
            b_act.append(act)
            ep_rew.append(float(rew))
            if terminated or truncated:
                last = None if terminated else encode(obs)  # bootstrap from it if truncated
                eps.append((ep_start, len(b_obs), np.asarray(ep_rew), last))
                episodes += 1
                run.log(step, episode_return=sum(ep_rew), episode_length=len(ep_rew))
                ep_start, ep_rew = len(b_obs), []
                obs, _ = env.reset()
                if len(b_obs) >= cfg.batch_steps:
                    break
            if step >= cfg.total_steps:
                break
        del b_obs[ep_start:], b_act[ep_start:]  # drop an episode cut by the budget
        if not eps:
            break

        # ---- one policy-gradient step on D
        obs_t = torch.from_numpy(np.stack(b_obs))  # [T_D, D]
        act_t = torch.as_tensor(np.stack(b_act))  # [T_D] or [T_D, A]
        val, boot = None, [None] * len(eps)
        if v_net is not None:
            with torch.no_grad():
                val = v_net(obs_t).squeeze(-1)  # [T_D]
                boot = [
                    None if last is None else v_net(torch.from_numpy(last)).item()
                    for *_, last in eps
                ]
        weights = torch.cat(
            [
                episode_weights(r, cfg, None if val is None else val[s:e], b)
                for (s, e, r, _), b in zip(eps, boot)
            ]
        )  # [T_D]
        logp = pi.log_prob(pi.dist(obs_t), act_t)  # [T_D]
        loss = policy_gradient_loss(logp, weights, num_episodes=len(eps))
        pi_opt.zero_grad(set_to_none=True)
        loss.backward()
        pi_opt.step()

        # ---- fit V(s) to the reward-to-go by MSE
        v_loss = None
        if v_net is not None:
            ret = weights + val  # rtg (bootstrapped where truncated)
            for _ in range(cfg.value_iters):
                v_loss = value_loss(v_net(obs_t).squeeze(-1), ret)
                v_opt.zero_grad(set_to_none=True)
                v_loss.backward()
                v_opt.step()

        epoch += 1
        now = time.perf_counter()
        returns = [float(r.sum()) for _, _, r, _ in eps]
        row = {
            "batch_return": float(np.mean(returns)),
            "batch_episodes": len(eps),
            "pg_loss": loss.item(),
            "sps": (step - step_start) / max(now - t_start, 1e-9),
        }
        if v_loss is not None:
            row["value_loss"] = v_loss.item()
        run.log(step, **row, epoch=epoch)
        run.progress(step, ret=row["batch_return"])
        t_start, step_start = now, step

        if run.checkpoint_due(step):
            save(step)
            if run.stop_requested:
                env.close()
                return {}

    save(step)
    run.progress(step)
    env.close()
    return {}


# --------------------------------------------------------------------------- evaluation


def load_policy(path: str | Path, cfg: Config) -> Callable[[Any], Any]:
    """The deterministic policy of the saved network: argmax of the logits, or the mean."""
    found = load_checkpoint_file(Path(path) / CHECKPOINT)
    if found is None:
        raise RLFoundryError(f"'{path}' has no {CHECKPOINT}; train the run first.")
    tensors, _ = found
    env = make_env(cfg.env_id, **cfg.env_kwargs)
    try:
        check_env(env)
        obs_width, encode = obs_encoder(env.observation_space)
        act_space = env.action_space
    finally:
        env.close()
    pi = Policy(cfg, obs_width, act_space)
    load_module_state("pi", pi, tensors)
    pi.eval()

    def policy(obs: Any) -> Any:
        with torch.inference_mode():
            act = pi.mode(torch.from_numpy(encode(obs))[None])[0].numpy()
        return to_env_action(act, act_space)

    return policy
