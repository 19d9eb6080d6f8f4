"""`certunlearn fit | forget --state | status | report --state` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certunlearn.cli.main import app

runner = CliRunner()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("svc") / "state"
    result = runner.invoke(app, ["fit", "--data", "wine", "--state", str(path), "--epochs", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    return path


def test_fit_forget_status_report(state: Path, tmp_path: Path) -> None:
    first = runner.invoke(app, ["forget", "--state", str(state), "--request-id", "cli-1", "--ids", "3,7",
                                "--out", str(tmp_path / "o"), "--json"])
    assert first.exit_code == 0, first.output
    outcome = json.loads(first.stdout)
    assert outcome["status"] == "released" and outcome["summary"]["noise_source"] == "secure"
    assert (tmp_path / "o" / "released.pt").read_bytes() == Path(outcome["released_path"]).read_bytes()
    again = runner.invoke(app, ["forget", "--state", str(state), "--request-id", "cli-1", "--ids", "3,7", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "repeated"
    assert json.loads(again.stdout)["model_after"] == outcome["model_after"]  # no second noise draw
    status = json.loads(runner.invoke(app, ["status", "--state", str(state), "--json"]).stdout)
    assert status["integrity"] == "ok" and status["releases"] >= 1 and status["cumulative_deletions"] >= 2
    report = runner.invoke(app, ["report", "--state", str(state), "--request-id", "cli-1", "--out", str(tmp_path / "r")])
    assert report.exit_code == 0, report.output
    body = json.loads((tmp_path / "r" / "report.json").read_text())
    assert body["lineage"]["released_params_sha256"] == outcome["model_after"]
    assert runner.invoke(app, ["report", "validate", str(tmp_path / "r" / "report.json")]).exit_code == 0


def test_status_and_report_compose_the_published_releases(state: Path, tmp_path: Path) -> None:
    for k, ids in enumerate(("11", "12", "13")):
        assert runner.invoke(app, ["forget", "--state", str(state), "--request-id", f"comp-{k}", "--ids", ids]).exit_code == 0
    composed = json.loads(runner.invoke(app, ["status", "--state", str(state), "--json"]).stdout)["budget"]["composed"]
    assert composed["releases"] >= 3 and composed["delta"] == pytest.approx(composed["basic_delta"])
    assert composed["exact_epsilon"] <= composed["epsilon"] < composed["basic_epsilon"]
    assert runner.invoke(app, ["report", "--state", str(state), "--request-id", "comp-2", "--out", str(tmp_path)]).exit_code == 0
    certificate = json.loads((tmp_path / "report.json").read_text())["certificate"]
    assert "compose to epsilon=" in certificate["composition"] and certificate["accountant"].startswith("opacus RDP")
    text = runner.invoke(app, ["status", "--state", str(state)]).output
    assert "composed: epsilon=" in text and "basic sum" in text


@pytest.mark.parametrize(("args", "message"), [
    (["forget", "--state", "{state}", "--ids", "1"], "--request-id"),
    (["forget", "--state", "{state}", "--request-id", "x", "--ids", "1", "--model", "logreg"], "drop --model"),
    (["forget", "--state", "{state}", "--request-id", "x", "--ids", "1,1"], "repeated"),
    (["forget", "--state", "{state}", "--request-id", "x", "--ids", "100000"], "unknown"),
    (["forget", "--state", "{state}", "--request-id", "x", "--ids", "1", "--epsilon", "0"], "epsilon"),
    (["forget", "--state", "{state}", "--request-id", "x", "--ids", "1", "--delta", "1.5"], "delta"),
    (["forget", "--state", "{missing}", "--request-id", "x", "--ids", "1"], "missing"),
    (["forget", "--ids", "1"], "--state DIR, or --model"),
    (["status", "--state", "{missing}"], "missing"),
    (["report", "--state", "{state}", "--request-id", "never-made"], "never-made"),
    (["report", "--state", "{state}"], "--request-id"),
    (["fit", "--data", "wine"], "--state"),
    (["fit", "--data", "no_such_data", "--state", "{new}"], "no_such_data"),
    (["fit", "--data", "wine", "--state", "{state}"], "state"),
    (["fit", "--data", "wine", "--state", "{new}", "--ledger", "postgresql://u:secret@localhost/db"], "password"),
    (["fit", "--data", "wine", "--state", "{new}", "--ledger", "mysql://localhost/db"], "postgresql"),
])
def test_bad_requests_exit_2_and_change_nothing(state: Path, tmp_path: Path, args: list[str], message: str) -> None:
    before = _files(state)
    filled = [a.format(state=state, missing=tmp_path / "missing", new=tmp_path / "new") for a in args]
    result = runner.invoke(app, filled)
    assert result.exit_code == 2, (filled, result.output)
    assert message in result.output, (filled, result.output)
    assert _files(state) == before
    assert not (tmp_path / "missing").exists() and not (tmp_path / "new").exists()


@pytest.fixture(scope="module")
def posthoc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A post-hoc state made by `certunlearn init-state` (logreg, weight decay, feature-norm bound)."""
    import numpy as np
    import torch

    from certunlearn.models import build_model

    base = tmp_path_factory.mktemp("posthoc")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    X /= np.maximum(1.0, np.linalg.norm(X, axis=1, keepdims=True))
    np.savez(base / "data.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    torch.save(build_model("logreg", in_features=3, num_classes=2, dtype=torch.float64).state_dict(), base / "w.pt")
    result = runner.invoke(app, ["init-state", "--model", "logreg", "--model-arg", "dtype=float64", "--weights",
                                 str(base / "w.pt"), "--data", str(base / "data.npz"), "--method", "newton",
                                 "--weight-decay", "0.1", "--feature-norm-bound", "1", "--state", str(base / "state")])
    assert result.exit_code == 0, result.output
    return base / "state", base / "data.npz", base / "w.pt"


def test_init_state_forget_status(posthoc: tuple[Path, Path, Path]) -> None:
    state = posthoc[0]
    first = runner.invoke(app, ["forget", "--state", str(state), "--request-id", "p-1", "--ids", "2,4",
                                "--epsilon", "1", "--delta", "1e-5", "--json"])
    assert first.exit_code == 0, first.output
    outcome = json.loads(first.stdout)
    assert outcome["status"] == "released" and outcome["summary"]["certified"]
    assert outcome["summary"]["noise_source"] == "secure"
    again = runner.invoke(app, ["forget", "--state", str(state), "--request-id", "p-1", "--ids", "4,2",
                                "--epsilon", "1", "--delta", "1e-5", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "repeated"
    status = json.loads(runner.invoke(app, ["status", "--state", str(state), "--json"]).stdout)
    assert status["integrity"] == "ok" and status["releases"] == 1 and status["cumulative_deletions"] == 2
    assert json.loads((state / "state.json").read_text())["kind"] == "posthoc"


@pytest.mark.parametrize(("args", "message"), [
    (["init-state", "--model", "logreg", "--weights", "{w}", "--data", "{data}", "--state", "{state}"], "non-empty"),
    (["init-state", "--model", "logreg", "--weights", "{w}", "--data", "{data}", "--state", "{new}",
      "--method", "hfocu"], "post-hoc"),
    (["init-state", "--model", "logreg", "--weights", "{w}", "--data", "{data}", "--state", "{new}",
      "--option", "nope=1"], "does not accept"),
    (["init-state", "--model", "logreg", "--weights", "{missing}", "--data", "{data}", "--state", "{new}"], "missing"),
    (["init-state", "--model", "logreg", "--weights", "{w}", "--data", "{data}"], "--state"),
    (["forget", "--state", "{state}", "--request-id", "x", "--ids", "100000", "--epsilon", "1", "--delta", "1e-5"],
     "unknown"),
])
def test_posthoc_bad_inputs_exit_2_and_change_nothing(posthoc: tuple[Path, Path, Path], tmp_path: Path,
                                                      args: list[str], message: str) -> None:
    state, data, weights = posthoc
    before = {k: v for k, v in _files(state).items() if not k.endswith("-shm")}
    filled = [a.format(state=state, data=data, w=weights, missing=tmp_path / "missing.pt", new=tmp_path / "new")
              for a in args]
    result = runner.invoke(app, filled)
    assert result.exit_code == 2, (filled, result.output)
    assert message in result.output, (filled, result.output)
    assert {k: v for k, v in _files(state).items() if not k.endswith("-shm")} == before
    assert not (tmp_path / "new").exists()
