"""Post-hoc states (kind ``posthoc``): init-state → forget → reopen in a fresh process (the same seeded
release as a never-closed process), idempotency, refusals, changed data or weights refused at open."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from service_helpers import PYTHON, snapshot

from certunlearn.errors import ConfigError, SampleIdError, StateError
from certunlearn.jobs.init_state import InitStateSpec, run_init_state
from certunlearn.models import build_model
from certunlearn.service import DeletionService


def _trained(tmp_path: Path) -> tuple[Path, Path]:
    """A data file (rows of norm ≤ 1) and a logreg trained on it with weight decay 0.1 (full-batch GD)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    X /= np.maximum(1.0, np.linalg.norm(X, axis=1, keepdims=True))
    y = (X @ rng.normal(size=(4, 3))).argmax(axis=1)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    model = build_model("logreg", in_features=4, num_classes=3, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(Xt), yt)
        loss = loss + 0.05 * sum((p ** 2).sum() for p in model.parameters())
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    return tmp_path / "data.npz", tmp_path / "w.pt"


def _spec(data: Path, weights: Path, method: str = "curenewton") -> InitStateSpec:
    return InitStateSpec(model="logreg", weights=str(weights), data=str(data), method=method,
                         model_args={"dtype": "float64"}, weight_decay=0.1, feature_norm_bound=1.0)


def _files(root: Path) -> dict[str, bytes]:
    """The state's files, less SQLite's shared-memory index (readers touch it)."""
    return {k: v for k, v in snapshot(root).items() if not k.endswith("-shm")}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return _trained(tmp_path)


_REOPEN = """
import json, sys
from certunlearn.service import DeletionService
with DeletionService.open(sys.argv[1]) as service:
    out = service.forget("r2", [9, 4], epsilon=1.0, delta=1e-5, insecure_noise_seed=11)
print(json.dumps(out.as_dict()))
"""


@pytest.mark.parametrize("method", ["curenewton", "newton"])
def test_reopened_state_releases_what_a_never_closed_process_releases(tmp_path: Path, files: tuple[Path, Path],
                                                                      method: str) -> None:
    root, copy = tmp_path / "state", tmp_path / "copy"
    service = run_init_state(_spec(*files, method=method), root)
    first = service.forget("r1", [3, 7], epsilon=1.0, delta=1e-5)
    assert first.status == "released" and first.summary["certified"] and first.summary["noise_source"] == "secure"
    assert first.summary["certificate"] == "refine"
    shutil.copytree(root, copy)  # the state after r1, served next by a fresh process
    live = service.forget("r2", [9, 4], epsilon=1.0, delta=1e-5, insecure_noise_seed=11)
    service.close()
    proc = subprocess.run([PYTHON, "-c", _REOPEN, str(copy)], capture_output=True, text=True, check=True)
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fresh["model_after"] == live.model_after and fresh["seq"] == live.seq == 2
    assert Path(fresh["released_path"]).read_bytes() == Path(live.released_path).read_bytes()
    with DeletionService.open(copy) as again:
        assert again.unlearner.deleted_ids == (3, 7, 4, 9)
        status = again.status()
    assert status["releases"] == 2 and status["cumulative_deletions"] == 4 and status["integrity"] == "ok"


def test_state_json_repeats_and_refusals(tmp_path: Path, files: tuple[Path, Path]) -> None:
    root = tmp_path / "state"
    with run_init_state(_spec(*files), root) as service:
        out = service.forget("r1", [5], epsilon=1.0, delta=1e-5)
        before = _files(root)
        again = service.forget("r1", [5], epsilon=1.0, delta=1e-5)
        assert again.status == "repeated" and again.model_after == out.model_after and _files(root) == before
        with pytest.raises(SampleIdError, match="already deleted"):
            service.forget("r2", [5, 6], epsilon=1.0, delta=1e-5)
        with pytest.raises(SampleIdError):
            service.forget("r3", [10_000], epsilon=1.0, delta=1e-5)
        assert _files(root) == before
        report = service.report("r1")
    assert report["lineage"]["released_params_sha256"] == out.model_after and report["verdict"]["status"] == "PASS"
    state = json.loads((root / "state.json").read_text())
    assert state["kind"] == "posthoc" and state["method"] == "curenewton"
    assert state["options"] == {"weight_decay": 0.1, "feature_norm_bound": 1.0}
    assert list(state["files"]) == ["weights/trained.pt"] and state["data"]["source"] == str(files[0])
    assert sorted(p.name for p in root.iterdir()) == ["ledger.sqlite", "releases", "state.json", "state.lock", "weights"]


def test_changed_data_or_weights_refused_at_open(tmp_path: Path, files: tuple[Path, Path]) -> None:
    data, _ = files
    root = tmp_path / "state"
    with run_init_state(_spec(*files), root) as service:
        service.forget("r1", [1], epsilon=1.0, delta=1e-5)
    original, before = data.read_bytes(), snapshot(root)
    arrays = dict(np.load(data))
    arrays["X"][0, 0] += 1e-3
    np.savez(data, **arrays)
    with pytest.raises(StateError, match="the data changed since fit"):
        DeletionService.open(root)
    data.write_bytes(original)
    weights = root / "weights" / "trained.pt"
    trained = torch.load(weights, weights_only=True)
    trained["linear.bias"] += 1.0
    weights.chmod(0o644)
    torch.save(trained, weights)
    with pytest.raises(StateError, match=r"weights/trained.pt.*(altered|truncated)"):
        DeletionService.open(root)
    assert {k: v for k, v in snapshot(root).items() if k != "weights/trained.pt"} == {
        k: v for k, v in before.items() if k != "weights/trained.pt"}


def test_bad_inputs_create_nothing(tmp_path: Path, files: tuple[Path, Path]) -> None:
    data, weights = files
    with pytest.raises(ConfigError, match="not a post-hoc method"):
        run_init_state(_spec(data, weights, method="hfocu"), tmp_path / "a")
    with pytest.raises(ConfigError, match="does not accept"):
        run_init_state(InitStateSpec(model="logreg", weights=str(weights), data=str(data), options={"nope": 1},
                                     model_args={"dtype": "float64"}), tmp_path / "b")
    with pytest.raises(Exception, match="architecture"):
        run_init_state(InitStateSpec(model="logreg", weights=str(weights), data=str(data),
                                     model_args={"dtype": "float64", "num_classes": 5}), tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "w.pt"]
