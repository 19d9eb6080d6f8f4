r"""One digest for every lineage record: ids, parameters and data, configurations, canonical JSON.

The ledger, the report and the shadow-model cache all identify things by SHA-256 digests. They
must agree — the released-parameters digest in a compliance report is the ledger event's
``model_after`` for the same release — so every digest in the package is computed here, once, by
a rule written in this docstring. NumPy only: tensors are read through their ``detach``/``numpy``
methods without importing torch.

Rules (each function's name, then what is hashed):

* :func:`ids_digest` — the sorted integer ids as decimal text joined by ``","``; ids that are not
  all integers (e.g. user-facing record keys) are sorted as text and joined by ``"\n"``.
* :func:`array_digest` — parameters or any numeric array: the float64 bytes, flattened and
  concatenated **in layout order**: one array or tensor as it is; a mapping (a ``state_dict``) in
  its own iteration order, which for a module's ``state_dict()`` is the order of
  ``module.parameters()`` and so the order of the flat vector the unlearners work on. A state dict
  and the flat vector of the same weights therefore have one digest.
* :func:`data_digest` — shapes of ``X`` and ``y`` as canonical JSON, then ``X`` as float64 (rows
  flattened, ``-0.0`` read as ``0.0``) and ``y`` as int64.
* :func:`row_digests` — a 16-byte BLAKE2b digest of each row ``(x, y)`` in the same canonical form,
  to recognise rows without storing them.
* :func:`config_digest` — :func:`canonical_json` of a configuration (objects that are not JSON are
  written as ``str``).
* :func:`canonical_json` — UTF-8 JSON, sorted keys, compact separators, NaN/∞ refused; what
  :func:`json_digest` (and the report's own ``report_digest``) hashes.

Example:
    >>> import numpy as np
    >>> ids_digest([3, 1, 2]) == ids_digest([1, 2, 3])
    True
    >>> array_digest({"weight": [[1.0, 2.0]], "bias": [0.5]}) == array_digest(np.array([1.0, 2.0, 0.5]))
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from certunlearn.errors import ConfigError
from certunlearn.serialize import plain

__all__ = [
    "CONFIG_DIGEST_METHOD",
    "IDS_DIGEST_METHOD",
    "PARAMS_DIGEST_METHOD",
    "ROW_DIGEST_BYTES",
    "array_digest",
    "canonical_json",
    "config_digest",
    "data_digest",
    "ids_digest",
    "json_digest",
    "row_digests",
]

IDS_DIGEST_METHOD = (
    "SHA-256 of the sorted integer ids joined by commas (certunlearn.digest.ids_digest); "
    "for non-integer ids, of the sorted ids as text joined by newlines"
)
"""How :func:`ids_digest` hashes, in words (written into reports)."""

PARAMS_DIGEST_METHOD = (
    "SHA-256 of the float64 bytes of the parameters, flattened and concatenated in layout order "
    "(a state dict in its own order, i.e. the order of module.parameters(); certunlearn.digest.array_digest)"
)
"""How :func:`array_digest` hashes, in words (written into reports)."""

CONFIG_DIGEST_METHOD = "SHA-256 of the configuration as JSON with sorted keys and compact separators"
"""How :func:`config_digest` hashes, in words (written into reports)."""

ROW_DIGEST_BYTES = 16
"""Size of one :func:`row_digests` entry."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_integer(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def ids_digest(ids: Iterable[object]) -> str:
    """SHA-256 of a set of sample ids, independent of their order (ledgers never store raw ids).

    Args:
        ids: Integer ids (the usual case), or record keys of any kind (hashed as sorted text).

    Returns:
        64 hex characters.

    Raises:
        ConfigError: No ids.

    Example:
        >>> ids_digest([2, 1]) == ids_digest([1, 2]) != ids_digest([1, 3])
        True
        >>> ids_digest(["bob", "alice"]) == ids_digest(["alice", "bob"])
        True
    """
    values = list(ids)
    if not values:
        raise ConfigError("cannot digest an empty set of ids")
    if all(_is_integer(i) for i in values):
        return _sha256(",".join(str(i) for i in sorted(int(i) for i in values)).encode())
    return _sha256("\n".join(sorted(str(i) for i in values)).encode("utf-8"))


def _as_numpy(value: object) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()  # type: ignore[union-attr]
        if getattr(value, "is_floating_point", lambda: False)():
            value = value.double()  # type: ignore[union-attr]  (bfloat16 has no numpy dtype)
        value = value.numpy()  # type: ignore[union-attr]
    return np.asarray(value)


def _flat_float64(name: str, value: object) -> np.ndarray:
    array = _as_numpy(value)
    if array.dtype.kind not in "fiub":
        raise ConfigError(f"cannot digest {name}: dtype {array.dtype} is not numeric")
    return array.reshape(-1).astype(np.float64)


