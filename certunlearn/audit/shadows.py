r"""Shadow (reference) models for membership inference: what to train, the trained set, the cache.

LiRA (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022) and RMIA
(Zarifzadeh, Liu & Shokri, "Low-Cost High-Power Membership Inference Attacks", ICML 2024) compare a
target model's output on an example with those of N shadow models trained on random halves of a
data pool (docs/auditing.md, "MIA-L"). :func:`train_shadows` trains them into a :class:`ShadowSet`:

* **Balanced membership** (Carlini et al., S&P 2022): a matrix ``U [N, n]`` of independent uniforms
  is ranked *down each column*; example j is IN for shadow k iff the rank of ``U[k, j]`` among
  ``U[:, j]`` is below ``pkeep·N``. Every example is therefore IN for exactly ``pkeep·N`` shadows
  (each shadow gets about ``pkeep·n`` examples, not exactly).
* **Training** of shadow k is :func:`certunlearn.train.sgd.train_sgd` on its IN rows with the
  spec's :class:`~certunlearn.train.config.SGDConfig` and a seed of its own, or the same step rule
  on the same batches for all N at once (:func:`certunlearn.train.many.train_many_vectorized`,
  equal to rounding). A model ``vmap`` cannot run falls back to the loop with a ``RuntimeWarning``.
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

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from certunlearn.data_checks import as_class_labels, as_features
from certunlearn.digest import (
    ROW_DIGEST_BYTES,
    canonical_json,
    data_digest,
    json_digest,
    row_digests,
)
from certunlearn.errors import ConfigError, InputError
from certunlearn.progress import ProgressFn, report
from certunlearn.train import factory, many
from certunlearn.train.config import SGDConfig
from certunlearn.validation import check_choice, check_int, check_open_unit

__all__ = [
    "SHADOW_CACHE_VERSION",
    "SHADOW_DTYPES",
    "ShadowSet",
    "ShadowSpec",
    "balanced_membership",
    "train_shadows",
]

SHADOW_CACHE_VERSION = 2
"""Format version of the cache files (part of the cache key). 2: vectorised training clips and
projects with ``train_sgd``'s norm (of all parameters concatenated); version-1 weights of specs
with ``clip_norm`` or ``projection_radius`` can differ from it in the last bits."""

SHADOW_DTYPES: Mapping[str, torch.dtype] = MappingProxyType({"float32": torch.float32, "float64": torch.float64})
"""Allowed ``ShadowSpec.dtype`` values."""

_PURPOSE_MEMBERSHIP, _PURPOSE_INIT, _PURPOSE_BATCHES = 0, 1, 2


def _check_pkeep(pkeep: object, n: int) -> float:
    """``pkeep`` in (0, 1) with ``pkeep · n`` an integer in [1, n − 1]."""
    value = check_open_unit("pkeep", pkeep)
    kept = value * n
    if abs(kept - round(kept)) > 1e-9 or not 1 <= round(kept) <= n - 1:
        raise ConfigError(
            f"pkeep * n_shadows must be an integer in [1, {n - 1}], got {pkeep!r} * {n} = {kept!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class ShadowSpec:
    """What to train: N shadow models of one architecture, each on a random ``pkeep`` share.

    Attributes:
        model: A registered model name (``"mlp"``, ``"logreg"``, ``"cnn"``) or
            ``"package.module:factory"``, called with ``model_kwargs``, a seeded ``generator``,
            ``dtype``, and ``in_features`` / ``num_classes`` from the data where it accepts them
            and ``model_kwargs`` does not set them (:mod:`certunlearn.train.factory`).
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
        factory.check_model_name(self.model)
        training = self.training
        if isinstance(training, Mapping):
            training = SGDConfig.from_dict(dict(training))
            object.__setattr__(self, "training", training)
        if not isinstance(training, SGDConfig):
            raise ConfigError(f"training must be an SGDConfig or a dict, got {type(training).__name__}")
        if training.loss != "cross_entropy":
            raise ConfigError("shadow models are classifiers: training.loss must be 'cross_entropy', "
                              f"got {training.loss!r}")
        _check_pkeep(self.pkeep, check_int("n_shadows", self.n_shadows, minimum=2))
        check_choice("dtype", self.dtype, SHADOW_DTYPES)
        object.__setattr__(self, "model_kwargs", MappingProxyType(factory.check_model_kwargs(self.model_kwargs)))

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
        kwargs = json.loads(canonical_json(dict(self.model_kwargs)).decode())
        return {"model": self.model, "model_kwargs": kwargs, "training": self.training.to_dict(),
                "n_shadows": self.n_shadows, "pkeep": self.pkeep, "dtype": self.dtype}

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


