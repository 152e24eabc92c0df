"""The discrete VAE (encoder 512-256-M×N, decoder 256-512-D), its loss, the gradient estimators and training.

The latent code is M = 20 variables over N = 20 categories, each a K-subset (K-hot) of its
categories: z = TopK(θ + ε) per variable. The loss per example is the reconstruction BCE
(summed over pixels, averaged over the S samples) plus KL(q ‖ uniform) summed over the M
variables, where q = softmax(θ) over the N categories: the variables' marginals for K = 1 and,
as in the paper's reference implementation, the same softmax regulariser for K > 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from difftools.solvers.topk import TopK
from torch import Tensor, nn

from difftools import AIMLE, STE, Gumbel, SumOfGamma
from difftools.noise import Noise
from examples.common import Method, Row

__all__ = ["DiscreteVAE", "Method", "methods", "vae_loss", "train"]


class DiscreteVAE(nn.Module):
    """MLP encoder x -> θ ``[B, M, N]`` and decoder z ``[..., M, N]`` -> pixel logits ``[..., D]``."""

    def __init__(self, input_dim: int, m: int = 20, n: int = 20):
        super().__init__()
        self.m, self.n = m, n
        self.encoder = nn.Sequential(nn.Linear(input_dim, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                                     nn.Linear(256, m * n))
        self.decoder = nn.Sequential(nn.Linear(m * n, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
                                     nn.Linear(512, input_dim))

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x).view(*x.shape[:-1], self.m, self.n)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z.flatten(-2))


def vae_loss(theta: Tensor, rec_logits: Tensor, x: Tensor) -> Tensor:
    """Mean over the batch of BCE(x, decoder(z)) (mean over samples) + Σ_m KL(softmax θ_m ‖ uniform)."""
    bce = F.binary_cross_entropy_with_logits(rec_logits, x.expand_as(rec_logits), reduction="none")
    bce = bce.sum(-1).mean(0)  # pixels summed, samples averaged: [B]
    log_q = torch.log_softmax(theta, -1)
    kl = (log_q.exp() * (log_q + math.log(theta.shape[-1]))).sum((-2, -1))
    return (bce + kl).mean()


def methods(k: int, samples_grid: tuple[int, ...] = (1, 5, 10), lambdas: tuple[float, ...] = (1.0, 10.0, 100.0),
            fast: bool = True) -> list[Method]:
    """The paper's line-up for one K: AIMLE (forward/central × S), IMLE (λ grid), STE, Gumbel-softmax (K = 1).

    ``fast`` adds AIMLE (central, S = 1) with the fast λ controller, its target c counted per entry (Eq. 9)
    and per solution, and the noise-free ``controller="deterministic"`` preset. Kind ``"gumbel-softmax"`` is this
    example's relaxation (see :func:`make_sampler`).
    """
    out = [Method(f"AIMLE ({d}, S={s})", "aimle", samples=s, central=d == "central") for s in samples_grid
           for d in ("forward", "central")]
    if fast:
        out.append(Method("AIMLE (central, S=1, fast)", "aimle", central=True, controller="fast"))
        out.append(Method("AIMLE (central, S=1, fast, c per solution)", "aimle", central=True, controller="fast",
                          count="solution"))
        # The preset for training on a solver's decisions: what a noise-free default would give a sampler.
        out.append(Method("AIMLE (forward, S=1, deterministic preset)", "aimle", controller="deterministic",
                          count="solution", perturbed=False))
    out += [Method(f"IMLE ({d}, λ={lam:g})", "imle", central=d == "central", lam=lam) for lam in lambdas
            for d in ("forward", "central")]
    out.append(Method("STE", "ste"))
    if k == 1:
        out.append(Method("Gumbel-softmax", "gumbel-softmax"))
    return out


def _noise(k: int, k_noise: str = "sog") -> Noise:
    # The paper: Gumbel(0, 1) for K = 1 and Sum-of-Gamma for K = 10, temperature 1.
    if k_noise not in ("sog", "gumbel"):
        raise ValueError(f"k_noise must be 'sog' or 'gumbel', got {k_noise!r}")
    return SumOfGamma(k) if k > 1 and k_noise == "sog" else Gumbel()


class _GumbelSoftmax(nn.Module):
    """Relaxed sample softmax((θ + g)/τ) with τ = max(τ_min, exp(−rate · step)) (Jang et al. 2017), K = 1."""

    def __init__(self, generator: torch.Generator, rate: float = 3e-5, min_temperature: float = 0.5):
        super().__init__()
        self.generator, self.rate, self.min_temperature, self.steps = generator, rate, min_temperature, 0

    def forward(self, theta: Tensor) -> Tensor:
        tau = max(self.min_temperature, math.exp(-self.rate * self.steps))
        self.steps += 1
        g = Gumbel().sample(theta.shape, generator=self.generator, dtype=theta.dtype)
        return torch.softmax((theta + g) / tau, -1).unsqueeze(0)


def make_sampler(method: Method, k: int, generator: torch.Generator, k_noise: str = "sog") -> nn.Module:
    """The training-time code sampler: θ ``[B, M, N]`` -> z ``[S, B, M, N]`` with the method's gradient."""
    if method.kind == "gumbel-softmax":
        if k != 1:
            raise ValueError(f"Gumbel-softmax relaxes categorical variables only (K = 1), got K = {k}")
        return _GumbelSoftmax(generator)
    return method.estimator(TopK(k), noise=_noise(k, k_noise), generator=generator)


@torch.no_grad()
def evaluate(model: DiscreteVAE, x: Tensor, k: int, seed: int, k_noise: str = "sog", batch_size: int = 500) -> float:
    """Loss on ``x`` with one hard perturb-and-MAP code per example (the same noise for every method)."""
    sampler = STE(TopK(k), noise=_noise(k, k_noise), samples=1, generator=torch.Generator().manual_seed(seed))
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        theta = model.encode(xb)
        total += vae_loss(theta, model.decode(sampler(theta)), xb).item() * len(xb)
    return total / len(x)


def train(
    method: Method, k: int, data: tuple[np.ndarray, np.ndarray, np.ndarray], *, epochs: int, seed: int,
    k_noise: str = "sog", batch_size: int = 100, lr: float = 1e-3, progress: Any = None,
) -> list[Row]:
    """Train one DVAE with Adam; one row per epoch: train, validation and test loss (and AIMLE's α)."""
    torch.manual_seed(seed)
    train_x, val_x, test_x = (torch.from_numpy(a) for a in data)
    model = DiscreteVAE(train_x.shape[1])
    sampler = make_sampler(method, k, torch.Generator().manual_seed(seed + 1), k_noise)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed + 2)
    rows = []
    for epoch in range(1, epochs + 1):
        losses = []
        for idx in torch.randperm(len(train_x), generator=order).split(batch_size):
            xb = train_x[idx]
            theta = model.encode(xb)
            loss = vae_loss(theta, model.decode(sampler(theta)), xb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        row = dict(k=k, method=method.name, seed=seed, epoch=epoch, train_loss=sum(losses) / len(losses),
                   val_loss=evaluate(model, val_x, k, 10_000 + epoch, k_noise),
                   test_loss=evaluate(model, test_x, k, 20_000 + epoch, k_noise))
        if isinstance(sampler, AIMLE):
            row["alpha"] = sampler.alpha.item()
        rows.append(row)
        if progress is not None:
            progress.update(1)
    return rows
