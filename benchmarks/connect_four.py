"""Connect-four self-play PPO: win/draw/loss tables and a learning-curve plot from runs.

    python benchmarks/connect_four.py RUN_DIR [RUN_DIR ...] --labels A B \
        --games 200 --search-games 50 --depths 1 2 4   # docs/img/selfplay_connect_four.png

Each RUN_DIR comes from ``rlfoundry train selfplay_ppo --env pettingzoo/connect_four_v3``
(commands in ``docs/beyond_multiagent_meta.md``). The script trains nothing: it loads each
run's checkpoint, plays its greedy policy from both seats against the uniformly random
player and against alpha-beta at each depth (ties broken at random, so the games differ),
prints a markdown table per run, and plots the win rates logged in metrics.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from rlfoundry.algos.multiagent import selfplay, selfplay_ppo
from rlfoundry.api import resolve_config
from rlfoundry.envs import games
from rlfoundry.runtime.config import load_yaml
from rlfoundry.runtime.plotting import read_metrics

ROOT = Path(__file__).resolve().parent.parent
C4 = "pettingzoo/connect_four_v3"


def table(run: Path, n_random: int, n_search: int, depths: list[int], seed: int) -> str:
    data = load_yaml(run / "config.yaml")
    _, cfg = resolve_config(data["algo"], config=data)
    agent, n_act = selfplay_ppo.load_agent(run, cfg)
    me = selfplay.greedy_opponent(agent, n_act)
    opponents = [("random", games.random_opponent, n_random)]
    opponents += [
        (f"alpha-beta depth {d}", games.connect_four_alphabeta(d), n_search) for d in depths
    ]
    rows = ["| opponent, seat | win | draw | loss | games |", "|---|---|---|---|---|"]
    illegal = 0
    for name, opp, n in opponents:
        for seat, where in ((0, "first"), (1, "second")):
            r = games.play(C4, me, opp, n, seat, seed)
            illegal += r["illegal"]
            rows.append(
                f"| {name}, {where} | {r['win']:.3f} | {r['draw']:.3f} | {r['loss']:.3f} | {n} |"
            )
    rows.append(f"\nillegal moves: {illegal}")
    return "\n".join(rows)


def plot(runs: list[Path], labels: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [
        ("win_vs_random", "vs random"),
        ("win_vs_depth1", "vs alpha-beta depth 1"),
        ("win_vs_search", "vs alpha-beta depth 2"),
    ]
    fig, axes = plt.subplots(1, len(curves), figsize=(13, 4), dpi=110, sharey=True)
    for ax, (key, title) in zip(axes, curves):
        for i, (run, label) in enumerate(zip(runs, labels)):
            m = read_metrics(run)
            if f"{key}_first" not in m:
                continue
            ok = ~np.isnan(m[f"{key}_first"])
            ax.plot(m["step"][ok], m[f"{key}_first"][ok], f"C{i}-", label=f"{label}, first")
            ax.plot(m["step"][ok], m[f"{key}_second"][ok], f"C{i}--", label=f"{label}, second")
        ax.set_title(f"win rate {title}")
        ax.set_xlabel("moves played in training (both seats)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("win rate (greedy policy)")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("self-play PPO on connect four (PettingZoo), seed 0")
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--labels", nargs="+", help="legend label per run (default: dir names)")
    p.add_argument("--games", type=int, default=200, help="games per seat vs random")
    p.add_argument("--search-games", type=int, default=50, help="games per seat per depth")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seed", type=int, default=20_000, help="seed of the evaluation games")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "selfplay_connect_four.png")
    args = p.parse_args(argv)
    labels = args.labels or [r.name for r in args.runs]
    for run, label in zip(args.runs, labels):
        print(f"\n{label} ({run}):\n")
        print(table(run, args.games, args.search_games, args.depths, args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(args.runs, labels, args.out)


if __name__ == "__main__":
    main()
