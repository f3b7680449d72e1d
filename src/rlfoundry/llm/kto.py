"""Kahneman-Tversky Optimization (Ethayarajh et al. 2024, arXiv:2402.01306).

    rlfoundry llm kto --set model=runs/sft --task sentiment --out runs/kto
    rlfoundry llm kto --set model=runs/sft --data labelled.jsonl   # prompt, completion, label

KTO learns from UNPAIRED feedback: each example is one completion labelled desirable
(`label` true) or undesirable, as a thumbs-up/down or a 1-5 rating gives it. With `pi`
the policy, `ref` the frozen starting model and sequence log-probs summed over the
completion tokens (core.preference.kto_loss, eq. 8):

    r   = log pi(y|x) - log ref(y|x)
    z0  = max(0, mean over the batch of r on MISMATCHED pairs (x_i, y_{i+1})), detached
    L   = mean(lambda_y - lambda_y sigmoid(+-beta (r - z0)))      + for desirable

z0 is the paper's reference point, an estimate of KL(pi || ref): raising a desirable
completion's log-prob only counts once it beats the policy's general drift from ref.

Data: a dataset with `prompt`, `completion` and `label` (TRL's unpaired format; label
true/false or 1/0), or any preference data (`data` in DPO's formats, or the built-in
task's pairs), each pair giving one desirable (chosen) and one undesirable (rejected)
example. The feedback app's 1-5 ratings export to the unpaired format with
`rlfoundry feedback export --format kto` (ratings 4-5 desirable, 1-2 undesirable, 3
left out; docs/llm.md). Held-out metrics: the implicit reward gap (mean beta r of
desirable minus undesirable examples; 0 at the start) and the policy's mean log-probs
of each kind. One process (no data parallelism).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.core import masked_sum
from rlfoundry.core.preference import kto_loss
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.llm.checkpoint import adamw, resume_training, save_training
from rlfoundry.llm.data import encode_pairs, load_pairs, next_batch
from rlfoundry.llm.datasets import load_table
from rlfoundry.llm.models import check_model_path, policy_logprobs
from rlfoundry.llm.policy import (
    ModelOptions,
    Reference,
    build_policy,
    check_model_options,
    save_policy,
    trainable,
)
from rlfoundry.runtime.distributed import grad_norm, world_size
from rlfoundry.runtime.run import Run, seed_everything


@dataclass
class Config(ModelOptions):
    model: str = ""
    """Starting policy and reference: a model directory (e.g. `rlfoundry llm sft` output),
    or 'tiny' for the untrained built-in nano model (tests only)."""
    task: str = "sentiment"
    """Built-in preference task whose pairs (unpaired: chosen desirable, rejected not) are
    used when `data` is empty."""
    data: str = ""
    """Dataset of labelled completions (prompt, completion, label true/false), or of
    preference pairs in DPO's formats; empty = the built-in task's pairs."""
    eval_data: str = ""
    """Held-out examples in the same formats; empty = hold out `eval_fraction` of `data`."""
    eval_fraction: float = 0.1
    """Share of the `data` examples held out when `eval_data` is empty."""
    eval_pairs: int = 200
    """Held-out pairs drawn from a built-in task's test prompts (two examples each)."""
    beta: float = 0.1
    """Scale of the implicit reward beta * log(pi / ref) inside the sigmoid (KTO's beta)."""
    desirable_weight: float = 1.0
    """lambda_D: weight of desirable examples' losses (raise it when they are rarer)."""
    undesirable_weight: float = 1.0
    """lambda_U: weight of undesirable examples' losses."""
    total_steps: int = 100
    """Optimizer steps."""
    batch_size: int = 16
    """Labelled examples per optimizer step (at least 2: the KL estimate pairs each
    prompt with another example's completion)."""
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
        if self.beta <= 0:
            raise ConfigError(f"beta must be positive, got {self.beta}.")
        if self.batch_size < 2:
            raise ConfigError(
                f"batch_size must be at least 2 for KTO's KL estimate, got {self.batch_size}."
            )
        if self.desirable_weight <= 0 or self.undesirable_weight <= 0:
            raise ConfigError("desirable_weight and undesirable_weight must be positive.")
        if self.total_steps < 1:
            raise ConfigError(f"total_steps must be at least 1, got {self.total_steps}.")


