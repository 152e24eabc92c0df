"""One NRI training step without host synchronisation, eager or captured with ``torch.compile``.

A GPU runs this small model (10 vertices, batch 128) launch-bound: each ``.item()``, ``bool()`` or
``float()`` of a tensor makes the host wait for the device, and each eager op costs a launch. So
the step here never reads a tensor back (losses stay on the device until a log record), samples
its noise on the device from a device generator, and :class:`SpanningTreeNoCheck` drops the
solver's per-call finiteness check (a NaN still surfaces in the logged loss, which ``train``
checks at every record). ``compiled=True`` wraps the loss computation in ``torch.compile`` --
``mode="reduce-overhead"`` (CUDA graphs) on CUDA -- and uses the fused Adam kernel there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from difftools.solvers.spanning_tree import maximum_spanning_parents
from torch import Tensor, nn

__all__ = ["SpanningTreeNoCheck", "TrainStep"]


class SpanningTreeNoCheck:
    """Maximum spanning tree of the complete graph, as the ``"spanning_tree"`` solver, minus its NaN check.

    θ ``[*batch, n(n−1)/2]`` in ``torch.triu_indices(n, n, 1)`` order -> 0/1 edges, computed by
    the same batched Prim (:func:`difftools.solvers.spanning_tree.maximum_spanning_parents`, same ties),
    with no data-dependent branch and no read-back, so that it can run inside a captured graph.
    """

    sense = "max"
    event_dim = 1
    discrete = "binary"

    def __init__(self, n: int):
        self.n = n
        rows, cols = torch.triu_indices(n, n, 1)
        pair_index = torch.zeros((n, n), dtype=torch.long)
        pair_index[rows, cols] = torch.arange(rows.numel())
        pair_index[cols, rows] = torch.arange(rows.numel())
        self._rows, self._cols, self._pair_index = rows, cols, pair_index
        self._on: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}
        self._solve = self._tree

    def compile(self, backend: str | None = None) -> None:
        """Solve through ``torch.compile`` (fusing Prim's n − 1 rounds of small kernels), same trees."""
        self._solve = torch.compile(self._tree, **({} if backend is None else {"backend": backend}))

    def __repr__(self) -> str:
        return f"SpanningTreeNoCheck(n={self.n})"

    def _indices(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        if device not in self._on:  # one copy per device, not one transfer per call
            self._on[device] = (self._rows.to(device), self._cols.to(device), self._pair_index.to(device))
        return self._on[device]

    def __call__(self, theta: Tensor, /) -> Tensor:
        n, m = self.n, self.n * (self.n - 1) // 2
        if theta.shape[-1] != m:
            raise ValueError(f"SpanningTreeNoCheck: theta's last dim must be {m} (n = {n}), got {tuple(theta.shape)}")
        return self._solve(theta.detach(), *self._indices(theta.device))

    def _tree(self, theta: Tensor, rows: Tensor, cols: Tensor, pair_index: Tensor) -> Tensor:
        n, m = self.n, theta.shape[-1]
        flat = theta.reshape(-1, m)
        dense = flat.new_full((flat.shape[0], n, n), -torch.inf)
        dense[:, rows, cols] = flat
        dense[:, cols, rows] = flat
        parent = maximum_spanning_parents(dense)
        # A complete graph with finite weights is connected: every vertex but the root 0 has a parent.
        ids = pair_index[parent[:, 1:], torch.arange(1, n, device=theta.device)]
        z = torch.zeros_like(flat).scatter_(1, ids, 1.0)
        return z.reshape(theta.shape)


class TrainStep:
    """``step(x)`` -> the detached batch means ``[nll + kl, nll, kl]`` on the device, after one Adam update.

    ``loss_terms(x)`` must return a dict with per-instance ``"nll"`` and ``"kl"`` ``[B]``; the
    update minimises the mean of ``nll + kl_weight · kl`` (1: the negative ELBO).
    """

    def __init__(
        self,
        loss_terms: Callable[[Tensor], dict[str, Tensor]],
        parameters: list[nn.Parameter],
        lr: float,
        device: torch.device | str,
        compiled: bool = False,
        backend: str | None = None,
        kl_weight: float = 1.0,
    ):
        self.cuda = torch.device(device).type == "cuda"
        self.compiled = compiled

        def losses(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            terms = loss_terms(x)
            nll, kl = terms["nll"].mean(), terms["kl"].mean()
            kl_term = terms["kl"] if kl_weight == 1 else kl_weight * terms["kl"]
            objective = (terms["nll"] + kl_term).mean()
            return objective, nll, kl

        if compiled:
            options: dict = {"backend": backend} if backend is not None else {}
            if self.cuda and backend in (None, "inductor"):
                options["mode"] = "reduce-overhead"  # CUDA graphs: one replay instead of hundreds of launches
            self._losses = torch.compile(losses, **options)
        else:
            self._losses = losses
        # The fused kernel updates all parameters in a few launches; the eager default stays the
        # for-each implementation, whose numbers the earlier runs were made with.
        self.optimizer = torch.optim.Adam(parameters, lr=lr, fused=True if compiled and self.cuda else None)

    def __call__(self, x: Tensor) -> Tensor:
        if self.compiled and self.cuda:
            # A new step: CUDA-graph outputs of the previous one may be overwritten from here on.
            torch.compiler.cudagraph_mark_step_begin()
        objective, nll, kl = self._losses(x)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        self.optimizer.step()
        # A copy (stack): a CUDA graph's outputs live in memory that its next replay overwrites.
        return torch.stack((nll + kl, nll, kl)).detach()
