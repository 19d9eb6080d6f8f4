"""The job behind ``certunlearn fit``: train with HF-OCU statistics and create a model's state directory.

The user names the data (an embedded dataset or a ``.npz`` / ``.pt`` file with ``X``, ``y``), the
model (a zoo name or ``"package.module:factory"`` with its arguments) and the training options, on
the command line or in a TOML file (:meth:`FitSpec.from_toml`). :func:`run_fit` loads the data
(seeded split, standardised, rows clipped to the public norm ``clip_norm``), trains by mini-batch SGD
while recording the HF-OCU statistics, and creates the state directory
(:meth:`certunlearn.service.DeletionService.create`) that later deletion requests are served from.
The defaults are those of the demo (:class:`certunlearn.jobs.setup.SoftmaxSetup`), which train the
embedded datasets well with softmax regression.

Example:
    >>> import tempfile
    >>> spec = FitSpec(data="wine", epochs=2, batch_size=32)
    >>> service = run_fit(spec, tempfile.mkdtemp() + "/state")
    >>> status = service.status()
    >>> status["releases"], status["tracked"], status["certificate"]["certificate"], status["request_defaults"]
    (0, 143, 'refine', {'epsilon': 1.0, 'delta': 1e-05})
    >>> service.close()
    >>> FitSpec(data="wine", track_fraction=0.0)
    Traceback (most recent call last):
    ...
    certunlearn.errors.ConfigError: track_fraction must be in (0, 1], got 0.0
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certunlearn.certify.ledger import LedgerPolicy
from certunlearn.errors import ConfigError, InputError
from certunlearn.jobs.setup import SoftmaxSetup
from certunlearn.progress import ProgressFn
from certunlearn.validation import (
    check_choice,
    check_int,
    check_nonnegative,
    check_open_unit,
    check_positive,
    check_real,
)

if TYPE_CHECKING:
    from certunlearn.service import DeletionService

__all__ = ["FILE_SUFFIXES", "FitSpec", "run_fit"]

FILE_SUFFIXES = (".npz", ".pt")
"""Data files ``fit`` reads (anything else must be an embedded dataset name)."""

_DEMO = SoftmaxSetup()  # the demo's defaults, defined once there


@dataclass(frozen=True, slots=True)
class FitSpec:
    """What to train and how, for a new state directory.

    Attributes:
        data: Embedded dataset name (``digits``, ``wine``, ``breast_cancer``) or a ``.npz`` / ``.pt``
            file with ``X``, ``y`` (optionally ``X_test``, ``y_test``); a file is recorded by its
            absolute path and its rows' digest (a changed file is refused when the state is opened).
        model: Zoo name (``logreg``, ``mlp``, ``cnn``) or ``"package.module:factory"``.
        model_args: Factory keyword arguments (JSON values; ``dtype`` as a name such as
            ``"float64"``); for zoo models ``in_features`` and ``num_classes`` default to the data's.
        epochs: Training epochs.
        batch_size: Minibatch size.
        lr: Initial step size.
        lr_decay: Per-step decay of the step size.
        weight_decay: L2 regularisation λ (the strong convexity of the certificates).
        seed: Seed of the train/test split, the batch schedule and the tracked-id choice.
        clip_norm: Public bound every standardised row is clipped to (the certificate's feature
            norm); None: no clipping, and releases of softmax regression are then uncertified.
        test_fraction: Held-out fraction of the rows (for reports' test accuracy), in [0, 1).
        standardize: Centre and scale the features by the training split's statistics.
        track_fraction: Fraction of the training ids whose statistics are recorded (the ids that can
            be deleted later), chosen by ``seed``; 1.0 (default) tracks all.
        certificate: ``refine``, ``worst-case`` or None (refine wherever it applies).
        sensitivity_budget: Public budget Δ_b of refine releases (None: the default rule).
        storage_dtype: ``float32`` / ``float64`` / ``bfloat16`` statistics (None: the model's dtype).
        epsilon: ε suggested for later requests (stored in the state; each request states its own).
        delta: δ suggested for later requests.
        policy: Limits enforced on every request (:class:`~certunlearn.certify.ledger.LedgerPolicy`
            or a mapping of its fields: ``epsilon``, ``delta``, ``max_deletions``,
            ``max_sensitivity``, ``max_releases``, ``require_certified``); None: no limits.
    """

    data: str
    model: str = "logreg"
    model_args: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = _DEMO.epochs
    batch_size: int = _DEMO.batch_size
    lr: float = _DEMO.lr
    lr_decay: float = _DEMO.lr_decay
    weight_decay: float = _DEMO.weight_decay
    seed: int = _DEMO.seed
    clip_norm: float | None = _DEMO.clip_norm
    test_fraction: float = 0.2
    standardize: bool = True
    track_fraction: float = 1.0
    certificate: str | None = None
    sensitivity_budget: float | None = None
    storage_dtype: str | None = None
    epsilon: float = 1.0
    delta: float = 1e-5
    policy: LedgerPolicy | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        from certunlearn.service.state import ModelSpec, policy_from

        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"data must be a dataset name or a file path, got {self.data!r}")
        if Path(self.data).suffix not in FILE_SUFFIXES:
            from certunlearn.data import DATASETS

            if self.data not in DATASETS:
                raise ConfigError(f"unknown dataset {self.data!r}: use one of {sorted(DATASETS)} or a file ending "
                                  f"in {' or '.join(FILE_SUFFIXES)}")
        ModelSpec(self.model, self.model_args)  # name and JSON arguments
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_positive("lr", self.lr)
        check_real("lr_decay", self.lr_decay)
        check_nonnegative("weight_decay", self.weight_decay)
        check_int("seed", self.seed, minimum=0)
        if self.clip_norm is not None:
            check_positive("clip_norm", self.clip_norm)
        fraction = check_real("test_fraction", self.test_fraction)
        if not 0.0 <= fraction < 1.0:
            raise ConfigError(f"test_fraction must be in [0, 1), got {self.test_fraction!r}")
        if not isinstance(self.standardize, bool):
            raise ConfigError(f"standardize must be true or false, got {self.standardize!r}")
        track = check_real("track_fraction", self.track_fraction)
        if not 0.0 < track <= 1.0:
            raise ConfigError(f"track_fraction must be in (0, 1], got {self.track_fraction!r}")
        if self.certificate is not None:
            check_choice("certificate", self.certificate, ("refine", "worst-case"))
        if self.sensitivity_budget is not None:
            check_positive("sensitivity_budget", self.sensitivity_budget)
        if self.storage_dtype is not None:
            check_choice("storage_dtype", self.storage_dtype, ("float32", "float64", "bfloat16"))
        check_positive("epsilon", self.epsilon)
        check_open_unit("delta", self.delta)
        object.__setattr__(self, "policy", policy_from(self.policy))

    def sgd_config(self) -> Any:
        """The :class:`~certunlearn.train.SGDConfig` of this spec."""
        from certunlearn.train import SGDConfig

        return SGDConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, lr_decay=self.lr_decay,
                         weight_decay=self.weight_decay, seed=self.seed)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **overrides: Any) -> FitSpec:
        """A spec from a TOML file: top-level keys are the attributes, ``[model_args]`` and ``[policy]``
        tables; ``overrides`` (e.g. command-line options) replace the file's values.

        Raises:
            InputError: The file cannot be read.
            ConfigError: Not TOML, an unknown key (named, with the allowed ones), or an invalid value.

        Example:
            >>> import tempfile
            >>> f = Path(tempfile.mkdtemp()) / "fit.toml"
            >>> _ = f.write_text('data = "wine"\\nepochs = 3\\n[policy]\\nepsilon = 1.0\\ndelta = 1e-5\\nmax_releases = 50\\n')
            >>> spec = FitSpec.from_toml(f, epochs=4)
            >>> spec.epochs, spec.policy.max_releases
            (4, 50)
            >>> _ = f.write_text('data = "wine"\\nepoch = 3\\n')
            >>> FitSpec.from_toml(f)
            Traceback (most recent call last):
            ...
            certunlearn.errors.ConfigError: ...fit.toml: unknown keys ['epoch']; allowed: batch_size, certificate, ...
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read the fit config ({exc})") from exc
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
        allowed = sorted(f.name for f in fields(cls))
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown}; allowed: {', '.join(allowed)}")
        raw.update(overrides)
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc


def _tracked(spec: FitSpec, n: int) -> list[int] | None:
    """The tracked ids: all (None) or a seeded choice of ceil(track_fraction · n) of them."""
    if spec.track_fraction >= 1.0:
        return None
    import numpy as np

    count = max(1, math.ceil(spec.track_fraction * n))
    return sorted(int(i) for i in np.random.default_rng(spec.seed).choice(n, size=count, replace=False))


def run_fit(spec: FitSpec, state_dir: str | os.PathLike[str], progress: ProgressFn | None = None, *,
            ledger_url: str | None = None) -> DeletionService:
    """Train with HF-OCU statistics and create the state directory ``state_dir``.

    Args:
        spec: What to train.
        state_dir: A new or empty directory (checked before any work).
        progress: Optional training progress callback.
        ledger_url: A PostgreSQL URL for the ledger (several hosts serving one model; no password in
            it), or None for ``ledger.sqlite`` in the state (docs/service.md). Deployment, not
            training: it is not part of :class:`FitSpec`.

    Returns:
        The open :class:`~certunlearn.service.DeletionService` (close it when done).

    Raises:
        InputError: ``state_dir`` is a file or a non-empty directory; the data file is missing or unreadable.
        ConfigError: The model cannot be built for the data, or an option is invalid.
    """
    from certunlearn.models import MODELS
    from certunlearn.service import DataRef, DeletionService, ModelSpec
    from certunlearn.service.sql import check_ledger_url
    from certunlearn.service.state import check_new_state_path
    from certunlearn.unlearn import HFOCU

    check_new_state_path(state_dir)  # a bad target costs nothing and changes nothing
    if ledger_url is not None:
        check_ledger_url(ledger_url)  # before training, too
    source = spec.data if Path(spec.data).suffix not in FILE_SUFFIXES else str(Path(spec.data).resolve())
    ref = DataRef(source, {"seed": spec.seed, "clip_norm": spec.clip_norm, "test_fraction": spec.test_fraction,
                           "standardize": spec.standardize})
    data = ref.load()
    args = dict(spec.model_args)
    if spec.model in MODELS:
        args.setdefault("in_features", data.num_features)
        args.setdefault("num_classes", data.num_classes)
    model_spec = ModelSpec(spec.model, args)
    try:
        hf = HFOCU(model_spec.build(), spec.sgd_config(), feature_norm_bound=spec.clip_norm,
                   certificate=spec.certificate, sensitivity_budget=spec.sensitivity_budget,
                   storage_dtype=spec.storage_dtype, track_ids=_tracked(spec, data.n_train))
    except TypeError as exc:
        raise ConfigError(f"cannot set up HF-OCU for model {spec.model!r}: {exc}") from exc
    hf.fit(data.X_train, data.y_train, progress=progress)
    return DeletionService.create(state_dir, hf=hf, X=data.X_train, y=data.y_train, model_spec=model_spec,
                                  data_ref=ref, policy=spec.policy, ledger_url=ledger_url,
                                  request_defaults={"epsilon": spec.epsilon, "delta": spec.delta})
