r"""Shadow (reference) models for membership inference, trained together with ``torch.func.vmap``.

LiRA and RMIA (REFERENCE §4.3) compare a target model's output on an example with the outputs of
N shadow models trained on random halves of a data pool. :func:`train_shadows` draws the halves,
trains the N models and returns a :class:`ShadowSet`:

* **Balanced membership** (Carlini et al., S&P 2022): a matrix ``U [N, n]`` of independent uniforms
  is ranked *down each column*; example j is IN for shadow k iff the rank of ``U[k, j]`` among
  ``U[:, j]`` is below ``pkeep·N``. Every example is therefore IN for exactly ``pkeep·N`` shadows
  (each shadow gets about ``pkeep·n`` examples, not exactly).
* **Training** of shadow k is :func:`certunlearn.train.sgd.train_sgd` on its IN rows with the
  spec's :class:`~certunlearn.train.config.SGDConfig` and a seed of its own (same step function:
  mean cross-entropy plus ``(λ/2)‖w‖²``, optional gradient clipping and projection, ``lr_decay``).
  The vectorised path stacks the N models with ``torch.func.stack_module_state`` and runs
  ``vmap(grad(...))`` over one functional SGD step: at every step each model reads its own
  minibatch (per-model index tensors of equal length ``batch_size``, padded rows weighted 0) drawn
  from the *same* seeded permutations ``train_sgd`` would draw, so the two paths agree to
  floating-point rounding. Epochs are aligned across models; a model with fewer batches in an
  epoch idles (its parameters are kept) on the padding steps. A model that ``vmap`` cannot handle
  (``.item()``, data-dependent control flow) falls back to the sequential loop with a
  ``RuntimeWarning``; ``vectorize=False`` asks for the loop directly.
* **Seeds**: the spec's ``training.seed`` is the only source of randomness. Membership, the
  initialisation of shadow k and its batch order use ``numpy.random.SeedSequence(seed,
  spawn_key=(purpose, k))`` — nothing global is seeded or consumed.
* **Cache**: with ``cache_dir`` the result is stored as ``shadows-<key>.pt`` where ``key`` is the
  SHA-256 of the canonical JSON (sorted keys, no whitespace) of the spec, the resolved model
  arguments and a SHA-256 digest of the data (``X`` as float64 and ``y`` as int64 bytes, with their
  shapes). A rerun with the same configuration and data loads the models instead of training
  (``torch.load(..., weights_only=True)``); any change misses. Files are written atomically
  (temporary file + ``os.replace``); an unreadable or inconsistent file is retrained with a warning.

The shadow data's rows are remembered only as 16-byte BLAKE2b digests of ``(x, y)``
(:meth:`ShadowSet.membership_for` finds audited rows among them), never as data.

Example:
    >>> from certunlearn.train import SGDConfig
    >>> gen = torch.Generator().manual_seed(0)
    >>> X = torch.randn(40, 3, dtype=torch.float64, generator=gen)
    >>> y = (X[:, 0] > 0).long()
    >>> spec = ShadowSpec(model="logreg", training=SGDConfig(epochs=2, batch_size=8, lr=0.5),
    ...                   n_shadows=4)
    >>> shadows = train_shadows(spec, X, y)
    >>> shadows.membership.sum(axis=0).tolist() == [2] * 40
    True
    >>> tuple(shadows.logits(X[:5]).shape)
    (4, 5, 2)
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, stack_module_state, vmap

from certunlearn.autodiff.functional import LOSSES
from certunlearn.errors import ConfigError, InputError
from certunlearn.models import MODELS, load_factory
from certunlearn.progress import ProgressFn, report
from certunlearn.train.config import SGDConfig
from certunlearn.train.sgd import train_sgd
from certunlearn.validation import check_choice, check_int, check_open_unit

__all__ = [
    "SHADOW_CACHE_VERSION",
    "SHADOW_DTYPES",
    "ShadowSet",
    "ShadowSpec",
    "balanced_membership",
    "data_digest",
    "row_digests",
    "train_shadows",
]

SHADOW_CACHE_VERSION = 1
"""Format version of the cache files (part of the cache key)."""

SHADOW_DTYPES: Mapping[str, torch.dtype] = MappingProxyType(
    {"float32": torch.float32, "float64": torch.float64}
)
"""Allowed ``ShadowSpec.dtype`` values."""

_PURPOSE_MEMBERSHIP, _PURPOSE_INIT, _PURPOSE_BATCHES = 0, 1, 2
_RESERVED_KWARGS = ("generator", "dtype")
_ROW_DIGEST_BYTES = 16


# ---------------------------------------------------------------------------------------------
# Specification
# ---------------------------------------------------------------------------------------------


def _canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _check_model_name(model: object) -> str:
    if not isinstance(model, str) or not model:
        raise ConfigError(f"model must be a registered name or 'module:factory', got {model!r}")
    if ":" in model:
        module_name, _, attr = model.partition(":")
        if not module_name or not attr:
            raise ConfigError(
                f"model factory must look like 'package.module:factory', got {model!r}"
            )
    elif model not in MODELS:
        raise ConfigError(
            f"unknown model {model!r}: use one of {sorted(MODELS)} or 'module:factory'"
        )
    return model


@dataclass(frozen=True, slots=True)
class ShadowSpec:
    """What to train: N shadow models of one architecture, each on a random ``pkeep`` share.

    Attributes:
        model: A registered model name (``"mlp"``, ``"logreg"``, ``"cnn"``) or
            ``"package.module:factory"``. The factory is called with ``model_kwargs``, an injected
            ``generator`` (required: initialisation must be seeded) and ``dtype`` when it accepts
            one; ``in_features`` (``X.shape[1]``) and ``num_classes`` (``max(y) + 1``) are filled
            in from the data when the factory accepts them and ``model_kwargs`` does not set them.
        training: The SGD recipe of every shadow (:class:`SGDConfig` or a dict for
            :meth:`SGDConfig.from_dict`); its ``seed`` seeds everything (membership,
            initialisation, batch order) and its loss must be ``cross_entropy``.
        n_shadows: Number of shadow models N (>= 2).
        model_kwargs: JSON-serialisable keyword arguments of the factory (not ``generator`` or
            ``dtype``).
        pkeep: Fraction of shadows each example is IN for, in (0, 1); ``pkeep·N`` must be an
            integer between 1 and N − 1.
        dtype: ``"float32"`` or ``"float64"``.

    Example:
        >>> spec = ShadowSpec(model="mlp", model_kwargs={"hidden": [16]},
        ...                   training={"epochs": 5, "batch_size": 32, "lr": 0.1}, n_shadows=8)
        >>> spec.n_in_per_example, spec.training.epochs
        (4, 5)
        >>> ShadowSpec(model="mlp", training=spec.training, n_shadows=5)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: pkeep * n_shadows must be an integer in [1, 4], got 0.5 * 5 = 2.5
    """

    model: str
    training: SGDConfig
    n_shadows: int = 16
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    pkeep: float = 0.5
    dtype: str = "float64"

    def __post_init__(self) -> None:
        _check_model_name(self.model)
        training = self.training
        if isinstance(training, Mapping):
            training = SGDConfig.from_dict(dict(training))
            object.__setattr__(self, "training", training)
        if not isinstance(training, SGDConfig):
            raise ConfigError(
                f"training must be an SGDConfig or a dict, got {type(training).__name__}"
            )
        if training.loss != "cross_entropy":
            raise ConfigError(
                "shadow models are classifiers: training.loss must be 'cross_entropy', "
                f"got {training.loss!r}"
            )
        n = check_int("n_shadows", self.n_shadows, minimum=2)
        pkeep = check_open_unit("pkeep", self.pkeep)
        kept = pkeep * n
        if abs(kept - round(kept)) > 1e-9 or not 1 <= round(kept) <= n - 1:
            raise ConfigError(
                f"pkeep * n_shadows must be an integer in [1, {n - 1}], "
                f"got {self.pkeep!r} * {n} = {kept!r}"
            )
        check_choice("dtype", self.dtype, SHADOW_DTYPES)
        if not isinstance(self.model_kwargs, Mapping):
            raise ConfigError(
                f"model_kwargs must be a mapping, got {type(self.model_kwargs).__name__}"
            )
        kwargs = dict(self.model_kwargs)
        for key in kwargs:
            if not isinstance(key, str):
                raise ConfigError(f"model_kwargs keys must be strings, got {key!r}")
        reserved = sorted(set(kwargs) & set(_RESERVED_KWARGS))
        if reserved:
            raise ConfigError(
                f"model_kwargs must not set {reserved}: "
                "the spec injects them (dtype via ShadowSpec.dtype)"
            )
        try:
            _canonical_json(kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"model_kwargs must be JSON-serialisable (finite numbers, strings, lists): {exc}"
            ) from exc
        object.__setattr__(self, "model_kwargs", MappingProxyType(kwargs))

    @property
    def n_in_per_example(self) -> int:
        """``pkeep · N``: how many shadows each example is IN for."""
        return int(round(self.pkeep * self.n_shadows))

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype of :attr:`dtype`."""
        return SHADOW_DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples in ``model_kwargs`` become lists).

        Example:
            >>> spec = ShadowSpec(model="logreg", n_shadows=2,
            ...                   training={"epochs": 1, "batch_size": 4, "lr": 1.0})
            >>> ShadowSpec.from_dict(spec.to_dict()) == spec
            True
        """
        return {
            "model": self.model,
            "model_kwargs": json.loads(_canonical_json(dict(self.model_kwargs))),
            "training": self.training.to_dict(),
            "n_shadows": self.n_shadows,
            "pkeep": self.pkeep,
            "dtype": self.dtype,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShadowSpec:
        """Inverse of :meth:`to_dict`; unknown keys are refused by name.

        Example:
            >>> ShadowSpec.from_dict({"model": "mlp",
            ...                       "training": {"epochs": 1, "batch_size": 4, "lr": 1.0},
            ...                       "shadows": 4})
            Traceback (most recent call last):
            ...
            certunlearn.errors.ConfigError: unknown ShadowSpec keys: ['shadows']
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a ShadowSpec dict must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown ShadowSpec keys: {unknown}")
        return cls(**data)


