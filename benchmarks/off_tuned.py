"""Learning off the tuned path (issue 16): the acceptance figures on 5 seeds.

    python benchmarks/off_tuned.py --tasks dqn-cartpole-best --json /tmp/off.json
    python benchmarks/off_tuned.py --merge /tmp/off.json      # write RESULTS.md from it

- ``dqn-cartpole-best``: DQN CartPole-v1 at ``--steps 100000`` (twice the zoo's budget,
  where the final policy can have collapsed), periodic evaluation on by default (every
  5,000 steps, 10 episodes); the score is the best checkpoint's return on the 20 held-out
  episodes of summary.json. Criterion: >= 475 on >= 4 of 5 seeds.
- ``dqn-mountaincar``: DQN MountainCar-v0 with the shipped config (rl-zoo's); the score
  is the best checkpoint's held-out return. Criterion: <= -110 on >= 4 of 5 seeds.
- ``qlearning-frozenlake8x8``: Q-learning FrozenLake8x8-v1 with the shipped config; the
  score is the exact (dynamic-programming) return of the greedy policy. Criterion:
  within 2% of the optimum 0.886 on >= 4 of 5 seeds.

Each seed's result is written to the JSON file as soon as it is done, so a killed run
continues where it stopped (seeds already there are skipped).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml
from results import write_marked_section

from rlfoundry import api

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def _curve(out: Path) -> list[list[float]]:
    """``[[step, eval_return], ...]``: the run's periodic evaluations (metrics.csv)."""
    with open(out / "metrics.csv", newline="") as f:
        return [
            [int(r["step"]), float(r["eval_return"])]
            for r in csv.DictReader(f)
            if r.get("eval_return")
        ]


def _dqn(env: str, steps: int | None) -> Callable[[int, Path], dict[str, Any]]:
    def run(seed: int, out: Path) -> dict[str, Any]:
        s = api.train("dqn", env=env, steps=steps, seed=seed, out=out, progress=False)
        cfg = yaml.safe_load((out / "config.yaml").read_text())
        return {
            "score": s["best_eval_mean_return"],
            "final": s["eval_mean_return"],
            "best_step": s.get("best_step"),
            "best_periodic": s.get("best_periodic_return"),
            "steps": s["steps"],
            "periodic_episodes": cfg.get("periodic_episodes"),
            "curve": _curve(out),
        }

    return run


def _frozenlake(seed: int, out: Path) -> dict[str, Any]:
    s = api.train("qlearning", env="FrozenLake8x8-v1", seed=seed, out=out, progress=False)
    return {"score": s["exact_return"], "optimum": s["optimal_return"], "steps": s["steps"]}


@dataclass
class Task:
    name: str
    budget: str
    criterion: str
    passes: Callable[[float], bool]
    run: Callable[[int, Path], dict[str, Any]]


TASKS = {
    t.name: t
    for t in [
        Task(
            "dqn-cartpole-best",
            "`rlfoundry train dqn --env CartPole-v1 --steps 100000` (shipped zoo config, "
            "default periodic eval every 5k steps, 10 episodes)",
            "best checkpoint >= 475 on the 20 held-out episodes",
            lambda x: x >= 475,
            _dqn("CartPole-v1", 100_000),
        ),
        Task(
            "dqn-mountaincar",
            "`rlfoundry train dqn --env MountainCar-v0` (shipped config: rl-zoo's values, "
            "160k steps, periodic evaluation every 8k steps on 50 episodes)",
            "best checkpoint <= -110 on the 20 held-out episodes",
            lambda x: x >= -110,
            _dqn("MountainCar-v0", None),
        ),
        Task(
            "qlearning-frozenlake8x8",
            "`rlfoundry train qlearning --env FrozenLake8x8-v1` (shipped config)",
            "exact greedy return within 2% of the optimum 0.886 (>= 0.868)",
            lambda x: x >= 0.98 * 0.886,
            _frozenlake,
        ),
    ]
}


