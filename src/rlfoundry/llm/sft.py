"""Supervised fine-tuning: maximise log pi(completion | prompt), loss on completion tokens only.

    rlfoundry llm sft --task arithmetic --model runs/pretrain --out runs/sft
    rlfoundry llm sft --data pairs.jsonl --model tiny:nano --set lora_rank=8
    rlfoundry llm sft --resume runs/sft

The loss is the token-mean negative log-likelihood of the completion tokens (EOS
included: the model must learn to stop) over the whole batch:

    L = - sum_{i,t} m_it log pi(y_it | x_i, y_i<t) / sum_{i,t} m_it

Prompt tokens are context, not targets (masking them is what makes this
instruction tuning rather than more pre-training; `pretrain.py` is the same loop
with every token a target). Examples are drawn in epochs of a seeded permutation,
and the permutation, cursor, model, AdamW moments, LR schedule and RNG states go
into the Run checkpoint, so an interrupted run resumes bit-exactly.

Run directory: the stage contract of `rl_common` (config.yaml, metrics.csv, tb/,
checkpoint.safetensors, model/, summary.json with held-out loss and accuracy,
learning_curve.png of the training loss).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.errors import ConfigError
from rlfoundry.llm import rl_common as rc
from rlfoundry.runtime.run import Run, generator_state, seed_everything, set_generator_state


@dataclass
class Config:
    model: str = "tiny:nano"
    """Starting model: a run directory (e.g. of `rlfoundry llm pretrain`), a model
    directory, a built-in size tiny:nano|micro|small[:qwen2|llama], or a hub name."""
    task: str = "arithmetic"
    """Built-in task giving the training pairs and the held-out accuracy; with `data`,
    set task='' unless the data is that task's."""
    data: str = ""
    """JSONL of {prompt, completion} to train on instead of the task's pairs."""
    eval_data: str = ""
    """JSONL of held-out {prompt, completion} for the eval loss; empty = the task's
    held-out split (or 5% of `data`)."""
    steps: int = 1000
    """Optimizer steps (at most: see target_accuracy)."""
    batch_size: int = 64
    """Examples per step."""
    lr: float = 2e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to lr * min_lr_ratio)."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of lr."""
    warmup_steps: int = 20
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip; 0 disables."""
    max_len: int = 128
    """Tokens per example (prompt truncated from the left, completion from the right)."""
    lora_rank: int = 0
    """LoRA rank; 0 = train every weight."""
    lora_alpha: float = 0.0
    """LoRA scale numerator (alpha / rank); 0 = 2 * rank."""
    lora_target_modules: str = ""
    """Comma-separated module names to adapt; empty = attention and MLP projections."""
    eval_every: int = 100
    """Steps between held-out evaluations (0 = only at the end)."""
    eval_size: int = 200
    """Held-out prompts for greedy accuracy and examples for the eval loss; 0 = none."""
    target_accuracy: float = 0.3
    """Stop once greedy accuracy on `eval_size` TRAINING prompts reaches this, checked
    every `check_every` steps; 0 = train all `steps`. The default recipe stops a
    partially trained model on purpose: RL then has room to lift it, and the stop does
    not depend on when a seed's run goes through the sudden jump in accuracy that
    arithmetic shows. Training prompts, so the held-out split stays unseen."""
    check_every: int = 25
    """Steps between target_accuracy checks."""
    seed: int = 0
    """Seed of initialisation (built-in sizes) and data order."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}.")


# ---------------------------------------------------------------------- data


