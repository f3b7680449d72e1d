"""Sampling throughput: rlfoundry's sampler vs `model.generate`, same model, batch and length.

    python benchmarks/llm_generation.py                       # tiny:nano + tiny:micro, batch 64
    python benchmarks/llm_generation.py --models DIR --batch 16 --section llm-generation-smollm2
    python benchmarks/llm_generation.py --baseline OLD/generation.py   # also time an older sampler
                                               # (with OLD/decoder.py if there is one)

For each model, the same left-padded arithmetic prompts (`--batch` of them) get `--new`
tokens each (EOS does not stop either side), once greedy and once sampled at
temperature 1 (top-k/top-p off), by:

- rlfoundry: `generation.sample` -> token ids AND each token's log-prob (and the masks);
- `model.generate` (transformers, KV cache, `do_sample` as the mode) -> token ids only;
- `model.generate` + `output_logits`, log-softmax of the chosen tokens: the same outputs as
  rlfoundry's (what an RL trainer built on `generate` needs; a second forward pass over the
  completions costs more);
- with `--baseline FILE`: the `sample` of another version of `generation.py` (before/after).

Same model object, dtype (float32), thread count and inputs for all. Timing: CPU seconds of
this process (`time.process_time`, one torch thread: other jobs on a shared machine stretch
the wall clock, not this), one warm-up call each, then `--repeats` rounds in which every
variant runs once in turn; the median per variant. Tokens/s counts B x T generated tokens.

Checks (untimed): greedy, rlfoundry's tokens equal `generate`'s and its log-probs equal the
log-softmax of `generate`'s logits (max |diff| reported, must be <= 1e-5); sampled, the two
draw different random numbers (inverse CDF vs `torch.multinomial`), so `generate` is made
to emit rlfoundry's tokens (a forcing logits processor) and its raw logits give the
reference log-probs of the same tokens from its own decode loop.

On a GPU (`--device cuda`, `--dtype bfloat16` for both sides' weights) the clock is the wall
time between device synchronisations, and the ceiling is likewise the step's matmuls alone
(there launch-bound too, so not a FLOP figure).

Ceiling: the CPU time of the matrix multiplications of one decode step alone (every
`nn.Linear` of the model, the LM head included, at batch B, same dtype), as tokens/s: no
decode step of this model at this batch, on this CPU, beats it by much without changing the
math (rlfoundry's lean step stores the weights `[in, out]`, which MKL multiplies 10-30%
faster at the tiny models' sizes than `nn.Linear`'s layout). Each variant's tokens/s is
also given as a fraction of it. The table replaces the section
`--section` of benchmarks/RESULTS.md unless --no-results.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


#: the clock: CPU seconds of the process on the CPU; on a GPU, wall seconds between two
#: device synchronisations (the work is the device's; the CPU waits or launches)
DEVICE = torch.device("cpu")


def cpu_line() -> str:
    """The CPU's model and the vector ISA torch's kernels use (AVX2, AVX512): the ratios
    move with both (the tiny models' small matmuls and cache traffic most)."""
    from results import machine

    return f"{machine().split(',')[0]} ({torch.backends.cpu.get_cpu_capability()})"


def _now() -> float:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
        return time.perf_counter()
    return time.process_time()


def _cpu_median(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function (`_now`'s clock), run in turns after a
    warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = _now()
            fn()
            times[k].append(_now() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_ceiling(model: Any, batch: int, repeats: int) -> float:
    """CPU seconds of one decode step's matrix multiplications: every nn.Linear of `model`
    applied to a `[batch, 1, in]` input (same dtype), LM head included."""
    weights = [(m.weight, m.bias) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    xs = {
        w.shape[1]: torch.randn(batch, 1, w.shape[1], dtype=w.dtype, device=w.device)
        for w, _ in weights
    }

    def step() -> None:
        for w, b in weights:
            torch.nn.functional.linear(xs[w.shape[1]], w, b)

    with torch.no_grad():
        return _cpu_median({"mm": step}, max(5, repeats * 3))["mm"]


def load_baseline(path: str) -> Any:
    """Another version's `generation.py`, imported under its own name (for before/after).
    A `decoder.py` beside it is the `rlfoundry.llm.decoder` that one imports (the decode
    step lives there); without one it imports the current decoder."""
    import rlfoundry.llm.models  # noqa: F401  (the current decoder, for everything else)

    sibling = Path(path).with_name("decoder.py")
    current = sys.modules["rlfoundry.llm.decoder"]
    if sibling.is_file():
        spec = importlib.util.spec_from_file_location("rlfoundry_decoder_baseline", sibling)
        dec = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = dec
        spec.loader.exec_module(dec)
        sys.modules["rlfoundry.llm.decoder"] = dec  # for the import below only
    try:
        spec = importlib.util.spec_from_file_location("rlfoundry_generation_baseline", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # its dataclass looks itself up there
        spec.loader.exec_module(mod)
    finally:
        sys.modules["rlfoundry.llm.decoder"] = current
    return mod


def variants(model: Any, ids: Any, attn: Any, N: int, pad: int, temperature: float) -> Any:
    """The timed calls for one mode: rlfoundry's `sample` (or another version's) and
    `model.generate` without / with `output_logits`; each returns (tokens, log-probs)."""
    from rlfoundry.llm.generation import sample

    P = ids.shape[1]
    gen = torch.Generator(device=ids.device).manual_seed(0)
    kw: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        kw = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}

    def ours(sampler: Any = sample) -> tuple[torch.Tensor, torch.Tensor]:
        comp, _, logp = sampler(model, ids, attn, N, None, pad, temperature, generator=gen)
        return comp, logp

    def hf(logits: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        extra = {"return_dict_in_generate": True, "output_logits": True} if logits else {}
        out = model.generate(
            input_ids=ids, attention_mask=attn, max_new_tokens=N, pad_token_id=pad,
            eos_token_id=None, **kw, **extra,
        )  # fmt: skip
        if not logits:
            return out[:, P:], None
        comp = out.sequences[:, P:]
        lg = torch.stack(out.logits, 1).float()  # [B, T, V] raw logits
        if temperature > 0:
            lg = lg / temperature
        return comp, torch.log_softmax(lg, -1).gather(-1, comp[..., None]).squeeze(-1)

    return ours, hf


def forced(model: Any, ids: Any, attn: Any, comp: Any, pad: int) -> tuple[Any, Any]:
    """`model.generate`'s own log-probs of the tokens `comp` [B, T]: its decode loop, made
    to emit `comp` by a logits processor, with the raw logits returned (`output_logits`)."""
    from transformers import LogitsProcessor, LogitsProcessorList

    P = ids.shape[1]

    class Force(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            t = input_ids.shape[1] - P
            out = torch.full_like(scores, float("-inf"))
            return out.scatter_(1, comp[:, t : t + 1], 0.0)

    out = model.generate(
        input_ids=ids, attention_mask=attn, max_new_tokens=comp.shape[1], do_sample=False,
        pad_token_id=pad, eos_token_id=None,
        logits_processor=LogitsProcessorList([Force()]), return_dict_in_generate=True,
        output_logits=True,
    )  # fmt: skip
    lg = torch.stack(out.logits, 1).float()  # [B, T, V] raw logits (temperature 1)
    ref = out.sequences[:, P:]
    return ref, torch.log_softmax(lg, -1).gather(-1, ref[..., None]).squeeze(-1)


def bench(name: str, args: argparse.Namespace, baseline: Any) -> list[dict[str, Any]]:
    from rlfoundry.llm.generation import left_pad
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.tasks import get_task

    torch.manual_seed(0)
    tok = load_tokenizer("tiny" if name.startswith("tiny") else name)
    dtype = getattr(torch, args.dtype)
    model = load_model(name, dtype=None if dtype == torch.float32 else dtype)
    model = model.to(DEVICE).eval()
    model.generation_config.eos_token_id = None  # both sides generate the full length
    prompts = get_task("arithmetic").prompts("train", args.batch, seed=0)
    ids, attn = (x.to(DEVICE) for x in left_pad(tok, prompts))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    B, N = args.batch, args.new
    n_params = sum(p.numel() for p in model.parameters())
    ceiling = matmul_ceiling(model, B, args.repeats)
    rows = []
    for mode, temperature in (("greedy", 0.0), ("sample T=1", 1.0)):
        ours, hf = variants(model, ids, attn, N, pad, temperature)
        fns = {"ours": ours, "hf": hf, "hf_logits": lambda hf=hf: hf(True)}
        if baseline is not None:
            fns["before"] = lambda ours=ours: ours(baseline.sample)
        with torch.no_grad():
            t = _cpu_median(fns, args.repeats)
            comp, logp = ours()
            ref_comp, ref_logp = (
                hf(True) if temperature == 0 else forced(model, ids, attn, comp, pad)
            )
            same_tokens = bool(torch.equal(comp, ref_comp))
            logp_diff = float((logp - ref_logp).abs().max())
        tok_s = {k: B * N / v for k, v in t.items()}
        row = {
            "model": name if name.startswith("tiny") else args.label or Path(name).name,
            "params": n_params,
            "mode": mode,
            "batch": B,
            "new": N,
            **{f"{k}_tok_s": v for k, v in tok_s.items()},
            "speedup": t["hf"] / t["ours"],
            "speedup_logits": t["hf_logits"] / t["ours"],
            "ceiling_tok_s": B / ceiling,
            "same_tokens": same_tokens,
            "logp_max_diff": logp_diff,
        }
        if baseline is not None:
            row["speedup_before"] = t["before"] / t["ours"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def section(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    import transformers

    before = "before_tok_s" in rows[0]
    head = "| model | params | mode | rlfoundry tok/s | `generate` tok/s (ids only) | speed-up "
    head += "| `generate` + logits tok/s | speed-up | matmul ceiling tok/s "
    head += "| rlfoundry / `generate` / ceiling | check |"
    if before:
        head = head.replace("| model |", "| model | before tok/s |")
    lines = [
        f"<!-- {args.section} -->",
        "## LLM: batched sampling, rlfoundry vs `model.generate` (`benchmarks/llm_generation.py`)",
        "",
        f"Batch {args.batch} arithmetic prompts, {args.new} new tokens each (EOS stops neither), "
        + (
            f"{args.dtype}, CPU, {torch.get_num_threads()} torch thread; CPU seconds of the process"
            if DEVICE.type == "cpu"
            else f"{args.dtype} weights, one {torch.cuda.get_device_name(DEVICE)}; wall seconds "
            "between device synchronisations"
        )
        + f", median of {args.repeats} rounds (every variant once per round, in turn) after a "
        f"warm-up. {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_line()}, "
        f"{os.cpu_count()} CPUs shared with other jobs, load average {os.getloadavg()[0]:.1f} at "
        f"the end (noisy: memory bandwidth and caches are shared; CPU time is steadier than "
        f"the wall clock); torch {torch.__version__}, transformers {transformers.__version__}.",
        "",
        head,
        "|---" * (head.count("|") - 1) + "|",
    ]
    for r in rows:
        chk = f"logp diff {r['logp_max_diff']:.1e}"
        chk = ("same tokens, " if r["same_tokens"] else "TOKENS DIFFER, ") + chk
        if r["mode"] != "greedy":
            chk += " (forced)"
        b = f" {r['before_tok_s']:.0f} |" if before else ""
        c = r["ceiling_tok_s"]
        lines.append(
            f"| {r['model']} |{b} {r['params'] / 1e6:.2f}M | {r['mode']} | {r['ours_tok_s']:.0f} "
            f"| {r['hf_tok_s']:.0f} | {r['speedup']:.2f}x | {r['hf_logits_tok_s']:.0f} "
            f"| {r['speedup_logits']:.2f}x | {c:.0f} "
            f"| {r['ours_tok_s'] / c:.0%} / {r['hf_tok_s'] / c:.0%} | {chk} |"
        )
    lines += [
        "",
        "rlfoundry returns ids and per-token log-probs; `generate` (ids only) does less, "
        "`generate` + logits returns the same. Greedy: the same tokens, and log-probs equal "
        "to the log-softmax of `generate`'s logits within the diff shown. Sampled: different "
        "random draws (rlfoundry inverts the CDF with one uniform number per row; `generate` "
        "calls `torch.multinomial`, which draws one per vocabulary entry), so `generate` is "
        "forced to emit rlfoundry's tokens and its logits give the reference log-probs. "
        "Matmul ceiling: the CPU time of one decode step's `nn.Linear` products alone at "
        "this batch."
        + (f" Before: `sample` of {args.baseline_desc or args.baseline}." if before else ""),
        f"Reproduce: `{args.command}`.",
        f"<!-- /{args.section} -->",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="tiny:nano,tiny:micro", help="built-in names or dirs")
    p.add_argument("--label", help="how to name a model directory in the table")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--new", type=int, default=32, help="new tokens per completion")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (GPU: wall clock)")
    p.add_argument("--dtype", default="float32", help="the weights' dtype on both sides")
    p.add_argument("--baseline", help="another generation.py to time alongside (before/after)")
    p.add_argument("--baseline-desc", default="", help="what --baseline is, for RESULTS.md")
    p.add_argument("--section", default="llm-generation", help="RESULTS.md section to write")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--no-results", action="store_true", help="do not touch RESULTS.md")
    args = p.parse_args()
    shown = [a for a in sys.argv[1:] if a != args.baseline_desc or not a]
    shown = ["DIR" if a.startswith("/") else a for a in shown]
    shown = [a + " TEXT" if a == "--baseline-desc" else a for a in shown]
    args.command = " ".join(["python benchmarks/llm_generation.py", *shown])
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    baseline = load_baseline(args.baseline) if args.baseline else None
    rows = [r for name in args.models.split(",") for r in bench(name, args, baseline)]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if not args.no_results:
        from results import write_marked_section

        write_marked_section(RESULTS, args.section, section(rows, args))
        print(f"wrote the {args.section} section of {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
