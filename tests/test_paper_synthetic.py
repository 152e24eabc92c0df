"""Synthetic example: exact gradient against finite differences, SFE and estimator plumbing, tiny CLI runs."""

from __future__ import annotations

import pytest
import torch
from difftools.solvers.topk import argmax

import difftools as dt
from examples.common import read_csv
from examples.synthetic.__main__ import main
from examples.synthetic.task import (
    cosine,
    estimate_gradient,
    exact_gradient,
    expected_loss,
    make_problem,
    sfe_gradient,
    sparsity,
)
from tests.bad_input import cli_error


@pytest.mark.parametrize("n", [2, 5, 10])
def test_exact_gradient_matches_central_finite_differences(n):
    theta, b = (x.double() for x in make_problem(n, n))
    grad = exact_gradient(theta, b)
    h = 1e-6
    fd = torch.stack([
        (expected_loss(theta + h * e, b) - expected_loss(theta - h * e, b)) / (2 * h)
        for e in torch.eye(n, dtype=torch.float64)
    ])
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)


def test_expected_loss_is_the_enumerated_sum_and_batches():
    theta, b = make_problem(0, 4)
    p = torch.softmax(theta, -1)
    by_hand = sum(p[i] * ((torch.eye(4)[i] - b) ** 2).sum() for i in range(4))
    torch.testing.assert_close(expected_loss(theta, b), by_hand)
    stacked = expected_loss(torch.stack([theta, theta + 1]), torch.stack([b, b]))
    torch.testing.assert_close(stacked, torch.stack([by_hand, by_hand]))  # softmax is shift invariant


def test_sfe_is_unbiased_and_converges_to_the_exact_gradient():
    theta, b = make_problem(1, 6)
    exact = exact_gradient(theta, b)
    est = sfe_gradient(theta.repeat(64, 1), b.repeat(64, 1), 2000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(est.mean(0), exact, atol=0.05, rtol=0.0)  # mean of 64 × 2000 samples
    assert cosine(est.mean(0), exact) > 0.99
    with pytest.raises(ValueError, match="samples must be >= 1"):
        sfe_gradient(theta, b, 0)


def test_estimate_gradient_rows_are_each_problems_own_gradient():
    """STE with Gumbel noise: the gradient is the sample mean of ∇f = 2(z − b), row by row."""
    theta, b = torch.stack([make_problem(s, 5)[0] for s in range(3)]), torch.randn(3, 5)
    g = torch.Generator().manual_seed(0)
    ste = dt.STE(argmax, noise=dt.Gumbel(), samples=7, generator=g)
    grad = estimate_gradient(ste, theta, b)
    z = dt.STE(argmax, noise=dt.Gumbel(), samples=7, generator=torch.Generator().manual_seed(0))(theta)
    torch.testing.assert_close(grad, (2 * (z - b)).mean(0))


def test_cosine_and_sparsity():
    assert cosine(torch.zeros(3), torch.ones(3)) == 0
    assert cosine(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])) == pytest.approx(1.0)
    assert sparsity(torch.tensor([0.0, 1.0, 0.0, 2.0])) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="n must be >= 2"):
        make_problem(0, 1)


def test_tiny_cli_runs_write_csv_and_png(tmp_path, capsys):
    common = ["--seeds", "2", "--n", "5", "--out", str(tmp_path)]
    paths = main(["fig1", *common, "--samples", "10", "--reference-samples", "20", "--lambdas", "0.1", "1"])
    rows = read_csv(paths["csv"])
    assert {r["method"] for r in rows} == {"IMLE (forward)", "IMLE (central)", "STE", "SFE"}
    assert all(-1 <= r["cosine"] <= 1 and 0 <= r["sparsity"] <= 100 for r in rows)
    assert paths["png"].stat().st_size > 0

    paths = main(["fig3", *common, "--max-samples", "10", "--warmup", "3", "--lambdas", "1"])
    rows = read_csv(paths["csv"])
    assert {(r["method"], r["samples"]) for r in rows if r["method"].startswith("AIMLE")} == {
        (m, s) for m in ("AIMLE (forward)", "AIMLE (central)") for s in (1, 10)
    }
    assert len(rows) == 2 * 2 * 6  # seeds × S values × (STE, SFE, IMLE F/C, AIMLE F/C)
    assert all(r["alpha"] == pytest.approx(0.003) for r in rows if r["method"].startswith("AIMLE"))  # 3 × η

    paths = main(["fig4", *common, "--samples", "10", "--lambdas", "0.5", "--warmup", "2"])
    methods = {r["method"] for r in read_csv(paths["csv"])}
    assert methods >= {"AIMLE (central)", "AIMLE (forward, fast)", "IMLE (forward)"}

    paths = main(["controller", *common, "--samples", "10", "--steps", "0", "4", "--reps", "1"])
    rows = read_csv(paths["csv"])
    assert {(r["controller"], r["step"]) for r in rows} == {(c, s) for c in ("paper", "fast") for s in (0, 4)}
    assert [r["step"] for r in read_csv(paths["trace"]) if r["controller"] == "fast"] == [0, 1, 2, 3, 4]
    assert "cosine" in capsys.readouterr().out


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert "--seeds must be >= 1" in cli_error(capsys, main, ["fig1", "--seeds", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["fig2"])
