"""Every estimator and loss on every built-in solver, both senses; sample-count scaling; context."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from difftools.solvers.topk import argmax

import difftools
from difftools import (
    AIMLE,
    IMLE,
    STE,
    Blackbox,
    FenchelYoungLoss,
    Gumbel,
    PerInstance,
    Perturbed,
    ScoreFunction,
    SPOPlusLoss,
)
from tests.estimators_cases import Flipped, make_example, solver_names


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# name -> (factory(solver, samples) -> layer, whether its output has the sample dim first)
LAYERS: dict[str, tuple[Callable, bool]] = {
    "AIMLE": (lambda s, n: AIMLE(s, samples=n, initial_alpha=1.0, generator=_gen()), True),
    "IMLE": (lambda s, n: IMLE(s, samples=n, lam=2.0, generator=_gen()), True),
    "Blackbox": (lambda s, n: Blackbox(s, lam=5.0), False),
    "Perturbed": (lambda s, n: Perturbed(s, samples=n, noise_temperature=0.5, generator=_gen()), False),
    "STE": (lambda s, n: STE(s, noise=Gumbel(), samples=n, generator=_gen()), True),
    "ScoreFunction": (lambda s, n: ScoreFunction(s, samples=n, generator=_gen()), True),
}


def _oriented(name: str, flip: bool):
    solver, theta, context = make_example(name)
    if flip:
        # The flipped solver calls the original on −θ, so −θ keeps the original's inputs (costs stay costs).
        solver, theta = Flipped(solver), -theta
    return solver, theta, context


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
@pytest.mark.parametrize("flip", [False, True], ids=["own-sense", "flipped-sense"])
@pytest.mark.parametrize("name", solver_names())
def test_every_estimator_runs_on_every_solver(name, flip, layer_name):
    solver, theta, context = _oriented(name, flip)
    make, has_samples = LAYERS[layer_name]
    layer = make(solver, 3)
    theta = theta.clone().requires_grad_(True)
    out = layer(theta, **context)
    expected_shape = (3, *theta.shape) if has_samples else tuple(theta.shape)
    assert out.shape == expected_shape
    assert out.dtype == theta.dtype and bool(torch.isfinite(out).all())
    weights = torch.randn(theta.shape, generator=_gen(1), dtype=theta.dtype)
    (out * weights).sum().backward()
    assert theta.grad is not None and theta.grad.shape == theta.shape
    assert bool(torch.isfinite(theta.grad).all())
    if layer_name in DESCENT_EXACT:
        # A linear loss <w, z>: moving θ along w can only raise <w, MAP(θ)> (max) or lower it (min), for any
        # exact solver, and the finite differences compare MAP states exactly along w (common noise). So the
        # estimated gradient must point the same way as w (max) or against it (min), per instance -- a wrong
        # sign anywhere (the "min" flip, the difference's direction) fails here.
        sign = 1.0 if solver.sense == "max" else -1.0
        alignment = sign * (theta.grad * weights).flatten(1).sum(1)
        assert bool((alignment >= -1e-7).all()), alignment
        if layer_name != "Blackbox":  # no noise: a step of λ may leave both solutions unchanged (gradient 0)
            assert bool((alignment > 0).any()), alignment  # not vacuously 0


# Estimators whose per-instance gradient sign along a linear loss is exact (no Monte-Carlo noise in it).
DESCENT_EXACT = ("AIMLE", "IMLE", "Blackbox", "STE")


@pytest.mark.parametrize("flip", [False, True], ids=["own-sense", "flipped-sense"])
@pytest.mark.parametrize("name", solver_names())
def test_losses_run_on_every_solver(name, flip):
    solver, theta, context = _oriented(name, flip)
    target = solver(theta.detach(), **context)
    theta_hat = (theta + 0.3 * torch.randn(theta.shape, generator=_gen(2), dtype=theta.dtype)).requires_grad_(True)
    fy = FenchelYoungLoss(Perturbed(solver, samples=3, noise_temperature=0.5, generator=_gen()), reduction="none")
    spo = SPOPlusLoss(solver, reduction="none")
    for value in (fy(theta_hat, target, **context), spo(theta_hat, theta, **context)):
        assert value.shape == theta.shape[:1]
        # Both losses are ≥ 0 for feasible targets (up to the solver's own tolerance).
        assert bool((value > -1e-6).all()), value
        theta_hat.grad = None
        value.sum().backward()
        assert bool(torch.isfinite(theta_hat.grad).all())


@pytest.mark.parametrize("layer_name", ["AIMLE", "IMLE", "Perturbed", "STE", "ScoreFunction"])
def test_gradient_does_not_grow_with_the_number_of_samples(layer_name):
    # Average gradients over many independent instances: their expectation is the same for 1
    # and 16 samples, so a factor of S would be caught by any tolerance below 16.
    theta = torch.tensor([0.3, -0.2, 0.8, 0.1], dtype=torch.float64).expand(3000, 4)
    weights = torch.tensor([1.0, -1.0, 2.0, 0.5], dtype=torch.float64)
    make, has_samples = LAYERS[layer_name]
    means = []
    for samples in (1, 16):
        t = theta.clone().requires_grad_(True)
        out = make(argmax, samples)(t)
        loss = (out * weights).sum(-1)
        (loss.mean(0).sum() if has_samples else loss.sum()).backward()
        means.append(t.grad.mean(0))
    assert bool(means[1].abs().sum() > 0)
    torch.testing.assert_close(means[0], means[1], atol=0.25 * means[1].abs().max().item(), rtol=0)


def test_context_reaches_every_solver_call_forward_and_backward():
    calls = []

    def masked_argmax(theta, mask, offset):
        calls.append(theta.shape)
        return argmax(theta.masked_fill(~mask, float("-inf")) + offset)

    solver = difftools.solver(masked_argmax, sense="max", batched=True, backend="torch")
    mask = torch.tensor([[True, False, True], [False, True, True]])
    theta = torch.tensor([[0.0, 5.0, 0.1], [5.0, 0.2, 0.0]], dtype=torch.float64)
    expected_calls = {"AIMLE": 2, "IMLE": 2, "Blackbox": 2, "Perturbed": 1, "STE": 1, "ScoreFunction": 1}
    for layer_name, (make, has_samples) in LAYERS.items():
        calls.clear()
        t = theta.clone().requires_grad_(True)
        out = make(solver, 3)(t, mask=PerInstance(mask), offset=0.0)
        # The masked entries (the 5s) are never chosen, whatever the sample.
        chosen = out if has_samples else out.unsqueeze(0)
        assert bool((chosen[:, ~mask] == 0).all()), layer_name
        (out * torch.randn(out.shape, generator=_gen(), dtype=out.dtype)).sum().backward()
        assert len(calls) == expected_calls[layer_name], (layer_name, calls)


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
def test_non_finite_input_and_downstream_gradient_are_named(layer_name):
    make, _ = LAYERS[layer_name]
    layer = make(argmax, 2)
    with pytest.raises(ValueError, match=f"{layer_name}: θ contains NaN or Inf"):
        layer(torch.tensor([0.0, float("inf")]))
    theta = torch.zeros(3, requires_grad=True)
    out = layer(theta)
    with pytest.raises(ValueError, match=f"{layer_name}: the downstream gradient contains NaN or Inf"):
        out.backward(torch.full_like(out, float("nan")))
    with pytest.raises(TypeError, match=f"{layer_name}: θ must have a floating-point dtype"):
        layer(torch.zeros(3, dtype=torch.long))


def test_estimators_accept_registered_names():
    for layer_name, (make, _) in LAYERS.items():
        assert make("argmax", 2).solver is argmax, layer_name


@pytest.mark.cuda
@pytest.mark.parametrize("layer_name", sorted(LAYERS))
def test_estimators_and_losses_follow_theta_to_cuda(layer_name):
    make, _ = LAYERS[layer_name]
    layer = make(difftools.get_solver("topk", k=2), 3)
    if layer.generator is not None:
        layer.generator = torch.Generator(device="cuda").manual_seed(0)
    theta = torch.randn(4, 6, device="cuda", requires_grad=True)
    out = layer(theta)
    assert out.device == theta.device
    out.sum().backward()
    assert theta.grad.device == theta.device and bool(torch.isfinite(theta.grad).all())
    target = difftools.get_solver("topk", k=2)(torch.randn(4, 6, device="cuda"))
    perturbed = Perturbed(layer.solver, generator=torch.Generator(device="cuda"))
    for value in (FenchelYoungLoss(perturbed)(theta, target), SPOPlusLoss(layer.solver)(theta, theta.detach())):
        assert value.device == theta.device
