"""Turning results into JSON types: one conversion for every ``as_dict`` and report.

Example:
    >>> import numpy as np
    >>> plain({"a": np.float32(0.5), "b": (np.int64(2), np.array([1, 2]))})
    {'a': 0.5, 'b': [2, [1, 2]]}
    >>> plain({"spec": object}, unknown=lambda v: "<callable>")
    {'spec': '<callable>'}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["plain"]


def plain(value: Any, *, unknown: Callable[[Any], Any] | None = None) -> Any:
    """Mappings, sequences, numpy arrays and scalars (and 0-d tensors) → dicts, lists and Python scalars.

    Args:
        value: What to convert (keys become strings).
        unknown: Applied to any other non-JSON value (default: returned unchanged).
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v, unknown=unknown) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, unknown=unknown) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), unknown=unknown)
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "item") and hasattr(value, "detach") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)) or unknown is None:
        return value
    return unknown(value)
