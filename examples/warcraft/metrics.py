"""Warcraft evaluation metrics on batches of 0/1 path masks ``[N, K, K]`` (torch, any device).

* perfect match -- the predicted mask equals the label exactly;
* optimal-cost accuracy -- the prediction is a valid path and its cost under the TRUE weights is
  within 1e-4 (relative) of the optimum; what the ICLR'20 and I-MLE papers call "accuracy", and
  the right headline when shortest paths are not unique;
* valid-path rate -- the mask is one 8-connected chain of cells from (0, 0) to (K-1, K-1) with no
  superfluous cell (formally: it contains both corners, and its cell count is one more than the
  number of 8-neighbour hops between the corners inside the mask);
* normalised regret -- (cost(pred) - cost(opt)) / cost(opt), costs summed over ALL cells (the
  original code summed over one axis only; that bug is not copied). An invalid mask is still
  costed as the sum of its cells, so its regret may be negative (e.g. an empty mask);
* Hamming accuracy -- the fraction of cells where prediction and label agree.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "path_cost",
    "perfect_match",
    "valid_path",
    "optimal_cost",
    "normalised_regret",
    "hamming_accuracy",
    "warcraft_metrics",
    "METRIC_NAMES",
]

RELATIVE_TOLERANCE = 1e-4
METRIC_NAMES = ("perfect_match", "optimal_cost", "valid_path", "regret", "hamming_accuracy")


def _check(name: str, *masks: Tensor) -> None:
    shape = masks[0].shape
    for m in masks:
        if m.dim() != 3 or m.shape != shape:
            raise ValueError(
                f"{name}: expected tensors of the same shape [N, K, K], got {[tuple(x.shape) for x in masks]}"
            )


def path_cost(mask: Tensor, weights: Tensor) -> Tensor:
    """``[N]`` cost of each mask: the sum of the weights of all its cells (float64)."""
    _check("path_cost", mask, weights)
    return (mask.double() * weights.double()).sum(dim=(-2, -1))


def perfect_match(pred: Tensor, label: Tensor) -> Tensor:
    """``[N]`` bool: the predicted mask equals the label cell for cell."""
    _check("perfect_match", pred, label)
    return (pred.round() == label.round()).flatten(1).all(dim=1)


def valid_path(pred: Tensor) -> Tensor:
    """``[N]`` bool: the mask is a corner-to-corner 8-connected chain without superfluous cells.

    Breadth-first search from (0, 0) inside the mask, all maps at once, by repeated 3×3 dilation.
    """
    if pred.dim() != 3:
        raise ValueError(f"valid_path: expected a [N, K, K] mask, got shape {tuple(pred.shape)}")
    mask = pred.round() > 0
    cells = mask.flatten(1).sum(1)
    reached = torch.zeros_like(mask)
    reached[:, 0, 0] = mask[:, 0, 0]
    hops = torch.where(reached[:, -1, -1], 0, -1)
    # BFS depth is below the number of cells of the mask, so this loop always ends.
    for step in range(1, int(cells.max()) if len(cells) else 0):
        grown = (F.max_pool2d(reached[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0) & mask
        hops = torch.where(grown[:, -1, -1] & (hops < 0), step, hops)
        if torch.equal(grown, reached):
            break
        reached = grown
    return mask[:, 0, 0] & mask[:, -1, -1] & (hops >= 0) & (cells == hops + 1)


def optimal_cost(pred: Tensor, label: Tensor, weights: Tensor, rtol: float = RELATIVE_TOLERANCE) -> Tensor:
    """``[N]`` bool: valid path whose true cost is within ``rtol`` (relative) of the label's cost."""
    _check("optimal_cost", pred, label, weights)
    best = path_cost(label, weights)
    return valid_path(pred) & ((path_cost(pred, weights) - best).abs() <= rtol * best)


def normalised_regret(pred: Tensor, label: Tensor, weights: Tensor) -> Tensor:
    """``[N]`` (cost(pred) − cost(opt)) / cost(opt), summing the true weights over all cells."""
    _check("normalised_regret", pred, label, weights)
    best = path_cost(label, weights)
    return (path_cost(pred, weights) - best) / best


def hamming_accuracy(pred: Tensor, label: Tensor) -> Tensor:
    """``[N]`` fraction of cells on which prediction and label agree."""
    _check("hamming_accuracy", pred, label)
    return (pred.round() == label.round()).flatten(1).double().mean(1)


def warcraft_metrics(pred: Tensor, label: Tensor, weights: Tensor) -> dict[str, float]:
    """All metrics averaged over the batch, as plain floats (accuracies in [0, 1])."""
    return {
        "perfect_match": perfect_match(pred, label).double().mean().item(),
        "optimal_cost": optimal_cost(pred, label, weights).double().mean().item(),
        "valid_path": valid_path(pred).double().mean().item(),
        "regret": normalised_regret(pred, label, weights).mean().item(),
        "hamming_accuracy": hamming_accuracy(pred, label).mean().item(),
    }
