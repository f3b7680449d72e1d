"""Transfer and lifelong learning on GridWorld layouts (``rlfoundry.experiments.transfer``).

    python benchmarks/transfer.py                 # 5 seeds -> docs/img/transfer.png + RESULTS.md
    python benchmarks/transfer.py --seeds 0 1 --no-write

Three experiments with tabular Q-learning and its default config, every return exact
(greedy policy, no sampled episodes):

1. start moved: source BRIDGE, target START_MOVED (threshold: the target's optimum);
2. shortcut: source DETOUR, target BRIDGE (threshold 0.5: the goal within 13 steps);
3. lifelong: the four CORNERS rooms in order, forgetting per task.

Writes ``runs/bench_transfer/{moved,shortcut,lifelong}/`` (as ``rlfoundry transfer``
does), ``docs/img/transfer.png`` and the ``transfer`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime
from pathlib import Path

import torch
from results import write_marked_section

from rlfoundry.experiments import transfer as T

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
MARK_START, MARK_END = "<!-- transfer -->", "<!-- /transfer -->"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench_transfer"))
    p.add_argument("--out", default=str(ROOT / "docs" / "img" / "transfer.png"))
    p.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    runs = Path(args.runs)
    load = os.getloadavg()[0]

    t0 = time.perf_counter()
    moved = T.run_finetune(T.FinetuneConfig(seeds=args.seeds))
    T.write_result("finetune", moved, runs / "moved")
    t1 = time.perf_counter()
    shortcut = T.run_finetune(
        T.FinetuneConfig(
            source={"layout": T.DETOUR}, target={"layout": T.BRIDGE}, threshold=0.5,
            seeds=args.seeds,
        )
    )  # fmt: skip
    T.write_result("finetune", shortcut, runs / "shortcut")
    t2 = time.perf_counter()
    lifelong = T.run_lifelong(T.LifelongConfig(seeds=args.seeds))
    T.write_result("lifelong", lifelong, runs / "lifelong")
    t3 = time.perf_counter()
    titles = ["start moved (BRIDGE -> START_MOVED)", "shortcut opens (DETOUR -> BRIDGE)"]
    T.plot_transfer([moved, shortcut], lifelong, args.out, titles=titles)
    print(f"wrote {args.out}")

    n = len(args.seeds)
    section = "\n".join(
        [
            MARK_START,
            "## Transfer and lifelong learning on GridWorld layouts (`benchmarks/transfer.py`)",
            "",
            f"{datetime.now():%Y-%m-%d %H:%M}; {os.cpu_count()} logical CPUs, Python "
            f"{platform.python_version()}; load average before the run {load:.2f}. Tabular "
            f"Q-learning, default config, seeds {' '.join(map(str, args.seeds))}; every return "
            "is the exact return of the greedy policy (no sampling). Steps: median over seeds.",
            "",
            f"**Start moved** (source BRIDGE 3,000 steps, target START_MOVED 3,000 steps; "
            f"threshold = target optimum; {t1 - t0:.0f} s):",
            "",
            T.finetune_table(moved),
            "",
            f"**Shortcut opens** (source DETOUR, target BRIDGE; threshold 0.5; {t2 - t1:.0f} s):",
            "",
            T.finetune_table(shortcut),
            "",
            f"**Lifelong**, four CORNERS rooms in order, 5,000 steps each; R[i, j] = return on "
            f"task j after learning task i, mean of {n} seeds ({t3 - t2:.0f} s):",
            "",
            T.lifelong_table(lifelong),
            "",
            "Reproduce: `python benchmarks/transfer.py`; plot `docs/img/transfer.png`.",
            MARK_END,
        ]
    )
    print(section)
    if not args.no_write:
        write_marked_section(RESULTS, "transfer", section)
        print(f"updated {RESULTS}")


if __name__ == "__main__":
    main()
