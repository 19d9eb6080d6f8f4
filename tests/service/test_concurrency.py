"""Several processes on one state (serialised by the state lock) and kill -9 at random points."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from service_helpers import (
    PYTHON,
    WORKER,
    Fitted,
    create,
    fit,
    serve_from_two_processes,
    write_data,
)

from certunlearn.service import DeletionService


@pytest.fixture
def fitted(tmp_path: Path) -> Fitted:
    return fit(write_data(tmp_path / "data.npz"))


def test_two_processes_serve_one_state(tmp_path: Path, fitted: Fitted) -> None:
    root = tmp_path / "state"
    create(root, fitted).close()
    serve_from_two_processes(root)


@pytest.mark.slow
def test_kill_at_random_points_leaves_the_state_before_or_after(tmp_path: Path) -> None:
    """SIGKILL a process serving a request at >= 100 random points (fault-delay hook on): each time the
    state opens, passes its integrity check, holds the request entirely or not at all, and rerunning the
    request id completes it once."""
    rounds = 110
    fitted = fit(write_data(tmp_path / "data.npz", n=300))
    root = tmp_path / "state"
    create(root, fitted).close()
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
    assert len(killed) >= 100
    # the kills fell on both sides of the commit, and some between the release file and the commit
    assert any(r["committed"] for r in killed) and any(not r["committed"] for r in killed)
    assert any(r["removed"] for r in results)
    with DeletionService.open(root) as service:
        status = service.status(deep=True)
    assert status["releases"] == rounds and status["integrity"] == "ok"
    assert status["cumulative_deletions"] == rounds


@pytest.mark.slow
def test_kill_during_fit_leaves_no_state_or_a_complete_one(tmp_path: Path) -> None:
    """SIGKILL ``fit`` at >= 100 random points: the state directory is absent (and fitting into it again
    works) or complete (it opens and passes the deep integrity check); never half a state."""
    rounds = 100
    data = write_data(tmp_path / "data.npz", n=120)
    run = subprocess.run([PYTHON, str(WORKER), "fitcrash", str(tmp_path), str(rounds), str(data)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)["rounds"]
    assert len(results) == rounds and sum(r["killed"] for r in results) >= 95
    assert all(r["integrity"] in ("ok", "refit: ok") for r in results), [r for r in results if "ok" not in r["integrity"]][:3]
    created = sum(r["created"] for r in results)
    assert 0 < created < rounds  # kills fell both before and after the rename that creates the state
