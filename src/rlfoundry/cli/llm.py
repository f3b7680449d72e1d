"""`rlfoundry llm ...`: the language-model commands.

    rlfoundry llm pretrain --task arithmetic --out runs/pre
    rlfoundry llm sft --task arithmetic --model runs/pre --out runs/sft [--set lr=1e-3]
    rlfoundry llm sft --resume runs/sft
    rlfoundry llm generate runs/sft --prompt "12+7=" [--prompt ...] [--temperature 1]
    rlfoundry llm eval runs/sft --task arithmetic       # held-out exact-match accuracy

Training stages take `--config FILE.yaml` and repeatable `--set key=value` (the keys
of the stage's Config; `rlfoundry llm sft --help` lists the shortcuts). The RL stages
(reward-model, dpo, ppo, grpo, rloo, pipeline) are added by `llm/rl_cli.py`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

#: stage name -> (module, help)
STAGES = {
    "pretrain": ("rlfoundry.llm.pretrain", "pre-train a causal LM on a task's corpus"),
    "sft": ("rlfoundry.llm.sft", "supervised fine-tuning, loss on completion tokens only"),
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
            overrides["corpus" if key == "data" and args.stage == "pretrain" else key] = value
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


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from rlfoundry.errors import RLFoundryError
    from rlfoundry.llm.data import load_jsonl
    from rlfoundry.llm.generation import generate
    from rlfoundry.llm.models import load_model, load_tokenizer

    prompts = list(args.prompt or [])
    if args.prompts:
        prompts += [r["prompt"] for r in load_jsonl(args.prompts, ["prompt"])]
    if not prompts:
        raise RLFoundryError("No prompts: give --prompt TEXT (repeatable) or --prompts FILE.jsonl.")
    if args.n < 1:
        raise RLFoundryError(f"-n must be at least 1, got {args.n}.")
    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.model_dir)
    model = load_model(args.model_dir).eval()
    rep = [p for p in prompts for _ in range(args.n)]
    gen = torch.Generator().manual_seed(args.seed)
    out = generate(
        model,
        tok,
        rep,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        generator=gen,
    )
    for i, (p, c) in enumerate(zip(rep, out.texts)):
        if args.json:
            print(json.dumps({"prompt": p, "completion": c, "ended": not bool(out.truncated[i])}))
        else:
            print(f"{p}{c}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from rlfoundry.llm.evaluation import evaluate_accuracy
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.tasks import get_task

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    tok = load_tokenizer(args.model_dir)
    model = load_model(args.model_dir).eval()
    acc = evaluate_accuracy(model, tok, task, n=args.n, seed=args.seed)
    n = len(task.prompts("test", args.n, args.seed))
    if args.json:
        print(json.dumps({"task": args.task, "accuracy": acc, "n": n}))
    else:
        print(f"{args.task}: held-out exact-match accuracy {acc:.1%} ({round(acc * n)}/{n})")
    return 0


def _stage_parser(sub: Any, name: str, help_: str) -> None:
    p = sub.add_parser(name, help=help_, description=help_)
    p.add_argument("--model", help="starting model: DIR or tiny:nano|micro|small (sets model=)")
    p.add_argument("--task", help="built-in task: arithmetic, sentiment, format (sets task=)")
    data_key = "corpus" if name == "pretrain" else "data"
    p.add_argument("--data", help=f"JSONL file to train on (sets {data_key}=)")
    p.add_argument("--steps", type=int, help="optimizer steps (sets steps=)")
    p.add_argument("--seed", type=int, help="random seed (sets seed=)")
    p.add_argument("--out", help=f"run directory (default runs/{name}-TIME)")
    p.add_argument("--config", help="YAML file of config values")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--stop-at", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_stage, stage=name)


def register(subparsers: Any) -> None:
    """Add `rlfoundry llm` and its commands (called through cli.EXTRA_COMMANDS)."""
    llm = subparsers.add_parser(
        "llm", help="language models: pretrain, sft, generate, eval, RL stages"
    )
    sub = llm.add_subparsers(dest="llm_command", metavar="COMMAND", required=True)
    for name, (_, help_) in STAGES.items():
        _stage_parser(sub, name, help_)

    p = sub.add_parser("generate", help="complete prompts with a trained model")
    p.add_argument("model_dir", help="run directory or model directory (or tiny:nano)")
    p.add_argument("--prompt", action="append", help="prompt text (repeatable)")
    p.add_argument("--prompts", help="JSONL file of {prompt}")
    p.add_argument("-n", type=int, default=1, help="completions per prompt")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=0, help="0 = no top-k truncation")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--json", action="store_true", help="one JSON object per completion")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("eval", help="held-out exact-match accuracy of a model on a task")
    p.add_argument("model_dir", help="run directory or model directory")
    p.add_argument("--task", default="arithmetic")
    p.add_argument("-n", "--n", type=int, default=200, help="held-out prompts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    try:
        from rlfoundry.cli.llm_rl import register as register_rl
    except ImportError:
        return
    register_rl(sub)
