"""Perturbed optimizer and Fenchel–Young loss against closed forms (Gumbel argmax = softmax)."""

from __future__ import annotations

import pytest
import torch
from difftools.solvers.topk import argmax

import difftools
from difftools import FenchelYoungLoss, Gumbel, Normal, Perturbed, ScoreFunction
from tests.estimators_cases import Flipped

THETA = torch.tensor([0.5, -0.3, 1.2, 0.0], dtype=torch.float64)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _jacobian(layer: Perturbed, theta: torch.Tensor) -> torch.Tensor:
    """Rows J[i] = ∂ŷ_i/∂θ from one batched vjp: instance i receives the downstream gradient e_i."""
    n = theta.shape[-1]
    batch = theta.expand(n, n).clone().requires_grad_(True)
    layer(batch).backward(torch.eye(n, dtype=theta.dtype))
    return batch.grad


@pytest.mark.parametrize("sigma", [0.7, 1.5])
def test_gumbel_argmax_value_and_jacobian_match_softmax(sigma):
    layer = Perturbed(argmax, noise_temperature=sigma, samples=40_000, noise=Gumbel(), generator=_gen())
    p = torch.softmax(THETA / sigma, -1)
    value = layer(THETA)
    assert value.shape == THETA.shape
    torch.testing.assert_close(value, p, atol=0.01, rtol=0)
    exact = (torch.diag(p) - torch.outer(p, p)) / sigma
    # Per-entry standard error < 1/(σ·√S) ≈ 0.007 for σ = 0.7.
    torch.testing.assert_close(_jacobian(layer, THETA), exact, atol=0.03, rtol=0)


def test_baseline_keeps_the_jacobian():
    # The control variate is independent of each sample's noise, so the estimate stays unbiased
    # (its variance reduction is measured in test_estimators_score.py, on the shared code).
    p = torch.softmax(THETA, -1)
    layer = Perturbed(argmax, samples=20_000, noise=Gumbel(), baseline=True, generator=_gen(3))
    torch.testing.assert_close(_jacobian(layer, THETA), torch.diag(p) - torch.outer(p, p), atol=0.02, rtol=0)


def test_sigma_scaling_of_the_jacobian_is_exact_with_common_random_numbers():
    # MAP(2θ + 2ε) = MAP(θ + ε): same samples, so J at (2θ, σ=2) is exactly J at (θ, σ=1) / 2.
    one = Perturbed(argmax, noise_temperature=1.0, samples=64, generator=_gen(5))
    two = Perturbed(argmax, noise_temperature=2.0, samples=64, generator=_gen(5))
    torch.testing.assert_close(two(2 * THETA), one(THETA))
    torch.testing.assert_close(_jacobian(two, 2 * THETA), _jacobian(one, THETA) / 2)


def test_min_solver_gives_softmax_of_negated_costs():
    costs = THETA
    layer = Perturbed(Flipped(argmax), noise_temperature=1.0, samples=40_000, noise=Gumbel(), generator=_gen(1))
    p = torch.softmax(-costs, -1)
    torch.testing.assert_close(layer(costs), p, atol=0.01, rtol=0)
    torch.testing.assert_close(_jacobian(layer, costs), -(torch.diag(p) - torch.outer(p, p)), atol=0.03, rtol=0)


def test_gaussian_jacobian_uses_the_noise_itself():
    # For Normal noise −∇log ν(Z) = Z, so the gradient is mean_s ⟨z_s, dy⟩ Z_s / σ (Berthet et al. Prop. 3.1).
    sigma, samples = 0.5, 16
    layer = Perturbed(argmax, noise_temperature=sigma, samples=samples, noise=Normal(), generator=_gen(9))
    theta = THETA.clone().requires_grad_(True)
    dy = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    layer(theta).backward(dy)
    noise = Normal().sample((samples, 4), generator=_gen(9), dtype=torch.float64)
    z = argmax(THETA + sigma * noise)
    expected = ((z @ dy)[:, None] * noise).mean(0) / sigma
    torch.testing.assert_close(theta.grad, expected)


def test_fenchel_young_gradient_is_mean_solution_minus_target_exactly():
    target = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    loss = FenchelYoungLoss(Perturbed(argmax, noise_temperature=0.8, samples=32, generator=_gen(4)))
    theta = THETA.clone().requires_grad_(True)
    value = loss(theta, target)
    value.backward()
    mean = Perturbed(argmax, noise_temperature=0.8, samples=32, generator=_gen(4))(THETA)
    torch.testing.assert_close(theta.grad, mean - target)
    assert value.item() >= 0


@pytest.mark.parametrize("sense", ["max", "min"])
def test_fenchel_young_with_gumbel_argmax_is_softmax_cross_entropy(sense):
    sigma, target = 0.9, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    solver = argmax if sense == "max" else Flipped(argmax)
    layer = Perturbed(solver, noise_temperature=sigma, samples=60_000, noise=Gumbel(), generator=_gen(2))
    loss = FenchelYoungLoss(layer)
    theta = THETA.clone().requires_grad_(True)
    value = loss(theta, target)
    value.backward()
    reward = THETA if sense == "max" else -THETA
    # E[L] = σ·logsumexp(θ/σ) − θ_y in max form: the softmax cross-entropy, whatever the solver's sense.
    expected_value = sigma * torch.logsumexp(reward / sigma, -1) - reward[1]
    expected_grad = torch.softmax(reward / sigma, -1) - target
    if sense == "min":
        expected_grad = -expected_grad
    torch.testing.assert_close(value, expected_value, atol=0.03, rtol=0)
    torch.testing.assert_close(theta.grad, expected_grad, atol=0.01, rtol=0)


