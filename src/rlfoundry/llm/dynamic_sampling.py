"""Dynamic sampling (DAPO, Yu et al. 2025, arXiv:2503.14476, section 3.2): a rollout of
only informative groups.

A group whose G rewards are all equal (every completion right, or every one wrong) has
zero advantage under GRPO's and RLOO's baselines, so it adds no gradient and shrinks
the effective batch as training saturates. With `dynamic_sampling` on, such groups are
dropped (`core.surrogates.nonconstant_groups`) and more prompts are sampled, a whole
rollout's worth at a time, until the batch holds `n_groups` informative groups or
`max_extra_rollouts` extra rounds were spent. A batch still short after the cap is
filled with dropped groups (zero advantage: no gradient, same batch shape), so the
optimizer sizes and the data-parallel split never change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rlfoundry.core.surrogates import nonconstant_groups
from rlfoundry.llm.rollout import Rollout, concat_rollouts

Columns = dict[str, list[Any]]
Draw = Callable[[], tuple[Rollout, Columns]]
"""Samples one rollout's worth of groups: `() -> (rollout, its dataset columns)`."""
Score = Callable[[Rollout, Columns], Tensor]
"""Rewards `[B]` of a rollout's completions."""


def _rows(groups: Tensor, group_size: int) -> Tensor:
    """Row indices `[len(groups) * group_size]` of prompt-major groups `groups`."""
    return (groups[:, None] * group_size + torch.arange(group_size)).reshape(-1)


def _take(ro: Rollout, cols: Columns, rew: Tensor, rows: Tensor) -> tuple:
    pick = rows.tolist()
    return ro.select(rows), {k: [v[i] for i in pick] for k, v in cols.items()}, rew[rows]


def sample_groups(
    draw: Draw,
    score: Score,
    n_groups: int,
    group_size: int,
    max_extra_rollouts: int,
    pad_token_id: int,
) -> tuple[Rollout, Columns, Tensor, Tensor, dict[str, float]]:
    """Draw rollouts until `n_groups` groups with unequal rewards are found (module
    docstring). Returns the batch's rollout, columns and rewards `[n_groups * G]`, every
    reward sampled this step (for an unbiased reward metric) and the counts:
    extra_rollouts, dropped_groups, zero_std_kept (dropped groups put back at the cap).
    """
    kept: list[tuple] = []
    spare: list[tuple] = []
    all_rew: list[Tensor] = []
    n_kept, extra, dropped = 0, 0, 0
    while True:
        ro, cols = draw()
        rew = score(ro, cols)
        all_rew.append(rew)
        good = nonconstant_groups(rew.cpu(), group_size)  # [n]
        idx = torch.nonzero(good).squeeze(-1)[: n_groups - n_kept]
        if len(idx):
            kept.append(_take(ro, cols, rew, _rows(idx, group_size).to(rew.device)))
            n_kept += len(idx)
        bad = torch.nonzero(~good).squeeze(-1)
        dropped += len(bad)
        if len(bad) and sum(len(s[2]) for s in spare) < n_groups * group_size:
            spare.append(_take(ro, cols, rew, _rows(bad, group_size).to(rew.device)))
        if n_kept >= n_groups or extra >= max_extra_rollouts:
            break
        extra += 1
    refill = 0
    for ro_s, cols_s, rew_s in spare:
        if n_kept + refill >= n_groups:
            break
        k = min(n_groups - n_kept - refill, len(rew_s) // group_size)
        kept.append(_take(ro_s, cols_s, rew_s, torch.arange(k * group_size, device=rew_s.device)))
        refill += k
    ro = concat_rollouts([k[0] for k in kept], pad_token_id)
    cols = {key: [v for k in kept for v in k[1][key]] for key in kept[0][1]}
    rew = torch.cat([k[2] for k in kept])
    info = {"extra_rollouts": float(extra), "dropped_groups": float(dropped - refill)}
    info["zero_std_kept"] = float(refill)
    return ro, cols, rew, torch.cat(all_rew), info
