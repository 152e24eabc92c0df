"""SPO+ loss on hand-computed instances (both senses), Hamming loss and regret."""

from __future__ import annotations

import pytest
import torch
from difftools.solvers.topk import TopK, argmax

import difftools
from difftools import SPOPlusLoss, hamming_loss, regret
from tests.estimators_cases import DAG_PATHS, Flipped, dag_shortest_path


def _t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _spo(solver, predicted, true, **kwargs):
    predicted = _t(predicted).requires_grad_(True)
    value = SPOPlusLoss(solver)(predicted, _t(true), **kwargs)
    value.backward()
    return value.item(), predicted.grad


def test_spo_plus_for_costs_on_the_dag_shortest_path():
    # c = [1, 2, 2, 2, 0.5]: w* = s-a-t, z* = 3. ĉ = [2, 1, 1, 1, 1]: 2ĉ − c = [3, 0, 0, 0, 1.5],
    # whose cheapest path is s-b-t at cost 0. ℓ = −0 + 2⟨ĉ, w*⟩ − z* = 2·3 − 3 = 3.
    value, grad = _spo(dag_shortest_path, [2.0, 1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 2.0, 2.0, 0.5])
    assert value == pytest.approx(3.0)
    # Subgradient 2(w* − w*(2ĉ − c)) = 2(s-a-t − s-b-t).
    torch.testing.assert_close(grad, _t([2.0, -2.0, 2.0, -2.0, 0.0]))


def test_spo_plus_for_costs_on_argmin():
    # c = [1, 2, 3]: w* = e0, z* = 1. ĉ = [3, 1, 2]: 2ĉ − c = [5, 0, 1], min 0 at e1. ℓ = 0 + 6 − 1 = 5.
    value, grad = _spo(Flipped(argmax), [3.0, 1.0, 2.0], [1.0, 2.0, 3.0])
    assert value == pytest.approx(5.0)
    torch.testing.assert_close(grad, _t([2.0, -2.0, 0.0]))


def test_spo_plus_for_rewards_on_argmax():
    # r = [1, 2, 3]: w* = e2. r̂ = [3, 1, 0]: 2r̂ − r = [5, 0, −3], max 5 at e0.
    # ℓ = max_w⟨2r̂ − r, w⟩ − 2⟨r̂, w*⟩ + ⟨r, w*⟩ = 5 − 0 + 3 = 8, subgradient 2(e0 − e2).
    value, grad = _spo(argmax, [3.0, 1.0, 0.0], [1.0, 2.0, 3.0])
    assert value == pytest.approx(8.0)
    torch.testing.assert_close(grad, _t([2.0, 0.0, -2.0]))


def test_spo_plus_for_rewards_on_top_two():
    # r = [4, 1, 3, 2]: w* = {0, 2}. r̂ = [0, 2, 1, 3]: 2r̂ − r = [−4, 3, −1, 4], top-2 {1, 3} worth 7,
    # and ⟨2r̂ − r, w*⟩ = −5, so ℓ = 12.
    value, grad = _spo(TopK(2), [0.0, 2.0, 1.0, 3.0], [4.0, 1.0, 3.0, 2.0])
    assert value == pytest.approx(12.0)
    torch.testing.assert_close(grad, _t([-2.0, 2.0, -2.0, 2.0]))


def test_spo_plus_is_zero_at_the_truth_and_accepts_the_solution():
    true = _t([[1.0, 2.0, 2.0, 2.0, 0.5], [3.0, 1.0, 1.0, 1.0, 4.0]])
    loss = SPOPlusLoss(dag_shortest_path, reduction="none")
    assert torch.equal(loss(true, true), torch.zeros(2, dtype=torch.float64))
    solution = torch.as_tensor(DAG_PATHS[[0, 1]])
    predicted = _t([[2.0, 1.0, 1.0, 1.0, 1.0], [3.0, 1.0, 1.0, 1.0, 4.0]])
    with_solution = loss(predicted, true, solution=solution)
    torch.testing.assert_close(with_solution, loss(predicted, true))
    torch.testing.assert_close(with_solution, _t([3.0, 0.0]))
    assert SPOPlusLoss(dag_shortest_path, reduction="sum")(predicted, true).item() == pytest.approx(3.0)


