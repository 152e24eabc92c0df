"""PNG figures for a Warcraft run: maps with true and predicted paths, cost maps, learning curves."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from examples.warcraft.terrain import CELL_PIXELS

__all__ = ["plot_paths", "plot_costs", "plot_learning_curves"]


def _ordered_cells(mask: np.ndarray) -> np.ndarray:
    """Cells of a path mask in walking order from (0, 0) (breadth-first), as ``[n, 2]`` (row, col)."""
    k = mask.shape[0]
    if not mask[0, 0]:
        return np.argwhere(mask)
    seen, order, queue = {(0, 0)}, [], deque([(0, 0)])
    while queue:
        r, c = queue.popleft()
        order.append((r, c))
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                nr, nc = r + dr, c + dc
                if 0 <= nr < k and 0 <= nc < k and mask[nr, nc] and (nr, nc) not in seen:
                    seen.add((nr, nc))
                    queue.append((nr, nc))
    return np.array(order)


def _draw_path(ax, mask: np.ndarray, **style) -> None:
    cells = _ordered_cells(mask) * CELL_PIXELS + (CELL_PIXELS - 1) / 2
    ax.plot(cells[:, 1], cells[:, 0], **style)


def plot_paths(
    images: np.ndarray,
    true_paths: np.ndarray,
    pred_paths: np.ndarray,
    optimal: np.ndarray,
    out: str | Path,
    columns: int = 4,
    rows: int = 2,
) -> Path:
    """Maps with the label path (white) and the predicted path (red, dashed) drawn over them."""
    n = min(len(images), columns * rows)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], interpolation="nearest")
        _draw_path(ax, true_paths[i] > 0, color="white", lw=3, alpha=0.9, marker="o", ms=3)
        _draw_path(ax, pred_paths[i] > 0, color="red", lw=1.5, ls="--", marker="x", ms=4)
        ax.set_title("optimal" if optimal[i] else "not optimal", fontsize=9, color="black" if optimal[i] else "red")
    fig.suptitle("label path (white) and predicted path (red)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def plot_costs(images: np.ndarray, true_costs: np.ndarray, pred_costs: np.ndarray, out: str | Path, n: int = 4) -> Path:
    """Per map: the image, the true cell costs and the network's predicted costs."""
    n = min(n, len(images))
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i], interpolation="nearest")
        im = axes[i, 1].imshow(true_costs[i], cmap="viridis", vmin=0)
        fig.colorbar(im, ax=axes[i, 1], fraction=0.046)
        im = axes[i, 2].imshow(pred_costs[i], cmap="viridis", vmin=0)
        fig.colorbar(im, ax=axes[i, 2], fraction=0.046)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], ("map", "true costs", "predicted costs")):
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def plot_learning_curves(history: list[dict], out: str | Path, title: str = "") -> Path:
    """Training loss and validation accuracies per epoch, from the run's JSON-lines log."""
    if not history:
        raise ValueError("plot_learning_curves: the log is empty; train at least one epoch")
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("train Hamming loss")
    for key, label in (("val_optimal_cost", "optimal-cost acc."), ("val_perfect_match", "perfect match")):
        right.plot(epochs, [100 * h[key] for h in history], marker="o", label=label)
    right.set_xlabel("epoch")
    right.set_ylabel("validation (%)")
    right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)
    return out
