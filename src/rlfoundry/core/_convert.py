"""Let the tabular agents call the same math with numpy arrays and python floats.

Rule, used by `discounted_returns`, `reward_to_go`, `episode_return` and the TD targets:
if any argument is a `torch.Tensor`, the result is a tensor (dtype of the first floating
tensor argument, device of the first tensor argument). Otherwise the inputs are computed
in float64 on the CPU and the result comes back as a numpy array, or as a python `float`
when it is a scalar.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_tensors(*xs: Any) -> tuple[list[Tensor | None], torch.dtype, bool]:
    """Convert `xs` to tensors on one device; return them, the float dtype to use, and
    whether the caller passed any tensor (so the result should be a tensor too)."""
    tensors = [x for x in xs if isinstance(x, Tensor)]
    floats = [t for t in tensors if t.is_floating_point()]
    if floats:
        dtype = floats[0].dtype
    elif tensors:
        dtype = torch.get_default_dtype()
    else:
        # Tabular values are float64 in numpy; keep that precision.
        dtype = torch.float64
    device = tensors[0].device if tensors else None
    out: list[Tensor | None] = []
    for x in xs:
        if x is None or isinstance(x, Tensor):
            out.append(x)
        else:
            out.append(torch.as_tensor(np.asarray(x), device=device))
    return out, dtype, bool(tensors)


def as_flag(x: Tensor) -> Tensor:
    """Bool view of a termination flag given as bool, int or float 0/1."""
    return x if x.dtype == torch.bool else x != 0


def restore(x: Tensor, tensor_in: bool) -> Tensor | np.ndarray | float:
    """Give the result back in the kind the caller passed (see module docstring)."""
    if tensor_in:
        return x
    arr = x.detach().cpu().numpy()
    return float(arr) if arr.ndim == 0 else arr
