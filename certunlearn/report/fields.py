"""Validated readers of report input fields: each returns the clean value or raises a ConfigError naming it.

Shared by the report's entry types (:mod:`certunlearn.report.entries`) and its section builders
(:mod:`certunlearn.report.provenance`, :mod:`certunlearn.report.utility`,
:mod:`certunlearn.report.privacy`). ``None`` means "not given" everywhere.

Example:
    >>> opt_float("auc", 1), opt_int("n", None), pair("ci", (0.4, 0.6))
    (1.0, None, [0.4, 0.6])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from certunlearn.digest import array_digest
from certunlearn.errors import ConfigError

__all__ = [
    "as_mapping",
    "hex_or_none",
    "opt_float",
    "opt_int",
    "opt_str",
    "pair",
    "reject_unknown",
    "strings",
]

_HEX64 = frozenset("0123456789abcdef")


def as_mapping(name: str, value: object) -> dict[str, Any]:
    """A copy of a mapping, or of an object's ``summary()`` / ``as_dict()``; ``{}`` for None.

    Example:
        >>> as_mapping("request", {"request_id": "r"}), as_mapping("lineage", None)
        ({'request_id': 'r'}, {})
    """
    if value is None:
        return {}
    for method in ("summary", "as_dict"):
        if not isinstance(value, Mapping) and callable(getattr(value, method, None)):
            value = getattr(value, method)()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping (or an object with summary()/as_dict()), "
                          f"got {type(value).__name__}")
    return dict(value)


def reject_unknown(name: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    """Raise a ConfigError naming the first key of ``given`` that is not ``allowed``.

    Example:
        >>> reject_unknown("request", {"request_id": "r"}, ("request_id", "ids"))
    """
    allowed = sorted(allowed)
    for key in given:
        if key not in allowed:
            raise ConfigError(f"unknown {name} key {key!r}; allowed keys: {', '.join(allowed)}")


def opt_float(name: str, value: object) -> float | None:
    """A real number (NaN and ±inf allowed: the builder sanitises them) as a float, or None.

    Example:
        >>> opt_float("auc", np.float32(0.5)), opt_float("auc", None)
        (0.5, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(f"{name} must be a number or None, got {value!r}")
    return float(value)


def opt_int(name: str, value: object) -> int | None:
    """An integer (Python or numpy) as an int, or None.

    Example:
        >>> opt_int("count", np.int64(3))
        3
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer or None, got {value!r}")
    return int(value)


def opt_str(name: str, value: object) -> str | None:
    """A string (a datetime becomes its ISO form), or None.

    Example:
        >>> opt_str("reported_at", datetime(2025, 1, 1))
        '2025-01-01T00:00:00'
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string or None, got {value!r}")
    return value


def strings(name: str, value: object) -> list[str]:
    """A list of strings (``[]`` for None); a bare string is refused.

    Example:
        >>> strings("notes", ("a", "b")), strings("notes", None)
        (['a', 'b'], [])
    """
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    return [str(v) for v in value]


def pair(name: str, value: object) -> list[float] | None:
    """An interval ``[low, high]`` of two numbers, or None.

    Example:
        >>> pair("auc_ci", None), pair("auc_ci", [0, 1])
        (None, [0.0, 1.0])
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ConfigError(f"{name} must be an interval [low, high], got {value!r}")
    values = list(value)
    if len(values) != 2:
        raise ConfigError(f"an interval must have two ends, got {value!r}")
    ends = [opt_float(name, v) for v in values]
    if ends[0] is None or ends[1] is None:
        raise ConfigError(f"{name} must be an interval of two numbers, got {value!r}")
    return [ends[0], ends[1]]


def hex_or_none(name: str, value: object) -> str | None:
    """A SHA-256 hex digest (lower-cased), the digest of an array / tensor / state dict, or None.

    Example:
        >>> hex_or_none("data_manifest", "A" * 64) == "a" * 64
        True
    """
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) != 64 or not set(value.lower()) <= _HEX64:
            raise ConfigError(f"{name} must be a SHA-256 hex digest (64 hex characters), got {value!r}")
        return value.lower()
    return array_digest(value)
