"""Peak resident memory (RSS) of GRPO on the CPU with LoRA against full fine-tuning.

    python benchmarks/llm_lora_memory.py                               # tiny:small
    python benchmarks/llm_lora_memory.py --model /tmp/smollm2/out/smollm2 --steps 2

Each configuration runs in its own process (peak RSS is a per-process high-water mark):
`rlfoundry llm grpo` on the arithmetic task with a KL term (beta > 0, so full
fine-tuning holds a frozen reference copy and LoRA turns its adapters off instead),
then the process's `ru_maxrss`. The RSS after importing torch and transformers is
printed too: it is the same in every row.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time


def one(
    model: str, steps: int, lora: int, dtype: str, rollout: int, new_tokens: int, adapter: bool
) -> None:
    import torch
    import transformers  # noqa: F401  (counted in the baseline)

    torch.set_num_threads(2)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from rlfoundry.api import train

    overrides = {
        "model": model,
        "device": "cpu",
        "dtype": dtype,
        "lora_rank": lora,
        "rollout_size": rollout,
        "group_size": 4,
        "max_new_tokens": new_tokens,
        "beta": 0.05,
        "eval_every": 0,
        "eval_size": 0,
        "torch_threads": 2,
        "save_adapter_only": adapter and lora > 0,
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        train("llm-grpo", out=f"{d}/run", steps=steps, overrides=overrides, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "lora_rank": lora,
                "dtype": dtype,
                "save_adapter_only": overrides["save_adapter_only"],
                "baseline_mib": round(base),
                "peak_rss_mib": round(peak),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny:small")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rollout", type=int, default=16, help="completions per step")
    ap.add_argument("--new-tokens", type=int, default=8, help="completion budget")
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--bf16", action="store_true", help="also LoRA with dtype=bfloat16")
    ap.add_argument("--adapter-only", action="store_true", help="LoRA rows save the adapter alone")
    ap.add_argument("--one", nargs=2, metavar=("LORA", "DTYPE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        one(a.model, a.steps, int(a.one[0]), a.one[1], a.rollout, a.new_tokens, a.adapter_only)
        return
    runs = [(0, "float32"), (a.lora_rank, "float32")] + ([(a.lora_rank, "bfloat16")] * a.bf16)
    print(f"GRPO, {a.model}, {a.steps} steps, rollout {a.rollout} (groups of 4), "
          f"{a.new_tokens} new tokens, beta 0.05, CPU")  # fmt: skip
    for lora, dtype in runs:
        cmd = [sys.executable, __file__, "--model", a.model, "--steps", str(a.steps)]
        cmd += ["--rollout", str(a.rollout), "--new-tokens", str(a.new_tokens)]
        cmd += ["--adapter-only"] * a.adapter_only
        out = subprocess.run([*cmd, "--one", str(lora), dtype], capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        print(line[-1] if line else out.stderr[-2000:], flush=True)


if __name__ == "__main__":
    main()
