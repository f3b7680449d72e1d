"""DQN (Mnih et al. 2015, "Human-level control through deep RL") and Double DQN.

A network Q(s, .; theta) is fitted to one-step TD targets computed with a slowly moving
copy of itself, the target network theta^-, on minibatches drawn uniformly from a replay
memory of past transitions (s, a, r, s', terminated):

    y    = r + gamma * (1 - terminated) * max_a' Q(s', a'; theta^-)             (DQN)
    y    = r + gamma * (1 - terminated) * Q(s', argmax_a' Q(s', a'; theta); theta^-)
                                                              (Double DQN, van Hasselt 2016)
    loss = Huber(Q(s, a; theta) - y)

Replay breaks the correlation between consecutive samples; the frozen target keeps the
regression target from chasing itself. Only ``terminated`` stops the bootstrap: a
transition cut by a time limit is stored with ``terminated=False`` and its true last
observation, so it bootstraps (STYLE.md rule 3; Pardo et al. 2018). The targets are
:func:`rlfoundry.core.q_learning_target` and :func:`rlfoundry.core.double_q_target`.

Step accounting follows Stable-Baselines3, so the rl-baselines3-zoo hyperparameters in
``configs/dqn/`` mean the same here: ``train_freq``, ``target_update_interval`` and the
exploration schedule count environment steps; training starts once more than
``learning_starts`` steps were taken.

    rlfoundry train dqn --env CartPole-v1
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlfoundry.algos.nets import (
    adam_step,
    clip_grad_norm,
    mlp,
    mlp_forward,
    mlp_layers,
    obs_encoder,
)
from rlfoundry.core import double_q_target, q_learning_target
from rlfoundry.core.schedules import linear_schedule
from rlfoundry.envs.evaluation import check_spaces, describe_space, env_metrics, make_env
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
    """DQN hyperparameters; defaults are Stable-Baselines3's except where noted."""

    env_id: str = "CartPole-v1"
    """Gymnasium id of an environment with Discrete actions and Box (or Discrete) observations."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gym.make."""
    total_steps: int = 100_000
    """Environment steps to train for (summed over the num_envs copies)."""
    seed: int = 0
    """Seed of network init, exploration, minibatch sampling and env resets (env i gets seed + i)."""
    eval_episodes: int = 20
    """Episodes of the greedy-policy evaluation written to summary.json."""
    periodic_episodes: int = 10
    """Episodes of each periodic evaluation (``eval_every``) that picks best.safetensors;
    more make the pick less noisy (rlfoundry.envs.periodic)."""
    num_envs: int = 1
    """Copies of the env stepped in lockstep, one batched forward pass choosing all their actions."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the Q-network (ReLU MLP)."""
    orthogonal_init: bool = False
    """Orthogonal init (gain sqrt 2, zero biases) instead of PyTorch's default (Mnih et al.,
    SB3 and CleanRL use the default). CartPole, zoo config, 5 seeds: default 5/5 reach 475
    within 50k steps (median 35k), orthogonal 4/5 (benchmarks/RESULTS.md)."""
    learning_rate: float = 1e-4
    """Adam step size."""
    buffer_size: int = 100_000
    """Capacity of the replay memory in transitions (the oldest are overwritten). SB3: 1e6."""
    learning_starts: int = 1_000
    """No gradient step until more than this many env steps were taken (SB3: 100)."""
    minibatch_size: int = 32
    """Transitions per gradient step, drawn uniformly with replacement from the memory
    (SB3's batch_size)."""
    gamma: float = 0.99
    """Discount factor of the TD target."""
    train_freq: int = 4
    """Do gradient steps after every train_freq vector steps (train_freq * num_envs env steps)."""
    gradient_steps: int = 1
    """Gradient steps each time training happens; -1 means one per env step of the rollout
    (train_freq * num_envs)."""
    target_update_interval: int = 1_000
    """Env steps between target updates theta^- <- tau * theta + (1 - tau) * theta^- (SB3: 10,000)."""
    tau: float = 1.0
    """Target update rate: 1.0 copies the online network (hard update), < 1 is Polyak averaging."""
    double_q: bool = False
    """Double DQN targets: the online network picks a', the target network values it."""
    epsilon_start: float = 1.0
    """Exploration rate of the epsilon-greedy behaviour policy at step 0."""
    epsilon_end: float = 0.05
    """Exploration rate once the linear decay is over."""
    exploration_fraction: float = 0.1
    """Fraction of total_steps over which epsilon decays linearly to epsilon_end."""
    max_grad_norm: float = 10.0
    """Clip the global gradient norm to this value (<= 0 disables clipping)."""
    log_every: int = 1_000
    """Env steps between rows of loss, q_mean, epsilon and sps (episode rows are per episode)."""
    render_video: bool = False
    """After training, write eval.gif of one greedy evaluation episode."""

    #: Old config keys of this algorithm (accepted with a FutureWarning).
    RENAMED: ClassVar[dict[str, str]] = {"batch_size": "minibatch_size"}

    def validate(self) -> None:
        """Raise ConfigError for values DQN cannot use."""
        checks = [
            (self.total_steps >= 0, "total_steps must be >= 0"),
            (self.num_envs >= 1, "num_envs must be >= 1"),
            (self.buffer_size >= 1, "buffer_size must be >= 1"),
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
            (
                0.0 <= self.epsilon_end <= 1.0 and 0.0 <= self.epsilon_start <= 1.0,
                "epsilon_start and epsilon_end must lie in [0, 1]",
            ),
            (0.0 <= self.exploration_fraction <= 1.0, "exploration_fraction must lie in [0, 1]"),
            (self.log_every >= 1, "log_every must be >= 1"),
            (self.eval_episodes >= 0, "eval_episodes must be >= 0"),
            (self.periodic_episodes >= 1, "periodic_episodes must be >= 1"),
            (all(h >= 1 for h in self.hidden), "hidden sizes must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"{msg}; fix it in the config file or --set.")


# --------------------------------------------------------------------------- env


def check_env(env: gym.Env) -> None:
    """Raise EnvError unless actions are Discrete and observations Box or Discrete."""
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise EnvError(
            f"DQN picks argmax_a Q(s, a) over a finite set of actions, but {name} has "
            f"actions {describe_space(env.action_space)}; use ppo (or vpg) for continuous actions."
        )
    if not isinstance(env.observation_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise EnvError(
            f"DQN needs Box or Discrete observations, but {name} has {describe_space(env.observation_space)}; "
            "wrap the env with gymnasium.wrappers.FlattenObservation."
        )


def check(cfg: Config) -> None:
    """Raise EnvError unless ``cfg``'s env has Discrete actions and Box or Discrete
    observations (:func:`check_env`)."""
    check_spaces(cfg, check_env)


def q_network(cfg: Config, obs_width: int, n_act: int) -> nn.Sequential:
    return mlp(obs_width, n_act, cfg.hidden, nn.ReLU, orthogonal=cfg.orthogonal_init)


# --------------------------------------------------------------------------- replay memory


class ReplayBuffer:
    """Preallocated ring buffer of transitions ``(obs, act, rew, next_obs, terminated)``.

    ``next_obs`` is stored explicitly (not as the next row's ``obs``) because after the
    last step of an episode the env is reset: the next row starts a new episode, while
    a truncated transition must bootstrap from the true last observation.
    """

    def __init__(self, capacity: int, obs_width: int) -> None:
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, obs_width), dtype=np.float32)  # [C, D]
        self.next_obs = np.zeros((self.capacity, obs_width), dtype=np.float32)  # [C, D]
        self.act = np.zeros(self.capacity, dtype=np.int64)  # [C]
        self.rew = np.zeros(self.capacity, dtype=np.float32)  # [C]
        self.terminated = np.zeros(self.capacity, dtype=np.bool_)  # [C]
        self.pos = 0  # next row to write
        self.size = 0

    def add(
        self, obs: np.ndarray, act: int, rew: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        i = self.pos
        self.obs[i] = obs
        self.act[i] = act
        self.rew[i] = rew
        self.next_obs[i] = next_obs
        self.terminated[i] = terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, rng: np.random.Generator, n: int = 1
    ) -> tuple[torch.Tensor, ...]:
        """``n`` uniform minibatches at once: ``(obs [n, B, D], act [n, B], rew [n, B],
        next_obs [n, B, D], terminated [n, B])``. One gather per training phase instead of
        one per gradient step; the indices are the same draws as n calls of size B."""
        idx = rng.integers(0, self.size, size=(n, batch_size))
        return (
            torch.from_numpy(self.obs[idx]),
            torch.from_numpy(self.act[idx]),
            torch.from_numpy(self.rew[idx]),
            torch.from_numpy(self.next_obs[idx]),
            torch.from_numpy(self.terminated[idx]),
        )

    def state_arrays(self) -> dict[str, np.ndarray]:
        n = self.size
        return {
            "buffer/obs": self.obs[:n],
            "buffer/act": self.act[:n],
            "buffer/rew": self.rew[:n],
            "buffer/next_obs": self.next_obs[:n],
            "buffer/terminated": self.terminated[:n],
        }

    def load(self, tensors: dict[str, torch.Tensor], pos: int, size: int) -> None:
        if size > self.capacity or tensors["buffer/obs"].shape[1:] != self.obs.shape[1:]:
            raise RLFoundryError(
                "The checkpoint's replay memory does not fit this config's buffer_size or env; "
                "resume with the config the run was started with."
            )
        for name in ("obs", "act", "rew", "next_obs", "terminated"):
            getattr(self, name)[:size] = tensors[f"buffer/{name}"].numpy()
        self.pos, self.size = int(pos), int(size)


# --------------------------------------------------------------------------- learning


def td_target(
    q_net: Callable[[torch.Tensor], torch.Tensor],
    target_net: Callable[[torch.Tensor], torch.Tensor],
    rew: torch.Tensor,
    next_obs: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
    double_q: bool,
) -> torch.Tensor:
    """The regression target y [B] of a minibatch (no gradient flows through it)."""
    with torch.no_grad():
        next_q_target = target_net(next_obs)  # [B, A]
        if double_q:
            return double_q_target(rew, q_net(next_obs), next_q_target, terminated, gamma)
        return q_learning_target(rew, next_q_target, terminated, gamma)


def update_target(q_net: nn.Module, target_net: nn.Module, tau: float) -> None:
    """theta^- <- tau * theta + (1 - tau) * theta^-; a plain copy when tau == 1 (exact)."""
    with torch.no_grad():
        for tp, p in zip(target_net.parameters(), q_net.parameters(), strict=True):
            if tau == 1.0:
                tp.copy_(p)
            else:
                tp.lerp_(p, tau)


def epsilon_at(cfg: Config, step: int) -> float:
    """Linear decay from epsilon_start to epsilon_end over exploration_fraction * total_steps."""
    duration = round(cfg.exploration_fraction * cfg.total_steps)
    return linear_schedule(cfg.epsilon_start, cfg.epsilon_end, duration, step)


# --------------------------------------------------------------------------- training


def train(cfg: Config, run: Run) -> dict[str, Any]:
    envs = [
        ActionLog(make_env(cfg.env_id, **cfg.env_kwargs), seed=cfg.seed + i)
        for i in range(cfg.num_envs)
    ]
    check_env(envs[0])
    obs_width, encode = obs_encoder(envs[0].observation_space)
    act_space = envs[0].action_space
    n_act, act_start = int(act_space.n), int(act_space.start)
    N = cfg.num_envs

    q_net = q_network(cfg, obs_width, n_act)
    target_net = q_network(cfg, obs_width, n_act)
    target_net.load_state_dict(q_net.state_dict())
    target_net.requires_grad_(False)
    # fused: one kernel for the whole update; same Adam, ~25% faster steps on CPU
    optimizer = torch.optim.Adam(q_net.parameters(), lr=cfg.learning_rate, fused=True)
    buffer = ReplayBuffer(cfg.buffer_size, obs_width)
    rng = np.random.default_rng(cfg.seed)  # exploration and minibatch indices

    # logging window: sums since the last row, so a resumed run writes the same rows
    loss_sum, q_sum, n_logged, last_log = torch.zeros(()), torch.zeros(()), 0, 0
    step = 0  # env steps over all copies
    vec_steps = 0  # calls of the N envs together (train_freq counts these)
    n_updates = 0
    episodes = 0
    ep_ret = np.zeros(N)
    ep_len = np.zeros(N, dtype=np.int64)

    ckpt = run.load_checkpoint()  # after building the nets, so the global RNGs are as saved
    if ckpt is None:
        run.warm_start({"q": q_net, "q_target": target_net})  # --init-from; fresh optimiser
        obs = np.stack([encode(env.reset()[0]) for env in envs])  # [N, D]
    else:
        step, tensors, state = ckpt
        load_module_state("q", q_net, tensors)
        load_module_state("q_target", target_net, tensors)
        load_optimizer_state("opt", optimizer, tensors, state["opt"])
        buffer.load(tensors, state["buffer_pos"], state["buffer_size"])
        set_generator_state(rng, state["rng"])
        vec_steps = state["vec_steps"]
        n_updates, episodes = state["n_updates"], state["episodes"]
        ep_ret[:], ep_len[:] = state["ep_ret"], state["ep_len"]
        last_log, n_logged = state["last_log"], state["n_logged"]
        loss_sum, q_sum = torch.tensor(state["loss_sum"]), torch.tensor(state["q_sum"])
        obs = np.stack(
            [
                encode(env.restore(tensors[f"replay{i}/actions"].numpy())[0])
                for i, env in enumerate(envs)
            ]
        )

    def save(step: int) -> None:
        opt_t, opt_s = optimizer_state("opt", optimizer)
        tensors = {
            **module_state("q", q_net),
            **module_state("q_target", target_net),
            **opt_t,
            **buffer.state_arrays(),
        }
        for i, env in enumerate(envs):
            tensors[f"replay{i}/actions"] = env.state_arrays()["replay/actions"]
        run.save_checkpoint(
            step,
            tensors,
            {
                "opt": opt_s,
                "rng": generator_state(rng),
                "buffer_pos": buffer.pos,
                "buffer_size": buffer.size,
                "vec_steps": vec_steps,
                "n_updates": n_updates,
                "episodes": episodes,
                "ep_ret": ep_ret.tolist(),
                "ep_len": ep_len.tolist(),
                "epsilon": epsilon_at(cfg, step),
                "last_log": last_log,
                "loss_sum": loss_sum.item(),
                "q_sum": q_sum.item(),
                "n_logged": n_logged,
                "obs_width": obs_width,
                "n_act": n_act,
            },
        )

    t_log = time.perf_counter()
    obs_t = torch.from_numpy(obs)
    params = list(q_net.parameters())
    # q_net(x) and target_net(x) with the same kernels minus nn.Module.__call__ overhead
    # (rlfoundry.algos.nets.mlp_forward): one forward per env step, two or three per update.
    q_fwd = functools.partial(mlp_forward, mlp_layers(q_net))
    target_fwd = functools.partial(mlp_forward, mlp_layers(target_net))
    while step < cfg.total_steps:
        # ---- act: epsilon-greedy, one forward pass for all the copies
        eps = epsilon_at(cfg, step)
        explore = rng.random(N) < eps
        if explore.all():
            act = rng.integers(0, n_act, size=N)
        else:
            with torch.inference_mode():
                act = q_fwd(obs_t).argmax(dim=1).numpy()
            if explore.any():
                act = np.where(explore, rng.integers(0, n_act, size=N), act)

        # ---- step every copy; store (s, a, r, s', terminated); reset finished episodes
        for i, env in enumerate(envs):
            next_obs, rew, terminated, truncated, _ = env.step(int(act[i]) + act_start)
            next_enc = encode(next_obs)
            buffer.add(obs[i], act[i], rew, next_enc, terminated)
            ep_ret[i] += rew
            ep_len[i] += 1
            if terminated or truncated:
                episodes += 1
                run.log(step + i + 1, episode_return=ep_ret[i], episode_length=ep_len[i])
                ep_ret[i], ep_len[i] = 0.0, 0
                next_enc = encode(env.reset()[0])
            obs[i] = next_enc
        obs_t = torch.from_numpy(obs)
        step += N
        vec_steps += 1

        # ---- target network (counted in env steps, as SB3 does)
        if vec_steps % max(cfg.target_update_interval // N, 1) == 0:
            update_target(q_net, target_net, cfg.tau)

        # ---- gradient steps on minibatches from the memory
        if vec_steps % cfg.train_freq == 0 and step > cfg.learning_starts:
            # -1: one gradient step per env step of this rollout (SB3's meaning)
            n_grad = cfg.train_freq * N if cfg.gradient_steps == -1 else cfg.gradient_steps
            batches = buffer.sample(cfg.minibatch_size, rng, n_grad)
            for b_obs, b_act, b_rew, b_next, b_term in zip(*batches):
                y = td_target(q_fwd, target_fwd, b_rew, b_next, b_term, cfg.gamma, cfg.double_q)
                q_sa = q_fwd(b_obs).gather(1, b_act[:, None]).squeeze(1)  # [B]
                loss = F.smooth_l1_loss(q_sa, y)  # Huber, as in Mnih et al.'s error clipping
                for p in params:  # optimizer.zero_grad(set_to_none=True), minus its overhead
                    p.grad = None
                loss.backward()
                if cfg.max_grad_norm > 0:
                    # nn.utils.clip_grad_norm_'s math in three foreach kernels (nets.py)
                    clip_grad_norm(params, cfg.max_grad_norm)
                adam_step(optimizer)
                loss_sum += loss.detach()
                q_sum += q_sa.detach().mean()
                n_logged += 1
            n_updates += n_grad

        if step - last_log >= cfg.log_every:
            now = time.perf_counter()
            row = {"epsilon": eps, "sps": (step - last_log) / max(now - t_log, 1e-9)}
            if n_logged:
                row.update(loss=loss_sum.item() / n_logged, q_mean=q_sum.item() / n_logged)
            run.log(step, **row, n_updates=n_updates, episodes=episodes)
            run.progress(step, eps=eps)
            loss_sum, q_sum, n_logged = torch.zeros(()), torch.zeros(()), 0
            last_log, t_log = step, now

        if run.checkpoint_due(step):
            save(step)
            if run.stop_requested:
                break

    if not run.stop_requested:
        save(step)
    run.progress(step)
    for env in envs:
        env.close()
    return {}


# --------------------------------------------------------------------------- evaluation


def load_policy(path: str | Path, cfg: Config) -> Callable[[Any], int]:
    """The greedy policy ``argmax_a Q(obs, a)`` of the saved online network."""
    found = load_checkpoint_file(Path(path) / CHECKPOINT)
    if found is None:
        raise RLFoundryError(f"'{path}' has no {CHECKPOINT}; train the run first.")
    tensors, state = found
    env = make_env(cfg.env_id, **cfg.env_kwargs)
    try:
        check_env(env)
        obs_width, encode = obs_encoder(env.observation_space)
        act_start = int(env.action_space.start)
    finally:
        env.close()
    q_net = q_network(cfg, obs_width, int(state["n_act"]))
    load_module_state("q", q_net, tensors)
    q_net.eval()

    def policy(obs: Any) -> int:
        with torch.inference_mode():
            x = torch.from_numpy(encode(obs))[None]
            return int(q_net(x).argmax(dim=1)) + act_start

    return policy


def extra_eval(path: str | Path, cfg: Config, policy: Callable[[Any], int]) -> dict[str, Any]:
    """The metrics an application registered for ``cfg.env_id`` (the driving envs' collision
    rate, speed, distance, braking; {} elsewhere): :func:`rlfoundry.envs.evaluation.env_metrics`."""
    return env_metrics(cfg, policy)
