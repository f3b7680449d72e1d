"""What an LLM stage saves: the training state for exact resume, and the final model.

    tensors, state = training_state({"model": model}, opt, sched, prec)   # -> Run.save_checkpoint
    load_training_state(tensors, state, {"model": model}, opt, sched, prec)
    save_run_model(model, tok, run.path)                                   # DIR/model

The training state is every module's parameters and buffers, the AdamW moments, the
LR schedule's position (`rlfoundry.runtime.torch_state`) and float16's loss scale, so
a resumed run continues bit-exactly; each stage adds its own data-order and sampling
RNG states. A module with frozen weights (a LoRA base) stores only what trains: the
frozen weights come back from the starting model when the run resumes. Tensors are
written from the CPU (`Run.save_checkpoint`), so a run saved on a GPU resumes on the
CPU. The final model is `DIR/model`: safetensors weights (LoRA merged) and the
tokenizer, loadable by `models.load_model` and by transformers' `from_pretrained`
(stages with a Config use `policy.save_policy`, which can also save the adapter alone).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.models import save_model
from rlfoundry.runtime import torch_state as ts


def _has_frozen(m: torch.nn.Module) -> bool:
    return any(not p.requires_grad for p in m.parameters())


def module_tensors(prefix: str, m: torch.nn.Module) -> dict[str, Tensor]:
    """`{prefix/name: tensor}`: the whole state, or only the trained parameters of a
    module with frozen weights (a LoRA adapter and heads, not the base)."""
    if not _has_frozen(m):
        return ts.module_state(prefix, m)
    return {
        f"{prefix}/{n}": ts._local(p).detach().clone()  # FSDP: this rank's shard
        for n, p in m.named_parameters()
        if p.requires_grad
    }


def load_module_tensors(prefix: str, m: torch.nn.Module, tensors: dict[str, Tensor]) -> None:
    """Inverse of `module_tensors` (strict on what it stored)."""
    if not _has_frozen(m):
        ts.load_module_state(prefix, m, tensors)
        return
    head = f"{prefix}/"
    sd = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
    want = {n for n, p in m.named_parameters() if p.requires_grad}
    if set(sd) != want:
        missing = sorted(want - set(sd))[:3] or sorted(set(sd) - want)[:3]
        raise RLFoundryError(
            f"The checkpoint's '{prefix}' adapter does not fit this model (e.g. {missing}); "
            "resume with the config the run was started with."
        )
    params = dict(m.named_parameters())
    m.load_state_dict({k: ts._sharded_like(v, params[k]) for k, v in sd.items()}, strict=False)


def training_state(
    modules: dict[str, torch.nn.Module],
    opt: torch.optim.Optimizer,
    sched: Any,
    prec: Any = None,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and JSON state of the modules (each under its own prefix), the optimizer,
    the LR schedule and the loss scaler (`precision.Precision`), for `Run.save_checkpoint`."""
    tensors: dict[str, Tensor] = {}
    for prefix, m in modules.items():
        tensors.update(module_tensors(prefix, m))
    opt_t, opt_s = ts.optimizer_state("opt", opt)
    sch_t, sch_s = ts.scheduler_state("sched", sched)
    state = {"opt": opt_s, "sched": sch_s, **(prec.state() if prec is not None else {})}
    return {**tensors, **opt_t, **sch_t}, state


def load_training_state(
    tensors: dict[str, Tensor],
    state: dict[str, Any],
    modules: dict[str, torch.nn.Module],
    opt: torch.optim.Optimizer,
    sched: Any,
    prec: Any = None,
) -> None:
    """Inverse of `training_state`: bit-exact parameters, Adam moments, LR and loss scale."""
    for prefix, m in modules.items():
        load_module_tensors(prefix, m, tensors)
    ts.load_optimizer_state("opt", opt, tensors, state["opt"])
    ts.load_scheduler_state("sched", sched, tensors, state["sched"])
    if prec is not None:
        prec.load_state(state)


def save_run_model(model: Any, tok: Any, run_dir: str | os.PathLike) -> Path:
    """`run_dir/model`: the (LoRA-merged) model as safetensors plus its tokenizer."""
    return save_model(model, tok, Path(run_dir) / "model")