def encode_examples(
    tok: Any, examples: Sequence[tuple[str, str]], max_len: int
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids + EOS) per example, truncated to `max_len` in total."""
    from rlfoundry.llm.models import encode_prompt

    out = []
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    for prompt, completion in examples:
        c = (tok.encode(completion, add_special_tokens=False) + eos)[: max(1, max_len - 1)]
        p = encode_prompt(tok, prompt) if prompt else []
        p = p[max(0, len(p) + len(c) - max_len) :]
        out.append((p, c))
    return out


def collate(rows: Sequence[tuple[list[int], list[int]]], pad: int) -> tuple[Tensor, ...]:
    """Right-padded `input_ids`, `attention_mask`, `completion_mask`, each `[B, L]`."""
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    cmask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (p, c) in enumerate(rows):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c)
        attn[i, :n] = 1
        cmask[i, len(p) : n] = True
    return ids, attn, cmask


def nll(model: Any, ids: Tensor, attn: Tensor, cmask: Tensor) -> tuple[Tensor, Tensor]:
    """Summed NLL of the masked tokens and their count (position 0 is never a target)."""
    from rlfoundry.llm.models import policy_logprobs

    cmask = cmask.clone()
    cmask[:, 0] = False
    logp = policy_logprobs(model, ids, attn, cmask)  # [B, L]
    return -(logp * cmask).sum(), cmask.sum()


def sft_pairs(cfg: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, held-out) (prompt, completion) pairs, checked before training."""
    from rlfoundry.llm.tasks import get_task, load_jsonl

    n_eval = max(cfg.eval_size, 1)
    if cfg.data:
        rows = [
            (r["prompt"], r["completion"]) for r in load_jsonl(cfg.data, ["prompt", "completion"])
        ]
        if cfg.eval_data:
            held = load_jsonl(cfg.eval_data, ["prompt", "completion"])
            return rows, [(r["prompt"], r["completion"]) for r in held]
        k = max(1, len(rows) // 20) if len(rows) > 1 else 0
        return rows[k:], rows[:k]
    task = get_task(cfg.task)
    return task.sft_examples("train", None, cfg.seed), task.sft_examples("test", n_eval, cfg.seed)


# ---------------------------------------------------------------------- the loop


def lr_lambda(warmup: int, total: int, min_ratio: float):
    """Linear warm-up to 1, then cosine decay to `min_ratio` at `total` steps."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac))

    return f


def build_model(cfg: Any) -> tuple[Any, Any]:
    """The starting model (LoRA-wrapped when lora_rank > 0) and its tokenizer."""
    from rlfoundry.llm.models import load_model, load_tokenizer

    name = rc.model_dir(cfg.model)
    tok = load_tokenizer(name)
    torch.manual_seed(cfg.seed)  # initialisation of built-in sizes
    model = load_model(
        name,
        lora_rank=getattr(cfg, "lora_rank", 0),
        lora_alpha=getattr(cfg, "lora_alpha", 0) or None,
        lora_target_modules=getattr(cfg, "lora_target_modules", "") or None,
    )
    return model, tok


@torch.no_grad()
def eval_loss(model: Any, rows: list, pad: int, batch: int = 128) -> float:
    """Token-mean NLL of held-out rows."""
    was = model.training
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(rows), batch):
        s, c = nll(model, *collate(rows[i : i + batch], pad))
        tot, n = tot + float(s), n + int(c)
    model.train(was)
    return tot / max(1, n)


def evaluate(model: Any, tok: Any, cfg: Any, held: list) -> dict[str, float]:
    """Held-out token loss and greedy accuracy on the task's held-out prompts."""
    from rlfoundry.llm.tasks import evaluate_accuracy

    if cfg.eval_size <= 0:
        return {}
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = {"eval_loss": eval_loss(model, held, pad)} if held else {}
    if cfg.task:
        out["eval_accuracy"] = evaluate_accuracy(model, tok, cfg.task, n=cfg.eval_size)
    return out


def fit(cfg: Any, run: Run, train_rows: list, held_rows: list, model: Any, tok: Any) -> dict:
    """The shared SFT / pre-training loop over encoded (prompt, target) rows."""
    from rlfoundry.llm.models import save_model
    from rlfoundry.llm.tasks import evaluate_accuracy

    if not train_rows:
        raise ConfigError("No training examples; give data or a task with a train split.")
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    )
    rng = np.random.default_rng(cfg.seed)
    order, cursor, step = rng.permutation(len(train_rows)), 0, 0
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        step, tensors, state = ckpt
        rc.load_training_state(tensors, state, {"model": model}, opt, sched)
        set_generator_state(rng, state["rng"])
        order, cursor = np.asarray(state["order"]), state["cursor"]

    losses: list[float] = []
    target = getattr(cfg, "target_accuracy", 0.0)  # pre-training has none
    reached = False
    while step < cfg.steps:
        idx = []
        while len(idx) < cfg.batch_size:  # epochs of a seeded permutation
            if cursor >= len(order):
                order, cursor = rng.permutation(len(train_rows)), 0
            take = min(cfg.batch_size - len(idx), len(order) - cursor)
            idx.extend(order[cursor : cursor + take].tolist())
            cursor += take
        ids, attn, cmask = collate([train_rows[i] for i in idx], pad)
        s, n = nll(model, ids, attn, cmask)
        loss = s / n.clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm or float("inf"))
        opt.step()
        sched.step()
        step += 1
        losses.append(float(loss.detach()))
        metrics = {"loss": losses[-1], "grad_norm": float(gnorm), "lr": sched.get_last_lr()[0]}
        if cfg.eval_every > 0 and step % cfg.eval_every == 0 and step < cfg.steps:
            metrics.update(evaluate(model, tok, cfg, held_rows))
        if target > 0 and cfg.task and step % cfg.check_every == 0 and step < cfg.steps:
            acc = evaluate_accuracy(model, tok, cfg.task, n=cfg.eval_size, split="train")
            metrics["train_accuracy"] = acc
            reached = acc >= target
        run.log(step, **metrics)
        run.progress(step, loss=losses[-1])
        if run.checkpoint_due(step) or step == cfg.steps or reached:
            tensors, state = rc.training_state({"model": model}, opt, sched)
            state.update(rng=generator_state(rng), order=order.tolist(), cursor=int(cursor))
            run.save_checkpoint(step, tensors, state)
        if reached:
            break
        if run.should_stop(step) and step < cfg.steps:
            return {"status": "interrupted", "step": step}

    final = evaluate(model, tok, cfg, held_rows)
    if final:
        run.log(step, **final)
    save_model(model, tok, run.path / "model")
    tail = losses[-20:]
    result = {"status": "finished", "step": step, **final}
    if target > 0:
        result["reached_target_accuracy"] = reached
    if tail:
        result["train_loss"] = float(np.mean(tail))
    return result


