"""Direct Preference Optimization (Rafailov et al. 2023, arXiv:2305.18290).

    rlfoundry llm dpo --set model=runs/sft --task sentiment --out runs/dpo
    rlfoundry llm dpo --set model=runs/sft --data pairs.jsonl

DPO fits the policy to preference pairs without a reward model or sampling: with
`pi` the policy, `ref` a FROZEN copy of the starting model and sequence log-probs
summed over the completion tokens,

    z = beta * ((log pi(y_c|x) - log ref(y_c|x)) - (log pi(y_r|x) - log ref(y_r|x)))
    L = -mean(log sigmoid(z))                        (core.dpo_loss, eq. 7)

`loss_type` swaps the sigmoid for IPO's squared loss or SLiC's hinge on the same
margin (core.preference.DPO_LOSSES).

`beta * (log pi - log ref)` is the implicit reward of a completion. Held-out metrics:
the implicit reward margin (chosen minus rejected; 0 at the start, since pi = ref),
its accuracy (share of pairs with a positive margin), and the policy's own log-prob
margin `log pi(y_c|x) - log pi(y_r|x)`, which starts at the reference's value and
should rise.

With LoRA (`lora_rank > 0`) the reference is the policy with its adapters turned off,
so the starting model's weights are held once; device and precision:
`policy.ModelOptions`.

Data parallel (`torchrun`, `accelerate launch`): each rank takes its share of the same
global batch of `batch_size` pairs (and computes the reference log-probs of its share),
each micro-batch loss is 1 / (micro-batches over all ranks) of the global mean, and
gradients are summed over ranks, so N processes end with the parameters of one. Rank 0
evaluates and writes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.core import masked_sum
from rlfoundry.core.preference import DPO_LOSSES
from rlfoundry.errors import ConfigError
from rlfoundry.llm.checkpoint import adamw, resume_training, save_training
from rlfoundry.llm.data import check_divisible, encode_pairs, load_pairs, next_batch
from rlfoundry.llm.models import check_model_path, policy_logprobs
from rlfoundry.llm.policy import (
    ModelOptions,
    Reference,
    build_policy,
    check_model_options,
    save_policy,
    trainable,
)
from rlfoundry.llm.precision import Precision
from rlfoundry.runtime.distributed import (
    all_reduce_sum,
    any_rank,
    broadcast_object,
    check_batch_split,
    check_resumed,
    grad_norm,
    init_distributed,
    sync_gradients,
)
from rlfoundry.runtime.run import Run, seed_everything


@dataclass
class Config(ModelOptions):
    model: str = ""
    """Starting policy and reference: a model directory (e.g. `rlfoundry llm sft` output),
    or 'tiny' for the untrained built-in nano model (tests only)."""
    task: str = "sentiment"
    """Built-in preference task whose pairs are used when `data` is empty."""
    data: str = ""
    """Preference dataset (TRL's format: prompt, chosen, rejected as text or messages, or
    chosen and rejected conversations): .jsonl/.json/.csv/.parquet, a save_to_disk
    directory or a hub name; empty = the built-in task's pairs."""
    eval_data: str = ""
    """Held-out pairs in the same formats; empty = hold out `eval_fraction` of the data."""
    eval_fraction: float = 0.1
    """Share of the `data` pairs held out when `eval_data` is empty."""
    eval_pairs: int = 200
    """Held-out pairs drawn from a built-in task's test prompts."""
    beta: float = 0.1
    """Strength of the implicit KL constraint to the reference (DPO's beta)."""
    label_smoothing: float = 0.0
    """Assumed probability that a label is flipped (conservative DPO); 0 = plain DPO.
    loss_type sigmoid only."""
    loss_type: str = "sigmoid"
    """Preference loss of the margin h = (pi_c - ref_c) - (pi_r - ref_r)
    (core.preference.DPO_LOSSES): sigmoid (DPO, -log sigmoid(beta h)) | ipo (IPO, Azar
    et al. 2023: (h - 1/(2 beta))^2) | hinge (SLiC, Zhao et al. 2023: max(0, 1 - beta h))."""
    total_steps: int = 100
    """Optimizer steps."""
    batch_size: int = 16
    """Pairs per optimizer step over all processes (each of N processes takes batch_size / N)."""
    micro_batch_size: int = 0
    """Pairs per forward/backward pass in each process (0 = batch_size / processes); the
    share of each process must be a multiple of it."""
    learning_rate: float = 1e-4
    """AdamW learning rate (cosine decay to 10% after a linear warm-up)."""
    warmup_steps: int = 5
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_len: int = 128
    """Longest prompt + completion in tokens."""
    eval_every: int = 25
    """Steps between held-out evaluations (0 = only at the end)."""
    seed: int = 0
    """Seed of the data split and the batch order."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def validate(self) -> None:
        check_divisible(
            "batch_size % micro_batch_size",
            self.batch_size,
            self.micro_batch_size or self.batch_size,
            "set batch_size to a multiple of micro_batch_size",
        )
        if self.beta <= 0:
            raise ConfigError(f"beta must be positive, got {self.beta}.")
        if self.loss_type not in DPO_LOSSES:
            raise ConfigError(
                f"loss_type must be one of {', '.join(DPO_LOSSES)}, got {self.loss_type!r}."
            )
        if self.label_smoothing and self.loss_type != "sigmoid":
            raise ConfigError(
                f"label_smoothing applies to loss_type sigmoid only, not {self.loss_type!r}; "
                "set label_smoothing=0."
            )
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}.")
        if self.total_steps < 1:
            raise ConfigError(f"total_steps must be at least 1, got {self.total_steps}.")


def check(cfg: Config) -> None:
    """Fail before training on a missing model, unusable device/dtype/LoRA settings,
    malformed pairs or a batch that the processes of a launch cannot share."""
    check_batch_split(cfg.batch_size, cfg.micro_batch_size)
    check_model_path(cfg.model)
    check_model_options(cfg)
    load_pairs(cfg)


def sequence_logps(model: Any, tok: Any, batch: list[dict], max_len: int) -> tuple[Tensor, Tensor]:
    """Summed completion log-probs of chosen `[b]` and rejected `[b]`, one forward pass."""
    prompts = [p["prompt"] for p in batch]
    ids, attn, cmask = encode_pairs(
        tok,
        prompts + prompts,
        [p["chosen"] for p in batch] + [p["rejected"] for p in batch],
        max_len,
    )
    dev = next(model.parameters()).device
    ids, attn, cmask = ids.to(dev), attn.to(dev), cmask.to(dev)
    logp = policy_logprobs(model, ids, attn, cmask)  # [2b, L]
    seq = masked_sum(logp, cmask, dim=-1)  # [2b]
    return seq[: len(batch)], seq[len(batch) :]


@torch.no_grad()
def pair_logps(
    model: Any, tok: Any, pairs: list[dict], max_len: int, prec: Precision | None = None
) -> Tensor:
    """`[N, 2]` summed completion log-probs (chosen, rejected) of `pairs`, 64 at a time."""
    with prec.autocast() if prec is not None else contextlib.nullcontext():
        return torch.cat(
            [
                torch.stack(sequence_logps(model, tok, pairs[i : i + 64], max_len), -1)
                for i in range(0, len(pairs), 64)
            ]
        )


@torch.no_grad()
def evaluate(
    model: Any, tok: Any, pairs: list[dict], ref: Tensor, cfg: Config, prec: Precision | None = None
) -> dict:
    """Held-out implicit-reward margin and accuracy, and the policy's log-prob margin.

    `ref` `[N, 2]` holds the reference's chosen/rejected log-probs of `pairs`.
    """
    model.eval()
    pol = pair_logps(model, tok, pairs, cfg.max_len, prec)
    model.train()
    loss_fn = DPO_LOSSES[cfg.loss_type]
    loss, r_c, r_r = loss_fn(pol[:, 0], pol[:, 1], ref[:, 0], ref[:, 1], cfg.beta, 0.0)
    return {
        "eval_loss": float(loss),
        "eval_reward_margin": float((r_c - r_r).mean()),
        "eval_reward_accuracy": float((r_c > r_r).float().mean()),
        "eval_logp_margin": float((pol[:, 0] - pol[:, 1]).mean()),
    }


def train(cfg: Config, run: Run) -> dict[str, Any]:
    d = init_distributed(cfg.device)
    seed_everything(cfg.seed)
    train_pairs, held = load_pairs(cfg)
    model, tok, prec = build_policy(cfg)
    model.train()
    ref = Reference(model, prec)  # LoRA: the policy with adapters off; else a frozen copy
    params = trainable(model)
    opt, sched = adamw(params, cfg, 0.1)
    rng = np.random.default_rng(cfg.seed)
    order, cursor, step = rng.permutation(len(train_pairs)), 0, 0
    # held-out metrics are rank 0's job; every rank gets its numbers
    held_ref = None
    if d.main:
        with ref() as ref_model:
            held_ref = pair_logps(ref_model, tok, held, cfg.max_len, prec)  # [N, 2], fixed

    def held_out() -> dict:
        out = evaluate(model, tok, held, held_ref, cfg, prec) if d.main else None
        return broadcast_object(out, d)

    start = held_out()

    ckpt = resume_training(run, {"model": model}, opt, sched, prec, rng)
    if ckpt is not None:
        step, _, state = ckpt
        order, cursor = np.asarray(state["order"]), state["cursor"]
    else:
        run.log(0, **start)
    check_resumed(d, None if ckpt is None else ckpt[2].get("world", 1))

    # data parallel: each rank takes its share of the same global batch; every
    # micro-batch (all of one size) is 1 / n_parts of the global mean
    mine = d.shard(cfg.batch_size)
    micro = cfg.micro_batch_size or cfg.batch_size // d.world
    n_micro = cfg.batch_size // d.world // micro
    n_parts = n_micro * d.world
    loss_fn = DPO_LOSSES[cfg.loss_type]
    while step < cfg.total_steps:
        idx, order, cursor = next_batch(rng, order, cursor, len(train_pairs), cfg.batch_size)
        batch = [train_pairs[i] for i in idx[mine]]
        opt.zero_grad(set_to_none=True)
        loss_sum, margin_sum, acc_sum = 0.0, 0.0, 0.0
        for m in range(n_micro):
            mb = batch[m * micro : (m + 1) * micro]
            with torch.no_grad(), prec.autocast(), ref() as ref_model:
                ref_c, ref_r = sequence_logps(ref_model, tok, mb, cfg.max_len)
            with prec.autocast():
                pol_c, pol_r = sequence_logps(model, tok, mb, cfg.max_len)
                loss, r_c, r_r = loss_fn(pol_c, pol_r, ref_c, ref_r, cfg.beta, cfg.label_smoothing)
            prec.backward(loss / n_parts)  # mean of equal-size micro-batch means = batch mean
            loss_sum += float(loss.detach()) / n_parts
            margin_sum += float((r_c - r_r).mean()) / n_parts
            acc_sum += float((r_c > r_r).float().mean()) / n_parts
        sync_gradients(model, d)
        prec.unscale(opt)
        gnorm = grad_norm(params, 1.0)
        prec.step(opt)
        sched.step()
        step += 1
        tot = all_reduce_sum(
            torch.tensor([loss_sum, margin_sum, acc_sum], dtype=torch.float64), d
        ).tolist()
        loss_sum, margin_sum, acc_sum = tot
        metrics = {"loss": loss_sum, "reward_margin": margin_sum, "reward_accuracy": acc_sum}
        metrics["grad_norm"] = gnorm
        if (cfg.eval_every > 0 and step % cfg.eval_every == 0) or step == cfg.total_steps:
            metrics.update(held_out())
        run.log(step, **metrics)
        run.progress(step, loss=loss_sum, margin=margin_sum)
        due, stop = any_rank(d, run.checkpoint_due(step), run.should_stop(step))
        if due or step == cfg.total_steps:
            extra = {"order": order.tolist(), "cursor": cursor, "start": start, "world": d.world}
            # rank > 0: in its scratch DIR/.rankR
            save_training(run, step, {"model": model}, opt, sched, prec, rng, **extra)
        if stop:
            return {"status": "interrupted", "step": step}

    final = held_out()
    if d.main:
        save_policy(model, tok, run.path, cfg)  # last: merging LoRA changes the model
    return {
        "status": "finished",
        "step": step,
        "eval_pairs": len(held),
        "logp_margin_before": start["eval_logp_margin"],
        **final,
    }
