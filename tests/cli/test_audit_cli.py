"""`certunlearn audit mia-l / mia-u` through the real entry point, on files a user would bring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from certunlearn.cli.main import app
from certunlearn.models import build_model
from certunlearn.train import SGDConfig, train_sgd

runner = CliRunner()


def _mlp(seed: int = 0) -> torch.nn.Module:
    return build_model("mlp", in_features=6, num_classes=2, hidden=(16,), dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An overfit MLP on 40 members, 40 non-members, a forget set and its retrained counterpart."""
    d = tmp_path_factory.mktemp("audit")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + 0.8 * rng.normal(size=400) > 0).astype(int)  # noisy labels: memorisation shows
    np.savez(d / "members.npz", X=X[:40], y=y[:40])
    np.savez(d / "non.npz", X=X[40:80], y=y[40:80])
    np.savez(d / "forget.npz", X=X[:10], y=y[:10])
    np.savez(d / "shadow.npz", X=X[80:], y=y[80:])
    cfg = SGDConfig(epochs=40, batch_size=20, lr=0.2, seed=0)
    for name, rows in (("w", slice(0, 40)), ("w_unlearned", slice(10, 40))):
        model = _mlp()
        trained = train_sgd(model, torch.tensor(X[rows]), torch.tensor(y[rows]), cfg)
        model.load_state_dict(trained.params, strict=False)
        torch.save(model.state_dict(), d / f"{name}.pt")
    return d


def _common(d):
    return ["--model", "mlp", "--model-arg", "hidden=[16]", "--model-arg", "dtype=float64", "--no-progress"]


def test_mia_l_json_has_every_attack_with_bounds(files) -> None:
    d = files
    result = runner.invoke(app, [
        "audit", "mia-l", *_common(d), "--weights", str(d / "w.pt"), "--members", str(d / "members.npz"),
        "--non-members", str(d / "non.npz"), "--attacks", "loss,lira-online", "--shadows", "4",
        "--shadow-epochs", "40", "--shadow-batch-size", "20", "--shadow-lr", "0.2",
        "--cache-dir", str(d / "cache"),
    ])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)["mia_l"]
    assert set(out["attacks"]) == {"loss", "lira-online"}
    for attack in out["attacks"].values():
        auc = attack["metrics"]["auc"]
        assert 0.0 <= auc <= 1.0
        bound = attack["epsilon"]
        assert 0.0 <= bound["epsilon"] <= bound["cap"]
    assert out["n_members"] == 40 and out["n_non_members"] == 40
    assert any((d / "cache").iterdir())  # shadows cached for a rerun


def test_mia_u_writes_results_file(files, tmp_path) -> None:
    d = files
    out_file = tmp_path / "miau.json"
    result = runner.invoke(app, [
        "audit", "mia-u", *_common(d), "--original", str(d / "w.pt"), "--unlearned", str(d / "w_unlearned.pt"),
        "--forget", str(d / "forget.npz"), "--negatives", str(d / "non.npz"), "--shadow-data", str(d / "shadow.npz"),
        "--shadow-originals", "2", "--unlearned-per-original", "4", "--records-per-original", "60",
        "--shadow-epochs", "20", "--attack-models", "logistic_regression", "--out", str(out_file),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(out_file.read_text())
    assert 0.0 <= data["mia_u"]["auc"] <= 1.0
    assert data["mia_u"]["metrics"]["n_in"] == 10 and data["mia_u"]["metrics"]["n_out"] == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attacks", "nope"], "unknown attacks"),
        (["--attacks", ""], "no attacks"),
        (["--shadows", "1"], "shadows must be"),
        (["--alpha", "2"], "alpha"),
    ],
)
def test_mia_l_bad_input_exits_2(files, args, message) -> None:
    d = files
    result = runner.invoke(app, [
        "audit", "mia-l", *_common(d), "--weights", str(d / "w.pt"), "--members", str(d / "members.npz"),
        "--non-members", str(d / "non.npz"), *args,
    ])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_mia_l_missing_file_exits_2(files) -> None:
    d = files
    result = runner.invoke(app, [
        "audit", "mia-l", *_common(d), "--weights", str(d / "w.pt"), "--members", str(d / "nope.npz"),
        "--non-members", str(d / "non.npz"),
    ])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
