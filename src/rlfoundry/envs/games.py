"""Two-player PettingZoo games: the AEC loop, reference opponents and a Gymnasium view.

- :func:`make_game` builds ``pettingzoo/tictactoe_v3``, ``pettingzoo/connect_four_v3``
  or ``pettingzoo/rps_v2`` (the wrapped AEC env, which ends a game with -1 for an illegal
  move, so a masking bug shows up as losses rather than silently).
- Opponents are ``policy(obs_dict, rng) -> action`` functions on the acting player's
  observation: :func:`random_opponent`, :func:`tictactoe_minimax` (exact negamax) and
  :func:`connect_four_alphabeta` (depth-limited negamax with alpha-beta pruning).
- :func:`play` runs games between two such functions from either seat and counts
  wins, draws and losses; :func:`rps_exploitability` is the gain of a best response.
- :class:`VsRandom` is the game as a single-agent Gymnasium env against a uniformly
  random opponent (the learner's seat alternates by episode), registered under the same
  ids so that ``rlfoundry train/eval`` can build and check it like any other env.

Observations of the classic games are relative to the player to move: plane 0 holds
its own pieces, plane 1 the opponent's; tic-tac-toe's flattened 3x3 index is the action,
and connect four's rows run top (0) to bottom (5) with the column as action.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlfoundry.errors import EnvError

#: Game ids accepted by the self-play algorithm (and registered with Gymnasium).
GAME_ENVS: list[str] = [
    "pettingzoo/tictactoe_v3",
    "pettingzoo/connect_four_v3",
    "pettingzoo/rps_v2",
]

Opponent = Callable[[Any, np.random.Generator], int]


def make_game(env_id: str, **kwargs: Any) -> Any:
    """The PettingZoo AEC env for ``env_id`` (one of :data:`GAME_ENVS`)."""
    try:
        from pettingzoo.classic import connect_four_v3, rps_v2, tictactoe_v3
    except ImportError:
        raise EnvError(
            f"'{env_id}' needs PettingZoo; install it with `pip install 'rlfoundry[beyond]'`."
        ) from None
    makers = {
        "pettingzoo/tictactoe_v3": tictactoe_v3.env,
        "pettingzoo/connect_four_v3": connect_four_v3.env,
        "pettingzoo/rps_v2": rps_v2.env,
    }
    if env_id not in makers:
        raise EnvError(f"Unknown two-player game '{env_id}'; use one of {', '.join(GAME_ENVS)}.")
    try:
        return makers[env_id](**kwargs)
    except TypeError as err:
        raise EnvError(f"Game '{env_id}' rejected its keyword arguments: {err}") from None


def split_obs(obs: Any, n_actions: int) -> tuple[np.ndarray, np.ndarray]:
    """``(features float32 [D], legal-action mask bool [A])`` from a game observation.

    Classic board games give ``{"observation", "action_mask"}``; rock-paper-scissors gives
    the opponent's previous move as an int (one-hot here; every action is legal).
    """
    if isinstance(obs, dict):
        return (
            np.asarray(obs["observation"], dtype=np.float32).reshape(-1),
            np.asarray(obs["action_mask"], dtype=bool),
        )
    return np.eye(n_actions + 1, dtype=np.float32)[int(obs)], np.ones(n_actions, dtype=bool)


# ---------------------------------------------------------------------------- opponents
def random_opponent(obs: Any, rng: np.random.Generator) -> int:
    """A uniformly random legal move."""
    if isinstance(obs, dict):
        return int(rng.choice(np.flatnonzero(obs["action_mask"])))
    return int(rng.integers(3))


_TTT_LINES = (
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
)


def _ttt_winner(board: tuple[int, ...]) -> int:
    for a, b, c in _TTT_LINES:
        if board[a] != 0 and board[a] == board[b] == board[c]:
            return board[a]
    return 0


@functools.cache
def ttt_values(board: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """Exact negamax of tic-tac-toe for the player to move, who owns the 1s (the other
    player owns the 2s): ``(value, optimal moves)`` with value +1 win, 0 draw, -1 loss
    under optimal play by both. Memoised over the 5,478 reachable positions."""
    free = [i for i in range(9) if board[i] == 0]
    best, moves = -2, []
    for i in free:
        child = list(board)
        child[i] = 1
        if _ttt_winner(tuple(child)) == 1:
            v = 1
        elif len(free) == 1:
            v = 0
        else:
            # swap roles: the opponent moves next and owns the 1s
            v = -ttt_values(tuple({0: 0, 1: 2, 2: 1}[x] for x in child))[0]
        if v > best:
            best, moves = v, [i]
        elif v == best:
            moves.append(i)
    return best, tuple(moves)


def ttt_board(obs: dict[str, np.ndarray]) -> tuple[int, ...]:
    """Tic-tac-toe observation -> board tuple, 1 = player to move, 2 = opponent."""
    planes = np.asarray(obs["observation"]).reshape(9, 2)
    return tuple(int(1 * p[0] + 2 * p[1]) for p in planes)


def tictactoe_minimax(obs: Any, rng: np.random.Generator) -> int:
    """A perfect tic-tac-toe player: a uniformly random one of the optimal moves."""
    return int(rng.choice(ttt_values(ttt_board(obs))[1]))


ROWS, COLS = 6, 7


def _c4_windows() -> np.ndarray:
    """The 69 lines of four cells on a 6x7 board, as flat indices ``[69, 4]``."""
    out = []
    for r in range(ROWS):
        for c in range(COLS):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + k * dr, c + k * dc) for k in range(4)]
                if all(0 <= rr < ROWS and 0 <= cc < COLS for rr, cc in cells):
                    out.append([rr * COLS + cc for rr, cc in cells])
    return np.asarray(out)


C4_WINDOWS = _c4_windows()
_C4_CELL_WINDOWS = [C4_WINDOWS[(i == C4_WINDOWS).any(1)] for i in range(ROWS * COLS)]
_C4_ORDER = (3, 2, 4, 1, 5, 0, 6)  # centre first: better alpha-beta cut-offs


def c4_heuristic(board: np.ndarray) -> float:
    """Static value of a connect-four board for the player owning the 1s (the other
    player owns -1s): open threes and twos of each side, and centre-column pieces."""
    w = board[C4_WINDOWS]  # [69, 4]
    mine, theirs = (w == 1).sum(1), (w == -1).sum(1)
    score = 5.0 * np.sum((mine == 3) & (theirs == 0)) + 2.0 * np.sum((mine == 2) & (theirs == 0))
    score -= 4.0 * np.sum((theirs == 3) & (mine == 0)) + 2.0 * np.sum((theirs == 2) & (mine == 0))
    return score + 3.0 * float(np.sum(board[3::COLS] == 1) - np.sum(board[3::COLS] == -1))


def _c4_drop(board: np.ndarray, col: int) -> int:
    """Flat index of the lowest empty cell of ``col``, or -1 if the column is full."""
    for r in range(ROWS - 1, -1, -1):
        if board[r * COLS + col] == 0:
            return r * COLS + col
    return -1


def _c4_wins(board: np.ndarray, cell: int) -> bool:
    return bool((board[_C4_CELL_WINDOWS[cell]].sum(1) == 4 * board[cell]).any())


def c4_negamax(
    board: np.ndarray,
    depth: int,
    alpha: float,
    beta: float,
    order: tuple[int, ...] = _C4_ORDER,
) -> tuple[float, int]:
    """Negamax with alpha-beta pruning for the player owning the 1s: ``(value, move)``.

    A win is worth 1e6 plus the remaining depth (a faster win is better); at depth 0 the
    value is :func:`c4_heuristic`. ``board`` is flat ``[42]`` and is restored on return.
    ``order`` is the order of the columns tried at this node (deeper nodes try the centre
    first); of equally good moves the first one tried is returned.
    """
    moves = [c for c in order if board[c] == 0]  # row 0 empty: column not full
    if not moves:
        return 0.0, -1
    if depth == 0:
        return c4_heuristic(board), moves[0]
    best, best_move = -np.inf, moves[0]
    for col in moves:
        cell = _c4_drop(board, col)
        board[cell] = 1
        if _c4_wins(board, cell):
            value = 1e6 + depth
        else:
            board *= -1  # the opponent now owns the 1s
            value = -c4_negamax(board, depth - 1, -beta, -alpha)[0]
            board *= -1
        board[cell] = 0
        if value > best:
            best, best_move = value, col
        alpha = max(alpha, value)
        if alpha >= beta:
            break
    return best, best_move


def c4_board(obs: dict[str, np.ndarray]) -> np.ndarray:
    """Connect-four observation -> flat ``[42]`` int board, 1 = player to move, -1 = opponent."""
    planes = np.asarray(obs["observation"], dtype=np.int64)
    return (planes[:, :, 0] - planes[:, :, 1]).reshape(-1)


def connect_four_alphabeta(depth: int = 4) -> Opponent:
    """A depth-limited alpha-beta connect-four player: a uniformly random one of its
    best moves (like :func:`tictactoe_minimax`).

    The root's columns are tried in a random order and the first best one is kept:
    alpha-beta only proves that later moves are no better, so the first of the tied
    moves in a uniformly random order is a uniform draw among them. Without this the
    player is deterministic, and so is every game against a greedy policy: N evaluation
    games would be one game repeated N times.
    """

    def policy(obs: Any, rng: np.random.Generator) -> int:
        order = tuple(int(c) for c in rng.permutation(COLS))
        return int(c4_negamax(c4_board(obs), depth, -np.inf, np.inf, order)[1])

    return policy


def search_opponent(env_id: str, depth: int = 4) -> Opponent | None:
    """The search-based reference player of a game (None for rock-paper-scissors)."""
    if env_id == "pettingzoo/tictactoe_v3":
        return tictactoe_minimax
    if env_id == "pettingzoo/connect_four_v3":
        return connect_four_alphabeta(depth)
    return None


# ---------------------------------------------------------------------------- matches
def play(
    env_id: str,
    player: Opponent,
    opponent: Opponent,
    games: int,
    seat: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Play ``games`` games with ``player`` in ``seat`` (0: moves first) against
    ``opponent``; return the player's win, draw and loss rates and illegal-move count.

    The wrapped env ends a game with -1 for the mover on an illegal move; those are
    counted separately (``illegal``) as well as lost.
    """
    env = make_game(env_id, **(env_kwargs or {}))
    rng = np.random.default_rng(seed)
    wins = draws = losses = illegal = 0
    for g in range(games):
        env.reset(seed=seed + g)
        me = env.possible_agents[seat]
        total = {a: 0.0 for a in env.possible_agents}
        for agent in env.agent_iter():
            obs, rew, term, trunc, _ = env.last()
            total[agent] += rew
            if term or trunc:
                env.step(None)
                continue
            act = (player if agent == me else opponent)(obs, rng)
            if isinstance(obs, dict) and not obs["action_mask"][act] and agent == me:
                illegal += 1
            env.step(act)
        mine = total[me]
        wins += mine > 0
        draws += mine == 0
        losses += mine < 0
    env.close()
    n = max(games, 1)
    return {"win": wins / n, "draw": draws / n, "loss": losses / n, "illegal": illegal}


