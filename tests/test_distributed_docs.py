"""The code of docs/scaling-out.md runs: the DDP script (single process) and the LocalCluster example."""

from __future__ import annotations

import pytest

from tests.forkserver import start_forkserver
from tests.markdown import run_blocks

dask = pytest.importorskip("dask")
pytest.importorskip("distributed")


@pytest.mark.timeout(90)
def test_scaling_out_page_runs():
    # The page's LocalCluster forks its workers from the warm forkserver (faster on 2 cores).
    start_forkserver()
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        ns = run_blocks("docs/scaling-out.md")
    assert ns["z"].shape == (8, 20) and ns["theta"].grad.shape == (8, 20)
    # The fast controller adapted α from its initial 1.0 towards the target count (c = 1 non-zero entry per
    # example), and the moving count ended near c: a controller that never ran, or diverged, fails here.
    layer = ns["layer"]
    assert layer.alpha.item() != layer.initial_alpha and 0 < layer.alpha.item() < 1.0
    assert abs(layer.nnz_ema.item() - layer.target_nnz) < 0.5
