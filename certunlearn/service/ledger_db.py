"""The deletion ledger of a state: the source of truth for what happened, in SQLite or PostgreSQL.

The same tables, queries and transactions run on the state directory's ``ledger.sqlite`` (the
embedded default: ``PRAGMA journal_mode=WAL``, set once and stored in the file, ``synchronous=FULL``
and ``foreign_keys=ON`` per connection) or, for a state served from several hosts, in the schema
``certunlearn_<state_id>`` of a PostgreSQL database named by a ``postgresql://`` URL;
:mod:`certunlearn.service.sql` holds what differs. Tables (schema :data:`LEDGER_DB_SCHEMA_VERSION`):

* ``meta(key, value)`` — ``format`` = :data:`LEDGER_FORMAT`, ``schema_version``, ``state_id`` (the
  state this ledger belongs to: a ledger copied from another state is refused), ``created_at``;
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

A request's three kinds of rows are written by :meth:`LedgerDB.append` in ONE write transaction
(SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``BEGIN`` + ``LOCK TABLE meta IN EXCLUSIVE MODE``) … ``COMMIT``,
so the ledger holds a request entirely or not at all.

Migration rule: a reader accepts a ledger of its own schema version or older. An older ledger is
migrated forward one version at a time by the functions in :data:`MIGRATIONS` (version k → k + 1),
each in its own write transaction that also rewrites ``meta.schema_version``; a ledger from a newer
version is refused with :class:`~certunlearn.errors.StateError` and never modified. Both databases
follow the rule alike. Version 1 is the first, so :data:`MIGRATIONS` is empty.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "ledger.sqlite"
    >>> db = LedgerDB.create(path, state_id="s1")
    >>> db.last_seq(), db.journal_mode(), db.state_lock() is None   # SQLite: the state's file lock serves
    (0, 'wal', True)
    >>> db.close()
    >>> LedgerDB.open(path, state_id="other")
    Traceback (most recent call last):
    ...
    certunlearn.errors.StateError: ...ledger.sqlite: a foreign ledger: it belongs to state 's1', not 'other'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certunlearn.digest import ids_digest
from certunlearn.errors import StateError
from certunlearn.service.locks import AdvisoryLock
from certunlearn.service.sql import (
    Connection,
    DatabaseError,
    IntegrityError,
    PostgresSchema,
    SQLiteFile,
    locate,
)

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

MIGRATIONS: dict[int, Callable[[Connection], None]] = {}
"""Version k → a function that migrates a version-k ledger to k + 1 inside an open write transaction
(:class:`certunlearn.service.sql.Connection`: the same statements on SQLite and PostgreSQL)."""

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

    def __init__(self, connection: Connection, location: SQLiteFile | PostgresSchema) -> None:
        self._sql, self._location = connection, location
        self.where = location.where

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, target: str | Path, *, state_id: str) -> LedgerDB:
        """Create a new, empty ledger for the state ``state_id``.

        Args:
            target: The path of an SQLite file that must not exist, or a ``postgresql://`` URL (no
                password: :func:`~certunlearn.service.sql.check_ledger_url`) of a database in which the
                schema ``certunlearn_<state_id>`` must not exist.
            state_id: The state's identifier, written to ``meta``.

        Raises:
            StateError: The ledger exists already, or cannot be created (no write-ahead logging on
                this file system, the server cannot be reached or refuses).
            ConfigError: A URL with a password, or psycopg is not installed.
        """
        location = locate(target, state_id=state_id)
        try:
            con = location.connect(new=True)
        except DatabaseError as exc:
            raise StateError(f"{location.where}: cannot create the ledger ({exc})") from exc
        assert con is not None
        try:
            with con.transaction("create"):
                location.create_storage(con)
                for statement in location.ddl(_SCHEMA):  # one statement at a time: executescript would commit
                    con.run(statement)
                con.run_many("INSERT INTO meta (key, value) VALUES (?, ?)", [
                    ("format", LEDGER_FORMAT), ("schema_version", str(LEDGER_DB_SCHEMA_VERSION)),
                    ("state_id", state_id), ("created_at", _now())])
        except DatabaseError as exc:
            con.close()
            raise StateError(f"{location.where}: cannot create the ledger ({exc})") from exc
        except BaseException:
            con.close()
            raise
        return cls(con, location)

    @classmethod
    def open(cls, target: str | Path, *, state_id: str) -> LedgerDB:
        """Open an existing ledger (an SQLite path or a ``postgresql://`` URL), check its format, schema
        version and owner, migrate an older one.

        Raises:
            StateError: Missing, not SQLite, corrupt, not a certunlearn ledger, from a newer schema,
                belonging to another state, or on a server that cannot be reached.
        """
        location = locate(target, state_id=state_id)
        try:
            con = location.connect(new=False)
        except DatabaseError as exc:
            raise StateError(f"{location.where}: not a readable {location.kind} ledger ({exc})") from exc
        if con is None:
            raise StateError(f"{location.where}: the ledger database is missing")
        try:
            version = cls._check_meta(con, location, state_id)
            location.after_check(con)
            while version < LEDGER_DB_SCHEMA_VERSION:
                with con.transaction("write"):  # the stored version again: another process may have migrated
                    version = int(con.value("SELECT value FROM meta WHERE key = 'schema_version'"))
                    if version < LEDGER_DB_SCHEMA_VERSION:
                        MIGRATIONS[version](con)
                        version += 1
                        con.run("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        except DatabaseError as exc:
            con.close()
            raise StateError(f"{location.where}: not a readable {location.kind} ledger ({exc})") from exc
        except BaseException:
            con.close()
            raise
        return cls(con, location)

    @staticmethod
    def _check_meta(con: Connection, location: SQLiteFile | PostgresSchema, state_id: str) -> int:
        where, names = location.where, location.tables(con)
        if "meta" not in names:
            raise StateError(f"{where}: not a certunlearn ledger (no meta table)")
        meta = {row["key"]: row["value"] for row in con.rows("SELECT key, value FROM meta")}
        if meta.get("format") != LEDGER_FORMAT:
            raise StateError(f"{where}: not a certunlearn ledger (format {meta.get('format')!r})")
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            raise StateError(f"{where}: invalid ledger schema_version {meta.get('schema_version')!r}") from None
        if version > LEDGER_DB_SCHEMA_VERSION:
            raise StateError(f"{where}: the ledger has schema version {version}, newer than this certunlearn's "
                             f"{LEDGER_DB_SCHEMA_VERSION}: upgrade certunlearn to open it")
        if version < 1 or any(v not in MIGRATIONS for v in range(version, LEDGER_DB_SCHEMA_VERSION)):
            raise StateError(f"{where}: unsupported ledger schema version {version}")
        if meta.get("state_id") != state_id:
            raise StateError(f"{where}: a foreign ledger: it belongs to state {meta.get('state_id')!r}, "
                             f"not {state_id!r}")
        missing = [t for t in _TABLES if t not in names]
        if missing:
            raise StateError(f"{where}: the ledger lacks the tables {missing}")
        return version

    @staticmethod
    def discard(target: str | Path, *, state_id: str) -> None:
        """Remove a ledger and everything in it (an SQLite file with its log; a PostgreSQL schema, if it
        exists): for a creation that failed before its state existed, and for tests. Never call it on
        a state's ledger in service."""
        locate(target, state_id=state_id).discard()

    def close(self) -> None:
        """Close the connection (SQLite: the last one to close folds the write-ahead log into the file;
        PostgreSQL: the state's advisory lock, if held, is released)."""
        self._sql.close()

    @property
    def _con(self) -> Any:
        """The driver's connection (``sqlite3.Connection`` or ``psycopg.Connection``)."""
        return self._sql.raw

    @property
    def backend(self) -> str:
        """``SQLite`` or ``PostgreSQL``."""
        return self._location.kind

    def journal_mode(self) -> str:
        """The journal mode: ``wal`` (SQLite: set at creation; PostgreSQL always writes ahead)."""
        return self._location.journal_mode(self._sql)

    def schema_version(self) -> int:
        """``meta.schema_version``."""
        return int(self._sql.value("SELECT value FROM meta WHERE key = 'schema_version'"))

    def state_lock(self) -> AdvisoryLock | None:
        """The lock that serialises the state's writers on every host: on PostgreSQL, the session advisory
        lock keyed by the state (:attr:`~certunlearn.service.sql.PostgresSchema.lock_key`) on this
        connection; None on SQLite (the state directory's file lock serves)."""
        key = self._location.lock_key
        return None if key is None else AdvisoryLock(self._sql, key)

    # ------------------------------------------------------------------ reading
    def last_seq(self) -> int:
        """The largest committed ``seq`` (0 when nothing was released)."""
        return int(self._sql.value("SELECT COALESCE(MAX(seq), 0) FROM releases"))

    def request(self, request_id: str) -> tuple[RequestRow, ReleaseRow] | None:
        """The stored rows of ``request_id``, or None when it was never executed."""
        con = self._sql
        with con.transaction("read"):
            req = con.one("SELECT * FROM requests WHERE request_id = ?", (request_id,))
            rel = con.one("SELECT * FROM releases WHERE request_id = ?", (request_id,))
        if req is None:
            return None
        if rel is None:
            raise StateError(f"{self.where}: request {request_id!r} has no release row")
        return _request_row(req), _release_row(rel)

    def history(self, after: int = 0, *, upto: int | None = None) -> list[tuple[RequestRow, ReleaseRow, list[int]]]:
        """Committed requests with ``after < seq (<= upto)``, in ``seq`` order, with their ids (increasing)."""
        con, upto = self._sql, 2**62 if upto is None else upto
        with con.transaction("read"):
            rows = con.rows("SELECT * FROM releases WHERE seq > ? AND seq <= ? ORDER BY seq", (after, upto))
            requests = {r["request_id"]: r for r in con.rows(
                "SELECT q.* FROM requests q JOIN releases l USING (request_id) WHERE l.seq > ? AND l.seq <= ?",
                (after, upto))}
            ids: dict[int, list[int]] = {}
            for sample, seq in con.rows(
                    "SELECT sample_id, seq FROM deleted WHERE seq > ? AND seq <= ? ORDER BY seq, sample_id",
                    (after, upto)):
                ids.setdefault(int(seq), []).append(int(sample))
        out = []
        for rel in rows:
            if rel["request_id"] not in requests:
                raise StateError(f"{self.where}: release {rel['seq']} has no request row")
            out.append((_request_row(requests[rel["request_id"]]), _release_row(rel), ids.get(int(rel["seq"]), [])))
        return out

    def deleted_by(self, ids: Iterable[int]) -> dict[int, str]:
        """``{sample id: request id}`` for those of ``ids`` already deleted."""
        found: dict[int, str] = {}
        values = [int(i) for i in ids]
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            query = f"SELECT sample_id, request_id FROM deleted WHERE sample_id IN ({','.join('?' * len(chunk))})"
            found.update({int(s): str(r) for s, r in self._sql.rows(query, chunk)})
        return found

    def released_files(self) -> dict[str, str]:
        """``{released_file: model_after}`` of every committed release."""
        return {str(f): str(d) for f, d in self._sql.rows("SELECT released_file, model_after FROM releases")}

    def totals(self) -> dict[str, Any]:
        """Releases, cumulative deletions, seeded releases and the basic-composition sums of ε and δ."""
        con = self._sql
        with con.transaction("read"):
            releases, seeded, eps, delta = con.one(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN noise_source = 'seeded' THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN sigma > 0 THEN epsilon END), 0.0), "
                "COALESCE(SUM(CASE WHEN sigma > 0 THEN delta END), 0.0) FROM releases")
            deletions = con.value("SELECT COUNT(*) FROM deleted")
        return {"releases": int(releases), "cumulative_deletions": int(deletions), "seeded_releases": int(seeded),
                "epsilon_sum": float(eps), "delta_sum": float(delta)}

    def consistency_problems(self) -> list[str]:
        """What is inconsistent inside the ledger (empty when it is sound)."""
        con, location = self._sql, self._location
        damaged = location.damage(con)
        if damaged:
            return damaged
        problems = []
        if location.dangling(con):
            problems.append("ledger: rows refer to missing requests or releases (foreign_key_check)")
        seqs = [int(row[0]) for row in con.rows("SELECT seq FROM releases ORDER BY seq")]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"ledger: release seq numbers are not 1..{len(seqs)}")
        lonely = [r[0] for r in con.rows(
            "SELECT q.request_id FROM requests q LEFT JOIN releases l USING (request_id) WHERE l.seq IS NULL")]
        if lonely:
            problems.append(f"ledger: requests without a release: {lonely[:5]}")
        mixed = con.value("SELECT COUNT(*) FROM deleted d JOIN releases l ON d.seq = l.seq "
                          "WHERE d.request_id != l.request_id")
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
        con = self._sql
        with con.transaction("write"):
            last = self.last_seq()
            if release.seq != last + 1:
                raise StateError(f"{self.where}: release seq {release.seq} does not follow the ledger's {last} "
                                 "(another writer committed without holding the state lock)")
            try:
                con.run(f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(_REQUEST_COLUMNS))})", astuple(request))
                con.run(f"INSERT INTO releases ({', '.join(_RELEASE_COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(_RELEASE_COLUMNS))})",
                        tuple(int(v) if isinstance(v, bool) else v for v in astuple(release)))
                con.run_many("INSERT INTO deleted (sample_id, request_id, seq) VALUES (?, ?, ?)",
                             [(int(i), request.request_id, release.seq) for i in ids])
            except IntegrityError as exc:
                raise StateError(f"{self.where}: request {request.request_id!r} breaks a ledger constraint "
                                 f"({exc})") from exc
            if before_commit is not None:
                before_commit()


def _request_row(row: Any) -> RequestRow:
    return RequestRow(**{k: row[k] for k in _REQUEST_COLUMNS})


def _release_row(row: Any) -> ReleaseRow:
    values = {k: row[k] for k in _RELEASE_COLUMNS}
    values["certified"] = bool(values["certified"])
    return ReleaseRow(**values)
