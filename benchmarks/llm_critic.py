"""PPO with a value head against GRPO and RLOO: reward against samples, and time.

    python benchmarks/llm_critic.py                       # arithmetic, 3 seeds, ~2 CPU min
    python benchmarks/llm_critic.py --steps 150 --seeds 0 1 2 --out runs/critic

TRL deleted its PPOTrainer; rlfoundry keeps token-level PPO with a learnt critic
(`llm ppo`: GAE over the completion's tokens, a value head on a copy of the starting
model) next to the critic-free group methods (`llm grpo`: group-normalised reward;
`llm rloo`: leave-one-out baseline). This script runs the three on the same task from
the same starting model with the same sampling budget and shared settings:

- starting model: the pipeline's SFT model on arithmetic (pre-training + SFT of the
  nano model, seed 0; `pipeline.pretrain_and_sft`), built once;
- `--rollout` completions per step (GRPO and RLOO: rollout / group prompts x `--group`
  completions; PPO: rollout prompts, one completion each), `--steps` steps, so every
  method draws the same number of samples; temperature 1; the task's 5-token budget;
- the same optimisation: lr constant after a 5-step warm-up, 2 epochs over each
  rollout in 2 mini-batches, clip 0.2, gradient clip 1, token-mean loss;
- no KL penalty in any of them (ppo kl_coef 0, grpo beta 0, rloo beta 0), so what
  differs is the baseline: the critic's values (GAE, lambda 0.95, gamma 1) against the
  group mean/std against the leave-one-out mean.

Reported per method (median over seeds, each seed also shown): the mean training
reward (exact match on the sampled completions) in windows of samples drawn, the
held-out greedy exact match (200 sums) at the end, and the wall and CPU seconds of the
whole run (in this process, one torch thread; model loading and the held-out
evaluations included, the same for all three). Results go to `OUT/critic.json` per run
(a killed benchmark resumes where it stopped) and, unless --no-results, to the section
`--section` (default `llm-critic`) of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_marked_section  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
METHODS = ("ppo", "grpo", "rloo")


def overrides(method: str, model: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    common = {
        "model": model,
        "task": args.task,
        "seed": seed,
        "total_steps": args.steps,
        "rollout_size": args.rollout,
        "minibatch_size": args.rollout // 2,
        "update_epochs": 2,
        "temperature": 1.0,
        "learning_rate": args.lr,
        "warmup_steps": 5,
        "clip_coef": 0.2,
        "eval_every": 0,
        "eval_size": args.eval_size,
    }
    if method == "ppo":
        return {**common, "kl_coef": 0.0, "gae_lambda": 0.95, "gamma": 1.0, "vf_coef": 0.5}
    return {**common, "group_size": args.group, "beta": 0.0, "loss_agg": "token-mean"}


def one_run(method: str, model: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Train one method on one seed in this process; its figures, cached in OUT."""
    from rlfoundry.api import train
    from rlfoundry.runtime.plotting import read_metrics

    out = Path(args.out) / f"{method}-{seed}"
    done = out / "critic.json"
    ov = overrides(method, model, args, seed)
    if done.is_file():  # a finished run of the same settings: reuse it
        res = json.loads(done.read_text())
        if res.get("overrides") == ov:
            return res
    w0, c0 = time.perf_counter(), time.process_time()
    s = train(f"llm-{method}", out=out, overrides=ov, progress=False, overwrite=True)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    m = read_metrics(out)
    rew = [float(x) for x in m["reward"] if x == x]
    res = {"method": method, "seed": seed, "reward": rew, "wall_s": wall, "cpu_s": cpu,
           "accuracy": float(s["eval_accuracy"]), "samples_per_step": args.rollout, "overrides": ov}  # fmt: skip
    done.write_text(json.dumps(res))
    return res


def windows(rew: list[float], k: int) -> list[float]:
    """Mean reward in k equal windows of the steps (equal windows of samples drawn)."""
    return [float(np.mean(c)) for c in np.array_split(np.array(rew), k)]


