"""What a state is made of, checked when it is created and loaded again when it is opened.

At creation (:meth:`DeletionService.create <certunlearn.service.deletion_service.DeletionService.create>`)
the fitted HF-OCU unlearner, its training rows, the model spec and the data reference must agree:
the reference reproduces the rows exactly and the spec builds the same architecture, or the state
could not be opened later. At opening, the data is loaded from the reference and its digest compared
with the recorded one (a data file changed after fit is an error), and the unlearner is loaded from
``hfocu/``.

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

from pathlib import Path
from typing import TYPE_CHECKING, Any

from certunlearn.digest import array_digest, data_digest
from certunlearn.errors import ConfigError, InputError, StateError
from certunlearn.service.state import LAYOUT, DataRef, ModelSpec, StateFile

if TYPE_CHECKING:
    from torch import Tensor

    from certunlearn.data import Dataset
    from certunlearn.unlearn.hfocu import HFOCU

__all__ = [
    "certificate_settings",
    "check_architecture",
    "check_new_hfocu",
    "checked_data_ref",
    "data_problems",
    "load_data",
    "load_hfocu",
]


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


def _loaded(ref: DataRef) -> tuple[Dataset | None, str]:
    """(dataset, digest) of ``ref``, or (None, why it cannot be loaded)."""
    try:
        dataset = ref.load()
    except (ConfigError, InputError) as exc:
        return None, f"the training data {ref.source!r} cannot be loaded ({exc})"
    return dataset, data_digest(dataset.X_train, dataset.y_train)


def data_problems(ref: DataRef) -> list[str]:
    """Why the data reference no longer gives the rows recorded in the state (empty when it does)."""
    dataset, digest = _loaded(ref)
    if dataset is None:
        return [f"data: {digest}"]
    if digest != ref.data_digest:
        return [f"data: the training data {ref.source!r} has digest {digest}, the state recorded "
                f"{ref.data_digest} (the data changed since fit)"]
    return []


def load_data(root: Path, ref: DataRef) -> Dataset:
    """The state's dataset, after checking its digest.

    Raises:
        StateError: The data cannot be loaded or its digest differs from the recorded one.
    """
    dataset, digest = _loaded(ref)
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
