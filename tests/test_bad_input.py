"""Bad input, one table: each row triggers one mistake and names the exception (or warning) and a phrase of its message.

The rows cover the faults of issue 14 (items 5–12) and the cases that were already handled well
and are worth pinning. A row is ``(id, trigger, expected type, phrase)``; ``phrase`` is matched
literally (``re.escape``) against the message. See ``docs/guarantees.md`` for the rules behind them.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import pytest
import torch
from difftools.solvers._common import import_optional
from difftools.solvers.grid_shortest_path import GridShortestPath
from difftools.solvers.ilp import ILP
from difftools.solvers.shortest_path import ShortestPath

import difftools as dt
from difftools.output_checks import _OUTPUT_WARNED, _OUTPUT_WARNED_IDS

pytestmark = pytest.mark.timeout(60)


def onehot(theta: np.ndarray) -> np.ndarray:
    z = np.zeros_like(theta)
    z[np.argmax(theta)] = 1.0
    return z


ARGMAX = dt.solver(onehot, sense="max", name="onehot")


def backward_through(layer: Any, theta: torch.Tensor, **context: Any) -> None:
    """One forward and backward with a random linear loss."""
    theta = theta.clone().requires_grad_()
    (layer(theta, **context) * torch.randn_like(theta)).sum().backward()


# ----------------------------------------------------------------------------- triggers
def double_backward() -> None:
    theta = torch.randn(3, 4, requires_grad=True)
    z = dt.AIMLE("argmax", initial_alpha=1.0)(theta)
    (grad,) = torch.autograd.grad((z * torch.randn(3, 4)).sum(), theta, create_graph=True)
    grad.sum().backward()


def exits(theta: np.ndarray) -> np.ndarray:
    sys.exit(3)


def sleeps(theta: np.ndarray) -> np.ndarray:
    time.sleep(5)
    return onehot(theta)


class InPlace:
    sense, event_dim = "max", 1

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        theta.clamp_(min=0)
        return (theta == theta.amax(-1, keepdim=True)).to(theta.dtype)


class Softmax:
    sense, event_dim = "max", 1

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.softmax(theta, -1)


def needs_scalar_capacity(theta: np.ndarray, capacity: Any) -> np.ndarray:
    if np.ndim(capacity):
        raise ValueError("capacity must be a number")
    return onehot(theta)


def ilp_knapsack() -> ILP:
    return ILP(A=np.ones((1, 4)), b=np.array([2.0]), sense="max")


CASES: list[tuple[str, Callable[[], Any], type, str]] = [
    # --- 5: shortest paths with negative costs are exact, or an error where they are undefined
    (
        "shortest_path-negative-cycle",
        lambda: ShortestPath(nx.DiGraph([(0, 1), (1, 0), (1, 2)]), 0, 2)(torch.tensor([1.0, -2.0, 1.0])),
        dt.SolverError,
        "the edge costs have a negative cycle",
    ),
    (
        "shortest_path-undirected-negative-edge",
        lambda: ShortestPath(nx.path_graph(3), 0, 2)(torch.tensor([1.0, -1.0])),
        dt.SolverError,
        "an undirected edge with a negative cost is itself a negative cycle",
    ),
    (
        "shortest_path-bad-negative-option",
        lambda: ShortestPath(nx.path_graph(3), negative="ignore"),
        ValueError,
        "negative must be 'exact', 'raise' or 'clamp'",
    ),
    # --- 6: solvers cannot corrupt the backward by writing into θ
    (
        "protocol-solver-writes-into-theta",
        lambda: dt.IMLE(InPlace(), noise=None)(torch.randn(2, 3)),
        dt.SolverError,
        "wrote into its input θ",
    ),
    # --- 7: 1/λ not finite
    (
        "IMLE-lam-1e-40-float32",
        lambda: backward_through(dt.IMLE("argmax", lam=1e-40), torch.randn(2, 3)),
        ValueError,
        "IMLE: lam=1e-40 cannot be used with θ of dtype torch.float32: 1/λ is not finite",
    ),
    (
        "Blackbox-lam-1e-39-float32",
        lambda: backward_through(dt.Blackbox("argmax", lam=1e-39), torch.randn(2, 3)),
        ValueError,
        "Blackbox: lam=1e-39 cannot be used",
    ),
    ("IMLE-lam-1e-320", lambda: dt.IMLE("argmax", lam=1e-320), ValueError, "lam must be a finite number > 0"),
    # --- 9: non-discrete outputs warn once per solver
    (
        "softmax-solver-warns",
        lambda: dt.STE(Softmax())(torch.randn(2, 3)),
        RuntimeWarning,
        "that are not integers",
    ),
    (
        "constant-0.37-warns",
        lambda: dt.AIMLE(dt.solver(lambda t: np.full_like(t, 0.37), sense="max", name="c037"))(torch.randn(2, 3)),
        RuntimeWarning,
        "solver c037 returned 6 of 6 entries that are not integers (e.g. 0.37)",
    ),
    ("discrete-bad-value", lambda: dt.solver(onehot, sense="max", discrete="yes"), ValueError, "discrete must be"),
    # --- 10: no default sense where one can mislead
    ("solver-without-sense", lambda: dt.solver(onehot), ValueError, "sense is required: sense='max' if it returns"),
    ("solver-decorator-without-sense", lambda: dt.solver(name="x"), ValueError, "sense='min' if it returns argmin"),
    ("solver-bad-sense", lambda: dt.solver(onehot, sense="maximize"), ValueError, "sense must be 'max' or 'min'"),
    (
        "FunctionSolver-without-sense",
        lambda: dt.FunctionSolver(onehot),
        ValueError,
        "There is no default because the wrong sense raises no error",
    ),
    (
        "ilp-without-sense",
        lambda: dt.get_solver("ilp", A=np.ones((1, 3)), b=[1.0]),
        ValueError,
        "ILP: sense is required",
    ),
    ("assignment-without-sense", lambda: dt.get_solver("assignment"), ValueError, "Assignment: sense is required"),
    # --- 11: timeouts
    (
        "timeout-sequential",
        lambda: dt.solver(sleeps, sense="max", timeout=0.05, name="slow")(torch.zeros(2, 3)),
        dt.SolverError,
        "solver 'slow', instance 0: did not finish within timeout=0.05 s",
    ),
    (
        "timeout-negative",
        lambda: dt.solver(onehot, sense="max", timeout=-1),
        ValueError,
        "timeout must be None or a finite number of seconds > 0",
    ),
    ("timeout-string", lambda: dt.solver(onehot, sense="max", timeout="1"), ValueError, "timeout must be None"),
    # --- 12: constructor arguments of the wrong type name the argument
    (
        "AIMLE-target_nnz-str",
        lambda: dt.AIMLE("argmax", target_nnz="1"),
        TypeError,
        "AIMLE: target_nnz must be a number",
    ),
    ("AIMLE-step-list", lambda: dt.AIMLE("argmax", step=[0.1]), TypeError, "AIMLE: step must be a number > 0"),
    ("AIMLE-decay-bool", lambda: dt.AIMLE("argmax", decay=True), TypeError, "decay must be a number in (0, 1]"),
    ("AIMLE-decay-range", lambda: dt.AIMLE("argmax", decay=1.5), ValueError, "decay must be a finite number in (0, 1]"),
    ("AIMLE-initial_alpha-nan", lambda: dt.AIMLE("argmax", initial_alpha=float("nan")), ValueError, "initial_alpha"),
    ("AIMLE-central-str", lambda: dt.AIMLE("argmax", central="no"), TypeError, "central must be True or False"),
    ("AIMLE-controller", lambda: dt.AIMLE("argmax", controller="slow"), ValueError, "controller must be"),
    ("AIMLE-sync-int", lambda: dt.AIMLE("argmax", sync=1), TypeError, "sync must be a bool"),
    (
        "AIMLE-target_noise_temperature-str",
        lambda: dt.AIMLE("argmax", target_noise_temperature="0"),
        TypeError,
        "target_noise_temperature must be a number >= 0",
    ),
    ("IMLE-lam-str", lambda: dt.IMLE("argmax", lam="1"), TypeError, "IMLE: lam must be a number > 0"),
    ("IMLE-lam-zero", lambda: dt.IMLE("argmax", lam=0.0), ValueError, "IMLE: lam must be a finite number > 0"),
    ("Blackbox-lam-bool", lambda: dt.Blackbox("argmax", lam=True), TypeError, "Blackbox: lam must be a number"),
    ("STE-noise_temperature-str", lambda: dt.STE("argmax", noise_temperature="1"), TypeError, "noise_temperature"),
    ("STE-check_finite-str", lambda: dt.STE("argmax", check_finite="no"), TypeError, "check_finite must be True"),
    ("samples-zero", lambda: dt.AIMLE("argmax", samples=0), ValueError, "samples must be None or a positive int"),
    ("samples-str", lambda: dt.IMLE("argmax", samples="4"), ValueError, "samples must be None or a positive int"),
    ("noise-class-not-instance", lambda: dt.AIMLE("argmax", noise=dt.Gumbel), TypeError, "noise must be a"),
    (
        "ScoreFunction-noise_temperature-str",
        lambda: dt.ScoreFunction("argmax", noise_temperature="1"),
        TypeError,
        "ScoreFunction: noise_temperature must be a number",
    ),
    ("Perturbed-baseline-str", lambda: dt.Perturbed("argmax", baseline="yes"), TypeError, "baseline must be True"),
    ("Perturbed-noise-None", lambda: dt.Perturbed("argmax", noise=None), TypeError, "closed-form score"),
    ("FenchelYoung-not-Perturbed", lambda: dt.FenchelYoungLoss(dt.AIMLE("argmax")), TypeError, "FenchelYoungLoss("),
    (
        "FenchelYoung-reduction",
        lambda: dt.FenchelYoungLoss(dt.Perturbed("argmax"), reduction=1),
        ValueError,
        "reduction",
    ),
    ("SPOPlus-reduction", lambda: dt.SPOPlusLoss("argmax", reduction="avg"), ValueError, "reduction must be 'mean'"),
    ("SumOfGamma-k-str", lambda: dt.SumOfGamma("3"), TypeError, "SumOfGamma: k must be a number > 0"),
    ("SumOfGamma-terms", lambda: dt.SumOfGamma(3, terms=0.5), ValueError, "terms must be a positive integer"),
    ("regret-sense", lambda: dt.regret(torch.ones(3), torch.ones(3), torch.ones(3), sense="up"), ValueError, "sense"),
    ("hamming-event_dim", lambda: dt.hamming_loss(torch.ones(3), torch.ones(3), event_dim=2), ValueError, "event_dim"),
    ("solver-not-callable", lambda: dt.solver(3, sense="max"), TypeError, "expected a callable"),
    ("solver-executor-str", lambda: dt.solver(onehot, sense="max", executor="pool"), TypeError, "executor must be"),
    ("solver-chunksize-zero", lambda: dt.solver(onehot, sense="max", chunksize=0), ValueError, "chunksize must be"),
    ("estimator-not-a-solver", lambda: dt.AIMLE(onehot), TypeError, "expected a solver"),
    ("unknown-solver-name", lambda: dt.AIMLE("nope"), KeyError, "unknown solver 'nope'; known solvers:"),
    # --- 12: θ and gradients
    ("theta-meta", lambda: dt.AIMLE("argmax")(torch.empty(2, 3, device="meta")), ValueError, "on the meta device"),
    (
        "solver-theta-meta",
        lambda: ARGMAX(torch.empty(2, 3, device="meta")),
        ValueError,
        "onehot: θ is on the meta device",
    ),
    ("theta-nan", lambda: dt.AIMLE("argmax")(torch.tensor([[0.0, float("nan")]])), ValueError, "θ contains NaN"),
    ("theta-int", lambda: dt.AIMLE("argmax")(torch.ones(2, 3, dtype=torch.long)), TypeError, "floating-point dtype"),
    ("theta-numpy", lambda: dt.AIMLE("argmax")(np.ones((2, 3))), TypeError, "θ must be a torch.Tensor"),
    ("theta-too-few-dims", lambda: dt.AIMLE(GridShortestPath())(torch.ones(3)), ValueError, "event_dim=2"),
    ("double-backward", double_backward, RuntimeError, "AIMLE: double backward is not supported"),
    (
        "downstream-gradient-nan",
        lambda: (dt.AIMLE("argmax")(torch.randn(2, 3, requires_grad=True)) * float("nan")).sum().backward(),
        ValueError,
        "the downstream gradient contains NaN or Inf",
    ),
    # --- 12: solvers that misbehave
    (
        "sys-exit-in-sequential-solver",
        lambda: dt.AIMLE(dt.solver(exits, sense="max", name="quits"))(torch.randn(2, 3)),
        dt.SolverError,
        "solver 'quits', instance 0: called sys.exit(3); a solver must raise an exception",
    ),
    (
        "sys-exit-in-batched-solver",
        lambda: dt.solver(exits, sense="max", batched=True, name="quits")(torch.randn(2, 3)),
        dt.SolverError,
        "called sys.exit(3)",
    ),
    (
        "solver-wrong-shape",
        lambda: dt.AIMLE(dt.solver(lambda t: t[:-1], sense="max", name="short"))(torch.randn(2, 3)),
        dt.SolverError,
        "solver 'short', instance 0: returned shape (2,), expected θ's shape (3,)",
    ),
    (
        "solver-returns-none",
        lambda: dt.AIMLE(dt.solver(lambda t: None, sense="max", name="nothing"))(torch.randn(2, 3)),
        dt.SolverError,
        "returned NoneType, expected a tensor or array",
    ),
    (
        "solver-returns-nan",
        lambda: dt.AIMLE(dt.solver(lambda t: t * np.nan, sense="max", name="nan"))(torch.randn(2, 3)),
        dt.SolverError,
        "returned non-finite values",
    ),
    (
        "forgot-PerInstance",
        lambda: dt.AIMLE(dt.solver(needs_scalar_capacity, sense="max"))(torch.randn(4, 3), capacity=torch.ones(4)),
        dt.SolverError,
        "wrap it as capacity=difftools.PerInstance(...)",
    ),
    (
        "PerInstance-wrong-length",
        lambda: dt.AIMLE(dt.solver(needs_scalar_capacity, sense="max"))(
            torch.randn(4, 3), capacity=dt.PerInstance(torch.ones(3))
        ),
        ValueError,
        "per-instance context 'capacity' has shape (3,), expected it to start with θ's batch shape (4,)",
    ),
    # --- 12: built-in solvers
    (
        "grid-costs-overflow-float64",
        lambda: GridShortestPath()(torch.full((3, 3), 1e308, dtype=torch.float64)),
        ValueError,
        "the cell costs are too large: path costs overflow even in float64",
    ),
    (
        "ilp-theta-size-names-A",
        lambda: dt.AIMLE(ilp_knapsack())(torch.randn(2, 5)),
        ValueError,
        "θ has 5 entries per instance (its last dim), but the constraints given to ILP have n=4 variables "
        "(A has shape (1, 4))",
    ),
    (
        "ilp-A-context-columns",
        lambda: ILP(sense="max")(torch.randn(2, 3), A=np.ones((1, 4)), b=np.ones(1)),
        dt.SolverError,
        "A has shape (1, 4), expected 3 columns (one per variable of θ)",
    ),
    (
        "ilp-infeasible",
        lambda: ILP(A=np.ones((1, 2)), b=[-1.0], sense="max")(torch.randn(1, 2)),
        dt.SolverError,
        "solver 'ilp', instance 0: the ILP is infeasible",
    ),
    (
        "install-hint-names-pypi-and-clone",
        lambda: import_optional("no_such_backend", "ilp", "ILP"),
        ImportError,
        'pip install "difftools[ilp]" (or, in a clone of the repository, pip install -e ".[ilp]")',
    ),
]


@pytest.fixture(autouse=True)
def fresh_warning_state():
    """Warnings are once per solver: forget which solvers warned, before and after each row."""
    _OUTPUT_WARNED.clear()
    _OUTPUT_WARNED_IDS.clear()
    yield
    _OUTPUT_WARNED.clear()
    _OUTPUT_WARNED_IDS.clear()


@pytest.mark.parametrize(("trigger", "expected", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_named(trigger: Callable[[], Any], expected: type, phrase: str):
    if issubclass(expected, Warning):
        with pytest.warns(expected, match=re.escape(phrase)):
            trigger()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(expected, match=re.escape(phrase)):
            trigger()


def test_every_row_has_a_unique_id_and_a_phrase():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert all(c[3] for c in CASES)
