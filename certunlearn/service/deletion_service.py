"""DeletionService: serve deletion requests against one model's state directory, for the model's life.

A request (:meth:`DeletionService.forget`) runs under the state's exclusive lock from start to
commit (:mod:`certunlearn.service.locks`: ``fcntl.flock`` on ``state.lock`` for the SQLite ledger, one
host; a PostgreSQL session advisory lock for a ledger in PostgreSQL, every host):

1. the requests other processes committed since this one last looked are replayed (the HF-OCU
   deletion state Σ a_u, per-step counts and deleted order advance exactly as ``forget`` advances them:
   :meth:`HFOCU.replay <certunlearn.unlearn.hfocu.HFOCU.replay>`);
2. a request id seen before returns the stored outcome (no second noise draw); ids deleted before are
   refused by name; the policy is checked;
3. the release is drawn (``HFOCU.forget(..., dry_run=True)``: fresh noise calibrated to the cumulative
   deleted set, from the OS CSPRNG unless ``insecure_noise_seed`` is given, which labels it ``seeded``);
   the policy is checked again with its sensitivity and certification;
4. ``releases/<model_after>.pt`` is written (temporary name, fsync, rename, directory fsync);
5. ONE ledger write transaction (:mod:`certunlearn.service.ledger_db`) stores the request, release
   and deleted rows; only then does the in-memory state advance.

A kill at any point leaves the state exactly before the request (the ledger has no row; a release
file written without its commit is an orphan that the next integrity check removes) or after it.
Nothing else in the directory changes per request: on :meth:`DeletionService.open` the deletion state
is rebuilt from the ledger, bit for bit.

Example:
    >>> import tempfile, torch
    >>> from certunlearn.data import load_dataset
    >>> from certunlearn.models import LogisticRegression
    >>> from certunlearn.train import SGDConfig
    >>> from certunlearn.unlearn import HFOCU
    >>> ref = DataRef("wine", {"seed": 0, "clip_norm": 1.0})
    >>> data = ref.load()
    >>> hf = HFOCU(LogisticRegression(13, 3), SGDConfig(epochs=2, batch_size=32, lr=0.5, weight_decay=0.1),
    ...            feature_norm_bound=1.0).fit(data.X_train, data.y_train)
    >>> root = tempfile.mkdtemp() + "/state"
    >>> service = DeletionService.create(root, hf=hf, X=data.X_train, y=data.y_train,
    ...     model_spec=ModelSpec("logreg", {"in_features": 13, "num_classes": 3}), data_ref=ref)
    >>> out = service.forget("r1", [4, 8], epsilon=1.0, delta=1e-5)
    >>> out.status, out.seq, out.summary["certified"], out.summary["noise_source"]
    ('released', 1, True, 'secure')
    >>> service.forget("r1", [8, 4], epsilon=1.0, delta=1e-5).status     # the same request again
    'repeated'
    >>> service.close()
    >>> with DeletionService.open(root) as again:
    ...     status = again.status()
    >>> status["releases"], status["cumulative_deletions"], status["integrity"]
    (1, 2, 'ok')
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certunlearn.certify.ledger import LedgerPolicy
from certunlearn.digest import array_digest, ids_digest
from certunlearn.errors import ConfigError, InputError, PolicyError, SampleIdError, StateError
from certunlearn.service import loading, views
from certunlearn.service.files import fsync_dir
from certunlearn.service.ledger_db import LedgerDB, ReleaseRow, RequestRow
from certunlearn.service.locks import FileLock, StateLock, acquire
from certunlearn.service.sql import DatabaseError, check_ledger_url
from certunlearn.service.state import (
    LAYOUT,
    DataRef,
    IntegrityReport,
    ModelSpec,
    StateFile,
    build_state_dir,
    check_new_state_path,
    check_request_defaults,
    manifest,
    manifest_problems,
    new_state_id,
    orphan_releases,
    policy_from,
    policy_problems,
    read_release,
    read_state,
    release_name,
    release_problems,
    write_release,
)
from certunlearn.validation import check_int, check_open_unit, check_positive

if TYPE_CHECKING:
    from torch import Tensor

    from certunlearn.data import Dataset
    from certunlearn.report.policy import Policy
    from certunlearn.unlearn.base import UnlearnResult
    from certunlearn.unlearn.hfocu import HFOCU
    from certunlearn.unlearn.posthoc import PostHocUnlearner

__all__ = ["FAULT_DELAY_ENV", "DeletionService", "ForgetOutcome"]

FAULT_DELAY_ENV = "CERTUNLEARN_SERVICE_FAULT_DELAY"
"""Test hook: when set to a number of seconds, a request sleeps a random time up to it at each step
(after the draw, after the release file, inside the transaction before COMMIT, after COMMIT), to widen
the windows a crash test kills in. Never set it in production."""

_MAX_REQUEST_ID = 200


def _pause() -> None:
    limit = os.environ.get(FAULT_DELAY_ENV)
    if limit:
        time.sleep(random.uniform(0.0, float(limit)))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class ForgetOutcome:
    """What one :meth:`DeletionService.forget` call did.

    Attributes:
        request_id: The request.
        status: ``released`` (executed now) or ``repeated`` (executed before: the stored outcome,
            nothing changed, no noise drawn).
        summary: The release's :meth:`~certunlearn.unlearn.base.UnlearnResult.summary` as stored in
            the ledger (JSON values).
        released_path: Absolute path of the released state dict (``releases/<model_after>.pt``).
        model_after: Digest of the released parameters (:func:`certunlearn.digest.array_digest`).
        seq: The release's position in the ledger (1, 2, …).
    """

    request_id: str
    status: str
    summary: dict[str, Any]
    released_path: str
    model_after: str
    seq: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON view."""
        return asdict(self)


