"""The one perturb-and-MAP core every estimator is built on.

:class:`PerturbAndMAP` resolves the solver, validates θ, handles the solver's sense once (a
``"min"`` solver is called on −θ, so every estimator works in max form), draws the noise,
lays samples out first (``[S, *batch, *event]``), expands per-instance context over samples,
and runs a single ``torch.autograd.Function``. Estimators only say what the forward
returns and how the backward turns the downstream gradient into a gradient for θ.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch._C import _functions as _autograd_functions

from difftools import _host
from difftools._validation import check_bool, check_non_negative
from difftools.context import PerInstance, per_instance_hint, with_hint
from difftools.contract import for_solver
from difftools.errors import SolverError
from difftools.noise import Noise
from difftools.output_checks import all_finite, solver_repr, warn_if_not_discrete
from difftools.registry import resolve_solver

__all__ = ["PerturbAndMAP", "check_parameter", "event_sum", "map_in_max_form", "max_form"]


class _PerturbAndMAPFunction(torch.autograd.Function):
    """Calls the estimator's ``_forward_impl`` / ``_backward_impl``; holds no logic of its own.

    Written in the classic style (``forward(ctx, ...)``, no ``setup_context``): for a Function with
    ``setup_context``, ``Function.apply`` binds the arguments with ``inspect.signature`` on every
    call, which was about a tenth of a small AIMLE step's fixed cost. The layer holds state and
    calls solvers on the host, so it is not a candidate for torch.func transforms (vmap, jacrev),
    the one thing ``setup_context`` would add.
    """

    @staticmethod
    def forward(ctx: Any, theta: Tensor, estimator: PerturbAndMAP, context: dict) -> Tensor:
        out, state = estimator._forward_impl(theta, context)
        ctx.estimator, ctx.context = estimator, context
        # An output the loss does not use gets no gradient: don't let autograd fill zeros for it.
        ctx.set_materialize_grads(False)
        # The state (noise, perturbed points) is saved, not returned: an output costs autograd an
        # edge and a wrapper each step.
        ctx.save_for_backward(theta, out, *state)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, None, None]:
        if grad_out is None or not ctx.needs_input_grad[0]:  # the output was not used by the loss
            return None, None, None
        theta, out, *state = ctx.saved_tensors
        with torch.no_grad():
            grad = ctx.estimator._backward_impl(theta, out, tuple(state), grad_out, ctx.context)
        if torch.is_grad_enabled() and grad.dtype.is_floating_point:
            # create_graph=True (double backward, gradient penalties): the estimated gradient is not
            # a differentiable function of θ. As torch's once_differentiable does, hand back an alias
            # whose own backward raises -- here with a message that names the estimator.
            name = type(ctx.estimator).__name__
            message = (
                f"{name}: double backward is not supported: the gradient {name} returns is a finite "
                "difference / estimate of solver calls, not a differentiable function of θ "
                "(create_graph=True, torch.autograd.grad(..., create_graph=True) or a gradient penalty "
                "through this layer)"
            )
            alias = grad.detach().requires_grad_()
            grad = _autograd_functions.DelayedError(message.encode(), 1)(alias)
        return grad, None, None


class PerturbAndMAP(nn.Module):
    """Base of all estimators: a solver, optional noise and samples, and one autograd Function.

    Subclasses implement ``_backward_impl(theta, out, state, grad_out, context) -> grad_theta`` and,
    when they return something other than the perturbed solutions, ``_forward_impl(theta, context)
    -> (out, state)``, in max form; θ here is already the max-form parameter. Helpers
    :meth:`_perturb_and_map`, :meth:`_sample_noise` and :meth:`_map` do the rest.
    """

    def __init__(
        self,
        solver: Any,
        *,
        samples: int | None = None,
        noise: Noise | None = None,
        noise_temperature: float = 1.0,
        generator: torch.Generator | None = None,
        check_finite: bool = True,
    ):
        super().__init__()
        name = type(self).__name__
        self.solver = resolve_solver(solver, name)
        if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
            raise ValueError(f"{name}: samples must be None or a positive int, got {samples!r}")
        if noise is not None and not isinstance(noise, Noise):
            raise TypeError(f"{name}: noise must be a difftools.noise.Noise or None, got {noise!r}")
        check_non_negative(noise_temperature, name, "noise_temperature")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{name}: generator must be a torch.Generator, got {type(generator).__name__}")
        check_bool(check_finite, name, "check_finite")
        self.samples = samples
        self.noise = noise
        self.noise_temperature = float(noise_temperature)
        self.generator = generator
        self.check_finite = bool(check_finite)

    # ----------------------------------------------------------------------------- user API
    def forward(self, theta: Tensor, **context: Any) -> Tensor:
        """Perturb-and-MAP on θ ``[*batch, *event]``; context kwargs reach every solver call.

        Returns ``[*batch, *event]`` with ``samples=None`` and ``[S, *batch, *event]`` otherwise.
        """
        self._validate(theta)
        batch_shape = theta.shape[: theta.dim() - self.solver.event_dim]
        for key, value in context.items():
            if isinstance(value, PerInstance):
                value.check_batch(batch_shape, key, type(self).__name__)
        out = _PerturbAndMAPFunction.apply(max_form(theta, self.solver.sense), self, context)
        return out if self.samples is not None or not self._returns_samples else out.squeeze(0)

    # Whether the forward output has a leading sample dimension (False: a mean, as in Perturbed).
    _returns_samples = True

    @property
    def event_dim(self) -> int:
        return self.solver.event_dim

    @property
    def sense(self) -> str:
        return self.solver.sense

    def extra_repr(self) -> str:
        parts = [f"solver={solver_repr(self.solver)}", f"samples={self.samples}"]
        if self.noise is not None:
            parts += [f"noise={self.noise!r}", f"noise_temperature={self.noise_temperature:g}"]
        return ", ".join(parts + self._extra_repr_parts())

    def _extra_repr_parts(self) -> list[str]:
        return []

    # ----------------------------------------------------------------------------- helpers
    def _validate(self, theta: Tensor, arg: str = "θ") -> None:
        check_parameter(theta, self.solver, type(self).__name__, arg, check_finite=self.check_finite)

    def _num_samples(self) -> int:
        return 1 if self.samples is None else self.samples

    def _sample_noise(self, theta: Tensor, samples: int) -> Tensor:
        """Noise ``[samples, *theta.shape]`` on θ's device and dtype (zeros when noise is None)."""
        shape = (samples, *theta.shape)
        if self.noise is None:
            return theta.new_zeros(shape)
        gen = self.generator
        if gen is not None and gen.device.type != theta.device.type:
            raise ValueError(
                f"{type(self).__name__}: generator is on {gen.device} but θ is on {theta.device}; "
                "create the generator with torch.Generator(device=θ.device)"
            )
        return self.noise.sample(shape, generator=gen, device=theta.device, dtype=theta.dtype)

    def _map(self, theta: Tensor, context: dict, samples: int, *, check_discrete: bool = True) -> Tensor:
        """MAP(θ) in max form for θ ``[samples * k, *batch, *event]`` (see :func:`map_in_max_form`)."""
        owner = type(self).__name__
        return map_in_max_form(
            self.solver,
            theta,
            context,
            samples,
            owner,
            check_finite=self.check_finite,
            check_discrete=self.check_finite and check_discrete,
        )

    def perturb_and_map(self, theta: Tensor, **context: Any) -> tuple[Tensor, Tensor]:
        """Noise ε and solutions ``z = MAP(θ' + τε)`` ``[S, *batch, *event]`` for θ in the solver's sense.

        θ' = θ in max form (−θ for a ``"min"`` solver). θ is checked as in :meth:`forward`; no
        autograd graph is recorded. This is the public piece losses build on
        (:class:`~difftools.FenchelYoungLoss`).
        """
        self._validate(theta)
        with torch.no_grad():
            return self._perturb_and_map(max_form(theta.detach(), self.solver.sense), context)

    def _perturb_and_map(self, theta: Tensor, context: dict) -> tuple[Tensor, Tensor]:
        """Noise ε and solutions ``z = MAP(θ + τ ε)``, both ``[S, *batch, *event]``, in one solver call."""
        samples = self._num_samples()
        eps = self._sample_noise(theta, samples)
        return eps, self._map(torch.add(theta, eps, alpha=self.noise_temperature), context, samples)

    def _check_grad(self, grad_out: Tensor, norms: Tensor | None = None) -> None:
        """ValueError if the downstream gradient has NaN or Inf (with ``check_finite``).

        ``norms``: norms of ∇f (or of a multiple of it) per instance, already taken where no finite
        ∇f overflows (:func:`event_norm` with ``keep_float64``: float64, or |∇f| for scalar events):
        all finite means every entry is, so one reduction over those few values replaces one over
        ∇f; otherwise ∇f itself decides (a multiple may overflow where ∇f is finite).
        """
        if not self.check_finite or (norms is not None and all_finite(norms)):
            return
        if not all_finite(grad_out):
            raise ValueError(
                f"{type(self).__name__}: the downstream gradient contains NaN or Inf; "
                "check the loss computed from this layer's output"
            )

    # ----------------------------------------------------------------------------- subclass API
    def _forward_impl(self, theta: Tensor, context: dict) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Default forward: the perturbed solutions ``z``, keeping the noise ε for the backward."""
        eps, z = self._perturb_and_map(theta, context)
        return z, (eps,)

    def _backward_impl(
        self, theta: Tensor, out: Tensor, state: tuple[Tensor, ...], grad_out: Tensor, context: dict
    ) -> Tensor:
        raise NotImplementedError


def check_parameter(theta: Any, solver: Any, owner: str, arg: str = "θ", *, check_finite: bool = True) -> None:
    """TypeError / ValueError unless ``theta`` is a real floating tensor with the solver's event dims.

    The input check of every estimator and loss: errors name ``owner`` and ``arg``. On CUDA the
    finiteness check synchronises with the host; ``check_finite=False`` removes it.
    """
    if not isinstance(theta, Tensor):
        raise TypeError(f"{owner}: {arg} must be a torch.Tensor, got {type(theta).__name__}")
    if theta.device.type == "meta":
        raise ValueError(
            f"{owner}: {arg} is on the meta device (shapes only, no values), so no solver can run on it; "
            "materialise the model first (e.g. model.to_empty(device='cpu') and re-initialise its parameters)"
        )
    if not theta.dtype.is_floating_point:
        raise TypeError(f"{owner}: {arg} must have a floating-point dtype, got {theta.dtype}")
    if theta.dim() < solver.event_dim:
        raise ValueError(
            f"{owner}: {arg} has shape {tuple(theta.shape)} but the solver needs at least "
            f"event_dim={solver.event_dim} trailing dims for one instance"
        )
    if check_finite and not all_finite(theta):
        raise ValueError(f"{owner}: {arg} contains NaN or Inf; check the upstream model (or its inputs)")


def map_in_max_form(
    solver: Any,
    theta: Tensor,
    context: dict,
    samples: int,
    owner: str,
    *,
    check_finite: bool = True,
    check_discrete: bool | None = None,
) -> Tensor:
    """MAP(θ) in max form for θ ``[samples * k, *batch, *event]``: the sense handled here, once.

    Per-instance context given for ``[*batch]`` is laid out for the leading sample dim; errors get
    a hint when bare context looks per-instance; a solver writing into θ is refused; with
    ``check_discrete`` (default: ``check_finite``) the first sample's solutions are checked against
    the solver's discrete set.
    """
    # The core owns the sample dimension, so it lays per-instance context out over it; how the
    # solver then receives it is the contract's one rule (difftools.contract.for_solver).
    ctx = for_solver(
        solver,
        {k: v.expand_samples(samples) if isinstance(v, PerInstance) else v for k, v in context.items()},
    )
    # max_form is its own inverse: it turns the max-form parameter back into the solver's own.
    given = max_form(theta, solver.sense)
    version = given._version
    try:
        z = solver(given, **ctx)
    except SolverError as e:
        batch_shape = tuple(theta.shape[1 : theta.dim() - solver.event_dim])
        bare = {k: v for k, v in context.items() if not isinstance(v, PerInstance)}
        hinted = with_hint(e, per_instance_hint(bare, batch_shape))
        if hinted is e:
            raise
        raise hinted from e.__cause__
    # Solvers made with difftools.solver get a private copy; any other solver receives θ itself
    # (for a "min" solver a fresh −θ), which may be the tensor kept for the backward: writing into
    # it would silently change the gradient, so refuse (torch bumps a tensor's version on in-place
    # writes, views included).
    if given is theta and given._version != version:
        raise SolverError(
            f"wrote into its input θ (an in-place operation on it); {owner} keeps that tensor for the "
            "backward, so the gradient would be wrong. Work on a copy: theta = theta.clone()",
            solver=getattr(solver, "name", None) or solver_repr(solver),
        )
    if (check_finite if check_discrete is None else check_discrete) and isinstance(z, Tensor) and z.dim() > 0:
        warn_if_not_discrete(solver, z, owner, first_sample=True)  # the first sample's solutions only
    return z


def max_form(theta: Tensor, sense: str) -> Tensor:
    """θ as the parameter of a maximisation: −θ for a ``"min"`` solver (the one place signs flip)."""
    return -theta if sense == "min" else theta


def event_sum(x: Tensor, event_dim: int) -> Tensor:
    """Sum over the trailing ``event_dim`` dims (one value per instance; ``x`` itself for event_dim 0)."""
    if event_dim == 0:
        return x
    return x.sum(dim=tuple(range(x.dim() - event_dim, x.dim())))


def event_norm(x: Tensor, event_dim: int, *, keep_float64: bool = False) -> Tensor:
    """L2 norm over the trailing ``event_dim`` dims (keeping them as size-1 dims), without under/overflow.

    Squaring raw entries underflows to 0 below about 1e-19 in float32 (1e-154 in float64) and
    overflows above about 1e19 (1e154), where the norm itself is still representable. Lower
    precisions accumulate in float64 (one op; on the CPU, large tensors take :func:`_checked_norm`);
    float64 divides by the largest magnitude m first and returns m·‖x/m‖. Results are in ``x``'s
    dtype, or in float64 with ``keep_float64`` (a ratio of two norms then converts once).
    """
    if event_dim == 0:
        return x.abs()
    dims = tuple(range(x.dim() - event_dim, x.dim()))
    if x.dtype == torch.float64:
        return _scaled_norm(x, dims)
    if x.numel() >= LARGE and _host.reads_are_free(x.device):
        norm = _checked_norm(x, dims)
    else:
        norm = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float64)
    return norm if keep_float64 else norm.to(x.dtype)


# Tensors of at least this many entries take the CPU's memory-bound kernels (event_norm, the
# controller's counts): there the float64 and integer reductions cost 7-30x a float32 one (about
# 3.4 ns an entry against 0.12-0.5 ns, benchmarks/estimator_overhead.py's largest rows), below it
# they are a few microseconds either way and keep their one-op form.
LARGE = 1 << 16

# A float32 norm in [2^-40, 2^40] had no square under- or overflow that matters: an overflow makes
# it inf, and the squares that are subnormal (|x| < 1e-19) lose at most 1.2e-38 each (all of it
# where denormals are flushed), n·1.4e-14 of a squared norm of at least 2^-80.
_TRUSTED = (2.0**-40, 2.0**40)


def _checked_norm(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """float64 norms of a float32 or lower-precision ``x`` from a float32 reduction, checked per instance on the host.

    The norm of every instance is taken in float32 (vectorised, no temporary); the instances whose
    norm falls outside the trusted range (zero, tiny, huge, inf or NaN) are picked on the host --
    free on the CPU, a synchronisation elsewhere, so only the CPU takes this path -- and, unless
    all their entries are zero, recomputed in float64 (where no square of theirs under- or overflows).
    """
    norm = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float32).double()
    flat = norm.view(-1)
    low, high = _TRUSTED
    suspect = torch.nonzero(~((flat >= low) & (flat <= high))).squeeze(1)
    if suspect.numel():
        rows = x.reshape(flat.numel(), -1).index_select(0, suspect)
        nonzero = rows.any(-1)
        suspect, rows = suspect[nonzero], rows[nonzero]  # an all-zero instance's norm is 0 already
        if suspect.numel():
            flat[suspect] = torch.linalg.vector_norm(rows, dim=1, dtype=torch.float64)
    return norm


def _scaled_norm(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """m·‖x/m‖ over ``dims`` (keeping them), m the largest magnitude: a float64 norm with no under/overflow."""
    scale = x.abs().amax(dim=dims, keepdim=True)
    unit = x / torch.where(scale > 0, scale, 1.0)
    return scale * torch.linalg.vector_norm(unit, dim=dims, keepdim=True)
