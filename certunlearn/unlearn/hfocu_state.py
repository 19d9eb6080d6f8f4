"""HF-OCU's state: the state dict, its validation and restoration, and the on-disk directory format.

:meth:`HFOCU.state_dict <certunlearn.unlearn.hfocu.HFOCU.state_dict>` holds, besides the keys every
unlearner shares (:func:`~certunlearn.unlearn.base.state_header`: options, deleted ids, ledger):

* ``initial_params`` / ``params``: w_0 and w_T as state dicts; ``schedule``: the recorded batch
  schedule (:meth:`~certunlearn.train.schedule.Schedule.to_json` text);
* ``statistics``: :meth:`~certunlearn.unlearn.store.StatisticsStore.state_dict` (ids, rows, dtype);
* ``data``: the training data ``{"X", "y"}`` (``y`` may be None for a worst-case state);
* ``certificate`` (the resolved one) and ``anchor`` (the refine ERM anchor, or None);
* ``sum_a``, ``counts``, ``released_noiseless``: the deletions so far (Σ a_u, the per-step deletion
  counts, the last noiseless release), so that a restored unlearner continues bit for bit;
* ``precompute_seconds``.

:func:`save` writes the same state, all but the training data, as a directory (schema
:data:`HFOCU_SCHEMA_VERSION`): ``params.pt``, ``initial_params.pt``, ``schedule.json``,
``statistics.bin`` + ``statistics.json`` (memory-mapped on load), ``erm_anchor.pt`` (refine),
``deletion_state.pt`` and ``hfocu.json`` (settings, deleted ids, ledger). Schema 1 directories
(no ledger, no ``deletion_state.pt``: Σ a_u is summed again from the store) are still read.

Example:
    >>> import tempfile, torch
    >>> from certunlearn.models import LogisticRegression
    >>> from certunlearn.train import SGDConfig
    >>> from certunlearn.unlearn import HFOCU
    >>> X = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> X = X / X.norm(dim=1, keepdim=True); y = (X[:, 0] > 0).long()
    >>> cfg = SGDConfig(epochs=2, batch_size=5, lr=0.5, weight_decay=0.1)
    >>> hf = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0).fit(X, y)
    >>> _ = hf.forget([4, 7], epsilon=1.0, delta=1e-5)
    >>> d = hf.save(tempfile.mkdtemp())
    >>> HFOCU.load(d, LogisticRegression(3, 2), X, y=y).deleted_ids
    (4, 7)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.certify.assumptions import Assumptions
from certunlearn.certify.refine import DEFAULT_RISK_TOLERANCE
from certunlearn.errors import ConfigError, InputError
from certunlearn.serialize import plain
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule, ScheduleIndex
from certunlearn.train.sgd import check_sample_ids, prepare_data
from certunlearn.unlearn.base import (
    CERTIFICATES,
    STATE_FORMAT,
    STATE_SCHEMA_VERSION,
    module_with_weights,
    state_tensor,
)
from certunlearn.unlearn.refine import RefineOptions
from certunlearn.unlearn.store import StatisticsStore

if TYPE_CHECKING:
    from certunlearn.unlearn.hfocu import HFOCU

__all__ = ["HFOCU_SCHEMA_VERSION", "load", "restore", "save", "state_dict"]

HFOCU_SCHEMA_VERSION = 2
"""Schema of the saved directory (``hfocu.json``); 2 added the ledger and ``deletion_state.pt``."""

_KEYS = ("initial_params", "params", "schedule", "statistics", "data", "certificate", "anchor",
         "sum_a", "counts", "released_noiseless", "precompute_seconds")
_PROGRESS = ("sum_a", "counts", "released_noiseless")
_SETTINGS = ("config", "feature_norm_bound", "calibration", "noise_sensitivity", "sensitivity_budget",
             "risk_tolerance", "refine")
"""The options written to ``hfocu.json`` (``certificate`` is written resolved)."""


def state_dict(hf: HFOCU) -> dict[str, Any]:
    """The state of a fitted :class:`HFOCU` (see the module docstring); tensors are copies, except the
    statistics rows and the data."""
    fm = hf.fm_
    refine = hf.certifier_ is not None
    return {
        **hf._state_header(),
        "initial_params": fm.state_dict(fm.theta0),
        "params": fm.state_dict(hf.theta_),
        "schedule": hf.schedule_.to_json(),
        "statistics": hf.store_.state_dict(),
        "data": {"X": hf.X_, "y": hf.y_},
        "certificate": hf.certificate_,
        "anchor": hf.anchor_.detach().clone() if refine else None,
        "sum_a": hf.sum_a_.detach().clone(),
        "counts": torch.from_numpy(hf.counts_.copy()),
        "released_noiseless": None if hf.released_noiseless_ is None else hf.released_noiseless_.detach().clone(),
        "precompute_seconds": getattr(hf, "precompute_seconds_", None),
    }


def restore(hf: HFOCU, state: Mapping[str, Any], *, store: StatisticsStore | None = None,
            check_options: bool = True) -> HFOCU:
    """Validate ``state`` and make ``hf`` the unlearner it describes (``store``: statistics opened from
    a directory instead of ``state["statistics"]``); on a validation error ``hf`` is unchanged."""
    state = hf._check_state(state, _KEYS, check_options=check_options)
    initial = module_with_weights(hf.model, state["initial_params"], what="initial parameters")
    fm = FunctionalModel(initial, loss=hf.config.loss)
    trained = module_with_weights(hf.model, state["params"], what="parameters")
    theta = fm.layout.flatten(dict(trained.named_parameters())).detach().to(fm.device)
    if not isinstance(state["schedule"], str):
        raise InputError("the state's schedule must be Schedule.to_json() text")
    schedule = Schedule.from_json(state["schedule"])
    if store is None:
        store = StatisticsStore.from_state_dict(state["statistics"], device=fm.device)
    if store.dim != fm.dim:
        raise InputError(f"the statistics have {store.dim} columns but the model has {fm.dim} parameters")
    certificate = state["certificate"]
    if certificate not in CERTIFICATES:
        raise InputError(f"the state's certificate must be one of {list(CERTIFICATES)}, got {certificate!r}")
    X, y = _data(state["data"], certificate)
    Xd, yd = prepare_data(fm, X, torch.zeros(X.shape[0], dtype=torch.int64) if y is None else y)
    if Xd.shape[0] != schedule.n_samples:
        raise InputError(f"X has {Xd.shape[0]} rows but the schedule covers {schedule.n_samples}")
    deleted = check_sample_ids(state["deleted_ids"], schedule.n_samples, what="deleted ids in the state")
    store.rows_of(deleted)  # every deleted id must be tracked by the store
    index = ScheduleIndex(schedule)
    progress, released = _progress(state, fm, index, deleted)
    anchor = state_tensor(state, "anchor", shape=(fm.dim,), optional=True) if certificate == "refine" else None
    before = dict(hf.__dict__)
    try:
        hf._set_fitted(fm, theta, schedule, store, hf._resolve_assumptions(fm, Xd), deleted, X=Xd,
                       y=None if y is None else yd, anchor=anchor, index=index, progress=progress)
        if hf.certificate_ != certificate:
            raise InputError(f"the state certifies by {certificate!r} but these options resolve to "
                             f"{hf.certificate_!r}: construct the unlearner with the options it was saved with")
    except Exception:  # leave the unlearner as it was
        hf.__dict__.clear()
        hf.__dict__.update(before)
        raise
    hf.model = initial  # w_0 is the saved one from now on (a refit starts from it)
    hf.released_noiseless_ = released
    hf.precompute_seconds_ = state["precompute_seconds"]
    hf._restore_ledger(state["ledger"])
    return hf


def _data(data: object, certificate: str) -> tuple[Tensor, Tensor | None]:
    if not isinstance(data, Mapping) or set(data) != {"X", "y"}:
        raise InputError("the state's data must be a dict with the keys 'X' and 'y'")
    X = state_tensor(data, "X")
    y = state_tensor(data, "y", optional=True)
    if certificate == "refine" and y is None:
        raise InputError("this state certifies by refinement: it needs the training labels "
                         "(HFOCU.load(..., y=...))")
    return X, y  # type: ignore[return-value]


def _progress(state: Mapping[str, Any], fm: FunctionalModel, index: ScheduleIndex,
              deleted: list[int]) -> tuple[tuple[Tensor, np.ndarray] | None, Tensor | None]:
    """(Σ a_u, counts) and the last noiseless release of the state, checked against ``deleted``;
    (None, None) for a schema 1 directory, whose Σ a_u is summed again from the store."""
    if state["sum_a"] is None and state["counts"] is None and state["released_noiseless"] is None:
        return None, None
    sum_a = state_tensor(state, "sum_a", shape=(fm.dim,))
    counts = state_tensor(state, "counts", shape=(index.n_steps,))
    released = state_tensor(state, "released_noiseless", shape=(fm.dim,), optional=True)
    counts_np = counts.detach().cpu().numpy().astype(np.int64)  # type: ignore[union-attr]
    if not np.array_equal(counts_np, index.deletion_counts(deleted)):
        raise InputError("the state's deletion counts do not match its deleted ids")
    move = dict(device=fm.device, dtype=fm.dtype, copy=True)
    sum_a = sum_a.detach().to(**move)  # type: ignore[union-attr, arg-type]
    return (sum_a, counts_np), None if released is None else released.detach().to(**move)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- directories
def save(hf: HFOCU, directory: str | Path) -> Path:
    """Write ``hf.state_dict()``, all but the training data, into ``directory`` (schema 2)."""
    state = state_dict(hf)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state["params"], directory / "params.pt")
    torch.save(state["initial_params"], directory / "initial_params.pt")
    (directory / "schedule.json").write_text(state["schedule"])
    hf.store_.save(directory)  # the store's own files (the memory-mapped path flushes in place)
    if state["anchor"] is not None:
        torch.save({"anchor": state["anchor"].cpu()}, directory / "erm_anchor.pt")
    torch.save({k: None if state[k] is None else state[k].cpu() for k in _PROGRESS}, directory / "deletion_state.pt")
    meta: dict[str, Any] = {
        "schema_version": HFOCU_SCHEMA_VERSION,
        "mechanism": hf.name,
        **{k: state["options"][k] for k in _SETTINGS},
        "certificate": state["certificate"],
        "deleted_ids": state["deleted_ids"],
        "precompute_seconds": state["precompute_seconds"],
        "ledger": state["ledger"],
    }
    (directory / "hfocu.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def load(cls: type[HFOCU], directory: str | Path, model: nn.Module, X: Tensor, *, y: Tensor | None,
         assumptions: Assumptions | None, mmap_mode: bool) -> HFOCU:
    """Read a directory written by :func:`save` (schema 1 or 2) into a new ``cls`` unlearner."""
    from certunlearn.models import load_state_dict

    directory = Path(directory)
    meta = _read_meta(directory)
    try:
        config = SGDConfig.from_dict(meta["config"])
    except (ConfigError, TypeError, AttributeError) as exc:
        raise InputError(f"{directory}: invalid training config in hfocu.json ({exc})") from exc
    certificate = meta.get("certificate", "worst-case")
    if certificate == "refine" and y is None:
        raise InputError(f"{directory}: this state certifies by refinement: pass the training labels "
                         "(HFOCU.load(..., y=...))")
    try:
        hf = cls(model, config, assumptions=assumptions, feature_norm_bound=meta.get("feature_norm_bound"),
                 calibration=meta.get("calibration", "analytic"), noise_sensitivity=meta.get("noise_sensitivity"),
                 certificate=certificate, sensitivity_budget=meta.get("sensitivity_budget"),
                 risk_tolerance=meta.get("risk_tolerance", DEFAULT_RISK_TOLERANCE),
                 refine=RefineOptions(**meta.get("refine", {})))
    except (ConfigError, TypeError) as exc:
        raise InputError(f"{directory}: invalid setting in hfocu.json ({exc})") from exc
    initial = load_state_dict(copy.deepcopy(model), str(directory / "initial_params.pt"))
    trained = load_state_dict(copy.deepcopy(model), str(directory / "params.pt"))
    try:
        schedule = (directory / "schedule.json").read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{directory}: cannot read schedule.json ({exc})") from exc
    device = next(iter(initial.parameters())).device
    store = StatisticsStore.load(directory, mmap_mode=mmap_mode, device=device)
    state = {
        "format": STATE_FORMAT, "schema_version": STATE_SCHEMA_VERSION, "method": hf.name,
        "options": plain(hf._options(), unknown=str), "deleted_ids": meta["deleted_ids"],
        "ledger": meta.get("ledger"), "initial_params": dict(initial.state_dict()),
        "params": dict(trained.state_dict()), "schedule": schedule, "statistics": None,
        "data": {"X": X, "y": y}, "certificate": certificate,
        "anchor": _read_tensors(directory / "erm_anchor.pt", ("anchor",))["anchor"]
        if certificate == "refine" and (directory / "erm_anchor.pt").is_file() else None,
        "precompute_seconds": meta.get("precompute_seconds"),
        **(_read_tensors(directory / "deletion_state.pt", _PROGRESS) if meta["schema_version"] >= 2
           else dict.fromkeys(_PROGRESS)),
    }
    try:
        return restore(hf, state, store=store, check_options=False)
    except InputError as exc:  # name the directory, keep the type (SampleIdError for bad deleted ids)
        raise type(exc)(f"{directory}: {exc}") from exc


def _read_meta(directory: Path) -> dict[str, Any]:
    try:
        meta = json.loads((directory / "hfocu.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{directory}: not an HF-OCU state ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError(f"{directory}: hfocu.json must hold a JSON object")
    if meta.get("schema_version") not in (1, HFOCU_SCHEMA_VERSION) or meta.get("mechanism") != "hfocu":
        raise InputError(f"{directory}: unsupported state (schema {meta.get('schema_version')!r}, "
                         f"mechanism {meta.get('mechanism')!r})")
    missing = sorted({"config", "deleted_ids"} - set(meta))
    if missing:
        raise InputError(f"{directory}: hfocu.json lacks {missing}")
    if not isinstance(meta["deleted_ids"], list):
        raise InputError(f"{directory}: deleted_ids must be a list")
    return meta


def _read_tensors(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """A ``torch.save``'d dict with exactly ``keys`` (tensors or None), read weights-only."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # missing, truncated or not a weights-only file
        raise InputError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or set(payload) != set(keys):
        raise InputError(f"{path}: expected a dict with the keys {list(keys)}")
    return payload

