"""What the preference and RL stages (reward-model, DPO, PPO, GRPO, RLOO) share.

Not math (that lives in `rlfoundry.core`) but plumbing: the run directory of a stage,
model + optimizer state in the Run checkpoint for exact resume, tokenising
(prompt, completion) pairs with a completion mask, data-parallel helpers, and the
input checks that must fail before any training starts.

Run directory of a stage `DIR` (opened by `rlfoundry.runtime.rundir`):

    DIR/config.yaml        {"algo": "llm-NAME", **config}
    DIR/metrics.csv, tb/   Run.log rows
    DIR/checkpoint.safetensors  model + optimizer tensors, data-order RNG, torch RNG
    DIR/model/             save_pretrained (safetensors) + tokenizer: load it anywhere
    DIR/summary.json       final metrics
    DIR/learning_curve.png the stage's main metric against steps
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlfoundry.errors import ConfigError

# ---------------------------------------------------------------------- input checks


def check_divisible(what: str, total: int, parts: int, fix: str) -> None:
    """Raise ConfigError unless `parts` divides `total` (one sentence: cause + fix)."""
    if parts <= 0 or total <= 0 or total % parts != 0:
        raise ConfigError(f"{what}: {total} is not a positive multiple of {parts}; {fix}.")


def check_model_path(name: str, field: str = "model") -> None:
    """A model given as a path must exist (built-in names such as 'tiny' pass)."""
    from rlfoundry.llm.models import resolve_model_dir

    if not name:
        raise ConfigError(
            f"No starting model: set {field} to a model directory (e.g. the output of "
            "`rlfoundry llm sft`)."
        )
    resolve_model_dir(name)  # raises for a path that does not exist


def model_dir(name: str) -> str:
    """A run directory (holding `model/`) or a model directory -> what `load_model` takes."""
    from rlfoundry.llm.models import resolve_model_dir

    return str(resolve_model_dir(name) or name)


# ---------------------------------------------------------------------- tokenising


def encode_pairs(
    tok: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    max_len: int,
    add_eos: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Tokenise prompt and completion separately, concatenate, right-pad.

    Separate encoding keeps the prompt/completion boundary exact (encoding the joined
    text can merge tokens across it). EOS is appended to each completion when
    `add_eos`, and it is part of the completion mask: the model must learn to stop.
    Prompts are truncated from the left, completions from the right, to `max_len`.

    Returns `input_ids [B, L]`, `attention_mask [B, L]`, `completion_mask [B, L]`.
    """
    from rlfoundry.llm.models import encode_prompt

    rows, cmasks = [], []
    for p, c in zip(prompts, completions):
        pi = encode_prompt(tok, p)
        ci = tok.encode(c, add_special_tokens=False)
        if add_eos and tok.eos_token_id is not None:
            ci = ci + [tok.eos_token_id]
        ci = ci[: max(1, max_len - 1)]
        pi = pi[-(max_len - len(ci)) :] if len(pi) + len(ci) > max_len else pi
        rows.append(pi + ci)
        cmasks.append([0] * len(pi) + [1] * len(ci))
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    cmask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, cmasks)):
        ids[i, : len(r)] = torch.tensor(r)
        attn[i, : len(r)] = 1
        cmask[i, : len(r)] = torch.tensor(m, dtype=torch.bool)
    return ids, attn, cmask


def save_model(model: Any, tok: Any, out: str | os.PathLike) -> Path:
    """`DIR/model`: safetensors weights (LoRA merged) + tokenizer, loadable by transformers."""
    from transformers.utils import logging as hf_logging

    from rlfoundry.llm.models import save_model as save

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the run's output
    return save(model, tok, Path(out) / "model")


# ---------------------------------------------------------------------- checkpoints


def training_state(
    modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer, sched: Any
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and JSON state of the modules, the optimizer and the LR schedule
    (`rlfoundry.runtime.torch_state`), ready for `Run.save_checkpoint`."""
    from rlfoundry.runtime import torch_state as ts

    tensors: dict[str, Tensor] = {}
    for prefix, m in modules.items():
        tensors.update(ts.module_state(prefix, m))
    opt_t, opt_s = ts.optimizer_state("opt", opt)
    sch_t, sch_s = ts.scheduler_state("sched", sched)
    return {**tensors, **opt_t, **sch_t}, {"opt": opt_s, "sched": sch_s}


def load_training_state(
    tensors: dict[str, Tensor],
    state: dict[str, Any],
    modules: dict[str, torch.nn.Module],
    opt: torch.optim.Optimizer,
    sched: Any,
) -> None:
    """Inverse of `training_state`: bit-exact parameters, Adam moments and LR."""
    from rlfoundry.runtime import torch_state as ts

    for prefix, m in modules.items():
        ts.load_module_state(prefix, m, tensors)
    ts.load_optimizer_state("opt", opt, tensors, state["opt"])
    ts.load_scheduler_state("sched", sched, tensors, state["sched"])
