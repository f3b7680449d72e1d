"""Data parallelism for every trainer: this process's place in a launch of several
(`torchrun`, `accelerate launch`, `mpirun`), the collectives the losses need, and FSDP.

    d = init_distributed(device)            # rank, world, local rank, this rank's device
    rows = d.shard(batch_size)              # this rank's contiguous share of the global batch
    n = all_reduce_sum(local_count, d)      # global counts for the loss denominators
    sync_gradients(model, d)                # sum of the gradients over ranks
    due, stop = any_rank(d, run.checkpoint_due(step), run.should_stop(step))

Every loss is divided by GLOBAL counts (tokens or sequences of the whole optimizer
batch over all ranks), so summed gradients equal the single-process full-batch update:
N processes x B/N end with the parameters of 1 process x B (tests/llm/test_ddp.py).

Launchers: `torchrun` (and `accelerate launch` when it runs torchrun: on 2+ GPUs or with
`--multi_gpu`) sets RANK / WORLD_SIZE / LOCAL_RANK; `mpirun` (accelerate's multi-CPU
launcher) sets OMPI_COMM_WORLD_* or PMI_*. `accelerate launch --num_processes N` on a
machine with fewer than two GPUs starts one process: `runtime/launch.py` turns it into N.

FSDP (`fsdp=true` in SFT, pretrain, GRPO, RLOO): `shard_model` applies torch's
`fully_shard` to every transformer block and then the whole model, so each rank holds
1/N of the parameters, gradients and AdamW moments. Gradients are then reduce-scattered
as a sum (not FSDP's default mean) for the global-count losses above. Sampling and
rank-0 evaluation run inside `full_params(model)` (parameters gathered once, so ranks
may run different numbers of forward passes), and `full_state_dict` gathers the weights
to rank 0 for `DIR/model`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rlfoundry.errors import ConfigError


@dataclass(frozen=True)
class Dist:
    """This process's place in a launch (1 process: rank 0 of 1 on `device`)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    """This rank's device: cuda:LOCAL_RANK when the group runs nccl, else the CPU (gloo)."""

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous rows of a global batch of `n` (a multiple of `world`)."""
        k = n // self.world
        return slice(self.rank * k, (self.rank + 1) * k)


# (rank, world, local rank) variables of the MPI launchers accelerate supports
_MPI_VARS = (
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_LOCAL_RANK"),
)


def launch_env(env: Mapping[str, str] | None = None) -> Dist:
    """Rank, world and local rank from the launcher's variables, without joining a group."""
    env = os.environ if env is None else env
    if int(env.get("WORLD_SIZE", "1")) > 1:
        return Dist(
            int(env.get("RANK", "0")), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0"))
        )
    for rank, world, local in _MPI_VARS:
        if int(env.get(world, "1")) > 1:
            return Dist(int(env[rank]), int(env[world]), int(env.get(local, "0")))
    return Dist()


def world_size() -> int:
    """Processes of this launch (1 when not launched by several): for checks before work."""
    return launch_env().world


def check_divides(what: str, total: int, fix: str, world: int | None = None) -> None:
    """One sentence when `world` processes cannot split `total` evenly (before any work)."""
    world = world_size() if world is None else world
    if world > 1 and (total <= 0 or total % world):
        raise ConfigError(f"{what} = {total} does not split evenly over {world} processes; {fix}.")


def check_batch_split(batch_size: int, micro_batch_size: int = 0, world: int | None = None) -> None:
    """The global batch splits evenly over the processes, and each share into micro-batches."""
    world = world_size() if world is None else world
    fix = "set batch_size to a multiple of the number of processes"
    check_divides("batch_size", batch_size, fix, world)
    share = batch_size // world
    if micro_batch_size and share % micro_batch_size:
        raise ConfigError(
            f"micro_batch_size = {micro_batch_size} does not divide each process's share of "
            f"the batch ({share} = batch_size / {world} processes); set micro_batch_size to "
            f"a divisor of {share} (or 0)."
        )


