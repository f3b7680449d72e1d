"""Small network builders shared by the deep RL algorithms.

Orthogonal initialisation with gain sqrt(2) on hidden layers and zero biases follows
"The 37 Implementation Details of PPO" (Huang et al., 2022, detail 2) and the OpenAI
baselines code it documents; the output gain is left to the caller (0.01 for a policy
head so initial actions are near uniform, 1.0 for a value head).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces
from torch import nn

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
) -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` MLP, orthogonally initialised.

    Hidden layers get gain sqrt(2), the output layer ``out_gain``; all biases are 0.
    No activation after the output layer.
    """
    layers: list[nn.Module] = []
    last = int(in_dim)
    for h in hidden:
        layers += [layer_init(nn.Linear(last, int(h))), activation()]
        last = int(h)
    layers.append(layer_init(nn.Linear(last, int(out_dim)), gain=out_gain))
    return nn.Sequential(*layers)


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
