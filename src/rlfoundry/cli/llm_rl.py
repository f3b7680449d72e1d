"""`rlfoundry llm reward-model | dpo | ppo | grpo | rloo | pipeline`.

    rlfoundry llm grpo --model runs/sft --task arithmetic --steps 50 --out runs/grpo
    rlfoundry llm grpo --resume runs/grpo
    rlfoundry llm reward-model --data pairs.jsonl --set lr=3e-4
    rlfoundry llm pipeline --task arithmetic

Every stage takes `--config FILE.yaml` and repeatable `--set key=value` (see the
stage's Config for the keys); the flags `--model/--task/--data/--steps/--seed` are
shortcuts for the same keys. `llm/cli.py` calls `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

STAGES = {
    "reward-model": (
        "rlfoundry.llm.reward_model",
        "train a Bradley-Terry reward model on preference pairs",
    ),
    "dpo": ("rlfoundry.llm.dpo", "Direct Preference Optimization against a frozen reference"),
    "ppo": ("rlfoundry.llm.ppo", "token-level PPO with a value network and a KL penalty"),
    "grpo": ("rlfoundry.llm.grpo", "GRPO: group-relative advantages, clipped ratio, optional KL"),
    "rloo": ("rlfoundry.llm.rloo", "REINFORCE leave-one-out with a KL penalty in the reward"),
}


def _print(summary: dict[str, Any]) -> None:
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:>22}  {value}")


def cmd_stage(args: argparse.Namespace) -> int:
    from rlfoundry.llm.rl_common import run_stage
    from rlfoundry.runtime.config import parse_overrides

    module = importlib.import_module(STAGES[args.stage][0])
    overrides: dict[str, Any] = {}
    for key in ("model", "task", "data", "steps", "seed"):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    overrides.update(parse_overrides(args.set))
    if args.resume:
        out = Path(args.resume)
    else:
        out = Path(args.out or f"runs/{args.stage}-{time.strftime('%Y%m%d-%H%M%S')}")
    summary = run_stage(
        module,
        out,
        config=args.config,
        overrides=overrides,
        resume=bool(args.resume),
        progress=not args.no_progress,
        stop_at_step=args.stop_at,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    if summary.get("status") == "interrupted":
        print(f"Interrupted; continue with: {summary['resume_command']}", file=sys.stderr)
        return 130
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from rlfoundry.llm.pipeline import run_pipeline

    out = Path(args.out or f"runs/pipeline-{args.task}-{time.strftime('%Y%m%d-%H%M%S')}")
    res = run_pipeline(task=args.task, out=out, progress=not args.no_progress, seed=args.seed)
    print(
        f"{args.task}: held-out exact match {res['accuracy_before']:.1%} after SFT -> "
        f"{res['accuracy_after']:.1%} after GRPO  ({out})"
    )
    return 0


def register(sub: Any) -> None:
    """Add the preference/RL stages and the pipeline to the `llm` sub-parsers."""
    for name, (_, help_) in STAGES.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--model", help="starting model directory (sets model=)")
        p.add_argument("--task", help="built-in task (sets task=)")
        if name in ("reward-model", "dpo"):
            p.add_argument("--data", help="JSONL of {prompt, chosen, rejected} pairs (sets data=)")
        p.add_argument("--steps", type=int, help="optimizer steps / iterations (sets steps=)")
        p.add_argument("--seed", type=int, help="random seed (sets seed=)")
        p.add_argument("--out", help=f"run directory (default runs/{name}-TIME)")
        p.add_argument("--config", help="YAML file of config values")
        p.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help="override a config value"
        )
        p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
        p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        p.add_argument("--stop-at", type=int, help=argparse.SUPPRESS)
        p.set_defaults(func=cmd_stage, stage=name)

    p = sub.add_parser(
        "pipeline",
        help="pre-train -> SFT -> GRPO on a built-in task; prints accuracy before/after RL",
    )
    p.add_argument("--task", default="arithmetic")
    p.add_argument("--out", help="directory of the three runs (default runs/pipeline-TASK-TIME)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_pipeline)