def check_model_and_task(cfg: Any) -> None:
    """A model path that does not exist or an unknown task fails here, in seconds."""
    from rlfoundry.llm.models import parse_builtin, resolve_model_dir
    from rlfoundry.llm.tasks import get_task

    if not cfg.model:
        raise ConfigError("No starting model: set model to a directory or tiny:nano.")
    if parse_builtin(cfg.model) is None:
        resolve_model_dir(cfg.model)
    if cfg.task:
        get_task(cfg.task)


def check(cfg: Config) -> None:
    """Fail before training: model path, task name, data file fields."""
    check_model_and_task(cfg)
    sft_pairs(cfg)


def train(cfg: Config, run: Run) -> dict[str, Any]:
    seed_everything(cfg.seed)
    train_pairs, held_pairs = sft_pairs(cfg)
    model, tok = build_model(cfg)
    rows = encode_examples(tok, train_pairs, cfg.max_len)
    held = encode_examples(tok, held_pairs, cfg.max_len)
    return fit(cfg, run, rows, held, model, tok)


def run(
    out: str | os.PathLike,
    config: str | os.PathLike | dict | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Python entry point: `sft.run("runs/sft", task="arithmetic", model="runs/pre")`."""
    import sys

    return rc.run_stage(
        sys.modules[__name__],
        Path(out),
        config=config,
        overrides=overrides,
        resume=resume,
        progress=progress,
        stop_at_step=stop_at_step,
    )
