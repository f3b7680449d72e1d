"""Self-play PPO with action masking on two-player PettingZoo games (AEC API).

One shared policy plays both seats. The policy only ever sees the observation of the
player to move (the classic games encode it relative to that player), so the same
network is the first and the second player. Illegal moves are masked out of the policy
(:mod:`rlfoundry.algos.multiagent.selfplay`, which also plays the games).

    for each iteration:
        play num_envs games at a time until num_steps learner moves are collected
        (every game played to its end):
            with prob search_opponent_frac: the learner (random seat) against the
                                      search player (optional, off by default);
            else, with prob pool_prob: the learner (random seat) against a frozen past
                                      snapshot from the pool (only its moves train);
            else:                     mirror self-play, both seats are the learner and
                                      both trajectories are training data
        adv, ret = GAE per player trajectory (a player's reward is what it received
                   between its move and its next turn: +1/-1/0 at the end of a game)
        PPO epochs on the learner moves (clipped surrogate, value loss, entropy)
        every snapshot_every iterations: add a copy of the policy to the pool

Playing only the latest self is prone to cycles and forgetting (a policy forgets how to
beat a weaker one it no longer meets); a pool of past selves (Bansal et al. 2018,
"Emergent Complexity via Multi-Agent Competition"; OpenAI Five) keeps old opponents in
the mix. The pool starts with the initial near-uniform policy, i.e. a random player.

Self-play alone can stay blind to tactics its opponents never use: on connect four the
defaults beat random but lost every game to a two-ply alpha-beta player, which wins
whenever a three is left open. Games against that player (``search_opponent_frac``)
punish every unblocked threat, the way a search-based teacher or scripted exploiters
(Vinyals et al. 2019, AlphaStar's league) widen the opponent mix.

Evaluation is against a random and a search player from both seats, or, for
rock-paper-scissors, the exploitability of the first move
(:func:`rlfoundry.algos.multiagent.selfplay.evaluate_agent`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlfoundry.algos.deep.onpolicy import explained_variance
from rlfoundry.algos.multiagent.selfplay import (
    MaskedAgent,
    Selfplay,
    board_shape,
    evaluate_agent,
    flatten,
    greedy_opponent,
)
from rlfoundry.algos.nets import clip_grad_norm
from rlfoundry.core import (
    clipped_surrogate,
    entropy_from_logits,
    normalize_advantages,
    value_loss,
)
from rlfoundry.envs import games
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


@dataclass
class Config:
    env_id: str = "pettingzoo/tictactoe_v3"
    """Two-player PettingZoo game: pettingzoo/tictactoe_v3, pettingzoo/connect_four_v3 or
    pettingzoo/rps_v2."""
    total_steps: int = 200_000
    """Moves to train for, counting both seats of every game (the learner's and its
    opponent's); the last iteration may go past it."""
    seed: int = 0
    """Seed of every random generator (opponent choice, seats, sampling, network init)."""
    eval_episodes: int = 200
    """Games per seat against the random player in the final evaluation (summary.json)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the PettingZoo env (e.g. {max_cycles: 1} for rps_v2)."""
    num_envs: int = 16
    """Games played side by side (their moves are batched through the network)."""
    num_steps: int = 1024
    """Learner moves per iteration (at least: the games in progress are finished)."""
    learning_rate: float = 1e-3
    """Adam step size at the start of training (3e-4 learns tic-tac-toe about 2x slower)."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over the iterations."""
    gamma: float = 0.99
    """Discount per own move (below 1: a quicker win is worth more)."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    update_epochs: int = 4
    """Passes over each iteration's learner moves."""
    minibatch_size: int = 256
    """Learner moves per gradient step."""
    norm_adv: bool = True
    """Normalise advantages within each minibatch. Off for rock-paper-scissors: near the
    equilibrium the true advantages vanish, and normalising would blow their noise up
    to unit scale and drown the entropy bonus that pulls towards the uniform Nash."""
    clip_coef: float = 0.2
    """Surrogate clipping epsilon."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus (of the masked distribution)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    hidden: tuple[int, ...] = (128, 128)
    """Hidden layer sizes of the actor and of the critic (separate networks)."""
    activation: Literal["tanh", "relu"] = "relu"
    """Hidden activation."""
    conv_channels: tuple[int, ...] = ()
    """Channels of 3x3 convolutions (same padding) over the board before the hidden
    layers, in the actor and the critic; () is an MLP on the flat observation. Needs a
    board observation (tic-tac-toe, connect four)."""
    pool_prob: float = 0.5
    """Share of games played against a frozen past snapshot (the rest: mirror self-play)."""
    snapshot_every: int = 5
    """Iterations between copies of the policy added to the opponent pool."""
    pool_size: int = 20
    """Most snapshots kept (oldest dropped first, except the initial random-like one)."""
    eval_every: int = 10
    """Iterations between the win-rate evaluations logged to metrics.csv (0: only at the end)."""
    eval_games: int = 100
    """Games per seat against the random player in each logged evaluation."""
    search_games: int = 10
    """Games per seat against the search player (minimax / alpha-beta) in each evaluation."""
    search_depth: int = 4
    """Look-ahead (plies) of the connect-four alpha-beta player (tic-tac-toe's is exact)."""
    eval_search_depths: tuple[int, ...] = ()
    """More connect-four alpha-beta depths to evaluate against, search_games per seat each
    (keys like win_vs_depth1_first); () for none."""
    search_opponent_frac: float = 0.0
    """Share of training games the learner (random seat) plays against the search player
    (minimax / alpha-beta at a depth drawn from search_opponent_depths); 0: off."""
    search_opponent_depths: tuple[int, ...] = (1, 2)
    """Connect-four alpha-beta depths of the training search opponent, drawn uniformly."""
    torch_threads: int = 1
    """CPU threads for torch."""

    #: Old config keys of this algorithm (accepted with a FutureWarning).
    RENAMED: ClassVar[dict[str, str]] = {"batch_size": "minibatch_size"}

    def validate(self) -> None:
        positive = ("total_steps", "num_envs", "num_steps", "update_epochs", "minibatch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"Config key '{name}' must be at least 1; set a positive value.")
        if not 0 <= self.pool_prob <= 1:
            raise ConfigError("pool_prob must be in [0, 1]; it is the share of games vs the pool.")
        if not 0 <= self.search_opponent_frac <= 1:
            raise ConfigError(
                "search_opponent_frac must be in [0, 1]; it is the share of games vs search."
            )
        if self.search_opponent_frac > 0 and self.env_id == "pettingzoo/rps_v2":
            raise ConfigError(
                "rps_v2 has no search player; set search_opponent_frac=0 for rock-paper-scissors."
            )
        depths = (*self.search_opponent_depths, *self.eval_search_depths, self.search_depth)
        if any(d < 1 for d in depths) or not self.search_opponent_depths:
            raise ConfigError(
                "Alpha-beta depths must be at least 1 and search_opponent_depths non-empty; "
                "fix search_depth, eval_search_depths or search_opponent_depths."
            )
        if self.snapshot_every < 1 or self.pool_size < 1:
            raise ConfigError("snapshot_every and pool_size must be at least 1; fix them.")
        if self.conv_channels and self.env_id == "pettingzoo/rps_v2":
            raise ConfigError("rps_v2 has no board; set conv_channels=[] for rock-paper-scissors.")
        if self.env_id not in games.GAME_ENVS:
            raise ConfigError(
                f"selfplay_ppo plays two-player games; set env_id to one of "
                f"{', '.join(games.GAME_ENVS)} (got '{self.env_id}')."
            )


def check_env(env: gym.Env) -> None:
    """Raise EnvError unless ``env`` is one of the two-player games of rlfoundry.envs.games."""
    if not isinstance(env.unwrapped, games.VsRandom):
        raise EnvError(
            "selfplay_ppo trains on two-player PettingZoo games; use --env "
            f"{' / '.join(games.GAME_ENVS)}."
        )
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise EnvError(f"selfplay_ppo needs Discrete actions, got {env.action_space}.")


def check(cfg: Config) -> None:
    """Raise EnvError unless ``cfg``'s env is one of the two-player games (:func:`check_env`)."""
    check_spaces(cfg, check_env)


# ---------------------------------------------------------------------------- train
def _save(
    run: Run,
    step: int,
    agent: MaskedAgent,
    opt: Any,
    pool: list[nn.Module],
    rng: Any,
    iteration: int,
) -> None:
    opt_t, opt_s = optimizer_state("optim", opt)
    tensors = {**module_state("agent", agent), **opt_t}
    for k, net in enumerate(pool):
        tensors.update(module_state(f"pool/{k}", net))
    state = {"optim": opt_s, "iteration": iteration, "pool": len(pool), "rng": generator_state(rng)}
    run.save_checkpoint(step, tensors, state)


def train(cfg: Config, run: Run) -> dict[str, Any]:
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    play = Selfplay(cfg, rng)
    agent = MaskedAgent(
        play.d_obs, play.n_act, cfg.hidden, cfg.activation, cfg.conv_channels, play.board
    )
    params = list(agent.parameters())
    opt = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5)

    def frozen_copy() -> nn.Module:
        # deepcopy, not a new mlp: building one would draw from torch's RNG (init),
        # and a resumed run rebuilds its pool at a different time than it grew.
        return copy.deepcopy(agent.actor).requires_grad_(False)

    pool = [frozen_copy()]  # the initial near-uniform policy: a random player
    iteration, step = 0, 0
    ckpt = run.load_checkpoint() if run.resume else None
    if ckpt is not None:
        step, tensors, state = ckpt
        load_module_state("agent", agent, tensors)
        load_optimizer_state("optim", opt, tensors, state["optim"])
        pool = [frozen_copy() for _ in range(state["pool"])]
        for k, net in enumerate(pool):
            load_module_state(f"pool/{k}", net, tensors)
        set_generator_state(rng, state["rng"])
        iteration = int(state["iteration"])

    t0, step0 = time.perf_counter(), step
    try:
        while step < cfg.total_steps:
            frac = 1.0 - step / cfg.total_steps  # the game length varies: anneal by moves
            lr = cfg.learning_rate * frac if cfg.anneal_lr else cfg.learning_rate
            opt.param_groups[0]["lr"] = lr
            trajs, moves, returns = play.collect(agent, pool)
            step += moves
            b = flatten(trajs, agent, cfg.gamma, cfg.gae_lambda)
            B = b["obs"].shape[0]
            stats: dict[str, list[torch.Tensor]] = {
                k: []
                for k in ("policy_loss", "value_loss", "approx_kl", "clip_fraction", "entropy")
            }
            for _ in range(cfg.update_epochs):
                perm = torch.randperm(B)
                for start in range(0, B, cfg.minibatch_size):
                    idx = perm[start : start + cfg.minibatch_size]
                    logits = agent.logits(b["obs"][idx], b["mask"][idx])
                    logp = torch.log_softmax(logits, -1).gather(-1, b["act"][idx, None]).squeeze(-1)
                    ent = entropy_from_logits(logits).mean()
                    pg_loss, info = clipped_surrogate(
                        logp,
                        b["logp"][idx],
                        normalize_advantages(b["adv"][idx]) if cfg.norm_adv else b["adv"][idx],
                        cfg.clip_coef,
                    )
                    v_loss = value_loss(agent.value(b["obs"][idx]), b["ret"][idx])
                    loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    clip_grad_norm(params, cfg.max_grad_norm)
                    opt.step()
                    for k, v in (
                        ("policy_loss", pg_loss),
                        ("value_loss", v_loss),
                        ("approx_kl", info["approx_kl"]),
                        ("clip_fraction", info["clip_fraction"]),
                        ("entropy", ent),
                    ):
                        stats[k].append(v.detach())
            iteration += 1
            if iteration % cfg.snapshot_every == 0:
                pool.append(frozen_copy())
                if len(pool) > cfg.pool_size:
                    del pool[1]  # keep the initial random-like player
            metrics = {k: torch.stack(v).mean() for k, v in stats.items()}
            metrics["explained_variance"] = explained_variance(b["val"], b["ret"])
            for k, v in returns.items():
                if v:
                    metrics[f"return_vs_{k}"] = float(np.mean(v))
            last = step >= cfg.total_steps
            if last or (cfg.eval_every and iteration % cfg.eval_every == 0):
                # A fixed seed per iteration and no draws from `rng`: evaluating does
                # not change the training run (exact resume holds with or without it).
                ev = evaluate_agent(
                    agent, cfg, play.n_act, cfg.eval_games, cfg.search_games, cfg.seed + iteration
                )
                metrics.update(ev)
                if "win_vs_random_first" in ev:
                    # greedy policy's mean game reward vs random over both seats (the plot's curve)
                    metrics["episode_return"] = np.mean(
                        [
                            ev[f"win_vs_random_{s}"] - ev[f"loss_vs_random_{s}"]
                            for s in ("first", "second")
                        ]
                    )
                else:
                    metrics["episode_return"] = -ev["exploitability"]
            run.log(step, **metrics, lr=lr, sps=(step - step0) / (time.perf_counter() - t0))
            run.progress(step, pool=len(pool))
            if last or run.checkpoint_due(step):
                _save(run, step, agent, opt, pool, rng, iteration)
            if run.should_stop(step):
                return {}
    finally:
        play.close()
    return {}


# ---------------------------------------------------------------------------- policy
def load_agent(path: str | Path, cfg: Config) -> tuple[MaskedAgent, int]:
    """The trained agent from ``path/checkpoint.safetensors`` and the number of actions."""
    found = load_checkpoint_file(Path(path) / CHECKPOINT)
    if found is None:
        raise RLFoundryError(f"'{path}' has no {CHECKPOINT}; train a run there first.")
    env = games.make_game(cfg.env_id, **cfg.env_kwargs)
    env.reset(seed=0)
    a = env.possible_agents[0]
    n_act = int(env.action_space(a).n)
    d_obs = games.split_obs(env.observe(a), n_act)[0].shape[0]
    board = board_shape(env.observe(a))
    env.close()
    agent = MaskedAgent(d_obs, n_act, cfg.hidden, cfg.activation, cfg.conv_channels, board)
    load_module_state("agent", agent, found[0])
    agent.eval()
    return agent, n_act


def load_policy(path: str | Path, cfg: Config) -> Any:
    """Greedy legal move for one observation of the player to move (for ``rlfoundry eval``)."""
    agent, n_act = load_agent(path, cfg)
    greedy = greedy_opponent(agent, n_act)
    return lambda obs: greedy(obs, None)


def extra_eval(path: str | Path, cfg: Config, policy: Any) -> dict[str, Any]:
    """Win/draw/loss vs random and vs search from both seats (eval_episodes / search_games
    games per seat), or rock-paper-scissors exploitability."""
    agent, n_act = load_agent(path, cfg)
    seed = eval_seed(cfg.seed)
    return evaluate_agent(agent, cfg, n_act, cfg.eval_episodes, cfg.search_games, seed)
