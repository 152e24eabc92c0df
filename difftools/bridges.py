"""Bridges from other predict-then-optimise libraries: ``from_pyepo`` (a PyEPO ``optModel`` as a solver).

PyEPO is not imported here: the bridge relies only on the ``optModel`` interface (``setObj``,
``solve``, ``modelSense``, ``num_cost``), so every PyEPO back-end (Gurobi, Pyomo, COPT, OR-Tools,
MPAX) and user subclasses work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from difftools.function_solver import FunctionSolver

__all__ = ["PyEPOSolver", "from_pyepo"]

# PyEPO's EPO.ModelSense values (an IntEnum): MINIMIZE = 1, MAXIMIZE = -1.
_PYEPO_SENSES = {1: "min", -1: "max"}


class _PyEPOOracle:
    """One instance: costs ``c [n]`` → PyEPO's optimal solution, through ``setObj`` and ``solve``."""

    def __init__(self, optmodel: Any):
        self.optmodel = optmodel

    def __call__(self, c: np.ndarray) -> np.ndarray:
        self.optmodel.setObj(c)
        solution, _ = self.optmodel.solve()
        if isinstance(solution, Tensor):
            solution = solution.detach().cpu().numpy()
        return np.asarray(solution, dtype=np.float64) + 0.0  # + 0.0 turns PyEPO's -0.0 into 0.0


class PyEPOSolver(FunctionSolver):
    """A PyEPO ``optModel`` as a difftools solver (made by :func:`from_pyepo`)."""

    context_keys = ()  # a PyEPO model carries its constraints itself
    check_finite_theta = True

    def __init__(self, optmodel: Any, *, name: str | None = None):
        for attr in ("setObj", "solve"):
            if not callable(getattr(optmodel, attr, None)):
                raise TypeError(
                    f"from_pyepo: expected a PyEPO optModel (with setObj and solve), got {type(optmodel).__name__}"
                )
        sense = _PYEPO_SENSES.get(int(getattr(optmodel, "modelSense", 1)))
        if sense is None:
            raise ValueError(
                f"from_pyepo: optmodel.modelSense must be EPO.MINIMIZE (1) or EPO.MAXIMIZE (-1), "
                f"got {optmodel.modelSense!r}"
            )
        if getattr(optmodel, "c_pred_index", None) is not None:
            raise ValueError(
                "from_pyepo: this optModel predicts only part of the objective (c_pred_index is set); "
                "the bridge needs one predicted cost per variable"
            )
        self.optmodel = optmodel
        self.num_cost = int(optmodel.num_cost)
        super().__init__(
            _PyEPOOracle(optmodel), sense=sense, event_dim=1, name=name or f"pyepo:{type(optmodel).__name__}"
        )
        self.event_shape = (self.num_cost,)
        self.theta_meaning = f"[*, {self.num_cost}] costs (one per variable of the PyEPO model: optmodel.num_cost)"

    def __repr__(self) -> str:
        return f"PyEPOSolver({type(self.optmodel).__name__}, n={self.num_cost}, sense={self.sense!r})"


def from_pyepo(optmodel: Any, *, name: str | None = None) -> PyEPOSolver:
    """Turn a PyEPO ``optModel`` (any back-end) into a difftools solver with PyEPO's sense.

    ``optmodel.modelSense`` decides the sense: ``EPO.MINIMIZE`` gives a ``"min"`` solver whose θ
    are PyEPO's costs, ``EPO.MAXIMIZE`` a ``"max"`` one. θ ``[*, optmodel.num_cost]``; instances
    are solved one after another with ``setObj`` and ``solve`` on this one model (PyEPO models are
    stateful, so do not share one across threads). The result goes wherever a solver goes::

        solver = difftools.from_pyepo(pyepo.model.grb.shortestPathModel((5, 5)))
        layer = difftools.AIMLE(solver)
    """
    return PyEPOSolver(optmodel, name=name)
