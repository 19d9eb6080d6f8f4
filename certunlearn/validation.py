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

from certunlearn.errors import ConfigError


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
