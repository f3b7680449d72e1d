"""Sampling throughput: rlfoundry's KV-cache loop vs `model.generate`, same model and batch.

    python benchmarks/llm_generation.py                      # nano + micro, CPU, 1 thread
    python benchmarks/llm_generation.py --sizes nano --batch 32 --new 16 --no-results

For each built-in size, the same randomly initialised model samples `--batch`
completions of `--new` tokens from the same left-padded arithmetic prompts, once
greedy and once at temperature 1, with `rlfoundry.llm.generation.generate` and with
`model.generate` (transformers, `do_sample`, top-k/top-p off, KV cache on).
rlfoundry also returns the per-token log-probs and the masks, which `model.generate`
does not unless asked (`output_scores`, more work); the comparison is therefore
conservative; the last columns add the log-prob forward pass an RL trainer built on
`model.generate` needs. Tokens/s counts every generated position (B x T). Reported:
the median of `--repeats` runs, taken in turns, after one warm-up. The result replaces the section between
`<!-- llm-generation -->` markers in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")
MARK_START, MARK_END = "<!-- llm-generation -->", "<!-- /llm-generation -->"


def _time_interleaved(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turns so machine-load drift hits all alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(size: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from rlfoundry.llm.generation import generate, left_pad
    from rlfoundry.llm.models import load_model, load_tokenizer, policy_logprobs
    from rlfoundry.llm.tasks import get_task

    torch.manual_seed(0)
    tok = load_tokenizer("tiny")
    model = load_model(f"tiny:{size}").eval()
    model.generation_config.eos_token_id = None  # both sides generate the full length
    prompts = get_task("arithmetic").prompts("train", args.batch, seed=0)
    ids, attn = left_pad(tok, prompts)
    n_params = sum(p.numel() for p in model.parameters())
    rows = []
    for mode, temperature in (("greedy", 0.0), ("sample T=1", 1.0)):
        gen = torch.Generator().manual_seed(0)

        def ours(temperature: float = temperature, gen: torch.Generator = gen) -> None:
            generate(model, tok, prompts, args.new, temperature, generator=gen, stop_at_eos=False)

        def hf(temperature: float = temperature, logp: bool = False) -> None:
            kw: dict[str, Any] = {"do_sample": False}
            if temperature > 0:
                kw = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            with torch.no_grad():
                seq = model.generate(
                    input_ids=ids,
                    attention_mask=attn,
                    max_new_tokens=args.new,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=None,
                    **kw,
                )
                if logp:  # what an RL trainer then needs: log-probs of the sampled tokens
                    full = torch.cat([attn, torch.ones_like(seq[:, ids.shape[1] :])], 1)
                    cm = torch.zeros_like(seq, dtype=torch.bool)
                    cm[:, ids.shape[1] :] = True
                    policy_logprobs(model, seq, full, cm, max(temperature, 1.0))

        t = _time_interleaved(
            {"ours": ours, "hf": hf, "hf_logp": lambda h=hf: h(logp=True)}, args.repeats
        )
        n_tok = args.batch * args.new
        rows.append(
            {
                "size": size,
                "params": n_params,
                "mode": mode,
                "ours_tok_s": n_tok / t["ours"],
                "hf_tok_s": n_tok / t["hf"],
                "hf_logp_tok_s": n_tok / t["hf_logp"],
                "speedup": t["hf"] / t["ours"],
                "speedup_logp": t["hf_logp"] / t["ours"],
            }
        )
        print(json.dumps(rows[-1]))
    return rows


def section(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    import transformers

    lines = [
        MARK_START,
        "## LLM: batched sampling, rlfoundry vs `model.generate` (`benchmarks/llm_generation.py`)",
        "",
        f"Batch {args.batch} arithmetic prompts, {args.new} new tokens each (EOS does not stop "
        f"either, so both generate the full length), CPU, {torch.get_num_threads()} torch thread(s); median of "
        f"{args.repeats} interleaved runs after a warm-up. {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end (a shared machine: absolute numbers "
        f"are noisy, the ratio less so); torch {torch.__version__}, transformers "
        f"{transformers.__version__}.",
        "",
        "| model | params | mode | rlfoundry tok/s | model.generate tok/s | speed-up "
        "| model.generate + log-prob pass tok/s | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| tiny:{r['size']} | {r['params'] / 1e6:.2f}M | {r['mode']} | "
            f"{r['ours_tok_s']:.0f} | {r['hf_tok_s']:.0f} | {r['speedup']:.2f}x | "
            f"{r['hf_logp_tok_s']:.0f} | {r['speedup_logp']:.2f}x |"
        )
    lines += [
        "",
        "rlfoundry's loop returns the per-token log-probs and completion masks that RL needs "
        "along with the ids; `model.generate` returns only the ids, so an RL trainer built on "
        "it pays for a second forward pass (last two columns) or for `output_scores`.",
        MARK_END,
    ]
    return "\n".join(lines)


def write_results(text: str, path: Path = RESULTS) -> None:
    from results import write_marked_section

    write_marked_section(path, "llm-generation", text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="nano,micro")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--new", type=int, default=32, help="new tokens per completion")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-results", action="store_true", help="do not touch RESULTS.md")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [r for size in args.sizes.split(",") for r in bench(size, args)]
    if not args.no_results:
        write_results(section(rows, args))
        print(f"wrote the llm-generation section of {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