def unpair(pairs: list[dict]) -> list[dict]:
    """Preference pairs -> labelled examples: chosen desirable, rejected undesirable."""
    out = []
    for p in pairs:
        out.append({"prompt": p["prompt"], "completion": p["chosen"], "label": True})
        out.append({"prompt": p["prompt"], "completion": p["rejected"], "label": False})
    return out


def _label(value: Any, where: str) -> bool:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise RLFoundryError(
        f"{where}: label {value!r} is neither true nor false; store label as true/false "
        "(desirable or not) or 1/0."
    )


def labelled_rows(source: str) -> list[dict] | None:
    """`{prompt, completion, label}` rows of an unpaired dataset, or None when `source`
    has no `label` column (then it is read as preference pairs)."""
    table = load_table(source)
    if "label" not in table.columns:
        return None
    missing = {"prompt", "completion"} - set(table.columns)
    if missing:
        raise RLFoundryError(
            f"Dataset '{table.source}' has a label column but no {', '.join(sorted(missing))}; "
            "an unpaired dataset needs prompt, completion and label."
        )
    return [
        {
            "prompt": r["prompt"],
            "completion": r["completion"],
            "label": _label(r["label"], f"'{table.source}' {table.where(i)}"),
        }
        for i, r in enumerate(table.rows)
    ]


def load_examples(cfg: Config) -> tuple[list[dict], list[dict]]:
    """(train, held-out) labelled examples; raises on bad data before training."""
    rows = labelled_rows(cfg.data) if cfg.data else None
    if rows is None:
        train, held = load_pairs(cfg)  # pairs (the task's or data's), unpaired below
        held_rows = labelled_rows(cfg.eval_data) if cfg.eval_data else None
        return unpair(train), held_rows if held_rows is not None else unpair(held)
    if cfg.eval_data:
        held_rows = labelled_rows(cfg.eval_data)
        return rows, held_rows if held_rows is not None else unpair(load_pairs(cfg)[1])
    order = np.random.default_rng(cfg.seed + 1).permutation(len(rows))
    n_eval = max(1, int(round(len(rows) * cfg.eval_fraction)))
    if len(rows) - n_eval < 2:
        raise RLFoundryError(
            f"Only {len(rows)} labelled examples: too few to hold some out; add examples "
            "or give eval_data."
        )
    return [rows[i] for i in order[n_eval:]], [rows[i] for i in order[:n_eval]]


def check(cfg: Config) -> None:
    """Fail before training on a missing model, unusable device/dtype/LoRA settings,
    malformed data, or a multi-process launch."""
    if world_size() > 1:
        raise ConfigError("llm-kto runs in one process; start it without torchrun/accelerate.")
    check_model_path(cfg.model)
    check_model_options(cfg)
    load_examples(cfg)


def completion_logps(
    model: Any, tok: Any, prompts: list, completions: list, max_len: int
) -> Tensor:
    """Summed completion log-probs `[B]` of (prompt, completion) rows, one forward pass."""
    ids, attn, cmask = encode_pairs(tok, prompts, completions, max_len)
    dev = next(model.parameters()).device
    ids, attn, cmask = ids.to(dev), attn.to(dev), cmask.to(dev)
    return masked_sum(policy_logprobs(model, ids, attn, cmask), cmask, dim=-1)


@torch.no_grad()
def all_logps(model: Any, tok: Any, rows: list[dict], max_len: int) -> Tensor:
    """`[N]` summed completion log-probs of `rows`, 64 at a time."""
    return torch.cat(
        [
            completion_logps(
                model,
                tok,
                [r["prompt"] for r in rows[i : i + 64]],
                [r["completion"] for r in rows[i : i + 64]],
                max_len,
            )
            for i in range(0, len(rows), 64)
        ]
    )


