"""benchmarks/estimator_overhead.py's hand-written baselines compute what the library layer computes."""

from __future__ import annotations

import pytest
import torch

import difftools as dt
from benchmarks.estimator_overhead import HandWritten, LeanHandWritten, main


@pytest.mark.parametrize("baseline", [HandWritten, LeanHandWritten])
@pytest.mark.parametrize("samples", [1, 3])
@pytest.mark.parametrize("controller", ["fast", "paper"])
def test_baselines_give_the_library_gradient_and_alpha(baseline, samples, controller, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(8, 20, generator=gen)
    hand = baseline(4, samples, "cpu", controller)
    monkeypatch.setattr(hand, "noise", lambda t: torch.zeros(samples, *t.shape))  # the layer's noise=None
    layer = dt.AIMLE(
        dt.get_solver("topk", k=4), samples=samples, central=True, initial_alpha=0.5, controller=controller, noise=None
    )
    for _ in range(4):  # a few steps: α moves, and both must move it alike
        dy = torch.randn(samples, 8, 20, generator=gen) / samples
        leaf = theta.clone().requires_grad_()
        layer(leaf).backward(dy)
        expected = hand.step(theta, dy)
        torch.testing.assert_close(leaf.grad, expected, rtol=1e-5, atol=0.0)
        assert expected.abs().sum() > 0
        torch.testing.assert_close(layer.alpha, hand.alpha.reshape(()), rtol=1e-6, atol=0.0)


def test_quick_run_prints_every_column(capsys):
    rows = main(["--quick", "--rounds", "1", "--small-only"])
    assert [(r["B"], r["S"]) for r in rows] == [(64, 1), (256, 1), (256, 10)]
    assert all(r["lean_ms"] > 0 and r["lean_ratio"] > 0 for r in rows)
    assert "lean ratio" in capsys.readouterr().out
