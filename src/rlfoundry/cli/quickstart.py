"""``rlfoundry quickstart``: the main job — a real end-to-end tour on built-in defaults.

1. solve the GridWorld exactly (value iteration) to know the optimum;
2. train tabular Q-learning and Dyna-Q on it and compare both to that optimum;
3. train PPO and DQN on CartPole-v1 with the shipped tuned configs;
4. run the language-model pipeline on the arithmetic task (pre-train -> SFT -> GRPO),
   when the ``llm`` extra is installed;

then write ``OUT/REPORT.md`` with a table and the learning-curve plots.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

from rlfoundry.runtime.config import atomic_write_text


def _row(name: str, summary: dict[str, Any], target: str) -> str:
    mean = summary.get("eval_mean_return", float("nan"))
    std = summary.get("eval_std_return", float("nan"))
    return (
        f"| {name} | {summary.get('env', '')} | {summary.get('steps', '')} | {mean:.3f} ± {std:.3f} "
        f"| {target} | {summary.get('wall_seconds', 0):.1f} |"
    )


def _llm_available() -> bool:
    return bool(
        importlib.util.find_spec("transformers")
        and importlib.util.find_spec("rlfoundry.llm.pipeline")
    )


def check_out(out: Path, overwrite: bool) -> None:
    """A new quickstart takes a new or empty ``out``; ``overwrite`` runs it again there
    (each stage replaces the files its runs wrote, nothing else). Checked before any stage
    runs, with advice that quickstart itself accepts."""
    from rlfoundry.errors import RLFoundryError

    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if out.exists() and not out.is_dir():
        raise RLFoundryError(f"--out '{out}' is a file; choose a directory for the quickstart.")
    if held and not overwrite:
        what = "an earlier quickstart" if "REPORT.md" in held else f"files ({', '.join(held[:3])})"
        raise RLFoundryError(
            f"'{out}' already holds {what}; choose another --out (or leave it out for a new "
            f"runs/quickstart-TIME), or run `rlfoundry quickstart --out {out} --overwrite` "
            "to run the quickstart again there."
        )


def run_quickstart(
    out: Path, include_llm: bool = True, progress: bool = True, overwrite: bool = False
) -> Path:
    from rlfoundry import registry
    from rlfoundry.api import train
    from rlfoundry.envs.evaluation import make_env
    from rlfoundry.mdp import evaluate_policy_exact, value_iteration
    from rlfoundry.runtime.plotting import plot_runs

    check_out(out, overwrite)
    with_llm = include_llm and _llm_available()
    n = 4 if with_llm else 3  # stages: [1/n] solve, [2/n] tabular, [3/n] deep, [4/n] LLM
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lines = ["# rlfoundry quickstart report", ""]
    llm_line = ""
    rows = [
        "| run | env | env steps | eval return (mean ± std) | reference | train s |",
        "|---|---|---|---|---|---|",
    ]

    env_id = "rlfoundry/GridWorld-v0"
    env = make_env(env_id)
    sol = value_iteration(env, gamma=0.99)
    optimum = evaluate_policy_exact(env, sol.policy)
    print(
        f"[1/{n}] {env_id}: exact optimum {optimum:.3f} (value iteration, {sol.iterations} sweeps)"
    )
    if hasattr(env.unwrapped, "render_policy"):
        lines += [
            "Optimal policy of the GridWorld (value iteration):",
            "",
            "```",
            env.unwrapped.render_policy(sol.policy),
            "```",
            "",
        ]

    tabular = []
    for algo in ("qlearning", "dyna_q"):
        run_dir = out / f"{algo}-gridworld"
        print(f"[2/{n}] training {algo} on {env_id}", flush=True)
        s = train(algo, env=env_id, out=run_dir, progress=progress, overwrite=overwrite)
        rows.append(
            _row(
                algo,
                s,
                f"optimum {optimum:.3f}, exact greedy {s.get('exact_return', float('nan')):.3f}",
            )
        )
        tabular.append(run_dir)
    plot_runs(
        tabular,
        out / "gridworld.png",
        labels=["Q-learning", "Dyna-Q"],
        title="GridWorld: episode return",
        hlines={"optimum": optimum},
    )
    lines += ["![GridWorld](gridworld.png)", ""]

    deep = []
    installed = {e.name for e in registry.entries("gym")}
    for algo in ("ppo", "dqn"):
        if algo not in installed:
            continue
        run_dir = out / f"{algo}-cartpole"
        print(f"[3/{n}] training {algo} on CartPole-v1 (tuned config)", flush=True)
        s = train(algo, env="CartPole-v1", out=run_dir, progress=progress, overwrite=overwrite)
        rows.append(_row(algo, s, "solved at 475"))
        deep.append((algo, run_dir))
    if deep:
        plot_runs(
            [d for _, d in deep],
            out / "cartpole.png",
            labels=[a for a, _ in deep],
            title="CartPole-v1",
            hlines={"solved": 475},
        )
        lines += ["![CartPole](cartpole.png)", ""]

    if with_llm:
        from rlfoundry.llm.pipeline import run_pipeline

        print(
            f"[4/{n}] language-model pipeline on arithmetic: pre-train -> SFT (stops at "
            "its target accuracy) -> GRPO",
            flush=True,
        )
        res = run_pipeline(
            task="arithmetic",
            out=out / "llm-arithmetic",
            progress=progress,
            overwrite=overwrite,
        )
        llm_line = (
            f"Language model, held-out arithmetic exact match: SFT {res['accuracy_before']:.1%}"
            f" -> after GRPO {res['accuracy_after']:.1%}."
        )
        lines += ["## Language model: arithmetic", "", llm_line, ""]

    lines[2:2] = rows + [""]
    lines.append(
        f"Total time: {time.perf_counter() - t0:.0f} s. Every run directory above holds config.yaml, metrics.csv, TensorBoard events, a checkpoint and summary.json."
    )
    report = out / "REPORT.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    print("\n".join(rows))
    if llm_line:
        print(f"\n{llm_line}")
    print(f"\nreport: {report}")
    return report


def register(sub: Any) -> None:
    p = sub.add_parser(
        "quickstart",
        help="the main job: an end-to-end tour on built-in defaults",
        description="Solve the GridWorld exactly, train Q-learning and Dyna-Q on it, PPO and "
        "DQN on CartPole-v1, and a tiny language model on arithmetic (pre-train -> SFT -> "
        "GRPO); print a table and write OUT/REPORT.md with plots. About 3-5 minutes on an "
        "idle 2-core CPU, longer on a shared one (about 1 without the language model).",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="directory for the runs and REPORT.md (default runs/quickstart-TIME)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="let --out be the directory of an earlier quickstart: its runs are started again",
    )
    p.add_argument(
        "--no-llm",
        action="store_true",
        help="skip the language-model pipeline (stage 4; 3 stages instead of 4)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / f"quickstart-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    run_quickstart(
        out, include_llm=not args.no_llm, progress=not args.no_progress, overwrite=args.overwrite
    )
    return 0
