"""What a state is made of, checked when it is created and loaded again when it is opened.

At creation (:meth:`DeletionService.create <certunlearn.service.deletion_service.DeletionService.create>`)
the fitted HF-OCU unlearner, its training rows, the model spec and the data reference must agree:
the reference reproduces the rows exactly and the spec builds the same architecture, or the state
could not be opened later. At opening, the data is loaded from the reference and its digest compared
with the recorded one (a data file changed after fit is an error), and the unlearner is loaded from
``hfocu/``.

A post-hoc state (kind ``posthoc``) holds the trained weights in ``weights/trained.pt`` and the raw
rows of a user's data file (ids = rows, exactly as the model saw them); on opening,
``get_unlearner(method)(model, **options).fit(X, y)`` rebuilds the unlearner and
:class:`PostHocServed` lets the service drive it (its replay advances only the deleted set: post-hoc
methods recompute every release from the trained weights for the cumulative deleted set).

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> from certunlearn.service.state import DataRef
    >>> from certunlearn.train import SGDConfig
    >>> from certunlearn.unlearn import HFOCU
    >>> ref = DataRef("wine", {"seed": 0, "clip_norm": 1.0})
    >>> data = ref.load()
    >>> hf = HFOCU(LogisticRegression(13, 3), SGDConfig(epochs=1, batch_size=64, lr=0.5, weight_decay=0.1),
    ...            feature_norm_bound=1.0).fit(data.X_train, data.y_train)
    >>> checked = checked_data_ref(hf, data.X_train, data.y_train, ref)
    >>> checked.data_digest == data_digest(data.X_train, data.y_train), data_problems(checked)
    (True, [])
    >>> checked_data_ref(hf, data.X_train[:-1], data.y_train[:-1], ref)
    Traceback (most recent call last):
    ...
    certunlearn.errors.ConfigError: X, y are not the rows the unlearner was fitted on (142 rows given, it has 143)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certunlearn.digest import array_digest, data_digest
from certunlearn.errors import ConfigError, InputError, StateError
from certunlearn.service.state import LAYOUT, DataRef, ModelSpec, StateFile

if TYPE_CHECKING:
    from torch import Tensor

    from certunlearn.data import Dataset
    from certunlearn.unlearn.base import UnlearnResult
    from certunlearn.unlearn.hfocu import HFOCU
    from certunlearn.unlearn.posthoc import PostHocUnlearner

__all__ = [
    "TRAINED_WEIGHTS",
    "PostHocServed",
    "build_posthoc",
    "certificate_settings",
    "check_architecture",
    "check_new_hfocu",
    "checked_data_ref",
    "data_problems",
    "load_data",
    "load_hfocu",
    "load_unlearner",
    "posthoc_certificate_settings",
    "posthoc_dataset",
    "posthoc_parts",
]

TRAINED_WEIGHTS = f"{LAYOUT['weights']}/trained.pt"
"""A post-hoc state's copy of the trained weights (relative to the state directory)."""


def check_new_hfocu(hf: object) -> None:
    """Refuse what cannot become a state: not a fitted HFOCU, deletions already made, its own ledger,
    declared assumptions (not storable: a state's constants must be derivable again)."""
    from certunlearn.unlearn.hfocu import HFOCU

    if not isinstance(hf, HFOCU):
        raise ConfigError(f"hf must be a fitted HFOCU, got {type(hf).__name__}")
    if not hasattr(hf, "deleted_"):
        raise ConfigError("hf is not fitted: call hf.fit(X, y) first")
    if hf.deleted_ids:
        raise ConfigError(f"hf has already forgotten {len(hf.deleted_ids)} ids: a state starts from a freshly "
                          "fitted unlearner (its requests then live in the state's ledger)")
    if hf.ledger is not None:
        raise ConfigError("hf has its own Ledger: a state's ledger is its SQLite ledger; give the limits as "
                          "DeletionService.create(..., policy=...)")
    if hf.assumptions is not None:
        raise ConfigError("hf was built with declared assumptions, which a state cannot store yet: use a model "
                          "whose constants are derived (softmax regression with feature_norm_bound)")
    if hf.y_ is None:
        raise ConfigError("hf was fitted without labels")


