"""Shared set-up of the service tests: a small data file, a fitted HF-OCU, a state directory, snapshots.

(Not a conftest.py: the suite's root conftest is imported as ``conftest`` by other test modules.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from certunlearn.data import Dataset
from certunlearn.models import LogisticRegression
from certunlearn.service import DataRef, DeletionService, ModelSpec
from certunlearn.train import SGDConfig
from certunlearn.unlearn import HFOCU

WORKER = Path(__file__).with_name("service_worker.py")
PYTHON = sys.executable


def write_data(path: Path, *, n: int = 120, features: int = 4, classes: int = 3, seed: int = 0) -> Path:
    """A seeded linear classification problem saved as .npz (X, y)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    y = (X @ rng.normal(size=(features, classes))).argmax(axis=1)
    np.savez(path, X=X, y=y)
    return path


class Fitted(NamedTuple):
    hf: HFOCU
    ref: DataRef
    data: Dataset

    def spec(self) -> ModelSpec:
        return ModelSpec("logreg", {"in_features": self.data.num_features, "num_classes": self.data.num_classes})


def fit(data_path: Path, **options: object) -> Fitted:
    """Softmax regression with HF-OCU statistics on the file's training split (rows clipped to norm 1)."""
    ref = DataRef(str(data_path), {"seed": 0, "clip_norm": 1.0, "test_fraction": 0.2})
    data = ref.load()
    config = SGDConfig(epochs=2, batch_size=16, lr=0.5, weight_decay=0.1, seed=0)
    hf = HFOCU(LogisticRegression(data.num_features, data.num_classes), config, feature_norm_bound=1.0,
               **options).fit(data.X_train, data.y_train)  # type: ignore[arg-type]
    return Fitted(hf, ref, data)


def create(root: Path, fitted: Fitted, **options: object) -> DeletionService:
    return DeletionService.create(root, hf=fitted.hf, X=fitted.data.X_train, y=fitted.data.y_train,
                                  model_spec=fitted.spec(), data_ref=fitted.ref, **options)  # type: ignore[arg-type]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_state(root: Path, fitted: Fitted) -> Path:
    """A closed state directory with two releases (r1: ids 1, 2; r2: id 5, seeded noise)."""
    with create(root, fitted) as service:
        service.forget("r1", [2, 1], epsilon=1.0, delta=1e-5)
        service.forget("r2", [5], epsilon=1.0, delta=1e-5, insecure_noise_seed=3)
    return root


def serve_from_two_processes(root: Path) -> None:
    """Two processes × 20 single-id requests on the state at ``root``: 40 distinct releases, each
    calibrated to the cumulative set at its turn, the exact deleted set, 40 distinct digests and files."""
    workers = [subprocess.Popen([PYTHON, str(WORKER), "serve", str(root), prefix, str(start), "2", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for prefix, start in (("a", 0), ("b", 1))]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outputs]
    outcomes = [o for out, _ in outputs for o in json.loads(out)]
    # each release was calibrated to the cumulative set at its turn, whoever made the earlier ones
    assert sorted(o["seq"] for o in outcomes) == list(range(1, 41))
    assert all(o["cumulative"] == o["seq"] for o in outcomes)
    with DeletionService.open(root) as service:
        status = service.status(deep=True)
        assert status["releases"] == 40 and status["cumulative_deletions"] == 40 and status["integrity"] == "ok"
        assert sorted(service.unlearner.deleted_ids) == list(range(40))
        digests = [service.record(f"{p}-{k}")["release"]["model_after"] for p in "ab" for k in range(20)]
    assert len(set(digests)) == 40 and sorted(digests) == sorted(o["model_after"] for o in outcomes)
    assert len(list((root / "releases").iterdir())) == 40
