"""The AIMLE study's configurations: unique names, each builds and steps, rows claimed equal are equal."""

from __future__ import annotations

import pytest
import torch
from difftools.solvers.topk import TopK

import difftools as dt
from benchmarks import aimle_study as study


@pytest.mark.parametrize("configs", [study.SYNTHETIC_CONFIGS, study.PYEPO_CONFIGS], ids=["synthetic", "pyepo"])
def test_names_are_unique(configs):
    names = [c["name"] for c in configs]
    assert len(names) == len(set(names))


def _gradient(config: dict, seed: int = 0) -> torch.Tensor:
    cfg = dict(config)
    if "noise" in cfg:
        cfg["noise"] = study._noise(cfg["noise"], "max", solution_size=3.0)
    layer = study.make_aimle(TopK(3), cfg)
    theta = torch.randn(4, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    weights = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(seed)
    (layer(theta) * weights).sum().backward()
    return theta.grad


@pytest.mark.parametrize("config", study.PYEPO_CONFIGS, ids=lambda c: c["name"])
def test_every_pyepo_configuration_builds_and_gives_a_finite_gradient(config):
    grad = _gradient(config)
    assert torch.isfinite(grad).all()


def test_solution_sized_noise_needs_the_size():
    assert study._noise("sog-solution", "max", solution_size=3.0) == dt.SumOfGamma(3.0)
    with pytest.raises(ValueError, match="needs solution_size"):
        study._noise("sog-solution", "max")


def _row(name: str) -> dict:
    return next(c for c in study.PYEPO_CONFIGS if c["name"] == name)


def test_the_deterministic_preset_row_is_the_forward_no_noise_row_with_ceiling_1():
    a = _gradient(_row("controller='deterministic'"))
    b = _gradient(_row("defaults, α ≤ 1, forward, no noise"))
    assert a.abs().sum() > 0 and torch.equal(a, b)


def test_the_sixth_session_recipe_is_what_the_docs_spell_out():
    row = _row("defaults, α ≤ 10, forward, SoG(5), S = 10")
    layer = study.make_aimle(TopK(3), {**row, "noise": study._noise(row["noise"], "max")})
    spelled = dt.AIMLE(
        TopK(3),
        controller=dt.estimators.FastRule(max_alpha=10.0),
        central=False,
        noise=dt.SumOfGamma(5),
        samples=10,
    )
    assert repr(layer) == repr(spelled)
    assert layer.rule.max_alpha == spelled.rule.max_alpha == 10.0
