"""Names that moved: a module ``__getattr__`` that warns once per use and forwards to the new home."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["forward_moved_names", "renamed_keyword"]


def forward_moved_names(old: str, new: str | Mapping[str, str]) -> Callable[[str], Any]:
    """``__getattr__`` for the deprecated module ``old``: each name is looked up in ``new`` (one module, or
    name → module) with a DeprecationWarning that says where it went; removed in the next release."""

    def module_getattr(name: str) -> Any:
        target = new if isinstance(new, str) else new.get(name)
        if name.startswith("__") or target is None:  # the import system's probes (__path__, ...) and unknown names
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(
            f"{old} is deprecated and will be removed in the next release; import {name} from {target}",
            DeprecationWarning,
            stacklevel=2,
        )
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name is None or not target.startswith(exc.name):
                raise
            # e.g. a name that moved to the repository's examples/, which an installed wheel does not ship
            raise ImportError(
                f"{old}.{name} moved to {target}, which cannot be imported here ({exc}); "
                "run from the root of a checkout of the repository"
            ) from exc
        return getattr(module, name)

    return module_getattr


def renamed_keyword(owner: str, options: dict[str, Any], old: str, new: str, value: Any, default: Any) -> Any:
    """The value of keyword ``new``, taking it from the deprecated name ``old`` in ``options`` (popped) if given.

    Call from the ``__init__`` that received ``old`` in its ``**options``: the DeprecationWarning points
    at that ``__init__``'s caller. Passing both names is a TypeError unless ``new`` kept its ``default``
    (which cannot be told apart from not passing it). Removed in the next release, with ``old``.
    """
    if old not in options:
        return value
    old_value = options.pop(old)
    if value != default:
        raise TypeError(f"{owner}: pass {new} only ({old} is its deprecated name), got both")
    warnings.warn(
        f"{owner}: the keyword {old} is deprecated and will be removed in the next release; "
        f"pass {new}={old_value!r} instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value
