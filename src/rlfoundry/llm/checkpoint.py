"""What an LLM stage saves: the training state for exact resume, and the final model.

    tensors, state = training_state({"model": model}, opt, sched)   # -> Run.save_checkpoint
    load_training_state(tensors, state, {"model": model}, opt, sched)
    save_run_model(model, tok, run.path)                             # DIR/model

The training state is every module's parameters and buffers, the AdamW moments and the
LR schedule's position (`rlfoundry.runtime.torch_state`), so a resumed run continues
bit-exactly; each stage adds its own data-order and sampling RNG states. The final
model is `DIR/model`: safetensors weights (LoRA merged) and the tokenizer, loadable by
`models.load_model` and by transformers' `from_pretrained`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlfoundry.llm.models import save_model
from rlfoundry.runtime import torch_state as ts


def training_state(
    modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer, sched: Any
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and JSON state of the modules (each under its own prefix), the optimizer
    and the LR schedule, ready for `Run.save_checkpoint`."""
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
    for prefix, m in modules.items():
        ts.load_module_state(prefix, m, tensors)
    ts.load_optimizer_state("opt", opt, tensors, state["opt"])
    ts.load_scheduler_state("sched", sched, tensors, state["sched"])


def save_run_model(model: Any, tok: Any, run_dir: str | os.PathLike) -> Path:
    """`run_dir/model`: the (LoRA-merged) model as safetensors plus its tokenizer."""
    return save_model(model, tok, Path(run_dir) / "model")
