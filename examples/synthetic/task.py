"""The categorical toy task: exact gradient by enumeration and Monte-Carlo gradient estimates.

z ∈ {0,1}ⁿ with Σz = 1, p(z; θ) = softmax(θ) (the exponential family of Eq. 4 over one-hot
states), loss L(θ) = E_{z∼p(z;θ)} ‖z − b‖² with b ∼ N(0, I). Every estimator is asked for the
gradient of the Monte-Carlo loss (1/S) Σ_s ‖z_s − b‖², which is what a user would backpropagate.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "make_problem",
    "expected_loss",
    "exact_gradient",
    "estimate_gradient",
    "sfe_gradient",
    "cosine",
    "sparsity",
]


def make_problem(seed: int, n: int, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """θ ∼ N(0, I) and b ∼ N(0, I) in ℝⁿ, drawn from a generator seeded with ``seed``."""
    if n < 2:
        raise ValueError(f"make_problem: n must be >= 2 categories, got {n!r}")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, generator=g, dtype=dtype)
    b = torch.randn(n, generator=g, dtype=dtype)
    return theta, b


def expected_loss(theta: Tensor, b: Tensor) -> Tensor:
    """E_{z∼softmax(θ)} ‖z − b‖² by enumerating the n one-hot states (batched over leading dims)."""
    states = torch.eye(theta.shape[-1], dtype=theta.dtype, device=theta.device)  # [n states, n]
    loss_per_state = ((states - b.unsqueeze(-2)) ** 2).sum(-1)  # [..., n states]
    # ⟨z, θ⟩ for the one-hot state e_i is θ_i, so the state log-probabilities are log_softmax(θ).
    return (torch.softmax(theta, -1) * loss_per_state).sum(-1)


def exact_gradient(theta: Tensor, b: Tensor) -> Tensor:
    """∇_θ E_{z∼softmax(θ)} ‖z − b‖², exactly (autograd through the enumerated expectation)."""
    t = theta.detach().to(torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(expected_loss(t, b.to(torch.float64)).sum(), t)
    return grad.to(theta.dtype)


def estimate_gradient(estimator: torch.nn.Module, theta: Tensor, b: Tensor) -> Tensor:
    """The gradient an estimator returns for the Monte-Carlo loss mean_s ‖z_s − b‖².

    ``estimator`` maps θ ``[*batch, n]`` to samples ``[S, *batch, n]`` (``samples=S``); the loss
    is summed over the batch, so each row of the result is that problem's own gradient.
    """
    t = theta.detach().clone().requires_grad_(True)
    z = estimator(t)
    ((z - b) ** 2).sum(-1).mean(0).sum().backward()
    return t.grad


def sfe_gradient(theta: Tensor, b: Tensor, samples: int, generator: torch.Generator | None = None) -> Tensor:
    """Score-function estimate (Williams 1992) with exact categorical samples, no baseline.

    g = (1/S) Σ_s f(z_s) ∇_θ log p(z_s; θ) with ∇_θ log p(z; θ) = z − softmax(θ) and
    z_s ∼ Categorical(softmax θ) drawn by ``torch.multinomial``. Computed from the per-category
    counts, so S = 10⁵ costs no more memory than S = 1. θ and b are ``[*batch, n]``.
    """
    if samples < 1:
        raise ValueError(f"sfe_gradient: samples must be >= 1, got {samples!r}")
    p = torch.softmax(theta.detach(), -1)
    flat = p.reshape(-1, p.shape[-1])
    index = torch.multinomial(flat, samples, replacement=True, generator=generator)
    counts = torch.zeros_like(flat).scatter_add_(-1, index, torch.ones_like(index, dtype=flat.dtype))
    counts = counts.reshape(p.shape) / samples  # empirical frequencies of the one-hot states
    f = 1.0 - 2.0 * b + (b * b).sum(-1, keepdim=True)  # ‖e_i − b‖² for every state i
    # (1/S) Σ_s f(z_s)(z_s − p) = counts ⊙ f − (counts · f) p
    return counts * f - (counts * f).sum(-1, keepdim=True) * p


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity along the last dim (0 where an estimate is exactly zero)."""
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    norms = torch.linalg.vector_norm(a64, dim=-1) * torch.linalg.vector_norm(b64, dim=-1)
    return torch.where(norms > 0, (a64 * b64).sum(-1) / norms.clamp_min(1e-300), 0.0)


def sparsity(grad: Tensor) -> Tensor:
    """Percentage of exactly-zero entries along the last dim."""
    return 100.0 * (grad == 0).to(torch.float64).mean(-1)
