"""Sample efficiency of PETS (model-based) against PPO (model-free) on Pendulum-v1.

    python benchmarks/model_based.py                       # 3 seeds each, 4 parallel jobs
    python benchmarks/model_based.py --seeds 0 1 --jobs 2 --no-write

Both run with their shipped configs (``configs/pets/Pendulum-v1.yaml``,
``configs/ppo/Pendulum-v1.yaml``); each (algo, seed) is one ``rlfoundry.api.train`` run
directory under ``--runs`` (kept, and reused with ``--reuse``). The curve of a run is the
mean return of the episodes that ended in the last ``--window`` real env steps, against
real env steps (log x). PETS' training episodes are MPC episodes without added
exploration noise, each from a fresh random start, so they are its evaluation; PPO's are
its stochastic training episodes (its deterministic evaluation of 20 unseen episodes at
the end is reported separately). Steps to threshold: the first step at which that
windowed mean reaches ``--threshold`` (-200). Writes ``docs/img/pets_vs_ppo.png`` and the
``model-based`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
MARK_START, MARK_END = "<!-- model-based -->", "<!-- /model-based -->"
ENV = "Pendulum-v1"


def train_one(algo: str, seed: int, steps: int | None, out: str, reuse: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    from rlfoundry.api import train

    summary_path = Path(out) / "summary.json"
    if reuse and summary_path.exists():
        return json.loads(summary_path.read_text())
    eval_eps = 20 if algo == "ppo" else 2
    t0 = time.perf_counter()
    s = train(
        algo, env=ENV, seed=seed, steps=steps, out=out, progress=False,
        overrides={"eval_episodes": eval_eps},
    )  # fmt: skip
    s["bench_seconds"] = time.perf_counter() - t0
    summary_path.write_text(json.dumps(s, indent=2) + "\n")
    return s


def collect(run_dir: Path) -> dict:
    """The run's summary.json, or for an unfinished run its last logged step."""
    from rlfoundry.runtime.plotting import read_metrics

    path = run_dir / "summary.json"
    if path.exists():
        return json.loads(path.read_text())
    return {"steps": int(read_metrics(run_dir)["step"].max()), "status": "unfinished"}


