"""AIMLE's defaults are what docs/aimle-defaults.md says they are, and the page's code runs."""

from __future__ import annotations

import ast
import inspect
import re

import torch

import difftools as dt
from difftools.estimators import AIMLE_PRESETS
from tests.markdown import run_blocks

PAGE = "docs/aimle-defaults.md"


def _presets_table() -> dict[str, dict[str, object]]:
    """The page's preset table: {controller: {argument: value}}, values parsed as Python literals."""
    lines = open(PAGE, encoding="utf-8").read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| argument |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    columns = [re.search(r'controller="(\w+)"', cell).group(1) for cell in header[1:]]
    table: dict[str, dict[str, object]] = {c: {} for c in columns}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for column, value in zip(columns, cells[1:]):
            table[column][cells[0]] = ast.literal_eval(value)
    return table


def test_documented_presets_are_the_code_presets():
    table = _presets_table()
    assert set(table) == set(AIMLE_PRESETS) == {"fast", "deterministic", "paper", "reference"}
    for controller, settings in table.items():
        assert settings == AIMLE_PRESETS[controller], controller


def test_the_documented_default_is_what_aimle_does_without_arguments():
    text = open(PAGE, encoding="utf-8").read()
    default = inspect.signature(dt.AIMLE).parameters["controller"].default
    assert f'The default is `controller="{default}"`' in text
    layer = dt.AIMLE("argmax")
    preset = _presets_table()[default]
    assert layer.controller == default
    assert (layer.central, layer.target_nnz, layer.step, layer.decay, layer.lam_scope) == (
        preset["central"],
        preset["target_nnz"],
        preset["step"],
        preset["decay"],
        preset["lam_scope"],
    )
    assert (layer.count, layer.count_over) == (preset["count"], preset["count_over"])
    assert layer.alpha.item() == preset["initial_alpha"]
    assert isinstance(layer.noise, dt.Gumbel) and layer.samples is None and layer.noise_temperature == 1.0


def test_page_code_runs():
    ns = run_blocks(PAGE)
    assert ns["fast"].controller == "fast" and ns["paper"].controller == "paper"
    assert torch.isfinite(ns["grad"]).all()