#: What the table does not say by itself (the 2026-12-04 measurements).
NOTES = [
    "Seeds run one at a time, each in this process, under `nice -n 15`. dqn-cartpole-best "
    "and qlearning-frozenlake8x8: the 04:13 UTC run, transcribed into off_tuned.json "
    "from the table of that run (per-seed CPU seconds were not kept: the row's median "
    "stands for each); dqn-cartpole-best seed 4 ran at 07:00 UTC, on its own. Without "
    "periodic evaluation those runs end at the `final` figures: 2 of 5 below 475. The FrozenLake8x8 seeds ran the shipped config's values through "
    "`api.train(..., tuned=False, **values)` before the file was written (identical "
    "values).",
    "",
    "dqn-mountaincar, how the shipped config got here: the zoo's 120k steps gave seed 0 a "
    "best checkpoint of -113.2 (at 114k, still improving). At 160k steps, with the "
    "default 10-episode periodic evaluation, seeds 0-4 scored -103.0, -118.9, -105.3, "
    "-104.3, -121.7 (3 of 5): a 10-episode score is noisy, and the best of 20 of them is "
    "partly the luckiest (seed 1 kept its 88k checkpoint, -118.9 held-out, while its final "
    "policy scored -102.1). The row above is the shipped config now: the same 160k steps "
    "of training, number for number (the periodic evaluation only looks: the final "
    "policies score -115.5, -102.1, -130.1, -136.8, -134.1, as in the 10-episode runs), "
    "with `periodic_episodes: 50`, so only the pick changed: 5 of 5 now. Seeds ran in the "
    "order 0, 1, 4, 2, 3 (the two that had missed first), 05:29-06:56 UTC at load 7-12 on "
    "the 2 cores; CPU s include the 50-episode evaluations (1,000 episodes a run) and the "
    "load's inflation (the 10-episode runs took 161-168 s).",
]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(names: list[str], seeds: list[int], path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        for seed in seeds:
            key = f"{name}/{seed}"
            if key in data:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                c0 = cpu_seconds()
                res = TASKS[name].run(seed, Path(tmp) / "run")
                res["cpu_s"] = round(cpu_seconds() - c0, 1)
            data[key] = res
            path.write_text(json.dumps(data, indent=1) + "\n")
            print(key, res, flush=True)
    return data


def report(data: dict[str, Any]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "<!-- off-tuned -->",
        "## Learning off the tuned path, seeds 0-4 (`benchmarks/off_tuned.py`)",
        "",
        f"{stamp}; {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, torch {torch.__version__}, one torch thread, under "
        "`nice` on a shared 2-core machine (CPU seconds are the process's own).",
        "",
        "| task | run | criterion | seeds passing | scores (seed: score) | detail (in seed order) "
        "| CPU s / seed |",
        "|---|---|---|---:|---|---|---:|",
    ]
    for name, task in TASKS.items():
        keys = sorted((k for k in data if k.split("/")[0] == name), key=lambda k: int(k[-1]))
        rows = [data[k] for k in keys]
        if not rows:
            continue
        scores = [r["score"] for r in rows]
        labelled = ", ".join(f"{k.split('/')[1]}: {x:.4g}" for k, x in zip(keys, scores))
        ok = sum(task.passes(x) for x in scores)
        detail = ""
        if "final" in rows[0]:
            detail = "final: " + ", ".join(f"{r['final']:.1f}" for r in rows)
            detail += "; best at step " + ", ".join(str(r.get("best_step")) for r in rows)
        if all(r.get("best_periodic") is not None for r in rows):
            detail += "; periodic score of the pick " + ", ".join(
                f"{r['best_periodic']:.1f}" for r in rows
            )
        cpu = sorted(r["cpu_s"] for r in rows)[len(rows) // 2]
        lines.append(
            f"| {name} | {task.budget} | {task.criterion} | {ok} / {len(rows)} | "
            f"{labelled} | {detail} | {cpu:.0f} |"
        )
    lines += ["", *NOTES, "", "Reproduce: `python benchmarks/off_tuned.py --json FILE`."]
    lines.append("<!-- /off-tuned -->")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    ap.add_argument("--seed-list", type=int, nargs="*", help="these seeds, in this order")
    ap.add_argument("--json", type=Path, default=Path("off_tuned.json"))
    ap.add_argument("--merge", type=Path, nargs="*", help="only report from saved results")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("CI", "1")
    if args.merge:
        data: dict[str, Any] = {}
        for p in args.merge:
            data.update(json.loads(p.read_text()))
    else:
        t0 = time.time()
        seeds = args.seed_list if args.seed_list else list(range(args.seeds))
        data = measure(args.tasks, seeds, args.json)
        print(f"done in {time.time() - t0:.0f} s", file=sys.stderr)
    text = report(data)
    print(text)
    if not args.no_write:
        write_marked_section(RESULTS, "off-tuned", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
