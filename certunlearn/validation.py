"""Shared argument checks with messages that name the bad value and the allowed range.

Example:
    >>> check_positive("epsilon", 1.0)
    1.0
    >>> check_open_unit("delta", 2.0)
    Traceback (most recent call last):
    ...
    certunlearn.errors.ConfigError: delta must be in (0, 1), got 2.0
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

from certunlearn.errors import ConfigError, InputError


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a finite float or raise :class:`ConfigError`.

    Example:
        >>> check_real("x", 3)
        3.0
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return out


def check_positive(name: str, value: object) -> float:
    """Return ``value`` if it is a finite number > 0.

    Example:
        >>> check_positive("sigma", 0.5)
        0.5
    """
    out = check_real(name, value)
    if out <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
    return out


def check_nonnegative(name: str, value: object) -> float:
    """Return ``value`` if it is a finite number >= 0.

    Example:
        >>> check_nonnegative("weight_decay", 0.0)
        0.0
    """
    out = check_real(name, value)
    if out < 0:
        raise ConfigError(f"{name} must be >= 0, got {value!r}")
    return out


def check_open_unit(name: str, value: object) -> float:
    """Return ``value`` if it lies strictly between 0 and 1.

    Example:
        >>> check_open_unit("delta", 1e-5)
        1e-05
    """
    out = check_real(name, value)
    if not 0.0 < out < 1.0:
        raise ConfigError(f"{name} must be in (0, 1), got {value!r}")
    return out


def check_int(name: str, value: object, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) >= ``minimum``.

    Example:
        >>> check_int("epochs", 3, minimum=1)
        3
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
    return out


def check_choice(name: str, value: object, choices: object) -> str:
    """Return ``value`` if it is one of ``choices`` (any iterable of str).

    Example:
        >>> check_choice("method", "analytic", ["analytic", "classical"])
        'analytic'
    """
    allowed = sorted(choices)  # type: ignore[call-overload]
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {allowed}, got {value!r}")
    return str(value)


def check_real_array(
    name: str,
    values: object,
    *,
    ndim: int | None = None,
    min_columns: int | None = None,
    non_empty: bool = False,
) -> np.ndarray:
    """Return ``values`` (array-like or a tensor) as a finite float64 array, or raise InputError.

    Args:
        name: Name used in messages.
        values: Array-like, or an object with ``detach()`` (a tensor; moved to the CPU).
        ndim: Required number of dimensions (1: ``[n]``; 2: ``[n, num_classes]``).
        min_columns: With ``ndim=2``, the least number of columns (classes).
        non_empty: Refuse an empty array.

    Example:
        >>> check_real_array("scores", [1, 2.5], ndim=1).dtype
        dtype('float64')
        >>> check_real_array("scores", [True], ndim=1)
        Traceback (most recent call last):
        ...
        certunlearn.errors.InputError: scores must be a real-valued array, got dtype bool
    """
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()  # type: ignore[union-attr]
    array = np.asarray(values)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise InputError(f"{name} must be a real-valued array, got dtype {array.dtype}")
    if ndim == 1 and array.ndim != 1:
        raise InputError(f"{name} must be one-dimensional, got shape {array.shape}")
    if ndim == 2 and array.ndim != 2:
        raise InputError(f"{name} must have shape [n, num_classes], got {array.shape}")
    if ndim is not None and ndim not in (1, 2) and array.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if min_columns is not None and array.shape[1] < min_columns:
        raise InputError(f"{name} needs at least {min_columns} classes, got shape {array.shape}")
    if non_empty and array.size == 0:
        raise InputError(f"{name} must not be empty")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contains NaN or infinite values")
    return array


def register(kind: str, registry: dict[str, Any], name: object, value: object, *, force: bool = False) -> None:
    """Add ``value`` to ``registry`` under ``name``; refuse to overwrite unless ``force``.

    The one rule behind every ``register_<kind>`` function of the library.

    Example:
        >>> table: dict[str, Any] = {"a": 1}
        >>> register("thing", table, "b", 2)
        >>> register("thing", table, "a", 3)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: thing 'a' is already registered; pass force=True to replace it
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{kind} name must be a non-empty string, got {name!r}")
    if name in registry and not force:
        raise ConfigError(f"{kind} {name!r} is already registered; pass force=True to replace it")
    registry[name] = value
