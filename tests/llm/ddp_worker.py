"""Run by tests/llm/test_ddp.py, once alone and once under `torchrun --nproc_per_node 2`.

    python ddp_worker.py all OUT      # everything below, into OUT/
    python ddp_worker.py update OUT.safetensors AGG     # one GRPO update run
    python ddp_worker.py train OUT    # the GRPO trainer for two steps

"update": three GRPO iterations (2 epochs each, micro-batches of 4) on the same global
batch of 16 completions. Every process samples the FULL batch with the same seeded
generator (so 1 and 2 processes see identical completions) and trains on its own half;
rank 0 writes the parameters and every gradient norm before clipping (a mean where a
sum is due, or a rank that trains on the whole batch, changes them by 2x).
"stages": the real SFT, DPO and reward-model trainers (`rlfoundry.api.train`) for three
steps each on one global batch of 8 (SFT and DPO also with LoRA); with 2+ processes also
SFT with fsdp=true, with and without LoRA. Each rank writes how many rows its losses saw
(rows-rankR.json): its share, not the batch. DPO and SFT with fsdp=true also stop at
step 2 and resume (DIR-resumed).
"train": the real GRPO loop (`group_pg.train`) for two steps, with 2+ processes also
with fsdp=true and a KL reference (rank 0 writes the run dir).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import save_file

from rlfoundry.core import group_relative_advantages
from rlfoundry.llm.group_pg import policy_update
from rlfoundry.llm.models import load_model, load_tokenizer
from rlfoundry.llm.rollout import rollout
from rlfoundry.runtime.distributed import (
    full_params,
    init_distributed,
    leave_group,
    shard_model,
    unsharded,
)

torch.set_num_threads(1)

STAGES = {
    "sft": (
        "llm-sft",
        {"model": "tiny:nano", "task": "arithmetic", "batch_size": 8, "learning_rate": 1e-3,
         "eval_every": 0, "eval_size": 0, "target_accuracy": 0.0},
    ),
    "dpo": (
        "llm-dpo",
        {"model": "tiny", "task": "sentiment", "batch_size": 8, "micro_batch_size": 2,
         "learning_rate": 1e-3, "eval_every": 100, "eval_pairs": 8},
    ),
    "rm": (
        "llm-reward-model",
        {"model": "tiny", "task": "sentiment", "batch_size": 8, "eval_every": 100, "eval_pairs": 8},
    ),
}  # fmt: skip
# LoRA (float32, and bfloat16 autocast): an adapter's gradients are summed like any others
STAGES["sft-lora"] = ("llm-sft", {**STAGES["sft"][1], "lora_rank": 4})
STAGES["dpo-lora"] = ("llm-dpo", {**STAGES["dpo"][1], "lora_rank": 4, "dtype": "bfloat16"})


def update(out: str, agg: str, fsdp: bool = False) -> None:
    d = init_distributed("cpu")
    torch.manual_seed(0)
    tok = load_tokenizer("tiny")
    model = load_model("tiny")
    plain = None
    if fsdp:
        plain = copy.deepcopy(model) if d.main else None  # receives the gathered weights
        shard_model(model, d)
    cfg = SimpleNamespace(
        rollout_size=16,
        group_size=4,
        minibatch_size=0,
        micro_batch_size=4,
        update_epochs=2,
        max_new_tokens=8,
        temperature=1.0,
        clip_coef=0.2,
        clip_coef_high=0.0,
        beta=0.0,
        loss_agg=agg,
        loss_type="ppo",
        mask_truncated=False,
        max_grad_norm=1.0,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    prompts = ["1+2=", "30+4=", "7+15=", "22+22="]
    norms: list[float] = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(*args, **kw):  # the norm over all ranks, before clipping
        norm = clip(*args, **kw)
        full = getattr(norm, "full_tensor", None)
        norms.append(float(full() if full is not None else norm))
        return norm

    torch.nn.utils.clip_grad_norm_ = recording_clip
    for _ in range(3):
        model.eval()
        with full_params(model):
            # the model's own forward on both sides: a sharded model samples through it,
            # and the lean decoder of a plain one rounds differently (~1e-6), which AdamW
            # turns into lr-sized steps on near-zero gradients
            args = (model, tok, prompts, cfg.group_size, cfg.max_new_tokens, 1.0, gen)
            ro = rollout(*args, static_cache=False)
        model.train()
        rew = torch.tensor([sum(ch.isdigit() for ch in c) / 8 for c in ro.completions])
        adv = group_relative_advantages(rew, cfg.group_size)
        rows = d.shard(cfg.rollout_size)
        policy_update(model, opt, ro.select(rows), adv[rows], cfg, d)
    torch.nn.utils.clip_grad_norm_ = clip
    whole = unsharded(model, plain, d)
    if whole is not None:
        save_file({k: v.detach().contiguous() for k, v in whole.named_parameters()}, out)
        Path(out).with_suffix(".json").write_text(json.dumps(norms))


def api_train(name: str, out: Path, stop_at_step: int | None = None, **overrides) -> dict:
    from rlfoundry.api import train as api_train

    return api_train(
        name, out=str(out), overrides=overrides, progress=False, stop_at_step=stop_at_step
    )


def count_training_rows(counts: dict[str, int], key: list[str]) -> None:
    """Count the rows each stage's loss sees in this process (forward passes with grad)."""
    from rlfoundry.llm import dpo, reward_model, supervised

    def wrap(module, fn_name, rows_of):
        orig = getattr(module, fn_name)

        def counted(*args):
            if torch.is_grad_enabled():
                counts[key[0]] = counts.get(key[0], 0) + rows_of(*args)
            return orig(*args)

        setattr(module, fn_name, counted)

    wrap(supervised, "nll", lambda model, ids, *rest: ids.shape[0])
    wrap(dpo, "sequence_logps", lambda model, tok, batch, max_len: len(batch))
    wrap(reward_model, "_batch_rewards", lambda model, tok, batch, max_len: len(batch))


