"""Models and data a user brings: an architecture, a ``state_dict`` file and ``.npz`` / ``.pt`` data.

The one place that turns file paths into a ready model and tensors, shared by ``certunlearn forget``
and ``certunlearn audit``.

Example:
    >>> import os, tempfile, numpy as np, torch
    >>> from certunlearn.models import build_model
    >>> d = tempfile.mkdtemp()
    >>> np.savez(os.path.join(d, "data.npz"), X=np.zeros((6, 3)), y=np.arange(6) % 2)
    >>> torch.save(build_model("logreg", in_features=3, num_classes=2).state_dict(), os.path.join(d, "w.pt"))
    >>> X, y = load_arrays(os.path.join(d, "data.npz"))
    >>> model = load_user_model("logreg", os.path.join(d, "w.pt"), X=X, y=y)
    >>> model(X.to(model_dtype(model))).shape
    torch.Size([6, 2])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from certunlearn.errors import ConfigError

__all__ = ["load_arrays", "load_user_model", "model_dtype", "model_kwargs_from_strings"]


def load_arrays(path: str) -> tuple[Tensor, Tensor]:
    """``X`` (floating) and ``y`` of a user data file, exactly as stored (ids = rows)."""
    from certunlearn.data import read_arrays

    arrays = read_arrays(path)
    X = torch.as_tensor(np.asarray(arrays["X"]))
    y = torch.as_tensor(np.asarray(arrays["y"]))
    if not X.dtype.is_floating_point:
        X = X.double()
    return X, y


def model_kwargs_from_strings(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Turn command-line values into factory arguments (``dtype="float64"`` → ``torch.float64``)."""
    out = dict(kwargs)
    if isinstance(out.get("dtype"), str):
        dtype = getattr(torch, str(out["dtype"]), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ConfigError(f"model dtype must be a floating torch dtype name, got {out['dtype']!r}")
        out["dtype"] = dtype
    return out


def load_user_model(
    model: str,
    weights: str,
    *,
    X: Tensor,
    y: Tensor,
    model_args: Mapping[str, Any] | None = None,
    classification: bool = True,
) -> nn.Module:
    """Build ``model`` (registered name or ``"package.module:factory"``) and load ``weights`` into it.

    For registered models ``in_features`` and (for classification) ``num_classes`` default to the
    data's. The weights are loaded with ``weights_only=True``.
    """
    from certunlearn.models import MODELS, build_model, load_state_dict

    kwargs = model_kwargs_from_strings(model_args or {})
    if model in MODELS:
        kwargs.setdefault("in_features", int(np.prod(X.shape[1:])))
        if classification:
            kwargs.setdefault("num_classes", int(y.max()) + 1)
    try:
        module = build_model(model, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"cannot build model {model!r} with {kwargs}: {exc}") from exc
    return load_state_dict(module, weights)


def model_dtype(module: nn.Module) -> torch.dtype:
    """The floating dtype of the module's first parameter (float32 if it has none)."""
    first = next(iter(module.parameters()), None)
    return torch.float32 if first is None else first.dtype
