"""The game side of self-play PPO (:mod:`rlfoundry.algos.multiagent.selfplay_ppo`): the
masked actor-critic, the games between the learner, its past selves and the search
player, the per-player trajectories with their GAE, and the evaluation against fixed
opponents.

Illegal moves are removed by masking the logits (set to -inf before the softmax; Huang &
Ontanon 2020, "A Closer Look at Invalid Action Masking in Policy Gradient Algorithms"),
so they get probability 0 both when sampling and in the log-probabilities of the PPO
ratio. Evaluation is against fixed opponents from :mod:`rlfoundry.envs.games`: a
uniformly random player, an exact minimax (tic-tac-toe) or depth-limited alpha-beta
(connect four), from both seats; for rock-paper-scissors, the first-move action
distribution and its exploitability (0 at the uniform Nash equilibrium).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rlfoundry.algos.nets import layer_init, mlp
from rlfoundry.core import gae
from rlfoundry.envs import games


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
    """Plays games of one PettingZoo AEC env between the learner and its opponents
    (``cfg``: a :class:`rlfoundry.algos.multiagent.selfplay_ppo.Config`)."""

    def __init__(self, cfg: Any, rng: np.random.Generator) -> None:
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
    agent: MaskedAgent, cfg: Any, n_act: int, random_games: int, search_games: int, seed: int
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
