"""REINFORCE Leave-One-Out (Ahmadian et al. 2024, "Back to Basics", arXiv:2402.14740).

    rlfoundry llm rloo --set model=runs/sft --task arithmetic --out runs/rloo

Same rollouts as GRPO (k completions per prompt), different baseline: each
completion is compared with the mean reward of the OTHER k - 1 completions of its
prompt (core.leave_one_out_advantages), which keeps the gradient estimate unbiased:

    A_i = R_i - 1/(k-1) sum_{j != i} R_j

As in the paper, the KL to the reference is a penalty in the sequence reward (k1
summed over the completion's tokens, computed from the sampling log-probs) rather
than a loss term:

    R_i = r_i - beta * sum_t (log pi_old(y_t) - log ref(y_t))

With `update_epochs=1` and one mini-batch the clipped surrogate reduces to REINFORCE
(ratio = 1, so the gradient is `A_i grad log pi`); more epochs make it PPO-style.
The loop, the loss aggregation and the data-parallel rules are the group
policy-gradient loop's (`group_pg.train`, shared with GRPO), called with this
baseline and reward shaping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from rlfoundry.core import kl_k1, leave_one_out_advantages, masked_sum
from rlfoundry.llm import group_pg
from rlfoundry.llm.policy import check_model_options
from rlfoundry.llm.prompts import check_rl_inputs
from rlfoundry.llm.rollout import Rollout
from rlfoundry.runtime.run import Run


@dataclass
class Config(group_pg.GroupConfig):
    """The group loop's fields (`group_pg.GroupConfig`); `beta` is the KL penalty in the
    reward here and `scale_std` is unused."""

    group_size: int = 4
    """Completions sampled per prompt (k); rollout_size must be a multiple of it."""
    beta: float = 0.05
    """KL penalty coefficient in the sequence reward (k1 summed over tokens); 0 = none."""


def check(cfg: Config) -> None:
    """Fail before training: model path, device/dtype/LoRA settings, prompts file fields,
    reward sources, sizes the processes of a launch cannot share."""
    group_pg.check_world(cfg)
    check_rl_inputs(cfg)
    check_model_options(cfg)


def shaped_reward(beta: float) -> group_pg.RewardShaper:
    """`R = r - beta * sum_t k1_t` (masked to the completion), or `r` when beta is 0."""

    def shape(rew: Tensor, ro: Rollout, ref_logp: Tensor | None) -> Tensor:
        if ref_logp is None or beta == 0:
            return rew
        kl_seq = masked_sum(kl_k1(ro.old_logp, ref_logp), ro.completion_mask, dim=-1)  # [B]
        return rew - beta * kl_seq

    return shape


def train(cfg: Config, run: Run) -> dict[str, Any]:
    return group_pg.train(
        cfg,
        run,
        advantages=leave_one_out_advantages,
        shape_reward=shaped_reward(cfg.beta),
    )
