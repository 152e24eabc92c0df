"""Shortest paths on vertex-weighted grids (Warcraft): the batched torch solver.

:class:`GridShortestPath` is the MAP oracle (sense ``"min"``, batched, CPU or GPU). The labelling
Dijkstra of the Warcraft benchmark (reference tie-break, path counting) moved to the Warcraft example,
:mod:`examples.warcraft.labelling`; the names ``dijkstra`` and ``DijkstraResult`` still import from
here for one release, with a DeprecationWarning.
"""

from __future__ import annotations

import itertools
import numbers
from typing import NamedTuple

import torch
from torch import Tensor

from difftools.contract import Solver
from difftools.deprecation import forward_moved_names

__all__ = ["GridPaths", "GridShortestPath", "grid_neighbours"]

# Deprecated (removed in the next release): the labeller moved to the Warcraft example.
__getattr__ = forward_moved_names(
    __name__, {"dijkstra": "examples.warcraft.labelling", "DijkstraResult": "examples.warcraft.labelling"}
)


def grid_neighbours(neighbourhood: int) -> tuple[tuple[int, int], ...]:
    """Neighbour offsets in the reference order ``itertools.product((-1,0,1), (-1,0,1))``."""
    if neighbourhood not in (4, 8):
        raise ValueError(f"neighbourhood must be 4 or 8, got {neighbourhood!r}")
    offsets = [d for d in itertools.product((-1, 0, 1), (-1, 0, 1)) if d != (0, 0)]
    if neighbourhood == 4:
        offsets = [d for d in offsets if abs(d[0]) + abs(d[1]) == 1]
    return tuple(offsets)


class GridPaths(NamedTuple):
    """Batched shortest paths: 0/1 ``path`` masks ``[*batch, H, W]``, their ``cost`` ``[*batch]`` and
    the ``distances`` ``[*batch, H, W]`` from the source (path costs, both end cells included)."""

    path: Tensor
    cost: Tensor
    distances: Tensor


# Sweeps between convergence checks: each check is one host synchronisation on a GPU.
_CHECK_EVERY = 4
# Grid cells per chunk of the batch on CPUs (about 1.5 MB of working set in float32).
_CPU_CHUNK_CELLS = 1 << 16


