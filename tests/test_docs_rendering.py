"""The API reference's docstring conversion: Sphinx roles and ``::`` markers become Markdown."""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import difftools.solvers.ilp
import pytest

import difftools
from tests.markdown import ROOT

pytest.importorskip("griffe", reason="the docs extension needs griffe (pip install difftools[docs])")
_spec = importlib.util.spec_from_file_location("rst_markup", ROOT / "docs_extensions" / "rst_markup.py")
rst_markup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rst_markup)


def test_roles_and_literal_markers_become_markdown():
    text = (
        "Wraps :class:`~difftools.Perturbed` (see :func:`difftools.solver`, :meth:`_map`)::\n\n"
        "    layer = AIMLE(solver)\n\nor, as a block ::\n\n    x = 1\n\n::\n\n    y = 2\n"
    )
    assert rst_markup.to_markdown(text) == (
        "Wraps `Perturbed` (see `difftools.solver`, `_map`):\n\n"
        "    layer = AIMLE(solver)\n\nor, as a block\n\n    x = 1\n\n\n    y = 2\n"
    )


def test_no_rst_markup_survives_in_the_documented_docstrings():
    documented = (difftools.AIMLE, difftools.PerInstance, difftools.SPOPlusLoss, difftools.CachedSolver)
    for obj in (*documented, difftools.solvers.ilp.ILP):
        converted = rst_markup.to_markdown(inspect.getdoc(obj))
        assert ":class:`" not in converted and ":func:`" not in converted and ":meth:`" not in converted
        assert not any(line.rstrip().endswith("::") for line in converted.splitlines()), obj


def _documented_paths() -> dict[str, list[str]]:
    """The ``::: path`` lines of each API page."""
    pages = sorted((ROOT / "docs" / "api").glob("*.md"))
    lines = {page.name: page.read_text(encoding="utf-8").splitlines() for page in pages}
    return {name: [line[4:].strip() for line in text if line.startswith("::: ")] for name, text in lines.items()}


def test_every_api_path_imports_and_the_solvers_page_lists_every_built_in_by_its_installed_path():
    from importlib.metadata import entry_points

    for page, paths in _documented_paths().items():
        assert paths, page
        for path in paths:
            assert path.startswith("difftools."), (page, path)  # the one installed namespace
            module, _, name = path.rpartition(".")
            assert hasattr(importlib.import_module(module), name), (page, path)
    # Every registered built-in class (the entry-point group) has its ::: line; argmax is an instance of Argmax.
    documented = set(_documented_paths()["solvers.md"])
    for ep in entry_points(group="difftools.solvers"):
        if ep.value.startswith("difftools.solvers."):
            obj = ep.load()
            cls = obj if isinstance(obj, type) else type(obj)
            assert f"{cls.__module__}.{cls.__qualname__}" in documented, ep.name
