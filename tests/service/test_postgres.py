"""The ledger on a real PostgreSQL server: the SQLite ledger's behaviour (idempotent request ids, refusals
that change nothing, a reopened state that replays exactly, the same rows for the same requests), the
advisory lock that serialises writers across hosts, two processes on one state, and kill -9.

The server is the one ``CERTUNLEARN_TEST_POSTGRES_URL`` names (``.ci/run`` starts a throwaway cluster
when it can: ``.ci/postgres.sh``). Without it, or when it cannot be reached, or without psycopg, the
tests that need it skip with that reason; the URL checks below need no server.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from service_helpers import (
    PYTHON,
    WORKER,
    Fitted,
    create,
    fit,
    serve_from_two_processes,
    snapshot,
    write_data,
)

from certunlearn.certify.ledger import LedgerPolicy
from certunlearn.errors import ConfigError, InputError, PolicyError, SampleIdError, StateError
from certunlearn.service import DeletionService
from certunlearn.service.ledger_db import LEDGER_DB_SCHEMA_VERSION, LedgerDB

URL_ENV = "CERTUNLEARN_TEST_POSTGRES_URL"
TABLES = ("meta", "requests", "releases", "deleted")


def _server_or_reason() -> tuple[str | None, str]:
    url = os.environ.get(URL_ENV)
    if not url:
        return None, (f"{URL_ENV} is not set: no PostgreSQL server to run the ledger against (.ci/run starts "
                      "one when Debian's postgresql package is installed or installable)")
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install 'certunlearn[postgres]')"
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        return None, f"the PostgreSQL server of {URL_ENV} cannot be reached: {' '.join(str(exc).split())}"
    return url, ""


SERVER, WHY_NOT = _server_or_reason()  # the reason is printed in pytest's summary of skips (-ra)


@pytest.fixture
def url() -> str:
    if SERVER is None:
        pytest.skip(WHY_NOT)
    return SERVER


@pytest.fixture
def fitted(tmp_path: Path) -> Fitted:
    return fit(write_data(tmp_path / "data.npz"))


def _state_id(root: Path) -> str:
    return json.loads((root / "state.json").read_text())["state_id"]


@pytest.fixture
def pg_states(url: str) -> Iterator[list[Path]]:
    """State directories created in a test; their ledger schemas are dropped afterwards."""
    roots: list[Path] = []
    yield roots
    for root in roots:
        if (root / "state.json").exists():
            LedgerDB.discard(url, state_id=_state_id(root))


def _make(root: Path, fitted: Fitted, url: str, roots: list[Path], **options: Any) -> DeletionService:
    roots.append(root)
    return create(root, fitted, ledger_url=url, **options)


@pytest.fixture
def state(tmp_path: Path, fitted: Fitted, url: str, pg_states: list[Path]) -> Path:
    """A closed PostgreSQL-backed state with two releases (r1: ids 1, 2; r2: id 5, seeded noise)."""
    root = tmp_path / "state"
    with _make(root, fitted, url, pg_states) as service:
        service.forget("r1", [2, 1], epsilon=1.0, delta=1e-5)
        service.forget("r2", [5], epsilon=1.0, delta=1e-5, insecure_noise_seed=3)
    return root


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def _dump(url: str, root: Path) -> dict[str, list[tuple]]:
    """Every row of the state's ledger tables."""
    schema = f"certunlearn_{_state_id(root)}"
    with _connect(url) as con:
        present = {r[0] for r in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}
        return {t: con.execute(f'SELECT * FROM "{schema}".{t} ORDER BY 1').fetchall() for t in TABLES if t in present}


def _sql(url: str, root: Path, statement: str) -> None:
    with _connect(url) as con:
        con.execute(f'SET search_path TO "certunlearn_{_state_id(root)}"')
        con.execute(statement)


