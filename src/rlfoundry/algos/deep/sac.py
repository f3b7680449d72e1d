"""Soft Actor-Critic (Haarnoja et al. 2018, arXiv:1801.01290; the version with automatic
temperature, arXiv:1812.05905), for bounded Box actions.

SAC maximises reward plus entropy, E[sum_t r_t + alpha * H(pi(.|s_t))], off-policy:

    for each env step:
        a ~ pi(.|s) (uniform before learning_starts); store (s, a, r, s', terminated)
        every train_freq steps, gradient_steps times, on a minibatch from the memory:
            alpha:  one step on -log_alpha * mean(log pi(a~|s) + target_entropy)    (if auto)
            critic: y = r + gamma * (1 - terminated) * (min Q'(s', a') - alpha * log pi(a'|s'))
                    one step on 0.5 * sum_i mean((Q_i(s, a) - y)^2)
            actor:  one step on mean(alpha * log pi(a~|s) - min_i Q_i(s, a~)),  a~ = tanh(u)
            every target_update_interval steps: Q' <- tau * Q + (1 - tau) * Q'

The policy is a tanh-squashed diagonal Gaussian (log-std clamped to [-20, 2]); actions
live in [-1, 1] and are mapped onto the env's bounds when the env is stepped. Only
``terminated`` stops the bootstrap: a transition cut by a time limit bootstraps from its
true last observation (Pardo et al. 2018), which CleanRL's ``done`` does not (its issue
198). The math is :mod:`rlfoundry.core.offpolicy`; the env, the replay memory, the twin
critic and the checkpoint are the off-policy toolkit :mod:`rlfoundry.algos.deep.offpolicy`.

Step accounting and defaults follow Stable-Baselines3, so rl-baselines3-zoo
hyperparameters (``configs/sac/``) mean the same here.

    rlfoundry train sac --env Pendulum-v1
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlfoundry.algos.deep.offpolicy import (
    Transitions,
    TwinQ,
    check_env,
    load_actor_policy,
    restore,
    save,
)
from rlfoundry.algos.nets import adam_step, mlp, mlp_forward, mlp_layers
from rlfoundry.core import (
    entropy_coef_loss,
    polyak_update,
    sac_actor_loss,
    soft_q_target,
    squashed_gaussian,
)
from rlfoundry.envs.evaluation import check_spaces, env_metrics
from rlfoundry.errors import ConfigError
from rlfoundry.runtime.run import Run

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's and Spinning Up's clamp of the policy's log-std


@dataclass
class Config:
    """SAC hyperparameters; defaults are Stable-Baselines3's."""

    env_id: str = "Pendulum-v1"
    """Gymnasium id of an environment with a bounded Box action space."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gym.make."""
    total_steps: int = 100_000
    """Environment steps to train for."""
    seed: int = 0
    """Seed of network init, exploration, minibatch sampling and env resets."""
    eval_episodes: int = 10
    """Episodes of the deterministic evaluation (tanh of the Gaussian mean) in summary.json."""
    periodic_episodes: int = 10
    """Episodes of each periodic evaluation (``eval_every``) that picks best.safetensors;
    more make the pick less noisy (rlfoundry.envs.periodic)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor and of each critic (ReLU MLPs)."""
    learning_rate: float = 3e-4
    """Adam step size of the actor, the critics and the temperature."""
    buffer_size: int = 1_000_000
    """Capacity of the replay memory in transitions (the oldest are overwritten)."""
    learning_starts: int = 100
    """Uniformly random actions, and no gradient step, for the first learning_starts env steps."""
    minibatch_size: int = 256
    """Transitions per gradient step, drawn uniformly with replacement (SB3's batch_size)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Target critic update rate: Q' <- tau * Q + (1 - tau) * Q' (1.0 copies)."""
    train_freq: int = 1
    """Do gradient steps after every train_freq env steps."""
    gradient_steps: int = 1
    """Gradient steps each time training happens; -1 means one per env step (train_freq)."""
    target_update_interval: int = 1
    """Gradient steps between target critic updates."""
    ent_coef: float | Literal["auto"] = "auto"
    """Entropy temperature alpha: a fixed number, or 'auto' to learn it so the policy's
    entropy tracks target_entropy (Haarnoja et al. 2018b, eq. 18)."""
    ent_coef_init: float = 1.0
    """Starting alpha when ent_coef is 'auto' (SB3's 'auto_1.0')."""
    target_entropy: float | Literal["auto"] = "auto"
    """Entropy the learned alpha aims at; 'auto' is -dim(action space)."""
    log_every: int = 1_000
    """Env steps between rows of losses, alpha, q_mean and sps (episode rows are per episode)."""
    render_video: bool = False
    """After training, write eval.gif of one deterministic evaluation episode."""
    torch_threads: int = 1
    """CPU threads for torch (small MLPs are fastest on one)."""

    def validate(self) -> None:
        """Raise ConfigError for values SAC cannot use."""
        checks = [
            (self.total_steps >= 0, "total_steps must be >= 0"),
            (self.buffer_size >= 1, "buffer_size must be >= 1"),
            (self.learning_starts >= 0, "learning_starts must be >= 0"),
            (self.minibatch_size >= 1, "minibatch_size must be >= 1"),
            (self.train_freq >= 1, "train_freq must be >= 1"),
            (
                self.gradient_steps >= 1 or self.gradient_steps == -1,
                "gradient_steps must be >= 1 or -1",
            ),
            (self.target_update_interval >= 1, "target_update_interval must be >= 1"),
            (0.0 < self.tau <= 1.0, "tau must lie in (0, 1]"),
            (0.0 <= self.gamma <= 1.0, "gamma must lie in [0, 1]"),
            (self.learning_rate > 0.0, "learning_rate must be > 0"),
            (self.ent_coef == "auto" or self.ent_coef >= 0, "ent_coef must be 'auto' or >= 0"),
            (self.ent_coef_init > 0.0, "ent_coef_init must be > 0"),
            (self.log_every >= 1, "log_every must be >= 1"),
            (self.eval_episodes >= 0, "eval_episodes must be >= 0"),
            (self.periodic_episodes >= 1, "periodic_episodes must be >= 1"),
            (
                len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden),
                "hidden sizes must be >= 1",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"{msg}; fix it in the config file or --set.")


