"""The job behind ``certunlearn init-state``: a durable state for a trained model and a post-hoc method.

The user brings what ``certunlearn forget`` takes (the architecture: a registered name or
``"package.module:factory"``; the trained ``state_dict``; the training data file, ids = rows of ``X``;
a post-hoc method and its options). The job creates a state directory of kind ``posthoc``
(:meth:`certunlearn.service.DeletionService.create_posthoc`): the trained weights copied into it with
their digest, the data file's reference and digest, the method and options, and a ledger; later
requests are served from it by ``certunlearn forget --state``, idempotently and crash-safely.

Example:
    >>> import os, tempfile, numpy as np, torch
    >>> from certunlearn.models import build_model
    >>> d = tempfile.mkdtemp()
    >>> np.savez(os.path.join(d, "data.npz"), X=np.random.default_rng(0).normal(size=(30, 4)) / 4,
    ...          y=np.arange(30) % 2)
    >>> torch.save(build_model("logreg", in_features=4, num_classes=2).state_dict(), os.path.join(d, "w.pt"))
    >>> spec = InitStateSpec(model="logreg", weights=os.path.join(d, "w.pt"), data=os.path.join(d, "data.npz"),
    ...                      method="newton", weight_decay=0.1, feature_norm_bound=1.0)
    >>> with run_init_state(spec, os.path.join(d, "state")) as service:
    ...     out = service.forget("r1", [3, 7], epsilon=1.0, delta=1e-5)
    >>> out.status, out.summary["certified"], service.state.kind
    ('released', True, 'posthoc')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certunlearn.errors import ConfigError
from certunlearn.validation import check_choice, check_nonnegative, check_positive

if TYPE_CHECKING:
    from certunlearn.service import DeletionService

__all__ = ["InitStateSpec", "run_init_state"]


@dataclass(frozen=True, slots=True)
class InitStateSpec:
    """What a post-hoc state is made of.

    Attributes:
        model: Registered model name (``logreg``, ``mlp``, ``cnn``) or ``"package.module:factory"``.
        weights: Path of the trained ``state_dict`` (loaded weights-only, copied into the state).
        data: Path of the training data (``.npz`` / ``.pt`` with ``X``, ``y``), as the model saw it.
        method: A post-hoc unlearner name (``curenewton``, ``newton``, ...).
        options: Constructor options of the method (JSON values: ``cubic_reg``, ``sensitivity_budget`` ...).
        model_args: Factory arguments; for registered models ``in_features`` and ``num_classes``
            default to the data's.
        weight_decay: λ the model was trained with (the method's ``weight_decay``), or None.
        feature_norm_bound: Public bound on the rows' norm, or None.
        certificate: ``refine``, ``worst-case`` or None (refine wherever it applies).
        ledger_url: None (``ledger.sqlite`` in the state) or a ``postgresql://`` URL without a password.
    """

    model: str
    weights: str
    data: str
    method: str = "curenewton"
    options: dict[str, Any] = field(default_factory=dict)
    model_args: dict[str, Any] = field(default_factory=dict)
    weight_decay: float | None = None
    feature_norm_bound: float | None = None
    certificate: str | None = None
    ledger_url: str | None = None

    def __post_init__(self) -> None:
        if self.weight_decay is not None:
            check_nonnegative("weight_decay", self.weight_decay)
        if self.feature_norm_bound is not None:
            check_positive("feature_norm_bound", self.feature_norm_bound)
        if self.certificate is not None:
            check_choice("certificate", self.certificate, ("refine", "worst-case"))
        named = {"weight_decay", "feature_norm_bound", "certificate"} & set(self.options)
        if named:
            raise ConfigError(f"give {sorted(named)} by their own options, not as method options")

    def method_options(self) -> dict[str, Any]:
        """The method's constructor options (``options`` with the named ones that are set)."""
        named = {"weight_decay": self.weight_decay, "feature_norm_bound": self.feature_norm_bound,
                 "certificate": self.certificate}
        return {**{k: v for k, v in named.items() if v is not None}, **self.options}


def run_init_state(spec: InitStateSpec, state_dir: str | os.PathLike[str]) -> DeletionService:
    """Create the post-hoc state at ``state_dir`` (new or empty) and return it open.

    Raises:
        InputError: A missing or unreadable weights or data file; ``state_dir`` not usable.
        ConfigError: A model, method or options that do not fit.
    """
    import torch

    from certunlearn.errors import InputError
    from certunlearn.models import MODELS
    from certunlearn.service import DataRef, DeletionService, ModelSpec
    from certunlearn.service.loading import posthoc_dataset
    from certunlearn.service.state import check_new_state_path

    check_new_state_path(state_dir)  # before any work: a bad --state costs nothing and changes nothing
    data = os.path.abspath(spec.data)
    dataset = posthoc_dataset(DataRef(data, {}))
    args = dict(spec.model_args)
    if spec.model in MODELS:
        args.setdefault("in_features", int(dataset.X_train.shape[1]))
        args.setdefault("num_classes", dataset.num_classes)
    try:
        weights = torch.load(Path(spec.weights), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise InputError(f"{spec.weights}: no such file") from exc
    except Exception as exc:  # truncated, not a weights-only file
        raise InputError(f"{spec.weights}: not a readable state_dict ({type(exc).__name__}: {exc})") from exc
    return DeletionService.create_posthoc(state_dir, model_spec=ModelSpec(spec.model, args), weights=weights,
                                          method=spec.method, options=spec.method_options(),
                                          data_ref=DataRef(data, {}), ledger_url=spec.ledger_url)
