"""Plots and printed summaries of the synthetic experiments (matplotlib PNGs, Markdown tables)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from examples.common import Row, band_plot, save_figure, subplots, summarise

__all__ = ["plot_fig1", "plot_fig3", "plot_fig4", "plot_controller", "series_label", "table"]


# Reference lines get fixed colours, away from the first colours the swept curves use.
_REFERENCE_COLOURS = {"STE": "C3", "SFE": "C4", "AIMLE (forward)": "C5", "AIMLE (central)": "C6",
                      "AIMLE (forward, fast)": "C8", "AIMLE (central, fast)": "C9"}


def _hline(ax, rows: Sequence[Row], method: str, value: str, label: str) -> None:
    stats = summarise([r for r in rows if r["method"] == method], ("method",), value)
    if not stats:
        return
    mean, se, _ = stats[(method,)]
    colour = _REFERENCE_COLOURS[method]
    ax.axhline(mean, linestyle="-." if "fast" in method else "--", color=colour, label=label)
    ax.axhspan(mean - se, mean + se, color=colour, alpha=0.15)


def plot_fig1(rows: Sequence[Row], path: Path, samples: int, reference_samples: int) -> Path:
    """Cosine and sparsity of IMLE against λ, with STE and SFE (more samples) as references."""
    sweep = [r for r in rows if r["method"].startswith("IMLE")]
    ref = [r for r in rows if not r["method"].startswith("IMLE")]
    fig, (top, bottom) = subplots(2, 1, figsize=(7, 7), sharex=True)
    band_plot(top, sweep, x="lam", y="cosine", series="method", label=lambda m: f"{m}, S={samples}")
    for method in ("STE", "SFE"):
        _hline(top, ref, method, "cosine", f"{method}, S={reference_samples}")
    band_plot(bottom, sweep, x="lam", y="sparsity", series="method", label=lambda m: f"{m}, S={samples}")
    top.set_ylabel("cosine similarity to the true gradient")
    bottom.set_ylabel("sparsity of the estimate (% zeros)")
    bottom.set_xlabel("λ")
    for ax in (top, bottom):
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    top.set_title(f"Fig. 1: IMLE bias/sparsity trade-off (n={rows[0]['n']})")
    return save_figure(fig, path)


def plot_fig3(rows: Sequence[Row], path: Path) -> Path:
    """Cosine similarity against S, one panel per n."""
    ns = sorted({r["n"] for r in rows})
    cols = min(2, len(ns))
    nrows = -(-len(ns) // cols)
    # The legend sits right of the top row, outside every panel: inside one it hid that panel's bands.
    fig, axes = subplots(nrows, cols, figsize=(6.5 * cols + 2.6, 4.8 * nrows), squeeze=False)
    for ax in axes.flat[len(ns):]:
        ax.set_visible(False)
    for ax, n in zip(axes.flat, ns):
        sub = [dict(r, series=series_label(r)) for r in rows if r["n"] == n]
        band_plot(ax, sub, x="samples", y="cosine", series="series", style=_fig3_style)
        ax.set_xscale("log")
        ax.set_xlabel("samples S")
        ax.set_ylabel("cosine similarity to the true gradient")
        ax.set_title(f"n = {n}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return save_figure(fig, path)


def plot_fig4(rows: Sequence[Row], path: Path, samples: int) -> Path:
    """Cosine similarity of IMLE against λ (linear axis), with AIMLE, STE and SFE as lines."""
    sweep = [r for r in rows if r["method"].startswith("IMLE")]
    ref = [r for r in rows if not r["method"].startswith("IMLE")]
    fig, ax = subplots(figsize=(7, 4.5))
    band_plot(ax, sweep, x="lam", y="cosine", series="method")
    for method in _REFERENCE_COLOURS:
        _hline(ax, ref, method, "cosine", method)
    ax.set_xlabel("λ (IMLE)")
    ax.set_ylabel("cosine similarity to the true gradient")
    ax.set_title(f"Fig. 4: S = {samples}, n = {rows[0]['n']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_controller(rows: Sequence[Row], trace: Sequence[Row], path: Path) -> Path:
    """Cosine against warm-up steps per S, and the mean α trajectory, for both controllers."""
    samples_grid = sorted({r["samples"] for r in rows})
    fig, axes = subplots(1, len(samples_grid) + 1, figsize=(5 * (len(samples_grid) + 1), 4.2), squeeze=False)
    for ax, samples in zip(axes[0], samples_grid):
        sub = [r for r in rows if r["samples"] == samples]
        band_plot(ax, sub, x="step", y="cosine", series="controller", label=lambda c: f"controller={c!r}")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("warm-up steps")
        ax.set_ylabel("cosine similarity to the true gradient")
        ax.set_title(f"AIMLE (central), S = {samples}, n = {rows[0]['n']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[0][-1]
    for controller in ("paper", "fast"):
        for samples in samples_grid:
            pts = [(r["step"], r["alpha"]) for r in trace if r["controller"] == controller and r["samples"] == samples]
            ax.plot(*zip(*pts), label=f"{controller}, S={samples}")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("step")
    ax.set_ylabel("α (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _fig3_style(name: str) -> dict:
    # AIMLE bold, IMLE thin and dashed, so the adaptive estimator stands out of the λ grid.
    if name.startswith("AIMLE"):
        return {"linewidth": 2.5}
    if name.startswith("IMLE"):
        return {"linewidth": 1.0, "linestyle": "--" if "forward" in name else ":"}
    return {}


def series_label(row: Row) -> str:
    """The label a row gets in Fig. 3 (IMLE rows carry their λ)."""
    return f"{row['method'][:-1]}, λ={row['lam']:g})" if row["method"].startswith("IMLE") else row["method"]


def table(rows: Sequence[Row], index: str, columns: str, value: str, fmt: str = "{:.3f}") -> str:
    """A Markdown table of mean ± standard error of ``value``, rows by ``index``, columns by ``columns``."""
    stats = summarise(rows, (index, columns), value)
    idx = list(dict.fromkeys(r[index] for r in rows))
    cols = sorted({r[columns] for r in rows}, key=lambda c: (isinstance(c, str), c))
    lines = [f"| {index} | " + " | ".join(f"{columns}={c}" for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for i in idx:
        cells = []
        name = f"{i:g}" if isinstance(i, float) else i
        for c in cols:
            m = stats.get((i, c))
            cells.append("" if m is None else f"{fmt.format(m[0])} ± {fmt.format(m[1])}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
