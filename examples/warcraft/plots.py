"""PNG figures for a Warcraft run: maps with true and predicted paths, cost maps, learning curves."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.ticker import MaxNLocator

from examples.common import save_figure, subplots
from examples.warcraft.terrain import CELL_PIXELS

__all__ = ["plot_paths", "plot_costs", "plot_learning_curves", "plot_runs"]

DPI = 72


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
    fig, axes = subplots(
        rows, columns, figsize=(2.6 * columns, 3.0 * rows + 0.4), squeeze=False, layout="constrained"
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], interpolation="nearest")
        _draw_path(ax, true_paths[i] > 0, color="white", lw=3, alpha=0.9, marker="o", ms=3)
        _draw_path(ax, pred_paths[i] > 0, color="red", lw=1.5, ls="--", marker="x", ms=4)
        ax.set_title("optimal" if optimal[i] else "not optimal", fontsize=9, color="black" if optimal[i] else "red")
    fig.suptitle("label path (white) and predicted path (red)", fontsize=10)
    return save_figure(fig, out, dpi=DPI, tight_layout=False)  # constrained layout


def plot_costs(images: np.ndarray, true_costs: np.ndarray, pred_costs: np.ndarray, out: str | Path, n: int = 4) -> Path:
    """Per map: the image, the true cell costs and the predicted costs on the true costs' scale.

    A shortest path does not change when all costs are multiplied by a positive number, so the
    network learns costs only up to scale; each predicted map is shown multiplied by the factor
    that fits it best to the true costs (least squares), with one colour scale for both.
    """
    n = min(n, len(images))
    fig, axes = subplots(n, 3, figsize=(7.8, 2.5 * n + 0.3), squeeze=False, layout="constrained")
    for i in range(n):
        true, pred = np.asarray(true_costs[i], dtype=np.float64), np.asarray(pred_costs[i], dtype=np.float64)
        scale = float((pred * true).sum() / max((pred * pred).sum(), 1e-12))
        top = max(true.max(), (scale * pred).max())
        axes[i, 0].imshow(images[i], interpolation="nearest")
        axes[i, 1].imshow(true, cmap="viridis", vmin=0, vmax=top)
        im = axes[i, 2].imshow(scale * pred, cmap="viridis", vmin=0, vmax=top)
        fig.colorbar(im, ax=axes[i, 1:], fraction=0.046, label="cost")
        axes[i, 2].set_title(f"predicted × {scale:.3g}", fontsize=9)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("map", fontsize=10)
    axes[0, 1].set_title("true costs", fontsize=10)
    fig.suptitle("predicted costs rescaled to the true costs (costs are learned up to scale)", fontsize=10)
    return save_figure(fig, out, dpi=DPI, tight_layout=False)  # constrained layout


def _whole_epochs(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_learning_curves(history: list[dict], out: str | Path, title: str = "") -> Path:
    """Training loss and validation accuracies per epoch, from the run's JSON-lines log."""
    if not history:
        raise ValueError("plot_learning_curves: the log is empty; train at least one epoch")
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = subplots(1, 2, figsize=(9, 3.2))
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
        _whole_epochs(ax)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out, dpi=DPI)


def method_colours(n: int) -> list:
    """``n`` colours, one per method: the default cycle up to its 10, tab20's 20 beyond, repeated past 20.

    Zipping the labels with the 10-colour cycle dropped every method after the tenth from the figure.
    """
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    palette = cycle if n <= len(cycle) else [matplotlib.colormaps["tab20"](i) for i in range(20)]
    return [palette[i % len(palette)] for i in range(n)]


def plot_runs(runs: dict[str, list[list[dict]]], out: str | Path, title: str = "") -> Path:
    """Learning curves of several runs in one figure: one colour per method, one line per seed.

    ``runs`` maps a method label to the histories (``log.jsonl`` records) of its seeds.
    """
    if not runs:
        raise ValueError("plot_runs: no runs to plot")
    fig, (left, right) = subplots(1, 2, figsize=(13, 4))
    styles = ["-", "--", ":", "-."]
    for colour, (label, histories) in zip(method_colours(len(runs)), runs.items()):
        for i, history in enumerate(histories):
            epochs = [h["epoch"] for h in history]
            name = f"{label} ({len(histories)} seeds)" if i == 0 and len(histories) > 1 else label if i == 0 else None
            style = {"color": colour, "ls": styles[i % len(styles)], "lw": 1.4, "label": name}
            left.plot(epochs, [h["train_loss"] for h in history], **style)
            right.plot(epochs, [100 * h["val_optimal_cost"] for h in history], **style)
    left.set_ylabel("train loss (method's own)")
    left.set_yscale("log")
    right.set_ylabel("validation optimal-cost accuracy (%)")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        _whole_epochs(ax)
    right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # outside: curves end anywhere
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out, dpi=DPI)
