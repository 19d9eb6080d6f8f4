"""Malformed states and inputs: each is a clear error naming the problem, and no file changes."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from service_helpers import Fitted, create, fit, make_state, snapshot, write_data

from certunlearn.errors import CertUnlearnError, ConfigError, InputError, SampleIdError, StateError
from certunlearn.service import DeletionService


@pytest.fixture
def fitted(tmp_path: Path) -> Fitted:
    return fit(write_data(tmp_path / "data.npz"))


@pytest.fixture
def state(tmp_path: Path, fitted: Fitted) -> Path:
    return make_state(tmp_path / "state", fitted)


def _edit_json(root: Path, change: Callable[[dict], object]) -> None:
    state = json.loads((root / "state.json").read_text())
    change(state)
    (root / "state.json").write_text(json.dumps(state))


def _sql(root: Path, statement: str) -> None:
    con = sqlite3.connect(root / "ledger.sqlite")
    con.execute(statement)
    con.commit()
    con.close()


def _release(root: Path) -> Path:
    return sorted((root / "releases").iterdir())[0]


def _foreign_ledger(root: Path) -> None:
    other = root.parent / "other-ledger.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.executemany("INSERT INTO meta VALUES (?, ?)", [("format", "certunlearn.ledger"), ("schema_version", "1"),
                                                        ("state_id", "another-state")])
    con.commit()
    con.close()
    shutil.copy(other, root / "ledger.sqlite")


def _other_release(root: Path) -> None:
    path = _release(root)
    state = torch.load(path, weights_only=True)
    torch.save({k: v + 1 for k, v in state.items()}, path)


def _change_data(root: Path) -> None:
    source = Path(json.loads((root / "state.json").read_text())["data"]["source"])
    with np.load(source) as archive:
        X, y = archive["X"].copy(), archive["y"]
    X[0, 0] += 1.0
    np.savez(source, X=X, y=y)


BROKEN_STATES: dict[str, tuple[Callable[[Path], object], str]] = {
    "state.json missing": (lambda r: (r / "state.json").unlink(), "cannot read the state file"),
    "state.json truncated": (lambda r: (r / "state.json").write_bytes((r / "state.json").read_bytes()[:200]),
                             "truncated or not JSON"),
    "state.json empty": (lambda r: (r / "state.json").write_bytes(b""), "truncated or not JSON"),
    "state.json not UTF-8": (lambda r: (r / "state.json").write_bytes(b"\xff\xfe{"), "truncated or not JSON"),
    "foreign JSON object": (lambda r: (r / "state.json").write_text('{"name": "my model"}'),
                            "not a certunlearn state"),
    "JSON array": (lambda r: (r / "state.json").write_text("[1, 2]"), "must hold a JSON object"),
    "newer state schema": (lambda r: _edit_json(r, lambda s: s.update(state_schema_version=2)),
                           "state schema version 2 is newer"),
    "another kind": (lambda r: _edit_json(r, lambda s: s.update(kind="curenewton")), "unsupported state kind"),
    "unknown key": (lambda r: _edit_json(r, lambda s: s.update(extra=1)), r"unknown keys \['extra'\]"),
    "missing key": (lambda r: _edit_json(r, lambda s: s.pop("files")), r"missing keys \['files'\]"),
    "bad policy": (lambda r: _edit_json(r, lambda s: s.update(policy={"epsilon": -1, "delta": 1e-5})),
                   "invalid state.json.*epsilon"),
    "relative data path": (lambda r: _edit_json(r, lambda s: s["data"].update(source="data.npz")),
                           "must be an absolute path"),
    "newer ledger schema": (lambda r: _sql(r, "UPDATE meta SET value = '2' WHERE key = 'schema_version'"),
                            "the ledger has schema version 2, newer than"),
    "ledger missing": (lambda r: (r / "ledger.sqlite").unlink(), "the ledger database is missing"),
    "ledger not SQLite": (lambda r: (r / "ledger.sqlite").write_bytes(b"not a database" * 100),
                          "not a readable SQLite ledger"),
    "ledger truncated": (lambda r: (r / "ledger.sqlite").write_bytes((r / "ledger.sqlite").read_bytes()[:100]),
                         "not a readable SQLite ledger"),
    "foreign ledger": (_foreign_ledger, "a foreign ledger: it belongs to state 'another-state'"),
    "ledger without tables": (lambda r: _sql(r, "DROP TABLE deleted"), r"lacks the tables \['deleted'\]"),
    "ledger rows tampered": (lambda r: _sql(r, "DELETE FROM deleted WHERE sample_id = 2"),
                             "do not match its count and ids digest"),
    "statistics missing": (lambda r: (r / "hfocu" / "statistics.bin").unlink(),
                           "hfocu/statistics.bin: missing"),
    "statistics truncated": (lambda r: (r / "hfocu" / "statistics.bin").write_bytes(b"\0" * 8),
                             "hfocu/statistics.bin: 8 bytes"),
    "statistics altered": (lambda r: (r / "hfocu" / "statistics.bin").write_bytes(
        bytes(len((r / "hfocu" / "statistics.bin").read_bytes()))), "hfocu/statistics.bin: content does not match"),
    "weights altered": (lambda r: (r / "hfocu" / "params.pt").write_bytes(
        (r / "hfocu" / "params.pt").read_bytes()[::-1]), "hfocu/params.pt: content does not match"),
    "release deleted": (lambda r: _release(r).unlink(), "missing \\(committed in the ledger\\)"),
    "release altered": (_other_release, "do not hash to the ledger's model_after"),
    "release truncated": (lambda r: _release(r).write_bytes(_release(r).read_bytes()[:50]),
                          "unreadable release file"),
    "releases directory missing": (lambda r: shutil.rmtree(r / "releases"), "releases/: missing"),
    "data file changed after fit": (_change_data, "the data changed since fit"),
    "data file deleted": (lambda r: Path(json.loads((r / "state.json").read_text())["data"]["source"]).unlink(),
                          "cannot be loaded"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_STATES))
def test_a_broken_state_is_refused_by_name_and_left_as_it_is(state: Path, case: str) -> None:
    breaks, message = BROKEN_STATES[case]
    breaks(state)
    before = snapshot(state)
    with pytest.raises(StateError, match=message):
        DeletionService.open(state)
    assert snapshot(state) == before


def test_no_state_directory(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no such state directory"):
        DeletionService.open(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_a_state_broken_while_open_fails_its_check(state: Path) -> None:
    with DeletionService.open(state) as service:
        _release(state).unlink()
        assert "missing (committed in the ledger)" in service.status()["integrity"][0]
        assert not service.check().ok


BAD_REQUESTS: dict[str, tuple[dict, type[CertUnlearnError], str]] = {
    "repeated ids": (dict(ids=[8, 8]), SampleIdError, r"repeated ids: \[8\]"),
    "text ids": (dict(ids=["8"]), SampleIdError, "ids must be integers, got '8'"),
    "a string of ids": (dict(ids="8,9"), SampleIdError, "a collection of integers"),
    "float ids": (dict(ids=[1.5]), SampleIdError, "ids must be integers, got 1.5"),
    "boolean ids": (dict(ids=[True]), SampleIdError, "ids must be integers"),
    "no ids": (dict(ids=[]), SampleIdError, "no ids to forget"),
    "unknown id": (dict(ids=[10_000]), SampleIdError, r"unknown ids \[10000\]: ids are 0\.\.95"),
    "negative id": (dict(ids=[-1]), SampleIdError, r"unknown ids \[-1\]"),
    "epsilon zero": (dict(epsilon=0.0), ConfigError, "epsilon"),
    "epsilon negative": (dict(epsilon=-1.0), ConfigError, "epsilon"),
    "epsilon nan": (dict(epsilon=math.nan), ConfigError, "epsilon"),
    "epsilon text": (dict(epsilon="1"), ConfigError, "epsilon"),
    "delta zero": (dict(delta=0.0), ConfigError, "delta"),
    "delta one": (dict(delta=1.0), ConfigError, "delta"),
    "delta above one": (dict(delta=1.5), ConfigError, "delta"),
    "empty request id": (dict(request_id=""), ConfigError, "request_id must be a non-empty string"),
    "request id with a newline": (dict(request_id="a\nb"), ConfigError, "printable"),
    "request id not text": (dict(request_id=7), ConfigError, "request_id must be a non-empty string"),
    "negative noise seed": (dict(insecure_noise_seed=-1), ConfigError, "insecure_noise_seed"),
    "zero budget": (dict(sensitivity_budget=0.0), ConfigError, "sensitivity_budget"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_a_bad_request_is_refused_by_name_and_changes_nothing(state: Path, case: str) -> None:
    change, error, message = BAD_REQUESTS[case]
    request = {"request_id": "r9", "ids": [8, 9], "epsilon": 1.0, "delta": 1e-5, **change}
    before = snapshot(state)
    with DeletionService.open(state) as service:
        with pytest.raises(error, match=message):
            service.forget(request.pop("request_id"), request.pop("ids"), **request)
        assert service.status()["releases"] == 2
    assert snapshot(state) == before


def test_untracked_ids_are_refused(tmp_path: Path, fitted: Fitted) -> None:
    partial = fit(Path(fitted.ref.source), track_ids=[0, 1, 2])
    with create(tmp_path / "state", partial) as service, pytest.raises(SampleIdError, match="not tracked|untracked"):
        service.forget("r1", [2, 50], epsilon=1.0, delta=1e-5)


@pytest.mark.parametrize("method", ["record", "report"])
def test_an_unknown_request_id_is_named(state: Path, method: str) -> None:
    with DeletionService.open(state) as service, pytest.raises(InputError, match="no request 'r404' in the ledger"):
        getattr(service, method)("r404")


def test_create_refuses_a_file_or_a_non_empty_directory(tmp_path: Path, fitted: Fitted) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="is a file, not a directory"):
        create(tmp_path / "file", fitted)
    with pytest.raises(InputError, match="non-empty directory"):
        create(tmp_path / "full", fitted)
    assert (tmp_path / "file").read_text() == "x" and sorted(p.name for p in (tmp_path / "full").iterdir()) == [
        "keep.txt"]


def test_a_closed_service_says_so(state: Path) -> None:
    service = DeletionService.open(state)
    service.close()
    service.close()
    with pytest.raises(StateError, match="closed"):
        service.forget("r9", [9], epsilon=1.0, delta=1e-5)