def _schemas(url: str) -> set[str]:
    with _connect(url) as con:
        return {r[0] for r in con.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'certunlearn_%'")}


# ---------------------------------------------------------------------------------- no server needed
@pytest.mark.parametrize("bad", ["postgresql://alice:secret@db.example/ledgers",
                                 "postgresql:///ledgers?host=/run/pg&password=secret",
                                 "postgres://:secret@/ledgers"])
def test_a_url_with_a_password_is_refused_before_anything_is_made(tmp_path: Path, fitted: Fitted, bad: str) -> None:
    with pytest.raises(ConfigError, match="embeds a password") as caught:
        create(tmp_path / "state", fitted, ledger_url=bad)
    assert "secret" not in str(caught.value)
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("bad", ["mysql://db/ledgers", "/srv/ledger.sqlite", 7])
def test_a_ledger_url_must_be_postgresql(tmp_path: Path, fitted: Fitted, bad: object) -> None:
    with pytest.raises(ConfigError, match="must start with postgresql://"):
        create(tmp_path / "state", fitted, ledger_url=bad)
    assert not (tmp_path / "state").exists()


def test_an_unreachable_server_is_named_and_leaves_nothing(tmp_path: Path, fitted: Fitted) -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'certunlearn[postgres]')")
    url = f"postgresql:///ledgers?host={tmp_path / 'no-server'}&connect_timeout=2"
    with pytest.raises(StateError, match="cannot connect to the PostgreSQL ledger"):
        create(tmp_path / "state", fitted, ledger_url=url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]


# ---------------------------------------------------------------------------------- the same ledger
def test_layout_and_postgres_settings(tmp_path: Path, fitted: Fitted, url: str, pg_states: list[Path]) -> None:
    root = tmp_path / "state"
    with _make(root, fitted, url, pg_states) as service:
        out = service.forget("r1", [3], epsilon=1.0, delta=1e-5)
        assert service._db.backend == "PostgreSQL" and service._db.schema_version() == LEDGER_DB_SCHEMA_VERSION
        assert service._db._con.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert service._db.state_lock() is not None
    # released files stay in the state directory; the ledger is in the database, not in a file
    assert sorted(p.name for p in root.iterdir()) == ["hfocu", "releases", "state.json", "state.lock"]
    assert [p.name for p in (root / "releases").iterdir()] == [f"{out.model_after}.pt"]
    state = json.loads((root / "state.json").read_text())
    assert state["ledger_url"] == url and state["state_schema_version"] == 1
    rows = _dump(url, root)
    assert dict(rows["meta"])["format"] == "certunlearn.ledger" and dict(rows["meta"])["state_id"] == state["state_id"]
    assert [r[0] for r in rows["requests"]] == ["r1"] and [r[0] for r in rows["deleted"]] == [3]


def test_the_same_requests_write_the_same_ledger_as_sqlite(tmp_path: Path, fitted: Fitted, url: str,
                                                          pg_states: list[Path]) -> None:
    """Seeded requests on an SQLite state and a PostgreSQL state of one fitted model: the same releases
    (bit for bit), the same rows (times and paths aside), the same status and refusals."""
    seen = {}
    for name in ("sqlite", "postgres"):
        root = tmp_path / name
        service = _make(root, fitted, url, pg_states) if name == "postgres" else create(root, fitted)
        with service:
            service.forget("r1", [7, 3], epsilon=1.0, delta=1e-5, insecure_noise_seed=1)
            service.forget("r2", [11, 12], epsilon=0.5, delta=1e-6, insecure_noise_seed=2)
            service.forget("r3", [20], epsilon=1.0, delta=1e-5)
            with pytest.raises(SampleIdError, match=r"3 \(by request 'r1'\)"):
                service.forget("r4", [3, 30], epsilon=1.0, delta=1e-5)
            records = [service.record(r) for r in ("r1", "r2")]
            for record in records:
                for key in ("received_at", "executed_at"):
                    record["request"].pop(key)
                record["release"].pop("released_path")
                for key in ("elapsed_s", "refine_seconds"):  # wall-clock times
                    record["release"]["summary"].pop(key)
            status = service.status(deep=True)
            seen[name] = (records, {k: status[k] for k in ("releases", "cumulative_deletions", "integrity",
                                                           "seeded_releases", "budget", "deletion_capacity")},
                          service.unlearner.sum_a_.clone(), service._db.totals())
    assert seen["sqlite"][0] == seen["postgres"][0]
    assert seen["sqlite"][1] == seen["postgres"][1] and seen["postgres"][1]["integrity"] == "ok"
    assert torch.equal(seen["sqlite"][2], seen["postgres"][2]) and seen["sqlite"][3] == seen["postgres"][3]


