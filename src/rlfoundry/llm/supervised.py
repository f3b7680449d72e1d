"""The supervised loop shared by `pretrain` and `sft`: token-mean NLL on the target tokens.

    model, tok, prec = build_model(cfg)                 # starting model (+ LoRA), tokenizer
    rows = data.encode_examples(tok, pairs, max_len)    # (prompt ids, target ids) per example
    summary = fit(cfg, run, rows, held_rows, model, tok, prec)

`fit` minimises

    L = - sum_{i,t} m_it log pi(y_it | x_i, y_i<t) / sum_{i,t} m_it

over batches drawn in epochs of a seeded permutation (`data.next_batch`), with AdamW,
gradient-norm clipping and the warm-up + cosine schedule (`core.schedules`). The mask
`m` covers the target tokens: the completion (and EOS) for SFT, every token after the
first for pre-training, whose rows have an empty prompt. The permutation, cursor,
model, AdamW moments, LR schedule and RNG states go into the Run checkpoint, so an
interrupted run resumes bit-exactly. `cfg` is the stage's Config: `fit` reads
`total_steps`, `batch_size`, `learning_rate`, `min_lr_ratio`, `warmup_steps`,
`weight_decay`, `max_grad_norm`, `eval_every`, `eval_size`, `task`, `seed`, the
`policy.ModelOptions` (device, dtype, LoRA, saving) and, when present,
`target_accuracy`, `check_every` and `fsdp`.

Data parallel (`torchrun`, `accelerate launch`): every rank draws the same global batch
of `batch_size` rows and takes its contiguous share; the sum of the NLL is divided by
the target tokens of the GLOBAL batch and gradients are summed over ranks
(`runtime.distributed`), so N processes end with the parameters of one. Rank 0
evaluates and writes; with `fsdp` the model is sharded over the ranks.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.errors import ConfigError
from rlfoundry.llm.checkpoint import adamw, resume_training, save_training
from rlfoundry.llm.data import collate, next_batch
from rlfoundry.llm.evaluation import evaluate_accuracy, tool_options
from rlfoundry.llm.models import parse_builtin, policy_logprobs, resolve_model_dir
from rlfoundry.llm.policy import build_policy, check_model_options, save_policy, trainable
from rlfoundry.llm.precision import Precision
from rlfoundry.llm.tasks import get_task
from rlfoundry.runtime.distributed import (
    all_reduce_sum,
    any_rank,
    check_batch_split,
    check_fsdp,
    check_resumed,
    grad_norm,
    init_distributed,
    on_main,
    shard_model,
    sync_gradients,
    unsharded,
)
from rlfoundry.runtime.run import Run


def check_model_and_task(cfg: Any, lora: bool = True) -> None:
    """A model path that does not exist, an unknown task, unusable device, dtype or LoRA
    settings (`lora=False`: LoRA refused, as in pre-training) or a batch that the
    processes of a launch cannot share fail here, in seconds."""
    check_batch_split(cfg.batch_size)
    if getattr(cfg, "fsdp", False):
        check_fsdp()
    if not cfg.model:
        raise ConfigError("No starting model: set model to a directory or tiny:nano.")
    if parse_builtin(cfg.model) is None:
        resolve_model_dir(cfg.model)
    if cfg.task:
        get_task(cfg.task)
    check_model_options(cfg, lora=lora)


def build_model(cfg: Any) -> tuple[Any, Any, Precision]:
    """The starting model (LoRA-wrapped when lora_rank > 0) on its device, its tokenizer
    and the run's Precision."""
    torch.manual_seed(cfg.seed)  # initialisation of built-in sizes
    return build_policy(cfg)


def nll(model: Any, ids: Tensor, attn: Tensor, cmask: Tensor) -> tuple[Tensor, Tensor]:
    """Summed NLL of the masked tokens and their count (position 0 is never a target).
    The batch moves to the model's device."""
    dev = next(model.parameters()).device
    ids, attn, cmask = ids.to(dev), attn.to(dev), cmask.to(dev)
    cmask = cmask.clone()
    cmask[:, 0] = False
    logp = policy_logprobs(model, ids, attn, cmask)  # [B, L]
    return -(logp * cmask).sum(), cmask.sum()


@torch.no_grad()
def eval_loss(model: Any, rows: list, pad: int, batch: int = 128) -> float:
    """Token-mean NLL of held-out rows."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    tot, n = 0.0, 0
    for i in range(0, len(rows), batch):
        s, c = nll(model, *(t.to(dev) for t in collate(rows[i : i + batch], pad)))
        tot, n = tot + float(s), n + int(c)
    model.train(was)
    return tot / max(1, n)


def evaluate(
    model: Any, tok: Any, cfg: Any, held: list, prec: Precision | None = None
) -> dict[str, float]:
    """Held-out token loss and greedy accuracy on the task's held-out prompts."""
    if cfg.eval_size <= 0:
        return {}
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    with prec.autocast() if prec is not None else contextlib.nullcontext():
        out = {"eval_loss": eval_loss(model, held, pad)} if held else {}
        if cfg.task:
            out["eval_accuracy"] = evaluate_accuracy(
                model, tok, cfg.task, n=cfg.eval_size, **tool_options(cfg)
            )
    return out