def _check_request_id(request_id: object) -> str:
    if not isinstance(request_id, str) or not request_id.strip():
        raise ConfigError(f"request_id must be a non-empty string, got {request_id!r}")
    if len(request_id) > _MAX_REQUEST_ID or not request_id.isprintable():
        raise ConfigError(f"request_id must be at most {_MAX_REQUEST_ID} printable characters, got {request_id!r}")
    return request_id


def _request_ids(ids: Iterable[int], n_samples: int) -> list[int]:
    """The ids as a sorted list of ints (a request is a set: it is served in increasing id order)."""
    from certunlearn.train.sgd import check_sample_ids

    if isinstance(ids, (str, bytes)):
        raise SampleIdError(f"ids must be a collection of integers, got {ids!r}")
    request = check_sample_ids(ids, n_samples, what="ids")
    if not request:
        raise SampleIdError("no ids to forget")
    return sorted(request)


class DeletionService:
    """One model's deletion service over its state directory (see the module docstring).

    Build it with :meth:`create` or :meth:`open`; close it with :meth:`close` or a ``with`` block.
    An instance is not thread-safe (use one per thread); any number of processes may serve one
    state at once: their requests are serialised by the state lock.
    """

    def __init__(self, root: Path, state: StateFile, db: LedgerDB, hf: HFOCU | loading.PostHocServed,
                 dataset: Dataset, *,
                 lock_timeout: float) -> None:
        self._root, self._state, self._db, self._hf, self._dataset = root, state, db, hf, dataset
        self._lock_timeout = lock_timeout
        try:  # PostgreSQL: the advisory lock on the ledger's connection; SQLite: the directory's file lock
            self._lock: StateLock | None = db.state_lock() or FileLock(root / LAYOUT["lock"])
        except OSError as exc:
            raise StateError(f"{root}: cannot open the state lock {LAYOUT['lock']} ({exc.strerror or exc}): "
                             "the state directory must be writable") from exc
        self._lock_depth = 0
        self._seq = 0
        self._next_noise: Any = None  # a prefetched N(0, I) draw for the next request (prefetch_noise)
        self._last: ReleaseRow | None = None
        self._open_report = IntegrityReport()

    # ------------------------------------------------------------------ creating and opening
    @classmethod
    def create(cls, path: str | os.PathLike[str], *, hf: HFOCU, X: Tensor, y: Tensor,
               model_spec: ModelSpec | Mapping[str, Any], data_ref: DataRef | Mapping[str, Any],
               policy: LedgerPolicy | Mapping[str, Any] | None = None,
               request_defaults: Mapping[str, float] | None = None,
               ledger_url: str | None = None) -> DeletionService:
        """Create the state directory of a fitted HF-OCU unlearner and open it.

        Args:
            path: A new or empty directory (a non-empty one is refused).
            hf: A fitted :class:`~certunlearn.unlearn.hfocu.HFOCU` with no deletions and no ledger
                of its own (the state's ledger is the SQLite one; limits go in ``policy``) and no
                declared assumptions (they cannot be stored: constants must be derivable).
            X: The training features ``hf`` was fitted on; ``y`` their labels.
            model_spec: How to build the architecture again (:class:`ModelSpec` or its dict).
            data_ref: Where the rows come from (:class:`DataRef` or its dict); it must reproduce
                ``(X, y)`` exactly, which is checked (the data is loaded once here).
            policy: Limits checked before anything is written (:class:`LedgerPolicy` or its fields);
                None: no limits.
            request_defaults: ``{"epsilon", "delta"}`` suggested for later requests (stored, shown by
                :meth:`status`), or None.
            ledger_url: None (default): the ledger is ``ledger.sqlite`` in the directory. A
                ``postgresql://`` URL: the ledger is the schema ``certunlearn_<state_id>`` in that
                database (created here) and the URL is recorded in ``state.json``, so it must not hold a
                password (libpq reads it from ``PGPASSWORD``, ``~/.pgpass`` or a service file).

        Returns:
            The open service.

        Raises:
            InputError: ``path`` is a file or a non-empty directory.
            ConfigError: ``hf`` is not fitted / has deletions or a ledger, or ``model_spec`` /
                ``data_ref`` do not reproduce the model and the data; a ledger URL with a password,
                or psycopg missing for one.
            StateError: The PostgreSQL server cannot be reached or refuses to create the ledger.
        """
        check_new_state_path(path)
        ledger_url = None if ledger_url is None else check_ledger_url(ledger_url)
        spec = model_spec if isinstance(model_spec, ModelSpec) else ModelSpec.from_dict(model_spec)
        ref = data_ref if isinstance(data_ref, DataRef) else DataRef.from_dict(data_ref)
        policy, defaults = policy_from(policy), check_request_defaults(request_defaults)
        loading.check_new_hfocu(hf)
        ref = loading.checked_data_ref(hf, X, y, ref)
        loading.check_architecture(spec, hf)
        state_id = new_state_id()

        def write(tmp: Path) -> StateFile:
            from certunlearn._version import __version__

            hf.save(tmp / LAYOUT["hfocu"])
            LedgerDB.create(ledger_url or tmp / LAYOUT["ledger"], state_id=state_id).close()
            return StateFile(
                state_id=state_id, created_at=_now(), certunlearn_version=__version__, model=spec, data=ref,
                sgd=hf.config.to_dict(), certificate=loading.certificate_settings(hf), policy=policy,
                request_defaults=defaults, trained_params=array_digest(hf.params), n_samples=hf.n_samples,
                tracked=len(hf.tracked_ids), files=manifest(tmp), ledger_url=ledger_url)

        return cls._build(path, state_id, ledger_url, write)

    @classmethod
    def create_posthoc(cls, path: str | os.PathLike[str], *, model_spec: ModelSpec | Mapping[str, Any],
                       weights: Mapping[str, Tensor], method: str, options: Mapping[str, Any],
                       data_ref: DataRef | Mapping[str, Any], policy: LedgerPolicy | Mapping[str, Any] | None = None,
                       request_defaults: Mapping[str, float] | None = None,
                       ledger_url: str | None = None) -> DeletionService:
        """Create the state directory (kind ``posthoc``) of a trained model served by a post-hoc method.

        ``get_unlearner(method)(model, **options).fit(X, y)`` is built here (and again at each open)
        from the model spec with ``weights``, and the raw rows of the data file ``data_ref.source``
        (ids = rows, as the model saw them; ``data_ref.options`` must be empty). The trained weights
        are written to ``weights/trained.pt``; the other arguments are those of :meth:`create`.

        Raises:
            InputError: ``path`` is a file or a non-empty directory; the data file is unreadable.
            ConfigError: Not a post-hoc method, options it refuses or that are not JSON, weights that
                do not fit the model spec.
        """
        import torch

        check_new_state_path(path)
        ledger_url = None if ledger_url is None else check_ledger_url(ledger_url)
        spec = model_spec if isinstance(model_spec, ModelSpec) else ModelSpec.from_dict(model_spec)
        ref = data_ref if isinstance(data_ref, DataRef) else DataRef.from_dict(data_ref)
        policy, defaults = policy_from(policy), check_request_defaults(request_defaults)
        unlearner, ref, options = loading.posthoc_parts(spec, weights, method, options, ref)
        trained = unlearner.fm.state_dict(unlearner.theta_star)
        state_id = new_state_id()

        def write(tmp: Path) -> StateFile:
            from certunlearn._version import __version__

            (tmp / LAYOUT["weights"]).mkdir()
            torch.save(trained, tmp / loading.TRAINED_WEIGHTS)
            LedgerDB.create(ledger_url or tmp / LAYOUT["ledger"], state_id=state_id).close()
            return StateFile(
                state_id=state_id, created_at=_now(), certunlearn_version=__version__, model=spec, data=ref,
                sgd={}, certificate=loading.posthoc_certificate_settings(unlearner), policy=policy,
                request_defaults=defaults, trained_params=array_digest(trained), n_samples=unlearner.n_samples,
                tracked=unlearner.n_samples, files=manifest(tmp, under=LAYOUT["weights"]), ledger_url=ledger_url,
                kind="posthoc", method=method, options=options)

        return cls._build(path, state_id, ledger_url, write)

    @classmethod
    def _build(cls, path: str | os.PathLike[str], state_id: str, ledger_url: str | None,
               write: Callable[[Path], StateFile]) -> DeletionService:
        try:
            build_state_dir(path, write)
        except BaseException:
            if ledger_url is not None:  # the state never existed: drop its ledger schema, if it was made
                with contextlib.suppress(Exception):
                    LedgerDB.discard(ledger_url, state_id=state_id)
            raise
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, deep: bool = True, lock_timeout: float = 600.0) -> DeletionService:
        """Open a state directory: check it, load the model and the data, rebuild the deletion state.

        Args:
            path: The state directory.
            deep: Hash every file (the ``hfocu/`` manifest, each release file against its digest)
                and not only check sizes and presence.
            lock_timeout: Seconds to wait for the state lock (held by a request in another process).

        Raises:
            StateError: ``state.json`` missing, truncated, foreign or from a newer schema; a ledger
                from a newer schema or another state; a missing or altered file; training data whose
                digest no longer matches; any other integrity problem (all are named). Nothing in
                the directory is changed, except that orphan release files are removed.
        """
        root = Path(path)
        state = read_state(root)
        problems = manifest_problems(root, state.files, deep=deep)
        if not (root / LAYOUT["releases"]).is_dir():
            problems.append(f"{LAYOUT['releases']}/: missing")
        if problems:
            raise StateError(f"{root}: integrity check failed: " + "; ".join(problems))
        db = LedgerDB.open(state.ledger_url or root / LAYOUT["ledger"], state_id=state.state_id)
        try:
            dataset = loading.load_data(root, state.data, kind=state.kind)
            hf = loading.load_unlearner(root, state, dataset)
            service = cls(root, state, db, hf, dataset, lock_timeout=check_positive("lock_timeout", lock_timeout))
        except BaseException:
            db.close()
            raise
        try:
            report = service._integrity(deep=deep, repair=True, files=False, data=False)
            if not report.ok:
                raise StateError(f"{root}: integrity check failed: " + "; ".join(report.problems))
        except BaseException:
            service.close()
            raise
        service._open_report = report
        return service

    # ------------------------------------------------------------------ properties
    @property
    def path(self) -> Path:
        """The state directory."""
        return self._root

    @property
    def state(self) -> StateFile:
        """The content of ``state.json``."""
        return self._state

    @property
    def integrity_at_open(self) -> IntegrityReport:
        """The integrity check run by :meth:`open` (its ``removed_orphans``: release files of requests
        that were interrupted before their commit)."""
        return self._open_report

    @property
    def unlearner(self) -> HFOCU | PostHocUnlearner:
        """The unlearner (HF-OCU, or a post-hoc state's method), at the deletion state of the last request
        this process has seen. Read it; never call its ``forget`` (that would bypass the ledger)."""
        return self._hf.unlearner if isinstance(self._hf, loading.PostHocServed) else self._hf

    @property
    def policy(self) -> LedgerPolicy | None:
        """The ledger policy (None: no limits)."""
        return self._state.policy

    @property
    def request_defaults(self) -> dict[str, float] | None:
        """``{"epsilon", "delta"}`` stored at creation for later requests, or None."""
        return None if self._state.request_defaults is None else dict(self._state.request_defaults)

    # ------------------------------------------------------------------ the lock and the replay
    def _check_open(self) -> None:
        if self._lock is None:
            raise StateError(f"{self._root}: this DeletionService is closed")

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """The state lock (re-entrant within this object), taken within ``lock_timeout`` seconds."""
        self._check_open()
        if self._lock_depth == 0:
            acquire(self._lock, timeout=self._lock_timeout, where=str(self._root))  # type: ignore[arg-type]
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock is not None:
                self._lock.release()

    def _catch_up(self) -> None:
        """Replay the requests committed (by any process) after the last one this process has seen."""
        for request, release, ids in self._db.history(after=self._seq):
            if release.seq != self._seq + 1:
                raise StateError(f"{self._root}: the ledger jumps from release {self._seq} to {release.seq}")
            try:
                self._hf.replay(ids)
            except SampleIdError as exc:
                raise StateError(f"{self._root}: ledger request {request.request_id!r} (seq {release.seq}) "
                                 f"cannot be replayed: {exc}") from exc
            self._seq, self._last = release.seq, release

    # ------------------------------------------------------------------ requests
    def forget(self, request_id: str, ids: Iterable[int], *, epsilon: float, delta: float,
               insecure_noise_seed: int | None = None, sensitivity_budget: float | None = None) -> ForgetOutcome:
        """Execute a deletion request once: release a model certified for the cumulative deleted set.

        Args:
            request_id: The request's identifier (1 to 200 printable characters). A request id seen
                before returns the stored outcome (status ``repeated``) and changes nothing; with other
                ids, ε or δ it is an error.
            ids: Training row ids to delete (distinct, tracked, not deleted before); order is irrelevant.
            epsilon: ε of this release (> 0).
            delta: δ of this release, in (0, 1).
            insecure_noise_seed: Seed of the release noise, for reproducible tests only: the release
                is labelled ``seeded`` (reproducible noise: **not private**) in the ledger and reports.
                None (default): secure noise from the OS CSPRNG.
            sensitivity_budget: Public budget Δ_b of this release (refine certificate); None: the state's.

        Returns:
            :class:`ForgetOutcome`.

        Raises:
            SampleIdError: Ids that are not integers, repeated, unknown, untracked, or deleted by an
                earlier request (named, with that request); nothing changes.
            InputError: The request id was executed before with other ids, ε or δ.
            ConfigError: ε ≤ 0, δ ∉ (0, 1), a bad seed or budget.
            PolicyError: The policy refuses the request; nothing is written.
            RefinementRefused: The refine certificate could not be met; nothing is written.
        """
        self._check_open()
        request_id = _check_request_id(request_id)
        request = _request_ids(ids, self._hf.n_samples)
        epsilon, delta = check_positive("epsilon", epsilon), check_open_unit("delta", delta)
        if insecure_noise_seed is not None:
            insecure_noise_seed = check_int("insecure_noise_seed", insecure_noise_seed, minimum=0)
        if sensitivity_budget is not None:
            sensitivity_budget = check_positive("sensitivity_budget", sensitivity_budget)
        received = _now()
        with self._exclusive():
            self._catch_up()
            stored = self._db.request(request_id)
            if stored is not None:
                return self._repeated(request_id, request, epsilon, delta, *stored)
            self._refuse_deleted(request)
            self._hf.check_ids(request)
            self._hf.store_.rows_of(request)  # SampleIdError for untracked ids
            self._check_policy(len(request), sensitivity=None, certified=True, epsilon=epsilon, delta=delta)
            result = self._draw(request, epsilon, delta, insecure_noise_seed, sensitivity_budget)
            self._check_policy(len(request), sensitivity=result.sensitivity, certified=result.certified,
                               epsilon=epsilon, delta=delta)
            _pause()
            return self._commit(request_id, request, result, received, insecure_noise_seed)

    def _draw(self, request: list[int], epsilon: float, delta: float, seed: int | None,
              budget: float | None) -> UnlearnResult:
        from certunlearn.unlearn.noise import insecure_noise_generator

        generator = insecure_noise_generator(seed, device=self._hf.fm_.device)
        # a dry run changes nothing: the state advances only after the ledger commit (_commit)
        drawn, self._next_noise = self._next_noise, None  # a prefetched draw serves one attempt only
        if seed is None and drawn is not None and hasattr(self._hf, "dry_release"):
            return self._hf.dry_release(request, epsilon=epsilon, delta=delta, standard_noise=drawn,
                                        sensitivity_budget=budget)
        return self._hf.forget(request, epsilon=epsilon, delta=delta, generator=generator, dry_run=True,
                               sensitivity_budget=budget)

    def prefetch_noise(self) -> None:
        """Draw the next release's N(0, I) vector now (OS CSPRNG), off the request path.

        A long-running server calls this while idle; the next :meth:`forget` without
        ``insecure_noise_seed`` then only scales and adds it. A draw serves one request attempt (a
        refused or failed request discards it) and is never written anywhere. A no-op for a post-hoc
        state (its method draws the noise in ``forget``).
        """
        from certunlearn.unlearn.noise import secure_standard_normal

        self._check_open()
        if not hasattr(self._hf, "dry_release"):
            return
        theta = self._hf.theta_
        self._next_noise = secure_standard_normal(theta.shape, dtype=theta.dtype, device=theta.device)

    def _commit(self, request_id: str, request: list[int], result: UnlearnResult, received: str,
                seed: int | None) -> ForgetOutcome:
        digest = array_digest(result.params_released)
        name = release_name(digest)
        existed = (self._root / LAYOUT["releases"] / name).exists()
        path = write_release(self._root, digest, result.params_released)
        _pause()
        summary = json.dumps(result.summary(), sort_keys=True)
        seq = self._seq + 1
        row = RequestRow(request_id=request_id, ids_digest=ids_digest(request), count=len(request),
                         received_at=received, executed_at=_now(), status="released")
        release = ReleaseRow(
            request_id=request_id, seq=seq, epsilon=float(result.epsilon or 0.0), delta=float(result.delta or 0.0),
            sensitivity=result.sensitivity, sigma=result.sigma, certified=result.certified,
            certificate=result.certificate, reference=result.reference, measured_bound=result.measured_bound,
            model_before=self._model_before(), model_after=digest, noise_source=result.noise_source,
            noise_seed=seed if result.noise_source == "seeded" else None, released_file=name, summary=summary)
        try:
            self._db.append(row, release, request, before_commit=_pause)
        except BaseException:
            if not existed:
                path.unlink(missing_ok=True)
            raise
        _pause()
        self._hf.replay(request)
        self._seq, self._last = seq, release
        return ForgetOutcome(request_id, "released", json.loads(summary), str(path), digest, seq)

    def _model_before(self) -> str:
        return self._state.trained_params if self._last is None else self._last.model_after

    def _repeated(self, request_id: str, request: list[int], epsilon: float, delta: float,
                  row: RequestRow, release: ReleaseRow) -> ForgetOutcome:
        if row.count != len(request) or row.ids_digest != ids_digest(request):
            raise InputError(f"request id {request_id!r} was executed before (release {release.seq}) with other "
                             "ids: a request id names one request; give a new id for a new request")
        if (release.epsilon, release.delta) != (epsilon, delta):
            raise InputError(f"request id {request_id!r} was executed before (release {release.seq}) with "
                             f"epsilon={release.epsilon:g}, delta={release.delta:g}, not epsilon={epsilon:g}, "
                             f"delta={delta:g}")
        path = self._root / LAYOUT["releases"] / release.released_file
        return ForgetOutcome(request_id, "repeated", release.summary_dict(), str(path), release.model_after,
                             release.seq)

    def _refuse_deleted(self, request: list[int]) -> None:
        found = self._db.deleted_by(request)
        if found:
            named = ", ".join(f"{i} (by request {found[i]!r})" for i in sorted(found)[:10])
            more = f" and {len(found) - 10} more" if len(found) > 10 else ""
            raise SampleIdError(f"sample ids already deleted by earlier requests: {named}{more}; nothing was changed")

    def _check_policy(self, count: int, *, sensitivity: float | None, certified: bool, epsilon: float,
                      delta: float) -> None:
        """Refuse what the policy forbids (before anything is written), with every reason."""
        policy = self._state.policy
        if policy is None:
            return
        problems = policy_problems(policy, releases=self._seq, deletions=len(self._hf.deleted_ids),
                                           count=count, sensitivity=sensitivity, certified=certified,
                                           epsilon=epsilon, delta=delta)
        if problems:
            raise PolicyError("request refused: " + "; ".join(problems) + "; nothing was changed")

    # ------------------------------------------------------------------ integrity
    def check(self, *, deep: bool = True, repair: bool = True) -> IntegrityReport:
        """The integrity check: ``state.json``, the ``hfocu/`` manifest, the ledger's consistency, every
        committed release file against its digest, the training data's digest, and orphan release files
        (removed when ``repair``, else reported as problems).

        Args:
            deep: Hash file contents (else sizes and presence only, and the data is not re-read).
            repair: Remove orphan release files (those no committed row refers to).

        Returns:
            :class:`~certunlearn.service.state.IntegrityReport` (``ok`` when no problems).
        """
        return self._integrity(deep=deep, repair=repair, files=True, data=deep)

    def _integrity(self, *, deep: bool, repair: bool, files: bool, data: bool) -> IntegrityReport:
        root, problems, removed = self._root, [], []
        with self._exclusive():
            try:
                self._catch_up()
                if read_state(root) != self._state:
                    problems.append("state.json: changed since the state was opened")
            except StateError as exc:
                problems.append(str(exc))
            if files:
                problems += manifest_problems(root, self._state.files, deep=deep)
            try:
                problems += self._db.consistency_problems()
                referenced = self._db.released_files()
            except DatabaseError as exc:
                return IntegrityReport((*problems, f"ledger: unreadable ({exc})"), ())
            problems += release_problems(root, referenced, deep=deep)
            if data:
                problems += loading.data_problems(self._state.data, kind=self._state.kind)
            for name in orphan_releases(root, set(referenced)):
                if not repair:
                    problems.append(f"releases/{name}: orphan (no committed ledger row refers to it)")
                    continue
                try:
                    (root / LAYOUT["releases"] / name).unlink()
                    removed.append(name)
                except OSError as exc:
                    problems.append(f"releases/{name}: orphan that cannot be removed ({exc.strerror or exc})")
            if removed:
                fsync_dir(root / LAYOUT["releases"])
        return IntegrityReport(tuple(problems), tuple(removed))

    # ------------------------------------------------------------------ reading the ledger
    def status(self, *, deep: bool = False) -> dict[str, Any]:
        """Where the state stands.

        Args:
            deep: Run the integrity check with content hashes (default: sizes and presence).

        Returns:
            ``releases``, ``cumulative_deletions``, ``integrity`` (``"ok"`` or the list of problems),
            ``removed_orphans``, ``last_release`` (``seq``, ``request_id``, ``model_after``,
            ``executed_at``, ``noise_source``; None before the first), ``budget`` (the policy, what it
            leaves, the basic composition of the published releases), ``deletion_capacity`` (ids left:
            tracked and not deleted, and the policy's limit), ``seeded_releases``, and the state's
            ``state_id``, ``model``, ``data``, ``certificate``, ``request_defaults``, ``n_samples``,
            ``tracked``.
        """
        report = self.check(deep=deep)
        with self._exclusive():
            self._catch_up()
            totals = self._db.totals()
            last = self._last
            executed = None if last is None else self._db.request(last.request_id)
            releases = [release for _, release, _ in self._db.history()]
        return views.status(self._root, self._state, totals, report, last,
                            None if executed is None else executed[0].executed_at, releases)

    def _stored(self, request_id: str) -> tuple[RequestRow, ReleaseRow]:
        self._check_open()
        if not isinstance(request_id, str):
            raise ConfigError(f"request_id must be a string, got {request_id!r}")
        stored = self._db.request(request_id)
        if stored is None:
            raise InputError(f"no request {request_id!r} in the ledger of {self._root}")
        return stored

    def record(self, request_id: str) -> dict[str, Any]:
        """The stored ledger rows of one request: ``{"request": …, "release": …}`` (the release's summary
        parsed, and the absolute ``released_path``); raw ids are not included (only their digest).

        Raises:
            InputError: No such request in the ledger.
        """
        row, release = self._stored(request_id)
        out = {k: v for k, v in asdict(release).items() if k != "summary"}
        out["summary"] = release.summary_dict()
        out["released_path"] = str(self._root / LAYOUT["releases"] / release.released_file)
        return {"request": asdict(row), "release": out}

    def report(self, request_id: str, *, policy: Policy | Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The compliance report of one request, built from the ledger
        (:func:`certunlearn.report.build.build_report`).

        Its ids digest and released-parameters digest are the ledger's (``ids_digest``,
        ``model_after``); the certificate section is the stored summary with the ledger's events up to
        this request; utility is the released model's accuracy on the rows still kept, on this
        request's rows and on the held-out split.

        Args:
            request_id: An executed request.
            policy: The report's :class:`~certunlearn.report.policy.Policy` (or its mapping; None:
                the documented defaults).

        Raises:
            InputError: No such request in the ledger.
            StateError: Its release file is missing or does not hash to its digest.
        """
        row, release = self._stored(request_id)
        history = self._db.history(upto=release.seq)
        path = self._root / LAYOUT["releases"] / release.released_file
        params = read_release(path)
        if array_digest(params) != release.model_after:
            raise StateError(f"{path}: its parameters do not hash to the ledger's model_after (altered)")
        return views.request_report(self._state, self._hf, self._dataset, row, release, history,
                                            params, policy)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Close the ledger connection and the lock file (idempotent)."""
        if self._lock is None:
            return
        self._db.close()
        self._lock.close()
        self._lock = None

    def __enter__(self) -> DeletionService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._lock is None else f"{self._seq} releases seen"
        return f"DeletionService({str(self._root)!r}, {state})"