# ---------------------------------------------------------------------------------------------
# Data handling: validation, digests, balanced membership
# ---------------------------------------------------------------------------------------------


def _as_features(X: object, *, name: str = "X") -> Tensor:
    if isinstance(X, Tensor):
        tensor = X.detach()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(X))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"{name} must be a numeric array or tensor: {exc}") from exc
    if tensor.dtype == torch.bool or tensor.dtype.is_complex:
        raise InputError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    if tensor.ndim < 2:
        raise InputError(f"{name} must have shape [n, features...], got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise InputError(f"{name} has no rows")
    if tensor.dtype.is_floating_point and not torch.isfinite(tensor).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return tensor


def _as_labels(y: object, n: int, *, name: str = "y") -> Tensor:
    tensor = y.detach() if isinstance(y, Tensor) else torch.as_tensor(np.asarray(y))
    if tensor.dtype == torch.bool or tensor.dtype.is_floating_point or tensor.dtype.is_complex:
        raise InputError(f"{name} must hold integer class labels, got dtype {tensor.dtype}")
    if tensor.shape != (n,):
        raise InputError(
            f"{name} must have shape ({n},) to match the features, got {tuple(tensor.shape)}"
        )
    if tensor.min() < 0:
        raise InputError(f"{name} must hold labels >= 0, got {int(tensor.min())}")
    return tensor.to(torch.int64)


def _canonical_arrays(X: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
    features = np.ascontiguousarray(X.detach().cpu().to(torch.float64).numpy()) + 0.0  # -0.0 -> 0.0
    return features.reshape(features.shape[0], -1), np.ascontiguousarray(
        y.detach().cpu().numpy(), np.int64
    )


def data_digest(X: object, y: object) -> str:
    """SHA-256 of the data in canonical form: shapes, then ``X`` (float64) and ``y`` (int64) bytes.

    Args:
        X: ``[n, ...]`` features (tensor or array).
        y: ``[n]`` integer labels.

    Returns:
        64 hex characters; float32 and float64 copies of the same values give the same digest.

    Example:
        >>> a = data_digest(np.eye(2), np.array([0, 1]))
        >>> a == data_digest(np.eye(2, dtype=np.float32), [0, 1])
        True
    """
    features = _as_features(X)
    labels = _as_labels(y, features.shape[0])
    x64, y64 = _canonical_arrays(features, labels)
    hasher = hashlib.sha256()
    hasher.update(_canonical_json({"X": list(features.shape), "y": list(labels.shape)}).encode())
    hasher.update(x64.tobytes())
    hasher.update(y64.tobytes())
    return hasher.hexdigest()


def row_digests(X: object, y: object) -> np.ndarray:
    """16-byte BLAKE2b digest of each row ``(x, y)`` (x as float64, y as int64): ``[n, 16]`` uint8.

    Used to recognise audited examples among the shadows' data without storing the data.

    Example:
        >>> d = row_digests(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]]), [0, 0, 0])
        >>> d.shape, bool((d[0] == d[1]).all()), bool((d[0] == d[2]).all())
        ((3, 16), True, False)
    """
    features = _as_features(X)
    labels = _as_labels(y, features.shape[0])
    x64, y64 = _canonical_arrays(features, labels)
    out = np.empty((x64.shape[0], _ROW_DIGEST_BYTES), dtype=np.uint8)
    for i in range(x64.shape[0]):
        hasher = hashlib.blake2b(x64[i].tobytes(), digest_size=_ROW_DIGEST_BYTES)
        hasher.update(y64[i].tobytes())
        out[i] = np.frombuffer(hasher.digest(), dtype=np.uint8)
    return out


def _seed_sequence(seed: int, *spawn_key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=spawn_key)


def _derived_seed(seed: int, purpose: int, k: int) -> int:
    """A 63-bit seed for (purpose, shadow k), independent of every other pair."""
    return int(
        _seed_sequence(seed, purpose, k).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)
    )


def balanced_membership(
    *, n_shadows: int, n_samples: int, pkeep: float = 0.5, seed: int = 0
) -> np.ndarray:
    """Column-wise random-rank membership: every example IN for exactly ``pkeep·N`` shadows.

    ``U [N, n]`` uniforms from ``SeedSequence(seed, spawn_key=(0,))``; ``IN[k, j] = rank of U[k, j]
    in column j < pkeep·N`` (Carlini et al., S&P 2022).

    Args:
        n_shadows: N (>= 2).
        n_samples: n (>= 1).
        pkeep: In (0, 1) with ``pkeep·N`` an integer in [1, N − 1].
        seed: Seed (>= 0).

    Returns:
        ``[N, n]`` bool array.

    Example:
        >>> m = balanced_membership(n_shadows=4, n_samples=6, seed=3)
        >>> m.sum(axis=0).tolist()
        [2, 2, 2, 2, 2, 2]
    """
    n = check_int("n_shadows", n_shadows, minimum=2)
    samples = check_int("n_samples", n_samples, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    pkeep = check_open_unit("pkeep", pkeep)
    kept = pkeep * n
    if abs(kept - round(kept)) > 1e-9 or not 1 <= round(kept) <= n - 1:
        raise ConfigError(
            f"pkeep * n_shadows must be an integer in [1, {n - 1}], got {pkeep!r} * {n} = {kept!r}"
        )
    rng = np.random.default_rng(_seed_sequence(seed, _PURPOSE_MEMBERSHIP))
    uniforms = rng.random((n, samples))
    ranks = np.argsort(np.argsort(uniforms, axis=0, kind="stable"), axis=0, kind="stable")
    return ranks < int(round(kept))


# ---------------------------------------------------------------------------------------------
# Building models
# ---------------------------------------------------------------------------------------------


def _factory(spec: ShadowSpec) -> Callable[..., nn.Module]:
    if ":" in spec.model:
        return load_factory(spec.model)
    return MODELS[spec.model]


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


def _resolve_model_kwargs(spec: ShadowSpec, X: Tensor, y: Tensor) -> dict[str, Any]:
    factory = _factory(spec)
    if not _accepts(factory, "generator"):
        raise ConfigError(
            f"model factory {spec.model!r} must accept a generator= keyword: "
            "shadow initialisation is seeded"
        )
    kwargs = dict(spec.model_kwargs)
    if "in_features" not in kwargs and X.ndim == 2 and _accepts(factory, "in_features"):
        kwargs["in_features"] = int(X.shape[1])
    if "num_classes" not in kwargs and _accepts(factory, "num_classes"):
        num_classes = int(y.max()) + 1
        if num_classes < 2:
            raise InputError(
                "y must contain at least 2 classes to infer num_classes, "
                f"got labels up to {num_classes - 1}"
            )
        kwargs["num_classes"] = num_classes
    return kwargs


def _build(spec: ShadowSpec, kwargs: Mapping[str, Any], generator: torch.Generator) -> nn.Module:
    factory = _factory(spec)
    call = dict(kwargs, generator=generator)
    if _accepts(factory, "dtype"):
        call["dtype"] = spec.torch_dtype
    try:
        # torch layers run their default initialisation from the global generator before the
        # factory re-initialises them from ``generator``: isolate it so training never moves the
        # caller's global random state
        with torch.random.fork_rng(devices=[]):
            model = factory(**call)
    except TypeError as exc:
        raise ConfigError(f"cannot build model {spec.model!r} with {sorted(call)}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"factory {spec.model!r} returned {type(model).__name__}, not an nn.Module"
        )
    return model.to(spec.torch_dtype).eval()


def _initial_models(
    spec: ShadowSpec, kwargs: Mapping[str, Any], device: torch.device
) -> list[nn.Module]:
    seed = spec.training.seed
    return [
        _build(
            spec, kwargs, torch.Generator().manual_seed(_derived_seed(seed, _PURPOSE_INIT, k))
        ).to(device)
        for k in range(spec.n_shadows)
    ]


def _shadow_config(spec: ShadowSpec, k: int) -> SGDConfig:
    return replace(spec.training, seed=_derived_seed(spec.training.seed, _PURPOSE_BATCHES, k))


# ---------------------------------------------------------------------------------------------
# The shadow set
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ShadowSet:
    """N trained shadow models stacked along a leading axis, with their membership.

    Attributes:
        spec: The :class:`ShadowSpec` they were trained with.
        model_kwargs: The factory arguments used (``in_features``/``num_classes`` filled in).
        state: ``{name: [N, ...] tensor}`` — every shadow's ``state_dict`` stacked (parameters and
            persistent buffers).
        membership: ``[N, n]`` read-only bool array: ``membership[k, j]`` is True iff row j of the
            shadow data was in shadow k's training set.
        row_digests: ``[n, 16]`` uint8 digests of the shadow data's rows (:func:`row_digests`).
        data_digest: :func:`data_digest` of the shadow data.
        key: The cache key (SHA-256 hex of the configuration and the data digest).
        template: An instance of the architecture, in eval mode, whose own weights are unused: the
            structure :func:`torch.func.functional_call` runs with each shadow's ``state``.
        from_cache: Whether the models were loaded from the cache instead of trained.
        vectorized: Whether training ran vectorised (False: the sequential loop; None: cached).

    Example:
        >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
        >>> spec = ShadowSpec(model="logreg", n_shadows=2,
        ...                   training={"epochs": 1, "batch_size": 4, "lr": 1.0})
        >>> shadows = train_shadows(spec, X, y)
        >>> shadows.n_shadows, shadows.n_samples, sorted(shadows.state)
        (2, 12, ['linear.bias', 'linear.weight'])
    """

    spec: ShadowSpec
    model_kwargs: Mapping[str, Any]
    state: Mapping[str, Tensor]
    membership: np.ndarray
    row_digests: np.ndarray
    data_digest: str
    key: str
    template: nn.Module = field(repr=False)
    from_cache: bool = False
    vectorized: bool | None = True

    def __post_init__(self) -> None:
        if not isinstance(self.spec, ShadowSpec):
            raise ConfigError(f"spec must be a ShadowSpec, got {type(self.spec).__name__}")
        membership = np.asarray(self.membership)
        n = self.spec.n_shadows
        if membership.dtype != np.bool_ or membership.ndim != 2 or membership.shape[0] != n:
            raise InputError(
                f"membership must be a bool array [{n}, n], "
                f"got {membership.dtype} {membership.shape}"
            )
        digests = np.asarray(self.row_digests)
        if digests.dtype != np.uint8 or digests.shape != (membership.shape[1], _ROW_DIGEST_BYTES):
            raise InputError(
                f"row_digests must be uint8 [{membership.shape[1]}, {_ROW_DIGEST_BYTES}], "
                f"got {digests.dtype} {digests.shape}"
            )
        if not self.state:
            raise InputError("state must hold at least one stacked tensor")
        for name, tensor in self.state.items():
            if not isinstance(tensor, Tensor) or tensor.ndim < 1 or tensor.shape[0] != n:
                raise InputError(f"state[{name!r}] must be a tensor with leading dimension {n}")
        membership = membership.copy()
        membership.flags.writeable = False
        digests = digests.copy()
        digests.flags.writeable = False
        object.__setattr__(self, "membership", membership)
        object.__setattr__(self, "row_digests", digests)
        object.__setattr__(self, "state", MappingProxyType(dict(self.state)))
        object.__setattr__(self, "model_kwargs", MappingProxyType(dict(self.model_kwargs)))

    @property
    def n_shadows(self) -> int:
        """Number of shadow models N."""
        return self.spec.n_shadows

    @property
    def n_samples(self) -> int:
        """Number of rows n of the shadow data."""
        return int(self.membership.shape[1])

    @property
    def device(self) -> torch.device:
        """Where the stacked parameters live."""
        return next(iter(self.state.values())).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the shadows."""
        return self.spec.torch_dtype

    def logits(
        self, X: object, *, batch_size: int | None = None, chunk_size: int | None = None
    ) -> Tensor:
        """Outputs of every shadow on ``X`` at once: ``vmap`` over ``functional_call``.

        Args:
            X: ``[m, ...]`` features (tensor or array; moved to the shadows' device and dtype).
            batch_size: Rows per forward pass (None: all at once).
            chunk_size: Shadows per vmapped call (None: all at once), to bound memory.

        Returns:
            ``[N, m, C]`` tensor (no autograd graph).

        Example:
            >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
            >>> spec = ShadowSpec(model="logreg", n_shadows=2,
            ...                   training={"epochs": 1, "batch_size": 4, "lr": 1.0})
            >>> shadows = train_shadows(spec, X, y)
            >>> out = shadows.logits(X, batch_size=5)
            >>> torch.allclose(out[1], shadows.model(1)(X))
            True
        """
        features = _as_features(X).to(device=self.device, dtype=self.dtype)
        if batch_size is not None:
            check_int("batch_size", batch_size, minimum=1)
        if chunk_size is not None:
            check_int("chunk_size", chunk_size, minimum=1)
        template = self.template

        def forward(state: dict[str, Tensor], rows: Tensor) -> Tensor:
            return functional_call(template, state, (rows,))

        batched = vmap(forward, in_dims=(0, None), chunk_size=chunk_size)
        state = dict(self.state)
        step = features.shape[0] if batch_size is None else batch_size
        with torch.no_grad():
            parts = [
                batched(state, features[i : i + step]) for i in range(0, features.shape[0], step)
            ]
        return torch.cat(parts, dim=1)

    def model(self, k: int) -> nn.Module:
        """Shadow k as an ordinary ``nn.Module`` (a copy, in eval mode).

        Example:
            >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
            >>> spec = ShadowSpec(model="logreg", n_shadows=2,
            ...                   training={"epochs": 1, "batch_size": 4, "lr": 1.0})
            >>> type(train_shadows(spec, X, y).model(0)).__name__
            'LogisticRegression'
        """
        k = check_int("k", k, minimum=0)
        if k >= self.n_shadows:
            raise ConfigError(f"k must be in [0, {self.n_shadows - 1}], got {k}")
        module = copy.deepcopy(self.template)
        module.load_state_dict(
            {name: tensor[k] for name, tensor in self.state.items()}, strict=False
        )
        return module.eval()

    def locate(self, X: object, y: object) -> np.ndarray:
        """Row index in the shadow data of each ``(x, y)`` (matched by content), or −1 if absent.

        Example:
            >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
            >>> spec = ShadowSpec(model="logreg", n_shadows=2,
            ...                   training={"epochs": 1, "batch_size": 4, "lr": 1.0})
            >>> train_shadows(spec, X, y).locate(X[[3, 0]], y[[3, 1]]).tolist()
            [3, -1]
        """
        table = self._first_rows()
        return np.array([table.get(d.tobytes(), -1) for d in row_digests(X, y)], dtype=np.int64)

    def membership_for(self, X: object, y: object) -> np.ndarray:
        """``[N, m]`` membership of the rows ``(X, y)``, matched by content.

        A row that occurs in the shadow data several times is IN for a shadow if any copy is; a row
        that does not occur is OUT for every shadow.

        Example:
            >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
            >>> spec = ShadowSpec(model="logreg", n_shadows=2,
            ...                   training={"epochs": 1, "batch_size": 4, "lr": 1.0})
            >>> shadows = train_shadows(spec, X, y)
            >>> bool((shadows.membership_for(X, y) == shadows.membership).all())
            True
        """
        groups: dict[bytes, list[int]] = {}
        for j, digest in enumerate(self.row_digests):
            groups.setdefault(digest.tobytes(), []).append(j)
        wanted = row_digests(X, y)
        out = np.zeros((self.n_shadows, wanted.shape[0]), dtype=bool)
        for i, digest in enumerate(wanted):
            rows = groups.get(digest.tobytes())
            if rows is not None:
                out[:, i] = self.membership[:, rows].any(axis=1)
        return out

    def _first_rows(self) -> dict[bytes, int]:
        table: dict[bytes, int] = {}
        for j, digest in enumerate(self.row_digests):
            table.setdefault(digest.tobytes(), j)
        return table


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


class _NotVectorizable(RuntimeError):
    """vmap could not run the model's step."""


def _make_vmapped_step(
    template: nn.Module, config: SGDConfig, chunk_size: int | None
) -> Callable[..., dict[str, Tensor]]:
    loss_fn = LOSSES[config.loss]
    weight_decay, clip_norm, radius = (
        config.weight_decay,
        config.clip_norm,
        config.projection_radius,
    )

    def objective(
        params: dict[str, Tensor], buffers: dict[str, Tensor], xb: Tensor, yb: Tensor, wb: Tensor
    ) -> Tensor:
        outputs = functional_call(template, (params, buffers), (xb,))
        value = (loss_fn(outputs, yb) * wb).sum() / wb.sum().clamp(min=1.0)
        if weight_decay:
            value = value + 0.5 * weight_decay * sum(p.pow(2).sum() for p in params.values())
        return value

    gradient = grad(objective)

    def total_norm(tree: dict[str, Tensor]) -> Tensor:
        return torch.sqrt(sum(t.pow(2).sum() for t in tree.values()))

    def step(
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        xb: Tensor,
        yb: Tensor,
        wb: Tensor,
        lr: Tensor,
        active: Tensor,
    ) -> dict[str, Tensor]:
        g = gradient(params, buffers, xb, yb, wb)
        if clip_norm is not None:  # same rule as train_sgd: scale the whole gradient to norm <= C
            norm = total_norm(g)
            scale = torch.clamp(
                clip_norm / torch.clamp(norm, min=torch.finfo(norm.dtype).tiny), max=1.0
            )
            g = {k: t * scale for k, t in g.items()}
        v = {k: params[k] - lr * g[k] for k in params}
        if radius is not None:
            norm = total_norm(v)
            scale = torch.clamp(
                radius / torch.clamp(norm, min=torch.finfo(norm.dtype).tiny), max=1.0
            )
            v = {k: t * scale for k, t in v.items()}
        return {k: torch.where(active, v[k], params[k]) for k in params}

    return vmap(step, chunk_size=chunk_size)


def _epoch_batches(
    in_rows: list[Tensor],
    generators: list[torch.Generator],
    epoch: int,
    config: SGDConfig,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-model batches of one epoch, padded to a common number of steps and batch size.

    Returns ``idx [S, N, B]`` (global row ids), ``weights [S, N, B]``, ``active [S, N]`` and
    ``lr [S, N]``. Model k draws ``randperm(m_k)`` from its own generator, exactly as
    ``Schedule.build`` does, so its batches are those ``train_sgd`` would use.
    """
    batch = config.batch_size
    steps = [math.ceil(rows.numel() / batch) for rows in in_rows]
    most = max(steps)
    n_models = len(in_rows)
    idx = torch.zeros((n_models, most * batch), dtype=torch.int64)
    weights = torch.zeros((n_models, most * batch), dtype=dtype)
    active = torch.zeros((n_models, most), dtype=torch.bool)
    lr = torch.zeros((n_models, most), dtype=dtype)
    for k, (rows, generator) in enumerate(zip(in_rows, generators, strict=True)):
        m = rows.numel()
        perm = torch.randperm(m, generator=generator)
        idx[k, :m] = rows[perm]
        weights[k, :m] = 1.0
        active[k, : steps[k]] = True
        first = epoch * steps[k]
        lr[k, : steps[k]] = torch.tensor(
            [config.lr_at(first + s) for s in range(steps[k])], dtype=dtype
        )
    shape = (n_models, most, batch)
    return (
        idx.view(shape).transpose(0, 1).contiguous(),
        weights.view(shape).transpose(0, 1).contiguous(),
        active.t().contiguous(),
        lr.t().contiguous(),
    )


def _train_vectorized(
    spec: ShadowSpec,
    kwargs: Mapping[str, Any],
    X: Tensor,
    y: Tensor,
    membership: np.ndarray,
    device: torch.device,
    progress: ProgressFn | None,
    chunk_size: int | None,
) -> dict[str, Tensor]:
    models = _initial_models(spec, kwargs, device)
    template = copy.deepcopy(models[0]).eval()
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    buffers = {k: v.detach() for k, v in buffers.items()}
    del models
    config = spec.training
    step = _make_vmapped_step(template, config, chunk_size)
    in_rows = [torch.as_tensor(np.flatnonzero(row), dtype=torch.int64) for row in membership]
    generators = [
        torch.Generator().manual_seed(_shadow_config(spec, k).seed) for k in range(spec.n_shadows)
    ]
    total = spec.n_shadows * config.epochs
    first = True
    for epoch in range(config.epochs):
        idx, weights, active, lr = _epoch_batches(
            in_rows, generators, epoch, config, spec.torch_dtype
        )
        idx, weights, active, lr = (t.to(device) for t in (idx, weights, active, lr))
        for s in range(idx.shape[0]):
            rows = idx[s]
            try:
                params = step(params, buffers, X[rows], y[rows], weights[s], lr[s], active[s])
            except RuntimeError as exc:  # includes vmap's missing batching rules (a subclass)
                if not first:
                    raise
                raise _NotVectorizable(str(exc)) from exc
            first = False
        report(progress, (epoch + 1) * spec.n_shadows, total, "shadows")
    keys = template.state_dict().keys()
    merged = {**buffers, **params}
    return {key: merged[key].detach().clone() for key in keys}


def _train_sequential(
    spec: ShadowSpec,
    kwargs: Mapping[str, Any],
    X: Tensor,
    y: Tensor,
    membership: np.ndarray,
    device: torch.device,
    progress: ProgressFn | None,
) -> dict[str, Tensor]:
    total = spec.n_shadows * spec.training.epochs
    states: list[dict[str, Tensor]] = []
    for k, model in enumerate(_initial_models(spec, kwargs, device)):
        rows = torch.as_tensor(np.flatnonzero(membership[k]), dtype=torch.int64, device=X.device)
        result = train_sgd(model, X[rows], y[rows], _shadow_config(spec, k))
        states.append(result.params)
        report(progress, (k + 1) * spec.training.epochs, total, "shadows")
    return {key: torch.stack([s[key] for s in states]) for key in states[0]}


def _cache_key(spec: ShadowSpec, kwargs: Mapping[str, Any], digest: str) -> str:
    payload = {
        "format": SHADOW_CACHE_VERSION,
        "spec": spec.to_dict(),
        "model_kwargs": json.loads(_canonical_json(dict(kwargs))),
        "data": digest,
    }
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()


def _cache_path(cache_dir: str | os.PathLike[str], key: str) -> Path:
    return Path(cache_dir) / f"shadows-{key}.pt"


def _load_cached(
    path: Path, key: str, spec: ShadowSpec, template: nn.Module, n_samples: int
) -> tuple[dict[str, Tensor], np.ndarray, np.ndarray] | None:
    """(state, membership, row digests) from ``path``, or None (with a warning) if it is unfit."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache file is retrained
        warnings.warn(
            f"{path}: unreadable shadow cache ({type(exc).__name__}: {exc}); retraining",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    expected = template.state_dict()
    n = spec.n_shadows
    problem = None
    if not isinstance(payload, dict) or payload.get("format") != SHADOW_CACHE_VERSION:
        problem = "unknown format"
    elif payload.get("key") != key:
        problem = "key mismatch"
    else:
        membership, digests, state = (
            payload.get("membership"),
            payload.get("row_digests"),
            payload.get("state"),
        )
        if (
            not isinstance(membership, Tensor)
            or membership.dtype != torch.bool
            or tuple(membership.shape) != (n, n_samples)
        ):
            problem = "bad membership"
        elif (
            not isinstance(digests, Tensor)
            or digests.dtype != torch.uint8
            or tuple(digests.shape) != (n_samples, _ROW_DIGEST_BYTES)
        ):
            problem = "bad row digests"
        elif not isinstance(state, dict) or set(state) != set(expected):
            problem = "state keys differ from the model's"
        else:
            for name, ref in expected.items():
                tensor = state[name]
                if (
                    not isinstance(tensor, Tensor)
                    or tuple(tensor.shape) != (n, *ref.shape)
                    or tensor.dtype != ref.dtype
                ):
                    problem = f"state[{name!r}] has the wrong shape or dtype"
                    break
    if problem is not None:
        warnings.warn(
            f"{path}: inconsistent shadow cache ({problem}); retraining",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return dict(state), membership.numpy().copy(), digests.numpy().copy()


def _save_cached(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".shadows-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def train_shadows(
    spec: ShadowSpec,
    X: object,
    y: object,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    device: torch.device | str | None = None,
    vectorize: bool = True,
    chunk_size: int | None = None,
) -> ShadowSet:
    """Train ``spec.n_shadows`` shadow models on balanced random halves of ``(X, y)``.

    Args:
        spec: The :class:`ShadowSpec`.
        X: ``[n, features...]`` shadow data (tensor or array); cast to ``spec.dtype``.
        y: ``[n]`` integer labels.
        cache_dir: Directory of the on-disk cache (None: no cache). A hit loads instead of training.
        progress: Called as ``progress(done, total, "shadows")`` in units of model-epochs
            (``total = N · epochs``), after every epoch (vectorised) or every model (sequential);
            a cache hit reports ``(total, total)`` once.
        device: Where to train (None: ``X``'s device if it is a tensor, else the CPU).
        vectorize: Train all models together with ``vmap`` (falls back to the loop with a
            ``RuntimeWarning`` when the model does not vectorise); False runs the loop.
        chunk_size: Models per vmapped call (None: all), to bound memory.

    Returns:
        :class:`ShadowSet`.

    Raises:
        InputError: Bad shapes, NaN/inf features, non-integer labels, a shadow with no IN rows.
        ConfigError: The model cannot be built as specified.

    Example:
        >>> X = torch.randn(30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        >>> y = torch.arange(30) % 3
        >>> spec = ShadowSpec(model="mlp", model_kwargs={"hidden": [8]}, n_shadows=4,
        ...                   training={"epochs": 2, "batch_size": 8, "lr": 0.1, "seed": 7})
        >>> a = train_shadows(spec, X, y)
        >>> b = train_shadows(spec, X, y, vectorize=False)
        >>> all(torch.allclose(a.state[k], b.state[k], atol=1e-12) for k in a.state)
        True
    """
    if not isinstance(spec, ShadowSpec):
        raise ConfigError(f"spec must be a ShadowSpec, got {type(spec).__name__}")
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, minimum=1)
    features = _as_features(X)
    labels = _as_labels(y, features.shape[0])
    if device is None:
        device = features.device
    device = torch.device(device)
    kwargs = _resolve_model_kwargs(spec, features, labels)
    digest = data_digest(features, labels)
    key = _cache_key(spec, kwargs, digest)
    template = _build(spec, kwargs, torch.Generator().manual_seed(0)).to(device)
    n = int(features.shape[0])

    path = None if cache_dir is None else _cache_path(cache_dir, key)
    if path is not None and path.is_file():
        cached = _load_cached(path, key, spec, template, n)
        if cached is not None:
            state, membership, digests = cached
            report(
                progress,
                spec.n_shadows * spec.training.epochs,
                spec.n_shadows * spec.training.epochs,
                "shadows",
            )
            return ShadowSet(
                spec=spec,
                model_kwargs=kwargs,
                state={k: v.to(device) for k, v in state.items()},
                membership=membership,
                row_digests=digests,
                data_digest=digest,
                key=key,
                template=template,
                from_cache=True,
                vectorized=None,
            )

    membership = balanced_membership(
        n_shadows=spec.n_shadows, n_samples=n, pkeep=spec.pkeep, seed=spec.training.seed
    )
    empty = np.flatnonzero(membership.sum(axis=1) == 0)
    if empty.size:
        raise InputError(
            f"shadows {empty.tolist()[:5]} have no training rows: "
            f"n = {n} is too small for {spec.n_shadows} shadows"
        )
    data_X = features.to(device=device, dtype=spec.torch_dtype)
    data_y = labels.to(device)
    vectorized = bool(vectorize)
    state = None
    if vectorized:
        try:
            state = _train_vectorized(
                spec, kwargs, data_X, data_y, membership, device, progress, chunk_size
            )
        except _NotVectorizable as exc:
            warnings.warn(
                f"model {spec.model!r} does not vectorise with torch.func.vmap ({exc}); "
                "training the shadows one at a time",
                RuntimeWarning,
                stacklevel=2,
            )
            vectorized = False
    if state is None:
        state = _train_sequential(spec, kwargs, data_X, data_y, membership, device, progress)
    digests = row_digests(features, labels)
    if path is not None:
        _save_cached(
            path,
            {
                "format": SHADOW_CACHE_VERSION,
                "key": key,
                "spec": _canonical_json(spec.to_dict()),
                "membership": torch.from_numpy(membership.copy()),
                "row_digests": torch.from_numpy(digests.copy()),
                "state": {k: v.detach().cpu() for k, v in state.items()},
            },
        )
    return ShadowSet(
        spec=spec,
        model_kwargs=kwargs,
        state=state,
        membership=membership,
        row_digests=digests,
        data_digest=digest,
        key=key,
        template=template,
        from_cache=False,
        vectorized=vectorized,
    )
