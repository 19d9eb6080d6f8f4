"""DeletionService: create → forget → reopen (bit for bit, across processes), idempotency, refusals,
policy, status, record and report."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import torch
from service_helpers import PYTHON, WORKER, Fitted, create, fit, make_state, snapshot, write_data

from certunlearn.certify.ledger import LedgerPolicy
from certunlearn.digest import array_digest, ids_digest
from certunlearn.errors import ConfigError, InputError, PolicyError, SampleIdError
from certunlearn.service import DeletionService
from certunlearn.service.ledger_db import LEDGER_DB_SCHEMA_VERSION
from certunlearn.service.state import read_release


@pytest.fixture
def fitted(tmp_path: Path) -> Fitted:
    return fit(write_data(tmp_path / "data.npz"))


@pytest.fixture
def state(tmp_path: Path, fitted: Fitted) -> Path:
    return make_state(tmp_path / "state", fitted)


def _rows(root: Path, table: str) -> list[tuple]:
    con = sqlite3.connect(root / "ledger.sqlite")
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    finally:
        con.close()


def test_layout_and_sqlite_settings(tmp_path: Path, fitted: Fitted) -> None:
    root = tmp_path / "state"
    with create(root, fitted) as service:
        out = service.forget("r1", [3], epsilon=1.0, delta=1e-5)
        con = service._db._con
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert con.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert service._db.schema_version() == LEDGER_DB_SCHEMA_VERSION
    assert sorted(p.name for p in root.iterdir()) == ["hfocu", "ledger.sqlite", "releases", "state.json", "state.lock"]
    assert [p.name for p in (root / "releases").iterdir()] == [f"{out.model_after}.pt"]
    assert Path(out.released_path) == root / "releases" / f"{out.model_after}.pt"
    assert array_digest(read_release(Path(out.released_path))) == out.model_after
    state = json.loads((root / "state.json").read_text())
    assert state["format"] == "certunlearn.state" and state["state_schema_version"] == 1 and state["kind"] == "hfocu"
    assert state["data"]["source"] == str(tmp_path / "data.npz") and len(state["data"]["data_digest"]) == 64
    assert not list(tmp_path.glob(".state.creating-*"))  # the temporary creation directory is gone


def test_replay_is_forget_bit_for_bit(fitted: Fitted) -> None:
    live = fitted.hf
    other = fit(Path(fitted.ref.source)).hf
    for ids in ([4, 9], [1], [30, 2, 17]):
        live.forget(ids, epsilon=1.0, delta=1e-5)
        other.replay(ids)
        assert torch.equal(live.sum_a_, other.sum_a_) and (live.counts_ == other.counts_).all()
        assert live.deleted_ids == other.deleted_ids
    with pytest.raises(SampleIdError, match="already forgotten"):
        other.replay([9])
    assert other.deleted_ids == live.deleted_ids


def test_reopened_in_a_fresh_process_releases_what_a_live_process_would(tmp_path: Path, fitted: Fitted) -> None:
    """A state reopened in another process continues bit for bit: same seeded release, same Σ a_u."""
    with create(tmp_path / "copy", fitted) as closed:  # the same fitted unlearner, so the same state
        closed.forget("r1", [7, 3], epsilon=1.0, delta=1e-5, insecure_noise_seed=1)
    run = subprocess.run([PYTHON, str(WORKER), "forget", str(tmp_path / "copy"), "r2", "2", "12", "11"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    other = json.loads(run.stdout)
    with create(tmp_path / "live", fitted) as live:  # a process that never closed its state
        first = live.forget("r1", [3, 7], epsilon=1.0, delta=1e-5, insecure_noise_seed=1)
        second = live.forget("r2", [11, 12], epsilon=1.0, delta=1e-5, insecure_noise_seed=2)
        assert torch.equal(torch.tensor(other["sum_a"], dtype=torch.float64), live.unlearner.sum_a_)
    assert other["model_after"] == second.model_after and other["seq"] == second.seq == 2
    ours, theirs = read_release(Path(second.released_path)), read_release(Path(other["released_path"]))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # and the library alone (forget, forget with the same generators) releases the same parameters
    plain = fit(Path(fitted.ref.source)).hf
    plain.forget([3, 7], epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(1))
    expected = plain.forget([11, 12], epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(2))
    assert second.model_after == array_digest(expected.params_released)
    assert first.summary["noise_source"] == "seeded" and first.summary["private_noise"] is False


def test_reopened_state_rebuilds_the_deletion_state_exactly(state: Path, fitted: Fitted) -> None:
    with DeletionService.open(state) as service:
        plain = fit(Path(fitted.ref.source)).hf
        plain.forget([1, 2], epsilon=1.0, delta=1e-5)
        plain.forget([5], epsilon=1.0, delta=1e-5)
        hf = service.unlearner
        assert hf.deleted_ids == (1, 2, 5) and torch.equal(hf.sum_a_, plain.sum_a_)
        assert (hf.counts_ == plain.counts_).all()


def test_a_repeated_request_returns_the_stored_outcome_and_draws_no_noise(
        state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import certunlearn.unlearn.release as release

    draws = []
    original = release.gaussian_noise_like
    monkeypatch.setattr(release, "gaussian_noise_like", lambda *a: draws.append(1) or original(*a))
    before = snapshot(state)
    with DeletionService.open(state) as service:
        first = service.record("r1")
        again = service.forget("r1", [1, 2], epsilon=1.0, delta=1e-5)
        reordered = service.forget("r1", (2, 1), epsilon=1.0, delta=1e-5)
        with pytest.raises(InputError, match="with other ids"):
            service.forget("r1", [1, 3], epsilon=1.0, delta=1e-5)
        with pytest.raises(InputError, match="epsilon=1, delta=1e-05, not epsilon=2"):
            service.forget("r1", [1, 2], epsilon=2.0, delta=1e-5)
    assert draws == []
    assert snapshot(state) == before
    assert again.status == reordered.status == "repeated" and again == reordered
    assert again.seq == 1 and again.model_after == first["release"]["model_after"]
    assert again.summary == first["release"]["summary"] and again.released_path == first["release"]["released_path"]
    assert len(_rows(state, "requests")) == 2


def test_ids_deleted_before_are_refused_by_name_and_nothing_changes(state: Path) -> None:
    before = snapshot(state)
    with DeletionService.open(state) as service, pytest.raises(
            SampleIdError, match=r"already deleted by earlier requests: 2 \(by request 'r1'\), 5 \(by request 'r2'\)"):
        service.forget("r3", [2, 5, 9], epsilon=1.0, delta=1e-5)
    assert snapshot(state) == before


@pytest.mark.parametrize(("limits", "request_", "match"), [
    (dict(max_releases=2), dict(ids=[9]), "release 3 would exceed max_releases=2"),
    (dict(max_deletions=4), dict(ids=[9, 10]), "5 cumulative deletions would exceed max_deletions=4"),
    ({}, dict(ids=[9], epsilon=1.0), "epsilon 1 is above the policy's 0.5"),
    ({}, dict(ids=[9], delta=1e-5), "delta 1e-05 is above the policy's 1e-07"),
    (dict(max_sensitivity=1e-9), dict(ids=[9]), "would exceed max_sensitivity=1e-09"),
])
def test_the_policy_refuses_before_anything_is_written(tmp_path: Path, fitted: Fitted, limits: dict,
                                                       request_: dict, match: str) -> None:
    root = tmp_path / "state"
    allowed = dict(epsilon=0.5, delta=1e-7)
    policy = LedgerPolicy(**allowed, **{k: v for k, v in limits.items() if k != "max_sensitivity"})
    with create(root, fitted, policy=policy) as service:
        service.forget("r1", [1, 2], **allowed)
        service.forget("r2", [3], **allowed)
    if "max_sensitivity" in limits:  # tighten the stored policy (the sensitivity is known only after the draw)
        state = json.loads((root / "state.json").read_text())
        state["policy"]["max_sensitivity"] = limits["max_sensitivity"]
        (root / "state.json").write_text(json.dumps(state))
    before = snapshot(root)
    with DeletionService.open(root) as service, pytest.raises(PolicyError, match=match):
        service.forget("r3", request_.pop("ids"), **{**allowed, **request_})
    assert snapshot(root) == before


def test_status_record_and_report(state: Path) -> None:
    with DeletionService.open(state) as service:
        status = service.status(deep=True)
        record = service.record("r2")
        report = service.report("r2")
        first = service.report("r1")
    assert status["releases"] == 2 and status["cumulative_deletions"] == 3 and status["integrity"] == "ok"
    assert status["last_release"]["seq"] == 2 and status["last_release"]["request_id"] == "r2"
    assert status["last_release"]["model_after"] == record["release"]["model_after"]
    assert status["budget"]["composed_epsilon"] == 2.0 and status["budget"]["policy"] is None
    assert status["deletion_capacity"]["left"] == status["tracked"] - 3 and status["seeded_releases"] == 1
    assert record["request"]["ids_digest"] == ids_digest([5]) and record["request"]["status"] == "released"
    assert record["release"]["noise_source"] == "seeded" and record["release"]["noise_seed"] == 3
    assert record["release"]["model_before"] == first["lineage"]["released_params_sha256"]
    # the report's digests are the ledger's
    assert report["request"]["forget_set"]["ids_sha256"] == record["request"]["ids_digest"]
    assert report["lineage"]["released_params_sha256"] == record["release"]["model_after"]
    assert report["certificate"]["noise_source"] == "seeded" and report["verdict"]["status"] != "PASS"
    assert [e["request_id"] for e in report["certificate"]["ledger"]] == ["r1", "r2"]
    assert first["verdict"]["status"] == "PASS" and first["certificate"]["certified"] is True
    assert report["utility"]["models"]["released"]["forget_accuracy"] is not None


def test_orphan_release_files_are_removed_and_listed(state: Path) -> None:
    (state / "releases" / ("0" * 64 + ".pt")).write_bytes(b"an interrupted release")
    (state / "releases" / ".abc.pt.x1y2.tmp").write_bytes(b"half a file")
    with DeletionService.open(state) as service:
        assert sorted(service.integrity_at_open.removed_orphans) == [".abc.pt.x1y2.tmp", "0" * 64 + ".pt"]
        assert service.check().as_dict() == {"ok": True, "problems": [], "removed_orphans": []}
    assert len(list((state / "releases").iterdir())) == 2
    (state / "releases" / "stray.pt").write_bytes(b"x")
    with DeletionService.open(state) as service:
        (state / "releases" / "late.pt").write_bytes(b"x")
        report = service.check(repair=False)
        assert not report.ok and "releases/late.pt: orphan" in report.problems[0]


def test_opening_and_closing_changes_no_file(state: Path) -> None:
    before = snapshot(state)
    with DeletionService.open(state) as service:
        service.status(deep=True)
        service.record("r1")
    assert snapshot(state) == before


def test_create_copies_nothing_half_and_checks_its_inputs(tmp_path: Path, fitted: Fitted) -> None:
    from certunlearn.errors import ConfigError
    from certunlearn.service import DataRef, ModelSpec

    hf, data = fitted.hf, fitted.data
    with pytest.raises(ConfigError, match="does not reproduce X, y"):
        DeletionService.create(tmp_path / "a", hf=hf, X=data.X_train, y=data.y_train, model_spec=fitted.spec(),
                               data_ref=DataRef(fitted.ref.source, {"seed": 1, "clip_norm": 1.0}))
    with pytest.raises(ConfigError, match="another architecture"):
        DeletionService.create(tmp_path / "a", hf=hf, X=data.X_train, y=data.y_train, data_ref=fitted.ref,
                               model_spec=ModelSpec("logreg", {"in_features": 4, "num_classes": 3,
                                                               "dtype": "float32"}))
    with pytest.raises(ConfigError, match="not the rows"):
        DeletionService.create(tmp_path / "a", hf=hf, X=data.X_train + 1, y=data.y_train, data_ref=fitted.ref,
                               model_spec=fitted.spec())
    assert not (tmp_path / "a").exists()
    (tmp_path / "empty").mkdir()
    create(tmp_path / "empty", fitted).close()  # an empty directory is fine
    hf.forget([1], epsilon=1.0, delta=1e-5)
    with pytest.raises(ConfigError, match="already forgotten 1 ids"):
        create(tmp_path / "b", fitted)


def test_a_copied_state_keeps_working(state: Path, tmp_path: Path) -> None:
    shutil.copytree(state, tmp_path / "moved")
    with DeletionService.open(tmp_path / "moved") as service:
        assert service.forget("r3", [40], epsilon=1.0, delta=1e-5).seq == 3


def test_an_interrupted_creation_leaves_nothing_behind(tmp_path: Path, fitted: Fitted,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from certunlearn.unlearn import HFOCU

    def crash(self: HFOCU, directory: object) -> None:
        Path(str(directory)).mkdir()
        (Path(str(directory)) / "params.pt").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(HFOCU, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        create(tmp_path / "state", fitted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]


def test_prefetched_noise_serves_exactly_one_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """prefetch_noise draws N(0, I) ahead; the next request adds sigma times that draw (checked against the
    noiseless parameters of a dry run), labelled secure, and the draw is gone; a request refused before any
    release is computed leaves it for the next one."""
    fitted = fit(write_data(tmp_path / "data.npz"))
    with create(tmp_path / "state", fitted, policy=LedgerPolicy(epsilon=1.0, delta=1e-5, max_deletions=3)) as service:
        hf = service.unlearner
        service.prefetch_noise()
        drawn = service._next_noise.clone()
        expected = hf.forget([4], epsilon=1.0, delta=1e-5, dry_run=True)  # the same noiseless parameters
        out = service.forget("p1", [4], epsilon=1.0, delta=1e-5)
        assert out.summary["noise_source"] == "secure" and service._next_noise is None
        flat = hf.fm_.layout.flatten
        released = flat(read_release(Path(out.released_path)))
        noiseless = flat(expected.params_noiseless)
        assert torch.allclose(released, noiseless + out.summary["sigma"] * drawn, rtol=0, atol=1e-12)
        service.prefetch_noise()
        kept = service._next_noise
        with pytest.raises(PolicyError):
            service.forget("p2", [5, 6, 7], epsilon=1.0, delta=1e-5)  # over max_deletions: refused up front
        assert service._next_noise is kept  # no release was computed with it
        assert service.forget("p3", [5], epsilon=1.0, delta=1e-5).status == "released"
        assert service._next_noise is None
        with pytest.raises(ConfigError, match="standard_noise must be"):
            hf.dry_release([6], epsilon=1.0, delta=1e-5, standard_noise=drawn[:-1])
