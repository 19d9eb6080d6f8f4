"""The deletion ledger of a state directory in SQLite: the source of truth for what happened.

One file, ``ledger.sqlite``, opened with ``PRAGMA journal_mode=WAL`` (set once, stored in the file),
``synchronous=FULL`` and ``foreign_keys=ON`` (per connection). Tables (schema
:data:`LEDGER_DB_SCHEMA_VERSION`):

* ``meta(key, value)`` — ``format`` = :data:`LEDGER_FORMAT`, ``schema_version``, ``state_id`` (the
  state directory this ledger belongs to: a ledger copied from another state is refused), ``created_at``;
* ``requests`` — ``request_id`` (primary key), ``ids_digest`` (:func:`certunlearn.digest.ids_digest`),
  ``count``, ``received_at``, ``executed_at``, ``status`` (``released``: only executed requests are
  stored; a refused request writes nothing);
* ``releases`` — one per request: ``request_id``, ``seq`` (1, 2, … in commit order, unique),
  ``epsilon``, ``delta``, ``sensitivity``, ``sigma``, ``certified``, ``certificate`` (``refine`` /
  ``worst-case``), ``reference``, ``measured_bound``, ``model_before`` / ``model_after`` (parameter
  digests, :func:`certunlearn.digest.array_digest`), ``noise_source``, ``noise_seed`` (only for
  ``seeded`` noise), ``released_file`` (``<model_after>.pt`` in ``releases/``) and ``summary``
  (the release's :meth:`~certunlearn.unlearn.base.UnlearnResult.summary` as JSON);
* ``deleted`` — the cumulative deleted set: ``sample_id`` (primary key: an id is deleted once),
  ``request_id``, ``seq``. Replaying the requests in ``seq`` order, each request's ids in increasing
  order, rebuilds the HF-OCU deletion state exactly.

A request's three kinds of rows are written by :meth:`LedgerDB.append` in ONE transaction
(``BEGIN IMMEDIATE`` … ``COMMIT``), so the ledger holds a request entirely or not at all.

Migration rule: a reader accepts a ledger of its own schema version or older. An older ledger is
migrated forward one version at a time by the functions in :data:`MIGRATIONS` (version k → k + 1),
each in its own ``BEGIN IMMEDIATE`` transaction that also rewrites ``meta.schema_version``; a ledger
from a newer version is refused with :class:`~certunlearn.errors.StateError` and never modified.
Version 1 is the first, so :data:`MIGRATIONS` is empty.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "ledger.sqlite"
    >>> db = LedgerDB.create(path, state_id="s1")
    >>> db.last_seq(), db.journal_mode()
    (0, 'wal')
    >>> db.close()
    >>> LedgerDB.open(path, state_id="other")
    Traceback (most recent call last):
    ...
    certunlearn.errors.StateError: ...ledger.sqlite: a foreign ledger: it belongs to state 's1', not 'other'
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certunlearn.digest import ids_digest
from certunlearn.errors import StateError

__all__ = [
    "LEDGER_DB_SCHEMA_VERSION",
    "LEDGER_FORMAT",
    "MIGRATIONS",
    "LedgerDB",
    "ReleaseRow",
    "RequestRow",
]

LEDGER_FORMAT = "certunlearn.ledger"
"""``meta.format`` of every ledger database."""

LEDGER_DB_SCHEMA_VERSION = 1
"""Schema of the tables below; see the migration rule in the module docstring."""

MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}
"""Version k → a function that migrates a version-k ledger to k + 1 inside an open transaction."""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY,
    ids_digest TEXT NOT NULL,
    count INTEGER NOT NULL CHECK (count >= 1),
    received_at TEXT NOT NULL,
    executed_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('released'))
);
CREATE TABLE releases (
    request_id TEXT PRIMARY KEY REFERENCES requests(request_id),
    seq INTEGER NOT NULL UNIQUE CHECK (seq >= 1),
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    sensitivity REAL,
    sigma REAL NOT NULL CHECK (sigma >= 0),
    certified INTEGER NOT NULL CHECK (certified IN (0, 1)),
    certificate TEXT NOT NULL,
    reference TEXT NOT NULL,
    measured_bound REAL,
    model_before TEXT NOT NULL,
    model_after TEXT NOT NULL,
    noise_source TEXT NOT NULL CHECK (noise_source IN ('secure', 'seeded', 'none')),
    noise_seed INTEGER,
    released_file TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE deleted (
    sample_id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests(request_id),
    seq INTEGER NOT NULL REFERENCES releases(seq)
);
CREATE INDEX deleted_by_seq ON deleted(seq);
"""
_TABLES = ("meta", "requests", "releases", "deleted")


