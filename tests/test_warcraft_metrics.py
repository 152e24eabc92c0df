"""Warcraft metrics on hand-computed cases and against a networkx definition of a valid path."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import torch

from examples.warcraft.labelling import dijkstra
from examples.warcraft.metrics import (
    hamming_accuracy,
    normalised_regret,
    optimal_cost,
    path_cost,
    perfect_match,
    valid_path,
    warcraft_metrics,
)

# Two optimal paths of cost 4 (upper and lower detour); the diagonal costs 11.
WEIGHTS = torch.tensor([[1.0, 1.0, 9.0], [1.0, 9.0, 1.0], [9.0, 1.0, 1.0]])
UPPER = torch.tensor([[1, 1, 0], [0, 0, 1], [0, 0, 1]])
LOWER = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 1]])
DIAGONAL = torch.eye(3, dtype=torch.long)
CORNERS_ONLY = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 0, 1]])
UPPER_PLUS_CENTRE = UPPER | torch.tensor([[0, 0, 0], [0, 1, 0], [0, 0, 0]])


def _batch(*masks):
    return torch.stack(masks).float()


def test_hand_computed_cases():
    pred = _batch(UPPER, LOWER, DIAGONAL, CORNERS_ONLY, UPPER_PLUS_CENTRE)
    label = _batch(*[UPPER] * 5)
    weights = WEIGHTS.expand(5, 3, 3)
    assert path_cost(pred, weights).tolist() == [4.0, 4.0, 11.0, 2.0, 13.0]
    # The non-unique optimum LOWER counts for optimal cost but not for perfect match.
    assert perfect_match(pred, label).tolist() == [True, False, False, False, False]
    assert optimal_cost(pred, label, weights).tolist() == [True, True, False, False, False]
    assert valid_path(pred).tolist() == [True, True, True, False, False]
    assert normalised_regret(pred, label, weights).tolist() == pytest.approx([0.0, 0.0, 7 / 4, -2 / 4, 9 / 4])
    assert hamming_accuracy(pred, label).tolist() == pytest.approx([1.0, 5 / 9, 6 / 9, 7 / 9, 8 / 9])
    summary = warcraft_metrics(pred, label, weights)
    assert summary == pytest.approx(
        {
            "perfect_match": 1 / 5,
            "optimal_cost": 2 / 5,
            "valid_path": 3 / 5,
            "regret": (7 / 4 - 2 / 4 + 9 / 4) / 5,
            "hamming_accuracy": (1 + 5 / 9 + 6 / 9 + 7 / 9 + 8 / 9) / 5,
        }
    )


def test_optimal_cost_uses_a_relative_tolerance_of_1e_4():
    weights = WEIGHTS.expand(2, 3, 3).clone()
    label = _batch(UPPER, UPPER)
    weights[0, 2, 1] += 3e-4  # LOWER costs 4.0003: relative gap 7.5e-5 < 1e-4
    weights[1, 2, 1] += 5e-4  # 4.0005: relative gap 1.25e-4 > 1e-4
    assert optimal_cost(_batch(LOWER, LOWER), label, weights).tolist() == [True, False]


def _valid_by_networkx(mask: np.ndarray) -> bool:
    """A mask is valid iff it holds both corners and one hop-shortest 8-connected chain uses all its cells."""
    k = mask.shape[0]
    if not (mask[0, 0] and mask[-1, -1]):
        return False
    cells = [tuple(c) for c in np.argwhere(mask)]
    graph = nx.Graph()
    graph.add_nodes_from(cells)
    graph.add_edges_from(
        (a, b) for a, b in itertools.combinations(cells, 2) if max(abs(a[0] - b[0]), abs(a[1] - b[1])) == 1
    )
    if not nx.has_path(graph, (0, 0), (k - 1, k - 1)):
        return False
    return nx.shortest_path_length(graph, (0, 0), (k - 1, k - 1)) == len(cells) - 1


def test_valid_path_matches_networkx_on_every_3x3_mask_and_perturbed_5x5_paths():
    every = torch.tensor(list(itertools.product((0, 1), repeat=9))).view(-1, 3, 3)
    rng = np.random.default_rng(0)
    # Shortest paths of random 5x5 costs (valid), then with one cell flipped (then never valid).
    paths = np.stack([dijkstra(rng.random((5, 5)) + 0.1).path for _ in range(100)]).astype(np.int64)
    flipped = paths.copy()
    flipped.reshape(100, -1)[np.arange(100), rng.integers(1, 24, size=100)] ^= 1
    counts = []
    for masks in (every, torch.from_numpy(paths), torch.from_numpy(flipped)):
        expected = [_valid_by_networkx(m.numpy()) for m in masks]
        assert valid_path(masks).tolist() == expected
        counts.append(sum(expected))
    assert counts[0] > 0 and counts[1:] == [100, 0]


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same shape \[N, K, K\]"):
        perfect_match(torch.zeros(2, 3, 3), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"valid_path: expected a \[N, K, K\] mask"):
        valid_path(torch.zeros(3, 3))
