"""Losses that wrap a layer or a solver (Fenchel–Young, SPO+) and metrics (Hamming loss, regret).

Losses compose public pieces instead of configuring estimators: ``FenchelYoungLoss(Perturbed(solver))``
calls only the layer's public :meth:`~difftools.Perturbed.perturb_and_map`; ``SPOPlusLoss(solver)``
holds a solver and uses the core's public functions (:func:`~difftools.core.check_parameter`,
:func:`~difftools.core.map_in_max_form`) for input checks, context forwarding and the sign of
``"min"`` solvers. Their gradients are plain autograd of an expression whose derivative is the
known (sub)gradient, so neither needs a custom backward.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from difftools._validation import check_bool
from difftools.core import check_parameter, event_sum, map_in_max_form, max_form
from difftools.estimators import Perturbed
from difftools.output_checks import solver_repr
from difftools.registry import resolve_solver

__all__ = ["FenchelYoungLoss", "SPOPlusLoss", "check_reduction", "hamming_loss", "reduce_loss", "regret"]

Reduction = Literal["mean", "sum", "none"]


def check_reduction(reduction: str, owner: str) -> str:
    """``reduction`` if it is ``"mean"``, ``"sum"`` or ``"none"``, else a ValueError naming ``owner``."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{owner}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def reduce_loss(x: Tensor, reduction: str) -> Tensor:
    """Per-instance values ``x`` reduced as ``reduction`` says (a checked name)."""
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def _check_solution(value: Any, theta: Tensor, arg: str, owner: str) -> Tensor:
    """A solution-like tensor with θ's shape, cast to θ's device and dtype."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{owner}: {arg} must be a torch.Tensor, got {type(value).__name__}")
    if value.shape != theta.shape:
        raise ValueError(f"{owner}: {arg} has shape {tuple(value.shape)}, expected θ's shape {tuple(theta.shape)}")
    return value.to(device=theta.device, dtype=theta.dtype)


class FenchelYoungLoss(nn.Module):
    """Perturbed Fenchel–Young loss (Berthet et al., NeurIPS 2020) around a :class:`~difftools.Perturbed` layer.

    In max form (θ ← −θ for a ``"min"`` solver, so θ are costs there), with ``z_s = MAP(θ + σε_s)``
    the layer's samples (σ its ``noise_temperature``) and y the target solution, the value is

        L(θ; y) = (1/S) Σ_s ⟨θ + σε_s, z_s − y⟩,

    a Monte-Carlo estimate of ``F_σ(θ) − ⟨θ + σE[ε], y⟩`` with ``F_σ(θ) = E[max_z ⟨θ + σε, z⟩]``:
    the Fenchel–Young loss up to the θ-independent term Ω_σ(y) (which has no closed form in
    general). Every term is ≥ 0 when y is feasible, so L ≥ 0, and L = 0 when all samples hit y.
    Its gradient is ``ŷ_σ(θ) − y`` with ``ŷ_σ(θ) = (1/S) Σ_s z_s`` (Danskin), for costs
    ``y − ŷ_σ``: autograd of the expression above gives exactly that, with no backward through
    the solver. For Gumbel noise on ``argmax``, ``E[L] = σ·logsumexp(θ/σ) − θ_y``: the
    cross-entropy of softmax(θ/σ).

    Call as ``loss(theta, target, **context)``; ``target`` has θ's shape. ``reduction``: ``"mean"``
    or ``"sum"`` over instances, or ``"none"`` for ``[*batch]``.
    """

    def __init__(self, perturbed: Perturbed, *, reduction: Reduction = "mean"):
        super().__init__()
        if not isinstance(perturbed, Perturbed):
            raise TypeError(
                "FenchelYoungLoss: perturbed must be a difftools.Perturbed layer, e.g. "
                f"FenchelYoungLoss(Perturbed(solver, noise_temperature=1.0, samples=10)), got {perturbed!r}"
            )
        if perturbed.baseline:
            # The loss never runs the layer's backward, where the baseline acts: refuse it rather than ignore it.
            raise ValueError(
                "FenchelYoungLoss: the Perturbed layer has baseline=True, which only changes the layer's own "
                "backward; the loss's gradient (ŷ_σ − y) does not use it. Pass Perturbed(..., baseline=False)"
            )
        self.perturbed = perturbed
        self.reduction = check_reduction(reduction, "FenchelYoungLoss")

    def forward(self, theta: Tensor, target: Tensor, **context: Any) -> Tensor:
        layer = self.perturbed
        eps, z = layer.perturb_and_map(theta, **context)
        target = _check_solution(target, theta, "target", "FenchelYoungLoss")
        theta_max = max_form(theta, layer.sense)
        value = event_sum((theta_max + layer.noise_temperature * eps) * (z - target), layer.event_dim).mean(0)
        return reduce_loss(value, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class SPOPlusLoss(nn.Module):
    """SPO+ loss of "Smart Predict, then Optimize" (Elmachtoub & Grigas, Management Science 2022).

    θ̂ are predicted and θ true objective vectors in the solver's own sense: costs for a
    ``"min"`` solver, rewards for a ``"max"`` solver; ``w*`` is an optimal solution for θ. For
    costs, as in the paper::

        ℓ(ĉ, c) = −min_w ⟨2ĉ − c, w⟩ + 2⟨ĉ, w*⟩ − ⟨c, w*⟩,     subgradient 2(w* − w*(2ĉ − c)).

    In max form (rewards r, where the core sets c = −r) this reads
    ``ℓ = ⟨2r̂ − r, MAP(2r̂ − r) − w*⟩`` with subgradient ``2(MAP(2r̂ − r) − w*)``: the one
    expression computed here, ≥ 0, and 0 when θ̂ = θ. Autograd of it gives the subgradient;
    θ is treated as data (no gradient flows to it).

    Call as ``loss(theta_hat, theta, solution=None, **context)``. Without ``solution`` the
    optimal solution for θ is computed in the same solver call as ``MAP(2θ̂ − θ)``.
    ``reduction``: ``"mean"`` or ``"sum"`` over instances, or ``"none"`` for ``[*batch]``.
    """

    def __init__(self, solver: Any, *, reduction: Reduction = "mean", check_finite: bool = True):
        super().__init__()
        self.solver = resolve_solver(solver, "SPOPlusLoss")
        self.reduction = check_reduction(reduction, "SPOPlusLoss")
        self.check_finite = check_bool(check_finite, "SPOPlusLoss", "check_finite")

    def forward(self, theta_hat: Tensor, theta: Tensor, solution: Tensor | None = None, **context: Any) -> Tensor:
        for arg, value in (("theta_hat", theta_hat), ("theta", theta)):
            check_parameter(value, self.solver, "SPOPlusLoss", arg, check_finite=self.check_finite)
        theta = _check_solution(theta, theta_hat, "theta", "SPOPlusLoss").detach()
        sense = self.solver.sense
        target = 2 * max_form(theta_hat, sense) - max_form(theta, sense)

        def solve(points: Tensor, samples: int) -> Tensor:
            return map_in_max_form(
                self.solver, points, context, samples, "SPOPlusLoss", check_finite=self.check_finite
            )

        with torch.no_grad():
            if solution is None:
                both = solve(torch.stack([target.detach(), max_form(theta, sense)]), 2)
                z_target, solution = both[0], both[1]
            else:
                solution = _check_solution(solution, theta_hat, "solution", "SPOPlusLoss")
                z_target = solve(target.detach().unsqueeze(0), 1)[0]
        value = event_sum(target * (z_target - solution), self.solver.event_dim)
        return reduce_loss(value, self.reduction)

    def extra_repr(self) -> str:
        return f"solver={solver_repr(self.solver)}, reduction={self.reduction!r}"


def _check_pair(z: Tensor, target: Tensor, event_dim: int, owner: str, names: tuple[str, str]) -> torch.Size:
    for name, value in zip(names, (z, target)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(value).__name__}")
    try:
        shape = torch.broadcast_shapes(z.shape, target.shape)
    except RuntimeError:
        raise ValueError(
            f"{owner}: {names[0]} of shape {tuple(z.shape)} and {names[1]} of shape {tuple(target.shape)} "
            "do not broadcast"
        ) from None
    if isinstance(event_dim, bool) or not isinstance(event_dim, int) or not 0 <= event_dim <= len(shape):
        raise ValueError(f"{owner}: event_dim must be an int in [0, {len(shape)}], got {event_dim!r}")
    return shape


def hamming_loss(z: Tensor, target: Tensor, *, event_dim: int = 1, reduction: Reduction = "mean") -> Tensor:
    """Fraction of entries in which 0/1 solutions differ: ``mean_event(z(1 − y) + (1 − z)y)``.

    The expression is affine in ``z``, so it is also the expected Hamming loss when ``z`` is a
    marginal (a :class:`~difftools.Perturbed` output) and it is exact for
    :class:`~difftools.ScoreFunction`. ``z`` and ``target`` broadcast (e.g. samples
    ``[S, *batch, *event]`` against ``[*batch, *event]``); ``event_dim`` trailing dims form one
    instance. ``reduction="none"`` returns one value per instance.
    """
    shape = _check_pair(z, target, event_dim, "hamming_loss", ("z", "target"))
    check_reduction(reduction, "hamming_loss")
    errors = (z * (1 - target) + (1 - z) * target).expand(shape)
    per_instance = event_sum(errors, event_dim) / max(1, math.prod(shape[len(shape) - event_dim :]))
    return reduce_loss(per_instance, reduction)


def regret(
    z: Tensor,
    theta: Tensor,
    optimal: Tensor,
    *,
    sense: Literal["max", "min"],
    event_dim: int = 1,
    normalized: bool = True,
    reduction: Reduction = "mean",
) -> Tensor:
    """Regret of solutions ``z`` under the true objective θ: how much worse than ``optimal`` they are.

    ``⟨θ, z⟩ − ⟨θ, z*⟩`` for costs (``sense="min"``), ``⟨θ, z*⟩ − ⟨θ, z⟩`` for rewards
    (``"max"``); ≥ 0 for feasible z. ``normalized=True`` divides each instance by ``|⟨θ, z*⟩|``
    (the normalised regret of the predict-then-optimise literature; use ``normalized=False`` when
    optimal values can be 0). ``z`` may carry leading sample dims; θ and ``optimal`` broadcast
    against it.
    """
    if sense not in ("max", "min"):
        raise ValueError(f"regret: sense must be 'max' or 'min', got {sense!r}")
    shape = _check_pair(z, theta, event_dim, "regret", ("z", "theta"))
    _check_pair(z, optimal, event_dim, "regret", ("z", "optimal"))
    check_reduction(reduction, "regret")
    reward = max_form(theta, sense)
    value = event_sum((reward * (optimal - z)).expand(shape), event_dim)
    if normalized:
        best = event_sum(theta * optimal, event_dim).abs()
        value = value / best.clamp_min(torch.finfo(best.dtype).tiny)
    return reduce_loss(value, reduction)

