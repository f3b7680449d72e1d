"""Deep transfer: PPO fine-tuned from one CartPole pole length to another, against scratch.

    python benchmarks/transfer_deep.py                       # seeds 0-2 -> docs/img + RESULTS.md
    python benchmarks/transfer_deep.py --seeds 0 --targets 0.25 --no-write

For each seed: PPO (the shipped config of ``rlfoundry/CartPole-v1``, 100k steps) learns
the *source*, the default 1 m pole (``pole_length=1.0``, Gymnasium's CartPole). Then, on
each *target* pole length, two runs of the same config and seed: **fine-tune**, started
from the source's weights through ``Run(init_from=SOURCE)`` (what ``rlfoundry train ppo
--init-from SOURCE`` does; fresh optimiser and schedules), and **scratch**. Because the
warm start only overwrites the freshly initialised weights, both runs draw the same
random numbers: they differ in the starting weights alone.

Every ``eval_every`` env steps (at the next update boundary), and at step 0, the
deterministic policy plays ``episodes`` episodes of the target (seeds 10_000 + i, an
:class:`~rlfoundry.runtime.callbacks.Evaluate` callback on the run); the evaluation does
not touch the training's random state, so the training is the same as without it. Metrics (Taylor & Stone 2009, sec. 3.1, as in ``rlfoundry transfer``):

- *jumpstart*: fine-tune's eval return at step 0 minus scratch's;
- *steps to threshold*: first eval step with a mean return >= ``threshold`` (475, the
  env's reward threshold);
- *steps to stay*: first eval step from which every later eval is >= ``threshold``
  (fine-tuning can reach it once and drop again);
- *mean return*: mean of all evaluations, the area under the curve per eval;
- *asymptotic return*: mean of the last ``tail`` evaluations.

Writes ``runs/bench_transfer_deep/`` (sources as run directories, ``results.json``),
``docs/img/transfer_deep.png`` and the ``transfer-deep`` block of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from results import write_marked_section

from rlfoundry.algos.deep import onpolicy, ppo
from rlfoundry.api import resolve_config
from rlfoundry.api import train as api_train
from rlfoundry.envs.evaluation import eval_seed, evaluate, make_env
from rlfoundry.experiments.transfer import time_to_threshold
from rlfoundry.runtime.callbacks import Evaluate
from rlfoundry.runtime.run import Run, seed_everything

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
MARK_START, MARK_END = "<!-- transfer-deep -->", "<!-- /transfer-deep -->"
ENV_ID, EVAL_SEED = "rlfoundry/CartPole-v1", eval_seed(0)


def curve(
    target: float, seed: int, every: int, episodes: int, init_from: Path | None
) -> dict[str, Any]:
    """Train PPO on the target pole from ``init_from`` (None: scratch); the eval curve.

    An :class:`~rlfoundry.runtime.callbacks.Evaluate` callback scores the starting weights
    (step 0, after the warm start) and the checkpoint at the first update boundary after
    every ``every`` steps and at the end."""
    _, cfg = resolve_config(
        "ppo", env=ENV_ID, seed=seed, overrides={"env_kwargs": {"pole_length": target}}
    )
    torch.set_num_threads(1)
    seed_everything(cfg.seed)
    env = make_env(cfg.env_id, **cfg.env_kwargs)
    spaces = env.observation_space, env.action_space
    eval_cpu = [0.0]

    def score(policy: Any) -> float:
        c = time.process_time()
        ret = evaluate(policy, env, episodes, EVAL_SEED)["eval_mean_return"]
        eval_cpu[0] += time.process_time() - c
        return ret

    ev = Evaluate(
        every,
        score=lambda run, step, tensors: score(ppo.load_policy(run.path, cfg)),
        start=lambda modules, stats: score(
            onpolicy.make_policy(modules["agent"], *spaces, stats.get("obs_rms/"))
        ),
    )
    c0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        quiet = {"progress": False, "tensorboard": False}
        with Run(Path(tmp), cfg.total_steps, **quiet, init_from=init_from, callbacks=[ev]) as run:
            ppo.train(cfg, run)
    env.close()
    cpu = time.process_time() - c0
    return {
        "steps": ev.steps,
        "values": ev.values,
        "train_cpu_s": round(cpu - eval_cpu[0], 1),
    }


def steps_to_stay(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """First step from which every value is >= ``threshold`` (``inf`` if the last is not)."""
    below = np.flatnonzero(np.asarray(values) < threshold - 1e-9)
    if not len(below):
        return float(steps[0])
    return float(steps[below[-1] + 1]) if below[-1] + 1 < len(steps) else float("inf")


def metrics(rec: dict[str, Any], threshold: float, tail: int) -> dict[str, float]:
    steps, values = np.asarray(rec["steps"]), np.asarray(rec["values"])
    return {
        "start": float(values[0]),
        "to_threshold": time_to_threshold(steps, values, threshold),
        "to_stay": steps_to_stay(steps, values, threshold),
        "mean": float(values.mean()),
        "asymptotic": float(values[-tail:].mean()),
    }


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    runs = Path(args.runs)
    res: dict[str, Any] = {"sources": {}, "targets": {}}
    for seed in args.seeds:
        src = runs / f"source-s{seed}"
        if not (src / "summary.json").exists():
            c = time.process_time()
            api_train(
                "ppo",
                env=ENV_ID,
                seed=seed,
                out=src,
                overrides={"env_kwargs": {"pole_length": 1.0}},
                progress=False,
            )
            print(f"source seed {seed}: {time.process_time() - c:.0f} CPU s", flush=True)
        summary = json.loads((src / "summary.json").read_text())
        res["sources"][seed] = {"dir": str(src), "eval_mean_return": summary["eval_mean_return"]}
        for target in args.targets:
            rows = res["targets"].setdefault(str(target), {"finetune": {}, "scratch": {}})
            for kind, init in (("finetune", src), ("scratch", None)):
                rec = curve(target, seed, args.eval_every, args.episodes, init)
                rec.update(metrics(rec, args.threshold, args.tail))
                rows[kind][seed] = rec
                print(
                    f"pole {target} seed {seed} {kind}: start {rec['start']:.1f}, "
                    f"to {args.threshold:g}: {rec['to_threshold']:g} (stays from "
                    f"{rec['to_stay']:g}), mean {rec['mean']:.1f}, "
                    f"asymptotic {rec['asymptotic']:.1f}, {rec['train_cpu_s']} CPU s",
                    flush=True,
                )
    return res


# --------------------------------------------------------------------------- report


def _fmt_steps(x: float) -> str:
    return "never" if not np.isfinite(x) else f"{x:,.0f}"


def table(res: dict[str, Any], seeds: list[int]) -> str:
    lines = [
        "| target pole | run | return at step 0 (per seed) | jumpstart | steps to 475 "
        "(per seed) | median | stays >= 475 from (median) | mean eval return | "
        "asymptotic return |",
        "|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for target, rows in res["targets"].items():
        for kind in ("finetune", "scratch"):
            recs = [rows[kind][s] for s in seeds]
            other = [rows["scratch" if kind == "finetune" else "finetune"][s] for s in seeds]
            starts = [r["start"] for r in recs]
            jump = np.mean([r["start"] - o["start"] for r, o in zip(recs, other)])
            tt = [r["to_threshold"] for r in recs]
            asym = [r["asymptotic"] for r in recs]
            stay = float(np.median([r["to_stay"] for r in recs]))
            mean = [r["mean"] for r in recs]
            lines.append(
                f"| {float(target):g} m | {'fine-tune' if kind == 'finetune' else 'scratch'} | "
                f"{', '.join(f'{x:.0f}' for x in starts)} | "
                f"{f'{jump:+.0f}' if kind == 'finetune' else ''} | "
                f"{', '.join(_fmt_steps(x) for x in tt)} | {_fmt_steps(float(np.median(tt)))} | "
                f"{_fmt_steps(stay)} | {np.mean(mean):.0f} | "
                f"{np.mean(asym):.1f} ± {np.std(asym):.1f} |"
            )
    return "\n".join(lines)


def plot(res: dict[str, Any], seeds: list[int], threshold: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(res["targets"])
    fig, axes = plt.subplots(1, len(targets), figsize=(5.5 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets):
        for kind, color, label in (
            ("finetune", "tab:blue", "fine-tuned from the 1 m pole"),
            ("scratch", "tab:orange", "from scratch"),
        ):
            recs = [res["targets"][target][kind][s] for s in seeds]
            n = min(len(r["values"]) for r in recs)
            steps = np.asarray(recs[0]["steps"][:n])
            vals = np.asarray([r["values"][:n] for r in recs])
            ax.plot(steps, vals.mean(0), color=color, label=label)
            ax.fill_between(steps, vals.min(0), vals.max(0), color=color, alpha=0.2)
        ax.axhline(threshold, color="gray", ls="--", lw=1)
        ax.set_title(f"PPO on CartPole, pole {float(target):g} m (source: 1 m)")
        ax.set_xlabel("target env steps")
        ax.set_ylabel("deterministic eval return")
        ax.set_ylim(0, 520)
        ax.legend(loc="lower right")
    fig.suptitle(f"mean of seeds {', '.join(map(str, seeds))} (band: min-max)", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--targets", type=float, nargs="+", default=[0.2, 2.0])
    p.add_argument("--eval-every", type=int, default=4096)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--threshold", type=float, default=475.0)
    p.add_argument("--tail", type=int, default=3, help="evaluations averaged as asymptotic")
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench_transfer_deep"))
    p.add_argument("--out", default=str(ROOT / "docs" / "img" / "transfer_deep.png"))
    p.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_all(args)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    res["args"] = vars(args)
    runs = Path(args.runs)
    (runs / "results.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    plot(res, args.seeds, args.threshold, Path(args.out))
    print(f"wrote {args.out}")

    src = [res["sources"][s]["eval_mean_return"] for s in args.seeds]
    cmd = "python benchmarks/transfer_deep.py"
    if args.seeds != [0, 1, 2] or args.targets != [0.2, 2.0]:
        cmd += f" --seeds {' '.join(map(str, args.seeds))}"
        cmd += f" --targets {' '.join(f'{t:g}' for t in args.targets)}"
    section = "\n".join(
        [
            MARK_START,
            "## Deep transfer: PPO across CartPole pole lengths (`benchmarks/transfer_deep.py`)",
            "",
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} logical CPUs "
            f"(shared), Python {platform.python_version()}, torch {torch.__version__}, one "
            f"thread; load average before the run {load:.1f}; {wall:.0f} s wall, "
            f"{cpu:.0f} CPU s in all. PPO with the shipped `rlfoundry/CartPole-v1` config "
            "(100k steps per run). Source: the 1 m pole (Gymnasium's), its own eval "
            f"{', '.join(f'{x:.0f}' for x in src)} per seed. Fine-tune: the source's weights "
            "(`--init-from`), fresh optimiser; scratch: same config and seed. Eval: "
            f"deterministic, {args.episodes} target episodes every {args.eval_every:,} steps "
            f"and at step 0; mean eval return = mean over all those evals; asymptotic = mean "
            f"of the last {args.tail} evals, ± std over seeds. Steps: target env steps.",
            "",
            table(res, args.seeds),
            "",
            f"Reproduce: `{cmd}`; plot `docs/img/transfer_deep.png`.",
            MARK_END,
        ]
    )
    print(section)
    if not args.no_write:
        write_marked_section(RESULTS, "transfer-deep", section)
        print(f"updated {RESULTS}")


if __name__ == "__main__":
    main()
