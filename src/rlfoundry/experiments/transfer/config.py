"""The two transfer experiments as config dataclasses, and the GridWorld layouts they use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlfoundry.errors import ConfigError

#: Algorithms the experiments run (Dyna-Q would also carry its model over; not measured).
WARM_START_ALGOS = ("qlearning", "sarsa", "expected_sarsa")

# 7x7 GridWorld layouts (S start, G goal, # wall, P pit); one size, so one state numbering.
# BRIDGE is the env's default: the 6-step bridge between the pit rows is optimal (0.80).
# START_MOVED is BRIDGE with the start in the bottom-left corner (optimum: up, then the
# bridge, 0.68). DETOUR is BRIDGE with a wall across the bridge: the best path is the
# 12-step corridor over the top (0.56).
BRIDGE = [".......", ".#####.", ".#PPP#.", "S.....G", ".#PPP#.", ".#...#.", "...#..."]
START_MOVED = [".......", ".#####.", ".#PPP#.", "......G", ".#PPP#.", ".#...#.", "S..#..."]
DETOUR = [".......", ".#####.", ".#PPP#.", "S..#..G", ".#PPP#.", ".#...#.", "...#..."]
# An open 7x7 room, the start in the centre and the goal in a different corner in each
# task (optimum 0.80 each): the greedy actions of the centre cells must change every time.
CORNERS = [
    ["G......", ".......", ".......", "...S...", ".......", ".......", "......."],
    ["......G", ".......", ".......", "...S...", ".......", ".......", "......."],
    [".......", ".......", ".......", "...S...", ".......", ".......", "......G"],
    [".......", ".......", ".......", "...S...", ".......", ".......", "G......"],
]


@dataclass
class FinetuneConfig:
    """A fine-tuning experiment: source task, target task, algorithm, budget and seeds."""

    algo: str = "qlearning"
    """Tabular algorithm for both tasks: qlearning, sarsa or expected_sarsa."""
    env_id: str = "rlfoundry/GridWorld-v0"
    """Gymnasium id shared by the two tasks; they differ only in their env kwargs."""
    source: dict[str, Any] = field(default_factory=lambda: {"layout": BRIDGE})
    """Env kwargs of the source task (e.g. {layout: [...], slip: 0.0})."""
    target: dict[str, Any] = field(default_factory=lambda: {"layout": START_MOVED})
    """Env kwargs of the target task; its states must be numbered like the source's."""
    source_steps: int = 3_000
    """Env steps of training on the source task."""
    target_steps: int = 3_000
    """Env steps of training on the target task, for the fine-tuned and the scratch agent."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """Seeds; each runs source, fine-tune and scratch (fine-tune and scratch share it)."""
    eval_every: int = 50
    """Target env steps between exact evaluations of the greedy policy."""
    threshold: float | None = None
    """Return that counts as learned for time-to-threshold; None: the target's optimum."""
    tail: int = 10
    """Last evaluations averaged into the asymptotic return."""
    algo_config: dict[str, Any] = field(default_factory=dict)
    """Config values of the algorithm (as --set would give them) for every training."""

    def validate(self) -> None:
        _check_common(self.algo, self.seeds, self.eval_every)
        if self.source_steps < 1 or self.target_steps < 1 or self.tail < 1:
            raise ConfigError("source_steps, target_steps and tail must be >= 1; fix them.")


@dataclass
class LifelongConfig:
    """A lifelong sequence: tasks learned one after the other by one agent."""

    algo: str = "qlearning"
    """Tabular algorithm: qlearning, sarsa or expected_sarsa."""
    env_id: str = "rlfoundry/GridWorld-v0"
    """Gymnasium id shared by the tasks; they differ only in their env kwargs."""
    tasks: list[dict[str, Any]] = field(default_factory=lambda: [{"layout": c} for c in CORNERS])
    """Env kwargs of each task, in the order they are learned."""
    steps_per_task: int = 5_000
    """Env steps of training on each task."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """Seeds of independent sequences."""
    eval_every: int = 100
    """Env steps between exact evaluations, on every task, during the sequence."""
    algo_config: dict[str, Any] = field(default_factory=dict)
    """Config values of the algorithm (as --set would give them) for every task."""

    def validate(self) -> None:
        _check_common(self.algo, self.seeds, self.eval_every)
        if len(self.tasks) < 2 or self.steps_per_task < 1:
            raise ConfigError("a lifelong sequence needs >= 2 tasks and steps_per_task >= 1.")


def _check_common(algo: str, seeds: list[int], eval_every: int) -> None:
    if algo not in WARM_START_ALGOS:
        raise ConfigError(
            f"Transfer runs the tabular agents {', '.join(WARM_START_ALGOS)}, not '{algo}'; "
            "set algo to one of them."
        )
    if not seeds or eval_every < 1:
        raise ConfigError("Give at least one seed and eval_every >= 1.")
