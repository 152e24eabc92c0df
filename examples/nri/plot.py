"""PNG figures of an NRI run: test trajectories with true vs recovered tree edges, learning curves."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from examples.common import read_log, save_figure, subplots
from examples.nri.data import load_split
from examples.nri.train import load_model

__all__ = ["plot_trajectories", "plot_learning_curves"]


@torch.no_grad()
def plot_trajectories(
    checkpoint: str | Path, data_dir: str | Path, out: str | Path, count: int = 4, device: str = "cpu"
) -> Path:
    """The first ``count`` test samples: particle paths, true tree edges and the model's MAP tree."""
    model = load_model(checkpoint, device)
    split = load_split(data_dir, "test", model.config.timesteps, count).to(device)
    recovered = model.tree.solver(model.pair_logits(split.positions))
    rows, cols = torch.triu_indices(split.edges.shape[-1], split.edges.shape[-1], 1)
    fig, axes = subplots(1, len(split), figsize=(4 * len(split), 4), squeeze=False)
    for k, ax in enumerate(axes[0]):
        paths = split.positions[k].cpu()  # [n, T, 2]
        final = paths[:, -1]
        true_pairs = split.edges[k, rows, cols].cpu() > 0.5
        found_pairs = recovered[k].cpu() > 0.5
        for p in range(rows.numel()):
            i, j = int(rows[p]), int(cols[p])
            xs, ys = [final[i, 0], final[j, 0]], [final[i, 1], final[j, 1]]
            if true_pairs[p]:
                ax.plot(xs, ys, color="0.75", linewidth=5, zorder=1)
            if found_pairs[p]:
                ax.plot(xs, ys, color="tab:red" if not true_pairs[p] else "tab:green", linewidth=1.5, zorder=2)
        for i in range(paths.shape[0]):
            ax.plot(paths[i, :, 0], paths[i, :, 1], color="tab:blue", alpha=0.6, linewidth=1, zorder=3)
            ax.scatter(paths[i, -1, 0], paths[i, -1, 1], color="tab:blue", s=15, zorder=4)
        correct = int((true_pairs & found_pairs).sum())
        ax.set_title(f"test sample {k}: {correct}/9 edges recovered")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("paths (blue), true tree (grey), recovered MAP tree (green: correct, red: wrong)")
    return save_figure(fig, out, dpi=100)


def plot_learning_curves(log_path: str | Path, out: str | Path) -> Path:
    """Train and validation −ELBO (log scale) and validation edge precision against iterations."""
    records = read_log(log_path)
    if not records:
        raise ValueError(f"plot_learning_curves: {log_path} is missing or empty; train first")
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    fig, (left, right) = subplots(1, 2, figsize=(11, 4))
    # The ELBO is negative and spans an order of magnitude: −ELBO on a log axis, with ticks at
    # 1, 1.5, 2, 2.5, 3, 4, 5 and 7 per decade written out in full (a symlog axis showed a single "−10^4").
    left.plot([r["iteration"] for r in train], [-r["elbo"] for r in train], label="train (rolled out)")
    left.plot([r["iteration"] for r in valid], [-r["elbo"] for r in valid], "o-", label="valid (teacher forced)")
    left.set_xlabel("iteration")
    left.set_ylabel("−ELBO (lower is better)")
    left.set_yscale("log")
    left.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0)))
    left.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    left.yaxis.set_minor_formatter(NullFormatter())
    left.grid(True, which="major", axis="y", color="0.9")
    left.legend()
    right.plot([r["iteration"] for r in valid], [100 * r["precision"] for r in valid], "o-", color="tab:green")
    right.axhline(20, color="0.6", linestyle="--", label="random tree (~20%)")
    right.set_xlabel("iteration")
    right.set_ylabel("valid edge precision (%)")
    right.legend()
    return save_figure(fig, out, dpi=100)