@pytest.mark.parametrize("sense", ["max", "min"])
def test_fenchel_young_is_zero_with_zero_gradient_at_a_clear_optimum(sense):
    # θ = ±[50, 0, 0]: no Normal(0, 1) perturbation moves the optimum away from e_0.
    target = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    theta = torch.tensor([50.0, 0.0, 0.0], dtype=torch.float64)
    solver = argmax
    if sense == "min":
        theta, solver = -theta, Flipped(argmax)
    theta.requires_grad_(True)
    loss = FenchelYoungLoss(Perturbed(solver, samples=100, generator=_gen()))
    value = loss(theta, target)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(theta.grad, torch.zeros_like(theta))


def test_fenchel_young_reductions_and_per_instance_context():
    def masked_argmax(theta, mask):
        return argmax(theta.masked_fill(~mask, float("-inf")))

    solver = difftools.solver(masked_argmax, sense="max", batched=True, backend="torch")
    mask = torch.tensor([[True, True, False], [False, True, True]])
    theta = torch.tensor([[0.0, 1.0, 9.0], [9.0, 0.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    layer = Perturbed(solver, noise_temperature=1e-3, samples=3, generator=_gen())
    per_instance = FenchelYoungLoss(layer, reduction="none")(theta, target, mask=difftools.PerInstance(mask))
    # The masks keep the 9s out of reach, so both targets are optimal and the losses vanish.
    assert per_instance.shape == (2,)
    torch.testing.assert_close(per_instance, torch.zeros(2, dtype=torch.float64), atol=1e-2, rtol=0)
    total = FenchelYoungLoss(layer, reduction="sum")(theta, target, mask=difftools.PerInstance(mask))
    assert total.shape == ()


def test_perturbed_and_fenchel_young_reject_bad_arguments():
    with pytest.raises(ValueError, match="Perturbed: noise_temperature must be a finite number > 0"):
        Perturbed(argmax, noise_temperature=0.0)
    with pytest.raises(TypeError, match="Perturbed: noise .* has no closed-form score"):
        Perturbed(argmax, noise=difftools.SumOfGamma(2))
    with pytest.raises(ValueError, match="Perturbed: samples must be"):
        Perturbed(argmax, samples=0)
    with pytest.raises(TypeError, match="FenchelYoungLoss: perturbed must be a difftools.Perturbed"):
        FenchelYoungLoss(argmax)
    with pytest.raises(ValueError, match="FenchelYoungLoss: reduction must be"):
        FenchelYoungLoss(Perturbed(argmax), reduction="avg")
    with pytest.raises(ValueError, match="FenchelYoungLoss: target has shape"):
        FenchelYoungLoss(Perturbed(argmax))(THETA, torch.zeros(3))
    with pytest.raises(ValueError, match="Perturbed: θ contains NaN"):
        FenchelYoungLoss(Perturbed(argmax))(torch.tensor([0.0, float("nan")]), torch.zeros(2))


def test_repr_names_the_hyper_parameters():
    text = repr(FenchelYoungLoss(Perturbed("argmax", noise_temperature=0.5, samples=8, noise=Gumbel())))
    for part in ("FenchelYoungLoss", "Perturbed(solver=Argmax()", "noise_temperature=0.5", "samples=8",
                 "noise=Gumbel()", "baseline=False", "reduction='mean'"):
        assert part in text


def test_fenchel_young_refuses_an_option_it_does_not_use():
    # The baseline only acts in the layer's own backward, which the loss never runs.
    with pytest.raises(ValueError, match="FenchelYoungLoss: the Perturbed layer has baseline=True"):
        FenchelYoungLoss(Perturbed("argmax", samples=8, baseline=True))


def test_fenchel_young_uses_only_the_layers_public_pieces():
    # perturb_and_map is the public piece: the loss's value is rebuilt from it exactly.
    layer = Perturbed("argmax", noise_temperature=0.5, samples=4, generator=_gen(11))
    theta, target = torch.randn(3, 5, generator=_gen(12)), torch.eye(5)[:3]
    eps, z = layer.perturb_and_map(theta)
    layer.generator.manual_seed(11)
    value = FenchelYoungLoss(layer, reduction="none")(theta, target)
    torch.testing.assert_close(value, ((theta + 0.5 * eps) * (z - target)).sum(-1).mean(0))


@pytest.mark.parametrize("cls", [Perturbed, ScoreFunction])
def test_the_deprecated_keyword_sigma_warns_and_sets_noise_temperature(cls):
    message = f"{cls.__name__}: the keyword sigma is deprecated.*pass noise_temperature=0.3"
    with pytest.warns(DeprecationWarning, match=message) as record:
        layer = cls(argmax, sigma=0.3, samples=4, generator=_gen(3))
    assert record[0].filename == __file__  # the warning points at the caller
    assert layer.noise_temperature == 0.3
    new = cls(argmax, noise_temperature=0.3, samples=4, generator=_gen(3))
    torch.testing.assert_close(layer(THETA), new(THETA))  # the same layer, the same draws
    with pytest.warns(DeprecationWarning, match=f"{cls.__name__}.sigma is deprecated"):
        assert layer.sigma == 0.3
    with pytest.raises(TypeError, match=f"{cls.__name__}: pass noise_temperature only"):
        cls(argmax, sigma=0.3, noise_temperature=0.5)
    positive = "noise_temperature must be a finite number > 0"
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=positive):
        cls(argmax, sigma=-1.0)
