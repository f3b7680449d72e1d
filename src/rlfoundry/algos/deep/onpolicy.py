"""The on-policy toolkit shared by PPO and A2C (and the helpers MAPPO, RL^2 and self-play
PPO reuse): the actor-critic :class:`Agent`, the vector-env :class:`Rollout` with its
``[T, N]`` buffers and GAE, the checkpoint (:func:`save` / :func:`restore`, exact resume
through the env's action log), the deterministic policy for evaluation and
:func:`explained_variance`.

No training loop lives here: :mod:`rlfoundry.algos.deep.ppo` and
:mod:`rlfoundry.algos.deep.a2c` each write theirs out in full on these pieces.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlfoundry.algos.nets import act_dim, mlp, mlp_forward, mlp_layers, obs_dim
from rlfoundry.core import entropy_from_logits, gae, gaussian_entropy
from rlfoundry.envs.evaluation import describe_space, make_env
from rlfoundry.envs.vec import (
    ObsNormalizer,
    RewardNormalizer,
    VecActionLog,
    check_replayed,
    make_vec_env,
)
from rlfoundry.errors import EnvError, RLFoundryError
from rlfoundry.runtime.run import CHECKPOINT, Run, load_checkpoint_file
from rlfoundry.runtime.torch_state import (
    load_module_state,
    load_optimizer_state,
    module_state,
    optimizer_state,
)


def check_env(env: gym.Env) -> None:
    """Raise EnvError unless observations are Box/Discrete and actions Discrete/Box."""
    if not isinstance(env.observation_space, (spaces.Box, spaces.Discrete)):
        raise EnvError(
            f"PPO/A2C need a Box or Discrete observation space, got {describe_space(env.observation_space)}; "
            "flatten it with gymnasium.wrappers.FlattenObservation or pick another env."
        )
    if not isinstance(env.action_space, (spaces.Discrete, spaces.Box)):
        raise EnvError(
            f"PPO/A2C need a Discrete or Box action space, got {describe_space(env.action_space)}; "
            "pick an env with one of those action spaces."
        )


# ---------------------------------------------------------------------------- agent
class Agent(nn.Module):
    """Separate actor and critic MLPs. Discrete: a Categorical over the actor's logits.
    Box: a diagonal Gaussian with the actor's mean and a state-independent log-std
    parameter; actions are unbounded here and clipped to the space only when sent to
    the env (the stored action, and its log-prob, are the sampled one)."""

    def __init__(
        self,
        obs_space: spaces.Space,
        act_space: spaces.Space,
        hidden: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        log_std_init: float = 0.0,
    ) -> None:
        super().__init__()
        act_fn = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        d_in, d_out = obs_dim(obs_space), act_dim(act_space)
        self.discrete = isinstance(act_space, spaces.Discrete)
        # Small policy-output gain: near-uniform / near-zero-mean initial actions (detail 2).
        self.actor = mlp(d_in, d_out, hidden, act_fn, out_gain=0.01)
        self.critic = mlp(d_in, 1, hidden, act_fn, out_gain=1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((d_out,), float(log_std_init)))
        # The same parameters as plain (weight, bias) lists: mlp_forward skips the module
        # call machinery, a third of a small forward pass (rlfoundry.algos.nets).
        self._actor = mlp_layers(self.actor)
        self._critic = mlp_layers(self.critic)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return mlp_forward(self._critic, obs).squeeze(-1)  # [B]

    def policy_out(self, obs: torch.Tensor) -> torch.Tensor:
        """The actor's output ``[B, A]``: logits (Discrete) or the Gaussian mean (Box)."""
        return mlp_forward(self._actor, obs)

    def _logp(self, out: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return torch.log_softmax(out, -1).gather(-1, act.unsqueeze(-1)).squeeze(-1)
        dist = torch.distributions.Normal(out, self.log_std.exp(), validate_args=False)
        return dist.log_prob(act).sum(-1)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        """Sampled actions for a batch of observations ``[B, D]``."""
        out = self.policy_out(obs)
        if self.discrete:
            return torch.multinomial(torch.softmax(out, -1), 1).squeeze(-1)  # [B]
        return out + self.log_std.exp() * torch.randn_like(out)  # [B, A]

    def logp_value(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logp, val)`` of given actions, each ``[B]``."""
        return self._logp(self.policy_out(obs), act), self.value(obs)

    def entropy(self, out: torch.Tensor) -> torch.Tensor:
        """Policy entropy ``[B]`` from the actor's output ``[B, A]``."""
        if self.discrete:
            return entropy_from_logits(out)
        return gaussian_entropy(self.log_std).expand(out.shape[0])

    def evaluate(
        self, obs: torch.Tensor, act: torch.Tensor, with_entropy: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(logp, entropy, val)`` of given actions, with gradients, each ``[B]``
        (entropy None unless ``with_entropy``)."""
        out = self.policy_out(obs)
        ent = self.entropy(out) if with_entropy else None
        return self._logp(out, act), ent, self.value(obs)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action (deterministic evaluation)."""
        out = self.policy_out(obs)
        return out.argmax(-1) if self.discrete else out


def encode_obs(space: spaces.Space, obs: np.ndarray) -> np.ndarray:
    """Batch of raw observations -> float32 ``[B, D]`` (one-hot for Discrete)."""
    if isinstance(space, spaces.Discrete):
        return np.eye(space.n, dtype=np.float32)[np.asarray(obs) - space.start]
    obs = np.asarray(obs)
    return obs.reshape(obs.shape[0], -1).astype(np.float32, copy=False)


def env_action(space: spaces.Space, act: np.ndarray) -> np.ndarray:
    """Network action batch -> what the env accepts (shifted by start, or clipped to bounds)."""
    if isinstance(space, spaces.Discrete):
        return act + space.start if space.start else act
    act = act.reshape(act.shape[0], *space.shape)
    return np.clip(act, space.low, space.high).astype(space.dtype, copy=False)


# ---------------------------------------------------------------------------- rollout
class Rollout:
    """The env side of an on-policy algorithm: the vector env under its action log, the
    normalisers, and preallocated ``[T, N]`` buffers of one segment.

    Speed: only the actor runs per step (under inference_mode); observations go
    NumPy -> torch with ``from_numpy`` (no copy), and each step is written through NumPy
    views of the preallocated torch buffers (a NumPy row assignment costs a fraction of
    a torch ``__setitem__``, and there are five per step).
    """

    def __init__(self, cfg: Any) -> None:
        self.env_id = cfg.env_id
        self.envs = VecActionLog(
            make_vec_env(cfg.env_id, cfg.num_envs, cfg.seed, cfg.async_envs, cfg.env_kwargs),
            cfg.seed,
        )
        self.obs_space = self.envs.single_observation_space
        self.act_space = self.envs.single_action_space
        T, N, D = cfg.num_steps, cfg.num_envs, obs_dim(self.obs_space)
        discrete = isinstance(self.act_space, spaces.Discrete)
        self.obs = torch.zeros(T, N, D)
        self.act = (
            torch.zeros(T, N, dtype=torch.long)
            if discrete
            else torch.zeros(T, N, act_dim(self.act_space))
        )
        self.logp = torch.zeros(T, N)
        self.val = torch.zeros(T, N)
        self.rew = torch.zeros(T, N)
        self.term = torch.zeros(T, N, dtype=torch.bool)
        self.trunc = torch.zeros(T, N, dtype=torch.bool)
        # NumPy views (shared memory) of the buffers the loop writes at every step
        self._np = [x.numpy() for x in (self.obs, self.act, self.rew, self.term, self.trunc)]
        self.obs_norm = ObsNormalizer((D,), cfg.clip_obs) if cfg.norm_obs else None
        self.rew_norm = RewardNormalizer(N, cfg.gamma, cfg.clip_reward) if cfg.norm_reward else None
        self.ep_ret = np.zeros(N, dtype=np.float64)  # raw (unnormalised) reward sums
        self.ep_len = np.zeros(N, dtype=np.int64)
        self.recent = deque(maxlen=20)  # progress-bar display only
        self.final_obs: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.raw_obs: np.ndarray | None = None
        self.next_obs: torch.Tensor | None = None  # [N, D], what the agent sees

    def _observe(self, raw: np.ndarray, update: bool = True) -> torch.Tensor:
        x = encode_obs(self.obs_space, raw)
        if self.obs_norm is not None:
            if update:
                self.obs_norm.update(x)
            x = self.obs_norm(x)
        return torch.from_numpy(x)

    def reset(self) -> None:
        self.raw_obs, _ = self.envs.reset()
        self.next_obs = self._observe(self.raw_obs)

    def collect(self, agent: Agent, run: Run, step: int) -> int:
        """Fill the buffers with num_steps vector steps; log finished episodes; return step."""
        self.final_obs.clear()
        N = self.ep_ret.shape[0]
        obs_b, act_b, rew_b, term_b, trunc_b = self._np  # [T, N, ...] views
        for t in range(self.obs.shape[0]):
            with torch.inference_mode():
                act = agent.sample(self.next_obs).numpy()
            obs_b[t] = self.next_obs.numpy()
            act_b[t] = act
            raw, rew, term, trunc, info = self.envs.step(env_action(self.act_space, act))
            step += N
            self.ep_ret += rew
            self.ep_len += 1
            done = term | trunc
            if done.any():
                for i in np.flatnonzero(done):
                    run.log(
                        step,
                        episode_return=self.ep_ret[i],
                        episode_length=int(self.ep_len[i]),
                    )
                    self.recent.append(self.ep_ret[i])
                self.ep_ret[done] = 0.0
                self.ep_len[done] = 0
            if self.rew_norm is not None:
                rew = self.rew_norm(rew, term, trunc)
            self.next_obs = self._observe(raw)
            if trunc.any():
                # Truncated episodes bootstrap from V(final_obs), not V(reset obs): keep
                # the final observations (normalised with the same statistics as `raw`).
                idx = np.flatnonzero(trunc)
                fin = np.stack([info["final_obs"][i] for i in idx])
                self.final_obs.append((t, idx, self._observe(fin, update=False).numpy()))
            self.raw_obs = raw
            rew_b[t] = rew  # float64 -> float32, rounded as torch's copy rounds
            term_b[t] = term
            trunc_b[t] = trunc
        # The parameters do not change during the segment, so log-probs and values are
        # computed once for all T * N samples rather than at every step (2x fewer ops).
        with torch.no_grad():
            T, N = self.logp.shape
            logp, val = agent.logp_value(self.obs.reshape(T * N, -1), self.act.flatten(0, 1))
            self.logp.copy_(logp.reshape(T, N))
            self.val.copy_(val.reshape(T, N))
        return step

    def advantages(self, agent: Agent, gamma: float, lam: float) -> tuple[torch.Tensor, ...]:
        """``(adv, ret)`` ``[T, N]`` by GAE; ``next_val`` is V of the next observation, and
        V(final_obs) at truncated steps (terminated steps are masked inside ``gae``)."""
        with torch.no_grad():
            next_val = torch.cat([self.val[1:], agent.value(self.next_obs)[None]])  # [T, N]
            if self.final_obs:
                ts = np.concatenate([np.full(len(idx), t) for t, idx, _ in self.final_obs])
                idx = np.concatenate([idx for _, idx, _ in self.final_obs])
                fin = torch.from_numpy(np.concatenate([f for _, _, f in self.final_obs]))
                next_val[torch.from_numpy(ts), torch.from_numpy(idx)] = agent.value(fin)
        return gae(self.rew, self.val, next_val, self.term, self.trunc, gamma, lam)

    def batch(self) -> tuple[torch.Tensor, ...]:
        """The segment flattened to ``[T * N, ...]``: obs, act, logp, val."""
        B = self.obs.shape[0] * self.obs.shape[1]
        return (
            self.obs.reshape(B, -1),
            self.act.reshape(B, *self.act.shape[2:]),
            self.logp.reshape(B),
            self.val.reshape(B),
        )

    # -- checkpoint: everything needed to continue exactly, the env via its action log
    def state_arrays(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.envs.state_arrays("replay/"),
            "rollout/raw_obs": np.array(self.raw_obs),  # copies: may share memory
            "rollout/next_obs": self.next_obs.clone(),
            "rollout/ep_ret": self.ep_ret,
            "rollout/ep_len": self.ep_len,
        }
        if self.obs_norm is not None:
            out.update(self.obs_norm.state_arrays("obs_rms/"))
        if self.rew_norm is not None:
            out.update(self.rew_norm.state_arrays("rew_rms/"))
        return out

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        raw, _ = self.envs.restore(tensors["replay/actions"])
        check_replayed(raw, tensors["rollout/raw_obs"], self.env_id)
        self.raw_obs = raw
        self.next_obs = tensors["rollout/next_obs"].clone()
        self.ep_ret = tensors["rollout/ep_ret"].numpy().copy()
        self.ep_len = tensors["rollout/ep_len"].numpy().copy()
        if self.obs_norm is not None:
            self.obs_norm.load(tensors, "obs_rms/")
        if self.rew_norm is not None:
            self.rew_norm.load(tensors, "rew_rms/")

    def close(self) -> None:
        self.envs.close()


# ---------------------------------------------------------------------------- checkpoint
def save(
    run: Run,
    step: int,
    agent: Agent,
    opt: torch.optim.Optimizer,
    rollout: Rollout,
    iteration: int,
) -> None:
    """Checkpoint at a segment boundary: networks, optimiser, normalisers, the env's
    action log and the iteration (which is also the LR / clip schedule position)."""
    opt_t, opt_s = optimizer_state("optim", opt)
    tensors = {**module_state("agent", agent), **opt_t, **rollout.state_arrays()}
    run.save_checkpoint(step, tensors, {"optim": opt_s, "iteration": iteration})


def restore(
    run: Run, agent: Agent, opt: torch.optim.Optimizer, rollout: Rollout
) -> tuple[int, int]:
    """Resume from the run's checkpoint if there is one: ``(iteration, step)``, else (0, 0).

    Call after building the networks: loading also restores the global RNGs, so the
    random draws of the init must not come after it.
    """
    ckpt = run.load_checkpoint() if run.resume else None
    if ckpt is None:
        # --init-from: weights and obs statistics of another run; fresh optimiser.
        run.warm_start({"agent": agent}, {"obs_rms/": rollout.obs_norm})
        rollout.reset()
        return 0, 0
    step, tensors, state = ckpt
    load_module_state("agent", agent, tensors)
    load_optimizer_state("optim", opt, tensors, state["optim"])
    rollout.load(tensors)
    return int(state["iteration"]), step


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var[target - pred] / Var[target]: 1 is a perfect critic, <= 0 no better than a constant."""
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - pred).var() / var)


# ---------------------------------------------------------------------------- policy
def make_policy(
    agent: Agent,
    obs_space: spaces.Space,
    act_space: spaces.Space,
    obs_norm: ObsNormalizer | None,
) -> Any:
    """A deterministic ``policy(obs) -> action`` for one (unbatched) observation, with the
    observation normaliser frozen; ``policy.batch(obs)`` does the same for a ``[B, ...]``
    batch and returns the ``[B, ...]`` actions (the evaluation plays CartPole's episodes
    at once with it: :func:`rlfoundry.envs.evaluation.evaluate`)."""

    def batch(obs: Any) -> np.ndarray:
        x = encode_obs(obs_space, np.asarray(obs))
        if obs_norm is not None:
            x = obs_norm(x)
        with torch.inference_mode():
            act = agent.mode(torch.from_numpy(x)).numpy()
        return env_action(act_space, act)

    def policy(obs: Any) -> Any:
        act = batch(np.asarray(obs)[None])[0]
        return int(act) if isinstance(act_space, spaces.Discrete) else act

    policy.batch = batch  # type: ignore[attr-defined]
    return policy


def load_agent(path: str | Path, cfg: Any) -> tuple[Agent, Any]:
    """The trained agent and its deterministic policy from ``path/checkpoint.safetensors``."""
    found = load_checkpoint_file(Path(path) / CHECKPOINT)
    if found is None:
        raise RLFoundryError(f"'{path}' has no {CHECKPOINT}; train a run there first.")
    tensors, _ = found
    env = make_env(cfg.env_id, **(cfg.env_kwargs or {}))
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    agent = Agent(obs_space, act_space, cfg.hidden, cfg.activation, cfg.log_std_init)
    load_module_state("agent", agent, tensors)
    agent.eval()
    obs_norm = None
    if cfg.norm_obs:
        obs_norm = ObsNormalizer((obs_dim(obs_space),), cfg.clip_obs)
        obs_norm.load(tensors, "obs_rms/")
    return agent, make_policy(agent, obs_space, act_space, obs_norm)
