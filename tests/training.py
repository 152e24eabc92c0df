"""A tiny supervised problem for the solver tests: learn θ = f(x) so that MAP(θ) matches labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import difftools


def fit_through_aimle(
    solver: Any,
    event_shape: tuple[int, ...],
    *,
    batch: int = 16,
    features: int = 5,
    steps: int = 40,
    lr: float = 0.1,
    transform: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
    context: dict | None = None,
    seed: int = 0,
    **aimle_options: Any,
) -> tuple[float, float]:
    """Train a linear model through ``AIMLE(solver)`` on labels made by the solver itself.

    Ground truth θ* = transform(W* x); labels z* = solver(θ*). The model θ = transform(W x) starts
    from a different random W. Returns the Hamming loss (mean |solver(θ) − z*|, no noise) of the
    model before and after ``steps`` Adam steps on the noisy AIMLE output (``aimle_options`` go to
    :class:`difftools.AIMLE`).
    """
    context = context or {}
    gen = torch.Generator().manual_seed(seed)
    size = int(torch.Size(event_shape).numel())
    x = torch.randn(batch, features, generator=gen)
    true_map = torch.randn(features, size, generator=gen)
    labels = solver(transform(x @ true_map).view(batch, *event_shape), **context)
    torch.manual_seed(seed + 1)
    model = nn.Linear(features, size, bias=False)
    layer = difftools.AIMLE(solver, generator=torch.Generator().manual_seed(seed + 2), **aimle_options)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)

    def hamming() -> float:
        with torch.no_grad():
            return (solver(transform(model(x)).view(batch, *event_shape), **context) - labels).abs().mean().item()

    before = hamming()
    for _ in range(steps):
        z = layer(transform(model(x)).view(batch, *event_shape), **context)
        loss = ((z - labels) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return before, hamming()


def fit_parameters_through_aimle(
    solver: Any, true_theta: torch.Tensor, initial: torch.Tensor, *, steps: int, lr: float, seed: int = 0
) -> tuple[float, float]:
    """Learn θ itself (no model) so that MAP(θ) matches MAP(true θ), through AIMLE with a Hamming loss.

    ``initial_alpha=1`` skips AIMLE's warm-up (α otherwise climbs from 0 by η per step). Returns the
    Hamming loss of MAP(θ) (no noise) before and after ``steps`` Adam steps.
    """
    event_dim = solver.event_dim
    targets = solver(true_theta)
    theta = nn.Parameter(initial.clone())
    # The paper's rule from α₀ = 1: α stays near 1 for these 40 steps (the default fast rule would bring it down
    # to the c = 1 level, where this small task learns about half as fast; see docs/aimle-defaults.md).
    layer = difftools.AIMLE(
        solver, controller="paper", initial_alpha=1.0, generator=torch.Generator().manual_seed(seed)
    )
    optimiser = torch.optim.Adam([theta], lr=lr)

    def hamming(z: torch.Tensor) -> torch.Tensor:
        return difftools.hamming_loss(z, targets, event_dim=event_dim)

    before = hamming(solver(theta.detach())).item()
    for _ in range(steps):
        loss = hamming(layer(theta))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return before, hamming(solver(theta.detach())).item()
