"""The math of rlfoundry, once, as pure functions on tensors.

Every algorithm imports from here: the tabular agents, DQN, PPO on CartPole and the
token-level PPO / GRPO / DPO on language models share `gae`, `clipped_surrogate`, the
KL estimators and the rest. No `self`, no config objects: tensors in, tensors out.

Conventions: time (or batch) first, `[T]` / `[T, N]` for rollouts, `[B, L]` with a
`mask` for tokens; names `obs, act, rew, logp, adv, ret, mask, val`.
"""

from rlfoundry.core.advantages import (
    gae,
    group_relative_advantages,
    leave_one_out_advantages,
    normalize_advantages,
    overlong_penalty,
)
from rlfoundry.core.aggregate import (
    AGG_MODES,
    aggregate_loss,
    masked_mean,
    masked_sum,
    masked_var,
)
from rlfoundry.core.kl import KL_KINDS, kl_estimate, kl_k1, kl_k2, kl_k3
from rlfoundry.core.losses import (
    bradley_terry_loss,
    categorical_entropy,
    clipped_surrogate,
    dpo_loss,
    entropy_from_logits,
    gaussian_entropy,
    pairwise_accuracy,
    policy_gradient_loss,
    value_loss,
)
from rlfoundry.core.offpolicy import (
    clipped_double_q_target,
    entropy_coef_loss,
    polyak_update,
    sac_actor_loss,
    smoothed_target_action,
    soft_q_target,
    squashed_gaussian,
)
from rlfoundry.core.returns import discounted_returns, episode_return, reward_to_go
from rlfoundry.core.td import (
    double_q_target,
    expected_sarsa_target,
    q_learning_target,
    sarsa_target,
)

__all__ = [
    "AGG_MODES",
    "KL_KINDS",
    "aggregate_loss",
    "bradley_terry_loss",
    "categorical_entropy",
    "clipped_double_q_target",
    "clipped_surrogate",
    "discounted_returns",
    "double_q_target",
    "dpo_loss",
    "entropy_coef_loss",
    "entropy_from_logits",
    "episode_return",
    "expected_sarsa_target",
    "gae",
    "gaussian_entropy",
    "group_relative_advantages",
    "overlong_penalty",
    "kl_estimate",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "leave_one_out_advantages",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "normalize_advantages",
    "pairwise_accuracy",
    "policy_gradient_loss",
    "polyak_update",
    "q_learning_target",
    "reward_to_go",
    "sac_actor_loss",
    "sarsa_target",
    "smoothed_target_action",
    "soft_q_target",
    "squashed_gaussian",
    "value_loss",
]
