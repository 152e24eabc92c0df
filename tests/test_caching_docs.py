"""The caching page and the PyEPO tutorial run (their code blocks are executed here)."""

from __future__ import annotations

import pytest
import torch

from tests.markdown import python_blocks, run_blocks

pytestmark = pytest.mark.timeout(300)


def test_caching_page_runs():
    ns = run_blocks("docs/caching.md")
    assert ns["fast"].pool_calls > ns["fast"].solver_calls >= 1
    assert ns["theta_hat"].grad is not None and torch.isfinite(ns["theta_hat"].grad).all()


def test_pyepo_tutorial_runs_and_the_bridge_reproduces_pyepo_spo_plus():
    pytest.importorskip("pyepo", reason="the PyEPO tutorial needs pyepo (pip install difftools[pyepo])")
    assert len(python_blocks("docs/tutorials/pyepo.md")) >= 4
    ns = run_blocks("docs/tutorials/pyepo.md")
    regrets = ns["regrets"]
    assert abs(regrets["SPO+ (difftools, bridge)"] - regrets["SPO+ (PyEPO)"]) < 1e-6
    assert set(regrets) >= {"AIMLE", "AIMLE, cached (solve_ratio 0.05)", "NCE, cached (solve_ratio 0.05)"}
    cache = ns["cached_solver"]
    assert cache.solver_calls < 0.2 * (cache.solver_calls + cache.pool_calls)
