"""Losses that need only a pool of solutions: NCE, contrastive MAP and learning-to-rank.

Noise-contrastive estimation and its MAP variant (Mulamba et al., IJCAI 2021) and the pointwise,
pairwise and listwise ranking losses (Mandi et al., ICML 2022) score predicted objectives
``⟨θ̂, w⟩`` of pool members ``w`` instead of solving: no solver call in the backward, and none in
the forward unless the pool is a :class:`~difftools.CachedSolver`, which then refreshes itself on
θ̂ (running the solver with probability ``solve_ratio``). Every loss works in max form once
(scores are negated for ``"min"`` problems, where θ are costs) and is plain autograd of its value.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from difftools.caching import POOL_INDEX, CachedSolver, SolutionPool, pool_index
from difftools.core import max_form
from difftools.losses import Reduction, check_reduction, reduce_loss

__all__ = [
    "ContrastiveMAPLoss",
    "ListwiseRankingLoss",
    "NCELoss",
    "PairwiseRankingLoss",
    "PointwiseRankingLoss",
]


class _PoolLoss(nn.Module):
    """Shared plumbing: resolve the pool and the sense, validate inputs, score pool members."""

    def __init__(
        self,
        pool: SolutionPool | CachedSolver,
        *,
        sense: str | None = None,
        event_dim: int | None = None,
        reduction: Reduction = "mean",
    ):
        super().__init__()
        name = type(self).__name__
        if isinstance(pool, CachedSolver):
            for arg, given, own in (("sense", sense, pool.sense), ("event_dim", event_dim, pool.event_dim)):
                if given is not None and given != own:
                    raise ValueError(f"{name}: {arg}={given!r} contradicts the cached solver's {arg}={own!r}")
            sense, event_dim = pool.sense, pool.event_dim
        elif isinstance(pool, SolutionPool):
            if sense is None:
                raise ValueError(f"{name}: a bare SolutionPool needs sense='max' (rewards) or sense='min' (costs)")
            event_dim = 1 if event_dim is None else event_dim
        else:
            raise TypeError(
                f"{name}: pool must be a difftools.SolutionPool or a cached solver (difftools.cached(...)), "
                f"got {type(pool).__name__}"
            )
        if sense not in ("max", "min"):
            raise ValueError(f"{name}: sense must be 'max' or 'min', got {sense!r}")
        if isinstance(event_dim, bool) or not isinstance(event_dim, int) or event_dim < 1:
            raise ValueError(f"{name}: event_dim must be a positive int, got {event_dim!r}")
        self.source = pool
        self.sense = sense
        self.event_dim = event_dim
        self.reduction = check_reduction(reduction, name)

    @property
    def pool(self) -> SolutionPool:
        return self.source.pool if isinstance(self.source, CachedSolver) else self.source

    def _scores(self, theta_hat: Tensor, other: Tensor, other_name: str, context: dict) -> tuple:
        """Flattened inputs ``[N, D]``, max-form predicted scores ``[N, P]``, the candidate mask, θ̂'s batch shape."""
        name = type(self).__name__
        for arg, value in (("theta_hat", theta_hat), (other_name, other)):
            if not isinstance(value, Tensor) or not value.dtype.is_floating_point:
                raise TypeError(f"{name}: {arg} must be a floating-point torch.Tensor, got {value!r:.60}")
        if theta_hat.dim() < self.event_dim:
            raise ValueError(
                f"{name}: theta_hat has shape {tuple(theta_hat.shape)}, needs event_dim={self.event_dim} trailing dims"
            )
        if other.shape != theta_hat.shape:
            raise ValueError(
                f"{name}: {other_name} has shape {tuple(other.shape)}, expected theta_hat's {tuple(theta_hat.shape)}"
            )
        if isinstance(self.source, CachedSolver):
            with torch.no_grad():  # grows the pool when the solver runs; the answer itself is not used
                self.source(theta_hat.detach(), **context)
        elif set(context) - {POOL_INDEX}:
            raise TypeError(
                f"{name}: context {sorted(set(context) - {POOL_INDEX})} only reaches a solver; this loss has a "
                f"bare pool (accepted: {POOL_INDEX})"
            )
        batch_shape = theta_hat.shape[: theta_hat.dim() - self.event_dim]
        index = pool_index(self.pool, context.get(POOL_INDEX), batch_shape, name)
        flat = theta_hat.reshape(-1, theta_hat.shape[theta_hat.dim() - self.event_dim :].numel())
        values, mask = self.pool.scores(flat, index)
        other = other.to(device=flat.device, dtype=flat.dtype).reshape(flat.shape)
        if mask is not None and not bool(mask.any(1).all()):
            raise ValueError(f"{name}: some instance has no solution in its per-instance pool; add one first")
        return flat, other, max_form(values, self.sense), mask, batch_shape

    def _finish(self, per_instance: Tensor, batch_shape: torch.Size) -> Tensor:
        return reduce_loss(per_instance.reshape(batch_shape), self.reduction)

    def extra_repr(self) -> str:
        return f"sense={self.sense!r}, event_dim={self.event_dim}, reduction={self.reduction!r}"


def _masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return x.mean(1)
    return (x * mask).sum(1) / mask.sum(1)


def _masked(x: Tensor, mask: Tensor | None, fill: float) -> Tensor:
    return x if mask is None else x.masked_fill(~mask, fill)


