"""One set of checks for the (X, y) a user hands to any job or audit: features and class labels.

The same rules everywhere (datasets, files, shadow models, MIA-L, MIA-U):

* **features** ``X``: a real, numeric array or tensor of shape ``[n, features...]`` with ``n ≥ 1``
  and no NaN or infinity; integer and boolean features are read as float64.
* **class labels** ``y``: shape ``[n]``, integers ``≥ 0``; floating labels are accepted only when
  every value is an exact integer (``1.0`` → class 1; ``0.7`` is refused, never truncated), because
  ``.npz`` files often store labels as floats. Booleans and complex numbers are refused.

Each function raises :class:`~certunlearn.errors.InputError` naming the argument and what is wrong.

Example:
    >>> import numpy as np
    >>> X, y = as_classification_data(np.eye(3, dtype=np.int64), np.array([0.0, 2.0, 1.0]))
    >>> X.dtype, y.tolist()
    (torch.float64, [0, 2, 1])
    >>> as_class_labels(np.array([0.5, 1.0]), 2)
    Traceback (most recent call last):
    ...
    certunlearn.errors.InputError: y must hold integer class labels (0.5 is not an integer)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from certunlearn.errors import InputError

__all__ = ["as_class_labels", "as_classification_data", "as_features"]


def _tensor(value: object, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach()
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{name} must be a numeric array or tensor: {exc}") from exc


def as_features(X: object, *, name: str = "X") -> Tensor:
    """``X`` as a real tensor ``[n, features...]``, checked (see the module docstring).

    Args:
        X: Array or tensor.
        name: The argument's name in messages.

    Returns:
        The tensor (floating dtypes kept; integer and boolean features as float64).

    Example:
        >>> as_features([[1, 2]]).dtype
        torch.float64
    """
    tensor = _tensor(X, name)
    if tensor.dtype.is_complex:
        raise InputError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    if tensor.ndim < 2:
        raise InputError(f"{name} must have shape [n, features...], got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise InputError(f"{name} has no rows")
    if not tensor.dtype.is_floating_point:
        tensor = tensor.to(torch.float64)
    if not bool(torch.isfinite(tensor).all()):
        raise InputError(f"{name} contains NaN or infinite values")
    return tensor


def as_class_labels(y: object, n: int, *, name: str = "y") -> Tensor:
    """``y`` as int64 class labels of shape ``[n]``, checked (see the module docstring).

    Args:
        y: Array or tensor of labels.
        n: The number of rows of the features they label.
        name: The argument's name in messages.

    Returns:
        The labels as an int64 tensor.

    Example:
        >>> as_class_labels([2, 0], 2).tolist()
        [2, 0]
    """
    tensor = _tensor(y, name)
    if tensor.dtype == torch.bool or tensor.dtype.is_complex:
        raise InputError(f"{name} must hold integer class labels, got dtype {tensor.dtype}")
    if tensor.shape != (n,):
        raise InputError(f"{name} must have shape ({n},) to match the features, got {tuple(tensor.shape)}")
    if tensor.dtype.is_floating_point:
        bad = ~torch.isfinite(tensor) | (tensor != tensor.round())
        if bool(bad.any()):
            raise InputError(f"{name} must hold integer class labels ({float(tensor[bad][0])!r} is not an integer)")
    labels = tensor.to(torch.int64)
    if labels.numel() and int(labels.min()) < 0:
        raise InputError(f"{name} must hold labels >= 0, got {int(labels.min())}")
    return labels


def as_classification_data(X: object, y: object, *, names: tuple[str, str] = ("X", "y")) -> tuple[Tensor, Tensor]:
    """``(as_features(X), as_class_labels(y, len(X)))`` with the given argument names.

    Example:
        >>> as_classification_data([[0.0], [1.0]], [1, 0], names=("X_audit", "y_audit"))[1].tolist()
        [1, 0]
    """
    features = as_features(X, name=names[0])
    return features, as_class_labels(y, int(features.shape[0]), name=names[1])
