"""The Warcraft labelling Dijkstra (examples/warcraft/labelling.py): tie-break, uniqueness, errors, old path."""

from __future__ import annotations

import numpy as np
import pytest

from examples.warcraft.labelling import DijkstraResult, dijkstra


def test_reference_dijkstra_tie_break_and_unique_flag():
    costs = np.array([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]])
    result = dijkstra(costs)
    # (0,1) is popped before (1,0) (heap order), gives (1,2) the predecessor of the target first,
    # and (2,1) offers the same cost later, which the strict < keeps out.
    assert np.array_equal(result.path, [[1, 1, 0], [0, 0, 1], [0, 0, 1]])
    assert result.cost == 4.0 and result.unique is False
    diagonal = dijkstra(np.ones((3, 3)))
    assert np.array_equal(diagonal.path, np.eye(3)) and diagonal.unique is True
    # A single optimal path, so unique is True.
    corridor = dijkstra(np.array([[1.0, 1, 1], [9, 9, 1]]), source=(0, 0), target=(1, 2))
    assert np.array_equal(corridor.path, [[1, 1, 0], [0, 0, 1]]) and corridor.unique is True


def test_costs_include_both_end_cells_and_errors_name_the_argument():
    assert dijkstra(np.array([[2.0, 3.0]])).cost == 5.0
    assert dijkstra(np.array([[4.0]])) == (np.ones((1, 1), np.uint8), 4.0, True)
    with pytest.raises(ValueError, match="finite and non-negative"):
        dijkstra(np.array([[1.0, -1.0]]))
    with pytest.raises(ValueError, match=r"target \(3, 0\) lies outside the 2x2 grid"):
        dijkstra(np.ones((2, 2)), target=(3, 0))
    with pytest.raises(ValueError, match="neighbourhood must be 4 or 8"):
        dijkstra(np.ones((2, 2)), neighbourhood=6)


def test_the_old_import_path_warns_and_gives_the_same_objects():
    with pytest.warns(DeprecationWarning, match="import dijkstra from examples.warcraft.labelling"):
        from difftools.solvers.grid_shortest_path import dijkstra as old
    assert old is dijkstra
    with pytest.warns(DeprecationWarning, match="import DijkstraResult from examples.warcraft.labelling"):
        from difftools.solvers.grid_shortest_path import DijkstraResult as OldResult
    assert OldResult is DijkstraResult


def test_the_old_import_path_outside_a_checkout_says_where_the_labeller_went(tmp_path):
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "try:\n    from difftools.solvers.grid_shortest_path import dijkstra\n"
        "except ImportError as e:\n    print(e)\n"
    )
    # From another folder the repository's examples/ is not importable (as for an installed wheel).
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "difftools.solvers.grid_shortest_path.dijkstra moved to examples.warcraft.labelling" in out.stdout
    assert "run from the root of a checkout" in out.stdout
