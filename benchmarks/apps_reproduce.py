"""Reproduce the tables of ``docs/applications.md``.

    python benchmarks/apps_reproduce.py trading --algos dqn ppo --seeds 0 1 2
    python benchmarks/apps_reproduce.py driving --algos dqn --seeds 0 1 2

Each trains with :func:`rlfoundry.api.train` and the shipped tuned configs (run
directories under ``--runs``), then backtests / evaluates with the same code as
``rlfoundry trade backtest`` and ``rlfoundry drive eval``, and writes Markdown tables,
JSON and figures under ``--out``. Finished runs are reused, so an interrupted
reproduction continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any


def _train(algo: str, env_id: str, seed: int, steps: int | None, out: Path) -> Path:
    from rlfoundry.api import train

    if (out / "summary.json").exists():
        return out
    if out.exists():  # an unfinished run: resume it if it checkpointed, else restart
        if (out / "checkpoint.safetensors").exists():
            train(resume=out, progress=False, evaluate_after=False)
            return out
        shutil.rmtree(out)
    train(algo, env=env_id, steps=steps, seed=seed, out=out, progress=False, evaluate_after=False)
    return out


def trading(args: argparse.Namespace) -> None:
    from rlfoundry.apps.trading.backtest import markdown_table, run_suite, write_report
    from rlfoundry.apps.trading.cli import run_policy_factory

    out = Path(args.out)
    policies: dict[str, list[Any]] = {}
    env_kwargs: dict[str, Any] = {}
    timings = {}
    for algo in args.algos:
        t0 = time.perf_counter()
        runs = [
            _train(
                algo,
                "rlfoundry/Trading-v0",
                s,
                args.steps,
                Path(args.runs) / f"trading-{algo}-s{s}",
            )
            for s in args.seeds
        ]
        timings[algo] = round(time.perf_counter() - t0, 1)
        loaded = [run_policy_factory(r) for r in runs]
        policies[f"{algo.upper()} agent (rlfoundry)"] = [m for m, _, _ in loaded]
        env_kwargs = loaded[0][1]
    for period in args.periods:
        results = run_suite(policies, env_kwargs, period, random_seeds=len(args.seeds) or 3)
        table = write_report(
            results,
            out / f"trading_{period}",
            f"Trading-v0 on {env_kwargs.get('data', 'sp500')}: {period} period",
            notes=[f"training seconds per algorithm (all seeds): {timings}"],
        )
        print(f"\n## {period}\n\n" + markdown_table(table))
        if args.img:
            Path(args.img).mkdir(parents=True, exist_ok=True)
            shutil.copy(
                out / f"trading_{period}" / "equity_drawdown.png",
                Path(args.img) / f"trading_equity_{period}.png",
            )


def driving(args: argparse.Namespace) -> None:
    from rlfoundry.apps.driving.evaluate import (
        compare,
        load_run_policy,
        markdown_table,
        record_episode,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    policies: dict[str, list[Any]] = {}
    first_policy = None
    timings = {}
    for algo in args.algos:
        t0 = time.perf_counter()
        runs = [
            _train(
                algo,
                args.env,
                s,
                args.steps,
                Path(args.runs) / f"driving-{algo}-{args.env.split('/')[-1]}-s{s}",
            )
            for s in args.seeds
        ]
        timings[algo] = round(time.perf_counter() - t0, 1)
        loaded = [load_run_policy(r) for r in runs]
        policies[f"{algo.upper()} agent (rlfoundry)"] = [lambda env, p=p: p for p, _, _ in loaded]
        first_policy = first_policy or loaded[0][0]
    t0 = time.perf_counter()
    table = compare(policies, args.env, {}, args.episodes, args.eval_seed)
    text = markdown_table(table)
    print(text)
    (out / "driving_eval.md").write_text(text + "\n")
    (out / "driving_eval.json").write_text(
        json.dumps(
            {"table": table, "train_seconds": timings, "eval_seconds": time.perf_counter() - t0},
            indent=1,
        )
        + "\n"
    )
    if args.img and first_policy is not None:
        name = args.env.split("/")[-1].split("-")[0].lower()
        info = record_episode(
            first_policy,
            args.env,
            Path(args.img) / f"driving_{name}_{args.algos[0]}.gif",
            args.eval_seed,
        )
        print(f"video: {info}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="app", required=True)
    for name in ("trading", "driving"):
        p = sub.add_parser(name)
        p.add_argument("--algos", nargs="+", default=["dqn", "ppo"])
        p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
        p.add_argument("--steps", type=int, help="training steps (default: the tuned config's)")
        p.add_argument("--runs", default="runs/apps")
        p.add_argument("--out", default=f"runs/apps/{name}_results")
        p.add_argument("--img", help="copy figures / videos here (docs/img)")
    sub.choices["trading"].add_argument("--periods", nargs="+", default=["val", "test"])
    sub.choices["driving"].add_argument("--env", default="rlfoundry/Highway-v0")
    sub.choices["driving"].add_argument("--episodes", type=int, default=30)
    sub.choices["driving"].add_argument("--eval-seed", type=int, default=100_000)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    trading(args) if args.app == "trading" else driving(args)


if __name__ == "__main__":
    main()
