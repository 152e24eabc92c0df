"""Argument checks shared by the estimators, losses and noise: numbers and bools with clear messages."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["check_bool", "check_non_negative", "check_positive", "check_real", "check_seconds"]


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


def check_positive(value: Any, owner: str, arg: str, *, allow_none: bool = False) -> float | None:
    """``value`` as a float if it is a finite number > 0 (or None when ``allow_none``), else the error of
    :func:`check_real`: the one "finite positive number" check (steps, scales, timeouts)."""
    if value is None and allow_none:
        return None
    return check_real(value, owner, arg, lambda v: v > 0, "> 0" + (" or None" if allow_none else ""))


def check_non_negative(value: Any, owner: str, arg: str) -> float:
    """``value`` as a float if it is a finite number >= 0, else the error of :func:`check_real`."""
    return check_real(value, owner, arg, lambda v: v >= 0, ">= 0")


def check_seconds(value: Any, owner: str, arg: str, *, allow_none: bool = True) -> float | None:
    """A duration: a finite number of seconds > 0 (or None when ``allow_none``), else a ValueError.

    A ValueError for every bad value, strings included: a timeout is configuration, and the message
    says what is expected either way.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        expected = ("None or " if allow_none else "") + "a finite number of seconds > 0"
        raise ValueError(f"{owner}: {arg} must be {expected}, got {value!r}")
    return float(value)
