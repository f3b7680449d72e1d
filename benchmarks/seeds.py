"""The deep-RL learning tests on 5 seeds: the figures behind the 1-seed tests in CI.

    python benchmarks/seeds.py                              # all tasks, seeds 0..4
    python benchmarks/seeds.py --tasks dqn-cartpole --json /tmp/dqn.json --no-write
    python benchmarks/seeds.py --merge /tmp/*.json          # report from saved results

Each task runs exactly what its test in ``tests/algos/`` runs (shipped config, same
budget, same pass criterion), once per seed; seed 0 is the one the test uses. Writes
the section between ``<!-- seeds -->`` markers of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from results import write_marked_section

from rlfoundry import api

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def _final(algo: str, env: str, steps: int | None = None) -> Callable[[int, Path], dict]:
    """Train on the whole budget; the score is the deterministic eval of 20 unseen
    episodes written to the summary (the PPO / A2C / VPG tests)."""

    def run(seed: int, out: Path) -> dict[str, Any]:
        s = api.train(algo, env=env, steps=steps, seed=seed, out=out, progress=False)
        return {"score": s["eval_mean_return"], "steps": s["steps"]}

    return run


def _reach_dqn(seed: int, out: Path) -> dict[str, Any]:
    """tests/algos/test_dqn.py: stop every 5k steps, 10 eval episodes, resume; the score
    is the best of those evaluations up to 50k steps (stops at the first >= 475)."""
    means: list[float] = []
    for stop in range(5_000, 50_001, 5_000):
        if stop == 5_000:
            api.train(
                "dqn", env="CartPole-v1", seed=seed, out=out, progress=False, stop_at_step=stop
            )
        else:
            api.train(resume=out, progress=False, stop_at_step=stop, evaluate_after=False)
        means.append(
            api.evaluate_run(out, episodes=10, seed=10_000, write=False)["eval_mean_return"]
        )
        if means[-1] >= 475:
            break
    return {"score": max(means), "steps": 5_000 * len(means), "evals": means}


@dataclass
class Task:
    name: str
    test: str
    threshold: float
    budget: str
    run: Callable[[int, Path], dict[str, Any]]


TASKS = {
    t.name: t
    for t in [
        Task(
            "ppo-cartpole",
            "test_ppo.py::test_ppo_solves_cartpole_within_100k_steps",
            475,
            "100k steps (99,840), final deterministic eval over 20 episodes",
            _final("ppo", "CartPole-v1"),
        ),
        Task(
            "dqn-cartpole",
            "test_dqn.py::test_dqn_reaches_475_on_cartpole",
            475,
            "50k steps, best 10-episode eval of those every 5k steps",
            _reach_dqn,
        ),
        Task(
            "a2c-cartpole",
            "test_a2c.py::test_a2c_solves_cartpole",
            475,
            "200k steps, final deterministic eval over 20 episodes",
            _final("a2c", "CartPole-v1", 200_000),
        ),
        Task(
            "vpg-cartpole",
            "test_vpg.py::test_vpg_solves_cartpole",
            475,
            "250k steps (50 batches of >= 5,000), final deterministic eval over 20 episodes",
            _final("vpg", "CartPole-v1"),
        ),
        Task(
            "ppo-pendulum",
            "test_ppo.py::test_ppo_solves_pendulum",
            -200,
            "100k steps (98,304: whole segments), final deterministic eval over 20 episodes",
            _final("ppo", "Pendulum-v1"),
        ),
    ]
}


def run_tasks(names: list[str], seeds: list[int], json_path: Path | None) -> dict[str, list]:
    torch.set_num_threads(1)
    results: dict[str, list] = {n: [] for n in names}
    for name in names:
        for seed in seeds:
            t0, c0 = time.perf_counter(), time.process_time()
            with tempfile.TemporaryDirectory() as tmp:
                res = TASKS[name].run(seed, Path(tmp) / "run")
            res.update(
                task=name,
                seed=seed,
                wall_s=round(time.perf_counter() - t0, 1),
                cpu_s=round(time.process_time() - c0, 1),
            )
            results[name].append(res)
            print(json.dumps(res), flush=True)
            if json_path is not None:
                json_path.write_text(json.dumps(results, indent=1))
    return results


def report(results: dict[str, list], cmd: str) -> str:
    cpu = "?"
    try:
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    lines = [
        "<!-- seeds -->",
        "## Deep-RL learning tests on 5 seeds (`benchmarks/seeds.py`)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {cpu}, Python "
        f"{platform.python_version()}, torch {torch.__version__}, one torch thread. CI runs "
        "seed 0 of each (the `@pytest.mark.slow` tests named below); this is the same run "
        "on seeds 0-4. CPU seconds are the process's own (the machine is shared; wall "
        "time is not meaningful under its load).",
        "",
        "| task | test | budget and criterion | threshold | seeds passing | scores (seed 0, 1, ...) | CPU s per seed (median) |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for name, rows in results.items():
        if not rows:
            continue
        task = TASKS[name]
        rows = sorted(rows, key=lambda r: r["seed"])
        ok = sum(r["score"] >= task.threshold for r in rows)
        scores = ", ".join(f"{r['score']:.1f}" for r in rows)
        cpus = sorted(r["cpu_s"] for r in rows)
        lines.append(
            f"| {name} | `{task.test}` | {task.budget} | {task.threshold:g} | "
            f"{ok} / {len(rows)} | {scores} | {cpus[len(cpus) // 2]:.0f} |"
        )
    lines += ["", f"Reproduce: `{cmd}`.", "<!-- /seeds -->"]
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    write_marked_section(RESULTS, "seeds", section)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--seeds", type=int, default=5, help="seeds first-seed .. first-seed+N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the raw results here (after every seed)")
    p.add_argument("--merge", nargs="*", type=Path, help="report from these JSON files, no runs")
    p.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = p.parse_args(argv)
    if args.merge:
        results: dict[str, list] = {n: [] for n in TASKS}
        for path in args.merge:
            for name, rows in json.loads(path.read_text()).items():
                results[name].extend(rows)
        cmd = "python benchmarks/seeds.py"
    else:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        results = run_tasks(args.tasks, seeds, args.json)
        cmd = " ".join(["python benchmarks/seeds.py", *sys.argv[1:]])
    section = report(results, cmd)
    print(section)
    if not args.no_write:
        write_results(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