def _derived_seed(seed: int, purpose: int, k: int) -> int:
    """A 63-bit seed for (purpose, shadow k), independent of every other pair."""
    sequence = np.random.SeedSequence(seed, spawn_key=(purpose, k))
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def balanced_membership(*, n_shadows: int, n_samples: int, pkeep: float = 0.5, seed: int = 0) -> np.ndarray:
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
    pkeep = _check_pkeep(check_open_unit("pkeep", pkeep), n)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_PURPOSE_MEMBERSHIP,)))
    uniforms = rng.random((n, samples))
    ranks = np.argsort(np.argsort(uniforms, axis=0, kind="stable"), axis=0, kind="stable")
    return ranks < int(round(pkeep * n))


def _build(spec: ShadowSpec, kwargs: Mapping[str, Any], seed: int, device: torch.device) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    return factory.build_seeded_model(spec.model, kwargs, generator=generator, dtype=spec.torch_dtype).to(device)


def _initial_models(spec: ShadowSpec, kwargs: Mapping[str, Any], device: torch.device) -> list[nn.Module]:
    seeds = [_derived_seed(spec.training.seed, _PURPOSE_INIT, k) for k in range(spec.n_shadows)]
    return [_build(spec, kwargs, s, device) for s in seeds]


def _shadow_config(spec: ShadowSpec, k: int) -> SGDConfig:
    return replace(spec.training, seed=_derived_seed(spec.training.seed, _PURPOSE_BATCHES, k))


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
        row_digests: ``[n, 16]`` uint8 digests of the shadow data's rows (:func:`certunlearn.digest.row_digests`).
        data_digest: :func:`certunlearn.digest.data_digest` of the shadow data.
        key: The cache key (SHA-256 hex of the configuration and the data digest).
        template: An instance of the architecture, in eval mode, whose own weights are unused: the
            structure :func:`torch.func.functional_call` runs with each shadow's ``state``.
        from_cache: Whether the models were loaded from the cache instead of trained.
        vectorized: Whether training ran vectorised (False: the sequential loop; None: cached).

    Example:
        >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
        >>> spec = ShadowSpec(model="logreg", n_shadows=2, training={"epochs": 1, "batch_size": 4, "lr": 1.0})
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
                f"membership must be a bool array [{n}, n], got {membership.dtype} {membership.shape}"
            )
        digests = np.asarray(self.row_digests)
        if digests.dtype != np.uint8 or digests.shape != (membership.shape[1], ROW_DIGEST_BYTES):
            raise InputError(
                f"row_digests must be uint8 [{membership.shape[1]}, {ROW_DIGEST_BYTES}], "
                f"got {digests.dtype} {digests.shape}"
            )
        if not self.state:
            raise InputError("state must hold at least one stacked tensor")
        for name, tensor in self.state.items():
            if not isinstance(tensor, Tensor) or tensor.ndim < 1 or tensor.shape[0] != n:
                raise InputError(f"state[{name!r}] must be a tensor with leading dimension {n}")
        for name, array in (("membership", membership.copy()), ("row_digests", digests.copy())):
            array.flags.writeable = False
            object.__setattr__(self, name, array)
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

    def logits(self, X: object, *, batch_size: int | None = None, chunk_size: int | None = None) -> Tensor:
        """Outputs of every shadow on ``X`` at once (:func:`~certunlearn.train.many.stacked_outputs`).

        Args:
            X: ``[m, ...]`` features (tensor or array; moved to the shadows' device and dtype).
            batch_size: Rows per forward pass (None: all at once).
            chunk_size: Shadows per vmapped call (None: all at once), to bound memory.

        Returns:
            ``[N, m, C]`` tensor (no autograd graph).

        Example:
            >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
            >>> spec = ShadowSpec(model="logreg", n_shadows=2, training={"epochs": 1, "batch_size": 4, "lr": 1.0})
            >>> shadows = train_shadows(spec, X, y)
            >>> out = shadows.logits(X, batch_size=5)
            >>> torch.allclose(out[1], shadows.model(1)(X))
            True
        """
        features = as_features(X).to(device=self.device, dtype=self.dtype)
        if batch_size is not None:
            check_int("batch_size", batch_size, minimum=1)
        if chunk_size is not None:
            check_int("chunk_size", chunk_size, minimum=1)
        return many.stacked_outputs(
            self.template, self.state, features, batch_size=batch_size, chunk_size=chunk_size
        )

    def model(self, k: int) -> nn.Module:
        """Shadow k as an ordinary ``nn.Module`` (a copy, in eval mode).

        Example:
            >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
            >>> spec = ShadowSpec(model="logreg", n_shadows=2, training={"epochs": 1, "batch_size": 4, "lr": 1.0})
            >>> type(train_shadows(spec, X, y).model(0)).__name__
            'LogisticRegression'
        """
        k = check_int("k", k, minimum=0)
        if k >= self.n_shadows:
            raise ConfigError(f"k must be in [0, {self.n_shadows - 1}], got {k}")
        return many.unstacked_model(self.template, self.state, k)

    def locate(self, X: object, y: object) -> np.ndarray:
        """Row index in the shadow data of each ``(x, y)`` (matched by content), or −1 if absent.

        Example:
            >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
            >>> spec = ShadowSpec(model="logreg", n_shadows=2, training={"epochs": 1, "batch_size": 4, "lr": 1.0})
            >>> train_shadows(spec, X, y).locate(X[[3, 0]], y[[3, 1]]).tolist()
            [3, -1]
        """
        groups = self._rows_by_digest()
        return np.array([groups.get(d.tobytes(), [-1])[0] for d in row_digests(X, y)], dtype=np.int64)

    def membership_for(self, X: object, y: object) -> np.ndarray:
        """``[N, m]`` membership of the rows ``(X, y)``, matched by content.

        A row that occurs in the shadow data several times is IN for a shadow if any copy is; a row
        that does not occur is OUT for every shadow.

        Example:
            >>> X, y = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 2
            >>> spec = ShadowSpec(model="logreg", n_shadows=2, training={"epochs": 1, "batch_size": 4, "lr": 1.0})
            >>> shadows = train_shadows(spec, X, y)
            >>> bool((shadows.membership_for(X, y) == shadows.membership).all())
            True
        """
        groups = self._rows_by_digest()
        wanted = row_digests(X, y)
        out = np.zeros((self.n_shadows, wanted.shape[0]), dtype=bool)
        for i, digest in enumerate(wanted):
            rows = groups.get(digest.tobytes())
            if rows is not None:
                out[:, i] = self.membership[:, rows].any(axis=1)
        return out

    def _rows_by_digest(self) -> dict[bytes, list[int]]:
        """The rows of the shadow data holding each row digest, in order."""
        groups: dict[bytes, list[int]] = {}
        for j, digest in enumerate(self.row_digests):
            groups.setdefault(digest.tobytes(), []).append(j)
        return groups


