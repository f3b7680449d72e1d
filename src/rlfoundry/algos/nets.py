"""Small network builders shared by the deep RL algorithms.

Orthogonal initialisation with gain sqrt(2) on hidden layers and zero biases follows
"The 37 Implementation Details of PPO" (Huang et al., 2022, detail 2) and the OpenAI
baselines code it documents; the output gain is left to the caller (0.01 for a policy
head so initial actions are near uniform, 1.0 for a value head).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn
from torch.optim.adam import adam

from rlfoundry.errors import EnvError


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weight init with ``gain`` and constant bias, in place; returns ``layer``."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.Tanh,
    out_gain: float = 1.0,
    orthogonal: bool = True,
) -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` MLP, orthogonally initialised.

    Hidden layers get gain sqrt(2), the output layer ``out_gain``; all biases are 0.
    ``orthogonal=False`` keeps PyTorch's default init instead (``out_gain`` unused).
    No activation after the output layer.
    """
    init = layer_init if orthogonal else (lambda layer, gain=1.0: layer)
    layers: list[nn.Module] = []
    last = int(in_dim)
    for h in hidden:
        layers += [init(nn.Linear(last, int(h))), activation()]
        last = int(h)
    layers.append(init(nn.Linear(last, int(out_dim)), gain=out_gain))
    return nn.Sequential(*layers)


_ACTIVATIONS = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu}


def mlp_layers(seq: nn.Sequential) -> list[Any]:
    """The layers of an :func:`mlp` as plain data for :func:`mlp_forward`: ``(weight,
    bias)`` per Linear, the torch function per activation. The tensors are the module's
    own parameters (updated in place by optimisers and ``load_state_dict``)."""
    out: list[Any] = []
    for m in seq:
        if type(m) is nn.Linear:
            out.append((m.weight, m.bias))
        elif type(m) in _ACTIVATIONS:
            out.append(_ACTIVATIONS[type(m)])
        else:
            raise TypeError(f"mlp_layers handles Linear/Tanh/ReLU, not {type(m).__name__}")
    return out