@dataclass(frozen=True, slots=True)
class RequestRow:
    """A row of ``requests`` (see the module docstring)."""

    request_id: str
    ids_digest: str
    count: int
    received_at: str
    executed_at: str
    status: str = "released"


@dataclass(frozen=True, slots=True)
class ReleaseRow:
    """A row of ``releases`` (see the module docstring); ``summary`` is JSON text."""

    request_id: str
    seq: int
    epsilon: float
    delta: float
    sensitivity: float | None
    sigma: float
    certified: bool
    certificate: str
    reference: str
    measured_bound: float | None
    model_before: str
    model_after: str
    noise_source: str
    noise_seed: int | None
    released_file: str
    summary: str

    def summary_dict(self) -> dict[str, Any]:
        """The stored summary, parsed."""
        return json.loads(self.summary)


_REQUEST_COLUMNS = tuple(f.name for f in fields(RequestRow))
_RELEASE_COLUMNS = tuple(f.name for f in fields(ReleaseRow))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class LedgerDB:
    """A connection to one state's ledger (use :meth:`create` or :meth:`open`; not thread-safe)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._con = connection
        self.path = path

    # ------------------------------------------------------------------ opening
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        con = sqlite3.connect(path, timeout=60.0, isolation_level=None)  # autocommit; explicit BEGINs
        con.row_factory = sqlite3.Row
        return con

    @staticmethod
    def _configure(con: sqlite3.Connection) -> None:
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA synchronous=FULL")

    @classmethod
    def create(cls, path: str | Path, *, state_id: str) -> LedgerDB:
        """Create a new, empty ledger at ``path`` (which must not exist) for the state ``state_id``."""
        path = Path(path)
        if path.exists():
            raise StateError(f"{path}: a ledger already exists here")
        con = cls._connect(path)
        try:
            if con.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                raise StateError(f"{path}: SQLite refused write-ahead logging (journal_mode=WAL) on this file system")
            cls._configure(con)
            with _transaction(con):
                for statement in filter(str.strip, _SCHEMA.split(";")):  # executescript would commit
                    con.execute(statement)
                con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                    ("format", LEDGER_FORMAT), ("schema_version", str(LEDGER_DB_SCHEMA_VERSION)),
                    ("state_id", state_id), ("created_at", _now())])
        except BaseException:
            con.close()
            raise
        return cls(con, path)

    @classmethod
    def open(cls, path: str | Path, *, state_id: str) -> LedgerDB:
        """Open an existing ledger, check its format, schema version and owner, migrate an older one.

        Raises:
            StateError: Missing, not SQLite, corrupt, not a certunlearn ledger, from a newer schema,
                or belonging to another state.
        """
        path = Path(path)
        if not path.is_file():
            raise StateError(f"{path}: the ledger database is missing")
        con = cls._connect(path)
        try:
            cls._configure(con)
            version = cls._check_meta(con, path, state_id)
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            while version < LEDGER_DB_SCHEMA_VERSION:
                with _transaction(con):
                    MIGRATIONS[version](con)
                    version += 1
                    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        except sqlite3.DatabaseError as exc:
            con.close()
            raise StateError(f"{path}: not a readable SQLite ledger ({exc})") from exc
        except BaseException:
            con.close()
            raise
        return cls(con, path)

    @staticmethod
    def _check_meta(con: sqlite3.Connection, path: Path, state_id: str) -> int:
        names = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in names:
            raise StateError(f"{path}: not a certunlearn ledger (no meta table)")
        meta = {row["key"]: row["value"] for row in con.execute("SELECT key, value FROM meta")}
        if meta.get("format") != LEDGER_FORMAT:
            raise StateError(f"{path}: not a certunlearn ledger (format {meta.get('format')!r})")
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            raise StateError(f"{path}: invalid ledger schema_version {meta.get('schema_version')!r}") from None
        if version > LEDGER_DB_SCHEMA_VERSION:
            raise StateError(f"{path}: the ledger has schema version {version}, newer than this certunlearn's "
                             f"{LEDGER_DB_SCHEMA_VERSION}: upgrade certunlearn to open it")
        if version < 1 or any(v not in MIGRATIONS for v in range(version, LEDGER_DB_SCHEMA_VERSION)):
            raise StateError(f"{path}: unsupported ledger schema version {version}")
        if meta.get("state_id") != state_id:
            raise StateError(f"{path}: a foreign ledger: it belongs to state {meta.get('state_id')!r}, "
                             f"not {state_id!r}")
        missing = [t for t in _TABLES if t not in names]
        if missing:
            raise StateError(f"{path}: the ledger lacks the tables {missing}")
        return version

    def close(self) -> None:
        """Close the connection (the last one to close folds the write-ahead log into the file)."""
        self._con.close()

    def journal_mode(self) -> str:
        """The connection's journal mode (``wal``)."""
        return str(self._con.execute("PRAGMA journal_mode").fetchone()[0])

    def schema_version(self) -> int:
        """``meta.schema_version``."""
        return int(self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    # ------------------------------------------------------------------ reading
    def last_seq(self) -> int:
        """The largest committed ``seq`` (0 when nothing was released)."""
        return int(self._con.execute("SELECT COALESCE(MAX(seq), 0) FROM releases").fetchone()[0])

    def request(self, request_id: str) -> tuple[RequestRow, ReleaseRow] | None:
        """The stored rows of ``request_id``, or None when it was never executed."""
        with _read(self._con):
            req = self._con.execute("SELECT * FROM requests WHERE request_id = ?", (request_id,)).fetchone()
            rel = self._con.execute("SELECT * FROM releases WHERE request_id = ?", (request_id,)).fetchone()
        if req is None:
            return None
        if rel is None:
            raise StateError(f"{self.path}: request {request_id!r} has no release row")
        return _request_row(req), _release_row(rel)

    def history(self, after: int = 0, *, upto: int | None = None) -> list[tuple[RequestRow, ReleaseRow, list[int]]]:
        """Committed requests with ``after < seq (<= upto)``, in ``seq`` order, with their ids (increasing)."""
        upto = 2**62 if upto is None else upto
        with _read(self._con):
            rows = self._con.execute(
                "SELECT * FROM releases WHERE seq > ? AND seq <= ? ORDER BY seq", (after, upto)).fetchall()
            requests = {r["request_id"]: r for r in self._con.execute(
                "SELECT q.* FROM requests q JOIN releases l USING (request_id) WHERE l.seq > ? AND l.seq <= ?",
                (after, upto))}
            ids: dict[int, list[int]] = {}
            for sample, seq in self._con.execute(
                    "SELECT sample_id, seq FROM deleted WHERE seq > ? AND seq <= ? ORDER BY seq, sample_id",
                    (after, upto)):
                ids.setdefault(int(seq), []).append(int(sample))
        out = []
        for rel in rows:
            if rel["request_id"] not in requests:
                raise StateError(f"{self.path}: release {rel['seq']} has no request row")
            out.append((_request_row(requests[rel["request_id"]]), _release_row(rel), ids.get(int(rel["seq"]), [])))
        return out

    def deleted_by(self, ids: Iterable[int]) -> dict[int, str]:
        """``{sample id: request id}`` for those of ``ids`` already deleted."""
        found: dict[int, str] = {}
        values = [int(i) for i in ids]
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            query = f"SELECT sample_id, request_id FROM deleted WHERE sample_id IN ({','.join('?' * len(chunk))})"
            found.update({int(s): str(r) for s, r in self._con.execute(query, chunk)})
        return found

    def released_files(self) -> dict[str, str]:
        """``{released_file: model_after}`` of every committed release."""
        return {str(f): str(d) for f, d in self._con.execute("SELECT released_file, model_after FROM releases")}

    def totals(self) -> dict[str, Any]:
        """Releases, cumulative deletions, seeded releases and the basic-composition sums of ε and δ."""
        with _read(self._con):
            releases, seeded, eps, delta = self._con.execute(
                "SELECT COUNT(*), COALESCE(SUM(noise_source = 'seeded'), 0), "
                "COALESCE(SUM(CASE WHEN sigma > 0 THEN epsilon END), 0.0), "
                "COALESCE(SUM(CASE WHEN sigma > 0 THEN delta END), 0.0) FROM releases").fetchone()
            deletions = self._con.execute("SELECT COUNT(*) FROM deleted").fetchone()[0]
        return {"releases": int(releases), "cumulative_deletions": int(deletions), "seeded_releases": int(seeded),
                "epsilon_sum": float(eps), "delta_sum": float(delta)}

    def consistency_problems(self) -> list[str]:
        """What is inconsistent inside the ledger (empty when it is sound)."""
        con, problems = self._con, []
        quick = [row[0] for row in con.execute("PRAGMA quick_check")]
        if quick != ["ok"]:
            return [f"ledger: SQLite quick_check failed: {quick[:3]}"]
        if con.execute("PRAGMA foreign_key_check").fetchone() is not None:
            problems.append("ledger: rows refer to missing requests or releases (foreign_key_check)")
        seqs = [int(row[0]) for row in con.execute("SELECT seq FROM releases ORDER BY seq")]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"ledger: release seq numbers are not 1..{len(seqs)}")
        lonely = [r[0] for r in con.execute(
            "SELECT q.request_id FROM requests q LEFT JOIN releases l USING (request_id) WHERE l.seq IS NULL")]
        if lonely:
            problems.append(f"ledger: requests without a release: {lonely[:5]}")
        mixed = con.execute("SELECT COUNT(*) FROM deleted d JOIN releases l ON d.seq = l.seq "
                            "WHERE d.request_id != l.request_id").fetchone()[0]
        if mixed:
            problems.append(f"ledger: {mixed} deleted rows name another request than their release")
        for req, rel, ids in self.history():
            if len(ids) != req.count or ids_digest(ids) != req.ids_digest:
                problems.append(f"ledger: the deleted ids of request {req.request_id!r} (seq {rel.seq}) do not "
                                "match its count and ids digest")
        return problems

    # ------------------------------------------------------------------ writing
    def append(self, request: RequestRow, release: ReleaseRow, ids: Sequence[int], *,
               before_commit: Callable[[], None] | None = None) -> None:
        """Commit one executed request: its ``requests``, ``releases`` and ``deleted`` rows, in one transaction.

        Raises:
            StateError: ``release.seq`` does not follow the ledger (another writer committed without
                the state lock) or a row breaks a constraint; nothing is written.
        """
        con = self._con
        with _transaction(con):
            last = self.last_seq()
            if release.seq != last + 1:
                raise StateError(f"{self.path}: release seq {release.seq} does not follow the ledger's {last} "
                                 "(another writer committed without holding the state lock)")
            try:
                con.execute(f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)}) VALUES "
                            f"({', '.join('?' * len(_REQUEST_COLUMNS))})", astuple(request))
                con.execute(f"INSERT INTO releases ({', '.join(_RELEASE_COLUMNS)}) VALUES "
                            f"({', '.join('?' * len(_RELEASE_COLUMNS))})",
                            tuple(int(v) if isinstance(v, bool) else v for v in astuple(release)))
                con.executemany("INSERT INTO deleted (sample_id, request_id, seq) VALUES (?, ?, ?)",
                                [(int(i), request.request_id, release.seq) for i in ids])
            except sqlite3.IntegrityError as exc:
                raise StateError(f"{self.path}: request {request.request_id!r} breaks a ledger constraint "
                                 f"({exc})") from exc
            if before_commit is not None:
                before_commit()


@contextlib.contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any error)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:  # the body failed, or COMMIT itself did: nothing is written
            con.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def _read(con: sqlite3.Connection) -> Iterator[None]:
    """One read snapshot for several SELECTs (a deferred transaction)."""
    if con.in_transaction:
        yield
        return
    con.execute("BEGIN")
    try:
        yield
    finally:
        con.execute("COMMIT")


def _request_row(row: sqlite3.Row) -> RequestRow:
    return RequestRow(**{k: row[k] for k in _REQUEST_COLUMNS})


def _release_row(row: sqlite3.Row) -> ReleaseRow:
    values = {k: row[k] for k in _RELEASE_COLUMNS}
    values["certified"] = bool(values["certified"])
    return ReleaseRow(**values)
