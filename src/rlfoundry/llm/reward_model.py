"""Reward model: a scalar score of (prompt, completion) learnt from preference pairs.

    rlfoundry llm reward-model --task sentiment --out runs/rm
    rlfoundry llm reward-model --data pairs.jsonl --set model=runs/sft

The model (`scoring.py`) is a transformer with a sequence-classification head: one
linear layer reading the hidden state of the LAST non-pad token (the appended EOS), as
in InstructGPT (Ouyang et al. 2022) and transformers' `*ForSequenceClassification`.
It is trained with the Bradley-Terry loss (Ouyang et al. 2022, eq. 1)

    L = -mean(log sigmoid(r(x, y_chosen) - r(x, y_rejected)))

on pairs `{prompt, chosen, rejected}` (a JSONL file in TRL's preference format, or a
built-in task's pairs). The metric is pairwise accuracy on held-out pairs: the share
where the chosen completion scores higher. `DIR/model` is a standard transformers
sequence-classification model; `rewards.parse_reward("rm:DIR")` uses it as a reward.
Device, precision and LoRA: `policy.ModelOptions` (with LoRA the new score head trains
in full next to the adapter, and an adapter-only save holds both).

Data parallel (`torchrun`, `accelerate launch`): each rank takes its share of the same
global batch of `batch_size` pairs, each micro-batch loss is 1 / (micro-batches over all
ranks) of the global mean, and gradients are summed over ranks, so N processes end with
the parameters of one. Rank 0 evaluates and writes.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.core import bradley_terry_loss, pairwise_accuracy
from rlfoundry.errors import ConfigError
from rlfoundry.llm.checkpoint import adamw, resume_training, save_training
from rlfoundry.llm.data import check_divisible, encode_pairs, load_pairs, next_batch
from rlfoundry.llm.models import check_model_path
from rlfoundry.llm.policy import ModelOptions, adapt, check_model_options, save_policy, trainable
from rlfoundry.llm.precision import Precision
from rlfoundry.llm.scoring import build_reward_model, sequence_rewards
from rlfoundry.runtime.distributed import (
    all_reduce_sum,
    any_rank,
    broadcast_object,
    check_batch_split,
    check_resumed,
    grad_norm,
    init_distributed,
    launch_env,
    sync_gradients,
)
from rlfoundry.runtime.run import Run, seed_everything


@dataclass
class Config(ModelOptions):
    model: str = "tiny"
    """Starting model: a directory (a run of `rlfoundry llm pretrain/sft` or a saved
    transformers model) or 'tiny' for the built-in untrained nano model."""
    task: str = "sentiment"
    """Built-in preference task whose pairs are used when `data` is empty."""
    data: str = ""
    """Preference dataset (TRL's format: prompt, chosen, rejected as text or messages, or
    chosen and rejected conversations): .jsonl/.json/.csv/.parquet, a save_to_disk
    directory or a hub name; empty = the built-in task's pairs."""
    eval_data: str = ""
    """Held-out pairs in the same formats; empty = hold out `eval_fraction` of the data."""
    eval_fraction: float = 0.1
    """Share of the `data` pairs held out for the accuracy metric when `eval_data` is empty."""
    eval_pairs: int = 200
    """Held-out pairs drawn from a built-in task's test prompts."""
    total_steps: int = 200
    """Optimizer steps."""
    batch_size: int = 32
    """Pairs per optimizer step over all processes (each of N processes takes batch_size / N)."""
    micro_batch_size: int = 0
    """Pairs per forward/backward pass in each process (0 = batch_size / processes); the
    share of each process must be a multiple of it (gradient accumulation)."""
    learning_rate: float = 1e-3
    """AdamW learning rate (cosine decay to 10% after a linear warm-up)."""
    warmup_steps: int = 10
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_len: int = 128
    """Longest prompt + completion in tokens (prompt cut from the left)."""
    eval_every: int = 50
    """Steps between held-out evaluations (0 = only at the end)."""
    seed: int = 0
    """Seed of the model head, the data split and the batch order."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def validate(self) -> None:
        check_divisible(
            "batch_size % micro_batch_size",
            self.batch_size,
            self.micro_batch_size or self.batch_size,
            "set batch_size to a multiple of micro_batch_size",
        )
        if not 0 < self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}.")
        if self.total_steps < 1:
            raise ConfigError(f"total_steps must be at least 1, got {self.total_steps}.")


# ---------------------------------------------------------------------- the loss


def _batch_rewards(model: Any, tok: Any, batch: list[dict], max_len: int) -> tuple[Tensor, Tensor]:
    """Chosen and rejected rewards `[b]`, `[b]` from one forward pass over 2b rows."""
    prompts = [p["prompt"] for p in batch]
    ids, attn, _ = encode_pairs(
        tok,
        prompts + prompts,
        [p["chosen"] for p in batch] + [p["rejected"] for p in batch],
        max_len,
    )
    r = sequence_rewards(model, ids, attn)
    return r[: len(batch)], r[len(batch) :]


@torch.no_grad()
def evaluate(
    model: Any, tok: Any, pairs: list[dict], max_len: int, batch: int = 64, prec: Any = None
) -> dict:
    """Held-out pairwise accuracy and mean margin `r_chosen - r_rejected`."""
    model.eval()
    chosen, rejected = [], []
    for i in range(0, len(pairs), batch):
        with prec.autocast() if prec is not None else contextlib.nullcontext():
            c, r = _batch_rewards(model, tok, pairs[i : i + batch], max_len)
        chosen.append(c)
        rejected.append(r)
    model.train()
    c, r = torch.cat(chosen), torch.cat(rejected)
    return {
        "eval_accuracy": float(pairwise_accuracy(c, r)),
        "eval_margin": float((c - r).mean()),
        "eval_loss": float(bradley_terry_loss(c, r)),
    }


# ---------------------------------------------------------------------- training


def train(cfg: Config, run: Run) -> dict[str, Any]:
    """Bradley-Terry training; resumes from `run`'s checkpoint when there is one."""
    d = init_distributed(cfg.device)
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    train_pairs, held = load_pairs(cfg)
    prec = Precision.from_config(cfg)
    model, tok = build_reward_model(cfg.model)
    model = adapt(model.to(prec.device), cfg, prec, task_type="SEQ_CLS")
    model.train()
    params = trainable(model)
    opt, sched = adamw(params, cfg, 0.1)
    rng = np.random.default_rng(cfg.seed)
    order, cursor, step = rng.permutation(len(train_pairs)), 0, 0

    ckpt = resume_training(run, {"model": model}, opt, sched, prec, rng)
    if ckpt is not None:
        step, _, state = ckpt
        order, cursor = np.asarray(state["order"]), state["cursor"]
    check_resumed(d, None if ckpt is None else ckpt[2].get("world", 1))

    def save(step: int) -> None:
        extra = {"order": order.tolist(), "cursor": cursor, "world": d.world}
        save_training(run, step, {"model": model}, opt, sched, prec, rng, **extra)

    def held_out() -> dict:  # rank 0 evaluates, every rank gets the numbers
        out = evaluate(model, tok, held, cfg.max_len, prec=prec) if d.main else None
        return broadcast_object(out, d)

    # data parallel: each rank takes its share of the same global batch; every
    # micro-batch (all of one size) is 1 / n_parts of the global mean
    mine = d.shard(cfg.batch_size)
    micro = cfg.micro_batch_size or cfg.batch_size // d.world
    n_micro = cfg.batch_size // d.world // micro
    n_parts = n_micro * d.world
    while step < cfg.total_steps:
        idx, order, cursor = next_batch(rng, order, cursor, len(train_pairs), cfg.batch_size)
        batch = [train_pairs[i] for i in idx[mine]]
        opt.zero_grad(set_to_none=True)
        loss_sum, acc_sum = 0.0, 0.0
        for m in range(n_micro):
            mb = batch[m * micro : (m + 1) * micro]
            with prec.autocast():
                r_c, r_r = _batch_rewards(model, tok, mb, cfg.max_len)
                # mean over the micro-batch, scaled so the sum over micro-batches (and ranks)
                # is the mean over the whole batch: the same gradient for any split.
                loss = bradley_terry_loss(r_c, r_r) / n_parts
            prec.backward(loss)
            loss_sum += float(loss.detach())
            acc_sum += float(pairwise_accuracy(r_c, r_r)) / n_parts
        sync_gradients(model, d)
        prec.unscale(opt)
        gnorm = grad_norm(params, 1.0)
        prec.step(opt)
        sched.step()
        step += 1
        loss_sum, acc_sum = all_reduce_sum(
            torch.tensor([loss_sum, acc_sum], dtype=torch.float64), d
        ).tolist()
        metrics = {"loss": loss_sum, "accuracy": acc_sum, "lr": sched.get_last_lr()[0]}
        metrics["grad_norm"] = gnorm
        if (cfg.eval_every > 0 and step % cfg.eval_every == 0) or step == cfg.total_steps:
            metrics.update(held_out())
        run.log(step, **metrics)
        run.progress(step, loss=loss_sum, acc=metrics.get("eval_accuracy", acc_sum))
        due, stop = any_rank(d, run.checkpoint_due(step), run.should_stop(step))
        if due or step == cfg.total_steps:
            save(step)  # rank > 0: in its scratch DIR/.rankR
        if stop:
            return {"status": "interrupted", "step": step}

    final = held_out()
    if d.main:
        save_policy(model, tok, run.path, cfg)  # last: merging LoRA changes the model
    return {"status": "finished", "step": step, "eval_pairs": len(held), **final}


#: Fewer training pairs than this get a warning: a Bradley-Terry model fit on a handful of
#: pairs memorises them and ranks unseen responses at about chance.
MIN_PAIRS = 100


def check(cfg: Config) -> None:
    """Fail before training on a missing model, unusable device/dtype/LoRA settings,
    malformed pairs or a batch that the processes of a launch cannot share."""
    check_batch_split(cfg.batch_size, cfg.micro_batch_size)
    check_model_path(cfg.model)
    check_model_options(cfg)
    train_pairs, held = load_pairs(cfg)
    if len(train_pairs) < MIN_PAIRS and launch_env().main:
        print(
            f"warning: only {len(train_pairs)} training pairs ({len(held)} held out); a reward "
            f"model needs at least {MIN_PAIRS}, better a few hundred, to rank unseen responses "
            "better than chance (the sentiment task trains on 2000 for 99.5% held-out "
            "accuracy), so collect more pairs before trusting this one.",
            file=sys.stderr,
            flush=True,
        )
