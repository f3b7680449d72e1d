"""Modules, optimizers and LR schedulers in a :meth:`rlfoundry.runtime.run.Run.save_checkpoint`.

A checkpoint is one safetensors file: a flat ``{name: tensor}`` dict plus a JSON state.
``nn.Module.state_dict()`` is already flat tensors, but an optimizer's or a scheduler's
state dict is a nested mix of tensors (Adam's moments and step), numbers, tuples
(``betas``) and int-keyed dicts. :func:`split_state` takes any such structure apart into
tensors (stored exactly, bit for bit) and a JSON-safe skeleton that says where each
tensor goes back; :func:`join_state` rebuilds it. So a resumed run continues with the
same parameters, the same Adam moments and the same learning rate as one that never
stopped, without pickle.

    tensors = {**module_state("q", q_net), **module_state("q_target", target)}
    opt_t, opt_s = optimizer_state("opt", optimizer)
    run.save_checkpoint(step, {**tensors, **opt_t}, {"opt": opt_s, ...})
    ...
    load_module_state("q", q_net, tensors)
    load_optimizer_state("opt", optimizer, tensors, state["opt"])

Parameters sharded by FSDP (DTensors) are stored as this process's shard and loaded
back into the same sharding, so each rank of an FSDP run keeps its own checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rlfoundry.errors import RLFoundryError

_TENSOR, _TUPLE, _DICT = "__tensor__", "__tuple__", "__dict__"


def module_state(prefix: str, module: nn.Module) -> dict[str, Tensor]:
    """``{prefix/name: tensor}`` for every parameter and buffer of ``module``.

    The tensors are detached copies: the caller may keep training before writing them
    (and safetensors refuses tensors that share memory, e.g. tied weights).
    """
    return {f"{prefix}/{k}": _local(v).detach().clone() for k, v in module.state_dict().items()}


def _local(t: Tensor) -> Tensor:
    """This process's shard of an FSDP-sharded tensor (a DTensor); other tensors as they are."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def _sharded_like(t: Tensor, like: Any) -> Tensor:
    """`t` (a stored shard) as a DTensor sharded as `like`; `t` itself if `like` is no DTensor."""
    if not callable(getattr(like, "to_local", None)) or t.shape != like.to_local().shape:
        return t
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(
        t.to(like.to_local().device), like.device_mesh, like.placements,
        shape=like.shape, stride=like.stride(),
    )  # fmt: skip


def load_module_state(prefix: str, module: nn.Module, tensors: dict[str, Tensor]) -> None:
    """Load the entries ``prefix/...`` of ``tensors`` into ``module`` (strict: every
    parameter must be there, with its shape)."""
    head = f"{prefix}/"
    sd = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
    current = module.state_dict()
    sd = {k: _sharded_like(v, current.get(k)) for k, v in sd.items()}
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise RLFoundryError(
            f"The checkpoint's '{prefix}' network does not fit this model ({_first_line(err)}); "
            "resume with the config the run was started with."
        ) from None


def split_state(prefix: str, obj: Any) -> tuple[dict[str, Tensor], Any]:
    """Split a nested state (dicts, lists, tuples, numbers, strings, None, tensors) into
    ``({prefix/path: tensor}, json_skeleton)``; :func:`join_state` inverts it exactly."""
    tensors: dict[str, Tensor] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, Tensor):
            tensors[path] = _local(x).detach().clone()
            return {_TENSOR: path}
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x) and not ({_TENSOR, _TUPLE, _DICT} & set(x)):
                return {k: walk(v, f"{path}/{k}") for k, v in x.items()}
            # int keys (an optimizer's per-parameter state) would become strings in JSON
            return {_DICT: [[k, walk(v, f"{path}/{k}")] for k, v in x.items()]}
        if isinstance(x, tuple):
            return {_TUPLE: [walk(v, f"{path}/{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(x)]
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(
            f"Cannot store {type(x).__name__} at '{path}' in a checkpoint: only tensors, "
            "numbers, strings, None and lists/tuples/dicts of them are stored."
        )

    return tensors, walk(obj, prefix)


def join_state(tensors: dict[str, Tensor], skeleton: Any) -> Any:
    """Rebuild the structure :func:`split_state` took apart."""
    if isinstance(skeleton, dict):
        if _TENSOR in skeleton:
            return tensors[skeleton[_TENSOR]]
        if _TUPLE in skeleton:
            return tuple(join_state(tensors, v) for v in skeleton[_TUPLE])
        if _DICT in skeleton:
            return {k: join_state(tensors, v) for k, v in skeleton[_DICT]}
        return {k: join_state(tensors, v) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [join_state(tensors, v) for v in skeleton]
    return skeleton


def optimizer_state(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], Any]:
    """``(tensors, json_state)`` of ``optimizer.state_dict()`` (moments, step counts,
    hyperparameters of every param group)."""
    return split_state(prefix, optimizer.state_dict())


def load_optimizer_state(
    prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], state: Any
) -> None:
    """Restore what :func:`optimizer_state` saved; ``optimizer`` must be built over the same
    parameters in the same order."""
    loaded = join_state(tensors, state)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, per_param in loaded.get("state", {}).items():
        if isinstance(i, int) and i < len(params):
            for k, v in per_param.items():
                per_param[k] = _sharded_like(v, params[i]) if k != "step" else v
    try:
        optimizer.load_state_dict(loaded)
    except (ValueError, KeyError) as err:
        raise RLFoundryError(
            f"The checkpoint's '{prefix}' optimizer state does not fit this model "
            f"({_first_line(err)}); resume with the config the run was started with."
        ) from None


def scheduler_state(prefix: str, scheduler: Any) -> tuple[dict[str, Tensor], Any]:
    """``(tensors, json_state)`` of an LR scheduler's ``state_dict()``. Its lambdas are not
    stored (torch keeps only callable objects' ``__dict__``); they come from the config."""
    return split_state(prefix, scheduler.state_dict())


def load_scheduler_state(
    prefix: str, scheduler: Any, tensors: dict[str, Tensor], state: Any
) -> None:
    """Restore what :func:`scheduler_state` saved (epoch counter, last learning rates)."""
    scheduler.load_state_dict(join_state(tensors, state))


def _first_line(err: BaseException) -> str:
    """The error on one line, shortened (torch's state-dict errors span many lines)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 240 else text[:237] + "..."
