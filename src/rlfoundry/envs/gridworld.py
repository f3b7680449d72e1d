"""Seed 001's simplified grid environment: walls, a goal, pits, a step cost and optional slip.

Conventions
-----------
- Observation: the cell index ``s = row * ncol + col`` (``Discrete(nrow * ncol)``; wall
  cells are states too but are never reached).
- Actions (``Discrete(4)``), clockwise as in CliffWalking: 0 up, 1 right, 2 down, 3 left.
  (FrozenLake numbers them 0 left, 1 down, 2 right, 3 up.)
- Layout: a list of equal-length strings, ``S`` start, ``G`` goal, ``#`` wall, ``P`` pit,
  ``.`` free. Moving into a wall or off the grid leaves the agent where it is.
- Reward for the step that enters a cell: ``goal_reward`` (+1) for G, ``pit_reward`` (-1)
  for P, both ending the episode; ``step_reward`` (-0.04) otherwise. These are Russell &
  Norvig's 4x3 world numbers (AIMA, ch. 17): the cost makes the shortest safe path the
  unique optimum, and two extra steps cost 0.08, so rival paths are well separated.
- Slip: with probability ``slip`` the agent moves perpendicular to the chosen direction,
  ``slip / 2`` to each side (AIMA's 0.8 / 0.1 / 0.1 at ``slip=0.2``).

The dynamics are the table ``P[s][a] = [(prob, next_s, reward, terminated), ...]`` of
Gymnasium's toy-text envs, and :meth:`GridWorld.step` samples from it, so the exact solvers in
:mod:`rlfoundry.mdp` see the same MDP the agent plays. G and P cells, once entered, are
absorbing and terminal, as FrozenLake's goal and holes are.

The default layout has a short bridge from S to G between two rows of pits and a longer
corridor round the top: deterministic, the bridge is optimal (6 steps, return 0.80); with
``slip=0.2`` each bridge cell risks a pit, so the corridor wins.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
ACTION_NAMES = ("Up", "Right", "Down", "Left")
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # (d_row, d_col) per action
ARROWS = "↑→↓←"
CELLS = "SG#P."

DEFAULT_LAYOUT: tuple[str, ...] = (
    ".......",
    ".#####.",
    ".#PPP#.",
    "S.....G",
    ".#PPP#.",
    ".#...#.",
    "...#...",
)

# rgb_array colours per cell character, and the agent's.
COLOURS = {
    ".": (235, 235, 235),
    "S": (190, 215, 245),
    "G": (80, 190, 90),
    "#": (70, 70, 80),
    "P": (150, 30, 30),
}
AGENT_COLOUR = (40, 90, 220)
GRID_LINE_COLOUR = (160, 160, 160)
CELL_PX = 32


def parse_layout(layout: Sequence[str]) -> np.ndarray:
    """Validate ``layout`` and return it as a ``[nrow, ncol]`` array of single characters.

    Raises ``ValueError`` naming the problem and the fix: no rows, ragged rows, unknown
    characters, not exactly one ``S``, no ``G``, or no path from S to a G.
    """
    if isinstance(layout, str) or not isinstance(layout, Sequence):
        raise ValueError(
            f"layout must be a list of strings (one per row), got {type(layout).__name__}; "
            'write it as e.g. ["S.#", "..G"].'
        )
    rows = list(layout)
    if not rows or not all(isinstance(r, str) for r in rows) or not rows[0]:
        raise ValueError('layout must be a non-empty list of non-empty strings, e.g. ["S.G"].')
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        lens = [len(r) for r in rows]
        raise ValueError(
            f"layout rows have different lengths {lens}; pad every row to the same width "
            "with '.' (free) or '#' (wall)."
        )
    grid = np.array([list(r) for r in rows])
    unknown = sorted(set(grid.ravel()) - set(CELLS))
    if unknown:
        raise ValueError(
            f"layout contains unknown character(s) {unknown}; use only S (start), G (goal), "
            "# (wall), P (pit) and . (free)."
        )
    n_start = int((grid == "S").sum())
    if n_start != 1:
        raise ValueError(
            f"layout must contain exactly one start 'S', found {n_start}; mark one cell S."
        )
    if not (grid == "G").any():
        raise ValueError("layout has no goal 'G'; mark at least one cell G.")
    if not _goal_reachable(grid):
        raise ValueError(
            "layout has no path from S to any G that avoids walls and pits; open a gap in them."
        )
    return grid


def _goal_reachable(grid: np.ndarray) -> bool:
    """Breadth-first search from S through free cells; True when a G is entered."""
    nrow, ncol = grid.shape
    start = tuple(int(x) for x in np.argwhere(grid == "S")[0])
    seen, frontier = {start}, [start]
    while frontier:
        nxt = []
        for r, c in frontier:
            for dr, dc in MOVES:
                cell = (r + dr, c + dc)
                if not (0 <= cell[0] < nrow and 0 <= cell[1] < ncol) or cell in seen:
                    continue
                ch = grid[cell]
                if ch == "G":
                    return True
                if ch in ".S":
                    seen.add(cell)
                    nxt.append(cell)
        frontier = nxt
    return False


def transition_table(
    grid: np.ndarray,
    slip: float,
    step_reward: float,
    goal_reward: float,
    pit_reward: float,
) -> dict[int, dict[int, list[tuple[float, int, float, bool]]]]:
    """``P[s][a] = [(prob, next_s, reward, terminated), ...]`` for a parsed grid.

    Intended move w.p. ``1 - slip``, each perpendicular move w.p. ``slip / 2``; outcomes that
    land in the same cell are merged, zero-probability ones dropped. Walls, goals and pits
    are absorbing terminal states ``[(1.0, s, 0.0, True)]``.
    """
    nrow, ncol = grid.shape
    P: dict[int, dict[int, list[tuple[float, int, float, bool]]]] = {}
    for r in range(nrow):
        for c in range(ncol):
            s = r * ncol + c
            if grid[r, c] in "#GP":
                P[s] = {a: [(1.0, s, 0.0, True)] for a in range(4)}
                continue
            P[s] = {}
            for a in range(4):
                merged: dict[int, list] = {}
                # Clockwise action order makes a +- 1 the two perpendicular directions.
                for move, prob in (
                    (a, 1.0 - slip),
                    ((a + 1) % 4, slip / 2),
                    ((a - 1) % 4, slip / 2),
                ):
                    if prob <= 0.0:
                        continue
                    r2, c2 = r + MOVES[move][0], c + MOVES[move][1]
                    if not (0 <= r2 < nrow and 0 <= c2 < ncol) or grid[r2, c2] == "#":
                        r2, c2 = r, c
                    s2 = r2 * ncol + c2
                    ch = grid[r2, c2]
                    rew = goal_reward if ch == "G" else pit_reward if ch == "P" else step_reward
                    if s2 in merged:
                        merged[s2][0] += prob
                    else:
                        merged[s2] = [prob, s2, float(rew), bool(ch in "GP")]
                P[s][a] = [tuple(o) for o in merged.values()]
    return P


class GridWorld(gym.Env):
    """Tabular grid with walls, goal, pits, a per-step reward and optional slip.

    See the module docstring for the state, action and reward conventions.

    Args:
        layout: rows of ``S G # P .``; ``None`` uses :data:`DEFAULT_LAYOUT` (7x7).
        slip: probability of moving perpendicular to the chosen direction (0 = deterministic).
        step_reward: reward of a step that enters a free cell (or bumps into a wall).
        goal_reward: reward of the step that enters a goal (ends the episode).
        pit_reward: reward of the step that enters a pit (ends the episode).
        render_mode: ``"ansi"`` (text) or ``"rgb_array"`` (uint8 image), or None.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        layout: Sequence[str] | None = None,
        slip: float = 0.0,
        step_reward: float = -0.04,
        goal_reward: float = 1.0,
        pit_reward: float = -1.0,
        render_mode: str | None = None,
    ):
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip is a probability and must lie in [0, 1], got {slip}.")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode {render_mode!r} is not supported; use 'ansi', 'rgb_array' or None."
            )
        self.grid = parse_layout(DEFAULT_LAYOUT if layout is None else layout)  # [nrow, ncol]
        self.layout = ["".join(row) for row in self.grid]
        self.nrow, self.ncol = self.grid.shape
        self.slip = float(slip)
        self.step_reward, self.goal_reward, self.pit_reward = step_reward, goal_reward, pit_reward
        self.render_mode = render_mode

        nS = self.nrow * self.ncol
        self.observation_space = spaces.Discrete(nS)
        self.action_space = spaces.Discrete(4)
        self.P = transition_table(self.grid, self.slip, step_reward, goal_reward, pit_reward)
        self.initial_state_distrib = (self.grid == "S").ravel().astype(np.float64)  # [S]
        self.s = int(np.argmax(self.initial_state_distrib))
        self.lastaction: int | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.s = int(
            self.np_random.choice(len(self.initial_state_distrib), p=self.initial_state_distrib)
        )
        self.lastaction = None
        return self.s, {"prob": 1.0}

    def step(self, action):
        outcomes = self.P[self.s][int(action)]
        i = self.np_random.choice(len(outcomes), p=[o[0] for o in outcomes])
        prob, s2, rew, terminated = outcomes[i]
        self.s, self.lastaction = s2, int(action)
        # truncated is always False: the time limit is the TimeLimit wrapper's job.
        return s2, rew, terminated, False, {"prob": prob}

    # ------------------------------------------------------------------ rendering

    def render(self):
        if self.render_mode == "ansi":
            return self._render_text()
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        gym.logger.warn(
            "GridWorld.render() needs render_mode='ansi' or 'rgb_array' at construction."
        )
        return None

    def _render_text(self) -> str:
        chars = self.grid.copy()
        chars[divmod(self.s, self.ncol)] = "A"
        head = f"  ({ACTION_NAMES[self.lastaction]})\n" if self.lastaction is not None else ""
        return head + "\n".join("".join(row) for row in chars) + "\n"

    def _render_rgb(self) -> np.ndarray:
        """``[nrow * 32, ncol * 32, 3]`` uint8: coloured cells, grid lines, the agent as a disc."""
        img = np.zeros((self.nrow, self.ncol, 3), dtype=np.uint8)
        for ch, rgb in COLOURS.items():
            img[self.grid == ch] = rgb
        img = img.repeat(CELL_PX, axis=0).repeat(CELL_PX, axis=1)
        img[::CELL_PX, :] = GRID_LINE_COLOUR
        img[:, ::CELL_PX] = GRID_LINE_COLOUR
        img[-1, :] = GRID_LINE_COLOUR
        img[:, -1] = GRID_LINE_COLOUR
        r, c = divmod(self.s, self.ncol)
        yy, xx = np.mgrid[:CELL_PX, :CELL_PX]
        centre = (CELL_PX - 1) / 2
        disc = (yy - centre) ** 2 + (xx - centre) ** 2 <= (0.3 * CELL_PX) ** 2
        cell = img[r * CELL_PX : (r + 1) * CELL_PX, c * CELL_PX : (c + 1) * CELL_PX]
        cell[disc] = AGENT_COLOUR
        return img

    def render_policy(self, policy: np.ndarray) -> str:
        """The grid with an arrow per free cell for a deterministic ``policy`` [S]."""
        pol = np.asarray(policy).reshape(self.nrow, self.ncol)
        out = self.grid.copy()
        free = np.isin(self.grid, [".", "S"])
        out[free] = np.array(list(ARROWS))[pol[free]]
        return "\n".join("".join(row) for row in out)
