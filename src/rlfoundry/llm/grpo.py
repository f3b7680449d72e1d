"""Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath, arXiv:2402.03300).

    rlfoundry llm grpo --set model=runs/sft --task arithmetic --out runs/grpo
    rlfoundry llm grpo --set model=runs/sft --set reward=task,0.1*mymod:brevity

For each prompt, sample G completions from the current policy and score them. A
completion's advantage is its reward relative to its group (core.group_relative_
advantages):

    A_i = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + eps)

and every token of completion i carries A_i. The loss is PPO's clipped surrogate per
token plus, when beta > 0, the k3 estimate of KL(pi || ref) per token (Shao et al.
eq. 3), both aggregated over the tokens of the whole optimizer batch ("token-mean",
DAPO's choice; TRL's default) unless loss_agg says otherwise:

    ratio_t = pi(y_t|x, y_<t) / pi_old(y_t|x, y_<t)
    L = agg_t[-min(ratio_t A_i, clip(ratio_t, 1-eps, 1+eps_high) A_i) + beta k3_t]

pi_old is the sampling policy: its log-probs come from the generation pass itself,
so no extra forward pass is spent on them (the training forward reproduces them, which
tests/llm/test_grpo*.py check). Dr. GRPO (Liu et al. 2025) is
`scale_std=False, loss_agg="seq-mean-token-sum-norm"`: no std division (which favours
too-easy and too-hard prompts) and no per-sequence length normalisation.

The loop (sampling, update, data parallelism, checkpoints) is the group policy-gradient
loop of `group_pg.py`, shared with RLOO; this module gives it GRPO's baseline and keeps
the KL in the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from rlfoundry.core import group_relative_advantages
from rlfoundry.llm import group_pg
from rlfoundry.llm.policy import check_model_options
from rlfoundry.llm.prompts import check_rl_inputs
from rlfoundry.runtime.run import Run


@dataclass
class Config(group_pg.GroupConfig):
    """The group loop's fields (`group_pg.GroupConfig`); `beta` weighs a loss term here."""

    beta: float = 0.0
    """Weight of the k3 KL(pi || ref) term in the loss; 0 = no KL and no reference model."""


def check(cfg: Config) -> None:
    """Fail before training: model path, device/dtype/LoRA settings, prompts file fields,
    reward sources, sizes the processes of a launch cannot share."""
    group_pg.check_world(cfg)
    check_rl_inputs(cfg)
    check_model_options(cfg)


def train(cfg: Config, run: Run) -> dict[str, Any]:
    def advantages(rew: Tensor, group_size: int) -> Tensor:
        return group_relative_advantages(rew, group_size, cfg.scale_std)

    return group_pg.train(cfg, run, advantages)