def _rank_device(device: str, local_rank: int) -> torch.device:
    """`auto` = CUDA when there is one; a CUDA rank gets its own GPU (cuda:LOCAL_RANK)."""
    kind = device.split(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device is cuda but torch sees no CUDA device; use device=cpu.")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(kind)


def init_distributed(device: str = "auto") -> Dist:
    """Join the process group the launcher describes (a no-op for a single process).

    `device` ('auto', 'cpu', 'cuda'): a CUDA rank uses cuda:LOCAL_RANK and nccl, a CPU
    rank gloo. Stages place their models on `Dist.device` (or any device: the
    collectives below move their tensors to it and back).
    """
    d = launch_env()
    dev = _rank_device(device, d.local_rank)
    if d.world <= 1:  # one process: an explicit cuda:N stands
        return Dist(device=torch.device(device) if ":" in device else dev)
    if dev.type not in ("cuda", "cpu"):
        raise ConfigError(
            f"Several processes need device cuda or cpu (nccl or gloo), not {dev.type}; "
            "set device=cpu or launch one process."
        )
    import torch.distributed as dist

    for key, value in (("RANK", d.rank), ("WORLD_SIZE", d.world), ("LOCAL_RANK", d.local_rank)):
        os.environ.setdefault(key, str(value))  # mpirun sets only its own names
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        # torch._dynamo (imported by the first optimizer) keeps references to a group that
        # exists when it is imported (torch 2.13), so `leave_group` would not free the group
        # and its gloo threads would outlive the interpreter; imported first, it holds none.
        importlib.import_module("torch._dynamo")
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    elif dist.get_backend() == "nccl":
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    return Dist(dist.get_rank(), dist.get_world_size(), d.local_rank, dev)


def in_group() -> bool:
    """This process has joined a process group (and not left it)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def leave_group(d: Dist) -> None:
    """Leave the process group before the process exits, on every path (finished,
    interrupted, refused, failed).

    A group still alive when the interpreter shuts down keeps gloo's worker threads
    running; one that drops the last reference to a collective's tensor then takes the
    GIL of an interpreter being torn down, and the process aborts ("terminate called
    without an active exception", SIGABRT), now and then, depending on timing. Leaving
    it here frees the group, whose destructor joins those threads while Python is whole.
    Local: it waits for no other rank, so a rank leaving on an error cannot hang.
    """
    if d.world > 1 and in_group():
        import torch.distributed as dist

        dist.destroy_process_group()


def report_error(message: str) -> None:
    """Put a user-facing error (one sentence) in torchrun's failure report.

    torchrun names the root cause from the file in TORCHELASTIC_ERROR_FILE; without one
    it prints "To enable traceback see ...". The worker itself prints the sentence and
    exits with code 2; torchrun still adds its own report and exits with 1.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    info = {"py_callstack": message, "timestamp": str(int(time.time()))}
    with contextlib.suppress(OSError), open(path, "w") as f:
        json.dump({"message": {"message": message, "extraInfo": info}}, f)


# ---------------------------------------------------------------------- collectives


def all_reduce_sum(x: Tensor, d: Dist) -> Tensor:
    """Sum of `x` over all processes (a copy on `x`'s device; `x` itself is untouched)."""
    if d.world == 1:
        return x
    import torch.distributed as dist

    y = x.to(d.device, copy=True)
    dist.all_reduce(y)
    return y.to(x.device)


def any_rank(d: Dist, *flags: bool) -> tuple[bool, ...]:
    """Each flag, true on every rank if it is true on any: ranks agree on when to save a
    checkpoint (a wall-clock interval) or stop (a signal), so none waits for the others
    in a collective they never reach."""
    if d.world == 1:
        return tuple(bool(f) for f in flags)
    tot = all_reduce_sum(torch.tensor([float(f) for f in flags]), d)
    return tuple(bool(v > 0) for v in tot)


def broadcast_object(obj: Any, d: Dist) -> Any:
    """Rank 0's `obj` (e.g. its evaluation metrics) on every rank."""
    if d.world == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0, device=d.device if d.device.type == "cuda" else None)
    return box[0]


def check_resumed(d: Dist, saved_world: int | None) -> None:
    """Every rank resumes, from a run of as many processes, or none does.

    `saved_world`: the process count stored in this rank's checkpoint (None: no
    checkpoint). Each rank keeps its own checkpoint (rank 0 in DIR, the others in
    DIR/.rankR), so a run resumes with the number of processes it was started with.
    """
    found, missing, other = any_rank(
        d, saved_world is not None, saved_world is None, saved_world not in (None, d.world)
    )
    if found and (missing or other):
        raise ConfigError(
            f"This run's checkpoints were written by a different number of processes than "
            f"the {d.world} launched now; resume it with as many processes as it was started with."
        )


def sync_gradients(model: torch.nn.Module, d: Dist) -> None:
    """Sum gradients over processes (FSDP has already reduce-scattered its own).

    Every loss here is already divided by GLOBAL counts (tokens or sequences of the
    whole optimizer batch over all ranks), so the sum, not DDP's mean, is the gradient
    of the full-batch loss: 2 processes x B/2 give the update of 1 process x B.
    """
    if d.world == 1 or is_sharded(model):
        return
    import torch.distributed as dist

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads]).to(d.device)
    dist.all_reduce(flat)
    i = 0
    for g in grads:
        g.copy_(flat[i : i + g.numel()].view_as(g))
        i += g.numel()


