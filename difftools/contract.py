"""The solver contract: the ``BlackBoxSolver`` protocol, the ``Solver`` base and ``SolverWrapper``.

A MAP oracle maps θ ``[*batch, *event]`` to a discrete solution z of the same shape, with a
``sense`` (``"max"``: argmax ⟨z, θ⟩, ``"min"``: argmin) and an ``event_dim``. Any callable with
those two attributes is a solver (duck typing); :class:`Solver` is the small base every built-in
derives from: it checks θ, the context keywords and the output, and prints a ``repr``.
:class:`SolverWrapper` is the base for solvers that wrap another one (timing, flipping, caching)
and hands context on unchanged. Per-instance context is described in :mod:`difftools.context`.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from difftools.context import PerInstance
from difftools.output_checks import check_solver_output

__all__ = [
    "BlackBoxSolver",
    "Discrete",
    "Sense",
    "Solver",
    "SolverWrapper",
    "check_sense",
    "for_solver",
    "is_solver",
]

Sense = Literal["max", "min"]
Discrete = Literal["binary", "integer"]

# Why there is no default sense: a cost minimiser declared "max" (or the reverse) still returns
# valid solutions, so nothing fails -- the estimators just train in the wrong direction.
_SENSE_HELP = (
    "sense='max' if it returns argmax_z <z, θ> (θ are scores or rewards: larger θ_i makes z_i more "
    "likely), sense='min' if it returns argmin_z <z, θ> (θ are costs: larger θ_i makes z_i less likely). "
    "There is no default because the wrong sense raises no error, it trains in the wrong direction"
)


def check_sense(sense: Any, owner: str) -> Sense:
    """``sense`` itself, or a ValueError explaining both senses (None: it was not given)."""
    if sense is None:
        raise ValueError(f"{owner}: sense is required: {_SENSE_HELP}")
    if sense not in ("max", "min"):
        raise ValueError(f"{owner}: sense must be 'max' or 'min', got {sense!r}; {_SENSE_HELP}")
    return sense


@runtime_checkable
class BlackBoxSolver(Protocol):
    """A MAP oracle: ``z = solver(theta, **context)``.

    ``sense="max"`` means ``z = argmax_{z in C} <z, theta>``; ``"min"`` means argmin (θ are costs).
    ``event_dim`` trailing dimensions of θ form one instance. Output: same shape, device and
    dtype as θ, entries in the solver's discrete set: an optional attribute ``discrete`` declares
    it (``"binary"`` for 0/1, ``"integer"``, the default when absent, or None for real-valued
    vertices such as an LP's); the estimators warn once per solver about other values. The oracle
    must be deterministic (ties broken by a fixed rule) and must not write into θ; see
    ``docs/guarantees.md``.

    Context keyword arguments are forwarded on every call. Per-instance context: a
    :class:`Solver` receives :class:`~difftools.PerInstance` markers as they are (it splits them
    per instance, or a wrapper hands them on); any other solver receives the bare value, a
    tensor or sequence whose leading dims match θ's batch dims.
    """

    sense: Sense
    event_dim: int

    def __call__(self, theta: Tensor, /, **context: Any) -> Tensor: ...


def is_solver(obj: Any) -> bool:
    """Whether ``obj`` satisfies the :class:`BlackBoxSolver` protocol (is not a factory)."""
    return (
        callable(obj)
        and not isinstance(obj, type)
        and getattr(obj, "sense", None) in ("max", "min")
        and isinstance(getattr(obj, "event_dim", None), int)
    )


class Solver:
    """Base of every built-in solver: ``sense``, ``event_dim``, checks of θ, context and output, ``repr``.

    Subclasses implement :meth:`solve_batch` (θ ``[*batch, *event]`` → z of the same shape, any array
    type the output check accepts) and set, as class attributes or in ``__init__``:

    * ``context_keys``: the context keywords accepted (``()``: none, None: any); an unknown
      keyword is a TypeError naming the solver and the accepted ones, not a Python signature error;
    * ``event_shape``: the trailing shape of one instance, None entries for any size (default:
      ``event_dim`` dims of any size), and ``theta_meaning``, what θ holds, for error messages;
    * ``check_finite_theta``: whether NaN/Inf θ is refused here (one host sync on CUDA), and
      ``floating_theta``: whether θ must have a floating-point dtype;
    * ``check_output_values``: whether the output's values are checked: NaN/Inf on every call (a
      host-side output; one reduction) and the discrete set on an estimator's forward call. False
      only for solvers whose output is finite and in its discrete set by construction, whatever θ is;
    * ``discrete``: ``"binary"``, ``"integer"`` (default) or None (real-valued vertices).

    ``solve_batch`` receives :class:`~difftools.PerInstance` markers unchanged; :meth:`split_context`
    lays them out per instance. :meth:`repr_parts` lists what ``repr`` shows.
    """

    sense: Sense
    event_dim: int
    name: str = ""
    discrete: Discrete | None = "integer"
    context_keys: tuple[str, ...] | None = ()
    event_shape: tuple[int | None, ...] | None = None
    theta_meaning: str = ""
    check_finite_theta: bool = True
    check_output_values: bool = True
    floating_theta: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # As cvxpylayers' SolverInterface: refuse, at class definition, a solver that solves nothing.
        if cls.solve_batch is Solver.solve_batch and cls.__call__ is Solver.__call__:
            raise TypeError(f"{cls.__name__}: a Solver subclass must implement solve_batch(theta, **context)")

    def __call__(self, theta: Tensor, /, **context: Any) -> Tensor:
        self.check_theta(theta)
        self.check_context(context)
        z = self.solve_batch(theta, **context)
        return check_solver_output(z, theta, self.solver_name, check_finite=self.check_output_values)

    def solve_batch(self, theta: Tensor, /, **context: Any) -> Any:
        """z for θ ``[*batch, *event]`` (θ and context already checked)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------- checks
    @property
    def solver_name(self) -> str:
        """The name errors start with: ``name`` if set, else the class name."""
        return self.name or type(self).__name__

    def check_theta(self, theta: Any) -> None:
        """TypeError / ValueError unless θ is a real floating tensor shaped ``[*batch, *event_shape]``."""
        who = self.solver_name
        shape = self.event_shape if self.event_shape is not None else (None,) * self.event_dim
        # The messages are built only when raised: this runs on every solver call.
        def meaning() -> str:
            return self.theta_meaning or f"[*batch, {', '.join('*' if e is None else str(e) for e in shape)}] values"

        if not isinstance(theta, Tensor):
            raise TypeError(f"{who}: θ must be a torch.Tensor of {meaning()}, got {type(theta).__name__}")
        if theta.device.type == "meta":
            raise ValueError(f"{who}: θ is on the meta device (shapes only, no values); materialise it first")
        if self.floating_theta and not theta.dtype.is_floating_point:
            raise TypeError(f"{who}: θ must have a floating-point dtype, got {theta.dtype}")
        k = len(shape)
        # Without an event_shape the rank is all there is to check (this runs on every call).
        if theta.dim() < k or (
            self.event_shape is not None
            and any(e is not None and e != t for e, t in zip(shape, theta.shape[theta.dim() - k :]))
        ):
            expected = ", ".join("*" if e is None else str(e) for e in shape)
            raise ValueError(
                f"{who}: θ has shape {tuple(theta.shape)}, expected {meaning()}: event_dim={k} trailing dims "
                f"shaped [{expected}]"
            )
        if self.check_finite_theta and theta.numel() and not bool(torch.isfinite(theta).all()):
            raise ValueError(f"{who}: θ contains NaN or Inf")

    def check_context(self, context: dict) -> None:
        """Reject context keywords the solver does not know (a typo would otherwise be ignored)."""
        allowed = self.context_keys
        if allowed is None or not context:
            return
        unknown = sorted(set(context) - set(allowed))
        if unknown:
            accepted = f"accepted: {', '.join(allowed)}" if allowed else "it takes no context arguments"
            raise TypeError(f"{self.solver_name}: unknown context argument(s) {unknown}; {accepted}")

    def split_context(self, context: dict, batch_shape: torch.Size) -> tuple[dict, dict]:
        """``(shared, per_instance)``: bare values, and PerInstance values flattened to one batch dim."""
        shared = {k: v for k, v in context.items() if not isinstance(v, PerInstance)}
        per_instance = {
            k: v.flatten(batch_shape, k, self.solver_name) for k, v in context.items() if isinstance(v, PerInstance)
        }
        return shared, per_instance

    # ----------------------------------------------------------------------------- repr
    def repr_parts(self) -> list[str]:
        """The ``key=value`` entries of ``repr`` (default: sense and event_dim)."""
        return [f"sense={self.sense!r}", f"event_dim={self.event_dim}"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.repr_parts())})"