def test_spo_plus_forwards_context_and_rejects_bad_input():
    def masked_argmax(theta, mask):
        return argmax(theta.masked_fill(~mask, float("-inf")))

    solver = difftools.solver(masked_argmax, sense="max", batched=True, backend="torch")
    mask = difftools.PerInstance(torch.tensor([[True, True, False]]))
    # With e2 masked out: w* = e1, 2r̂ − r = [3, −2, 9] → e0 among the allowed; ℓ = 3 − (−2) = 5.
    value = SPOPlusLoss(solver)(_t([[2.0, 0.0, 5.0]]), _t([[1.0, 2.0, 1.0]]), mask=mask)
    assert value.item() == pytest.approx(5.0)
    loss = SPOPlusLoss(argmax)
    with pytest.raises(ValueError, match="SPOPlusLoss: theta has shape"):
        loss(_t([1.0, 2.0]), _t([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="SPOPlusLoss: solution has shape"):
        loss(_t([1.0, 2.0]), _t([1.0, 2.0]), solution=_t([1.0]))
    with pytest.raises(ValueError, match="SPOPlusLoss: theta_hat contains NaN"):
        loss(_t([1.0, float("nan")]), _t([1.0, 2.0]))
    with pytest.raises(TypeError, match="SPOPlusLoss: theta must be a torch.Tensor"):
        loss(_t([1.0, 2.0]), [1.0, 2.0])
    with pytest.raises(ValueError, match="SPOPlusLoss: reduction must be"):
        SPOPlusLoss(argmax, reduction="batchmean")
    assert repr(SPOPlusLoss("argmax")) == "SPOPlusLoss(solver=Argmax(), reduction='mean')"


def test_hamming_loss_counts_differing_entries():
    z = _t([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    target = _t([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(hamming_loss(z, target, reduction="none"), _t([0.5, 0.0]))
    assert hamming_loss(z, target).item() == pytest.approx(0.25)
    # Samples broadcast against the targets; grids use event_dim=2.
    samples = torch.stack([z, target])
    torch.testing.assert_close(hamming_loss(samples, target, reduction="none"), _t([[0.5, 0.0], [0.0, 0.0]]))
    assert hamming_loss(z.view(2, 2, 2), target.view(2, 2, 2), event_dim=2, reduction="sum").item() == 0.5
    # Affine in z: a marginal gives the expected Hamming loss.
    assert hamming_loss(_t([0.25, 0.75]), _t([0.0, 1.0])).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="hamming_loss: z of shape .* and target of shape .* do not broadcast"):
        hamming_loss(z, _t([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="hamming_loss: event_dim must be"):
        hamming_loss(z, target, event_dim=3)


def test_regret_in_both_senses():
    # Costs [1, 2, 3]: choosing e1 over the optimum e0 costs 1 more, relative to 1.
    costs = _t([1.0, 2.0, 3.0])
    e0, e1, e2 = torch.eye(3, dtype=torch.float64)
    assert regret(e1, costs, e0, sense="min").item() == pytest.approx(1.0)
    assert regret(e2, costs, e0, sense="min", normalized=False).item() == pytest.approx(2.0)
    # Rewards [1, 2, 4]: e1 instead of e2 loses 2 of 4.
    rewards = _t([1.0, 2.0, 4.0])
    assert regret(e1, rewards, e2, sense="max").item() == pytest.approx(0.5)
    assert regret(e2, rewards, e2, sense="max").item() == 0.0
    batch = regret(torch.stack([e1, e2]), torch.stack([rewards, rewards]), torch.stack([e2, e2]), sense="max",
                   normalized=False, reduction="none")
    torch.testing.assert_close(batch, _t([2.0, 0.0]))
    with pytest.raises(ValueError, match="regret: sense must be 'max' or 'min'"):
        regret(e1, costs, e0, sense="minimise")
    with pytest.raises(ValueError, match="regret: reduction must be"):
        regret(e1, costs, e0, sense="min", reduction="avg")
