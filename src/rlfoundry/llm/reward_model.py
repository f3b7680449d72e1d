"""Reward model: a scalar score of (prompt, completion) learnt from preference pairs.

    rlfoundry llm reward-model --task sentiment --out runs/rm
    rlfoundry llm reward-model --data pairs.jsonl --set model=runs/sft

The model is a transformer with a sequence-classification head: one linear layer
reading the hidden state of the LAST non-pad token (the appended EOS), as in
InstructGPT (Ouyang et al. 2022) and transformers' `*ForSequenceClassification`.
It is trained with the Bradley-Terry loss (Ouyang et al. 2022, eq. 1)

    L = -mean(log sigmoid(r(x, y_chosen) - r(x, y_rejected)))

on pairs `{prompt, chosen, rejected}` (a JSONL file in TRL's preference format, or a
built-in task's pairs). The metric is pairwise accuracy on held-out pairs: the share
where the chosen completion scores higher. `DIR/model` is a standard transformers
sequence-classification model; `rewards.parse_reward("rm:DIR")` uses it as a reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.core import bradley_terry_loss, pairwise_accuracy
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.llm import rl_common as rc
from rlfoundry.llm.sft import lr_lambda
from rlfoundry.runtime.run import Run, generator_state, seed_everything, set_generator_state


@dataclass
class Config:
    model: str = "tiny"
    """Starting model: a directory (a run of `rlfoundry llm pretrain/sft` or a saved
    transformers model) or 'tiny' for the built-in untrained nano model."""
    task: str = "sentiment"
    """Built-in preference task whose pairs are used when `data` is empty."""
    data: str = ""
    """JSONL file of pairs with fields prompt, chosen, rejected (TRL's format); empty =
    the built-in task's pairs."""
    eval_data: str = ""
    """JSONL file of held-out pairs; empty = hold out `eval_fraction` of the data."""
    eval_fraction: float = 0.1
    """Share of the `data` pairs held out for the accuracy metric when `eval_data` is empty."""
    eval_pairs: int = 200
    """Held-out pairs drawn from a built-in task's test prompts."""
    steps: int = 200
    """Optimizer steps."""
    batch_size: int = 32
    """Pairs per optimizer step."""
    micro_batch_size: int = 0
    """Pairs per forward/backward pass (0 = batch_size); `batch_size` must be a multiple of it
    (gradient accumulation)."""
    lr: float = 1e-3
    """AdamW learning rate (cosine decay to 10% after a linear warm-up)."""
    warmup_steps: int = 10
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_len: int = 128
    """Longest prompt + completion in tokens (prompt cut from the left)."""
    eval_every: int = 50
    """Steps between held-out evaluations."""
    seed: int = 0
    """Seed of the model head, the data split and the batch order."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def validate(self) -> None:
        rc.check_divisible(
            "batch_size % micro_batch_size",
            self.batch_size,
            self.micro_batch_size or self.batch_size,
            "set batch_size to a multiple of micro_batch_size",
        )
        if not 0 < self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}.")
        if self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}.")


# ---------------------------------------------------------------------- the model


def build_reward_model(name: str) -> tuple[Any, Any]:
    """A sequence-classification model with one output from a causal LM (or 'tiny')."""
    from transformers import AutoModelForSequenceClassification

    from rlfoundry.llm.models import load_tokenizer, tiny_config

    if name == "tiny":
        tok = load_tokenizer("tiny")
        config = tiny_config(tok)
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        path = rc.model_dir(name)
        tok = load_tokenizer(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def load_reward_model(path: str | Path) -> tuple[Any, Any]:
    """The trained reward model and tokenizer saved in `DIR/model` (or `DIR`)."""
    from transformers import AutoModelForSequenceClassification

    from rlfoundry.llm.models import load_tokenizer

    path = rc.model_dir(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    if model.config.num_labels != 1:
        raise RLFoundryError(
            f"'{path}' has {model.config.num_labels} outputs, not 1; pass a reward model "
            "trained by `rlfoundry llm reward-model`."
        )
    return model, load_tokenizer(path)


def sequence_rewards(model: Any, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Score of each right-padded row, read at its last non-pad token. `[B, L] -> [B]`.

    The position comes from the attention mask, not from searching pad ids: with
    pad == eos (common) a search would stop before the EOS the score should read.
    """
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    last = attention_mask.sum(-1) - 1  # [B]
    h = hidden[torch.arange(hidden.shape[0]), last]  # [B, H]
    return model.score(h).squeeze(-1).float()


@torch.no_grad()
def score_texts(
    model: Any, tok: Any, prompts: list[str], completions: list[str], batch_size: int = 32
) -> Tensor:
    """Rewards `[B]` of (prompt, completion) pairs, in batches."""
    max_len = getattr(model.config, "max_position_embeddings", 512)
    out = []
    for i in range(0, len(prompts), batch_size):
        ids, attn, _ = rc.encode_pairs(
            tok, prompts[i : i + batch_size], completions[i : i + batch_size], max_len
        )
        out.append(sequence_rewards(model, ids, attn))
    return torch.cat(out) if out else torch.zeros(0)


# ---------------------------------------------------------------------- data


def load_pairs(cfg: Config) -> tuple[list[dict], list[dict]]:
    """(train, held-out) lists of `{prompt, chosen, rejected}`, checked before training.

    A built-in task gives its train-split pairs and, held out, pairs on its test-split
    prompts (prompts never seen in training). A JSONL file is split by `eval_fraction`
    unless `eval_data` gives the held-out pairs.
    """
    from rlfoundry.llm.tasks import get_task, load_jsonl

    fields = ["prompt", "chosen", "rejected"]
    if not cfg.data:
        task = get_task(cfg.task)
        if not hasattr(task, "pairs"):
            raise RLFoundryError(
                f"Task '{cfg.task}' has no preference pairs; use task=sentiment or give data=FILE.jsonl."
            )
        held = load_jsonl(cfg.eval_data, fields) if cfg.eval_data else None
        return (
            list(task.pairs("train", seed=cfg.seed)),
            held or list(task.pairs("test", n=cfg.eval_pairs, seed=cfg.seed + 1)),
        )
    pairs = load_jsonl(cfg.data, fields)
    if cfg.eval_data:
        return pairs, load_jsonl(cfg.eval_data, fields)
    rng = np.random.default_rng(cfg.seed + 1)
    order = rng.permutation(len(pairs))
    n_eval = max(1, int(round(len(pairs) * cfg.eval_fraction)))
    if len(pairs) - n_eval < 1:
        raise RLFoundryError(
            f"Only {len(pairs)} preference pairs: too few to hold some out; add pairs or give eval_data."
        )
    held = [pairs[i] for i in order[:n_eval]]
    train_ = [pairs[i] for i in order[n_eval:]]
    return train_, held


def _batch_rewards(model: Any, tok: Any, batch: list[dict], max_len: int) -> tuple[Tensor, Tensor]:
    """Chosen and rejected rewards `[b]`, `[b]` from one forward pass over 2b rows."""
    prompts = [p["prompt"] for p in batch]
    ids, attn, _ = rc.encode_pairs(
        tok,
        prompts + prompts,
        [p["chosen"] for p in batch] + [p["rejected"] for p in batch],
        max_len,
    )
    r = sequence_rewards(model, ids, attn)
    return r[: len(batch)], r[len(batch) :]


@torch.no_grad()
def evaluate(model: Any, tok: Any, pairs: list[dict], max_len: int, batch: int = 64) -> dict:
    """Held-out pairwise accuracy and mean margin `r_chosen - r_rejected`."""
    model.eval()
    rc_, rr_ = [], []
    for i in range(0, len(pairs), batch):
        c, r = _batch_rewards(model, tok, pairs[i : i + batch], max_len)
        rc_.append(c)
        rr_.append(r)
    model.train()
    c, r = torch.cat(rc_), torch.cat(rr_)
    return {
        "eval_accuracy": float(pairwise_accuracy(c, r)),
        "eval_margin": float((c - r).mean()),
        "eval_loss": float(bradley_terry_loss(c, r)),
    }


# ---------------------------------------------------------------------- training


def train(cfg: Config, run: Run) -> dict[str, Any]:
    """Bradley-Terry training; resumes from `run`'s checkpoint when there is one."""
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    train_pairs, held = load_pairs(cfg)
    model, tok = build_reward_model(cfg.model)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_steps, cfg.steps, 0.1))
    rng = np.random.default_rng(cfg.seed)
    order, cursor, step = rng.permutation(len(train_pairs)), 0, 0

    ckpt = run.load_checkpoint()
    if ckpt is not None:
        step, tensors, state = ckpt
        rc.load_training_state(tensors, state, {"model": model}, opt, sched)
        set_generator_state(rng, state["rng"])
        order, cursor = np.asarray(state["order"]), state["cursor"]

    def save(step: int) -> None:
        tensors, state = rc.training_state({"model": model}, opt, sched)
        run.save_checkpoint(
            step,
            tensors,
            {
                **state,
                "rng": generator_state(rng),
                "order": order.tolist(),
                "cursor": cursor,
            },
        )

    micro = cfg.micro_batch_size or cfg.batch_size
    n_micro = cfg.batch_size // micro
    while step < cfg.steps:
        idx = []
        while len(idx) < cfg.batch_size:
            if cursor >= len(order):
                order, cursor = rng.permutation(len(train_pairs)), 0
            take = min(cfg.batch_size - len(idx), len(order) - cursor)
            idx.extend(order[cursor : cursor + take].tolist())
            cursor += take
        batch = [train_pairs[i] for i in idx]
        opt.zero_grad(set_to_none=True)
        loss_sum, acc_sum = 0.0, 0.0
        for m in range(n_micro):
            mb = batch[m * micro : (m + 1) * micro]
            r_c, r_r = _batch_rewards(model, tok, mb, cfg.max_len)
            # mean over the micro-batch, scaled so the sum over micro-batches is the
            # mean over the whole batch: the same gradient for any split.
            loss = bradley_terry_loss(r_c, r_r) / n_micro
            loss.backward()
            loss_sum += float(loss.detach())
            acc_sum += float(pairwise_accuracy(r_c, r_r)) / n_micro
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        metrics = {"loss": loss_sum, "accuracy": acc_sum, "lr": sched.get_last_lr()[0]}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics.update(evaluate(model, tok, held, cfg.max_len))
        run.log(step, **metrics)
        run.progress(step, loss=loss_sum, acc=metrics.get("eval_accuracy", acc_sum))
        if run.checkpoint_due(step) or step == cfg.steps:
            save(step)
        if run.should_stop(step):
            return {"status": "interrupted", "step": step}

    rc.save_model(model, tok, run.path)
    final = evaluate(model, tok, held, cfg.max_len)
    return {"status": "finished", "step": step, "eval_pairs": len(held), **final}


def check(cfg: Config) -> None:
    """Fail before training on a missing model or malformed pairs."""
    rc.check_model_path(cfg.model)
    load_pairs(cfg)