def evaluate(model: Any, tok: Any, rows: list[dict], ref: Tensor, cfg: Config) -> dict:
    """Held-out implicit reward gap and mean log-probs of desirable / undesirable rows."""
    model.eval()
    pol = all_logps(model, tok, rows, cfg.max_len)
    model.train()
    good = torch.tensor([r["label"] for r in rows])
    rew = cfg.beta * (pol - ref)

    def mean(x: Tensor, m: Tensor) -> float:
        return float(x[m].mean()) if m.any() else 0.0

    return {
        "eval_reward_gap": mean(rew, good) - mean(rew, ~good),
        "eval_logp_desirable": mean(pol, good),
        "eval_logp_undesirable": mean(pol, ~good),
    }


def train(cfg: Config, run: Run) -> dict[str, Any]:
    seed_everything(cfg.seed)
    rows, held = load_examples(cfg)
    model, tok, prec = build_policy(cfg)
    model.train()
    ref = Reference(model, prec)  # LoRA: the policy with adapters off; else a frozen copy
    params = trainable(model)
    opt, sched = adamw(params, cfg, 0.1)
    rng = np.random.default_rng(cfg.seed)
    order, cursor, step = rng.permutation(len(rows)), 0, 0
    with prec.autocast(), ref() as ref_model:
        held_ref = all_logps(ref_model, tok, held, cfg.max_len)  # [N], fixed
    start = evaluate(model, tok, held, held_ref, cfg)
    ckpt = resume_training(run, {"model": model}, opt, sched, prec, rng)
    if ckpt is not None:
        step, _, state = ckpt
        order, cursor = np.asarray(state["order"]), state["cursor"]
    else:
        run.log(0, **start)

    while step < cfg.total_steps:
        idx, order, cursor = next_batch(rng, order, cursor, len(rows), cfg.batch_size)
        batch = [rows[i] for i in idx]
        prompts, comps = [r["prompt"] for r in batch], [r["completion"] for r in batch]
        shifted = comps[1:] + comps[:1]  # mismatched (x_i, y_{i+1}): the KL estimate
        good = torch.tensor([r["label"] for r in batch], device=prec.device)
        with torch.no_grad(), prec.autocast():
            with ref() as ref_model:
                ref_lp = completion_logps(ref_model, tok, prompts, comps, cfg.max_len)
                ref_kl = completion_logps(ref_model, tok, prompts, shifted, cfg.max_len)
            kl = (completion_logps(model, tok, prompts, shifted, cfg.max_len) - ref_kl).mean()
        with prec.autocast():
            pol_lp = completion_logps(model, tok, prompts, comps, cfg.max_len)
            loss, rew = kto_loss(
                pol_lp,
                ref_lp,
                good,
                kl,
                cfg.beta,
                cfg.desirable_weight,
                cfg.undesirable_weight,
            )
        opt.zero_grad(set_to_none=True)
        prec.backward(loss)
        prec.unscale(opt)
        gnorm = grad_norm(params, 1.0)
        prec.step(opt)
        sched.step()
        step += 1
        metrics = {"loss": float(loss.detach()), "kl": float(kl), "grad_norm": gnorm}
        if good.any():
            metrics["reward_desirable"] = float(rew[good].mean())
        if (~good).any():
            metrics["reward_undesirable"] = float(rew[~good].mean())
        if (cfg.eval_every > 0 and step % cfg.eval_every == 0) or step == cfg.total_steps:
            metrics.update(evaluate(model, tok, held, held_ref, cfg))
        run.log(step, **metrics)
        run.progress(step, loss=metrics["loss"])
        if run.checkpoint_due(step) or step == cfg.total_steps:
            extra = {"order": order.tolist(), "cursor": cursor}
            save_training(run, step, {"model": model}, opt, sched, prec, rng, **extra)
            if run.should_stop(step):
                return {"status": "interrupted", "step": step}

    final = evaluate(model, tok, held, held_ref, cfg)
    save_policy(model, tok, run.path, cfg)  # last: merging LoRA changes the model
    return {
        "status": "finished",
        "step": step,
        "eval_examples": len(held),
        "reward_gap_before": start["eval_reward_gap"],
        **final,
    }
