"""RL^2: a recurrent policy trained with PPO across a distribution of tasks
(Duan et al. 2016, "RL^2: Fast Reinforcement Learning via Slow Reinforcement Learning",
arXiv:1611.02779; Wang et al. 2016, "Learning to reinforcement learn").

The "fast" learner is the GRU's hidden state: it sees (state, previous action, previous
reward, episode-done flag) at every step of a trial and is never reset inside a trial,
so it can accumulate what it has learnt about the current task. The "slow" learner is
PPO, which tunes the GRU's weights to maximise the total reward of a whole trial,
averaged over tasks; that objective rewards exploring early in a trial to exploit later.

    for each iteration:
        draw num_envs new tasks (rlfoundry.envs.meta), play one trial of each, the GRU
        starting from h = 0
        adv, ret = GAE over the trial (one trial = one episode; episodes inside an MDP
                   trial are not boundaries for the policy)
        PPO epochs over minibatches of whole trials, replaying the GRU from h = 0

Every iteration starts fresh trials, so no hidden state or env state crosses an
iteration (or a checkpoint). The tasks of the logged evaluations are drawn from a
separate, fixed seed: they are never trained on. Compare with the classic bandit
algorithms of :mod:`rlfoundry.mdp.bandits` on cumulative regret, and with the per-task
learners of :mod:`rlfoundry.mdp.learners` on random MDPs. Tuned settings for each task
family ship in ``configs/rl2/``; what mattered most was the number of Adam steps per
sample (minibatches of whole trials), see docs/beyond_multiagent_meta.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlfoundry.algos.deep.onpolicy import explained_variance
from rlfoundry.algos.nets import clip_grad_norm, layer_init
from rlfoundry.core import (
    clipped_surrogate,
    entropy_from_logits,
    gae,
    normalize_advantages,
    value_loss,
)
from rlfoundry.envs import meta
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

KINDS = {"rlfoundry/MetaBandit-v0": "bandit", "rlfoundry/MetaMDP-v0": "mdp"}


@dataclass
class Config:
    env_id: str = "rlfoundry/MetaBandit-v0"
    """Task distribution: rlfoundry/MetaBandit-v0 (Bernoulli bandits) or rlfoundry/MetaMDP-v0
    (random tabular MDPs)."""
    total_steps: int = 3_000_000
    """Environment steps to train for, over all tasks; rounded up to whole iterations of
    num_envs trials."""
    seed: int = 0
    """Seed of every random generator (tasks, rewards, action sampling, network init)."""
    eval_episodes: int = 200
    """Held-out trials of the final evaluation in summary.json."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Task-family parameters: {arms, horizon} for bandits, {states, actions, episode_len,
    episodes} for MDPs (defaults 5 arms x 100 pulls; 5 states, 3 actions, 5 episodes of 10)."""
    num_envs: int = 64
    """Tasks (trials) per iteration, played side by side (128 with 4 minibatches learnt
    nothing in 1M pulls; 64 with learning_rate 2e-3 ended lower than 32 with 1e-3)."""
    learning_rate: float = 2e-3
    """Adam step size at the start of training."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over the iterations."""
    gamma: float = 0.9
    """Discount over the steps of a trial (0.99 did not learn within 600k steps here:
    the return of a pull is buried under the noise of ~100 later Bernoulli rewards)."""
    gae_lambda: float = 0.3
    """GAE lambda (0.3 as in Duan et al.'s bandit experiments: lean on the critic)."""
    update_epochs: int = 4
    """Passes over each iteration's trials."""
    num_minibatches: int = 1
    """Minibatches per epoch, each a set of whole trials."""
    clip_coef: float = 0.2
    """Surrogate clipping epsilon."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    anneal_ent: bool = False
    """Decay ent_coef linearly to 0 over the iterations (explore while the policy is
    random, commit at the end)."""
    mean_reward_objective: bool = False
    """Score each step by the mean reward of the action taken (the arm's probability,
    mu(s, a) in an MDP) instead of the sampled reward, in GAE only: the expected trial
    return is the same, its variance lower. The GRU still sees only sampled rewards."""
    vf_coef: float = 0.1
    """Weight of the value loss. Actor and critic share the GRU, and at 0.5 the value
    gradient was ~750x the policy gradient: the shared features only served the critic."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip (0.5 scaled the policy gradient down to Adam's eps)."""
    hidden: int = 64
    """GRU hidden size."""
    eval_every: int = 10
    """Iterations between held-out evaluations logged to metrics.csv (0: only at the end)."""
    eval_tasks: int = 500
    """Held-out tasks in each logged evaluation."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def validate(self) -> None:
        for name in ("total_steps", "num_envs", "update_epochs", "num_minibatches", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Config key '{name}' must be at least 1; set a positive value.")
        if self.num_minibatches > self.num_envs:
            raise ConfigError(
                "num_minibatches cannot exceed num_envs (a minibatch is whole trials); "
                "lower num_minibatches or raise num_envs."
            )
        if self.env_id not in KINDS:
            raise ConfigError(
                f"rl2 trains on task distributions; set env_id to one of {', '.join(KINDS)} "
                f"(got '{self.env_id}')."
            )


def check_env(env: gym.Env) -> None:
    """Raise EnvError unless ``env`` is one of the task distributions of rlfoundry.envs.meta."""
    if not isinstance(env.unwrapped, meta.MetaTaskEnv):
        raise EnvError(f"rl2 trains on task distributions; use --env {' or '.join(KINDS)}.")


def check(cfg: Config) -> None:
    """Raise EnvError unless ``cfg``'s env is one of the task distributions (:func:`check_env`)."""
    check_spaces(cfg, check_env)