def checked_data_ref(hf: HFOCU, X: Tensor, y: Tensor, ref: DataRef) -> DataRef:
    """``ref`` with the data digest of ``(X, y)``, after checking that ``hf`` was fitted on them and that
    ``ref`` loads them again exactly.

    Raises:
        ConfigError: Other rows than ``hf``'s, a reference that loads other rows, or a recorded digest
            that disagrees.
    """
    import torch

    fitted_X, fitted_y = hf.X_, hf.y_
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ConfigError("X and y must be tensors")
    if X.shape[0] != fitted_X.shape[0] or y.shape != fitted_y.shape:
        raise ConfigError(f"X, y are not the rows the unlearner was fitted on ({X.shape[0]} rows given, it has "
                          f"{fitted_X.shape[0]})")
    same = torch.equal(X.to(device=fitted_X.device, dtype=fitted_X.dtype).reshape(fitted_X.shape), fitted_X)
    if not same or not torch.equal(y.to(device=fitted_y.device, dtype=fitted_y.dtype), fitted_y):
        raise ConfigError("X, y are not the rows the unlearner was fitted on (their values differ)")
    digest = data_digest(X, y)
    if ref.data_digest not in (None, digest):
        raise ConfigError(f"data_ref records data_digest {ref.data_digest}, but X, y have {digest}")
    try:
        loaded = ref.load()
    except (ConfigError, InputError) as exc:
        raise ConfigError(f"data_ref {ref.source!r} cannot be loaded: {exc}") from exc
    if data_digest(loaded.X_train, loaded.y_train) != digest:
        raise ConfigError(f"data_ref {ref.source!r} with options {dict(ref.options)} does not reproduce X, y "
                          "(another split, scaling or file): the state could not load its data again")
    return DataRef(ref.source, dict(ref.options), digest)


def check_architecture(spec: ModelSpec, hf: HFOCU) -> None:
    """Refuse a spec whose model has other parameter names, shapes or dtypes than ``hf``'s."""
    built = spec.build()
    want = {k: (tuple(v.shape), v.dtype) for k, v in hf.params.items()}
    have = {k: (tuple(v.shape), v.dtype) for k, v in built.state_dict().items()}
    if want != have:
        raise ConfigError(f"model_spec {spec.name!r} with args {dict(spec.args)} builds another architecture than "
                          f"the unlearner's: {sorted(have.items())} vs {sorted(want.items())}")


def certificate_settings(hf: HFOCU) -> dict[str, Any]:
    """The certificate settings written into ``state.json`` (the loadable copy is in ``hfocu/hfocu.json``)."""
    return {"certificate": hf.certificate_, "sensitivity_budget": hf.sensitivity_budget,
            "feature_norm_bound": hf.feature_norm_bound, "calibration": hf.calibration,
            "risk_tolerance": hf.risk_tolerance, "noise_sensitivity": hf.noise_sensitivity}


def posthoc_dataset(ref: DataRef) -> Dataset:
    """The rows of a post-hoc state's data file exactly as stored (ids = rows; no split, scaling or
    clipping: the model was trained on them as they are), as a :class:`~certunlearn.data.Dataset` with
    an empty held-out split.

    Raises:
        InputError: Unreadable file, not 2-D features, or labels that are not classes 0..k-1.
    """
    import numpy as np
    import torch

    from certunlearn.data import Dataset, read_arrays

    arrays = read_arrays(ref.source)
    X, y = torch.as_tensor(np.asarray(arrays["X"])), torch.as_tensor(np.asarray(arrays["y"]))
    if not X.dtype.is_floating_point:
        X = X.double()
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.numel() == 0:
        raise InputError(f"{ref.source}: a post-hoc state needs integer class labels y")
    y = y.long()
    return Dataset(name=ref.source, X_train=X, y_train=y, X_test=X[:0], y_test=y[:0],
                   num_classes=int(y.max()) + 1, source_index=torch.arange(X.shape[0]))


def _loaded(ref: DataRef, kind: str = "hfocu") -> tuple[Dataset | None, str]:
    """(dataset, digest) of ``ref``, or (None, why it cannot be loaded)."""
    try:
        dataset = posthoc_dataset(ref) if kind == "posthoc" else ref.load()
    except (ConfigError, InputError) as exc:
        return None, f"the training data {ref.source!r} cannot be loaded ({exc})"
    return dataset, data_digest(dataset.X_train, dataset.y_train)


def data_problems(ref: DataRef, *, kind: str = "hfocu") -> list[str]:
    """Why the data reference no longer gives the rows recorded in the state (empty when it does)."""
    dataset, digest = _loaded(ref, kind)
    if dataset is None:
        return [f"data: {digest}"]
    if digest != ref.data_digest:
        return [f"data: the training data {ref.source!r} has digest {digest}, the state recorded "
                f"{ref.data_digest} (the data changed since fit)"]
    return []