def windowed(run_dir: Path, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps at which episodes ended and the mean return of episodes ended in the last
    ``window`` steps there."""
    from rlfoundry.runtime.plotting import read_metrics

    m = read_metrics(run_dir)
    ok = ~np.isnan(m["episode_return"])
    st, ret = m["step"][ok], m["episode_return"][ok]
    xs = np.unique(st)
    ys = np.array([ret[(st > x - window) & (st <= x)].mean() for x in xs])
    return xs, ys


def first_reach(xs: np.ndarray, ys: np.ndarray, threshold: float) -> float:
    hit = np.flatnonzero(ys >= threshold)
    return float(xs[hit[0]]) if len(hit) else float("inf")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--pets-steps", type=int, default=1600)
    p.add_argument("--ppo-steps", type=int, default=None, help="default: the shipped config")
    p.add_argument("--jobs", type=int, default=4, help="parallel training processes")
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--threshold", type=float, default=-200.0)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench_model_based"))
    p.add_argument("--reuse", action="store_true", help="reuse finished run directories")
    p.add_argument(
        "--collect",
        action="store_true",
        help="train nothing: plot and tabulate the run directories as they are (unfinished "
        "runs count up to their last logged step, without a final eval)",
    )
    p.add_argument("--out", default=str(ROOT / "docs" / "img" / "pets_vs_ppo.png"))
    p.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = p.parse_args(argv)

    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    jobs = [("pets", s, args.pets_steps) for s in args.seeds]
    jobs += [("ppo", s, args.ppo_steps) for s in args.seeds]
    t0 = time.perf_counter()
    if args.collect:
        summaries = {
            (a, s): collect(runs / f"{a}-s{s}")
            for a, s, _ in jobs
            if (runs / f"{a}-s{s}" / "metrics.csv").exists()
        }
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            futs = {
                (a, s): pool.submit(train_one, a, s, n, str(runs / f"{a}-s{s}"), args.reuse)
                for a, s, n in jobs
            }
            summaries = {k: f.result() for k, f in futs.items()}
    wall = time.perf_counter() - t0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.4), dpi=120)
    stats = {}
    for i, (algo, label) in enumerate((("pets", "PETS (model-based)"), ("ppo", "PPO"))):
        reach, finals, secs, evals = [], [], [], []
        seeds = [s for s in args.seeds if (algo, s) in summaries]
        for j, seed in enumerate(seeds):
            xs, ys = windowed(runs / f"{algo}-s{seed}", args.window)
            ax.plot(xs, ys, color=f"C{i}", alpha=0.9, lw=1.4,
                    label=f"{label}, {len(seeds)} seeds" if j == 0 else None)  # fmt: skip
            if algo == "pets":  # few episodes: show each one too
                from rlfoundry.runtime.plotting import read_metrics

                m = read_metrics(runs / f"{algo}-s{seed}")
                ok = ~np.isnan(m["episode_return"])
                ax.scatter(m["step"][ok], m["episode_return"][ok], s=10, color=f"C{i}", alpha=0.35,
                           label="PETS single episodes" if j == 0 else None)  # fmt: skip
            reach.append(first_reach(xs, ys, args.threshold))
            finals.append(ys[-1])
            s = summaries[(algo, seed)]
            secs.append(s.get("wall_seconds", float("nan")))
            evals.append(s.get("eval_mean_return", float("nan")))
        stats[algo] = {
            "reach": reach, "final": finals, "seconds": secs, "eval": evals,
            "steps": int(max(summaries[(algo, s)]["steps"] for s in seeds)),
            "seeds": seeds,
        }  # fmt: skip
    ax.axhline(args.threshold, color="k", ls="--", lw=1, label=f"threshold {args.threshold:g}")
    ax.set_xscale("log")
    ax.set_xlabel("real environment steps (log scale)")
    ax.set_ylabel(f"mean episode return, last {args.window} steps")
    ax.set_title("Pendulum-v1: PETS vs PPO, sample efficiency")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")

    def fmt_steps(v: list[float]) -> str:
        return ", ".join("never" if not np.isfinite(x) else f"{x:,.0f}" for x in v)

    pr, pp = np.array(stats["pets"]["reach"]), np.array(stats["ppo"]["reach"])
    ratio = (
        f"{np.median(pp) / np.median(pr):.0f}x"
        if np.isfinite(np.median(pr)) and np.isfinite(np.median(pp))
        else "n/a (a median is 'never')"
    )
    lines = [
        MARK_START,
        "## Model-based: PETS vs PPO on Pendulum-v1 (`benchmarks/model_based.py`)",
        "",
        f"{datetime.now():%Y-%m-%d %H:%M}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, Python {platform.python_version()}; one torch thread "
        f"per run, {args.jobs} runs in parallel; load average before the run {load:.2f} "
        "(shared machine: seconds are noisy, steps are not).",
        "",
        f"Curve: mean return of the episodes that ended in the last {args.window} real env "
        "steps (PETS: MPC episodes, no exploration noise; PPO: stochastic training episodes). "
        f"Steps to threshold: first step where it is >= {args.threshold:g}. Final eval: "
        "deterministic/MPC evaluation of the final policy on unseen episodes (PPO 20, PETS 2).",
        "",
        "| algo | env steps trained | steps to threshold (per seed) | median | "
        "windowed return at end | final eval return | train seconds |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for algo, label in (("pets", "PETS"), ("ppo", "PPO (shipped config)")):
        s = stats[algo]
        lines.append(
            f"| {label} | {s['steps']:,} | {fmt_steps(s['reach'])} | "
            f"{fmt_steps([float(np.median(s['reach']))])} | "
            f"{np.mean(s['final']):.0f} ± {np.std(s['final']):.0f} | "
            f"{np.mean(s['eval']):.0f} ± {np.std(s['eval']):.0f} | "
            f"{np.mean(s['seconds']):.0f} |"
        )
    lines += [
        "",
        f"**Sample efficiency: PPO needs {ratio} the real env steps of PETS to reach "
        f"{args.threshold:g}** (ratio of medians). PETS pays in compute instead: it plans "
        "with CEM at every step, so its wall-clock per env step is far higher than PPO's.",
        "",
        f"Reproduce: `python benchmarks/model_based.py --seeds {' '.join(map(str, args.seeds))}` "
        f"({wall:.0f} s here). Plot: `docs/img/pets_vs_ppo.png`.",
        MARK_END,
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        from results import write_marked_section

        write_marked_section(RESULTS, "model-based", section)
        print(f"updated {RESULTS}")


if __name__ == "__main__":
    main()
