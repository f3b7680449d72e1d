"""TD3: Twin Delayed Deep Deterministic policy gradient (Fujimoto et al. 2018,
arXiv:1802.09477), for bounded Box actions.

DDPG's deterministic actor mu(s) and critic Q(s, a), with the paper's three fixes for
the critic's overestimation:

    for each env step:
        a = clip(mu(s) + N(0, exploration_noise), -1, 1) (uniform before learning_starts)
        store (s, a, r, s', terminated)
        every train_freq steps, gradient_steps times, on a minibatch from the memory:
            a~ = clip(mu'(s') + clip(N(0, target_policy_noise), -c, c), -1, 1)   (smoothing)
            y  = r + gamma * (1 - terminated) * min(Q1'(s', a~), Q2'(s', a~))    (twin critics)
            one step on sum_i mean((Q_i(s, a) - y)^2)
            every policy_delay-th gradient step:                                  (delay)
                one actor step on -mean(Q1(s, mu(s)))
                Q' <- tau * Q + (1 - tau) * Q';  mu' <- tau * mu + (1 - tau) * mu'

Actions live in [-1, 1] (tanh output) and are mapped onto the env's bounds when the env
is stepped; the noise scales are in those units, as in Stable-Baselines3. Only
``terminated`` stops the bootstrap: a transition cut by a time limit bootstraps from its
true last observation (Pardo et al. 2018). The math is :mod:`rlfoundry.core.offpolicy`;
the env, the replay memory, the twin critic and the checkpoint are the off-policy toolkit
:mod:`rlfoundry.algos.deep.offpolicy`, shared with SAC.

Step accounting and defaults follow Stable-Baselines3 (plus CleanRL's Gaussian
exploration noise, which SB3 leaves to the user), so rl-baselines3-zoo hyperparameters
(``configs/td3/``) mean the same here.

    rlfoundry train td3 --env Pendulum-v1
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from rlfoundry.core import clipped_double_q_target, polyak_update, smoothed_target_action
from rlfoundry.envs.evaluation import check_spaces, env_metrics
from rlfoundry.errors import ConfigError
from rlfoundry.runtime.run import Run


@dataclass
class Config:
    """TD3 hyperparameters; defaults are Stable-Baselines3's (exploration noise: CleanRL's)."""

    env_id: str = "Pendulum-v1"
    """Gymnasium id of an environment with a bounded Box action space."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gym.make."""
    total_steps: int = 100_000
    """Environment steps to train for."""
    seed: int = 0
    """Seed of network init, exploration, minibatch sampling and env resets."""
    eval_episodes: int = 10
    """Episodes of the deterministic evaluation (the actor's output) in summary.json."""
    periodic_episodes: int = 10
    """Episodes of each periodic evaluation (``eval_every``) that picks best.safetensors;
    more make the pick less noisy (rlfoundry.envs.periodic)."""
    hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of the actor and of each critic (ReLU MLPs)."""
    learning_rate: float = 1e-3
    """Adam step size of the actor and the critics."""
    buffer_size: int = 1_000_000
    """Capacity of the replay memory in transitions (the oldest are overwritten)."""
    learning_starts: int = 100
    """Uniformly random actions, and no gradient step, for the first learning_starts env steps."""
    minibatch_size: int = 256
    """Transitions per gradient step, drawn uniformly with replacement (SB3's batch_size)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Target update rate of the critics and the actor: x' <- tau * x + (1 - tau) * x'."""
    train_freq: int = 1
    """Do gradient steps after every train_freq env steps."""
    gradient_steps: int = 1
    """Gradient steps each time training happens; -1 means one per env step (train_freq)."""
    policy_delay: int = 2
    """Critic steps per actor step; the targets move with the actor."""
    target_policy_noise: float = 0.2
    """Std of the Gaussian noise added to the target action (target policy smoothing)."""
    target_noise_clip: float = 0.5
    """The smoothing noise is clipped to +-target_noise_clip."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to the actor's action while collecting, in [-1, 1]
    units (SB3's NormalActionNoise sigma, the zoo's noise_std)."""
    log_every: int = 1_000
    """Env steps between rows of losses, q_mean and sps (episode rows are per episode)."""
    render_video: bool = False
    """After training, write eval.gif of one deterministic evaluation episode."""
    torch_threads: int = 1
    """CPU threads for torch (small MLPs are fastest on one)."""

    def validate(self) -> None:
        """Raise ConfigError for values TD3 cannot use."""
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
            (self.policy_delay >= 1, "policy_delay must be >= 1"),
            (0.0 < self.tau <= 1.0, "tau must lie in (0, 1]"),
            (0.0 <= self.gamma <= 1.0, "gamma must lie in [0, 1]"),
            (self.learning_rate > 0.0, "learning_rate must be > 0"),
            (self.target_policy_noise >= 0.0, "target_policy_noise must be >= 0"),
            (self.target_noise_clip >= 0.0, "target_noise_clip must be >= 0"),
            (self.exploration_noise >= 0.0, "exploration_noise must be >= 0"),
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
    """The deterministic policy mu(s) = tanh(MLP(s)) in [-1, 1]^A."""

    def __init__(self, obs_width: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_width, act_dim, hidden, nn.ReLU, orthogonal=False)
        self._layers = mlp_layers(self.net)  # mlp_forward: no module-call overhead

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(mlp_forward(self._layers, obs))  # [B, A]

    mode = forward  # the deterministic action, for evaluation


def train(cfg: Config, run: Run) -> dict[str, Any]:
    env = Transitions(cfg)
    D, A = env.obs_width, env.act_dim
    actor, actor_target = Actor(D, A, cfg.hidden), Actor(D, A, cfg.hidden)
    critic, critic_target = TwinQ(D, A, cfg.hidden), TwinQ(D, A, cfg.hidden)
    for net, target in ((actor, actor_target), (critic, critic_target)):
        target.load_state_dict(net.state_dict())
        target.requires_grad_(False)
    actor_params, critic_params = list(actor.parameters()), list(critic.parameters())
    # fused: one kernel for the whole update; the same Adam (SB3's defaults)
    actor_opt = torch.optim.Adam(actor_params, lr=cfg.learning_rate, fused=True)
    critic_opt = torch.optim.Adam(critic_params, lr=cfg.learning_rate, fused=True)
    rng = np.random.default_rng(cfg.seed)  # warm-up actions, exploration noise, minibatches

    modules = {
        "actor": actor,
        "actor_target": actor_target,
        "critic": critic,
        "critic_target": critic_target,
    }
    optimizers = {"actor_opt": actor_opt, "critic_opt": critic_opt}
    step, state = restore(run, modules, optimizers, env, rng)
    n_updates = int(state.get("n_updates", 0))
    last_log = int(state.get("last_log", 0))
    sums = {k: torch.tensor(v) for k, v in state.get("sums", {}).items()}
    n_logged = {k: int(v) for k, v in state.get("n_logged", {}).items()}

    def checkpoint(step: int) -> None:
        extra = {"n_updates": n_updates, "last_log": last_log, "n_logged": n_logged}
        extra["sums"] = {k: v.item() for k, v in sums.items()}
        save(run, step, modules, optimizers, env, rng, extra)

    def add(key: str, value: Tensor) -> None:  # logging window sums, saved with the run
        sums[key] = sums.get(key, torch.zeros(())) + value.detach()
        n_logged[key] = n_logged.get(key, 0) + 1

    actor_tg, critic_tg = list(actor_target.parameters()), list(critic_target.parameters())
    t_log, step_log = time.perf_counter(), step
    try:
        while step < cfg.total_steps:
            # ---- act: uniform warm-up, then the actor plus Gaussian exploration noise
            if step < cfg.learning_starts:
                act = rng.uniform(-1.0, 1.0, A).astype(np.float32)
            else:
                with torch.inference_mode():
                    act = actor(torch.from_numpy(env.obs)[None])[0].numpy()
                if cfg.exploration_noise > 0:
                    noise = rng.normal(0.0, cfg.exploration_noise, A)
                    act = np.clip(act + noise, -1.0, 1.0).astype(np.float32)
            step = env.step(act, run, step)

            # ---- learn (SB3: after every train_freq steps, once past learning_starts)
            if step % cfg.train_freq == 0 and step > cfg.learning_starts:
                n_grad = cfg.train_freq if cfg.gradient_steps == -1 else cfg.gradient_steps
                for obs, act_b, rew, next_obs, term in zip(
                    *env.buffer.sample(cfg.minibatch_size, rng, n_grad)
                ):
                    n_updates += 1
                    with torch.no_grad():
                        noise = torch.randn_like(act_b) * cfg.target_policy_noise
                        next_act = smoothed_target_action(
                            actor_target(next_obs), noise, cfg.target_noise_clip
                        )
                        next_q1, next_q2 = critic_target(next_obs, next_act)
                        y = clipped_double_q_target(rew, next_q1, next_q2, term, cfg.gamma)
                    q = critic(obs, act_b)  # [2, B]
                    # SB3's mse_1 + mse_2 is twice the mean over both critics' [2, B]
                    critic_loss = 2.0 * F.mse_loss(q, y.expand_as(q))
                    for p in critic_params:
                        p.grad = None
                    critic_loss.backward()
                    adam_step(critic_opt)
                    add("critic_loss", critic_loss)
                    add("q_mean", q.mean())

                    if n_updates % cfg.policy_delay == 0:
                        actor_loss = -critic.q1(obs, actor(obs)).mean()
                        # the critic's own gradients are not needed: autograd for the actor's
                        grads = torch.autograd.grad(actor_loss, actor_params)
                        for p, g in zip(actor_params, grads):
                            p.grad = g
                        adam_step(actor_opt)
                        polyak_update(critic_tg, critic_params, cfg.tau)
                        polyak_update(actor_tg, actor_params, cfg.tau)
                        add("actor_loss", actor_loss)

            if step - last_log >= cfg.log_every:
                now = time.perf_counter()
                row = {k: v.item() / n_logged[k] for k, v in sums.items()}
                row["sps"] = (step - step_log) / max(now - t_log, 1e-9)
                run.log(step, **row, n_updates=n_updates, episodes=env.episodes)
                run.progress(step)
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
    return {"n_updates": n_updates}


def load_policy(path: str | Path, cfg: Config) -> Any:
    """The deterministic policy mu(s) of the saved actor, mapped to the env's bounds."""
    return load_actor_policy(path, cfg, lambda d, a: Actor(d, a, cfg.hidden))


def extra_eval(path: str | Path, cfg: Config, policy: Any) -> dict[str, Any]:
    """The metrics an application registered for ``cfg.env_id`` ({} elsewhere):
    :func:`rlfoundry.envs.evaluation.env_metrics`."""
    return env_metrics(cfg, policy)
