"""Seeded initial models: build a model by name with an injected generator, dtype and data shapes.

A model is named by a key of :data:`certunlearn.models.MODELS` (``"mlp"``, ``"logreg"``, ``"cnn"``)
or by ``"package.module:factory"``. Its factory must accept ``generator=`` (initialisation is
seeded, never drawn from the global generator); ``dtype=`` is passed when the factory takes it, and
``in_features`` / ``num_classes`` are filled in from the data when the factory takes them and the
caller did not set them. Used to build the many models :mod:`certunlearn.train.many` trains
(e.g. shadow models).

Example:
    >>> X, y = torch.zeros(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    >>> kwargs = resolve_model_kwargs("mlp", {"hidden": [8]}, X, y)
    >>> sorted(kwargs.items())
    [('hidden', [8]), ('in_features', 4), ('num_classes', 3)]
    >>> a = build_seeded_model("mlp", kwargs, generator=torch.Generator().manual_seed(1),
    ...                        dtype=torch.float64)
    >>> b = build_seeded_model("mlp", kwargs, generator=torch.Generator().manual_seed(1),
    ...                        dtype=torch.float64)
    >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters())), a.training
    (True, False)
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from certunlearn.errors import ConfigError, InputError
from certunlearn.models import MODELS, load_factory

__all__ = [
    "INJECTED_KWARGS",
    "build_seeded_model",
    "check_model_kwargs",
    "check_model_name",
    "resolve_model_kwargs",
]

INJECTED_KWARGS = ("generator", "dtype")
"""Factory arguments the builder passes itself, which model kwargs must not set."""


def check_model_name(model: object) -> str:
    """Return ``model`` if it is a registered name or looks like ``"package.module:factory"``.

    Example:
        >>> check_model_name("resnet")
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: unknown model 'resnet': use one of ['cnn', 'logreg', 'mlp'] or 'module:factory'
    """
    if not isinstance(model, str) or not model:
        raise ConfigError(f"model must be a registered name or 'module:factory', got {model!r}")
    if ":" in model:
        module_name, _, attr = model.partition(":")
        if not module_name or not attr:
            raise ConfigError(f"model factory must look like 'package.module:factory', got {model!r}")
    elif model not in MODELS:
        raise ConfigError(f"unknown model {model!r}: use one of {sorted(MODELS)} or 'module:factory'")
    return model


def check_model_kwargs(kwargs: object) -> dict[str, Any]:
    """``kwargs`` as a dict, checked: string keys, JSON-serialisable, none of :data:`INJECTED_KWARGS`.

    Example:
        >>> check_model_kwargs({"hidden": [8], "dtype": "float32"})
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: model_kwargs must not set ['dtype']: they are injected (the dtype comes from the spec)
    """
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"model_kwargs must be a mapping, got {type(kwargs).__name__}")
    out = dict(kwargs)
    for key in out:
        if not isinstance(key, str):
            raise ConfigError(f"model_kwargs keys must be strings, got {key!r}")
    reserved = sorted(set(out) & set(INJECTED_KWARGS))
    if reserved:
        raise ConfigError(
            f"model_kwargs must not set {reserved}: they are injected (the dtype comes from the spec)"
        )
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"model_kwargs must be JSON-serialisable (finite numbers, strings, lists): {exc}"
        ) from exc
    return out


def _factory(model: str) -> Callable[..., nn.Module]:
    return load_factory(model) if ":" in model else MODELS[model]


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: assume it takes keywords
        return True
    if name in parameters:
        return parameters[name].kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def resolve_model_kwargs(model: str, kwargs: Mapping[str, Any], X: Tensor, y: Tensor) -> dict[str, Any]:
    """``kwargs`` with ``in_features`` (``X.shape[1]``, 2-D X only) and ``num_classes`` (``max(y) + 1``)
    filled in where the factory accepts them and ``kwargs`` does not set them.

    Raises:
        ConfigError: The factory does not accept ``generator=``.
        InputError: ``num_classes`` would be inferred from fewer than 2 classes.

    Example:
        >>> resolve_model_kwargs("logreg", {"num_classes": 5}, torch.zeros(3, 2), torch.tensor([0, 1, 0]))
        {'num_classes': 5, 'in_features': 2}
    """
    factory = _factory(model)
    if not _accepts(factory, "generator"):
        raise ConfigError(
            f"model factory {model!r} must accept a generator= keyword: initialisation is seeded"
        )
    out = dict(kwargs)
    if "in_features" not in out and X.ndim == 2 and _accepts(factory, "in_features"):
        out["in_features"] = int(X.shape[1])
    if "num_classes" not in out and _accepts(factory, "num_classes"):
        num_classes = int(y.max()) + 1
        if num_classes < 2:
            raise InputError(
                "y must contain at least 2 classes to infer num_classes, "
                f"got labels up to {num_classes - 1}"
            )
        out["num_classes"] = num_classes
    return out


def build_seeded_model(
    model: str, kwargs: Mapping[str, Any], *, generator: torch.Generator, dtype: torch.dtype
) -> nn.Module:
    """Build ``model`` from ``kwargs`` with ``generator`` (and ``dtype`` where accepted); eval mode.

    The global random state is left as it was: torch layers run their default initialisation from
    the global generator before the factory re-initialises them from ``generator``, so the call is
    isolated with ``torch.random.fork_rng``.

    Raises:
        ConfigError: The factory rejects the arguments or does not return an ``nn.Module``.

    Example:
        >>> m = build_seeded_model("logreg", {"in_features": 3, "num_classes": 2},
        ...                        generator=torch.Generator().manual_seed(0), dtype=torch.float32)
        >>> m.linear.weight.dtype
        torch.float32
    """
    factory = _factory(model)
    call = dict(kwargs, generator=generator)
    if _accepts(factory, "dtype"):
        call["dtype"] = dtype
    try:
        with torch.random.fork_rng(devices=[]):
            module = factory(**call)
    except TypeError as exc:
        raise ConfigError(f"cannot build model {model!r} with {sorted(call)}: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise ConfigError(f"factory {model!r} returned {type(module).__name__}, not an nn.Module")
    return module.to(dtype).eval()
