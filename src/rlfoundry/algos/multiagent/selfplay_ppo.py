"""Self-play PPO with action masking on two-player PettingZoo games (AEC API).

One shared policy plays both seats. The policy only ever sees the observation of the
player to move (the classic games encode it relative to that player), so the same
network is the first and the second player. Illegal moves are removed by masking the
logits (set to -inf before the softmax; Huang & Ontanon 2020, "A Closer Look at Invalid
Action Masking in Policy Gradient Algorithms"), so they get probability 0 both when
sampling and in the log-probabilities of the PPO ratio.

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

Evaluation is against fixed opponents from :mod:`rlfoundry.envs.games`: a uniformly
random player, an exact minimax (tic-tac-toe) or depth-limited alpha-beta (connect
four), from both seats; for rock-paper-scissors, the first-move action distribution and
its exploitability (0 at the uniform Nash equilibrium).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlfoundry.algos.deep.ppo import clip_grad_norm, explained_variance
from rlfoundry.algos.nets import layer_init, mlp
from rlfoundry.core import (
    clipped_surrogate,
    entropy_from_logits,
    gae,
    normalize_advantages,
    value_loss,
)
from rlfoundry.envs import games
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
    batch_size: int = 256
    """Minibatch size."""
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

    def validate(self) -> None:
        positive = ("total_steps", "num_envs", "num_steps", "update_epochs", "batch_size")
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


# ---------------------------------------------------------------------------- agent
class BoardConv(nn.Module):
    """3x3 convolutions over a ``[H, W, C]`` board that arrives flat ``[B, H*W*C]``, then
    an MLP. Weight sharing across the board lets a pattern learnt in one place (an open
    three) be recognised in every other."""

    def __init__(
        self,
        board: tuple[int, ...],
        channels: tuple[int, ...],
        out_dim: int,
        hidden: tuple[int, ...],
        act_fn: type[nn.Module],
        out_gain: float,
    ) -> None:
        super().__init__()
        self.board = tuple(board)
        layers: list[nn.Module] = []
        last = self.board[2]
        for ch in channels:
            layers += [layer_init(nn.Conv2d(last, int(ch), 3, padding=1)), act_fn()]
            last = int(ch)
        self.conv = nn.Sequential(*layers)
        self.head = mlp(last * self.board[0] * self.board[1], out_dim, hidden, act_fn, out_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, *self.board).permute(0, 3, 1, 2)  # [B, C, H, W]
        return self.head(self.conv(x).flatten(1))


class MaskedAgent(nn.Module):
    """Actor and critic networks (MLPs, or :class:`BoardConv` when ``conv_channels`` is
    set); the actor's logits of illegal actions are set to -inf."""

    def __init__(
        self,
        d_obs: int,
        n_act: int,
        hidden: tuple[int, ...],
        activation: str,
        conv_channels: tuple[int, ...] = (),
        board: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        act_fn = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        if conv_channels:
            assert board is not None and len(board) == 3, "conv needs an [H, W, C] board"
            self.actor = BoardConv(board, conv_channels, n_act, hidden, act_fn, 0.01)
            self.critic = BoardConv(board, conv_channels, 1, hidden, act_fn, 1.0)
        else:
            self.actor = mlp(d_obs, n_act, hidden, act_fn, out_gain=0.01)
            self.critic = mlp(d_obs, 1, hidden, act_fn, out_gain=1.0)

    def logits(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked logits ``[B, A]``: -inf where ``mask`` is False."""
        return masked_logits(self.actor(obs), mask)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)  # [B]


def board_shape(obs: Any) -> tuple[int, ...] | None:
    """``[H, W, C]`` of a board game's observation, None for rock-paper-scissors."""
    return tuple(np.shape(obs["observation"])) if isinstance(obs, dict) else None


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logits`` with -inf at illegal actions: softmax gives them exactly 0 probability,
    and no gradient flows to them. Every row needs at least one legal action."""
    return logits.masked_fill(~mask, float("-inf"))


def sample_masked(logits: torch.Tensor) -> torch.Tensor:
    """One action per row of masked logits ``[B, A]`` -> ``[B]`` (never an illegal one)."""
    return torch.multinomial(torch.softmax(logits, -1), 1).squeeze(-1)


# ---------------------------------------------------------------------------- rollout
@dataclass
class Trajectory:
    """One player's moves in one game, by the learner."""

    obs: list[np.ndarray] = field(default_factory=list)
    mask: list[np.ndarray] = field(default_factory=list)
    act: list[int] = field(default_factory=list)
    rew: list[float] = field(default_factory=list)
    terminated: bool = False
    final_obs: np.ndarray | None = None  # set when the game was truncated


LEARNER = -1
"""Controller code of the learner; codes >= 0 index the pool, codes <= -2 the search
players (-2 - k plays at ``search_opponent_depths[k]``)."""


class Selfplay:
    """Plays games of one PettingZoo AEC env between the learner and its opponents."""

    def __init__(self, cfg: Config, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.rng = rng
        self.search = [games.search_opponent(cfg.env_id, d) for d in cfg.search_opponent_depths]
        self.envs = [games.make_game(cfg.env_id, **cfg.env_kwargs) for _ in range(cfg.num_envs)]
        env = self.envs[0]
        env.reset(seed=cfg.seed)
        agent = env.possible_agents[0]
        self.n_act = int(env.action_space(agent).n)
        self.d_obs = games.split_obs(env.observe(agent), self.n_act)[0].shape[0]
        self.board = board_shape(env.observe(agent))

    def _new_game(self, i: int, pool_len: int) -> None:
        env = self.envs[i]
        env.reset(seed=int(self.rng.integers(2**31)))
        seat, opp = 0, LEARNER
        # No draw when search_opponent_frac is 0: default runs keep their random stream.
        if self.cfg.search_opponent_frac > 0 and self.rng.random() < self.cfg.search_opponent_frac:
            seat = int(self.rng.integers(2))
            opp = -2 - int(self.rng.integers(len(self.search)))
        elif pool_len and self.rng.random() < self.cfg.pool_prob:
            seat = int(self.rng.integers(2))
            opp = int(self.rng.integers(pool_len))
        self.controller[i] = {
            a: (LEARNER if k == seat else opp) for k, a in enumerate(env.possible_agents)
        }
        self.traj[i] = {a: Trajectory() for a, c in self.controller[i].items() if c == LEARNER}

    def collect(
        self, agent: MaskedAgent, pool: list[nn.Module]
    ) -> tuple[list[Trajectory], int, dict[str, list[float]]]:
        """Play until ``num_steps`` learner moves are collected and every game has ended.

        Returns the learner's trajectories (in order of completion), the number of moves
        made (both seats) and the learner's returns in games against the pool and
        against the search player (keys "pool", "search").
        """
        N = len(self.envs)
        self.controller: list[dict[str, int]] = [{} for _ in range(N)]
        self.traj: list[dict[str, Trajectory]] = [{} for _ in range(N)]
        done_traj: list[Trajectory] = []
        returns: dict[str, list[float]] = {"pool": [], "search": []}
        learner_moves = moves = 0
        active = [True] * N
        for i in range(N):
            self._new_game(i, len(pool))
        while any(active):
            # Advance each game to a player who must move, closing finished games.
            want: dict[int, list[tuple[int, str, Any, np.ndarray, np.ndarray]]] = {}
            for i in range(N):
                while active[i]:
                    env = self.envs[i]
                    if not env.agents:  # game over: every player has been told
                        for tr in self.traj[i].values():
                            if tr.act:
                                done_traj.append(tr)
                            if len(self.traj[i]) == 1:
                                vs_search = min(self.controller[i].values()) <= -2
                                returns["search" if vs_search else "pool"].append(sum(tr.rew))
                        if learner_moves >= self.cfg.num_steps:
                            active[i] = False
                        else:
                            self._new_game(i, len(pool))
                        continue
                    name = env.agent_selection
                    obs, rew, term, trunc, _ = env.last()
                    tr = self.traj[i].get(name)
                    if tr is not None and tr.act:
                        tr.rew[-1] += float(rew)  # what it got since its last move
                    if term or trunc:
                        if tr is not None:
                            tr.terminated = bool(term)
                            if trunc and not term:
                                tr.final_obs = games.split_obs(obs, self.n_act)[0]
                        env.step(None)
                        continue
                    x, m = games.split_obs(obs, self.n_act)
                    want.setdefault(self.controller[i][name], []).append((i, name, obs, x, m))
                    break
            # One batched forward per controller (learner or one snapshot).
            for ctrl, items in want.items():
                if ctrl <= -2:  # the search player, one position at a time
                    act = [self.search[-2 - ctrl](it[2], self.rng) for it in items]
                else:
                    x = torch.from_numpy(np.stack([it[3] for it in items]))
                    m = torch.from_numpy(np.stack([it[4] for it in items]))
                    with torch.inference_mode():
                        net = agent.actor if ctrl == LEARNER else pool[ctrl]
                        act = sample_masked(masked_logits(net(x), m)).tolist()
                for (i, name, _, xi, mi), a in zip(items, act):
                    if ctrl == LEARNER:
                        tr = self.traj[i][name]
                        tr.obs.append(xi)
                        tr.mask.append(mi)
                        tr.act.append(a)
                        tr.rew.append(0.0)
                        learner_moves += 1
                    self.envs[i].step(a)
                    moves += 1
        return done_traj, moves, returns

    def close(self) -> None:
        for env in self.envs:
            env.close()


def flatten(
    trajs: list[Trajectory], agent: MaskedAgent, gamma: float, lam: float
) -> dict[str, torch.Tensor]:
    """Concatenate trajectories into ``[B]`` tensors with per-trajectory GAE.

    The boundary flags stop GAE's recursion between trajectories; a truncated game
    (max_cycles) bootstraps from V of the player's final observation.
    """
    obs = torch.from_numpy(np.stack([o for t in trajs for o in t.obs]))
    mask = torch.from_numpy(np.stack([m for t in trajs for m in t.mask]))
    act = torch.tensor([a for t in trajs for a in t.act])
    rew = torch.tensor([r for t in trajs for r in t.rew], dtype=torch.float32)
    B = obs.shape[0]
    term = torch.zeros(B, dtype=torch.bool)
    trunc = torch.zeros(B, dtype=torch.bool)
    ends = np.cumsum([len(t.act) for t in trajs]) - 1
    with torch.no_grad():
        logits = agent.logits(obs, mask)
        logp = torch.log_softmax(logits, -1).gather(-1, act[:, None]).squeeze(-1)
        val = agent.value(obs)
        next_val = torch.cat([val[1:], torch.zeros(1)])
        for t, end in zip(trajs, ends):
            if t.terminated or t.final_obs is None:
                term[end] = True  # an unfinished trajectory cannot happen: games end
            else:
                trunc[end] = True
                next_val[end] = agent.value(torch.from_numpy(t.final_obs)[None])[0]
    adv, ret = gae(rew, val, next_val, term, trunc, gamma, lam)
    return {"obs": obs, "mask": mask, "act": act, "logp": logp, "val": val, "adv": adv, "ret": ret}


# ---------------------------------------------------------------------------- evaluation
def greedy_opponent(agent: MaskedAgent, n_act: int) -> games.Opponent:
    """The policy's most likely legal move, as a :mod:`rlfoundry.envs.games` opponent."""

    def policy(obs: Any, rng: np.random.Generator) -> int:
        x, m = games.split_obs(obs, n_act)
        with torch.inference_mode():
            return int(agent.logits(torch.from_numpy(x)[None], torch.from_numpy(m)[None]).argmax())

    return policy


def evaluate_agent(
    agent: MaskedAgent, cfg: Config, n_act: int, random_games: int, search_games: int, seed: int
) -> dict[str, float]:
    """Win/draw/loss rates of the greedy policy vs random and vs search, from both seats;
    for rock-paper-scissors the first-move distribution and its exploitability."""
    out: dict[str, float] = {}
    if cfg.env_id == "pettingzoo/rps_v2":
        x, m = games.split_obs(3, n_act)  # 3: "no move yet", the first round's observation
        with torch.inference_mode():
            probs = torch.softmax(
                agent.logits(torch.from_numpy(x)[None], torch.from_numpy(m)[None]), -1
            )[0]
        p = probs.numpy().astype(np.float64)
        out.update(p_rock=p[0], p_paper=p[1], p_scissors=p[2])
        out["exploitability"] = games.rps_exploitability(p)
        return out
    me = greedy_opponent(agent, n_act)
    search = games.search_opponent(cfg.env_id, cfg.search_depth)
    vs = [("random", games.random_opponent, random_games)]
    if search is not None and search_games > 0:
        vs.append(("search", search, search_games))
        if cfg.env_id == "pettingzoo/connect_four_v3":
            for d in cfg.eval_search_depths:
                vs.append((f"depth{d}", games.connect_four_alphabeta(d), search_games))
    for name, opp, n in vs:
        for seat, where in ((0, "first"), (1, "second")):
            r = games.play(cfg.env_id, me, opp, n, seat, seed, cfg.env_kwargs)
            for k in ("win", "draw", "loss"):
                out[f"{k}_vs_{name}_{where}"] = r[k]
            out["illegal_moves"] = out.get("illegal_moves", 0) + r["illegal"]
    return out


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


def train(cfg: Config, run: Run) -> None:
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
                for start in range(0, B, cfg.batch_size):
                    idx = perm[start : start + cfg.batch_size]
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
                return
    finally:
        play.close()


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
    return evaluate_agent(agent, cfg, n_act, cfg.eval_episodes, cfg.search_games, cfg.seed + 10_000)