def load_data(root: Path, ref: DataRef, *, kind: str = "hfocu") -> Dataset:
    """The state's dataset (of a state of ``kind``), after checking its digest.

    Raises:
        StateError: The data cannot be loaded or its digest differs from the recorded one.
    """
    dataset, digest = _loaded(ref, kind)
    if dataset is None:
        raise StateError(f"{root}: {digest}")
    if digest != ref.data_digest:
        raise StateError(f"{root}: the training data {ref.source!r} has digest {digest}, but the state recorded "
                         f"{ref.data_digest} at fit time: the data changed since fit (restore it, or fit a new state)")
    return dataset


def load_hfocu(root: Path, state: StateFile, dataset: Dataset) -> HFOCU:
    """The unlearner saved in ``hfocu/`` for the model spec and data (no deletions: they live in the ledger).

    Raises:
        StateError: The model cannot be built, ``hfocu/`` cannot be loaded, or its trained parameters
            or deletion state differ from what ``state.json`` records.
    """
    from certunlearn.unlearn.hfocu import HFOCU

    try:
        model = state.model.build()
    except ConfigError as exc:
        raise StateError(f"{root}: cannot build the model: {exc}") from exc
    try:
        hf = HFOCU.load(root / LAYOUT["hfocu"], model, dataset.X_train, y=dataset.y_train)
    except InputError as exc:
        raise StateError(f"{root}: cannot load {LAYOUT['hfocu']}/: {exc}") from exc
    if array_digest(hf.params) != state.trained_params:
        raise StateError(f"{root}: the trained parameters in {LAYOUT['hfocu']}/ do not match state.json's digest")
    if hf.deleted_ids or hf.ledger is not None:
        raise StateError(f"{root}: {LAYOUT['hfocu']}/ holds deletions or a ledger: a state keeps them in its ledger")
    if hf.n_samples != state.n_samples or len(hf.tracked_ids) != state.tracked:
        raise StateError(f"{root}: {LAYOUT['hfocu']}/ has {hf.n_samples} rows and {len(hf.tracked_ids)} tracked ids, "
                         f"state.json records {state.n_samples} and {state.tracked}")
    return hf


def load_unlearner(root: Path, state: StateFile, dataset: Dataset) -> HFOCU | PostHocServed:
    """The state's unlearner with no deletions: :func:`load_hfocu`, or a post-hoc state's method
    rebuilt from ``weights/trained.pt`` and its options (:func:`build_posthoc`)."""
    if state.kind != "posthoc":
        return load_hfocu(root, state, dataset)
    from certunlearn.models import load_state_dict

    try:
        model = load_state_dict(state.model.build(), str(root / TRAINED_WEIGHTS))
        served = PostHocServed(build_posthoc(model, str(state.method), state.options or {}, dataset))
    except (ConfigError, InputError) as exc:
        raise StateError(f"{root}: cannot rebuild the {state.method!r} unlearner: {exc}") from exc
    if array_digest(served.params) != state.trained_params:
        raise StateError(f"{root}: the trained weights in {TRAINED_WEIGHTS} do not match state.json's digest")
    if served.n_samples != state.n_samples:
        raise StateError(f"{root}: the data has {served.n_samples} rows, state.json records {state.n_samples}")
    return served


def build_posthoc(model: Any, method: str, options: Mapping[str, Any], dataset: Dataset) -> PostHocUnlearner:
    """``get_unlearner(method)(model, **options).fit(X, y)`` on the dataset's rows (in the model's dtype).

    Raises:
        ConfigError: Not a post-hoc method, or options it does not accept.
    """
    from certunlearn.unlearn import get_unlearner
    from certunlearn.unlearn.posthoc import PostHocUnlearner

    cls = get_unlearner(method)
    if not issubclass(cls, PostHocUnlearner):
        raise ConfigError(f"method {method!r} is not a post-hoc method (it needs what was recorded during "
                          "training): use `certunlearn fit` for HF-OCU states")
    try:
        unlearner = cls(model, **dict(options))
    except TypeError as exc:
        raise ConfigError(f"method {method!r} does not accept the options {dict(options)}: {exc}") from exc
    first = next(iter(model.parameters()), None)
    X = dataset.X_train if first is None else dataset.X_train.to(first.dtype)
    return unlearner.fit(X, dataset.y_train)


