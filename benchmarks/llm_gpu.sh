#!/usr/bin/env bash
# SFT and GRPO on SmolLM2-135M on one CUDA GPU in bf16, full fine-tuning and LoRA (rank 16):
# steps/s, tokens/s and peak GPU memory per run.
#
#   rlfoundry llm import-gguf SmolLM2-135M-Instruct.gguf --out models/smollm2   # once (docs/llm.md)
#   benchmarks/llm_gpu.sh models/smollm2 [OUT.jsonl]      # or: MODEL_DIR=models/smollm2 benchmarks/llm_gpu.sh
#
# STEPS (default 30) optimizer steps / GRPO iterations per run. Each run appends one JSON
# line to OUT (default benchmarks/llm_gpu_results.jsonl) and the table is printed at the end.
# tokens/s counts the tokens trained on (prompt + completion) in SFT and the completion
# tokens sampled in GRPO. Timing covers the run (summary.json's wall_seconds: the training
# loop and the final save of the weights or adapter), not the model load. Every stage and
# LoRA setting first runs WARMUP (default 3) untimed steps in the same process, so CUDA's
# context, kernels and allocator are warm; GRPO also reports its median step time after
# the first step (metrics.csv's step_seconds).
set -euo pipefail
MODEL="${1:-${MODEL_DIR:-}}"
OUT="${2:-benchmarks/llm_gpu_results.jsonl}"
if [ -z "$MODEL" ]; then
    echo "usage: benchmarks/llm_gpu.sh MODEL_DIR [OUT.jsonl] (or set MODEL_DIR)" >&2
    exit 2
fi

python - "$MODEL" "$OUT" "${STEPS:-30}" "${WARMUP:-3}" <<'PY'
import csv, datetime, json, statistics, sys, tempfile
from pathlib import Path

import torch

model, out, steps, warmup = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if not torch.cuda.is_available():
    sys.exit("benchmarks/llm_gpu.sh needs a CUDA device and torch sees none; run it on a GPU machine.")

import rlfoundry.llm.supervised as supervised
from rlfoundry.api import train

COMMON = {"model": model, "task": "arithmetic", "device": "cuda", "dtype": "bfloat16",
          "total_steps": steps, "eval_every": 0, "eval_size": 0}
STAGES = {
    "sft": ("llm-sft", {"batch_size": 32, "target_accuracy": 0.0, "learning_rate": 1e-4}),
    "grpo": ("llm-grpo", {"rollout_size": 64, "group_size": 8, "max_new_tokens": 32,
                          "learning_rate": 1e-5}),
}

sft_tokens = [0]  # tokens of SFT's training forward passes
nll = supervised.nll


def counting_nll(m, ids, attn, cmask):
    sft_tokens[0] += int(attn.sum())
    return nll(m, ids, attn, cmask)


supervised.nll = counting_nll


def sampled_tokens(run_dir, rollout_size):
    """GRPO's completion tokens: mean completion length x completions, summed over steps."""
    with open(f"{run_dir}/metrics.csv") as f:
        return sum(float(r["completion_len"]) * rollout_size for r in csv.DictReader(f))


def grpo_median_step(run_dir):
    """Median seconds of a GRPO step after the first (metrics.csv's step_seconds)."""
    with open(f"{run_dir}/metrics.csv") as f:
        secs = [float(r["step_seconds"]) for r in csv.DictReader(f) if r.get("step_seconds")]
    return statistics.median(secs[1:]) if len(secs) > 1 else None


rows = []
for stage, (name, cfg) in STAGES.items():
    for lora in (0, 16):
        if warmup > 0:  # untimed: CUDA context, kernels, cuBLAS handles, allocator
            with tempfile.TemporaryDirectory() as tmp:
                ov = {**COMMON, **cfg, "lora_rank": lora, "total_steps": warmup}
                train(name, out=f"{tmp}/run", overrides=ov, progress=False)
        sft_tokens[0] = 0
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        with tempfile.TemporaryDirectory() as tmp:
            overrides = {**COMMON, **cfg, "lora_rank": lora}
            s = train(name, out=f"{tmp}/run", overrides=overrides, progress=False)
            tokens = sampled_tokens(f"{tmp}/run", cfg["rollout_size"]) if stage == "grpo" else sft_tokens[0]
            median = grpo_median_step(f"{tmp}/run") if stage == "grpo" else None
        wall = s["wall_seconds"]
        rows.append({
            "stage": stage, "lora_rank": lora, "steps": s["steps"],
            "steps_per_s": round(s["steps"] / wall, 3), "tokens_per_s": round(tokens / wall),
            "median_step_s": None if median is None else round(median, 3), "warmup_steps": warmup,
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "gpu": torch.cuda.get_device_name(), "dtype": "bfloat16", "torch": torch.__version__,
            "date": datetime.date.today().isoformat(),
        })
        with out.open("a") as f:
            f.write(json.dumps(rows[-1]) + "\n")

print(f"{'stage':6} {'lora':>4} {'steps/s':>8} {'tokens/s':>9} {'peak GiB':>9} {'median step s':>14}   ({rows[0]['gpu']}, bf16)")
for r in rows:
    med = "-" if r["median_step_s"] is None else r["median_step_s"]
    print(f"{r['stage']:6} {r['lora_rank']:>4} {r['steps_per_s']:>8} {r['tokens_per_s']:>9} {r['peak_gpu_gib']:>9} {med:>14}")
print(f"appended to {out}")
PY