def check(cfg: Config) -> None:
    """Raise EnvError unless ``cfg``'s env has a bounded Box action space and Box or
    Discrete observations (:func:`rlfoundry.algos.deep.offpolicy.check_env`)."""
    check_spaces(cfg, check_env)


class Actor(nn.Module):
    """A tanh-squashed diagonal Gaussian policy: an MLP gives the mean and log-std of u,
    the action is tanh(u) in [-1, 1]^A."""

    def __init__(self, obs_width: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_width, 2 * act_dim, hidden, nn.ReLU, orthogonal=False)
        self._layers = mlp_layers(self.net)  # mlp_forward: no module-call overhead

    def dist(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` of u, each ``[B, A]``."""
        mean, log_std = mlp_forward(self._layers, obs).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """A reparameterised action ``[B, A]`` and its log-probability ``[B]``."""
        mean, log_std = self.dist(obs)
        return squashed_gaussian(mean, log_std, torch.randn_like(mean))

    def mode(self, obs: Tensor) -> Tensor:
        """The deterministic action tanh(mean), ``[B, A]``."""
        return torch.tanh(self.dist(obs)[0])


def train(cfg: Config, run: Run) -> dict[str, Any]:
    env = Transitions(cfg)
    D, A = env.obs_width, env.act_dim
    actor = Actor(D, A, cfg.hidden)
    critic = TwinQ(D, A, cfg.hidden)
    critic_target = TwinQ(D, A, cfg.hidden)
    critic_target.load_state_dict(critic.state_dict())
    critic_target.requires_grad_(False)
    auto = cfg.ent_coef == "auto"
    log_alpha = nn.Parameter(torch.tensor(math.log(cfg.ent_coef_init), dtype=torch.float32))
    alpha = log_alpha.detach().exp() if auto else torch.tensor(float(cfg.ent_coef))
    target_entropy = float(-A if cfg.target_entropy == "auto" else cfg.target_entropy)
    # fused: one kernel for the whole update; the same Adam (SB3's defaults)
    actor_params, critic_params = list(actor.parameters()), list(critic.parameters())
    actor_opt = torch.optim.Adam(actor_params, lr=cfg.learning_rate, fused=True)
    critic_opt = torch.optim.Adam(critic_params, lr=cfg.learning_rate, fused=True)
    alpha_opt = torch.optim.Adam([log_alpha], lr=cfg.learning_rate, fused=True)
    rng = np.random.default_rng(cfg.seed)  # warm-up actions and minibatch indices

    modules = {"actor": actor, "critic": critic, "critic_target": critic_target}
    optimizers = {"actor_opt": actor_opt, "critic_opt": critic_opt}
    if auto:
        optimizers["alpha_opt"] = alpha_opt
    ckpt_modules = {**modules, "alpha": _Holder(log_alpha)}
    step, state = restore(run, ckpt_modules, optimizers, env, rng)
    n_updates = int(state.get("n_updates", 0))
    last_log = int(state.get("last_log", 0))
    sums = {k: torch.tensor(v) for k, v in state.get("sums", {}).items()}
    n_logged = {k: int(v) for k, v in state.get("n_logged", {}).items()}

    def checkpoint(step: int) -> None:
        extra = {"n_updates": n_updates, "last_log": last_log, "n_logged": n_logged}
        extra["sums"] = {k: v.item() for k, v in sums.items()}
        save(run, step, ckpt_modules, optimizers, env, rng, extra)

    def add(key: str, value: Tensor) -> None:  # logging window sums, saved with the run
        sums[key] = sums.get(key, torch.zeros(())) + value.detach()
        n_logged[key] = n_logged.get(key, 0) + 1

    def current_alpha() -> float:
        return log_alpha.detach().exp().item() if auto else float(cfg.ent_coef)

    critic_tg = list(critic_target.parameters())
    t_log, step_log = time.perf_counter(), step
    try:
        while step < cfg.total_steps:
            # ---- act: uniform warm-up, then a sample of the current policy
            if step < cfg.learning_starts:
                act = rng.uniform(-1.0, 1.0, A).astype(np.float32)
            else:
                with torch.inference_mode():
                    act = actor.sample(torch.from_numpy(env.obs)[None])[0][0].numpy()
            step = env.step(act, run, step)

            # ---- learn (SB3: after every train_freq steps, once past learning_starts)
            if step % cfg.train_freq == 0 and step > cfg.learning_starts:
                n_grad = cfg.train_freq if cfg.gradient_steps == -1 else cfg.gradient_steps
                for obs, act_b, rew, next_obs, term in zip(
                    *env.buffer.sample(cfg.minibatch_size, rng, n_grad)
                ):
                    pi_act, pi_logp = actor.sample(obs)  # [B, A], [B]
                    if auto:  # the alpha of this step is the one before its own update (SB3)
                        alpha = log_alpha.detach().exp()

                    with torch.no_grad():
                        next_act, next_logp = actor.sample(next_obs)
                        next_q1, next_q2 = critic_target(next_obs, next_act)
                        y = soft_q_target(rew, next_q1, next_q2, next_logp, term, cfg.gamma, alpha)
                    q = critic(obs, act_b)  # [2, B]
                    # SB3's 0.5 * (mse_1 + mse_2) is the mean over both critics' [2, B]
                    critic_loss = F.mse_loss(q, y.expand_as(q))
                    for p in critic_params:
                        p.grad = None
                    critic_loss.backward()
                    adam_step(critic_opt)

                    q_pi = critic(obs, pi_act)  # the updated critic, as in SB3
                    actor_loss = sac_actor_loss(pi_logp, q_pi[0], q_pi[1], alpha)
                    # One backward pass for the actor and alpha: their losses share no
                    # parameter (alpha's sees logp detached, the actor's alpha detached), so
                    # this is the separate steps of SB3, and the critic's gradients, not
                    # needed here, are never computed.
                    params = actor_params
                    loss = actor_loss
                    if auto:
                        alpha_loss = entropy_coef_loss(log_alpha, pi_logp, target_entropy)
                        params, loss = actor_params + [log_alpha], actor_loss + alpha_loss
                    for p, g in zip(params, torch.autograd.grad(loss, params)):
                        p.grad = g
                    adam_step(actor_opt)
                    if auto:
                        adam_step(alpha_opt)

                    n_updates += 1
                    if n_updates % cfg.target_update_interval == 0:
                        polyak_update(critic_tg, critic_params, cfg.tau)
                    add("critic_loss", critic_loss)
                    add("actor_loss", actor_loss)
                    add("q_mean", q.mean())
                    add("entropy", -pi_logp.mean())

            if step - last_log >= cfg.log_every:
                now = time.perf_counter()
                row = {k: v.item() / n_logged[k] for k, v in sums.items()}
                row["alpha"] = current_alpha()
                row["sps"] = (step - step_log) / max(now - t_log, 1e-9)
                run.log(step, **row, n_updates=n_updates, episodes=env.episodes)
                run.progress(step, alpha=row["alpha"])
                sums, n_logged = {}, {}
                last_log, t_log, step_log = step, now, step

            if run.checkpoint_due(step) or step >= cfg.total_steps:
                checkpoint(step)
                if run.should_stop(step):
                    break
        if cfg.total_steps == 0:
            checkpoint(step)
    finally:
        env.close()
    run.progress(step)
    return {"n_updates": n_updates, "alpha": current_alpha()}


class _Holder(nn.Module):
    """A lone parameter (log alpha) as a module, so it is saved and restored like one."""

    def __init__(self, value: nn.Parameter) -> None:
        super().__init__()
        self.value = value


def load_policy(path: str | Path, cfg: Config) -> Any:
    """The deterministic policy tanh(mean) of the saved actor, mapped to the env's bounds."""
    return load_actor_policy(path, cfg, lambda d, a: Actor(d, a, cfg.hidden))


def extra_eval(path: str | Path, cfg: Config, policy: Any) -> dict[str, Any]:
    """The metrics an application registered for ``cfg.env_id`` ({} elsewhere):
    :func:`rlfoundry.envs.evaluation.env_metrics`."""
    return env_metrics(cfg, policy)
