"""`rlfoundry llm ...`: the language-model commands.

    rlfoundry llm pretrain --task arithmetic --out runs/pre
    rlfoundry llm sft --task arithmetic --model runs/pre --out runs/sft [--set learning_rate=1e-3]
    rlfoundry llm grpo --model runs/sft --task arithmetic --steps 50 --out runs/grpo
    rlfoundry llm reward-model --data pairs.jsonl --out runs/rm
    rlfoundry llm grpo --resume runs/grpo
    rlfoundry llm grpo --model DIR --data prompts.csv --reward numeric_match  # answer column
    rlfoundry llm generate runs/sft --prompt "12+7=" [--prompt ...] [--temperature 1]
    rlfoundry llm eval runs/sft --task arithmetic       # held-out accuracy (the task's own check)
    rlfoundry llm eval DIR --data test.parquet --reward numeric_match   # any data, any reward
    rlfoundry llm list grpo                             # every config key, with its meaning
    rlfoundry llm pipeline --task arithmetic            # pre-train -> SFT -> GRPO
    rlfoundry llm pipeline --resume runs/pipeline-arithmetic-...   # after a crash
    rlfoundry llm import-gguf MODEL.gguf --out models/m  # a GGUF model as a starting model

One training command per LLM stage of `rlfoundry.registry` (`rlfoundry list` shows
them), each trained by `rlfoundry.api.train`. They take `--config FILE.yaml` and
repeatable `--set key=value` (the keys of the stage's Config: `rlfoundry list llm-sft`);
`--model/--task/--data/--steps/--seed` are shortcuts for the same keys (`--steps` sets
`total_steps`, `--data` the stage's dataset, `--reward` an RL stage's reward). A dataset is
a .jsonl/.json/.csv/.parquet file, a `save_to_disk` directory or a hub name
(`rlfoundry.llm.datasets`). `--out` must be new or empty unless `--overwrite`;
`--set checkpoint_every=...` sets how often a stage checkpoints.
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
    flags = (
        ("model", args.model),
        ("task", args.task),
        (entry.data_key, args.data),
        ("reward", getattr(args, "reward", None)),
    )
    for key, value in flags:
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
    from rlfoundry.llm.generation import generate
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.prompts import load_prompts

    if not args.prompt and not args.prompts:
        raise RLFoundryError("No prompts: give --prompt TEXT (repeatable) or --prompts FILE.")
    if args.n < 1:
        raise RLFoundryError(f"-n must be at least 1, got {args.n}.")
    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.model_dir)
    prompts = list(args.prompt or [])
    if args.prompts:  # messages get the model's chat template
        prompts += list(load_prompts(argparse.Namespace(prompts=args.prompts), tok))
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

    from rlfoundry.errors import RLFoundryError
    from rlfoundry.llm.chat_format import task_texts
    from rlfoundry.llm.evaluation import evaluate_accuracy, score_prompts
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.prompts import PromptSet, load_prompts
    from rlfoundry.llm.rewards import check_reward_columns, parse_reward
    from rlfoundry.llm.tasks import get_task

    torch.set_num_threads(args.threads)
    if args.data is None and not args.reward:  # a task's held-out exact match
        task = get_task(args.task or "arithmetic")
        tok = load_tokenizer(args.model_dir)
        model = load_model(args.model_dir).eval()
        n_prompts = args.n or 200
        acc = evaluate_accuracy(model, tok, task, n=n_prompts, seed=args.seed)
        n = len(task.prompts("test", n_prompts, args.seed))
        name = args.task or "arithmetic"
        if args.json:
            print(json.dumps({"task": name, "accuracy": acc, "n": n}))
        else:
            k = round(acc * n)
            print(f"{name}: held-out accuracy {acc:.1%} ({k}/{n} greedy answers the task accepts)")
        return 0
    if args.data is not None and not args.reward and not args.task:
        raise RLFoundryError(
            "Nothing scores --data: give --reward (e.g. numeric_match, exact_match, "
            "my_rewards.py:score, rm:DIR, judge:DIR) or --task NAME for its reward."
        )
    task = get_task(args.task) if args.task else None
    reward = parse_reward(
        args.reward or ["task"], task, args.judge_template or None, args.judge_model
    )
    tok = load_tokenizer(args.model_dir)
    if args.data is not None:
        prompts = load_prompts(argparse.Namespace(prompts=args.data), tok)
    else:
        texts = task_texts(task, tok, task.prompts("test", args.n or 200, args.seed))
        prompts = PromptSet(texts, source=f"task {task.name}")
    check_reward_columns(reward, list(prompts.extra), prompts.source)
    keep = range(min(args.n, len(prompts)) if args.n else len(prompts))
    max_new = args.max_new_tokens or (task.max_new_tokens if task else 64)
    model = load_model(args.model_dir).eval()
    res = score_prompts(
        model,
        tok,
        [prompts[i] for i in keep],
        reward,
        prompts.columns(keep),
        max_new_tokens=max_new,
        batch_size=args.batch_size,
        temperature=args.temperature,
        seed=args.seed,
    )
    if args.save:
        with open(args.save, "w", encoding="utf-8") as f:
            for i, c, r in zip(keep, res["completions"], res["rewards"]):
                f.write(json.dumps({"prompt": prompts[i], "completion": c, "reward": r}) + "\n")
    summary = {k: v for k, v in res.items() if k not in ("completions", "rewards")}
    summary = {"data": args.data or f"task {task.name}", "reward": reward.name, **summary}
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rlfoundry.cli.listing import cmd_list as list_entry

    if args.stage is None:
        for entry in registry.entries("llm"):
            print(f"{entry.name.removeprefix(registry.LLM_PREFIX):>14}  {entry.about}")
        return 0
    name = args.stage if args.stage.startswith(registry.LLM_PREFIX) else "llm-" + args.stage
    return list_entry(argparse.Namespace(algo=name))


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
        p.add_argument(
            "--data",
            help=f"dataset: .jsonl/.json/.csv/.parquet, a save_to_disk dir or a hub name "
            f"(sets {entry.data_key}=)",
        )
    if entry.data_key == "prompts":
        p.add_argument(
            "--reward",
            action="append",
            metavar="SPEC",
            help="reward source, repeatable: task, numeric_match, module:fn, rm:DIR, "
            "judge:DIR, 0.5*SPEC (sets reward=)",
        )
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
    p.add_argument("--prompts", help="dataset with a prompt column (text or messages)")
    p.add_argument("-n", type=int, default=1, help="completions per prompt")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=0, help="0 = no top-k truncation")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--json", action="store_true", help="one JSON object per completion")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "eval",
        help="score a model: a task's held-out accuracy, or any dataset with any reward",
    )
    p.add_argument("model_dir", help="run directory or model directory")
    p.add_argument("--task", help="built-in task (default arithmetic without --data)")
    p.add_argument("--data", help="dataset with a prompt column; other columns go to the reward")
    p.add_argument(
        "--reward",
        action="append",
        metavar="SPEC",
        help="reward or verifier, repeatable: numeric_match, exact_match, module:fn, "
        "file.py:fn, rm:DIR, judge:DIR, judge:http://HOST/v1, task, 0.5*SPEC",
    )
    p.add_argument("-n", "--n", type=int, default=0, help="prompts (0 = 200 of a task, all data)")
    p.add_argument("--max-new-tokens", type=int, default=0, help="0 = the task's, else 64")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--judge-template", help="judge prompt with {prompt}, {completion}, {COLUMN}")
    p.add_argument("--judge-model", default="default", help="model name sent to an HTTP judge")
    p.add_argument("--save", metavar="FILE.jsonl", help="write prompt, completion, reward rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("list", help="every config key of a stage, with its meaning")
    p.add_argument("stage", nargs="?", help="a stage (grpo, sft, ...); none = list the stages")
    p.set_defaults(func=cmd_list)

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
