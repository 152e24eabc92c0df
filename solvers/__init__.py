"""Built-in MAP oracles for difftools, installed as ``difftools.solvers``; each module holds one family.

They register through the entry-point group ``difftools.solvers``, as third-party solvers do, and are
imported only when first asked for. The top-level name ``solvers`` (an import that collides with an
unrelated PyPI distribution) still works for one release, with a DeprecationWarning, and gives the same
module objects as ``difftools.solvers``.
"""

from __future__ import annotations

if __name__ == "solvers":  # imported by its deprecated top-level name (or the repository root on sys.path)
    import importlib
    import importlib.abc
    import importlib.util
    import sys
    import warnings

    warnings.warn(
        "the top-level package 'solvers' is deprecated and will be removed in the next release; "
        "import difftools.solvers instead",
        DeprecationWarning,
        stacklevel=2,
    )

    class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """``solvers.X`` is ``difftools.solvers.X``: the same module object, never a second copy."""

        def find_spec(self, fullname, path=None, target=None):
            return importlib.util.spec_from_loader(fullname, self) if fullname.startswith("solvers.") else None

        def create_module(self, spec):
            return importlib.import_module("difftools." + spec.name)

        def exec_module(self, module):
            pass

    if not any(isinstance(finder, _Alias) or type(finder).__name__ == "_Alias" for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
    sys.modules["solvers"] = importlib.import_module("difftools.solvers")
