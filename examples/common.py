"""Plumbing shared by the paper examples: CSV output, mean ± standard-error summaries and band plots."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

Row = dict[str, Any]


def write_csv(rows: Sequence[Row], path: str | Path) -> Path:
    """Write rows (dicts; the union of their keys is the header, in first-seen order) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: str | Path) -> list[Row]:
    """Rows of a CSV written by :func:`write_csv`, numbers parsed back to int/float."""

    def parse(value: str) -> Any:
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    with Path(path).open(newline="", encoding="utf-8") as fh:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def mean_se(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, standard error of the mean (0 for one value) and count."""
    xs = [float(v) for v in values]
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return mean, 0.0, n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var / n), n


def summarise(rows: Iterable[Row], keys: Sequence[str], value: str) -> dict[tuple, tuple[float, float, int]]:
    """Group rows by ``keys`` and return ``{key tuple: mean_se(row[value])}``."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row[value])
    return {k: mean_se(v) for k, v in groups.items()}


def band_plot(
    ax: Any,
    rows: Sequence[Row],
    *,
    x: str,
    y: str,
    series: str,
    label: Callable[[Any], str] = str,
    order: Sequence[Any] | None = None,
    style: Callable[[Any], dict] | None = None,
) -> None:
    """One line per value of ``series``: mean of ``y`` against ``x`` with a ± 1 standard-error band.

    ``style(name)`` may return extra ``Axes.plot`` keyword arguments for a series.
    """
    stats = summarise(rows, (series, x), y)
    names = order if order is not None else list(dict.fromkeys(r[series] for r in rows))
    for name in names:
        points = sorted((k[1], v) for k, v in stats.items() if k[0] == name)
        if not points:
            continue
        xs = [p[0] for p in points]
        means = [p[1][0] for p in points]
        ses = [p[1][1] for p in points]
        kwargs = {"marker": "o", "markersize": 3, **(style(name) if style else {})}
        (line,) = ax.plot(xs, means, label=label(name), **kwargs)
        ax.fill_between(xs, [m - s for m, s in zip(means, ses)], [m + s for m, s in zip(means, ses)],
                        color=line.get_color(), alpha=0.2)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG (creating the folder) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
