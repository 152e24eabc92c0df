"""A griffe extension that documents the repository's ``solvers/`` folder as ``difftools.solvers``.

The built-in solvers live in the top-level ``solvers/`` folder, which setuptools installs as
``difftools.solvers`` (``package-dir`` in pyproject.toml). griffe finds packages by their folder,
so it sees ``difftools/`` without a ``solvers`` subpackage; this extension, listed under the
mkdocstrings handler's ``extensions`` in mkdocs.yml, loads ``solvers/`` when ``difftools`` has been
loaded and attaches it there, so the API pages name the installed paths
(``::: difftools.solvers.topk.TopK``).
"""

from __future__ import annotations

from typing import Any

import griffe

__all__ = ["SolversNamespace"]


class SolversNamespace(griffe.Extension):
    """Attach the package found as ``solvers`` to ``difftools`` as its member ``solvers``."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "difftools" or "solvers" in pkg.members:
            return
        solvers = loader.load("solvers", find_stubs_package=False)
        pkg.set_member("solvers", solvers)
