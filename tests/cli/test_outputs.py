"""Bad output locations exit 2 before any work, with a message naming the path, and change nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from certunlearn.cli.main import app
from certunlearn.errors import InputError
from certunlearn.jobs.outputs import check_output_dir, check_output_file, write_atomic
from certunlearn.models import build_model

runner = CliRunner()


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(30, 4)), y=np.arange(30) % 2)
    torch.save(build_model("logreg", in_features=4, num_classes=2).state_dict(), tmp_path / "w.pt")
    (tmp_path / "afile").write_text("keep me")
    return {"data": str(tmp_path / "d.npz"), "weights": str(tmp_path / "w.pt"), "file": str(tmp_path / "afile")}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", [
    lambda f: ["forget", "--model", "logreg", "--weights", f["weights"], "--data", f["data"], "--ids", "1",
               "--weight-decay", "0.1", "--out", f["file"]],
    lambda f: ["forget", "--model", "logreg", "--weights", f["weights"], "--data", f["data"], "--ids", "1",
               "--weight-decay", "0.1", "--out", os.path.join(f["file"], "below")],
    lambda f: ["demo", "--out", f["file"]],
    lambda f: ["audit", "mia-l", "--model", "logreg", "--weights", f["weights"], "--members", f["data"],
               "--non-members", f["data"], "--attacks", "loss", "--out", os.path.dirname(f["file"])],
], ids=["forget-out-is-a-file", "forget-out-below-a-file", "demo-out-is-a-file", "mia-l-out-is-a-directory"])
def test_bad_out_exits_2_and_changes_nothing(files: dict[str, str], command, tmp_path: Path) -> None:
    before = _snapshot(tmp_path)
    result = runner.invoke(app, command(files))
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and ("is a file" in result.output or "is a directory" in result.output)
    assert _snapshot(tmp_path) == before


def test_read_only_out_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory the process may not write to (simulated: tests often run as root, who may)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr("certunlearn.jobs.outputs.os.access",
                        lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    with pytest.raises(InputError, match="not writable"):
        check_output_dir(locked / "out")
    with pytest.raises(InputError, match="not writable"):
        check_output_file(locked / "x.json")
    check_output_dir(tmp_path / "free")  # elsewhere: fine, and nothing is created
    assert not (tmp_path / "free").exists()


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "released.pt"
    target.write_bytes(b"old")

    def broken(handle) -> None:  # noqa: ANN001
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, broken)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["released.pt"]
