"""Gradient scale: 1/λ, 1/(2λ), no growth with samples, magnitudes on an identity oracle."""

from __future__ import annotations

import pytest
import torch

import difftools as dt

identity = dt.solver(lambda t: t.clone(), sense="max", batched=True, backend="torch", name="identity", discrete=None)


def _grad(layer, theta, upstream):
    """Gradient of mean_s <c, z_s> (or <c, z> without samples) with respect to θ."""
    t = theta.clone().requires_grad_(True)
    z = layer(t)
    loss = (z * upstream).sum(-1)
    (loss.mean(0) if layer.samples is not None else loss).sum().backward()
    return t.grad


@pytest.mark.parametrize("central", [False, True])
@pytest.mark.parametrize("samples", [None, 1, 7, 50])
@pytest.mark.parametrize("lam", [0.01, 1.0, 30.0])
def test_imle_identity_oracle_gives_exact_jacobian(central, samples, lam):
    """MAP = identity ⇒ Jacobian = I: the estimate equals the upstream gradient exactly.

    A missing 1/λ, a missing ½ (central) or a factor of the sample count would all show here.
    """
    theta = torch.randn(3, 5, dtype=torch.float64)
    upstream = torch.randn(3, 5, dtype=torch.float64)
    layer = dt.IMLE(identity, lam=lam, central=central, samples=samples)
    torch.testing.assert_close(_grad(layer, theta, upstream), upstream)


@pytest.mark.parametrize("central", [False, True])
@pytest.mark.parametrize("samples", [None, 4, 64])
def test_aimle_identity_oracle_gives_exact_jacobian(central, samples):
    theta = torch.randn(4, 6, dtype=torch.float64)
    upstream = torch.randn(4, 6, dtype=torch.float64)
    layer = dt.AIMLE(identity, central=central, samples=samples, initial_alpha=0.37)
    torch.testing.assert_close(_grad(layer, theta, upstream), upstream)


class _Step:
    """A 1-d threshold oracle on a scalar: z = 1 if θ > 0 else 0 (a MAP over {0, 1})."""

    sense = "max"
    event_dim = 1

    def __call__(self, theta):
        return (theta > 0).to(theta.dtype)


@pytest.mark.parametrize("lam", [0.5, 2.0, 8.0])
def test_imle_forward_divides_by_lambda(lam):
    # θ = 0.1, no noise, downstream gradient 1: MAP(θ − λ) = 0 for every λ > 0.1, so the MAP
    # difference is fixed at 1 and the estimate must be exactly 1/λ.
    layer = dt.IMLE(_Step(), lam=lam, noise=None)
    grad = _grad(layer, torch.tensor([0.1]), torch.tensor([1.0]))
    torch.testing.assert_close(grad, torch.tensor([1.0 / lam]))


@pytest.mark.parametrize("lam", [0.5, 2.0, 8.0])
def test_imle_central_divides_by_two_lambda(lam):
    # MAP(θ + λ) − MAP(θ − λ) = 1 − 0 for θ = 0.1 and λ > 0.1: the estimate is 1/(2λ).
    layer = dt.IMLE(_Step(), lam=lam, noise=None, central=True)
    grad = _grad(layer, torch.tensor([0.1]), torch.tensor([1.0]))
    torch.testing.assert_close(grad, torch.tensor([1.0 / (2 * lam)]))


@pytest.mark.parametrize("cls", [dt.AIMLE, dt.IMLE])
def test_estimate_does_not_grow_with_samples(cls):
    """Average gradient norm over repeats is about the same for S = 1 and S = 100 (not ×S)."""
    torch.manual_seed(0)
    theta = torch.randn(16, 10)
    upstream = torch.randn(16, 10)
    kwargs = dict(initial_alpha=1.0) if cls is dt.AIMLE else dict(lam=1.0)
    norms = {}
    for samples in (1, 100):
        layer = cls("argmax", samples=samples, generator=torch.Generator().manual_seed(0), **kwargs)
        norms[samples] = _grad(layer, theta, upstream).norm().item()
    ratio = norms[100] / norms[1]
    assert 0.3 < ratio < 1.5, norms  # a ×S bug gives ~100, a 1/S bug ~0.01


def test_zero_downstream_gradient_gives_zero_not_nan():
    layer = dt.AIMLE("argmax", initial_alpha=1.0)
    theta = torch.randn(3, 4, requires_grad=True)
    upstream = torch.zeros(3, 4)
    upstream[0, 1] = 1.0  # examples 1 and 2 receive no gradient at all
    (layer(theta) * upstream).sum().backward()
    assert torch.isfinite(theta.grad).all()
    assert (theta.grad[1:] == 0).all()


def test_alpha_zero_gives_zero_gradient_not_nan():
    layer = dt.AIMLE("argmax", initial_alpha=0.0)  # α₀ = 0 ⇒ λ = 0 on the first step
    theta = torch.randn(3, 4, requires_grad=True)
    (layer(theta) * torch.randn(3, 4)).sum().backward()
    assert torch.equal(theta.grad, torch.zeros(3, 4))
