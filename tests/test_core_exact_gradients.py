"""AIMLE and I-MLE against exact gradients obtained by enumerating small state spaces."""

from __future__ import annotations

import pytest
import torch

import difftools as dt
from tests.exact import cosine, exact_value_and_grad, k_subsets


def _estimate(layer, theta, b, steps=1):
    """Gradient of mean_s ||z_s - b||^2 through ``layer`` (after ``steps - 1`` warm-up steps)."""
    t = theta.clone().requires_grad_(True)
    for _ in range(steps):
        t.grad = None
        z = layer(t)
        ((z - b) ** 2).sum(-1).mean().backward()
    return t.grad


# Eq. 9's count (c = 1 entry) keeps λ small; c = 1 per solution is 3 entries for top-3, a larger λ
# and so a larger bias (0.90-0.92 at S = 10 and at S = 5000; for argmax the two counts are the same).
@pytest.mark.parametrize(("count", "least"), [("entries", 0.97), ("solution", 0.88)])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("central", [True, False])
def test_aimle_matches_enumerated_gradient(k, central, count, least):
    n = 8
    solver = dt.get_solver("argmax") if k == 1 else dt.get_solver("topk", k=k)
    states = k_subsets(n, k)
    sims = {10: [], 5000: []}
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        theta = torch.randn(n, generator=g, dtype=torch.float64)
        b = torch.randn(n, generator=g, dtype=torch.float64)
        _, exact = exact_value_and_grad(theta, states, lambda z, b=b: ((z - b) ** 2).sum(-1))
        generator = torch.Generator().manual_seed(seed)
        layer = dt.AIMLE(solver, samples=50, central=central, count=count, generator=generator)
        _estimate(layer, theta, b, steps=250)  # warm-up: α climbs from 0 at η per step
        assert layer.alpha > 0
        for samples in sims:
            layer.samples = samples
            sims[samples].append(cosine(_estimate(layer, theta, b), exact))
    mean = {s: sum(v) / len(v) for s, v in sims.items()}
    assert mean[5000] > least, mean
    if count == "entries":  # small λ: the error is variance, which more samples remove (not so the bias)
        assert mean[5000] > mean[10], mean


def test_aimle_central_magnitude_matches_exact_gradient():
    """Not only the direction: central differences recover the gradient's norm at large S."""
    n = 8
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(n, generator=g, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    _, exact = exact_value_and_grad(theta, k_subsets(n, 1), lambda z: ((z - b) ** 2).sum(-1))
    layer = dt.AIMLE("argmax", samples=20000, initial_alpha=0.3, generator=torch.Generator().manual_seed(1))
    est = _estimate(layer, theta, b)
    assert est.norm() / exact.norm() == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("central", [True, False])
def test_imle_at_good_lambda_matches_enumerated_gradient(central):
    n = 6
    g = torch.Generator().manual_seed(3)
    theta = torch.randn(n, generator=g, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    _, exact = exact_value_and_grad(theta, k_subsets(n, 2), lambda z: ((z - b) ** 2).sum(-1))
    sims, norms = {}, {}
    for samples in (10, 20000):
        layer = dt.IMLE(dt.get_solver("topk", k=2), lam=0.1, central=central, samples=samples,
                        generator=torch.Generator().manual_seed(5))
        est = _estimate(layer, theta, b)
        sims[samples], norms[samples] = cosine(est, exact), float(est.norm() / exact.norm())
    assert sims[20000] > 0.98, sims
    assert sims[20000] > sims[10], sims
    if central:  # small λ central differences are nearly unbiased in magnitude as well
        assert norms[20000] == pytest.approx(1.0, abs=0.1)