def _train_accuracy(model: Any, tok: Any, cfg: Any, prec: Precision) -> float:
    """Greedy accuracy on the task's training prompts (the early-stop check)."""
    with prec.autocast():
        return evaluate_accuracy(
            model, tok, cfg.task, n=cfg.eval_size, split="train", **tool_options(cfg)
        )


def fit(
    cfg: Any,
    run: Run,
    train_rows: list,
    held_rows: list,
    model: Any,
    tok: Any,
    prec: Precision | None = None,
) -> dict:
    """The supervised loop over encoded (prompt ids, target ids) rows; see the module."""
    if not train_rows:
        raise ConfigError("No training examples; give data or a task with a train split.")
    prec = prec or Precision(next(model.parameters()).device)
    d = init_distributed(getattr(cfg, "device", "auto"))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    plain = None  # rank 0's unsharded copy, to receive the final weights of an FSDP run
    if getattr(cfg, "fsdp", False):
        plain = copy.deepcopy(model) if d.main else None
        shard_model(model, d)
    dev = next(model.parameters()).device
    model.train()
    params = trainable(model)
    opt, sched = adamw(params, cfg, cfg.min_lr_ratio)
    rng = np.random.default_rng(cfg.seed)
    order, cursor, step = rng.permutation(len(train_rows)), 0, 0
    ckpt = resume_training(run, {"model": model}, opt, sched, prec, rng)
    if ckpt is not None:
        step, _, state = ckpt
        order, cursor = np.asarray(state["order"]), state["cursor"]
    check_resumed(d, None if ckpt is None else ckpt[2].get("world", 1))

    losses: list[float] = []
    target = getattr(cfg, "target_accuracy", 0.0)  # pre-training has none
    reached = False
    mine = d.shard(cfg.batch_size)  # each rank: its rows of the same global batch
    while step < cfg.total_steps:
        idx, order, cursor = next_batch(rng, order, cursor, len(train_rows), cfg.batch_size)
        batch = collate([train_rows[i] for i in idx[mine]], pad)
        with prec.autocast():
            s, n = nll(model, *(t.to(dev) for t in batch))
            n_all = all_reduce_sum(n, d).clamp(min=1)  # target tokens of the global batch
            loss = s / n_all
        opt.zero_grad(set_to_none=True)
        prec.backward(loss)
        sync_gradients(model, d)
        prec.unscale(opt)
        gnorm = grad_norm(params, cfg.max_grad_norm)
        prec.step(opt)
        sched.step()
        step += 1
        losses.append(float(all_reduce_sum(s.detach(), d) / n_all))
        metrics = {"loss": losses[-1], "grad_norm": gnorm, "lr": sched.get_last_lr()[0]}
        if cfg.eval_every > 0 and step % cfg.eval_every == 0 and step < cfg.total_steps:
            metrics.update(on_main(d, model, lambda: evaluate(model, tok, cfg, held_rows, prec)))
        if target > 0 and cfg.task and step % cfg.check_every == 0 and step < cfg.total_steps:
            acc = on_main(  # rank 0 evaluates; every rank gets the number
                d, model, lambda: _train_accuracy(model, tok, cfg, prec)
            )
            metrics["train_accuracy"] = acc
            reached = acc >= target
        run.log(step, **metrics)
        run.progress(step, loss=losses[-1])
        due, stop = any_rank(d, run.checkpoint_due(step), run.should_stop(step))
        if due or step == cfg.total_steps or reached:
            extra = {"order": order.tolist(), "cursor": int(cursor), "world": d.world}
            # rank > 0: in its scratch DIR/.rankR
            save_training(run, step, {"model": model}, opt, sched, prec, rng, **extra)
        if reached:
            run.stopped_early(
                step,
                f"greedy accuracy {acc:.0%} on training prompts reached target_accuracy "
                f"{target:.0%} (see summary.json's reached_target_accuracy)",
            )
            break
        if stop and step < cfg.total_steps:
            return {"status": "interrupted", "step": step}

    final = on_main(d, model, lambda: evaluate(model, tok, cfg, held_rows, prec))
    if final:
        run.log(step, **final)
    whole = unsharded(model, plain, d)
    if whole is not None:
        save_policy(whole, tok, run.path, cfg)  # last: merging LoRA changes the model
    tail = losses[-20:]
    result = {"status": "finished", "step": step, **final}
    if target > 0:
        result["reached_target_accuracy"] = reached
    if tail:
        result["train_loss"] = float(np.mean(tail))
    return result
