"""CLI tests through the real entry point (typer's CliRunner) and one real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from certunlearn.cli.main import app

runner = CliRunner()


def test_version_does_not_import_torch() -> None:
    code = (
        "import sys; from certunlearn.cli.main import app; "
        "from typer.testing import CliRunner; r = CliRunner().invoke(app, ['--version']); "
        "print(r.output.strip()); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("certunlearn ")
    assert lines[1] == "False"


def test_calibrate_prints_known_sigma() -> None:
    """σ₁(1, 1e-5) = 3.7306 (Balle & Wang, ICML 2018, Thm. 8; docs/calibration.md §4)."""
    result = runner.invoke(app, ["calibrate", "--epsilon", "1", "--delta", "1e-5", "--sensitivity", "1"])
    assert result.exit_code == 0, result.output
    assert "sigma = 3.73063" in result.output


def test_calibrate_json_scales_with_sensitivity() -> None:
    result = runner.invoke(
        app, ["calibrate", "--epsilon", "1", "--delta", "1e-5", "--sensitivity", "2", "--json"]
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["sigma"] == pytest.approx(2 * 3.7306316, rel=1e-6)
    assert data["achieved_delta"] <= 1e-5


@pytest.mark.parametrize(
    "args",
    [
        ["--epsilon", "0", "--delta", "1e-5"],
        ["--epsilon", "-1", "--delta", "1e-5"],
        ["--epsilon", "1", "--delta", "1"],
        ["--epsilon", "1", "--delta", "0"],
        ["--epsilon", "nan", "--delta", "1e-5"],
        ["--epsilon", "1", "--delta", "1e-5", "--sensitivity", "0"],
        ["--epsilon", "1", "--delta", "1e-5", "--method", "laplace"],
        ["--epsilon", "2", "--delta", "1e-5", "--method", "classical"],
        ["--epsilon", "abc", "--delta", "1e-5"],
        ["--delta", "1e-5"],
    ],
)
def test_calibrate_bad_input_exits_2(args: list[str]) -> None:
    result = runner.invoke(app, ["calibrate", *args])
    assert result.exit_code == 2, result.output
    assert result.stdout == "" or "sigma" not in result.stdout


def test_bad_input_message_is_one_line() -> None:
    result = runner.invoke(app, ["calibrate", "--epsilon", "0", "--delta", "1e-5"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: epsilon must be > 0, got 0.0"


def test_demo_writes_summary(tmp_path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--epochs", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    cert = summary["certificate"]
    assert cert["certified"] is True and cert["sigma"] > 0
    assert cert["certificate"] == "refine" and cert["reference"] == "erm" and cert["bound"] == "refine-erm"
    assert 0 < cert["measured_bound"] <= cert["sensitivity_budget"] == cert["sensitivity"]
    dist = summary["distance_to_reference"]
    assert dist["reference"] == "erm" and dist["noiseless"] < dist["no_unlearning"]
    assert summary["forget"]["count"] == round(0.01 * summary["data"]["n_train"])
    assert "report:" in result.stdout and "audit verdict:" in result.stdout and "exact retrain" in result.stdout
    for name in ("report.json", "report.html", "report.md"):
        assert (out / name).is_file()
    assert summary["verdict"]["status"] in ("PASS", "INVESTIGATE")  # FAIL: the audit contradicts the certificate


def test_demo_with_the_worst_case_certificate(tmp_path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--epochs", "2", "--certificate", "worst-case",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    cert = json.loads((out / "summary.json").read_text())["certificate"]
    assert cert["certified"] is True and cert["certificate"] == "worst-case" and cert["reference"] == "coupled-sgd"
    if cert["bound"] == "coupled-sgd":  # first order: Δ = 2S (+ rounding) and the noise-only part is S (+ rounding)
        assert cert["noise_only_sigma"] == pytest.approx(cert["sigma"] / 2, rel=1e-6)
    else:  # the second-order bound is min(second-order term, 2S), each with its (tiny, fp64) rounding term
        assert cert["bound"] == "second-order-sgd"
        assert cert["sigma"] <= 2 * cert["noise_only_sigma"] * (1 + 1e-6)
    assert "coupled retrain" in result.stdout


def test_demo_rejects_a_bad_certificate(tmp_path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--certificate", "best"])
    assert result.exit_code == 2 and "certificate" in result.output
    assert not (tmp_path / "demo").exists()


def test_demo_rejects_bad_epsilon(tmp_path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--epsilon", "-1"])
    assert result.exit_code == 2
    assert not out.exists()


def test_capacity_json_reports_both_capacities() -> None:
    result = runner.invoke(app, [
        "capacity", "--dataset", "wine", "--epochs", "2", "--batch-size", "32", "--grid", "1,2",
        "--repeats", "1", "--m-max", "20", "--risk-tolerance", "1e6", "--json", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    proven, empirical = out["proven"], out["empirical"]
    # with a huge tolerance every m up to m_max passes, and Δ̄(m) must not decrease along the curve
    assert proven["capacity"] == 20
    deltas = [row["sensitivity"] for row in proven["curve"]]
    assert deltas == sorted(deltas) and deltas[0] > 0
    assert [row["m"] for row in empirical["curve"]][0] == 1
    assert all(row["certified"] for row in empirical["curve"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epsilon", "0"], "epsilon must be > 0"),
        (["--delta", "1.5"], "delta"),
        (["--grid", "3,2"], "strictly increasing"),
        (["--grid", "1,x"], "comma-separated integers"),
        (["--dataset", "nope"], "unknown dataset"),
        (["--dataset", "missing.npz"], "no such file"),
    ],
)
def test_capacity_bad_input_exits_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["capacity", "--no-progress", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


@pytest.fixture()
def user_model_files(tmp_path):
    """A logreg state_dict and its training data, as a user would bring them."""
    import numpy as np
    import torch

    from certunlearn.models import build_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    np.savez(tmp_path / "data.npz", X=X, y=(X[:, 0] > 0).astype(int))
    model = build_model("logreg", in_features=4, num_classes=2, dtype=torch.float64)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    return tmp_path


def test_forget_writes_released_weights_and_summary(user_model_files) -> None:
    import torch

    d = user_model_files
    (d / "ids.txt").write_text("3\n7 11")
    result = runner.invoke(app, [
        "forget", "--model", "logreg", "--model-arg", "dtype=float64", "--weights", str(d / "w.pt"),
        "--data", str(d / "data.npz"), "--ids-file", str(d / "ids.txt"), "--method", "damped-newton",
        "--option", "damping=0.5", "--weight-decay", "0.1", "--epsilon", "1", "--delta", "1e-5",
        "--noise-sensitivity", "0.01", "--out", str(d / "out"), "--json",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["result"]["request_ids"] == [3, 7, 11]
    assert summary["result"]["certified"] is False  # no feature bound declared: user noise only
    assert summary["result"]["sigma"] > 0
    released = torch.load(d / "out" / "released.pt", weights_only=True)
    assert set(released) == {"linear.weight", "linear.bias"}
    assert not (d / "out" / "noiseless.pt").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ids", "1,1"], "repeated sample ids"),
        (["--ids", "1000"], "unknown sample ids"),
        (["--ids", "a"], "must be integers"),
        (["--method", "hfocu", "--ids", "1"], "needs what was recorded"),
        (["--method", "nope", "--ids", "1"], "unknown unlearning method"),
        (["--option", "bogus=1", "--ids", "1"], "does not accept"),
        (["--epsilon", "1", "--ids", "1"], "together"),
        (["--ids", "1", "--epsilon", "-1", "--delta", "1e-5"], "epsilon must be > 0"),
        ([], "exactly one of --ids and --ids-file"),
    ],
)
def test_forget_bad_input_exits_2_and_writes_nothing(user_model_files, args, message) -> None:
    d = user_model_files
    result = runner.invoke(app, [
        "forget", "--model", "logreg", "--model-arg", "dtype=float64", "--weights", str(d / "w.pt"),
        "--data", str(d / "data.npz"), "--out", str(d / "out"), *args,
    ])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (d / "out").exists()


def test_forget_rejects_weights_of_another_architecture(user_model_files) -> None:
    d = user_model_files
    result = runner.invoke(app, [
        "forget", "--model", "mlp", "--weights", str(d / "w.pt"), "--data", str(d / "data.npz"),
        "--ids", "1", "--out", str(d / "out"),
    ])
    assert result.exit_code == 2
    assert "weights do not fit the model" in result.stderr


def _forget_args(d, *extra: str) -> list[str]:
    return ["forget", "--model", "logreg", "--model-arg", "dtype=float64", "--weights", str(d / "w.pt"),
            "--data", str(d / "data.npz"), "--ids", "3,7", "--weight-decay", "0.1", "--epsilon", "1",
            "--delta", "1e-5", "--out", str(d / "out"), "--json", *extra]


def test_forget_certifies_by_refinement_under_a_given_budget(user_model_files) -> None:
    from certunlearn.certify.gaussian import gaussian_sigma

    d = user_model_files
    result = runner.invoke(app, _forget_args(d, "--method", "finetune", "--sensitivity-budget", "0.01"))
    assert result.exit_code == 0, result.output
    res = json.loads(result.stdout)["result"]
    assert res["certified"] is True and res["certificate"] == "refine" and res["reference"] == "erm"
    assert res["sensitivity"] == res["sensitivity_budget"] == 0.01 and 0 < res["measured_bound"] <= 0.01
    assert res["sigma"] == pytest.approx(gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=0.01), rel=1e-12)
    assert (d / "out" / "released.pt").is_file()


def test_forget_default_budget_needs_a_public_feature_bound(user_model_files) -> None:
    import numpy as np

    d = user_model_files
    X = np.load(d / "data.npz")["X"]
    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1.0)  # rows clipped to norm 1
    np.savez(d / "data.npz", X=X, y=(X[:, 0] > 0).astype(int))
    without = runner.invoke(app, _forget_args(d, "--method", "newton"))
    assert without.exit_code == 0, without.output
    res = json.loads(without.stdout)["result"]
    assert res["certified"] is False and any("no public sensitivity budget" in r for r in res["reasons"])
    with_bound = runner.invoke(app, _forget_args(d, "--method", "newton", "--feature-norm-bound", "1"))
    res = json.loads(with_bound.stdout)["result"]
    assert res["certified"] is True and res["certificate"] == "refine"
    assert res["sensitivity_budget"] > 0 and "default rule" in " ".join(res["assumptions"])


def test_forget_worst_case_certificate_is_chosen_by_flag(user_model_files) -> None:
    d = user_model_files
    result = runner.invoke(app, _forget_args(d, "--method", "finetune", "--certificate", "worst-case",
                                             "--sensitivity-budget", "0.01"))
    assert result.exit_code == 0, result.output
    res = json.loads(result.stdout)["result"]
    assert res["certified"] is False and res["certificate"] == "worst-case"
    assert any("without a proven error bound" in r for r in res["reasons"])


@pytest.mark.parametrize(("args", "message", "code"), [
    (["--certificate", "best"], "certificate must be one of", 2),
    (["--sensitivity-budget", "-1"], "sensitivity_budget must be > 0", 2),
    (["--sensitivity-budget", "1e-30"], "refused", 1),  # unreachable: nothing may be released
])
def test_forget_certificate_errors_exit_and_write_nothing(user_model_files, args, message, code) -> None:
    d = user_model_files
    result = runner.invoke(app, _forget_args(d, "--method", "newton", *args))
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert not (d / "out").exists()
