"""L2X example: the synthetic datasets' labels and relevant sets, relaxations, subset precision, a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from difftools import Gumbel, SumOfGamma
from examples.common import read_csv
from examples.l2x.__main__ import main
from examples.l2x.data import DATASETS, make_dataset
from examples.l2x.model import Explainer, Method, evaluate, make_selector
from tests.bad_input import cli_error


def _p1(logit):
    return 1.0 / (1.0 + np.exp(logit))


def _additive(x):
    return -100 * np.sin(0.2 * x[:, 0]) + np.abs(x[:, 1]) + x[:, 2] + np.exp(-x[:, 3]) - 2.4


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_labels_depend_on_the_relevant_features_only(name):
    d = make_dataset(name, 400, seed=1)
    assert d.x.shape == (400, 10) and d.k == DATASETS[name]
    np.testing.assert_array_equal(d.relevant.sum(1), d.k)
    np.testing.assert_allclose(d.y.sum(1), 1.0, rtol=1e-6)
    x = d.x.astype(np.float64)
    if name == "xor":
        expected = _p1(x[:, 0] * x[:, 1])
    elif name == "orange_skin":
        expected = _p1((x[:, :4] ** 2).sum(1) - 4)
    elif name == "nonlinear_additive":
        expected = _p1(_additive(x))
    else:
        orange = d.relevant[:, 0] == 1
        assert np.all(d.relevant[orange, :4] == 1) and np.all(d.relevant[~orange, 4:8] == 1)
        assert x[orange, 9].mean() > 2 and x[~orange, 9].mean() < -2  # the switch feature
        expected = np.where(orange, _p1((x[:, :4] ** 2).sum(1) - 4), _p1(_additive(x[:, 4:8])))
    np.testing.assert_allclose(d.y[:, 1], expected, rtol=1e-4, atol=1e-6)


def test_dataset_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown dataset 'moons'"):
        make_dataset("moons", 10, 0)
    with pytest.raises(ValueError, match="n must be >= 2"):
        make_dataset("xor", 1, 0)


def test_relaxed_masks():
    # Seeded: at temperature 1e-3 SoftSub is the hard top-k only away from near-ties of the keys.
    theta = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    mask = make_selector(Method("l2x", "l2x"), 3, torch.Generator().manual_seed(0), 0.5)(theta)
    assert mask.shape == (1, 6, 10) and mask.min() >= 0 and mask.max() <= 1 + 1e-6
    soft = make_selector(Method("s", "softsub"), 3, torch.Generator().manual_seed(0), 0.5)(theta)
    assert soft.shape == (1, 6, 10) and soft.min() >= 0
    torch.testing.assert_close(soft.sum(-1), torch.full((1, 6), 3.0), atol=1e-4, rtol=0)  # k softmaxes
    # SoftSub at a low temperature is the hard top-k of the Gumbel keys.
    g = torch.Generator().manual_seed(0)
    hard = make_selector(Method("s", "softsub"), 3, g, 1e-3)(theta)
    keys = theta + Gumbel().sample(theta.shape, generator=torch.Generator().manual_seed(0))
    top = torch.zeros_like(theta).scatter_(-1, keys.topk(3, -1).indices, 1.0)
    torch.testing.assert_close(hard[0], top, atol=1e-3, rtol=0)


def test_subset_precision_of_an_oracle_selector_is_100():
    d = make_dataset("xor", 50, 0)
    model = Explainer()
    oracle = nn.Linear(10, 10)
    nn.init.zeros_(oracle.weight)
    with torch.no_grad():
        oracle.bias.copy_(torch.tensor([5.0, 4.0] + [0.0] * 8))
    model.selector = oracle
    assert evaluate(model, d)["precision"] == pytest.approx(100.0)
    oracle.bias.data = torch.tensor([0.0] * 8 + [5.0, 4.0])
    assert evaluate(model, d)["precision"] == pytest.approx(0.0)


def test_tiny_cli_run(tmp_path, capsys):
    paths = main(["run", "--quick", "--datasets", "switch", "--only", "AIMLE (central)", "λ=", "L2X",
                  "--out", str(tmp_path)])
    rows = read_csv(paths["csv"])
    assert {r["dataset"] for r in rows} == {"switch"}
    assert {r["method"] for r in rows} == {"AIMLE (central)", "IMLE (forward, λ=10)", "IMLE (central, λ=10)",
                                           "L2X (Gumbel top-k)"}
    assert all(0 <= r["test_precision"] <= 100 for r in rows)
    assert "λ chosen" in capsys.readouterr().out
    assert paths["png"].stat().st_size > 0
    replot = main(["plot", "--csv", str(paths["csv"]), "--out", str(tmp_path / "again")])
    assert replot["png"].stat().st_size > 0
    assert "plot needs --csv" in cli_error(capsys, main, ["plot"])


def test_the_noise_option_picks_the_perturbation_of_perturb_and_map_methods():
    aimle = Method("a", "aimle", central=True, controller="fast")
    assert make_selector(aimle, 3, torch.Generator(), 0.5).noise == Gumbel()
    assert make_selector(aimle, 3, torch.Generator(), 0.5, "sum-of-gamma").noise == SumOfGamma(3)  # SoG(k)
    with pytest.raises(ValueError, match="noise must be one of gumbel, sum-of-gamma"):
        make_selector(aimle, 3, torch.Generator(), 0.5, "normal")
