"""Bad input gets clear errors: non-finite θ, wrong dims, misbehaving solvers, unknown names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import difftools as dt


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("estimator", [dt.AIMLE, dt.IMLE])
def test_non_finite_theta_names_the_estimator(bad, estimator):
    theta = torch.randn(2, 5)
    theta[1, 3] = bad
    with pytest.raises(ValueError, match=f"{estimator.__name__}: θ contains NaN or Inf"):
        estimator("argmax")(theta)


def test_finite_check_can_be_switched_off():
    theta = torch.tensor([[0.0, float("nan")]])
    dt.AIMLE("argmax", check_finite=False)(theta)  # no error: the user asked for no check


def test_non_finite_downstream_gradient_is_reported():
    theta = torch.randn(2, 5, requires_grad=True)
    z = dt.AIMLE("argmax", initial_alpha=1.0)(theta)
    with pytest.raises(ValueError, match="downstream gradient contains NaN"):
        (z * torch.tensor(float("nan"))).sum().backward()


def test_too_few_dims_for_event_dim():
    grid = dt.solver(lambda t: t, sense="max", event_dim=2, batched=True, backend="torch", name="grid")
    with pytest.raises(ValueError, match=r"AIMLE: θ has shape \(5,\) but the solver needs at least event_dim=2"):
        dt.AIMLE(grid)(torch.randn(5))


def test_integer_theta_is_rejected():
    with pytest.raises(TypeError, match="floating-point dtype"):
        dt.AIMLE("argmax")(torch.ones(3, dtype=torch.long))


def test_solver_returning_wrong_shape_names_solver_and_instance():
    @dt.solver(sense="max", name="broken")
    def broken(theta):
        return np.zeros(len(theta) + 1) if theta[0] > 100 else np.zeros(len(theta))

    theta = torch.zeros(4, 3)
    theta[2, 0] = 1000.0
    with pytest.raises(dt.SolverError, match=r"solver 'broken', instance 2: returned shape \(4,\), expected"):
        dt.AIMLE(broken, noise=None)(theta)


def test_batched_solver_returning_wrong_shape():
    bad = dt.solver(lambda t: t[..., :-1], sense="max", batched=True, backend="torch", name="short")
    with pytest.raises(dt.SolverError, match="solver 'short'.*returned shape"):
        dt.AIMLE(bad)(torch.randn(3, 4))


def test_solver_that_raises_is_wrapped_with_cause():
    @dt.solver(sense="max", name="fails")
    def fails(theta):
        if theta.sum() > 0:
            raise RuntimeError("infeasible model")
        return np.zeros_like(theta)

    theta = -torch.ones(3, 2)
    theta[1] = 1.0
    with pytest.raises(dt.SolverError, match="solver 'fails', instance 1: raised RuntimeError: infeasible") as info:
        dt.IMLE(fails, noise=None)(theta)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.index == 1 and info.value.solver == "fails"


def test_solver_returning_nan_is_a_solver_error():
    nan = dt.solver(lambda t: np.full_like(t, np.nan), sense="max", name="nan")
    with pytest.raises(dt.SolverError, match="non-finite"):
        dt.AIMLE(nan)(torch.randn(2, 3))


def test_solver_returning_non_array():
    junk = dt.solver(lambda t: "not a solution", sense="max", name="junk")
    with pytest.raises(dt.SolverError, match="solver 'junk', instance 0"):
        dt.AIMLE(junk)(torch.randn(2, 3))


def test_unknown_registry_name_lists_known_names():
    with pytest.raises(KeyError, match="unknown solver 'nope'; known solvers: .*argmax.*topk"):
        dt.AIMLE("nope")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="samples must be None or a positive int"):
        dt.AIMLE("argmax", samples=0)
    with pytest.raises(ValueError, match="lam must be a finite number > 0"):
        dt.IMLE("argmax", lam=0.0)
    with pytest.raises(ValueError, match=r"AIMLE: decay must be a finite number in \(0, 1\], got 1.5"):
        dt.AIMLE("argmax", decay=1.5)
    with pytest.raises(TypeError, match="expected a solver"):
        dt.AIMLE(lambda t: t)
    with pytest.raises(ValueError, match="TopK: k must be a positive int"):
        dt.get_solver("topk", k=0)


def test_generator_on_wrong_device_is_explained():
    class FakeDeviceGenerator:
        pass

    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        dt.AIMLE("argmax", generator=FakeDeviceGenerator())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("samples", [None, 3])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("lam_scope", ["example", "batch"])
def test_one_non_finite_downstream_entry_is_reported(dtype, samples, bad, lam_scope):
    # AIMLE checks the downstream gradient through Eq. 8's per-example norms (lam_scope="example"):
    # one bad entry among finite ones must show there as it does in the whole-tensor check.
    layer = dt.AIMLE("argmax", samples=samples, lam_scope=lam_scope)
    theta = torch.randn(4, 6, dtype=dtype, requires_grad=True)
    out = layer(theta)
    dy = torch.randn(out.shape, dtype=dtype)
    dy[(0,) * (dy.dim() - 1) + (2,)] = bad
    with pytest.raises(ValueError, match="AIMLE: the downstream gradient contains NaN or Inf"):
        out.backward(dy)


def test_finite_downstream_gradient_whose_sample_multiple_overflows_is_not_an_error():
    # ∇f_s = S · dy_s overflows float32 here although dy is finite: not the user's NaN/Inf, so no
    # error; those examples' λ has no finite reciprocal and they take no step.
    layer = dt.AIMLE("argmax", samples=4)
    theta = torch.randn(2, 5, requires_grad=True)
    out = layer(theta)
    dy = torch.randn(out.shape)
    dy[:, 0] = 3e38
    out.backward(dy)
    assert torch.isfinite(theta.grad).all() and not theta.grad[0].any()
