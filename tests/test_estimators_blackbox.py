"""Blackbox (Vlastelica et al.) and STE against hand-computed gradients on a tiny DAG shortest path."""

from __future__ import annotations

import pytest
import torch
from difftools.solvers.topk import argmax

from difftools import IMLE, STE, Blackbox, Gumbel
from tests.estimators_cases import DAG_PATHS, Flipped, dag_shortest_path

# Edge costs of the DAG in tests/estimators_cases.py; path costs s-a-t 3, s-b-t 4, s-a-b-t 3.5.
COSTS = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.5], dtype=torch.float64)
S_A_T, S_A_B_T = DAG_PATHS[0], DAG_PATHS[2]
# Downstream gradient of the loss L(y) = y[a→t]: it penalises the edge a→t.
DY = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)


def _blackbox_gradient(lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    costs = COSTS.clone().requires_grad_(True)
    path = Blackbox(dag_shortest_path, lam=lam)(costs)
    path.backward(DY)
    return path.detach(), costs.grad


@pytest.mark.parametrize(
    ("lam", "expected"),
    [
        # w' = w + 20·dy: s-a-t costs 23 > s-a-b-t 3.5, so y_λ = s-a-b-t and ∇ = −(y − y_λ)/20.
        (20.0, [0.0, 0.0, -0.05, 0.05, 0.05]),
        # w' = w + 2·dy: s-a-t costs 5 > 3.5, the same switch, ten times the gradient.
        (2.0, [0.0, 0.0, -0.5, 0.5, 0.5]),
        # w' = w + 0.25·dy: s-a-t costs 3.25 < 3.5, y_λ = y and the interpolation is flat.
        (0.25, [0.0, 0.0, 0.0, 0.0, 0.0]),
    ],
)
def test_blackbox_equals_the_hand_computed_interpolation_gradient(lam, expected):
    path, grad = _blackbox_gradient(lam)
    assert torch.equal(path, torch.as_tensor(S_A_T))
    torch.testing.assert_close(grad, torch.tensor(expected, dtype=torch.float64))


def test_doubling_lambda_halves_the_gradient_when_the_map_difference_is_fixed():
    _, g20 = _blackbox_gradient(20.0)
    _, g40 = _blackbox_gradient(40.0)
    torch.testing.assert_close(g40, g20 / 2)


def test_blackbox_is_imle_without_noise():
    theta = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dy = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = []
    for layer in (Blackbox(argmax, lam=3.0), IMLE(argmax, lam=3.0, noise=None)):
        t = theta.clone().requires_grad_(True)
        layer(t).backward(dy)
        grads.append(t.grad)
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


def test_blackbox_in_max_form_uses_the_opposite_sign():
    # The same DAG as a "max" solver over rewards −w: gradients for rewards are minus those for costs.
    rewards = (-COSTS).requires_grad_(True)
    Blackbox(Flipped(dag_shortest_path), lam=20.0)(rewards).backward(DY)
    torch.testing.assert_close(rewards.grad, torch.tensor([0.0, 0.0, 0.05, -0.05, -0.05], dtype=torch.float64))


def test_ste_is_the_identity_in_max_form_and_minus_identity_for_costs():
    theta = torch.tensor([0.3, 1.0, -0.2], dtype=torch.float64, requires_grad=True)
    dy = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    out = STE(argmax)(theta)
    assert torch.equal(out, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    out.backward(dy)
    assert torch.equal(theta.grad, dy)
    costs = COSTS.clone().requires_grad_(True)
    path = STE(dag_shortest_path)(costs)
    assert torch.equal(path, torch.as_tensor(S_A_T))
    path.backward(DY)
    assert torch.equal(costs.grad, -DY)


def test_perturbed_ste_sums_sample_gradients_back_to_the_mean_loss_gradient():
    theta = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    layer = STE(argmax, noise=Gumbel(), samples=5, generator=torch.Generator().manual_seed(0))
    out = layer(theta)
    assert out.shape == (5, 2, 3)
    weights = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    (out * weights).sum(-1).mean(0).sum().backward()
    torch.testing.assert_close(theta.grad, weights.expand(2, 3))


def test_bad_arguments_and_repr():
    with pytest.raises(ValueError, match="Blackbox: lam must be a finite number > 0"):
        Blackbox(argmax, lam=0.0)
    with pytest.raises(ValueError, match="STE: noise_temperature must be"):
        STE(argmax, noise=Gumbel(), noise_temperature=-1.0)
    assert repr(Blackbox("argmax", lam=10)) == "Blackbox(solver=Argmax(), lam=10)"
    assert repr(STE("argmax", noise=Gumbel(), samples=2)) == (
        "STE(solver=Argmax(), samples=2, noise=Gumbel(), noise_temperature=1)"
    )
