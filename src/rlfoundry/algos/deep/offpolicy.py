"""The off-policy toolkit shared by SAC and TD3: the env check, the twin critic, the env
side of training (:class:`Transitions`: one env under its action log, the replay memory,
episode bookkeeping), the checkpoint (:func:`save` / :func:`restore`, exact resume) and
the deterministic policy for evaluation (:func:`load_actor_policy`).

No training loop lives here: :mod:`rlfoundry.algos.deep.sac` and
:mod:`rlfoundry.algos.deep.td3` each write theirs out in full on these pieces.

Actions are squashed: the networks and the replay memory work in [-1, 1]^A, and
:meth:`Transitions.to_env` maps them affinely onto the env's Box bounds when it steps the
env (as Stable-Baselines3 does, so its noise scales mean the same here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from rlfoundry.algos.nets import obs_encoder
from rlfoundry.algos.replay import ReplayBuffer
from rlfoundry.envs.evaluation import describe_space, make_env
from rlfoundry.envs.replay import ActionLog
from rlfoundry.envs.vec import check_replayed
from rlfoundry.errors import EnvError, RLFoundryError
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


def check_env(env: gym.Env) -> None:
    """Raise EnvError unless actions are a bounded Box and observations Box or Discrete."""
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    space = env.action_space
    if not isinstance(space, spaces.Box):
        raise EnvError(
            f"SAC and TD3 learn continuous actions, but {name} has {space}; use dqn or ppo "
            "for Discrete actions."
        )
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise EnvError(
            f"SAC and TD3 squash actions into the env's bounds, but {name}'s action space "
            f"{space} is unbounded; wrap the env with gymnasium.wrappers.ClipAction or give it "
            "finite bounds."
        )
    if not isinstance(env.observation_space, (spaces.Box, spaces.Discrete)):
        raise EnvError(
            f"SAC and TD3 need Box or Discrete observations, but {name} has "
            f"{describe_space(env.observation_space)}; wrap the env with gymnasium.wrappers.FlattenObservation."
        )


# ---------------------------------------------------------------------------- networks
class TwinQ(nn.Module):
    """Two independent critics Q1, Q2 (ReLU MLPs on ``[obs, act]``) evaluated together:
    one batched matmul per layer for both (``torch.baddbmm`` over a leading dim of 2),
    half the kernel launches of two separate networks, which is most of the cost of a
    small network's step on a CPU. Each member starts as ``nn.Linear``'s default init
    (uniform in +-1/sqrt(fan_in)), as SB3's and CleanRL's critics do."""

    def __init__(self, obs_width: int, act_width: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        dims = [obs_width + act_width, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)
            self.weights.append(nn.Parameter(torch.empty(2, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(2, 1, d_out).uniform_(-bound, bound)))

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        """``[Q1(s, a), Q2(s, a)]``, shape ``[2, B]``."""
        x = torch.cat([obs, act], -1).expand(2, -1, -1)  # [2, B, D + A]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = F.relu(x)
        return x.squeeze(-1)

    def q1(self, obs: Tensor, act: Tensor) -> Tensor:
        """``Q1(s, a)`` alone, ``[B]`` (TD3's actor loss uses only the first critic)."""
        x = torch.cat([obs, act], -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.addmm(b[0], x, w[0])
            if i < last:
                x = F.relu(x)
        return x.squeeze(-1)


# ---------------------------------------------------------------------------- env side
class Transitions:
    """One env under its action log (exact resume by replay), the replay memory and the
    episode bookkeeping. :meth:`step` sends a squashed action to the env and stores
    ``(obs, act, rew, next_obs, terminated)``: a time-limit truncation is stored with
    ``terminated=False`` and its true last observation, so it bootstraps."""

    def __init__(self, cfg: Any) -> None:
        self.env_id = cfg.env_id
        self.env = ActionLog(make_env(cfg.env_id, **cfg.env_kwargs), seed=cfg.seed)
        check_env(self.env)
        self.obs_width, self.encode = obs_encoder(self.env.observation_space)
        space = self.env.action_space
        self.act_shape, self.act_dtype = space.shape, space.dtype
        self.act_dim = int(np.prod(space.shape))
        self.low = space.low.astype(np.float32).reshape(-1)  # [A]
        self.half_range = ((space.high - space.low) / 2).astype(np.float32).reshape(-1)  # [A]
        self.buffer = ReplayBuffer(cfg.buffer_size, self.obs_width, (self.act_dim,), np.float32)
        self.obs = np.zeros(self.obs_width, dtype=np.float32)  # [D], what the agent sees
        self.raw_obs: Any = None
        self.ep_ret, self.ep_len, self.episodes = 0.0, 0, 0

    def to_env(self, act: np.ndarray) -> np.ndarray:
        """Squashed action ``[A]`` in [-1, 1] -> the env's Box: low + (act + 1) * (high - low) / 2."""
        env_act = self.low + (act + 1.0) * self.half_range
        return env_act.reshape(self.act_shape).astype(self.act_dtype, copy=False)

    def reset(self) -> None:
        self.raw_obs = self.env.reset()[0]
        self.obs = self.encode(self.raw_obs)

    def step(self, act: np.ndarray, run: Run, step: int) -> int:
        """Step the env with squashed action ``act`` ``[A]``, store the transition, log and
        reset a finished episode; return the new step count."""
        raw, rew, terminated, truncated, _ = self.env.step(self.to_env(act))
        next_obs = self.encode(raw)
        self.buffer.add(self.obs, act, rew, next_obs, terminated)
        step += 1
        self.ep_ret += float(rew)
        self.ep_len += 1
        if terminated or truncated:
            self.episodes += 1
            run.log(step, episode_return=self.ep_ret, episode_length=self.ep_len)
            self.ep_ret, self.ep_len = 0.0, 0
            self.reset()
        else:
            self.raw_obs, self.obs = raw, next_obs
        return step

    # -- checkpoint: the env as its action log, the replay memory, the open episode
    def state_arrays(self) -> dict[str, Any]:
        return {
            **self.env.state_arrays(),
            "env/raw_obs": np.array(self.raw_obs),
            **self.buffer.state_arrays(),
        }

    def state(self) -> dict[str, Any]:
        return {
            **self.buffer.state(),
            "ep_ret": self.ep_ret,
            "ep_len": self.ep_len,
            "episodes": self.episodes,
        }

    def load(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        raw, _ = self.env.restore(tensors["replay/actions"].numpy())
        check_replayed(raw, tensors["env/raw_obs"], self.env_id)
        self.raw_obs, self.obs = raw, self.encode(raw)
        self.buffer.load(tensors, state)
        self.ep_ret, self.ep_len = float(state["ep_ret"]), int(state["ep_len"])
        self.episodes = int(state["episodes"])

    def close(self) -> None:
        self.env.close()


# ---------------------------------------------------------------------------- checkpoint
def save(
    run: Run,
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    env: Transitions,
    rng: np.random.Generator,
    state: dict[str, Any],
) -> None:
    """Checkpoint everything a resumed run needs to continue bit for bit: networks (and
    their targets), optimisers, the replay memory, the env's action log, the NumPy
    generator (torch's global one the Run saves itself) and the loop's ``state``."""
    tensors: dict[str, Any] = {}
    opt_states: dict[str, Any] = {}
    for prefix, module in modules.items():
        tensors.update(module_state(prefix, module))
    for prefix, opt in optimizers.items():
        opt_t, opt_states[prefix] = optimizer_state(prefix, opt)
        tensors.update(opt_t)
    tensors.update(env.state_arrays())
    full = {**state, **env.state(), "optimizers": opt_states, "rng": generator_state(rng)}
    run.save_checkpoint(step, tensors, full)


def restore(
    run: Run,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    env: Transitions,
    rng: np.random.Generator,
) -> tuple[int, dict[str, Any]]:
    """Resume from the run's checkpoint if there is one: ``(step, state)``; else start
    fresh (``--init-from`` weights, if given, then the first reset) and return ``(0, {})``.

    Call after building the networks: loading also restores the global RNGs, so the
    random draws of the init must not come after it."""
    ckpt = run.load_checkpoint() if run.resume else None
    if ckpt is None:
        run.warm_start(modules)  # --init-from: networks only; fresh optimisers and memory
        env.reset()
        return 0, {}
    step, tensors, state = ckpt
    for prefix, module in modules.items():
        load_module_state(prefix, module, tensors)
    for prefix, opt in optimizers.items():
        load_optimizer_state(prefix, opt, tensors, state["optimizers"][prefix])
    env.load(tensors, state)
    set_generator_state(rng, state["rng"])
    return step, state


# ---------------------------------------------------------------------------- policy
def load_actor_policy(
    path: str | Path, cfg: Any, build: Callable[[int, int], nn.Module], prefix: str = "actor"
) -> Callable[[Any], np.ndarray]:
    """The deterministic policy of the saved actor, for ``rlfoundry eval``: ``build(obs_width,
    act_dim)`` makes an actor whose ``mode(obs [B, D]) -> [B, A]`` is its deterministic
    squashed action; the policy maps it to the env's bounds."""
    found = load_checkpoint_file(Path(path) / CHECKPOINT)
    if found is None:
        raise RLFoundryError(f"'{path}' has no {CHECKPOINT}; train the run first.")
    tensors, _ = found
    env = make_env(cfg.env_id, **cfg.env_kwargs)
    try:
        check_env(env)
        obs_width, encode = obs_encoder(env.observation_space)
        space = env.action_space
    finally:
        env.close()
    act_dim = int(np.prod(space.shape))
    low = space.low.astype(np.float32).reshape(-1)
    half_range = ((space.high - space.low) / 2).astype(np.float32).reshape(-1)
    actor = build(obs_width, act_dim)
    load_module_state(prefix, actor, tensors)
    actor.eval()

    def policy(obs: Any) -> np.ndarray:
        with torch.inference_mode():
            act = actor.mode(torch.from_numpy(encode(obs))[None])[0].numpy()
        env_act = low + (act + 1.0) * half_range
        return env_act.reshape(space.shape).astype(space.dtype, copy=False)

    return policy