class GridShortestPath(Solver):
    """Vertex-weighted shortest path on ``[*batch, H, W]`` grids, batched and vectorised in torch.

    θ holds non-negative cell costs (sense ``"min"``); the output is the 0/1 mask of a minimum-cost
    ``source``-to-``target`` path (default: top-left to bottom-right corner), 8- or 4-connected, in
    θ's dtype and device. The path cost is the sum of the costs of its cells, both ends included.

    Algorithm: synchronous Bellman-Ford sweeps on the whole batch. With ``d`` the distance map,
    one sweep is ``d ← min(d, minpool(d) + θ)``, ``minpool`` the minimum over the neighbourhood
    (a separable 3×3 minimum for 8 neighbours). Sweeps run until nothing changes (checked every
    few sweeps), at most about the number of cells on the longest shortest path. The path is
    then read backwards from the target, all maps at once.

    Ties are broken deterministically (the same on CPU and GPU): from each cell the walk steps to
    the neighbour of smallest distance; among equal distances, to the one whose distance became
    final in the earliest sweep; then to the first in ``itertools.product((-1,0,1), (-1,0,1))``
    order. This always reaches the source, also across zero-cost cells. It is not the tie-break of
    the Warcraft labeller (:func:`examples.warcraft.labelling.dijkstra`), so on maps with several
    shortest paths the two may pick different (equally short) ones.

    Negative costs would make the problem ill-posed (a walk could gain by going back and forth),
    yet perturbations push costs below zero: ``negative="clamp"`` (default) clamps them to 0,
    ``negative="raise"`` raises ``ValueError``. NaN or Inf costs raise ``ValueError``.
    Half-precision θ is solved in float32.
    """

    sense = "min"
    event_dim = 2
    discrete = "binary"
    theta_meaning = "[*batch, H, W] cell costs"

    def __init__(
        self,
        neighbourhood: int = 8,
        source: tuple[int, int] = (0, 0),
        target: tuple[int, int] | None = None,
        negative: str = "clamp",
    ):
        self.offsets = grid_neighbours(neighbourhood)
        self.neighbourhood = neighbourhood
        self.source = _cell(source, "source")
        self.target = None if target is None else _cell(target, "target")
        if negative not in ("clamp", "raise"):
            raise ValueError(f"GridShortestPath: negative must be 'clamp' or 'raise', got {negative!r}")
        self.negative = negative

    def __repr__(self) -> str:
        return (
            f"GridShortestPath(neighbourhood={self.neighbourhood}, source={self.source}, "
            f"target={self.target}, negative={self.negative!r})"
        )

    def solve_batch(self, theta: Tensor, /) -> Tensor:
        return self._paths(theta).path

    def solve(self, theta: Tensor) -> GridPaths:
        """Shortest paths, their costs and the distance maps for costs θ ``[*batch, H, W]``."""
        self.check_theta(theta)
        return self._paths(theta)

    def _paths(self, theta: Tensor) -> GridPaths:
        w = self._clamped_costs(theta)
        *batch, h, wd = w.shape
        target = (h - 1, wd - 1) if self.target is None else self.target
        for name, cell in (("source", self.source), ("target", target)):
            if not (cell[0] < h and cell[1] < wd):
                raise ValueError(f"GridShortestPath: {name} {cell} lies outside the {h}x{wd} grid of θ")
        flat = w.reshape(-1, h, wd)
        work_dtype = torch.float32 if flat.dtype in (torch.float16, torch.bfloat16) else flat.dtype
        flat = flat.to(work_dtype)
        if flat.numel():
            flat = _without_overflow(flat)
        # On CPUs, chunks of the batch whose working set stays in cache run faster (and stop
        # sweeping as soon as their own maps converge); a GPU wants the whole batch at once.
        chunk = max(1, _CPU_CHUNK_CELLS // (h * wd)) if flat.device.type == "cpu" else max(1, flat.shape[0])
        parts = [_solve_batch(part, self.source, target, self.offsets) for part in flat.split(chunk) if len(part)]
        dist = torch.cat([d for d, _ in parts]) if parts else torch.empty_like(flat)
        path = torch.cat([z for _, z in parts]) if parts else torch.empty_like(flat)
        dist = dist.to(theta.dtype).reshape(*batch, h, wd)
        return GridPaths(
            path=path.to(theta.dtype).reshape(*batch, h, wd),
            cost=dist[..., target[0], target[1]],
            distances=dist,
        )

    def check_theta(self, theta: object) -> None:
        super().check_theta(theta)
        if theta.shape[-1] == 0 or theta.shape[-2] == 0:
            raise ValueError(
                f"GridShortestPath: θ must have shape [*batch, H, W] with H, W >= 1, got {tuple(theta.shape)}"
            )

    def _clamped_costs(self, theta: Tensor) -> Tensor:
        w = theta.detach()
        if w.numel() == 0:
            return w
        if self.negative == "raise":
            low = float(w.min())
            if low < 0:
                raise ValueError(
                    f"GridShortestPath: theta has negative cell costs (min {low:g}); costs must be >= 0 "
                    "with negative='raise' (use negative='clamp' to clamp them to 0)"
                )
            return w
        return w.clamp(min=0)


def _without_overflow(flat: Tensor) -> Tensor:
    """``flat`` ``[N, H, W]`` in a dtype in which no path cost overflows (float64 if needed), else a ValueError.

    A simple path costs at most the sum of all (non-negative) cells, so finite totals mean finite
    distances. Costs near the dtype's maximum would otherwise make every distance inf and leave the
    backward walk without a gradient of distances to follow.
    """
    totals = flat.sum(dim=(-2, -1))
    if bool(torch.isfinite(totals).all()):
        return flat
    if flat.dtype != torch.float64 and bool(torch.isfinite(flat.double().sum(dim=(-2, -1))).all()):
        return flat.double()
    raise ValueError(
        f"GridShortestPath: the cell costs are too large: path costs overflow even in float64 (largest cost "
        f"{float(flat.max()):.3g}, largest map total {float(totals.max()):.3g}); rescale the costs"
    )


def _cell(cell: tuple[int, int], name: str) -> tuple[int, int]:
    if (
        not isinstance(cell, (tuple, list))
        or len(cell) != 2
        or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) and i >= 0 for i in cell)
    ):
        raise ValueError(f"GridShortestPath: {name} must be a pair of non-negative ints (row, column), got {cell!r}")
    return (int(cell[0]), int(cell[1]))


