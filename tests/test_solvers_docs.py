"""The solver documentation runs: the ILP-layer tutorial trains (its code blocks are executed here)."""

from __future__ import annotations

import pytest

from tests.markdown import python_blocks, run_blocks

pytestmark = pytest.mark.timeout(180)


def test_ilp_layer_tutorial_trains_through_aimle():
    namespace = run_blocks("docs/tutorials/ilp-layer.md")
    # The page asserts a tenfold drop of the regret itself; check it really trained and ran every block.
    assert namespace["regret_after"] <= namespace["regret_before"] / 10
    # The controller ran: α moved from the page's initial 1.0, and the moving count is near its target.
    layer = namespace["layer"]
    assert layer.initial_alpha == 1.0 and layer.alpha.item() != 1.0
    assert abs(layer.nnz_ema.item() - layer.target_nnz) < 0.25 * layer.target_nnz
    assert namespace["bounded"].fn.on_time_limit == "incumbent"


def test_solvers_page_examples_run():
    assert python_blocks("docs/solvers.md"), "the Solvers page should show runnable examples"
    run_blocks("docs/solvers.md")