def _trainer_args(spec: ShadowSpec, kwargs: Mapping[str, Any], membership: np.ndarray, device: torch.device,
                  X: Tensor, y: Tensor, progress: ProgressFn | None) -> dict[str, Any]:
    """The keyword arguments of :mod:`certunlearn.train.many`'s trainers for these shadows."""
    return {
        "models": _initial_models(spec, kwargs, device), "X": X, "y": y, "config": spec.training,
        "rows": [torch.as_tensor(np.flatnonzero(row), dtype=torch.int64) for row in membership],
        "seeds": [_shadow_config(spec, k).seed for k in range(spec.n_shadows)],
        "progress": progress, "label": "shadows",
    }


def _train_vectorized(args: dict[str, Any], chunk_size: int | None) -> dict[str, Tensor]:
    """All shadows at once (:func:`~certunlearn.train.many.train_many_vectorized`)."""
    return many.train_many_vectorized(**args, chunk_size=chunk_size)


def _train_sequential(args: dict[str, Any]) -> dict[str, Tensor]:
    """One ``train_sgd`` per shadow (:func:`~certunlearn.train.many.train_many_sequential`)."""
    return many.train_many_sequential(**args)


def _cache_key(spec: ShadowSpec, kwargs: Mapping[str, Any], digest: str) -> str:
    payload = {
        "format": SHADOW_CACHE_VERSION,
        "spec": spec.to_dict(),
        "model_kwargs": json.loads(canonical_json(dict(kwargs)).decode()),
        "data": digest,
    }
    return json_digest(payload)


def _is_tensor(value: object, dtype: torch.dtype, shape: tuple[int, ...]) -> bool:
    return isinstance(value, Tensor) and value.dtype == dtype and tuple(value.shape) == shape


def _cache_problem(payload: object, key: str, spec: ShadowSpec, template: nn.Module, n_samples: int) -> str | None:
    """What makes a loaded cache payload unusable, or None if it fits ``spec`` and the data."""
    if not isinstance(payload, dict) or payload.get("format") != SHADOW_CACHE_VERSION:
        return "unknown format"
    if payload.get("key") != key:
        return "key mismatch"
    n = spec.n_shadows
    if not _is_tensor(payload.get("membership"), torch.bool, (n, n_samples)):
        return "bad membership"
    if not _is_tensor(payload.get("row_digests"), torch.uint8, (n_samples, ROW_DIGEST_BYTES)):
        return "bad row digests"
    state, expected = payload.get("state"), template.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        return "state keys differ from the model's"
    for name, ref in expected.items():
        if not _is_tensor(state[name], ref.dtype, (n, *ref.shape)):
            return f"state[{name!r}] has the wrong shape or dtype"
    return None


