"""The four synthetic datasets of Chen et al. (2018, Sec. 5.1): Gaussian features, known relevant subsets.

X ∼ N(0, I₁₀); P(y = 1 | X) = 1 / (1 + exp(g(X))) with
  XOR:                g = X₁X₂                                       relevant {1, 2}
  orange skin:        g = Σ_{i≤4} X_i² − 4                           relevant {1, 2, 3, 4}
  nonlinear additive: g = −100 sin(0.2 X₁) + |X₂| + X₃ + exp(−X₄) − 2.4  relevant {1, 2, 3, 4}
  switch:             X₁₀ ∼ N(±3, 1) picks orange skin on X₁..X₄ (+3) or nonlinear additive on
                      X₅..X₈ (−3); relevant: those four and X₁₀ itself.
(1-based above; 0-based in the code.) The label is given as the pair of probabilities
(P(y=0|X), P(y=1|X)) — the model being explained is the Bayes classifier itself. The reference
code meant to move the additive features to X₅..X₈ for the switch data with an in-place numpy
swap that aliases; here the swap is done with copies, as the paper describes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DATASETS", "Dataset", "make_dataset"]

DIM = 10
# name -> k, the size of the explanation (the number of relevant features per instance).
DATASETS = {"xor": 2, "orange_skin": 4, "nonlinear_additive": 4, "switch": 5}


@dataclass(frozen=True)
class Dataset:
    """Features ``x [N, 10]``, label probabilities ``y [N, 2]`` and the 0/1 relevance mask ``[N, 10]``."""

    x: np.ndarray
    y: np.ndarray
    relevant: np.ndarray
    k: int


def _probabilities(logit: np.ndarray) -> np.ndarray:
    p1 = 1.0 / (1.0 + np.exp(logit))
    return np.stack([1.0 - p1, p1], axis=1)


def _orange(x: np.ndarray) -> np.ndarray:
    return np.sum(x[:, :4] ** 2, axis=1) - 4.0


def _additive(x: np.ndarray) -> np.ndarray:
    return -100 * np.sin(0.2 * x[:, 0]) + np.abs(x[:, 1]) + x[:, 2] + np.exp(-x[:, 3]) - 2.4


def make_dataset(name: str, n: int, seed: int) -> Dataset:
    """``n`` instances of dataset ``name`` (one of :data:`DATASETS`) from a seeded generator."""
    if name not in DATASETS:
        raise ValueError(f"make_dataset: unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    if n < 2:
        raise ValueError(f"make_dataset: n must be >= 2, got {n!r}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM))
    relevant = np.zeros((n, DIM))
    if name == "xor":
        logit = x[:, 0] * x[:, 1]
        relevant[:, :2] = 1
    elif name == "orange_skin":
        logit = _orange(x)
        relevant[:, :4] = 1
    elif name == "nonlinear_additive":
        logit = _additive(x)
        relevant[:, :4] = 1
    else:
        orange = rng.random(n) < 0.5
        x[:, -1] += np.where(orange, 3.0, -3.0)
        logit = np.where(orange, _orange(x), _additive(x))
        # The additive instances carry their signal in features 4..7: swap the two blocks.
        swapped = x[~orange].copy()
        swapped[:, :4], swapped[:, 4:8] = x[~orange][:, 4:8], x[~orange][:, :4]
        x[~orange] = swapped
        relevant[orange, :4] = 1
        relevant[~orange, 4:8] = 1
        relevant[:, -1] = 1
    return Dataset(x.astype(np.float32), _probabilities(logit).astype(np.float32), relevant.astype(np.float32),
                   DATASETS[name])
