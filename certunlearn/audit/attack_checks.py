"""Input checks shared by the MIA-L attacks (:mod:`~certunlearn.audit.lira`, :mod:`~certunlearn.audit.rmia`,
:mod:`~certunlearn.audit.attacks`): labels, model outputs with an optional query axis, membership masks.

Model outputs of the audited examples come as ``[n, C]`` or ``[n, K, C]`` (K augmented queries of
each example); outputs of N shadow (reference) models as ``[N, n, C]`` or ``[N, n, K, C]``. The
checks return float64 arrays with the K axis always present, so the attacks index one layout.
Tensors are accepted (moved to the CPU); nothing here imports torch.

These helpers are internal to the attack modules (their names start with an underscore).

Example:
    >>> _per_example("target_logits", np.zeros((3, 2)), 3).shape
    (3, 1, 2)
    >>> _per_model("shadow_logits", np.zeros((4, 3, 2)), 3, 1).shape
    (4, 3, 1, 2)
    >>> _labels([0.0, 1.0])
    Traceback (most recent call last):
    ...
    certunlearn.errors.InputError: labels must be an integer array, got dtype float64
"""

from __future__ import annotations

import numpy as np

from certunlearn.errors import InputError
from certunlearn.validation import check_real_array

__all__: list[str] = []


def _as_numpy(values: object) -> np.ndarray:
    """``values`` as a numpy array; a tensor (anything with ``detach()``) is moved to the CPU first."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()  # type: ignore[union-attr]
    return np.asarray(values)


def _real_array(name: str, values: object) -> np.ndarray:
    """A finite float64 array (see :func:`~certunlearn.validation.check_real_array`)."""
    return check_real_array(name, values)


def _labels(labels: object) -> np.ndarray:
    """Integer labels ``[n]`` (n >= 1) as int64."""
    array = _as_numpy(labels)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"labels must be an integer array, got dtype {array.dtype}")
    if array.ndim != 1 or array.size == 0:
        raise InputError(f"labels must have shape [n] with n >= 1, got {array.shape}")
    return array.astype(np.int64)


def _per_example(name: str, values: object, n: int) -> np.ndarray:
    """``[n, C]`` or ``[n, K, C]`` outputs -> ``[n, K, C]``."""
    array = _real_array(name, values)
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3 or array.shape[0] != n or array.shape[1] == 0:
        raise InputError(f"{name} must have shape [{n}, C] or [{n}, K, C], got {np.shape(values)}")
    return array


def _per_model(name: str, values: object, n: int, queries: int) -> np.ndarray:
    """``[N, n, C]`` or ``[N, n, K, C]`` outputs -> ``[N, n, K, C]`` (the target's K and C)."""
    array = _real_array(name, values)
    if array.ndim == 3:
        array = array[:, :, None, :]
    if array.ndim != 4 or array.shape[0] == 0 or array.shape[1] != n or array.shape[2] != queries:
        raise InputError(
            f"{name} must have shape [models, {n}, C]"
            + (f" or [models, {n}, {queries}, C]" if queries > 1 else "")
            + f", got {np.shape(values)}"
        )
    return array


def _membership(name: str, values: object, shape: tuple[int, int]) -> np.ndarray:
    """A bool (or 0/1 integer) mask of exactly ``shape``, as bool."""
    array = _as_numpy(values)
    if array.dtype != np.bool_:
        if not np.issubdtype(array.dtype, np.integer) or not np.isin(array, (0, 1)).all():
            raise InputError(f"{name} must be a bool (or 0/1) array, got dtype {array.dtype}")
        array = array.astype(bool)
    if array.shape != shape:
        raise InputError(f"{name} must have shape {list(shape)}, got {list(array.shape)}")
    return array