class NCELoss(_PoolLoss):
    """Noise-contrastive estimation over a pool (Mulamba et al., IJCAI 2021, Eq. 7 with the pool as noise).

    With scores ``s(w) = ⟨θ̂, w⟩`` in max form (``−⟨ĉ, w⟩`` for costs), target solution y and
    pool Γ: ``L = mean_{w ∈ Γ} (s(w) − s(y))``. For costs that is ``mean_w (⟨ĉ, y⟩ − ⟨ĉ, w⟩)``,
    which pushes ĉ to make y cheaper than the pool. Its gradient in θ̂ (max form) is
    ``mean_w w − y``.

    Call as ``loss(theta_hat, target, **context)``. ``pool``: a :class:`~difftools.SolutionPool`
    (then give ``sense``; ``event_dim`` defaults to 1) or a cached solver (sense, event_dim and
    pool refreshes come from it). ``reduction``: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def forward(self, theta_hat: Tensor, target: Tensor, **context: Any) -> Tensor:
        flat, target, scores, mask, batch = self._scores(theta_hat, target, "target", context)
        own = max_form((flat * target).sum(1, keepdim=True), self.sense)
        return self._finish(_masked_mean(scores - own, mask), batch)


class ContrastiveMAPLoss(_PoolLoss):
    """Contrastive MAP loss (Mulamba et al., IJCAI 2021): the most violating pool member only.

    ``L = max_{w ∈ Γ} s(w) − s(y)`` with the max-form scores of :class:`NCELoss`; for costs
    ``⟨ĉ, y⟩ − min_{w ∈ Γ} ⟨ĉ, w⟩``. ≥ 0 when y is in the pool; gradient ``ŵ − y`` (max form)
    with ŵ the pool's best member for θ̂. Arguments as :class:`NCELoss`.
    """

    def forward(self, theta_hat: Tensor, target: Tensor, **context: Any) -> Tensor:
        flat, target, scores, mask, batch = self._scores(theta_hat, target, "target", context)
        own = max_form((flat * target).sum(1), self.sense)
        return self._finish(_masked(scores, mask, -torch.inf).amax(1) - own, batch)


class PointwiseRankingLoss(_PoolLoss):
    """Pointwise learning-to-rank loss (Mandi et al., ICML 2022): regress pool objectives.

    ``L = mean_{w ∈ Γ} (⟨θ̂, w⟩ − ⟨θ, w⟩)²`` with θ the true objective vector (costs or rewards;
    the value does not depend on the sense). Call as ``loss(theta_hat, theta, **context)``;
    other arguments as :class:`NCELoss`.
    """

    def forward(self, theta_hat: Tensor, theta: Tensor, **context: Any) -> Tensor:
        flat, theta, _, mask, batch = self._scores(theta_hat, theta, "theta", context)
        error = (flat - theta.detach()) @ self.pool.solutions.to(flat).T
        return self._finish(_masked_mean(error.square(), mask), batch)


class PairwiseRankingLoss(_PoolLoss):
    """Pairwise learning-to-rank loss (Mandi et al., ICML 2022), best member against the rest.

    Let ``w⁺`` be the pool member with the best true objective (``max ⟨θ, w⟩``, or min for costs)
    and s the max-form predicted scores. ``L = mean_{w ∈ Γ, w ≠ w⁺} relu(margin + s(w) − s(w⁺))``:
    zero once every other member scores at least ``margin`` below ``w⁺``. With a single candidate
    the loss is 0. Call as ``loss(theta_hat, theta, **context)``; ``margin ≥ 0`` (default 0, as in
    PyEPO); other arguments as :class:`NCELoss`.
    """

    def __init__(self, pool: SolutionPool | CachedSolver, *, margin: float = 0.0, **options: Any):
        super().__init__(pool, **options)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
            raise ValueError(f"PairwiseRankingLoss: margin must be a number >= 0, got {margin!r}")
        self.margin = float(margin)

    def forward(self, theta_hat: Tensor, theta: Tensor, **context: Any) -> Tensor:
        flat, theta, scores, mask, batch = self._scores(theta_hat, theta, "theta", context)
        true = max_form(theta.detach() @ self.pool.solutions.to(flat).T, self.sense)
        best = _masked(true, mask, -torch.inf).argmax(1, keepdim=True)
        others = torch.ones_like(scores, dtype=torch.bool).scatter(1, best, False)
        others = others if mask is None else others & mask
        hinge = torch.relu(self.margin + scores - scores.gather(1, best)) * others
        return self._finish(hinge.sum(1) / others.sum(1).clamp_min(1), batch)

    def extra_repr(self) -> str:
        return f"margin={self.margin:g}, " + super().extra_repr()


class ListwiseRankingLoss(_PoolLoss):
    """Listwise learning-to-rank loss (Mandi et al., ICML 2022): cross-entropy of pool rankings.

    With max-form true scores t and predicted scores s over the pool and temperature τ:
    ``L = −Σ_{w ∈ Γ} softmax(t/τ)_w · log softmax(s/τ)_w``. Call as
    ``loss(theta_hat, theta, **context)``; ``temperature > 0`` (default 1); other arguments as
    :class:`NCELoss`.
    """

    def __init__(self, pool: SolutionPool | CachedSolver, *, temperature: float = 1.0, **options: Any):
        super().__init__(pool, **options)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"ListwiseRankingLoss: temperature must be a number > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def forward(self, theta_hat: Tensor, theta: Tensor, **context: Any) -> Tensor:
        flat, theta, scores, mask, batch = self._scores(theta_hat, theta, "theta", context)
        true = max_form(theta.detach() @ self.pool.solutions.to(flat).T, self.sense)
        target = torch.softmax(_masked(true / self.temperature, mask, -torch.inf), 1)
        log_p = torch.log_softmax(_masked(scores / self.temperature, mask, -torch.inf), 1)
        # Outside an instance's pool the target weight is 0; keep 0·(−inf) from becoming NaN.
        terms = _masked(target * log_p, mask, 0.0)
        return self._finish(-terms.sum(1), batch)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}, " + super().extra_repr()
