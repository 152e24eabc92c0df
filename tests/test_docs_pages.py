"""The documentation's code runs: getting started and the custom-solvers tutorial."""

from __future__ import annotations

import pytest
import torch

from tests.markdown import python_blocks, run_blocks

pytestmark = pytest.mark.usefixtures("clean_registry")


def test_getting_started_runs():
    ns = run_blocks("docs/getting-started.md")
    assert ns["theta"].grad is not None
    assert ns["path"].shape == (4, 12, 12)


def test_custom_solvers_tutorial_runs():
    assert len(python_blocks("docs/tutorials/custom-solvers.md")) >= 5
    ns = run_blocks("docs/tutorials/custom-solvers.md")
    torch.testing.assert_close(ns["z_numpy"], ns["z_torch"])
    assert ns["final_loss"] < 0.5 * ns["first_loss"]


def test_guarantees_page_runs():
    ns = run_blocks("docs/guarantees.md")
    assert "did not finish within timeout=0.2 s" in ns["message"]
