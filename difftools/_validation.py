"""Argument checks shared by the estimators, losses and noise: numbers and bools with clear messages."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["check_bool", "check_real"]


def check_real(value: Any, owner: str, arg: str, ok: Callable[[float], bool], expected: str) -> float:
    """``value`` as a float, or a TypeError (not a number) / ValueError (not finite, or not ``ok``).

    Checking the type first keeps a string or a tensor from failing deep inside a comparison
    (``'>=' not supported between 'str' and 'int'``); bools are refused, as ``True`` is rarely
    meant as 1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {arg} must be a number {expected}, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{owner}: {arg} must be a finite number {expected}, got {value!r}")
    return float(value)


def check_bool(value: Any, owner: str, arg: str) -> bool:
    """``value`` if it is a bool (numpy's too), else a TypeError: ``bool("no")`` is True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {arg} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)
