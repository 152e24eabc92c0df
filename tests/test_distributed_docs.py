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
    assert ns["layer"].alpha.item() >= 0
