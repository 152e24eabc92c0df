"""The code of docs/scaling-out.md runs: the DDP script (single process) and the LocalCluster example,
with the values the page states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.forkserver import start_forkserver
from tests.markdown import run_blocks

dask = pytest.importorskip("dask")
pytest.importorskip("distributed")


def _picks_of_the_first_four(linear: torch.nn.Linear) -> float:
    """Share of the noise-free top-4 items of fixed inputs that are among the first four (chance: 4/32)."""
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return (linear(x).topk(4).indices < 4).float().mean().item()


@pytest.mark.timeout(90)
def test_scaling_out_page_runs_and_its_values_are_the_pages():
    seen = {}

    def after(i, ns):
        if i == 0:  # the DDP script, before the dask block rebinds `layer`, `z` and `theta`
            seen.update(layer=ns["layer"], model=ns["model"])

    # The page's LocalCluster forks its workers from the warm forkserver (faster on 2 cores).
    start_forkserver()
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        ns = run_blocks("docs/scaling-out.md", after)
    # DDP script: the fast controller moved α from its initial 1.0 (down, to about 0.85) and the moving
    # count ended near the target c = 1 (changed entries per entry of the top-4 solution, over the
    # active pairs): a controller that never ran, or diverged, fails here. The 30 steps moved the
    # model towards the first four items.
    layer = seen["layer"]
    assert layer.initial_alpha == 1.0 and 0.5 < layer.alpha.item() < 0.99
    assert abs(layer.nnz_ema.item() - layer.target_nnz) < 0.2
    torch.manual_seed(0)
    untrained = torch.nn.Linear(16, 32)  # the script's initial weights (same seed, first module)
    assert _picks_of_the_first_four(seen["model"][0]) > _picks_of_the_first_four(untrained) + 0.05
    # dask block: the cluster's solutions are the local ones (asserted on the page), and the AIMLE
    # layer's perturbed solutions are feasible 0/1 knapsack fillings with a finite gradient.
    z, theta, A, b = ns["z"].detach().numpy(), ns["theta"], ns["A"], ns["b"]
    assert z.shape == (8, 20) and set(np.unique(z)) <= {0.0, 1.0}
    assert (z @ A.T <= b + 1e-9).all()
    assert theta.grad.shape == (8, 20) and torch.isfinite(theta.grad).all()