def stages(out: Path, d) -> None:
    counts: dict[str, int] = {}
    key = [""]
    count_training_rows(counts, key)
    runs = [(k, name, cfg) for k, (name, cfg) in STAGES.items()]
    if d.world > 1:
        runs.append(("sft-fsdp", "llm-sft", {**STAGES["sft"][1], "fsdp": True}))
        runs.append(("sft-fsdp-lora", "llm-sft", {**STAGES["sft-lora"][1], "fsdp": True}))
    for key[0], name, cfg in runs:
        api_train(name, out / key[0], total_steps=3, warmup_steps=1, **cfg)
    (out / f"rows-rank{d.rank}.json").write_text(json.dumps(counts))
    if d.world > 1:  # stopped at step 2 and resumed: every rank from its own checkpoint
        from rlfoundry.api import train as api_train_raw

        for key, name, cfg in [("dpo", *STAGES["dpo"]), runs[-2], runs[-1]]:
            run_dir = out / f"{key}-resumed"
            api_train(name, run_dir, total_steps=3, warmup_steps=1, stop_at_step=2, **cfg)
            api_train_raw(resume=str(run_dir), progress=False)


def train(out: Path, fsdp: bool = False) -> None:
    cfg = {"model": "tiny", "total_steps": 2, "rollout_size": 16, "group_size": 4,
           "max_new_tokens": 6, "eval_every": 0, "eval_size": 8}  # fmt: skip
    if fsdp:
        cfg.update(fsdp=True, beta=0.04)
    s = api_train("llm-grpo", out, **cfg)
    print("SUMMARY", s)


def everything(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    d = init_distributed("cpu")
    for agg in ("token-mean", "seq-mean-token-mean"):
        update(str(out / f"update-{agg}.safetensors"), agg)
    stages(out, d)
    if d.world > 1:
        update(str(out / "update-fsdp.safetensors"), "token-mean", fsdp=True)
        train(out / "grpo")
        train(out / "grpo-fsdp", fsdp=True)
    leave_group(d)  # the group's gloo threads must not outlive the interpreter


if __name__ == "__main__":
    mode, path = sys.argv[1], Path(sys.argv[2])
    if mode == "update":
        update(str(path), sys.argv[3])
    elif mode == "train":
        train(path)
    else:
        everything(path)