def rps_exploitability(probs: np.ndarray) -> float:
    """Expected gain of a best response against a mixed strategy ``probs`` over
    (rock, paper, scissors): ``max_b sum_a probs[a] * u(b, a)``, u = +1 win, -1 loss.

    0 exactly at the uniform Nash equilibrium, 1 against a pure strategy.
    """
    p = np.asarray(probs, dtype=np.float64)
    # row b = response; paper (1) beats rock (0), scissors (2) beats paper, rock beats scissors
    payoff = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=np.float64)
    return float(np.max(payoff @ p))


# ---------------------------------------------------------------------------- gym view
class VsRandom(gym.Env):
    """A two-player game as a single-agent env: the agent plays one seat (alternating by
    episode: seat 0 on even resets) against a uniformly random opponent.

    Observations are the game's own (``{"observation", "action_mask"}`` for the board
    games, the opponent's last move for rock-paper-scissors); the reward is the agent's
    game reward (+1 win, 0 draw, -1 loss), paid when the game ends.
    """

    metadata = {"render_modes": []}

    def __init__(self, game: str, **kwargs: Any) -> None:
        self.game_id = game
        self.game = make_game(game, **kwargs)
        self.game.reset(seed=0)
        agent = self.game.possible_agents[0]
        self.observation_space = self.game.observation_space(agent)
        self.action_space = self.game.action_space(agent)
        self._episode = -1
        self._rng = np.random.default_rng(0)

    def _advance(self) -> tuple[Any, float, bool]:
        """Let the opponent move until it is the agent's turn or the game is over."""
        reward = 0.0
        while self.game.agents:
            agent = self.game.agent_selection
            obs, rew, term, trunc, _ = self.game.last()
            if agent == self.me:
                reward += rew
                if term or trunc:
                    self.game.step(None)
                    continue
                return obs, reward, False
            if term or trunc:
                self.game.step(None)
            else:
                self.game.step(random_opponent(obs, self._rng))
        return self._last_obs, reward, True

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._episode = -1
        self._episode += 1
        self.game.reset(seed=int(self._rng.integers(2**31)))
        self.me = self.game.possible_agents[self._episode % 2]
        self._last_obs = self.game.observe(self.me)
        obs, _, _ = self._advance()
        self._last_obs = obs
        return obs, {"seat": self._episode % 2}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self.game.step(int(action))
        obs, reward, done = self._advance()
        self._last_obs = obs
        return obs, reward, done, False, {}

    def close(self) -> None:
        self.game.close()


def register() -> None:
    """Register each game id with Gymnasium as :class:`VsRandom` (idempotent)."""
    for env_id in GAME_ENVS:
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="rlfoundry.envs.games:VsRandom",
                kwargs={"game": env_id},
                disable_env_checker=True,
            )