def for_solver(solver: Any, context: dict) -> dict:
    """``context`` as ``solver`` receives it: the one rule for handing per-instance context on.

    A :class:`Solver` (wrappers included) receives :class:`~difftools.PerInstance` markers as they
    are; any other (duck-typed) solver receives each marker's bare value.
    """
    if isinstance(solver, Solver) or not any(isinstance(v, PerInstance) for v in context.values()):
        return context
    if getattr(solver, "accepts_per_instance", False):
        warnings.warn(
            "the solver attribute accepts_per_instance is deprecated and will be removed in the next release: "
            "derive the wrapper from difftools.SolverWrapper (or difftools.Solver) instead",
            DeprecationWarning,
            stacklevel=3,
        )
        return context
    return {k: v.value if isinstance(v, PerInstance) else v for k, v in context.items()}


class SolverWrapper(Solver):
    """Base of solvers that wrap another solver (``inner``) and add something around its calls.

    Sense, event_dim, discrete and name are the inner solver's (pass ``sense=`` to change it, as a
    flipped oracle does). :meth:`solve_batch` calls ``inner`` with the context handed on as the inner
    solver expects it (:func:`difftools.context.for_solver`): a wrapper that overrides ``solve_batch``
    calls ``super().solve_batch(theta, **context)`` and so never turns per-instance context into shared
    context. θ and output are checked by the inner solver, not again here.
    """

    context_keys = None  # the inner solver checks its own
    check_finite_theta = False

    def __init__(self, inner: Any, *, sense: Sense | None = None, name: str | None = None):
        if not is_solver(inner):
            raise TypeError(
                f"{type(self).__name__}: inner must be a solver (a callable with sense 'max'/'min' and an int "
                f"event_dim), got {inner!r}"
            )
        self.inner = inner
        self.sense = check_sense(inner.sense if sense is None else sense, type(self).__name__)
        self.event_dim = inner.event_dim
        self.discrete = getattr(inner, "discrete", "integer")
        self.name = name or getattr(inner, "name", "") or type(self).__name__

    def __call__(self, theta: Tensor, /, **context: Any) -> Tensor:
        return self.solve_batch(theta, **context)

    def solve_batch(self, theta: Tensor, /, **context: Any) -> Tensor:
        return self.inner(theta, **for_solver(self.inner, context))

    def repr_parts(self) -> list[str]:
        return [repr(self.inner)]
