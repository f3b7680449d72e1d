"""PETS' dynamics model: an ensemble of probabilistic networks, each predicting a Gaussian
over the change of state, fitted by Gaussian negative log-likelihood (Chua et al. 2018,
arXiv:1805.12114, sec. 4 and appendix A.1).

Inputs (s, a) and targets (delta = s' - s) are normalised with the data's mean/std; SiLU
("swish") activations; the predicted log-variance is softly bounded by learned max/min
log-variances, with a small penalty pulling the bounds together.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def gaussian_nll(mean: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """Gaussian negative log-likelihood without the constant, averaged over all entries:
    ``mean((mean - target)^2 * exp(-logvar) + logvar) / 2``. Any shape, one scalar out.
    (PETS' loss, eq. 1 of Chua et al.; the constant log(2 pi) / 2 is dropped.)"""
    return 0.5 * ((mean - target) ** 2 * torch.exp(-logvar) + logvar).mean()


class EnsembleLinear(nn.Module):
    """E independent linear layers applied in one batched matmul: ``[E, B, I] -> [E, B, O]``."""

    def __init__(self, members: int, d_in: int, d_out: int) -> None:
        super().__init__()
        # nn.Linear's default init (Kaiming-uniform with a = sqrt(5)), per member.
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(members, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, d_out).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class Ensemble(nn.Module):
    """E probabilistic MLPs predicting ``N(mu, sigma^2)`` of the normalised state change.

    The normalisation statistics are buffers (so they live in the checkpoint); they are
    refitted to all data by :meth:`fit_normalizer` before each round of training.
    """

    def __init__(self, members: int, d_obs: int, d_act: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.members, self.d_obs = members, d_obs
        dims = [d_obs + d_act, *hidden]
        self.layers = nn.ModuleList(
            EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:])
        )
        self.out = EnsembleLinear(members, dims[-1], 2 * d_obs)
        # Soft bounds of the log-variance, learned (PETS appendix A.1).
        self.max_logvar = nn.Parameter(torch.full((d_obs,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((d_obs,), -10.0))
        self.register_buffer("in_mean", torch.zeros(d_obs + d_act))
        self.register_buffer("in_std", torch.ones(d_obs + d_act))
        self.register_buffer("out_mean", torch.zeros(d_obs))
        self.register_buffer("out_std", torch.ones(d_obs))

    def fit_normalizer(self, inp: Tensor, delta: Tensor) -> None:
        """Set the input and target statistics from all data ``[N, D+A]``, ``[N, D]``."""
        self.in_mean.copy_(inp.mean(0))
        self.in_std.copy_(inp.std(0).clamp_min(1e-6))
        self.out_mean.copy_(delta.mean(0))
        self.out_std.copy_(delta.std(0).clamp_min(1e-6))

    def forward(self, inp: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, logvar)`` of the normalised delta, each ``[E, B, D]``, from raw
        ``inp = cat(obs, act)`` of shape ``[E, B, D+A]``."""
        x = (inp - self.in_mean) / self.in_std
        for layer in self.layers:
            x = F.silu(layer(x))
        mean, logvar = self.out(x).chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def loss(self, inp: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss, nll)`` on one minibatch per member, ``[E, B, D+A]`` and raw ``[E, B, D]``."""
        mean, logvar = self(inp)
        nll = gaussian_nll(mean, logvar, (delta - self.out_mean) / self.out_std)
        bound_penalty = 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())
        return nll + bound_penalty, nll.detach()

    def sample_next(self, obs: Tensor, act: Tensor, noise: Tensor) -> Tensor:
        """One sampled next observation per row, ``[E, B, D]``: member e predicts rows ``[e]``;
        ``noise [E, B, D]`` is standard normal."""
        mean, logvar = self(torch.cat([obs, act], dim=-1))
        delta = torch.addcmul(mean, torch.exp(0.5 * logvar), noise)  # normalised units
        return obs + torch.addcmul(self.out_mean, delta, self.out_std)


def fit_model(
    model: Ensemble,
    opt: torch.optim.Optimizer,
    obs: Tensor,
    act: Tensor,
    next_obs: Tensor,
    updates: int,
    batch_size: int,
    gen: torch.Generator,
) -> dict[str, float]:
    """Refit the normaliser, then ``updates`` gradient steps; member e's minibatches are
    consecutive slices of its own random permutations of all ``N`` transitions. Returns
    the mean NLL of the steps and the ensemble's mean squared error of the predicted
    delta on all data afterwards (normalised units)."""
    inp, delta = torch.cat([obs, act], dim=-1), next_obs - obs  # [N, D+A], [N, D]
    model.fit_normalizer(inp, delta)
    n, E = inp.shape[0], model.members
    B = min(batch_size, n)
    passes = -(-updates * B // n)
    order = torch.stack(
        [torch.cat([torch.randperm(n, generator=gen) for _ in range(passes)]) for _ in range(E)]
    )[:, : updates * B].view(E, updates, B)  # [E, U, B]
    nll_sum = torch.zeros(())
    for u in range(updates):
        idx = order[:, u]  # [E, B]
        loss, nll = model.loss(inp[idx], delta[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        nll_sum += nll
    with torch.no_grad():
        mean, _ = model(inp.expand(E, *inp.shape))
        mse = ((mean - (delta - model.out_mean) / model.out_std) ** 2).mean()
    return {"model_nll": float(nll_sum / updates), "model_mse": float(mse)}
