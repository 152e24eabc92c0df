"""benchmarks.vs_pyepo: its solvers are exact, and SPO+ / DBB agree with PyEPO's on the same batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pyepo = pytest.importorskip("pyepo", reason="PyEPO is the optional 'bench' extra: pip install 'difftools[bench]'")

import difftools as dt  # noqa: E402
from benchmarks import vs_pyepo  # noqa: E402


@pytest.fixture(scope="module")
def sp():
    return vs_pyepo.make_problem("sp", num_data=64)


@pytest.fixture(scope="module")
def ks():
    return vs_pyepo.make_problem("ks", num_data=64)


def test_grid_dp_equals_the_ortools_lp_on_data_and_perturbed_costs(sp):
    assert sp.info["arcs"] == 40
    assert torch.equal(sp.solver(sp.c), sp.fast(sp.c))
    gen = torch.Generator().manual_seed(0)
    noisy = sp.c + 2.0 * torch.randn(sp.c.shape, generator=gen)  # negative costs too: still a DAG
    assert (noisy < 0).any()
    assert torch.equal(sp.solver(noisy), sp.fast(noisy))
    assert torch.all(sp.w.sum(1) == 8)  # 4 right + 4 down on a 5×5 grid


def test_knapsack_enumeration_reaches_the_scip_optimum(ks):
    scip = pyepo.model.ort.knapsackModel(ks.optmodel.weights, [20.0, 20.0])
    weights = ks.optmodel.weights
    for c, w in zip(ks.c[:12].double().numpy(), ks.w[:12].double().numpy()):
        scip.setObj(c)
        sol, obj = scip.solve()
        assert np.all(weights @ w <= 20.0 + 1e-9)
        # The values are integers, so optima tie often: compare objectives, not solutions.
        assert c @ w == pytest.approx(obj, abs=1e-6)


def _batch(problem, seed=0, size=16):
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(problem.c.shape[0], generator=gen)[:size]
    cp = problem.c[idx] + torch.randn(size, problem.num_costs, generator=gen)
    return cp, problem.c[idx], problem.w[idx], problem.z[idx]


@pytest.mark.parametrize("name", ["sp", "ks"])
@pytest.mark.parametrize("method", ["SPO+", "DBB"])
def test_spo_plus_and_dbb_match_pyepo_loss_and_gradient(name, method, sp, ks):
    problem = sp if name == "sp" else ks
    cp, c, w, z = _batch(problem)
    grads, losses = [], []
    for factory in (vs_pyepo.pyepo_methods(problem)[method], vs_pyepo.dt_methods(problem)[method]):
        leaf = cp.clone().requires_grad_(True)
        loss = factory()(leaf, c, w, z)
        loss.backward()
        losses.append(loss.item())
        grads.append(leaf.grad)
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert grads[0].abs().sum() > 0  # a batch that actually trains


def test_pyepo_matched_aimle_uses_one_lambda_per_batch(sp):
    layer = vs_pyepo.aimle_matched(sp.solver, "min")
    assert layer.lam_scope == "batch" and layer.samples == 10 and not layer.central
    theta, grad_f = torch.randn(10, 4, 40), torch.randn(10, 4, 40)
    lam, _ = layer._step(theta[0], grad_f)
    expected = layer.alpha * theta[0].norm() * 10**0.5 / grad_f.norm()
    assert lam.shape == () and lam.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cost_side_noise_flips_the_sign():
    gen = torch.Generator().manual_seed(0)
    base = dt.Gumbel().sample((1000,), generator=gen)
    flipped = vs_pyepo.CostSideNoise(dt.Gumbel()).sample((1000,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(flipped, -base)


def test_tiny_run_trains_every_method_of_both_libraries(capsys):
    rows = vs_pyepo.main(["--tiny", "--problem", "sp"])
    methods = {(r["library"], r["method"]) for r in rows}
    assert ("PyEPO", "AIMLE") in methods and ("difftools", "AIMLE (defaults)") in methods
    assert ("difftools", "AIMLE (deterministic)") in methods
    assert ("difftools", "AIMLE (S = 10, SoG, forward, α ≤ 10)") in methods
    assert len(methods) == 15
    for r in rows:
        assert 0.0 <= r["regret"] < 2.0 and r["epoch_s"] > 0
    assert "| sp | SPO+ |" in capsys.readouterr().out