def _solve_batch(
    w: Tensor, source: tuple[int, int], target: tuple[int, int], offsets: tuple[tuple[int, int], ...]
) -> tuple[Tensor, Tensor]:
    """Distances and path masks for costs ``w`` ``[N, H, W]`` (non-negative, finite)."""
    n, h, wd = w.shape
    # Maps live in flat buffers with an Inf frame (one cell wide) plus one guard entry at each
    # end, so every neighbour shift is a contiguous slice along the last dim: fast elementwise
    # kernels, no padding per sweep, and cells outside the grid never win a minimum.
    p = wd + 2
    size = (h + 2) * p
    band = slice(1 + p, 1 + p + h * p)  # rows 0..H-1 of the grid, frame columns included
    inf = torch.inf
    dist = torch.full((n, size + 2), inf, dtype=w.dtype, device=w.device)
    # Costs laid out like the band; Inf on the frame columns keeps them at Inf after a sweep.
    cost = torch.full((n, h, p), inf, dtype=w.dtype, device=w.device)
    cost[:, :, 1:-1] = w
    cost = cost.reshape(n, h * p)

    def index(cell: tuple[int, int]) -> int:
        return 1 + (cell[0] + 1) * p + cell[1] + 1

    src = index(source)
    dist[:, src] = w[:, source[0], source[1]]
    # Sweep after which each distance last decreased: the secondary key of the walk's tie-break.
    # Kept as floats (exact integers) and updated with max(), because boolean-mask kernels
    # (masked_fill, where) are several times slower than plain float arithmetic on CPUs.
    settled = torch.zeros((n, size + 2), dtype=w.dtype, device=w.device)
    d_band, settled_band = dist[:, band], settled[:, band]
    rows = torch.empty((n, size), dtype=w.dtype, device=w.device)
    cand = torch.empty((n, h * p), dtype=w.dtype, device=w.device)
    improved = torch.empty((n, h * p), dtype=w.dtype, device=w.device)
    sweep = 0
    while True:
        for _ in range(_CHECK_EVERY):
            sweep += 1
            if len(offsets) == 8:
                # Separable 3x3 minimum: along rows, then along columns.
                torch.minimum(dist[:, 0:size], dist[:, 1 : size + 1], out=rows)
                torch.minimum(rows, dist[:, 2 : size + 2], out=rows)
                torch.minimum(rows[:, 0 : h * p], rows[:, 2 * p : 2 * p + h * p], out=cand)
                torch.minimum(cand, rows[:, p : p + h * p], out=cand)
            else:
                lo, hi = band.start, band.stop
                torch.minimum(dist[:, lo - 1 : hi - 1], dist[:, lo + 1 : hi + 1], out=cand)
                torch.minimum(cand, dist[:, lo - p : hi - p], out=cand)
                torch.minimum(cand, dist[:, lo + p : hi + p], out=cand)
            cand.add_(cost)
            torch.lt(cand, d_band, out=improved)
            torch.maximum(settled_band, improved.mul_(sweep), out=settled_band)
            torch.minimum(d_band, cand, out=d_band)
        if not bool(improved.max() > 0):
            break
    path = _walk_back(dist, settled, src, index(target), [dr * p + dc for dr, dc in offsets], h * wd)
    return d_band.reshape(n, h, p)[:, :, 1:-1], path[:, band].reshape(n, h, p)[:, :, 1:-1]


def _walk_back(dist: Tensor, settled: Tensor, src: int, tgt: int, offsets: list[int], max_cells: int) -> Tensor:
    """Path masks (flat, framed layout) read from the target back to the source, all maps at once.

    Each step goes to the neighbour with the smallest (distance, settling sweep, offset order).
    Along such steps the pair (distance, sweep) strictly decreases: a neighbour at equal distance
    (a zero-cost cell) held that distance one sweep before the cell itself did. So the walk is a
    simple path and ends at the source, the only cell with no smaller neighbour. The cell itself
    is a candidate too (offset 0): it never wins elsewhere, and at the source (distance minimal,
    settled in sweep 0) it always wins, so the walk stays there without a per-map test.
    """
    n = dist.shape[0]
    device = dist.device
    shifts = torch.tensor([0, *offsets], device=device)
    cur = torch.full((n,), tgt, dtype=torch.long, device=device)
    path = torch.zeros(dist.shape, dtype=torch.bool, device=device)
    path[:, tgt] = True
    for step in range(1, max_cells + 1):
        around = cur[:, None] + shifts
        d = dist.gather(1, around)
        ties = d == d.amin(1, keepdim=True)
        order = settled.gather(1, around).masked_fill_(~ties, torch.inf)
        cur = around.gather(1, order.argmin(1, keepdim=True)).squeeze(1)
        path.scatter_(1, cur[:, None], True)
        if step % _CHECK_EVERY == 0 and bool((cur == src).all()):
            return path
    if not bool((cur == src).all()):
        raise RuntimeError("GridShortestPath: the backward walk did not reach the source (please report this)")
    return path
