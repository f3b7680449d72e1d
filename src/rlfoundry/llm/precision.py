"""Device and numeric precision of an LLM stage: where tensors live, autocast, loss scaling.

    prec = Precision.from_config(cfg)          # cfg.device, cfg.dtype
    with prec.autocast():                      # forward passes (and the loss)
        loss = ...
    prec.backward(loss)                        # scaled by the GradScaler under float16
    prec.unscale(opt)                          # before clipping the gradient norm
    prec.step(opt)                             # skipped (and the scale lowered) on inf/nan

`dtype` is mixed precision, as TRL's `bf16=True` / `fp16=True`: trainable weights stay
in float32 (the optimizer's master weights) and forward passes run under
`torch.autocast` in `dtype`; weights that never train (a LoRA base model, a frozen
reference copy) are stored in `dtype`, halving their memory. float16's narrow range
needs a loss scale (Micikevicius et al. 2018, arXiv:1710.03740): `torch.amp.GradScaler`
multiplies the loss before backward and skips a step whose gradients overflowed.
bfloat16 has float32's range and needs none. float32 (the default) is plain training:
no autocast, no scaler, the same numbers as before these options existed.

`device="auto"` picks cuda when available, then mps, then the CPU; `cuda:N` names one
GPU of a single process. Under `torchrun`
the cuda device is the one of this process's LOCAL_RANK.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rlfoundry.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str) -> torch.device:
    """ "auto" | "cpu" | "cuda" | "cuda:N" | "mps" -> a torch.device; one sentence when the
    name is unknown or the device absent. Under a launch of several processes a cuda
    device is the one of this process's LOCAL_RANK (`cuda:N` too, as init_distributed)."""
    from rlfoundry.runtime.distributed import world_size  # torchrun, accelerate, mpirun

    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(
            f"Unknown device '{name}'; use one of {', '.join(DEVICES)} or cuda:N (auto = "
            "cuda if available, else mps, else cpu)."
        )
    several = world_size() > 1
    if kind == "auto":  # several processes: cuda or cpu, as init_distributed picks
        mps = _mps_available() and not several
        kind = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={name} but torch sees no CUDA device (torch {torch.__version__}); "
                "set device=cpu or auto, or install a CUDA build of torch."
            )
        count = torch.cuda.device_count()
        if several or not index:
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % count)
        if int(index) >= count:
            raise ConfigError(
                f"device={name} but torch sees {count} CUDA device(s); use cuda:0 to "
                f"cuda:{count - 1}."
            )
        return torch.device("cuda", int(index))
    if kind == "mps" and not _mps_available():
        raise ConfigError("device=mps but torch sees no Apple MPS device; set device=cpu or auto.")
    return torch.device(kind)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """ "float32" | "bfloat16" | "float16" -> torch dtype; float16 is refused on the CPU."""
    if name not in DTYPES:
        raise ConfigError(f"Unknown dtype '{name}'; use one of {', '.join(DTYPES)}.")
    if name == "float16" and device.type == "cpu":
        raise ConfigError(
            "dtype=float16 needs a GPU (the CPU has no float16 autocast or loss scaling); "
            "use dtype=bfloat16 or float32 on the CPU."
        )
    return DTYPES[name]


@dataclass
class Precision:
    """The device and the autocast dtype of a run, and float16's loss scaler."""

    device: torch.device
    dtype: torch.dtype = torch.float32
    scaler: Any = None  # torch.amp.GradScaler under float16

    @classmethod
    def from_config(cls, cfg: Any) -> Precision:
        device = resolve_device(getattr(cfg, "device", "cpu"))
        dtype = resolve_dtype(getattr(cfg, "dtype", "float32"), device)
        scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        return cls(device, dtype, scaler)

    @property
    def mixed(self) -> bool:
        return self.dtype != torch.float32

    def autocast(self) -> contextlib.AbstractContextManager:
        """`torch.autocast` in `dtype` on the device; nothing under float32."""
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def frozen(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` as weights that never train: no grad, eval mode, stored in `dtype`."""
        module = module.eval().requires_grad_(False)
        return module.to(self.dtype) if self.mixed else module

    def backward(self, loss: Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, opt: torch.optim.Optimizer) -> None:
        """True gradients again (before clipping); a no-op without a scaler."""
        if self.scaler is not None:
            self.scaler.unscale_(opt)

    def step(self, opt: torch.optim.Optimizer) -> None:
        """`opt.step()`; under float16 skipped when a gradient overflowed, then the scale adapts."""
        if self.scaler is None:
            opt.step()
            return
        self.scaler.step(opt)
        self.scaler.update()

    def state(self) -> dict[str, Any]:
        """JSON state for the checkpoint: the loss scale and its growth counter."""
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])

    def to(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        """The tensors on the device (for batches built on the CPU)."""
        return tuple(t.to(self.device, non_blocking=True) for t in tensors)


def count_dtype(t: Tensor) -> torch.dtype:
    """float64 for token counts (exact far beyond float32's 2^24); float32 on MPS, which
    has no float64."""
    return torch.float32 if t.device.type == "mps" else torch.float64


# ---------------------------------------------------------------------- sampling generator


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch.Generator on `device` (sampling noise is drawn where the logits are)."""
    return torch.Generator(device=device).manual_seed(seed)


def generator_tensors(gen: torch.Generator) -> tuple[Tensor, str]:
    """The generator's state (a CPU byte tensor) and the device type it belongs to."""
    return gen.get_state(), gen.device.type


def restore_generator(
    gen: torch.Generator, state: Tensor, saved_device: str | None, reseed: int
) -> None:
    """Set `gen` to a saved state; a state saved on another kind of device (a CUDA run
    resumed on the CPU) cannot be, so `gen` restarts from `reseed` with a warning."""
    if (saved_device or "cpu") == gen.device.type:
        gen.set_state(state.to(torch.uint8))
        return
    warnings.warn(
        f"the checkpoint's sampling stream was saved on {saved_device} and this run is on "
        f"{gen.device.type}; sampling continues from a fresh seed (weights and optimizer "
        "state are restored exactly).",
        stacklevel=2,
    )
    gen.manual_seed(reseed)