def _load_cached(path: Path, key: str, spec: ShadowSpec, template: nn.Module,
                 n_samples: int) -> tuple[dict[str, Tensor], np.ndarray, np.ndarray] | None:
    """(state, membership, row digests) from ``path``, or None (with a warning) if it is unfit."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache file is retrained
        warnings.warn(f"{path}: unreadable shadow cache ({type(exc).__name__}: {exc}); retraining",
                      RuntimeWarning, stacklevel=3)
        return None
    problem = _cache_problem(payload, key, spec, template, n_samples)
    if problem is not None:
        warnings.warn(f"{path}: inconsistent shadow cache ({problem}); retraining", RuntimeWarning, stacklevel=3)
        return None
    return dict(payload["state"]), payload["membership"].numpy().copy(), payload["row_digests"].numpy().copy()


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


def _prepared(
    spec: ShadowSpec, X: object, y: object, device: torch.device | str | None
) -> tuple[Tensor, Tensor, torch.device, dict[str, Any], str, str, nn.Module]:
    """Validated ``(features, labels)``, the device, model kwargs, data digest, cache key, template."""
    features = as_features(X)
    labels = as_class_labels(y, features.shape[0])
    device = torch.device(features.device if device is None else device)
    kwargs = factory.resolve_model_kwargs(spec.model, spec.model_kwargs, features, labels)
    digest = data_digest(features, labels)
    template = _build(spec, kwargs, 0, device)
    return features, labels, device, kwargs, digest, _cache_key(spec, kwargs, digest), template


def _membership(spec: ShadowSpec, n: int) -> np.ndarray:
    """The balanced membership of ``spec``, refusing shadows left with no rows."""
    membership = balanced_membership(
        n_shadows=spec.n_shadows, n_samples=n, pkeep=spec.pkeep, seed=spec.training.seed
    )
    empty = np.flatnonzero(membership.sum(axis=1) == 0)
    if empty.size:
        raise InputError(f"shadows {empty.tolist()[:5]} have no training rows: "
                         f"n = {n} is too small for {spec.n_shadows} shadows")
    return membership


def _trained_state(
    spec: ShadowSpec, args: dict[str, Any], vectorize: bool, chunk_size: int | None
) -> tuple[dict[str, Tensor], bool]:
    """``(stacked state, whether it ran vectorised)``: vmap first, the loop as the fallback."""
    if vectorize:
        try:
            return _train_vectorized(args, chunk_size), True
        except many.NotVectorizableError as exc:
            warnings.warn(f"model {spec.model!r} does not vectorise with torch.func.vmap ({exc}); "
                          "training the shadows one at a time", RuntimeWarning, stacklevel=3)
    return _train_sequential(args), False


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
    features, labels, device, kwargs, digest, key, template = _prepared(spec, X, y, device)
    n = int(features.shape[0])
    shadow_set = partial(
        ShadowSet, spec=spec, model_kwargs=kwargs, data_digest=digest, key=key, template=template
    )
    path = None if cache_dir is None else Path(cache_dir) / f"shadows-{key}.pt"
    cached = None if path is None or not path.is_file() else _load_cached(path, key, spec, template, n)
    if cached is not None:
        state, membership, digests = cached
        total = spec.n_shadows * spec.training.epochs
        report(progress, total, total, "shadows")
        return shadow_set(
            state={k: v.to(device) for k, v in state.items()}, membership=membership, row_digests=digests,
            from_cache=True, vectorized=None,
        )
    membership = _membership(spec, n)
    data_X, data_y = features.to(device=device, dtype=spec.torch_dtype), labels.to(device)
    args = _trainer_args(spec, kwargs, membership, device, data_X, data_y, progress)
    state, vectorized = _trained_state(spec, args, vectorize, chunk_size)
    digests = row_digests(features, labels)
    if path is not None:
        _save_cached(path, {
            "format": SHADOW_CACHE_VERSION, "key": key, "spec": canonical_json(spec.to_dict()).decode(),
            "membership": torch.from_numpy(membership.copy()), "row_digests": torch.from_numpy(digests.copy()),
            "state": {k: v.detach().cpu() for k, v in state.items()},
        })
    return shadow_set(
        state=state, membership=membership, row_digests=digests, from_cache=False, vectorized=vectorized
    )
