"""One SQL layer for the ledger: an embedded SQLite file, or a schema on a PostgreSQL server.

The ledger (:mod:`certunlearn.service.ledger_db`) has one schema, one set of queries (``?``
placeholders) and one transaction protocol. A *location* says where its tables live and carries what
differs between the two databases:

* :class:`SQLiteFile` (the default: ``ledger.sqlite`` in the state directory; the standard
  library's ``sqlite3``): write transactions ``BEGIN IMMEDIATE``; read snapshots ``BEGIN``;
  ``journal_mode=WAL``, ``synchronous=FULL``, ``foreign_keys=ON``; storage checked by ``PRAGMA
  quick_check`` and ``foreign_key_check``; columns ``INTEGER``, ``REAL``, ``TEXT``. Writers are
  serialised by the state directory's file lock (one host).
* :class:`PostgresSchema` (a ``postgresql://`` URL; psycopg 3, ``pip install 'certunlearn[postgres]'``):
  the tables live in the schema ``certunlearn_<state_id>`` (one schema per state, so the table
  names, queries and ``meta`` rows are the SQLite ones); write transactions ``BEGIN`` then ``LOCK
  TABLE meta IN EXCLUSIVE MODE`` (writers queue, readers do not, as with ``BEGIN IMMEDIATE``); read
  snapshots ``BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY``; ``synchronous_commit=on``; columns
  ``BIGINT``, ``DOUBLE PRECISION``, ``TEXT``. Writers on any number of hosts are serialised by a
  session advisory lock keyed by the state (:attr:`PostgresSchema.lock_key`).

Both run in autocommit mode with explicit transactions, fetch every row inside the call, return rows
readable by index or column name, and raise :class:`DatabaseError` / :class:`IntegrityError` for
the driver's errors. A ledger URL never holds a password (:func:`check_ledger_url`): it is written to
``state.json``; libpq reads the password at run time from ``PGPASSWORD``, a ``~/.pgpass`` file
(``PGPASSFILE``) or a service file (``?service=NAME``).

Example:
    >>> import tempfile
    >>> where = locate(Path(tempfile.mkdtemp()) / "x.sqlite", state_id="s1")
    >>> con = where.connect(new=True)
    >>> with con.transaction("write"):
    ...     con.run("CREATE TABLE t (k TEXT PRIMARY KEY)")
    ...     con.run_many("INSERT INTO t VALUES (?)", [("a",), ("b",)])
    >>> [row["k"] for row in con.rows("SELECT k FROM t ORDER BY k")], con.value("SELECT COUNT(*) FROM t")
    (['a', 'b'], 2)
    >>> con.run("INSERT INTO t VALUES (?)", ("a",))
    Traceback (most recent call last):
    ...
    certunlearn.service.sql.IntegrityError: UNIQUE constraint failed: t.k
    >>> con.close()
    >>> check_ledger_url("postgresql://alice:secret@db.example/ledgers")
    Traceback (most recent call last):
    ...
    certunlearn.errors.ConfigError: the ledger URL embeds a password, and the URL is written to state.json: remove it and give the password through PGPASSWORD, a ~/.pgpass file (PGPASSFILE) or a libpq service file (?service=NAME)
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from certunlearn.errors import ConfigError, StateError

__all__ = [
    "LEDGER_URL_SCHEMES",
    "Connection",
    "DatabaseError",
    "IntegrityError",
    "PostgresSchema",
    "SQLiteFile",
    "check_ledger_url",
    "is_ledger_url",
    "locate",
]

LEDGER_URL_SCHEMES = ("postgresql", "postgres")
"""URL schemes of a PostgreSQL ledger (libpq's)."""

_SCHEMA_PREFIX = "certunlearn_"
_STATE_ID = re.compile(r"[A-Za-z0-9_-]{1,51}")  # quoted identifiers: 12 + 51 = 63 bytes, PostgreSQL's limit


class DatabaseError(Exception):
    """The database failed a statement (unreadable, corrupt, connection lost, ...)."""


class IntegrityError(DatabaseError):
    """A statement broke a constraint (primary key, unique, foreign key, check)."""


def is_ledger_url(target: object) -> bool:
    """Whether ``target`` is a PostgreSQL ledger URL (and not a file path).

    Example:
        >>> is_ledger_url("postgresql://db/ledgers"), is_ledger_url("/srv/state/ledger.sqlite")
        (True, False)
    """
    return isinstance(target, str) and target.split("://", 1)[0].lower() in LEDGER_URL_SCHEMES and "://" in target


def check_ledger_url(url: object) -> str:
    """``url`` if it can be a state's ledger: a ``postgresql://`` (or ``postgres://``) URL without a password.

    The URL is written to ``state.json``, so a password in it (``user:password@`` or ``?password=``)
    is refused, never stripped: libpq takes it from ``PGPASSWORD``, ``~/.pgpass`` or a service file.
    Host, port, user and database may be left out of the URL: libpq then reads ``PGHOST``, ``PGPORT``,
    ``PGUSER``, ``PGDATABASE`` on each host at run time.

    Raises:
        ConfigError: Not a string, another scheme, unparsable, or a password in the URL.

    Example:
        >>> check_ledger_url("postgresql://ledger@db.example:5432/certunlearn?sslmode=require")
        'postgresql://ledger@db.example:5432/certunlearn?sslmode=require'
    """
    if not isinstance(url, str) or not is_ledger_url(url):
        raise ConfigError(f"a ledger URL must start with postgresql:// (or postgres://), got {url!r}")
    try:
        parts = urlsplit(url)
        password, query = parts.password, parse_qs(parts.query, keep_blank_values=True)
    except ValueError as exc:
        raise ConfigError(f"unparsable ledger URL ({exc})") from None
    if password is not None or "password" in query:
        raise ConfigError("the ledger URL embeds a password, and the URL is written to state.json: remove it and "
                          "give the password through PGPASSWORD, a ~/.pgpass file (PGPASSFILE) or a libpq service "
                          "file (?service=NAME)")
    return url


class Connection:
    """An autocommit connection with explicit transactions, ``?`` placeholders and rows by index or name.

    Build it with a location's ``connect``. ``raw`` is the driver's connection. Not thread-safe.
    """

    def __init__(self, raw: Any, location: SQLiteFile | PostgresSchema) -> None:
        self.raw, self.location = raw, location
        self._percent = location.placeholder != "?"
        self._error, self._integrity = location.driver_errors()

    def _sql(self, statement: str) -> str:
        if not self._percent:
            return statement
        if "%" in statement:
            raise ValueError(f"a ledger statement must not contain '%': {statement!r}")
        return statement.replace("?", "%s")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._integrity as exc:
            raise IntegrityError(" ".join(str(exc).split())) from exc
        except self._error as exc:
            raise DatabaseError(" ".join(str(exc).split()) or type(exc).__name__) from exc

    def rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of a query (each readable as ``row[0]`` or ``row["column"]``)."""
        with self._errors():
            return list(self.raw.execute(self._sql(statement), params).fetchall())

    def one(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a query, or None."""
        rows = self.rows(statement, params)
        return rows[0] if rows else None

    def value(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.one(statement, params)
        return None if row is None else row[0]

    def run(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Execute a statement that returns nothing (or whose rows are not needed)."""
        with self._errors():
            self.raw.execute(self._sql(statement), params)

    def run_many(self, statement: str, params: Iterable[Sequence[Any]]) -> None:
        """Execute a statement once per parameter tuple."""
        with self._errors(), contextlib.closing(self.raw.cursor()) as cursor:
            cursor.executemany(self._sql(statement), list(params))

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (or failed and not yet rolled back)."""
        return self.location.in_transaction(self.raw)

    @contextlib.contextmanager
    def transaction(self, kind: str = "write") -> Iterator[None]:
        """One transaction: ``write`` (serialised with every other writer), ``create`` (the first one,
        before the tables exist) or ``read`` (one snapshot for several SELECTs; inside an open
        transaction it joins it). ``COMMIT`` at the end, ``ROLLBACK`` on any error."""
        if kind == "read" and self.in_transaction:
            yield
            return
        try:
            for statement in self.location.begin[kind]:
                self.run(statement)
            yield
            self.run("COMMIT")
        except BaseException:
            if self.in_transaction:  # the body failed, or COMMIT itself did: nothing is written
                with contextlib.suppress(DatabaseError):  # a lost connection has rolled back already
                    self.run("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""
        self.raw.close()


# ---------------------------------------------------------------------------------- SQLite
@dataclass(frozen=True, slots=True)
class SQLiteFile:
    """A ledger in an SQLite file (the embedded default). See the module docstring."""

    path: Path

    placeholder = "?"
    begin = {"create": ("BEGIN IMMEDIATE",), "write": ("BEGIN IMMEDIATE",), "read": ("BEGIN",)}
    lock_key = None  # writers are serialised by the state directory's file lock
    kind = "SQLite"

    @property
    def where(self) -> str:
        """How messages name this ledger."""
        return str(self.path)

    @staticmethod
    def driver_errors() -> tuple[type[Exception], type[Exception]]:
        """The driver's base error and integrity error."""
        return sqlite3.Error, sqlite3.IntegrityError

    @staticmethod
    def in_transaction(raw: sqlite3.Connection) -> bool:
        """Whether ``raw`` has a transaction open."""
        return raw.in_transaction

    def connect(self, *, new: bool) -> Connection | None:
        """A configured connection; None when ``not new`` and the file is missing.

        Raises:
            StateError: ``new`` and the file exists, or SQLite refuses write-ahead logging here.
        """
        if new and self.path.exists():
            raise StateError(f"{self.where}: a ledger already exists here")
        if not new and not self.path.is_file():
            return None
        raw = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)  # autocommit; explicit BEGINs
        raw.row_factory = sqlite3.Row
        con = Connection(raw, self)
        try:
            if new and con.value("PRAGMA journal_mode=WAL") != "wal":
                raise StateError(f"{self.where}: SQLite refused write-ahead logging (journal_mode=WAL) on this "
                                 "file system")
            con.run("PRAGMA foreign_keys=ON")
            con.run("PRAGMA synchronous=FULL")
        except BaseException:
            con.close()
            raise
        return con

    @staticmethod
    def create_storage(con: Connection) -> None:
        """Nothing: the file is the storage."""

    @staticmethod
    def after_check(con: Connection) -> None:
        """Once the file is known to be a ledger: switch it to write-ahead logging if it is not."""
        if con.value("PRAGMA journal_mode") != "wal":
            con.run("PRAGMA journal_mode=WAL")

    @staticmethod
    def ddl(schema: str) -> list[str]:
        """The schema's statements, as written."""
        return [s.strip() for s in schema.split(";") if s.strip()]

    @staticmethod
    def tables(con: Connection) -> set[str]:
        """Names of the tables in the file."""
        return {row[0] for row in con.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}

    @staticmethod
    def damage(con: Connection) -> list[str]:
        """``PRAGMA quick_check``'s complaint, if any."""
        quick = [row[0] for row in con.rows("PRAGMA quick_check")]
        return [] if quick == ["ok"] else [f"ledger: SQLite quick_check failed: {quick[:3]}"]

    @staticmethod
    def dangling(con: Connection) -> bool:
        """Whether rows refer to missing rows (``PRAGMA foreign_key_check``)."""
        return con.one("PRAGMA foreign_key_check") is not None

    @staticmethod
    def journal_mode(con: Connection) -> str:
        """``PRAGMA journal_mode``."""
        return str(con.value("PRAGMA journal_mode"))

    def discard(self) -> None:
        """Remove the file and its write-ahead log."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- PostgreSQL
def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError("a PostgreSQL ledger needs psycopg 3: pip install 'certunlearn[postgres]'") from None
    return psycopg


class _Row:
    """A PostgreSQL row readable by index or column name (as ``sqlite3.Row``)."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index, self._values = index, tuple(values)

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def _pg_rows(cursor: Any) -> Any:
    """psycopg row factory making :class:`_Row`."""
    index = {column.name: k for k, column in enumerate(cursor.description or ())}
    return lambda values: _Row(index, values)


_PG_TYPES = ((re.compile(r"\bINTEGER\b"), "BIGINT"), (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"))

_PG_DANGLING = (
    "SELECT (SELECT COUNT(*) FROM releases l LEFT JOIN requests q USING (request_id) WHERE q.request_id IS NULL)"
    " + (SELECT COUNT(*) FROM deleted d LEFT JOIN requests q USING (request_id) WHERE q.request_id IS NULL)"
    " + (SELECT COUNT(*) FROM deleted d LEFT JOIN releases l ON d.seq = l.seq WHERE l.seq IS NULL)")


@dataclass(frozen=True, slots=True)
class PostgresSchema:
    """A ledger in the schema ``certunlearn_<state_id>`` of the database a URL names. See the module docstring.

    Attributes:
        url: The ledger URL (:func:`check_ledger_url`: no password).
        state_id: The state whose ledger this is (letters, digits, ``_``, ``-``; at most 51).
    """

    url: str
    state_id: str

    placeholder = "%s"
    begin = {"create": ("BEGIN",), "write": ("BEGIN", "LOCK TABLE meta IN EXCLUSIVE MODE"),
             "read": ("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",)}
    kind = "PostgreSQL"

    def __post_init__(self) -> None:
        check_ledger_url(self.url)
        if not isinstance(self.state_id, str) or not _STATE_ID.fullmatch(self.state_id):
            raise StateError(f"state id {self.state_id!r} cannot name a PostgreSQL schema (letters, digits, "
                             "'_' and '-', at most 51)")

    @property
    def schema(self) -> str:
        """The schema holding this state's tables."""
        return _SCHEMA_PREFIX + self.state_id

    @property
    def where(self) -> str:
        """How messages name this ledger."""
        return f"{self.url} (schema {self.schema})"

    @property
    def lock_key(self) -> int:
        """The session advisory lock that serialises this state's writers on every host (a signed 64-bit
        key: the first 8 bytes of SHA-256 of ``certunlearn.state:<state_id>``)."""
        digest = hashlib.sha256(f"certunlearn.state:{self.state_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    @staticmethod
    def driver_errors() -> tuple[type[Exception], type[Exception]]:
        """The driver's base error and integrity error."""
        psycopg = _psycopg()
        return psycopg.Error, psycopg.IntegrityError

    @staticmethod
    def in_transaction(raw: Any) -> bool:
        """Whether ``raw`` is not idle (in a transaction, a failed one, or broken)."""
        return raw.info.transaction_status != _psycopg().pq.TransactionStatus.IDLE

    def _raw(self) -> Any:
        psycopg = _psycopg()
        given = psycopg.conninfo.conninfo_to_dict(self.url)
        options = {k: v for k, v in (("connect_timeout", 30), ("application_name", "certunlearn")) if k not in given}
        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=_pg_rows, **options)
        except psycopg.Error as exc:
            raise StateError(f"{self.where}: cannot connect to the PostgreSQL ledger "
                             f"({' '.join(str(exc).split())})") from exc

    def connect(self, *, new: bool) -> Connection | None:
        """A connection whose ``search_path`` is the state's schema; None when ``not new`` and the schema
        is missing.

        Raises:
            StateError: The server cannot be reached, or ``new`` and the schema exists.
        """
        con = Connection(self._raw(), self)
        try:
            exists = con.value("SELECT 1 FROM pg_namespace WHERE nspname = ?", (self.schema,)) is not None
            if new and exists:
                raise StateError(f"{self.where}: a ledger already exists here")
            if not new and not exists:
                con.close()
                return None
            con.run(f'SET search_path TO "{self.schema}"')
            con.run("SET synchronous_commit TO on")
        except BaseException:
            con.close()
            raise
        return con

    def create_storage(self, con: Connection) -> None:
        """``CREATE SCHEMA`` (inside the creating transaction: PostgreSQL's DDL is transactional)."""
        con.run(f'CREATE SCHEMA "{self.schema}"')

    @staticmethod
    def after_check(con: Connection) -> None:
        """Nothing: PostgreSQL always writes ahead."""

    @staticmethod
    def ddl(schema: str) -> list[str]:
        """The schema's statements with PostgreSQL's 64-bit column types."""
        statements = SQLiteFile.ddl(schema)
        for pattern, name in _PG_TYPES:
            statements = [pattern.sub(name, s) for s in statements]
        return statements

    def tables(self, con: Connection) -> set[str]:
        """Names of the tables in the state's schema."""
        return {row[0] for row in con.rows("SELECT tablename FROM pg_tables WHERE schemaname = ?", (self.schema,))}

    @staticmethod
    def damage(con: Connection) -> list[str]:
        """Nothing to check from a client: the server checks its own pages."""
        return []

    @staticmethod
    def dangling(con: Connection) -> bool:
        """Whether rows refer to missing requests or releases (by query)."""
        return bool(con.value(_PG_DANGLING))

    @staticmethod
    def journal_mode(con: Connection) -> str:
        """``wal``: PostgreSQL always writes ahead."""
        return "wal"

    def discard(self) -> None:
        """``DROP SCHEMA … CASCADE``: the ledger and everything in it (if it exists)."""
        con = Connection(self._raw(), self)
        try:
            con.run(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            con.close()


def locate(target: str | Path, *, state_id: str) -> SQLiteFile | PostgresSchema:
    """Where the ledger of ``state_id`` lives: a ``postgresql://`` URL, or the path of an SQLite file.

    Raises:
        ConfigError: A URL with a password (:func:`check_ledger_url`).
        StateError: A state id that cannot name a PostgreSQL schema.

    Example:
        >>> locate("postgresql:///ledgers", state_id="ab12").where
        'postgresql:///ledgers (schema certunlearn_ab12)'
        >>> locate("/srv/model/ledger.sqlite", state_id="ab12").where
        '/srv/model/ledger.sqlite'
    """
    if is_ledger_url(target):
        return PostgresSchema(str(target), state_id)
    return SQLiteFile(Path(target))