def test_a_repeated_request_returns_the_stored_outcome_and_draws_no_noise(
        state: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import certunlearn.unlearn.release as release

    draws = []
    original = release.gaussian_noise_like
    monkeypatch.setattr(release, "gaussian_noise_like", lambda *a: draws.append(1) or original(*a))
    before, rows = snapshot(state), _dump(url, state)
    with DeletionService.open(state) as service:
        first = service.record("r1")
        again = service.forget("r1", [1, 2], epsilon=1.0, delta=1e-5)
        reordered = service.forget("r1", (2, 1), epsilon=1.0, delta=1e-5)
        with pytest.raises(InputError, match="with other ids"):
            service.forget("r1", [1, 3], epsilon=1.0, delta=1e-5)
        with pytest.raises(InputError, match="epsilon=1, delta=1e-05, not epsilon=2"):
            service.forget("r1", [1, 2], epsilon=2.0, delta=1e-5)
    assert draws == [] and snapshot(state) == before and _dump(url, state) == rows
    assert again.status == reordered.status == "repeated" and again == reordered
    assert again.seq == 1 and again.model_after == first["release"]["model_after"]


def test_refusals_change_nothing(tmp_path: Path, state: Path, url: str, fitted: Fitted,
                                 pg_states: list[Path]) -> None:
    before, rows = snapshot(state), _dump(url, state)
    with DeletionService.open(state) as service, pytest.raises(
            SampleIdError, match=r"already deleted by earlier requests: 2 \(by request 'r1'\), 5 \(by request 'r2'\)"):
        service.forget("r3", [2, 5, 9], epsilon=1.0, delta=1e-5)
    assert snapshot(state) == before and _dump(url, state) == rows
    root = tmp_path / "limited"
    with _make(root, fitted, url, pg_states, policy=LedgerPolicy(epsilon=0.5, delta=1e-7, max_releases=1)) as service:
        service.forget("r1", [1], epsilon=0.5, delta=1e-7)
    before, rows = snapshot(root), _dump(url, root)
    with DeletionService.open(root) as service, pytest.raises(PolicyError, match="release 2 would exceed max_releases=1"):
        service.forget("r2", [2], epsilon=0.5, delta=1e-7)
    assert snapshot(root) == before and _dump(url, root) == rows


def test_reopened_state_rebuilds_the_deletion_state_exactly(state: Path, fitted: Fitted) -> None:
    plain = fit(Path(fitted.ref.source)).hf
    plain.forget([1, 2], epsilon=1.0, delta=1e-5)
    plain.forget([5], epsilon=1.0, delta=1e-5)
    before = snapshot(state)
    with DeletionService.open(state) as service:
        hf = service.unlearner
        assert hf.deleted_ids == (1, 2, 5) and torch.equal(hf.sum_a_, plain.sum_a_)
        assert (hf.counts_ == plain.counts_).all()
        report = service.report("r1")
        assert report["lineage"]["released_params_sha256"] == service.record("r1")["release"]["model_after"]
        out = service.forget("r3", [40], epsilon=1.0, delta=1e-5)
    assert out.seq == 3 and set(snapshot(state)) - set(before) == {f"releases/{out.model_after}.pt"}


BROKEN: dict[str, tuple[str, str]] = {
    "newer ledger schema": ("UPDATE meta SET value = '2' WHERE key = 'schema_version'",
                            "the ledger has schema version 2, newer than"),
    "foreign ledger": ("UPDATE meta SET value = 'another-state' WHERE key = 'state_id'",
                       "a foreign ledger: it belongs to state 'another-state'"),
    "ledger without tables": ("DROP TABLE deleted", r"lacks the tables \['deleted'\]"),
    "ledger rows tampered": ("DELETE FROM deleted WHERE sample_id = 2", "do not match its count and ids digest"),
    "ledger missing": ("DROP SCHEMA {schema} CASCADE", "the ledger database is missing"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_ledger_is_refused_by_name_and_left_as_it_is(state: Path, url: str, case: str) -> None:
    statement, message = BROKEN[case]
    _sql(url, state, statement.format(schema=f'"certunlearn_{_state_id(state)}"'))
    before = snapshot(state)
    rows = None if case == "ledger missing" else _dump(url, state)
    with pytest.raises(StateError, match=message):
        DeletionService.open(state)
    assert snapshot(state) == before and (rows is None or _dump(url, state) == rows)


def test_a_password_written_into_state_json_is_refused(state: Path) -> None:
    data = json.loads((state / "state.json").read_text())
    data["ledger_url"] = "postgresql://alice:secret@db.example/ledgers"
    (state / "state.json").write_text(json.dumps(data))
    with pytest.raises(StateError, match="embeds a password"):
        DeletionService.open(state)


def test_a_failed_creation_drops_its_ledger_schema(tmp_path: Path, fitted: Fitted, url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import certunlearn.service.deletion_service as module

    def full(tmp: Path) -> None:
        raise OSError("disk full")

    before = _schemas(url)
    monkeypatch.setattr(module, "manifest", full)  # fails after the ledger was created
    with pytest.raises(OSError, match="disk full"):
        create(tmp_path / "state", fitted, ledger_url=url)
    assert _schemas(url) == before and sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]


# ---------------------------------------------------------------------------------- several writers
def test_the_advisory_lock_serialises_services_without_the_file_lock(state: Path) -> None:
    """Two services on one state, as on two hosts: while one holds the state, the other waits and times
    out; the lock is the database's (the directory's state.lock is not used)."""
    with DeletionService.open(state) as first, DeletionService.open(state, lock_timeout=0.2) as second:
        with first._exclusive():
            with pytest.raises(StateError, match="stayed locked by another process for 0.2 s"):
                second.forget("r3", [9], epsilon=1.0, delta=1e-5)
            import fcntl

            with open(state / "state.lock", "rb") as handle:  # the file lock is free meanwhile
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert second.forget("r3", [9], epsilon=1.0, delta=1e-5).seq == 3
        # a writer that bypassed the lock is refused by the seq check in the write transaction
        assert first.forget("r4", [10], epsilon=1.0, delta=1e-5).seq == 4  # catches up first: fine
        first._seq -= 1
        with pytest.raises(StateError, match="release seq 4 does not follow the ledger's 4"):
            first._commit("r5", [11], first._draw([11], 1.0, 1e-5, None, None), "t", None)
    with DeletionService.open(state) as service:
        assert service.status(deep=True)["releases"] == 4 and service.status()["integrity"] == "ok"


def test_two_processes_serve_one_state(tmp_path: Path, fitted: Fitted, url: str, pg_states: list[Path]) -> None:
    root = tmp_path / "state"
    _make(root, fitted, url, pg_states).close()
    serve_from_two_processes(root)
    rows = _dump(url, root)
    assert sorted(r[0] for r in rows["deleted"]) == list(range(40)) and len(rows["releases"]) == 40


@pytest.mark.slow
def test_kill_at_random_points_leaves_the_state_before_or_after(tmp_path: Path, url: str,
                                                               pg_states: list[Path]) -> None:
    """SIGKILL a process serving a request through the PostgreSQL ledger at random points: the server
    rolls the open transaction back and ends the session (releasing the advisory lock), and the state
    reopens exactly before or after the request."""
    rounds = 30
    fitted = fit(write_data(tmp_path / "data.npz", n=200))
    root = tmp_path / "state"
    _make(root, fitted, url, pg_states).close()
    run = subprocess.run([PYTHON, str(WORKER), "crash", str(root), str(rounds), "0.004"], capture_output=True,
                         text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)["rounds"]
    assert len(results) == rounds
    bad = [r for r in results if not r.get("exact")]
    assert not bad, bad[:3]
    for r in results:
        assert r["integrity_after"] == "ok" and r["releases_after"] == r["round"] + 1
        assert r["first"] == ("repeated" if r["committed"] else "released") and r["again"] == "repeated"
    killed = [r for r in results if r["killed"]]
    assert len(killed) >= rounds - 2
    assert any(r["committed"] for r in killed) and any(not r["committed"] for r in killed)
    with DeletionService.open(root) as service:
        status = service.status(deep=True)
    assert status["releases"] == rounds and status["integrity"] == "ok"
    assert status["cumulative_deletions"] == rounds
