"""Helpers shared by the CPU solver adapters: lazy optional imports and checks of θ."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

__all__ = ["check_context_keys", "check_theta", "import_optional", "install_hint"]


def install_hint(extra: str) -> str:
    """How to install an extra, both from PyPI and from a clone of the repository."""
    return f'pip install "difftools[{extra}]" (or, in a clone of the repository, pip install -e ".[{extra}]")'


def import_optional(module: str, extra: str, who: str) -> ModuleType:
    """Import an optional back-end, or raise an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{who} needs {module.split('.')[0]}, which is not installed: {install_hint(extra)}") from e


def check_theta(theta: Any, who: str, event_shape: tuple[int | None, ...], meaning: str) -> None:
    """θ must be a finite floating tensor whose trailing dims match ``event_shape`` (None: any size).

    ``meaning`` names the trailing dims for the error message, e.g. ``"[*, E] edge weights"``.
    """
    if not isinstance(theta, Tensor):
        raise TypeError(f"{who}: θ must be a torch.Tensor of {meaning}, got {type(theta).__name__}")
    if not theta.dtype.is_floating_point:
        raise TypeError(f"{who}: θ must have a floating-point dtype, got {theta.dtype}")
    k = len(event_shape)
    trailing = tuple(theta.shape[theta.dim() - k :]) if theta.dim() >= k else None
    if trailing is None or any(e is not None and e != t for e, t in zip(event_shape, trailing)):
        expected = ", ".join("*" if e is None else str(e) for e in event_shape)
        raise ValueError(
            f"{who}: θ has shape {tuple(theta.shape)}, expected {meaning} with trailing shape [{expected}]"
        )
    if not bool(torch.isfinite(theta).all()):
        raise ValueError(f"{who}: θ contains NaN or Inf")


def check_context_keys(context: dict, allowed: tuple[str, ...], who: str) -> None:
    """Reject context keyword arguments the solver does not know (a typo would otherwise be ignored)."""
    unknown = sorted(set(context) - set(allowed))
    if unknown:
        accepted = f"accepted: {', '.join(allowed)}" if allowed else "it takes no context arguments"
        raise TypeError(f"{who}: unknown context argument(s) {unknown}; {accepted}")
