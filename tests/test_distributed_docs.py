"""The code of docs/scaling-out.md runs: the DDP script (single process) and the LocalCluster example."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from tests.markdown import run_blocks
from tests.test_distributed_ddp import FORKSERVER_PRELOAD

dask = pytest.importorskip("dask")
pytest.importorskip("distributed")


@pytest.mark.timeout(90)
def test_scaling_out_page_runs():
    # The page's LocalCluster forks its workers from the shared, preloaded forkserver (faster on 2 cores).
    mp.set_forkserver_preload(FORKSERVER_PRELOAD)
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        ns = run_blocks("docs/scaling-out.md")
    assert ns["z"].shape == (32, 10) and ns["theta"].grad.shape == (32, 10)
    assert ns["layer"].alpha.item() >= 0