# ---------------------------------------------------------------------------- agent
class RecurrentAgent(nn.Module):
    """GRU over RL^2's inputs, with a policy head and a value head on its hidden state."""

    def __init__(self, d_in: int, n_act: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(d_in, hidden)
        self.pi = layer_init(nn.Linear(hidden, n_act), gain=0.01)
        self.v = layer_init(nn.Linear(hidden, 1), gain=1.0)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``x [T, B, D]`` -> ``(logits [T, B, A], val [T, B], h [1, B, H])``."""
        out, h = self.gru(x, h)
        return self.pi(out), self.v(out).squeeze(-1), h


# ---------------------------------------------------------------------------- rollout
def play_trials(
    agent: RecurrentAgent, tasks: Any, rng: np.random.Generator, greedy: bool = False
) -> dict[str, np.ndarray | torch.Tensor]:
    """One trial of each of ``tasks.n`` freshly drawn tasks: ``obs [T, n, D]``,
    ``act/rew [T, n]``, the mean reward of each action taken ``rew_mean [T, n]`` and,
    per step, the regret against the best arm (bandits) or nothing (MDPs: see
    :func:`evaluate`)."""
    T, n = tasks.trial_len, tasks.n
    obs = torch.zeros(T, n, tasks.obs_dim)
    act = torch.zeros(T, n, dtype=torch.long)
    rew = torch.zeros(T, n)
    rew_mean = torch.zeros(T, n)
    regret = np.zeros((T, n))
    x = torch.from_numpy(tasks.reset(rng))
    h = None
    with torch.inference_mode():
        for t in range(T):
            obs[t] = x
            logits, _, h = agent(x[None], h)
            a = (
                logits[0].argmax(-1)
                if greedy
                else torch.multinomial(torch.softmax(logits[0], -1), 1)[:, 0]
            )
            act[t] = a
            a_np = a.numpy()
            if isinstance(tasks, meta.BanditTasks):
                regret[t] = tasks.regret(a_np)
            rew_mean[t] = torch.from_numpy(tasks.expected_reward(a_np).astype(np.float32))
            nxt, r = tasks.step(a_np, rng)
            rew[t] = torch.from_numpy(r)
            x = torch.from_numpy(nxt)
    return {"obs": obs, "act": act, "rew": rew, "rew_mean": rew_mean, "regret": regret}


def evaluate(
    agent: RecurrentAgent, cfg: Config, n_tasks: int, seed: int, greedy: bool = False
) -> dict[str, Any]:
    """Held-out trials (tasks drawn from ``seed``): mean trial return and regret.

    Bandits: cumulative pseudo-regret curve ``[T]`` (mean over tasks). MDPs: regret
    against the optimal policy of each known MDP (expected optimal return of the trial
    minus the reward collected), with the random policy's expected return for scale.
    """
    tasks = meta.make_tasks(KINDS[cfg.env_id], n_tasks, **cfg.env_kwargs)
    rng = np.random.default_rng(seed)
    out = play_trials(agent, tasks, rng, greedy)
    ret = out["rew"].sum(0).numpy().astype(np.float64)  # [n]
    res: dict[str, Any] = {"trial_return": float(ret.mean())}
    if isinstance(tasks, meta.BanditTasks):
        curve = out["regret"].cumsum(0).mean(1)  # [T]
        res["regret"] = float(curve[-1])
        res["regret_curve"] = curve
    else:
        best = tasks.optimal_episode_return() * tasks.episodes
        res["regret"] = float((best - ret).mean())
        res["oracle_return"] = float(best.mean())
        res["random_return"] = float((tasks.random_episode_return() * tasks.episodes).mean())
    return res


# ---------------------------------------------------------------------------- train
def train(cfg: Config, run: Run) -> dict[str, Any]:
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    tasks = meta.make_tasks(KINDS[cfg.env_id], cfg.num_envs, **cfg.env_kwargs)
    agent = RecurrentAgent(tasks.obs_dim, tasks.n_act, cfg.hidden)
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

    T, N = tasks.trial_len, cfg.num_envs
    num_iterations = max(1, -(-cfg.total_steps // (T * N)))
    term = torch.zeros(T, N, dtype=torch.bool)
    term[-1] = True  # the trial is the episode: nothing after its last step
    t0, step0 = time.perf_counter(), step
    while iteration < num_iterations:
        frac = 1.0 - iteration / num_iterations
        lr = cfg.learning_rate * frac if cfg.anneal_lr else cfg.learning_rate
        opt.param_groups[0]["lr"] = lr
        ent_coef = cfg.ent_coef * frac if cfg.anneal_ent else cfg.ent_coef
        b = play_trials(agent, tasks, rng)
        step += T * N
        with torch.no_grad():  # the whole-sequence pass the update replays
            logits, val, _ = agent(b["obs"])
            old_logp = torch.log_softmax(logits, -1).gather(-1, b["act"][..., None]).squeeze(-1)
        next_val = torch.cat([val[1:], torch.zeros(1, N)])
        rew = b["rew_mean"] if cfg.mean_reward_objective else b["rew"]
        adv, ret = gae(rew, val, next_val, term, torch.zeros_like(term), cfg.gamma, cfg.gae_lambda)
        stats: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("policy_loss", "value_loss", "approx_kl", "clip_fraction", "entropy")
        }
        mb = N // cfg.num_minibatches
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(N)
            for start in range(0, mb * cfg.num_minibatches, mb):
                idx = perm[start : start + mb]  # whole trials: columns of [T, N]
                logits, v, _ = agent(b["obs"][:, idx])
                logp = torch.log_softmax(logits, -1).gather(-1, b["act"][:, idx, None]).squeeze(-1)
                ent = entropy_from_logits(logits).mean()
                pg_loss, info = clipped_surrogate(
                    logp, old_logp[:, idx], normalize_advantages(adv[:, idx]), cfg.clip_coef
                )
                v_loss = value_loss(v, ret[:, idx])
                loss = pg_loss + cfg.vf_coef * v_loss - ent_coef * ent
                opt.zero_grad(set_to_none=True)
                loss.backward()
                clip_grad_norm(params, cfg.max_grad_norm)
                opt.step()
                for k, x in (
                    ("policy_loss", pg_loss),
                    ("value_loss", v_loss),
                    ("approx_kl", info["approx_kl"]),
                    ("clip_fraction", info["clip_fraction"]),
                    ("entropy", ent),
                ):
                    stats[k].append(x.detach())
        iteration += 1
        metrics: dict[str, Any] = {k: torch.stack(x).mean() for k, x in stats.items()}
        metrics["explained_variance"] = explained_variance(val.flatten(), ret.flatten())
        metrics["episode_return"] = float(b["rew"].sum(0).mean())  # mean training trial return
        last = iteration == num_iterations
        if last or (cfg.eval_every and iteration % cfg.eval_every == 0):
            # Its own seed, fixed across evaluations: the same held-out tasks every time,
            # and no draws from `rng` (evaluating does not change the training run).
            ev = evaluate(agent, cfg, cfg.eval_tasks, cfg.seed + 1_000_003)
            metrics["eval_regret"] = ev["regret"]
            metrics["eval_trial_return"] = ev["trial_return"]
        run.log(step, **metrics, lr=lr, sps=(step - step0) / (time.perf_counter() - t0))
        run.progress(step, ret=metrics["episode_return"])
        if last or run.checkpoint_due(step):
            opt_t, opt_s = optimizer_state("optim", opt)
            run.save_checkpoint(
                step,
                {**module_state("agent", agent), **opt_t},
                {"optim": opt_s, "iteration": iteration, "rng": generator_state(rng)},
            )
        if run.should_stop(step):
            return {}
    return {}


# ---------------------------------------------------------------------------- policy
def load_agent(path: str | Path, cfg: Config) -> RecurrentAgent:
    """The trained agent from ``path/checkpoint.safetensors``."""
    found = load_checkpoint_file(Path(path) / CHECKPOINT)
    if found is None:
        raise RLFoundryError(f"'{path}' has no {CHECKPOINT}; train a run there first.")
    tasks = meta.make_tasks(KINDS[cfg.env_id], 1, **cfg.env_kwargs)
    agent = RecurrentAgent(tasks.obs_dim, tasks.n_act, cfg.hidden)
    load_module_state("agent", agent, found[0])
    return agent.eval()


def load_policy(path: str | Path, cfg: Config) -> Any:
    """A stateful ``policy(obs) -> action`` over the steps of a trial: it keeps the GRU's
    hidden state and resets it at a trial's first observation (no previous action).
    Actions are sampled (a generator seeded by cfg.seed): RL^2's exploration is the
    policy's own randomness, and the greedy policy explores less (higher regret)."""
    agent = load_agent(path, cfg)
    n_state = meta.make_tasks(KINDS[cfg.env_id], 1, **cfg.env_kwargs)
    a0 = n_state.S if isinstance(n_state, meta.MDPTasks) else 0
    n_act = n_state.n_act
    gen = torch.Generator().manual_seed(cfg.seed)
    h: list[torch.Tensor | None] = [None]

    def policy(obs: np.ndarray) -> int:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        if not x[a0 : a0 + n_act].any():  # first step of a trial
            h[0] = None
        with torch.inference_mode():
            logits, _, h[0] = agent(x[None, None], h[0])
            return int(torch.multinomial(torch.softmax(logits[0, 0], -1), 1, generator=gen))

    return policy


def extra_eval(path: str | Path, cfg: Config, policy: Any) -> dict[str, Any]:
    """Held-out regret of RL^2 (sampled and greedy actions) and, on the same tasks, of
    UCB1, Thompson sampling, epsilon-greedy and random arms (bandits) or the trial
    return of Q-learning, PSRL and random actions (MDPs)."""
    agent = load_agent(path, cfg)
    seed = eval_seed(cfg.seed)
    out: dict[str, Any] = {}
    for greedy in (False, True):
        ev = evaluate(agent, cfg, cfg.eval_episodes, seed, greedy)
        tag = "rl2_greedy" if greedy else "rl2"
        out[f"{tag}_regret"] = ev["regret"]
        out[f"{tag}_trial_return"] = ev["trial_return"]
        for k in ("oracle_return", "random_return"):
            if k in ev:
                out[k] = ev[k]
    if KINDS[cfg.env_id] == "mdp":
        from rlfoundry.mdp import learners as mdp_learners

        for name, fn in mdp_learners.BASELINES.items():
            tasks = meta.make_tasks("mdp", cfg.eval_episodes, **cfg.env_kwargs)
            tasks.reset(np.random.default_rng(seed))  # the MDPs RL^2 was scored on
            rew = fn(tasks, np.random.default_rng(seed + 1))
            out[f"{name}_trial_return"] = float(rew.sum(0).mean())
    if KINDS[cfg.env_id] == "bandit":
        from rlfoundry.mdp import bandits

        tasks = meta.make_tasks("bandit", cfg.eval_episodes, **cfg.env_kwargs)
        tasks.reset(np.random.default_rng(seed))  # the same arm means RL^2 was scored on
        for name, fn in bandits.BASELINES.items():
            acts, _ = fn(tasks.means, tasks.trial_len, np.random.default_rng(seed + 1))
            out[f"{name}_regret"] = float(
                bandits.cumulative_regret(tasks.means, acts)[:, -1].mean()
            )
    return out
