"""PETS' planner: model-predictive control by the cross-entropy method (CEM) through the
ensemble of :mod:`rlfoundry.algos.model_based.ensemble`, with TS-inf trajectory sampling
(Chua et al. 2018, arXiv:1805.12114, sec. 5): particle p follows ensemble member
p mod E for the whole horizon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.algos.model_based.ensemble import Ensemble


class CEMPlanner:
    """Cross-entropy-method MPC through the ensemble with TS-inf trajectory sampling.

    All ``population x particles`` rollouts of one CEM iteration advance together: the
    rows are laid out ``[E, k * population]`` (``particles = k * E``, rounded up), so
    each horizon step is a single batched forward of every member.
    """

    def __init__(
        self,
        model: Ensemble,
        reward_fn: Callable[[Tensor, Tensor], Tensor],
        low: np.ndarray,
        high: np.ndarray,
        cfg: Any,
        gen: torch.Generator,
    ) -> None:
        self.model, self.reward_fn, self.cfg, self.gen = model, reward_fn, cfg, gen
        self.low = torch.as_tensor(low, dtype=torch.float32)  # [A]
        self.high = torch.as_tensor(high, dtype=torch.float32)
        H, A = cfg.horizon, self.low.shape[0]
        self.k = -(-cfg.particles // model.members)  # particles per member per candidate
        self.mid = (self.low + self.high) / 2
        # Initial variance (high - low)^2 / 16: two std-devs span half the range (PETS code).
        self.init_var = ((self.high - self.low) ** 2 / 16).expand(H, A).clone()
        self.mean = self.mid.expand(H, A).clone()  # warm start, shifted each step  [H, A]

    def reset(self) -> None:
        self.mean = self.mid.expand(*self.mean.shape).clone()

    @torch.no_grad()
    def returns(self, obs: Tensor, cand: Tensor) -> Tensor:
        """Mean imagined return ``[Pop]`` of candidate sequences ``cand [Pop, H, A]`` from
        ``obs [D]``, averaged over the particles.

        Speed: at these sizes each torch call costs more in overhead than in arithmetic,
        so the noise of all H steps is drawn at once and the reward is computed once on
        the stacked states after the rollout."""
        E, k, (pop, H, A) = self.model.members, self.k, cand.shape
        R = k * pop  # rows per member: row j * pop + c is particle j of candidate c
        acts = cand.transpose(0, 1).repeat(1, k, 1)  # [H, R, A]
        noise = torch.randn(max(H - 1, 0), E, R, obs.shape[-1], generator=self.gen)
        states = [obs.expand(E, R, obs.shape[-1])]
        for t in range(H - 1):  # the state after the last action earns no reward
            states.append(self.model.sample_next(states[-1], acts[t].expand(E, R, A), noise[t]))
        rew = self.reward_fn(torch.stack(states), acts[:, None].expand(H, E, R, A))  # [H, E, R]
        total = torch.nan_to_num(rew.sum(0), nan=-1e6)  # a diverged particle ranks last
        return total.view(E * k, pop).mean(0)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Plan from ``obs`` and return the first action of the final CEM mean."""
        cfg = self.cfg
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        mean, var = self.mean, self.init_var.clone()
        for _ in range(cfg.cem_iters):
            noise = torch.randn(cfg.population, *mean.shape, generator=self.gen)
            cand = torch.minimum(torch.maximum(mean + var.sqrt() * noise, self.low), self.high)
            ret = self.returns(obs_t, cand)
            elites = cand[torch.topk(ret, cfg.num_elites).indices]  # [K, H, A]
            mean = cfg.cem_alpha * mean + (1 - cfg.cem_alpha) * elites.mean(0)
            var = cfg.cem_alpha * var + (1 - cfg.cem_alpha) * elites.var(0, unbiased=False)
        self.mean = torch.cat([mean[1:], self.mid[None]])  # shift: next step's warm start
        return mean[0].numpy().copy()