def array_digest(value: object) -> str:
    """SHA-256 of model parameters: one array/tensor, or a state dict in its own (layout) order.

    Every array is flattened and cast to float64 before hashing, so the digest does not depend on
    the storage precision, and a state dict has the digest of its flat parameter vector.

    Args:
        value: A numpy array, a torch tensor, a nested list of numbers, or a mapping of such.

    Returns:
        64 hex characters.

    Raises:
        ConfigError: An empty mapping or a non-numeric array.

    Example:
        >>> import numpy as np
        >>> array_digest(np.float32([1, 2])) == array_digest([1.0, 2.0])
        True
        >>> array_digest({"a": [1.0], "b": [2.0]}) == array_digest({"b": [2.0], "a": [1.0]})
        False
    """
    if isinstance(value, Mapping):
        if not value:
            raise ConfigError("cannot digest an empty mapping of arrays")
        parts = [_flat_float64(f"parameter {key!r}", part) for key, part in value.items()]
    else:
        parts = [_flat_float64("parameters", value)]
    return _sha256(np.ascontiguousarray(np.concatenate(parts)).tobytes())


def _canonical_rows(X: object, y: object) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    features = _as_numpy(X)
    labels = _as_numpy(y)
    if features.dtype.kind not in "fiub" or labels.dtype.kind not in "iub":
        raise ConfigError(f"cannot digest data: X must be numeric and y integer, got {features.dtype}, "
                          f"{labels.dtype}")
    if features.ndim < 1 or labels.shape != (features.shape[0],):
        raise ConfigError(f"cannot digest data: X {features.shape} and y {labels.shape} must be [n, ...] "
                          "and [n]")
    shape = tuple(int(s) for s in features.shape)
    x64 = np.ascontiguousarray(features.astype(np.float64).reshape(shape[0], -1)) + 0.0  # -0.0 -> 0.0
    return shape, x64, np.ascontiguousarray(labels.astype(np.int64))


def data_digest(X: object, y: object) -> str:
    """SHA-256 of a data set in canonical form: shapes, then ``X`` (float64) and ``y`` (int64) bytes.

    Args:
        X: ``[n, ...]`` features (tensor or array).
        y: ``[n]`` integer labels.

    Returns:
        64 hex characters; float32 and float64 copies of the same values give the same digest.

    Raises:
        ConfigError: Non-numeric features, non-integer labels or mismatched lengths.

    Example:
        >>> import numpy as np
        >>> data_digest(np.eye(2), np.array([0, 1])) == data_digest(np.eye(2, dtype=np.float32), [0, 1])
        True
    """
    shape, x64, y64 = _canonical_rows(X, y)
    hasher = hashlib.sha256(canonical_json({"X": list(shape), "y": [shape[0]]}))
    hasher.update(x64.tobytes())
    hasher.update(y64.tobytes())
    return hasher.hexdigest()


def row_digests(X: object, y: object) -> np.ndarray:
    """16-byte BLAKE2b digest of each row ``(x, y)`` (x as float64, y as int64): ``[n, 16]`` uint8.

    Args:
        X: ``[n, ...]`` features.
        y: ``[n]`` integer labels.

    Returns:
        ``[n, ROW_DIGEST_BYTES]`` uint8; equal rows have equal digests.

    Example:
        >>> import numpy as np
        >>> d = row_digests(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]]), [0, 0, 0])
        >>> d.shape, bool((d[0] == d[1]).all()), bool((d[0] == d[2]).all())
        ((3, 16), True, False)
    """
    _, x64, y64 = _canonical_rows(X, y)
    out = np.empty((x64.shape[0], ROW_DIGEST_BYTES), dtype=np.uint8)
    for i in range(x64.shape[0]):
        hasher = hashlib.blake2b(x64[i].tobytes(), digest_size=ROW_DIGEST_BYTES)
        hasher.update(y64[i].tobytes())
        out[i] = np.frombuffer(hasher.digest(), dtype=np.uint8)
    return out


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and compact separators; NaN and infinity are refused.

    Args:
        value: A JSON value (dicts, lists, strings, numbers, booleans, None).

    Returns:
        The bytes.

    Raises:
        ConfigError: NaN, infinity or a value JSON cannot represent.

    Example:
        >>> canonical_json({"b": 1, "a": [1.5, None]})
        b'{"a":[1.5,null],"b":1}'
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"not canonical JSON ({exc})") from None
    return text.encode("utf-8")


def json_digest(value: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``value``.

    Example:
        >>> json_digest({"a": 1, "b": 2}) == json_digest({"b": 2, "a": 1})
        True
    """
    return _sha256(canonical_json(value))


def config_digest(config: object) -> str:
    """SHA-256 of a configuration as canonical JSON (numpy values converted, other objects as ``str``).

    Args:
        config: A JSON-like mapping (tuples, numpy scalars and other objects are converted).

    Returns:
        64 hex characters.

    Example:
        >>> config_digest({"lr": 0.5, "epochs": 2}) == config_digest({"epochs": 2, "lr": 0.5})
        True
    """
    try:
        return json_digest(plain(config, unknown=str))
    except ConfigError:  # NaN in a config: still digestible, as JSON's NaN token
        text = json.dumps(plain(config, unknown=str), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return _sha256(text.encode("utf-8"))
