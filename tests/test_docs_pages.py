"""The documentation's code runs: getting started and the custom-solvers tutorial."""

from __future__ import annotations

import pytest
import torch

from tests.markdown import python_blocks, run_blocks
from tests.test_solvers_grid import is_simple_path

pytestmark = pytest.mark.usefixtures("clean_registry")


def _finite_difference_rows(grad: torch.Tensor) -> bool:
    """Each row of a finite-difference gradient of a k-hot solver is ``(z₊ − z₋)·s`` with z₊, z₋ both k-hot:
    its non-zero entries share one magnitude s, as many positive as negative."""
    for row in grad.reshape(-1, grad.shape[-1]):
        values = row[row != 0]
        if not len(values):
            continue
        if not torch.allclose(values.abs(), values.abs()[0]) or (values > 0).sum() * 2 != len(values):
            return False
    return True


def test_getting_started_runs_and_its_values_are_the_pages():
    seen = {}

    def after(i, ns):
        seen[i] = {key: ns[key].detach().clone() for key in ("z",) if key in ns}
        if i == 0:  # one AIMLE backward on 3-hot outputs
            seen[i]["grad"] = ns["theta"].grad.clone()

    ns = run_blocks("docs/getting-started.md", after)
    # Block 1: "[8, 10], three ones per row", and a finite-difference gradient that is not zero.
    z, grad = seen[0]["z"], seen[0]["grad"]
    assert z.shape == (8, 10) and set(z.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(z.sum(-1), torch.full((8,), 3.0))
    assert (grad != 0).any() and _finite_difference_rows(grad)
    # Block 2: "[10, 8, 10]": ten one-hot samples of each of the 8 instances.
    z = seen[1]["z"]
    assert z.shape == (10, 8, 10) and set(z.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(z.sum(-1), torch.ones(10, 8))
    # Block 3: "0/1 mask from (0, 0) to (11, 11)": each one a simple corner-to-corner path.
    path = ns["path"].detach().numpy()
    assert path.shape == (4, 12, 12)
    assert all(is_simple_path(p, (0, 0), (11, 11), 8) for p in path)


def test_custom_solvers_tutorial_runs():
    assert len(python_blocks("docs/tutorials/custom-solvers.md")) >= 5
    ns = run_blocks("docs/tutorials/custom-solvers.md")
    torch.testing.assert_close(ns["z_numpy"], ns["z_torch"])
    assert ns["final_loss"] < 0.5 * ns["first_loss"]


def test_guarantees_page_runs():
    ns = run_blocks("docs/guarantees.md")
    assert "did not finish within timeout=0.2 s" in ns["message"]
