"""The examples' shared module: estimators by name, the command lines' --help (quick, every default shown)."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from difftools.solvers.topk import argmax

import difftools
from examples import common

ROOT = Path(__file__).resolve().parents[1]

# (module, parser builder, subcommands)
CLIS = [
    ("examples.warcraft", "build_parser", ["generate", "train", "full", "report", "evaluate", "plot"]),
    ("examples.nri", "_parser", ["generate", "train", "evaluate", "plot"]),
    ("examples.l2x", "_parser", []),
    ("examples.dvae", "_parser", []),
    ("examples.synthetic", "_parser", []),
]
# Every benchmark script is a command line too: its --help is answered before torch (or PyEPO) is imported.
BENCHMARKS = sorted(
    f"benchmarks.{path.stem}" for path in (ROOT / "benchmarks").glob("*.py") if "def _parser(" in path.read_text()
)
CLIS += [(module, "_parser", ["run", "table"] if module.endswith("nri_seed_study") else []) for module in BENCHMARKS]
HELP_CALLS = [(module, [*command, "--help"]) for module, _, subs in CLIS for command in [[], *([s] for s in subs)]]
HEAVY = {"torch", "matplotlib", "difftools", "pyepo"}


def test_every_benchmark_script_has_a_quick_help():
    scripts = {f"benchmarks.{p.stem}" for p in (ROOT / "benchmarks").glob("*.py") if "argparse" in p.read_text()}
    assert len(BENCHMARKS) >= 12 and scripts == set(BENCHMARKS)


def _imported(importtime_log: str) -> set[str]:
    """Top-level names of the modules that ``python -X importtime`` reports as imported."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize(("module", "argv"), HELP_CALLS, ids=[" ".join([m, *a]) for m, a in HELP_CALLS])
def test_help_imports_neither_torch_nor_matplotlib(module, argv):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", module, *argv], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: python -m " + module in done.stdout
    imported = _imported(done.stderr)
    assert "examples" in imported  # the log is read right
    assert not imported & HEAVY, sorted(imported & HEAVY)


def _parsers(parser: argparse.ArgumentParser, name: str):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


@pytest.mark.parametrize(("module", "builder", "subs"), CLIS, ids=[m for m, _, _ in CLIS])
def test_help_shows_every_default(module, builder, subs):
    parser = getattr(
        importlib.import_module(module if module.startswith("benchmarks.") else f"{module}.__main__"), builder
    )()
    seen = []
    for name, p in _parsers(parser, module):
        p.format_help()  # every %(default)s expands
        formatter = p._get_formatter()
        assert isinstance(formatter, common.HelpFormatter), name
        for action in p._actions:
            if not action.option_strings or action.default is argparse.SUPPRESS or action.required:
                continue  # positional commands, --help, required options: no default to show
            text = formatter._get_help_string(action)
            assert "default" in text, f"{name} {action.option_strings[0]}: {text!r}"
            seen.append(action.option_strings[0])
    assert seen


def test_help_formatter_states_defaults():
    parser = argparse.ArgumentParser(formatter_class=common.HelpFormatter)
    parser.add_argument("--lr", type=float, default=0.1, help="step")
    parser.add_argument("--fast", action="store_true", help="go")
    parser.add_argument("--seed", type=int, help="the seed (default 0: see Config)")
    parser.add_argument("--name", default="x")
    parser.add_argument("--run", required=True, help="where")
    text = " ".join(parser.format_help().split())
    assert "step (default: 0.1)" in text
    assert "go (default: off)" in text
    assert "the seed (default 0: see Config)" in text and "(default: None)" not in text
    assert "--name NAME (default: x)" in text
    assert "where" in text and "where (default" not in text


# ------------------------------------------------------------------------------------- estimators
def test_make_estimator_builds_the_named_difftools_class():
    imle = common.make_estimator("imle", argmax, lam=3.0, samples=2)
    assert type(imle) is difftools.IMLE and imle.lam == 3.0 and imle.samples == 2
    assert type(common.make_estimator("blackbox", argmax, lam=5.0)) is difftools.Blackbox
    assert type(common.make_estimator("perturbed", argmax, sigma=0.5)) is difftools.Perturbed
    with pytest.raises(ValueError, match="unknown estimator 'imle2'; expected one of 'aimle', 'imle'"):
        common.make_estimator("imle2", argmax)


