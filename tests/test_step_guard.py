"""λ steps without a finite reciprocal: the CPU's host decision and the device path agree exactly."""

from __future__ import annotations

import pytest
import torch

import difftools as dt
from difftools import _host
from difftools.estimators.finite_difference import _usable_steps

PATHS = {"host": True, "device": False}


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    monkeypatch.setattr(_host, "reads_are_free", lambda device: PATHS[request.param])
    return request.param


def _step(layer, theta, upstream):
    t = theta.clone().requires_grad_()
    (layer(t) * upstream).sum().backward()
    return t.grad, layer.alpha.clone(), layer.nnz_ema.clone()


def test_usable_steps_masks_exactly_the_bad_lambdas(path):
    tiny = torch.finfo(torch.float32).tiny
    lam = torch.tensor([1.0, float("inf"), float("nan"), 0.0, 1e-40, tiny, 3e38])
    mask = _usable_steps(lam)
    assert mask.tolist() == [True, False, False, False, False, True, True]
    good = _usable_steps(torch.tensor([[0.5], [2.0]]))
    assert good is None if path == "host" else good.all()
    assert _usable_steps(torch.empty(0, 1)).numel() == 0  # an empty batch: no reduction over nothing
    assert _usable_steps(torch.tensor(0.0)).item() is False  # one λ for the batch (lam_scope="batch")


@pytest.mark.parametrize("central", [True, False])
@pytest.mark.parametrize("samples", [None, 3])
def test_both_paths_give_the_same_step(central, samples, monkeypatch):
    theta = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    upstream = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    upstream[2] = 0.0  # one example without a gradient: λ = inf there, no step, the others step
    if samples:
        upstream = upstream.expand(samples, 6, 8)
    results = []
    for free in (True, False):
        monkeypatch.setattr(_host, "reads_are_free", lambda device, free=free: free)
        layer = dt.AIMLE("argmax", samples=samples, central=central, generator=torch.Generator().manual_seed(2))
        results.append([_step(layer, theta, upstream) for _ in range(3)])
    for (g0, a0, e0), (g1, a1, e1) in zip(*results):
        assert torch.equal(g0, g1) and torch.equal(a0, a1) and torch.equal(e0, e1)
    grad = results[0][-1][0]
    assert torch.isfinite(grad).all() and not grad[2].any() and grad.any()


def test_subnormal_alpha_takes_no_step_on_either_path(path):
    layer = dt.AIMLE("argmax", initial_alpha=1e-40, samples=4)  # λ ∝ α has no finite reciprocal
    grad, _, ema = _step(layer, torch.randn(3, 5), torch.randn(3, 5))
    assert torch.isfinite(grad).all() and not grad.any()
    torch.testing.assert_close(ema, torch.tensor(0.9))  # Eq. 9 with a zero count


def test_imle_fixed_lambda_needs_no_mask(path):
    theta, upstream = torch.randn(4, 6), torch.randn(4, 6)
    layer = dt.IMLE("argmax", lam=2.0, noise=None, central=True)
    t = theta.clone().requires_grad_()
    (layer(t) * upstream).sum().backward()
    onehot = torch.nn.functional.one_hot
    plus = onehot((theta + 2.0 * upstream).argmax(-1), 6).float()
    minus = onehot((theta - 2.0 * upstream).argmax(-1), 6).float()
    torch.testing.assert_close(t.grad, (plus - minus) / 4.0)  # central: (z₊ − z₋) / (2λ)