def mlp_forward(layers: list[Any], x: Tensor) -> Tensor:
    """``seq(x)`` for ``layers = mlp_layers(seq)``, with the same kernels (bit-identical),
    minus ``nn.Module.__call__``'s hook machinery: for a 64-64 MLP on a batch of 8 that
    machinery is ~35% of the forward pass (measured), and PPO runs one per env step."""
    for layer in layers:
        x = F.linear(x, *layer) if type(layer) is tuple else layer(x)
    return x


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> Tensor:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``
    (``nn.utils.clip_grad_norm_``'s result; returns the norm before clipping).

    The same math in three foreach kernels: for a dozen small tensors the built-in's
    Python-side grouping costs more than the arithmetic (measured 2.5x slower here,
    ~15% of a CartPole PPO update).
    """
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    # max_norm / (norm + 1e-6), as Tensor.__rdiv__ computes it, minus its Python wrapper
    coef = (norm + 1e-6).reciprocal() * max_norm
    # On the CPU (where reading it costs no device sync) a coefficient clamped to 1 is
    # skipped: x * 1.0 is x, bit for bit.
    if norm.device.type != "cpu" or coef.item() < 1.0:
        torch._foreach_mul_(grads, torch.clamp(coef, max=1.0))
    return norm


class FusedAdam:
    """``torch.optim.Adam(params, lr, eps=eps, fused=True)`` without ``torch.optim.Optimizer``:
    the same kernel (``torch._fused_adam_``, after ``_foreach_add_`` on the step counts, as
    ``torch.optim.adam._fused_adam`` calls it), the same lazily created state and the same
    ``state_dict`` (so checkpoints are interchangeable, bit for bit).

    Why: ``Optimizer.__init__``, ``state_dict`` and the functional ``adam`` are wrapped in
    ``torch._disable_dynamo``, whose first call imports ``torch._dynamo``: ~1 CPU s, as much
    as importing torch itself, in every process that trains (measured, torch 2.13). One
    parameter group, no weight decay, no amsgrad: what PPO uses.
    """

    def __init__(self, params: Sequence[Tensor], lr: float, eps: float = 1e-8) -> None:
        self.params = list(params)
        self.param_groups = [
            {"lr": lr, "betas": (0.9, 0.999), "eps": eps, "weight_decay": 0, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
             "fused": True, "decoupled_weight_decay": False, "params": self.params}
        ]  # fmt: skip
        self.state: dict[Tensor, dict[str, Tensor]] = {}
        self._lists: tuple[list[Tensor], ...] | None = None  # the state as the kernel takes it

    def step(self) -> None:
        group = self.param_groups[0]
        if self._lists is None:
            for p in self.params:
                if p not in self.state:
                    self.state[p] = {
                        "step": torch.zeros((), dtype=torch.float32, device=p.device),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                    }
            states = [self.state[p] for p in self.params]
            self._lists = tuple([s[k] for s in states] for k in ("step", "exp_avg", "exp_avg_sq"))
        steps, exp_avgs, exp_avg_sqs = self._lists
        beta1, beta2 = group["betas"]
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                self.params,
                [p.grad for p in self.params],
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )

    def state_dict(self) -> dict[str, Any]:
        """What ``torch.optim.Adam.state_dict()`` returns (tensors not copied)."""
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.params)))
        state = {i: dict(self.state[p]) for i, p in enumerate(self.params) if p in self.state}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what :meth:`state_dict` (or ``torch.optim.Adam``'s) saved; ValueError if it
        was made for other parameters."""
        (group,) = state_dict["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(
                f"the saved optimizer has {len(group['params'])} parameters, this one "
                f"{len(self.params)}"
            )
        self.param_groups[0].update({k: v for k, v in group.items() if k != "params"})
        self.state, self._lists = {}, None
        for i, s in state_dict["state"].items():
            p = self.params[int(i)]
            if s["exp_avg"].shape != p.shape:
                raise ValueError(f"parameter {i}: saved shape {tuple(s['exp_avg'].shape)}")
            self.state[p] = {k: v.detach().clone().to(p.device) for k, v in s.items()}


def adam_step(opt: torch.optim.Adam | FusedAdam) -> None:
    """``opt.step()`` for a one-group Adam, with the same kernels (bit-identical), minus
    ``Optimizer.step``'s wrapper (hooks, profiler scope, regrouping the state on every
    call): ~60 of ~140 us per step for a 64-64 actor-critic (measured), which is ~5% of
    a CartPole PPO update. Through ``torch.optim.adam.adam``, the public functional form
    the class itself calls. Falls back to ``opt.step()`` for the first step (no state
    yet), missing gradients and the options it does not pass on."""
    if isinstance(opt, FusedAdam):
        opt.step()
        return
    (group,) = opt.param_groups
    params = group["params"]
    if (
        group["amsgrad"]
        or group["capturable"]
        or group["differentiable"]
        or group.get("decoupled_weight_decay", False)
        or any(p.grad is None or p not in opt.state for p in params)
    ):
        opt.step()
        return
    states = [opt.state[p] for p in params]
    beta1, beta2 = group["betas"]
    with torch.no_grad():  # as Optimizer.step: parameters are updated in place
        adam(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            foreach=group["foreach"],
            fused=group["fused"],
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )


def obs_dim(space: spaces.Space) -> int:
    """Length of the flat observation vector for a Box (any shape, flattened) or a Discrete
    (one-hot) observation space."""
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    raise EnvError(
        f"Observation space {space} is not supported; use a Box or Discrete observation "
        "space (e.g. wrap the env with gymnasium.wrappers.FlattenObservation)."
    )


def act_dim(space: spaces.Space) -> int:
    """Number of network outputs for an action space: ``n`` logits for Discrete, the
    flattened size for Box (one mean per action dimension)."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    raise EnvError(f"Action space {space} is not supported; use a Discrete or Box action space.")


def obs_encoder(space: spaces.Space) -> tuple[int, Callable[[Any], np.ndarray]]:
    """``(width, encode)`` for one observation at a time: Box observations are flattened to
    float32 ``[width]``, Discrete ones one-hot (DQN's and VPG's per-step encoding)."""
    if isinstance(space, spaces.Discrete):
        eye = np.eye(int(space.n), dtype=np.float32)
        return int(space.n), lambda o: eye[int(o) - int(space.start)]
    width = int(np.prod(space.shape))
    return width, lambda o: np.asarray(o, dtype=np.float32).reshape(width)