def test_method_builds_its_estimator_with_its_settings():
    aimle = common.Method("AIMLE (central, fast)", "aimle", samples=3, central=True, controller="fast")
    layer = aimle.estimator(argmax, noise=difftools.Gumbel(), generator=torch.Generator().manual_seed(0))
    assert type(layer) is difftools.AIMLE and layer.samples == 3 and layer.central is True
    assert layer.controller == "fast" and type(layer.rule).__name__ == "FastRule"
    imle = common.Method("IMLE", "imle", lam=10.0).estimator(argmax)
    assert type(imle) is difftools.IMLE and imle.lam == 10.0 and imle.samples == 1
    ste = common.Method("STE", "ste").estimator(argmax, noise=difftools.Gumbel())
    assert type(ste) is difftools.STE and ste.samples == 1
    # perturbed=False: no noise whatever the example passes, so the forward is MAP(θ) itself.
    preset = common.Method(
        "AIMLE (deterministic)", "aimle", controller="deterministic", count="solution", perturbed=False
    )
    layer = preset.estimator(argmax, noise=difftools.Gumbel(), generator=torch.Generator().manual_seed(0))
    assert layer.noise is None and layer.central is False and layer.count == "solution"
    theta = torch.randn(4, 6)
    assert torch.equal(layer(theta)[0], argmax(theta))  # samples=1: one leading sample dim


def test_method_refuses_settings_its_estimator_does_not_take():
    with pytest.raises(ValueError, match="Method 'STE': ste takes no central"):
        common.Method("STE", "ste", central=True)
    with pytest.raises(ValueError, match="aimle takes no lam"):
        common.Method("AIMLE", "aimle", lam=1.0)
    with pytest.raises(ValueError, match="perturbed=False needs an estimator kind"):
        common.Method("SoftSub", "softsub", perturbed=False)
    relaxation = common.Method("Gumbel-softmax", "gumbel-softmax")  # an example's own kind
    with pytest.raises(ValueError, match="no estimator of kind 'gumbel-softmax'"):
        relaxation.estimator(argmax)


def test_examples_build_their_methods_through_the_shared_factory():
    from examples.dvae.model import make_sampler
    from examples.l2x.model import make_selector, methods

    assert all(isinstance(m, common.Method) for m in methods())
    selector = make_selector(common.Method("IMLE", "imle", central=True, lam=10.0), 3, torch.Generator(), 0.5)
    assert type(selector) is difftools.IMLE and selector.central is True and selector.lam == 10.0
    sampler = make_sampler(common.Method("AIMLE", "aimle", samples=2), 10, torch.Generator())
    assert type(sampler) is difftools.AIMLE and sampler.samples == 2 and type(sampler.noise) is difftools.SumOfGamma
    # Both line-ups hold the noise-free preset, and it stays noise-free although the examples pass noise.
    from examples.dvae.model import methods as dvae_methods

    (l2x_preset,) = [m for m in methods() if "deterministic" in m.name]
    (dvae_preset,) = [m for m in dvae_methods(10) if "deterministic" in m.name]
    for layer in (
        make_selector(l2x_preset, 3, torch.Generator(), 0.5),
        make_sampler(dvae_preset, 10, torch.Generator()),
    ):
        assert type(layer) is difftools.AIMLE and layer.noise is None and layer.controller == "deterministic"


# ------------------------------------------------------------------------------------- moved names
def test_run_files_forwards_to_common_with_a_warning():
    import examples.run_files as old

    with pytest.warns(DeprecationWarning, match="import read_log from examples.common"):
        assert old.read_log is common.read_log


def test_warcraft_hamming_distance_counts_wrong_cells_and_the_old_name_warns():
    from examples.warcraft import train

    target = torch.zeros(2, 3, 3)
    out = target.clone()
    out[0, 0, :2] = 1.0  # 2 wrong cells in map 0, none in map 1
    assert train.hamming_distance(out, target).item() == 1.0  # (2 + 0) / 2 maps
    assert difftools.hamming_loss(out, target, event_dim=2).item() == pytest.approx(1.0 / 9)
    with pytest.warns(DeprecationWarning, match="hamming_distance"):
        assert train.hamming_loss is train.hamming_distance


def test_nri_noise_names_match_the_noises_it_builds():
    from examples.nri.config import NOISE_NAMES
    from examples.nri.train import NOISES

    assert set(NOISES) == set(NOISE_NAMES)


def test_write_json_is_indented_with_a_final_newline(tmp_path):
    path = common.write_json(tmp_path / "r.json", {"a": [1, 2]})
    assert path.read_text() == json.dumps({"a": [1, 2]}, indent=2) + "\n"
    assert not list(tmp_path.glob(".*.tmp"))
