"""`rlfoundry llm ...`: the language-model commands.

    rlfoundry llm pretrain --task arithmetic --out runs/pre
    rlfoundry llm sft --task arithmetic --model runs/pre --out runs/sft [--set learning_rate=1e-3]
    rlfoundry llm grpo --model runs/sft --task arithmetic --steps 50 --out runs/grpo
    rlfoundry llm reward-model --data pairs.jsonl --out runs/rm
    rlfoundry llm grpo --resume runs/grpo
    rlfoundry llm generate runs/sft --prompt "12+7=" [--prompt ...] [--temperature 1]
    rlfoundry llm eval runs/sft --task arithmetic       # held-out exact-match accuracy
    rlfoundry llm pipeline --task arithmetic            # pre-train -> SFT -> GRPO
    rlfoundry llm pipeline --resume runs/pipeline-arithmetic-...   # after a crash
    rlfoundry llm import-gguf MODEL.gguf --out models/m  # a GGUF model as a starting model

One training command per LLM stage of `rlfoundry.registry` (`rlfoundry list` shows
them), each trained by `rlfoundry.api.train`. They take `--config FILE.yaml` and
repeatable `--set key=value` (the keys of the stage's Config: `rlfoundry list llm-sft`);
`--model/--task/--data/--steps/--seed` are shortcuts for the same keys (`--steps` sets
`total_steps`, `--data` the stage's data file). `--out` must be new or empty unless
`--overwrite`; `--set checkpoint_every=...` sets how often a stage checkpoints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rlfoundry import registry


def _print(summary: dict[str, Any]) -> None:
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:>22}  {value}")


def cmd_stage(args: argparse.Namespace) -> int:
    from rlfoundry.api import train
    from rlfoundry.runtime.config import parse_overrides

    entry = registry.get(args.entry)
    overrides: dict[str, Any] = {}
    for key, value in (("model", args.model), ("task", args.task), (entry.data_key, args.data)):
        if key is not None and value is not None:
            overrides[key] = value
    overrides.update(parse_overrides(args.set))
    summary = train(
        entry.name,
        steps=args.steps,
        seed=args.seed,
        out=args.out,
        config=args.config,
        overrides=overrides,
        resume=args.resume,
        progress=not args.no_progress,
        stop_at_step=args.stop_at,
        overwrite=args.overwrite,
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


def cmd_import_gguf(args: argparse.Namespace) -> int:
    from rlfoundry.llm.gguf import cmd_import_gguf

    return cmd_import_gguf(args)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from rlfoundry.llm.pipeline import run_pipeline

    if args.resume and args.out:
        from rlfoundry.errors import ConfigError

        raise ConfigError("--resume DIR names the pipeline's directory; drop --out.")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.resume or args.out or f"runs/pipeline-{args.task or 'arithmetic'}-{stamp}")
    res = run_pipeline(
        task=args.task,
        out=out,
        progress=not args.no_progress,
        seed=args.seed,
        resume=args.resume is not None,
        overwrite=args.overwrite,
    )
    print(
        f"{res['task']}: held-out exact match {res['accuracy_before']:.1%} after SFT -> "
        f"{res['accuracy_after']:.1%} after GRPO  ({out})"
    )
    return 0


def _stage_parser(sub: Any, entry: registry.Entry) -> None:
    stage = entry.name.removeprefix(registry.LLM_PREFIX)
    p = sub.add_parser(stage, help=entry.about, description=entry.about)
    p.add_argument("--model", help="starting model: DIR or tiny:nano|micro|small (sets model=)")
    p.add_argument("--task", help="built-in task: arithmetic, sentiment, format (sets task=)")
    if entry.data_key is not None:
        p.add_argument("--data", help=f"JSONL file to train on (sets {entry.data_key}=)")
    p.add_argument("--steps", type=int, help="optimizer steps / iterations (sets total_steps=)")
    p.add_argument("--seed", type=int, help="random seed (sets seed=)")
    p.add_argument("--out", help=f"run directory (default runs/{stage}-TIME)")
    p.add_argument("--config", help="YAML file of config values")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the run (or a run's files) in --out"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--stop-at", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_stage, entry=entry.name, data=None)


def register(subparsers: Any) -> None:
    """Add `rlfoundry llm` and its commands (called through cli.main.EXTRA_COMMANDS)."""
    llm = subparsers.add_parser(
        "llm", help="language models: the training stages, generate, eval, pipeline"
    )
    sub = llm.add_subparsers(dest="llm_command", metavar="COMMAND", required=True)
    for entry in registry.REGISTRY.values():
        if entry.kind == "llm":
            _stage_parser(sub, entry)

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

    p = sub.add_parser(
        "import-gguf", help="convert a GGUF file into a model directory the stages can start from"
    )
    p.add_argument("gguf", help="the .gguf file")
    p.add_argument("--out", required=True, help="model directory to write (e.g. models/smollm2)")
    p.set_defaults(func=cmd_import_gguf)

    p = sub.add_parser(
        "pipeline",
        help="pre-train -> SFT -> GRPO on a built-in task; prints accuracy before/after RL",
    )
    p.add_argument("--task", help="built-in task (default arithmetic)")
    p.add_argument("--out", help="directory of the three runs (default runs/pipeline-TASK-TIME)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument(
        "--resume", metavar="DIR", help="continue the pipeline in DIR (finished stages are kept)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace the runs in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_pipeline)