def posthoc_parts(spec: ModelSpec, weights: Mapping[str, Tensor], method: str, options: Mapping[str, Any],
                  ref: DataRef) -> tuple[PostHocUnlearner, DataRef, dict[str, Any]]:
    """What a new post-hoc state is made of, checked: the fitted unlearner, ``ref`` with its data digest,
    and the options as JSON (they are written to ``state.json`` and given to the method at each open).

    Raises:
        ConfigError: Options that are not JSON or that the method refuses, data options (a post-hoc
            state's rows are the file's, as stored), weights that do not fit the model spec.
        InputError: The data file cannot be read.
    """
    import json

    from certunlearn.unlearn.base import module_with_weights

    if not isinstance(method, str) or not method:
        raise ConfigError(f"method must be a non-empty string, got {method!r}")
    if not isinstance(options, Mapping):
        raise ConfigError(f"options must be a mapping, got {type(options).__name__}")
    try:
        options = json.loads(json.dumps(dict(options), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the method options must be JSON values (they are stored in state.json): {exc}") from exc
    if ref.options:
        raise ConfigError(f"a post-hoc state reads its data file as stored: drop the data options {dict(ref.options)}")
    dataset = posthoc_dataset(ref)
    digest = data_digest(dataset.X_train, dataset.y_train)
    if ref.data_digest not in (None, digest):
        raise ConfigError(f"data_ref records data_digest {ref.data_digest}, but {ref.source} has {digest}")
    model = module_with_weights(spec.build(), weights, what="trained weights")
    unlearner = build_posthoc(model, method, options, dataset)
    return unlearner, DataRef(ref.source, {}, digest), options


class PostHocServed:
    """A fitted post-hoc unlearner under the names the service drives (those of
    :class:`~certunlearn.unlearn.hfocu.HFOCU`).

    Every post-hoc release is computed from the trained weights θ* for the cumulative deleted set, so
    the deleted set (``deleted_``, in request order) is all a committed request changes:
    :meth:`replay` advances exactly that, as ``forget`` does (the unlearner's ``current_``, used only
    for the digest in a ledger of its own, which a served unlearner never has, stays θ*). Every row may
    be deleted (no untracked ids).

    Example:
        >>> import torch
        >>> from certunlearn.models import LogisticRegression
        >>> from certunlearn.unlearn.newton import NewtonStep
        >>> X = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> served = PostHocServed(NewtonStep(LogisticRegression(3, 2), weight_decay=0.1).fit(X, (X[:, 0] > 0).long()))
        >>> served.replay([4, 2]); served.deleted_ids
        (4, 2)
    """

    def __init__(self, unlearner: PostHocUnlearner) -> None:
        self.unlearner = unlearner

    @property
    def n_samples(self) -> int:
        """Training rows."""
        return self.unlearner.n_samples

    @property
    def deleted_ids(self) -> tuple[int, ...]:
        """The ids deleted so far, in request order."""
        return self.unlearner.deleted_ids

    @property
    def fm_(self) -> Any:
        """The unlearner's functional model."""
        return self.unlearner.fm

    @property
    def params(self) -> dict[str, Tensor]:
        """The trained parameters θ* as a state dict."""
        return self.unlearner.fm.state_dict(self.unlearner.theta_star)

    @property
    def store_(self) -> PostHocServed:
        """Itself: :meth:`rows_of` stands for HF-OCU's statistics store (every row is deletable)."""
        return self

    def rows_of(self, ids: Iterable[int]) -> None:
        """Nothing to check: a post-hoc state tracks every row."""
        del ids

    def check_ids(self, ids: Iterable[int]) -> list[int]:
        """The unlearner's id check (distinct, known, not deleted)."""
        return self.unlearner.check_ids(ids)

    def outputs(self, params: Mapping[str, Tensor], X: Tensor) -> Tensor:
        """The model's outputs at the state dict ``params``, without gradients."""
        import torch

        fm = self.unlearner.fm
        with torch.no_grad():
            theta = fm.layout.flatten(dict(params)).to(device=fm.device, dtype=fm.dtype)
            return fm.outputs(theta, X.to(device=fm.device, dtype=fm.dtype))

    def forget(self, ids: Iterable[int], **kwargs: Any) -> UnlearnResult:
        """The unlearner's ``forget`` (the service calls it with ``dry_run=True``)."""
        return self.unlearner.forget(ids, **kwargs)

    def replay(self, ids: Iterable[int]) -> None:
        """Advance the deleted set by a committed request's ids, as ``forget`` does; nothing is computed.

        Raises:
            SampleIdError: An id is unknown, repeated or already deleted (nothing changes).
        """
        request = self.unlearner.check_ids(ids)
        self.unlearner.deleted_ = self.unlearner.deleted_ + tuple(request)


def posthoc_certificate_settings(unlearner: PostHocUnlearner) -> dict[str, Any]:
    """The certificate settings a post-hoc state's ``state.json`` shows (its options hold the inputs)."""
    return {"certificate": unlearner.certificate_, "sensitivity_budget": unlearner.sensitivity_budget,
            "feature_norm_bound": unlearner.feature_norm_bound, "calibration": unlearner.calibration,
            "risk_tolerance": unlearner.risk_tolerance, "noise_sensitivity": unlearner.noise_sensitivity}
