"""The solver registry: registration, look-up, factories and entry-point plug-ins."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import pytest
import torch

import difftools as dt

pytestmark = pytest.mark.usefixtures("clean_registry")


def test_register_call_and_get():
    s = dt.solver(lambda t: t, sense="max", name="ident_a")
    dt.register_solver("ident_a", s)
    assert dt.get_solver("ident_a") is s
    assert "ident_a" in dt.list_solvers()


def test_register_as_decorator_with_factory_params():
    @dt.register_solver("shifted_topk")
    def make(k: int = 1):
        return dt.get_solver("topk", k=k)

    assert make(k=2).k == 2  # the decorator returns the factory unchanged
    assert dt.get_solver("shifted_topk", k=3).k == 3


def test_refuses_silent_overwrite():
    dt.register_solver("dup", dt.solver(lambda t: t, sense="max"))
    with pytest.raises(ValueError, match="already registered; pass overwrite=True"):
        dt.register_solver("dup", dt.solver(lambda t: t, sense="max"))
    with pytest.raises(ValueError, match="'topk' is already registered"):
        dt.register_solver("topk", dt.solver(lambda t: t, sense="max"))
    replacement = dt.solver(lambda t: t, sense="max")
    dt.register_solver("dup", replacement, overwrite=True)
    assert dt.get_solver("dup") is replacement


def test_params_to_a_solver_object_are_an_error():
    with pytest.raises(TypeError, match="takes no parameters"):
        dt.get_solver("argmax", k=2)


def test_factory_returning_non_solver():
    dt.register_solver("bad_factory", lambda: 42)
    with pytest.raises(TypeError, match="not a solver"):
        dt.get_solver("bad_factory")


def test_builtins_resolve_lazily():
    import subprocess

    code = "import difftools, sys; print('difftools.solvers' in sys.modules, 'difftools.solvers.topk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert repr(dt.get_solver("topk", k=4)) == "TopK(k=4)"


def test_estimators_accept_registered_names():
    layer = dt.AIMLE("topk".replace("topk", "argmax"))
    assert layer.solver is dt.get_solver("argmax")


def test_entry_point_plugin(tmp_path, monkeypatch):
    """A real installed distribution (dist-info on sys.path) exposing the entry-point group."""
    pkg = tmp_path / "plugin_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            import torch
            import difftools

            @difftools.solver(sense="max", batched=True, backend="torch", name="plugin_sign")
            def sign_solver(theta):
                return (theta > 0).to(theta.dtype)
            """
        )
    )
    dist = tmp_path / "difftools_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: difftools-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[difftools.solvers]\nplugin_sign = plugin_pkg:sign_solver\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert "plugin_sign" in dt.list_solvers()
    s = dt.get_solver("plugin_sign")
    z = dt.AIMLE("plugin_sign")(torch.tensor([[5.0, -5.0]]))
    assert s.name == "plugin_sign" and z.shape == (1, 2)