def grad_norm(params: list[Tensor], max_norm: float) -> float:
    """Clip the gradient norm to `max_norm` (0 = no clip) and return the norm before it
    (the norm over all shards for FSDP parameters)."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm or float("inf"))
    full = getattr(norm, "full_tensor", None)  # a DTensor when the parameters are sharded
    return float(full() if full is not None else norm)


# ---------------------------------------------------------------------- FSDP


def check_fsdp(world: int | None = None) -> None:
    """FSDP shards over processes: refuse it for a single process, before any work."""
    world = world_size() if world is None else world
    if world < 2:
        raise ConfigError(
            "fsdp=true shards the model over processes but this is one process; launch "
            "with `torchrun --nproc-per-node N` (N >= 2) or set fsdp=false."
        )


def shard_model(model: torch.nn.Module, d: Dist, train: bool = True) -> torch.nn.Module:
    """`fully_shard` every transformer block (transformers' `_no_split_modules`), then
    the whole model, on a 1-D mesh of all ranks on `d.device`. In place; returns `model`.

    Gradients reduce as a SUM over ranks (divide factor 1; a plain sum on gloo, which
    has no pre-multiplied sum): the losses are already divided by global counts.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    mesh = init_device_mesh(d.device.type, (d.world,))
    blocks = set(getattr(_base(model), "_no_split_modules", None) or ())
    for m in model.modules():
        if type(m).__name__ in blocks:
            fully_shard(m, mesh=mesh)
    fully_shard(model, mesh=mesh)
    if train:
        for m in model.modules():
            if isinstance(m, FSDPModule):
                m.set_gradient_divide_factor(1.0)
                m.set_force_sum_reduction_for_comms(True)
    return model


def _base(model: Any) -> Any:
    """The transformers model under a peft wrapper (it names the blocks)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def full_params(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Every rank holds the whole model inside the block (all ranks must enter it).

    Forward passes inside then need no collectives, so ranks may sample different
    lengths or rank 0 may evaluate alone. Costs the full weights' memory meanwhile, as
    any generation with a sharded model does (TRL's ZeRO-3 path gathers them the same way).
    A no-op for a model that is not sharded.
    """
    if not is_sharded(model):
        yield model
        return
    from torch.distributed.fsdp import FSDPModule

    mods = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for m in mods:
        m.set_reshard_after_forward(False)
        m.unshard()
    try:
        yield model
    finally:
        for m in mods:
            m.reshard()
            m.set_reshard_after_forward(True)


def unsharded(model: torch.nn.Module, plain: Any, d: Dist) -> Any:
    """The whole trained model on rank 0, None on the others; every rank must call it.

    A sharded `model` is gathered into `plain`, rank 0's unsharded copy of it made
    before `shard_model` (on the CPU); a model that is not sharded is returned as is.
    """
    if not is_sharded(model):
        return model if d.main else None
    state = full_state_dict(model)
    if not d.main:
        return None
    plain.load_state_dict(state)
    return plain


def on_main(d: Dist, model: torch.nn.Module, fn: Any) -> Any:
    """`fn()` run by rank 0 alone with the whole model (an evaluation), its result on
    every rank; every rank must call it."""
    with full_params(model):
        return broadcast_object(fn() if d.main else None, d)


def full_state_dict(model: torch.nn.Module) -> dict[str, Tensor]:
    """The whole state dict on rank 0's CPU ({} on the others); every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=opts)
