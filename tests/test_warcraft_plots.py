"""Warcraft learning-curve figures: one distinct colour and one legend entry for every method."""

from __future__ import annotations

import matplotlib
import pytest

from examples.warcraft import plots


@pytest.mark.parametrize("n", [1, 10, 11, 20])
def test_every_method_gets_its_own_colour(n):
    colours = plots.method_colours(n)
    assert len(colours) == n
    assert len({matplotlib.colors.to_hex(c) for c in colours}) == n


def test_past_twenty_methods_the_colours_repeat():
    assert plots.method_colours(21)[20] == plots.method_colours(21)[0]


def test_a_figure_of_eleven_methods_shows_all_eleven(tmp_path, monkeypatch):
    """Zipping the labels with the 10-colour cycle once dropped the eleventh (SPO+) without a word."""
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_optimal_cost": 0.5} for e in (1, 2)]
    runs = {f"method {i}": [history] for i in range(11)}
    seen = {}

    def capture(fig, out, dpi):
        seen["labels"] = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
        return out

    monkeypatch.setattr(plots, "save_figure", capture)
    plots.plot_runs(runs, tmp_path / "curves.png")
    assert seen["labels"] == list(runs)