def section(runs: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    k = args.windows
    per = args.steps // k * args.rollout
    cols = " | ".join(f"≤{(i + 1) * per:,} samples" for i in range(k))
    lines = [
        f"<!-- {args.section} -->",
        f"## LLM: PPO with a value head vs GRPO vs RLOO, lr {args.lr:g} (`benchmarks/llm_critic.py`)",
        "",
        f"Task {args.task} (exact-match reward) from the pipeline's SFT model (nano, pre-training "
        f"+ SFT, seed 0; held-out exact match {meta['start_accuracy']:.1%} at the start). Each "
        f"method: {args.steps} steps x {args.rollout} completions = {args.steps * args.rollout:,} "
        f"samples, temperature 1, lr {args.lr:g} (5 warm-up steps), 2 epochs x 2 mini-batches, "
        f"clip 0.2, no KL term in any; GRPO and RLOO {args.rollout // args.group} prompts x "
        f"{args.group}, PPO {args.rollout} prompts x 1 with GAE (lambda 0.95, gamma 1) and a value "
        f"head (vf_coef 0.5). Seeds {', '.join(map(str, args.seeds))}; medians over seeds, "
        f"per seed in brackets. {meta['date']}; CPU, 1 torch thread, {meta['machine']}; load "
        f"average {meta['load']:.1f} before, {meta['load_after']:.1f} after (a shared machine: "
        "wall times are noisy; CPU seconds much less so).",
        "",
        f"Mean training reward by samples drawn (windows of {per:,} samples):",
        "",
        f"| method | {cols} | held-out exact match after | wall s | CPU s |",
        "|---|" + "---:|" * (k + 3),
    ]
    for method in METHODS:
        rows = [r for r in runs if r["method"] == method]
        if not rows:
            continue
        win = np.array([windows(r["reward"], k) for r in rows])  # [seeds, k]
        med = np.median(win, axis=0)
        cells = [f"{med[i]:.3f}" for i in range(k)]
        cells[-1] += " (" + ", ".join(f"{w:.3f}" for w in win[:, -1]) + ")"

        def stat(key: str, fmt: str, rows: list[dict[str, Any]] = rows) -> str:
            vals = [r[key] for r in rows]
            return f"{fmt.format(np.median(vals))} (" + ", ".join(fmt.format(v) for v in vals) + ")"

        name = {"ppo": "PPO + value head", "grpo": "GRPO", "rloo": "RLOO"}[method]
        lines.append(
            f"| {name} | {' | '.join(cells)} | {stat('accuracy', '{:.1%}')} "
            f"| {stat('wall_s', '{:.0f}')} | {stat('cpu_s', '{:.0f}')} |"
        )
    lines += [
        "",
        f"Reproduce: `python benchmarks/llm_critic.py --steps {args.steps} --rollout "
        f"{args.rollout} --lr {args.lr:g} --seeds {' '.join(map(str, args.seeds))} --section "
        f"{args.section}`.",
        f"<!-- /{args.section} -->",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="arithmetic")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rollout", type=int, default=64)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--eval-size", type=int, default=200)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--out", default="runs/llm-critic")
    ap.add_argument("--no-results", action="store_true")
    ap.add_argument("--section", default="llm-critic", help="RESULTS.md section name")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    from rlfoundry.llm.evaluation import task_accuracy
    from rlfoundry.llm.models import load_model, load_tokenizer, model_dir
    from rlfoundry.llm.pipeline import pretrain_and_sft

    sft = Path(args.out) / "sft"
    if not (sft / "sft" / "summary.json").is_file():
        pretrain_and_sft(task=args.task, out=sft, seed=0, progress=False, overwrite=True)
    model = str(sft / "sft")
    path = model_dir(model)
    cfg = argparse.Namespace(task=args.task, eval_size=args.eval_size, max_new_tokens=0)
    start = task_accuracy(load_model(path), load_tokenizer(path), cfg)["eval_accuracy"]
    runs = []
    for seed in args.seeds:  # methods interleaved within a seed: drifts in load hit all three
        for method in args.methods:
            r = one_run(method, model, args, seed)
            print(json.dumps({k: v for k, v in r.items() if k != "reward"}), flush=True)
            runs.append(r)
    meta = {
        "start_accuracy": start,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load": load,
        "load_after": os.getloadavg()[0],
    }
    text = section(runs, args, meta)
    print(text)
    if not args.no_results:
        write_marked_section(RESULTS, args.section, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
