"""``rlfoundry trade ...`` and ``rlfoundry drive ...``, hooked in through ``EXTRA_COMMANDS``.

rlfoundry trade backtest RUN_DIR [RUN_DIR ...] [--period test] [--out DIR] [--llm-* ...]
rlfoundry trade report [--policy buy_and_hold|ma_crossover|random|module:fn ...] [--data sp500]
rlfoundry trade walkforward ALGO [--data sp500] [--folds 3] [--steps N] [--seeds 0 1 2]
rlfoundry drive eval [RUN_DIR ...] [--env rlfoundry/Highway-v0] [--episodes 20] [--video F.gif]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _add_llm_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LLM evaluator (reviews each order; reported as a '+ LLM' row)")
    g.add_argument(
        "--llm-endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    g.add_argument("--llm-model", default="default", help="model name sent to the endpoint")
    g.add_argument(
        "--llm-model-dir", help="local transformers model directory instead of an endpoint"
    )
    g.add_argument("--llm-mode", default="filter", choices=["filter", "shaping", "both"])
    g.add_argument(
        "--llm-decision",
        default="approve_veto",
        choices=["approve_veto", "actions", "free_text"],
        help="closed question scored by log-probability (or JSON-constrained on a server), "
        "or free_text (the old open verdict)",
    )
    g.add_argument(
        "--llm-calibrate",
        action="store_true",
        help="subtract each option's log-probability for a content-free prompt",
    )
    g.add_argument("--llm-news", help="CSV of dated news (date,text) shown to the LLM")
    g.add_argument(
        "--llm-cache", help="response cache directory (default ~/.cache/rlfoundry/llm_eval)"
    )


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from rlfoundry.runtime.config import parse_overrides

    kwargs: dict[str, Any] = {"data": args.data}
    kwargs.update({k: yaml.safe_load(v) for k, v in parse_overrides(args.set).items()})
    return kwargs


def _print_table(table: dict[str, Any], out: Path) -> None:
    from rlfoundry.apps.trading.backtest import markdown_table

    print(markdown_table(table))
    print(f"\nreport: {out / 'report.md'}")


def cmd_trade_backtest(args: argparse.Namespace) -> int:
    from rlfoundry.apps.trading.cli import backtest_runs, llm_config

    out = Path(args.out or Path(args.run_dirs[0]) / f"backtest_{args.period.replace(':', '_')}")
    table = backtest_runs(
        args.run_dirs, out, args.period, args.random_seeds, llm_config(args), args.label
    )
    _print_table(table, out)
    return 0


def cmd_trade_report(args: argparse.Namespace) -> int:
    from rlfoundry.apps.trading.cli import llm_config, report_policies

    out = Path(args.out)
    table = report_policies(
        args.policy or [], out, _env_kwargs(args), args.period, args.random_seeds, llm_config(args)
    )
    _print_table(table, out)
    return 0


def cmd_trade_walkforward(args: argparse.Namespace) -> int:
    from rlfoundry.apps.trading.cli import walk_forward

    out = Path(args.out or f"runs/walkforward-{args.algo}-{args.data}")
    kwargs = _env_kwargs(args)
    table = walk_forward(
        args.algo,
        out,
        kwargs.pop("data"),
        args.folds,
        args.steps,
        args.seeds,
        args.train_bars,
        kwargs,
        args.random_seeds,
    )
    _print_table(table, out)
    return 0


def cmd_drive_eval(args: argparse.Namespace) -> int:
    from rlfoundry.apps.driving.evaluate import (
        compare,
        idle_policy,
        load_run_policy,
        markdown_table,
        record_episode,
    )

    policies, env_id, env_kwargs = {}, args.env, {}
    if args.run_dirs:
        loaded = [load_run_policy(d) for d in args.run_dirs]
        env_id, env_kwargs = loaded[0][1], loaded[0][2]
        policies[args.label] = [lambda env, p=p: p for p, _, _ in loaded]
    table = compare(policies, env_id, env_kwargs, args.episodes, args.seed)
    text = markdown_table(table)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "driving_eval.md").write_text(
            f"# Driving evaluation on {env_id}, {args.episodes} episodes from seed {args.seed}\n\n"
            + text
            + "\n"
        )
        (out / "driving_eval.json").write_text(json.dumps(table, indent=1) + "\n")
    if args.video:
        from rlfoundry.envs.evaluation import make_env

        if args.run_dirs:
            policy = loaded[0][0]
        else:
            env = make_env(env_id, **env_kwargs)
            policy = idle_policy(env)
            env.close()
        info = record_episode(policy, env_id, args.video, args.seed, env_kwargs)
        print(f"video: {info['path']} ({info['steps']} steps, crashed={info['crashed']})")
    return 0


def register(sub: Any) -> None:
    """Add the ``trade`` and ``drive`` command groups to the ``rlfoundry`` parser."""
    trade = sub.add_parser(
        "trade",
        help="trading app: an RL agent on daily prices, backtests against baselines, reports",
    )
    tsub = trade.add_subparsers(dest="trade_command", required=True)

    p = tsub.add_parser(
        "backtest", help="backtest trained Trading-v0 runs (one per seed) against baselines"
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--period", default="test", help="train, val, test, all or START:END dates")
    p.add_argument("--out", help="report directory (default RUN_DIR/backtest_PERIOD)")
    p.add_argument("--random-seeds", type=int, default=3, help="seeds of the random baseline")
    p.add_argument("--label", help="name of the agent in the report")
    _add_llm_flags(p)
    p.set_defaults(func=cmd_trade_backtest)

    p = tsub.add_parser("report", help="backtest baselines or any policy (module:function)")
    p.add_argument(
        "--policy",
        action="append",
        help="module:function: function(view) gets a read-only history up to t (never the "
        "env) and returns policy(obs)->action; it runs in its own process (repeatable); "
        "the three baselines are always included",
    )
    p.add_argument("--data", default="sp500", help="sp500, nasdaq, googl, eurusd or a CSV path")
    p.add_argument("--period", default="test")
    p.add_argument("--out", default="trading_report")
    p.add_argument("--random-seeds", type=int, default=3)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="TradingEnv keyword")
    _add_llm_flags(p)
    p.set_defaults(func=cmd_trade_report)

    p = tsub.add_parser("walkforward", help="train and test on rolling chronological folds")
    p.add_argument("algo")
    p.add_argument("--data", default="sp500")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--steps", type=int, default=50_000, help="training steps per fold and seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-bars", type=int, help="rolling training window (default: expanding)")
    p.add_argument("--random-seeds", type=int, default=3)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="TradingEnv keyword")
    p.add_argument("--out")
    p.set_defaults(func=cmd_trade_walkforward)

    drive = sub.add_parser(
        "drive", help="driving app: highway-env with a driving reward, evaluation and videos"
    )
    dsub = drive.add_subparsers(dest="drive_command", required=True)
    p = dsub.add_parser(
        "eval", help="collision rate, speed, distance, braking vs random and always-IDLE"
    )
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="trained runs (one per seed)")
    p.add_argument("--env", default="rlfoundry/Highway-v0", help="env when no run is given")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=100_000, help="seed of the first episode")
    p.add_argument("--label", default="agent")
    p.add_argument("--out", help="directory for driving_eval.md/.json")
    p.add_argument("--video", help="record one episode to this .gif (or .mp4)")
    p.set_defaults(func=cmd_drive_eval)
