"""The NRI ELBO pieces and the edge precision/recall protocol (per instance, summed / n as in NRI).

ELBO = −(Gaussian NLL + KL): the NLL of the predicted frames under a fixed variance (5e-5, no
constant term, summed over particles, frames and dims, divided by n), and the KL between
Gumbel(θ, 1) and the Gumbel(0, 1) prior summed over the 90 symmetric directed logits, divided by n.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["VARIANCE", "gaussian_nll", "gumbel_kl", "edge_metrics"]

VARIANCE = 5e-5


def gaussian_nll(prediction: Tensor, target: Tensor, variance: float = VARIANCE) -> Tensor:
    """Σ (prediction − target)² / (2 variance) / n per instance, for ``[B, n, T, d]`` inputs -> ``[B]``."""
    if prediction.shape != target.shape or prediction.dim() != 4:
        raise ValueError(
            f"gaussian_nll: prediction and target must both be [B, n, T, d], got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    return ((prediction - target) ** 2 / (2 * variance)).sum(dim=(1, 2, 3)) / target.shape[1]


def gumbel_kl(logits: Tensor, n: int) -> Tensor:
    """KL(Gumbel(θ, 1) ‖ Gumbel(0, 1)) = Σ (θ + e^{−θ} − 1) / n over the last dim -> ``[*]``."""
    return (logits + torch.exp(-logits) - 1.0).sum(dim=-1) / n


def edge_metrics(sample: Tensor, target: Tensor) -> dict[str, float]:
    """Edge precision and recall of 0/1 directed edges ``[B, 90]`` against the true ones.

    With one edge type the model cannot know whether z or 1 − z means "edge", so both are scored:
    precision tp / (tp + fp) and recall tp / (tp + fn) are averaged over instances for each, and the
    version with the higher mean precision is reported (``flipped`` says it was 1 − z; on an exact
    tie 1 − z is kept, as the original code's argmax over ``[1 − z, z]`` does). For two trees on the
    same vertices precision equals recall for z.
    """
    if sample.shape != target.shape or sample.dim() != 2:
        raise ValueError(
            f"edge_metrics: sample and target must both be [B, edges], got {tuple(sample.shape)} and "
            f"{tuple(target.shape)}"
        )
    target = target.to(torch.float64)
    scores = []
    for version in (1.0 - sample.to(torch.float64), sample.to(torch.float64)):
        tp = (version * target).sum(-1)
        predicted = version.sum(-1)
        actual = target.sum(-1)
        precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), 0.0).mean()
        recall = torch.where(actual > 0, tp / actual.clamp_min(1), 0.0).mean()
        scores.append((float(precision), float(recall)))
    best = 1 if scores[1][0] > scores[0][0] else 0
    return {"precision": scores[best][0], "recall": scores[best][1], "flipped": best == 0}
