"""Audit plans: strict validation, the quick CPU plans against their golden metrics, the template."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from certunlearn.certify.assumptions import softmax_regression_assumptions
from certunlearn.certify.gaussian import gaussian_sigma
from certunlearn.cli.main import app
from certunlearn.errors import InputError
from certunlearn.jobs.plan import PLAN_KINDS, load_plan, parse_plan
from certunlearn.models import build_model
from certunlearn.train import SGDConfig, train_sgd
from certunlearn.train.schedule import Schedule

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "certify"))
from test_bounds import loop_second_order  # noqa: E402  (the independent loop reference)

AUDITS = Path(__file__).resolve().parents[2] / "audits"
runner = CliRunner()


@pytest.mark.parametrize("path", sorted(AUDITS.glob("*.toml")), ids=lambda p: p.name)
def test_every_plan_in_the_repository_validates(path: Path) -> None:
    plan = load_plan(path)
    assert plan.kind in PLAN_KINDS and plan.name and plan.claim
    if plan.kind == "benchmark":
        assert (AUDITS.parent / plan.runner).is_file()


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"trainig": {}}, "unknown key 'trainig'"),
        ({"training": {"epoch": 1}}, "unknown key 'epoch'"),
        ({"schema_version": 2}, "schema_version must be 1"),
        ({"kind": "magic"}, "kind must be one of"),
        ({"name": ""}, "'name' must be a non-empty string"),
    ],
)
def test_plans_are_validated_strictly(patch, message) -> None:
    base = {"schema_version": 1, "name": "p", "claim": "c", "kind": "hfocu"}
    with pytest.raises(InputError, match=message):
        parse_plan({**base, **patch}, base=".")


def test_deployed_plan_requires_its_files() -> None:
    with pytest.raises(InputError, match="'name' is required"):
        parse_plan({"schema_version": 1, "name": "p", "claim": "c", "kind": "deployed"}, base=".")


def test_digits_plan_matches_golden_metrics_and_independent_budget(tmp_path) -> None:
    plan_path = AUDITS / "digits_logreg_hfocu.toml"
    expected = tomllib.loads((AUDITS / "expected" / "digits_logreg_hfocu.toml").read_text())
    result = runner.invoke(app, ["audit", str(plan_path), "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    cert = report["certificate"]
    exp = expected["certificate"]
    assert cert["certified"] is exp["certified"]
    assert cert["certificate_kind"] == exp["kind"] and cert["reference"] == exp["reference"]
    assert cert["sensitivity"] == pytest.approx(exp["sensitivity"], rel=exp["sensitivity_rtol"])
    assert 0 < cert["measured_bound"] <= min(exp["measured_bound_max"], cert["sensitivity_budget"])
    assert cert["refinement"]["path"] == "refined"
    # independent re-derivation of the public budget: the rule of docs/theory.md §10 from the public
    # numbers (d, beta from the clip norm, epsilon, delta, tau = 0.01) and the Gaussian calibration
    plan = load_plan(plan_path)
    tr, data = plan.training, plan.data
    from certunlearn.data import load_dataset

    ds = load_dataset(data.dataset, seed=data.seed, clip_norm=data.clip_norm)
    d = ds.num_classes * (ds.num_features + 1)
    beta = (data.clip_norm ** 2 + 1) / 2 + tr.weight_decay
    unit = gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=1.0)
    budget = (2 * 0.01 / (beta * (1 + d * unit * unit))) ** 0.5
    assert cert["sensitivity"] == pytest.approx(budget, rel=1e-5)
    assert cert["sensitivity_budget"] == cert["sensitivity"]
    assert cert["sigma"] == pytest.approx(gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=cert["sensitivity"]),
                                          rel=1e-9)
    util = report["utility"]
    retrained_test = util["models"]["retrained"]["test_accuracy"]
    assert retrained_test == pytest.approx(expected["utility"]["retrained_test_accuracy"],
                                           abs=expected["utility"]["accuracy_atol"])
    released = util["models"]["released"]["test_accuracy"]
    assert abs(released - retrained_test) <= expected["utility"]["released_within_retrained"]
    assert max(att["auc"] for att in report["mia_l"]["attacks"]) <= expected["audit"]["mia_l_auc_max"]
    assert report["verdict"]["status"] in expected["audit"]["verdict_in"]
    status = report["verdict"]["status"]
    assert f'<div class="badge">{status}</div>' in (tmp_path / "report.html").read_text()
    assert f"**Verdict: {status}**" in (tmp_path / "report.md").read_text()


def test_worst_case_plan_matches_the_independent_second_order_bound(tmp_path) -> None:
    """The worst-case certificate of a short run (2 epochs of 512): Δ is Theorem 12's loop value plus a
    float64 rounding term far below it (docs/theory.md §9); the reference is the coupled retrain."""
    plan = parse_plan({
        "schema_version": 1, "name": "digits_worst_case", "claim": "worst-case", "kind": "hfocu",
        "training": {"epochs": 2, "batch_size": 512, "lr": 0.5, "weight_decay": 0.1},
        "request": {"certificate": "worst-case"},
        "audit": {"attacks": ["loss"], "mia_u": False, "sweep_epsilons": [1.0]},
    }, base=".")
    from certunlearn.data import load_dataset
    from certunlearn.jobs.plan_run import run_plan

    out = run_plan(plan, tmp_path)
    cert = out["report"]["certificate"]
    assert cert["certified"] and cert["certificate_kind"] == "worst-case" and cert["reference"] == "coupled-sgd"
    tr, data = plan.training, plan.data
    ds = load_dataset(data.dataset, seed=data.seed, clip_norm=data.clip_norm)
    config = SGDConfig(epochs=tr.epochs, batch_size=tr.batch_size, lr=tr.lr, lr_decay=tr.lr_decay,
                       weight_decay=tr.weight_decay, seed=tr.seed)
    schedule = Schedule.build(n_samples=ds.n_train, config=config)
    m = max(1, round(plan.request.forget_fraction * ds.n_train))
    forget = np.random.default_rng(data.seed).choice(ds.n_train, size=m, replace=False)
    a = softmax_regression_assumptions(feature_norm_bound=data.clip_norm, weight_decay=tr.weight_decay)
    e, s = loop_second_order(schedule.lrs, schedule.batch_sizes, schedule.deletion_counts(forget),
                             G=a.gradient_bound, lam=a.strong_convexity, beta=a.smoothness, M=a.hessian_lipschitz)
    exact = min(e, 2 * s)
    assert exact < cert["sensitivity"] <= exact * (1 + 1e-8)
    assert cert["sigma"] == pytest.approx(gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=cert["sensitivity"]),
                                          rel=1e-9)
    # the noise-only baseline: releasing w_T itself, whose distance to the retrain is at most S
    assert cert["noise_only_sigma"] == pytest.approx(gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=s), rel=1e-8)


def test_deployed_template_runs_on_user_files(tmp_path) -> None:
    """Fill the template with small files a user would bring and run it through the CLI."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=160) > 0).astype(int)
    np.savez(tmp_path / "members.npz", X=X[:60], y=y[:60])
    np.savez(tmp_path / "non_members.npz", X=X[60:120], y=y[60:120])
    np.savez(tmp_path / "forget.npz", X=X[:10], y=y[:10])
    cfg = SGDConfig(epochs=30, batch_size=20, lr=0.2, seed=0)
    for name, rows in (("model_before.pt", slice(0, 60)), ("model.pt", slice(10, 60))):
        model = build_model("mlp", in_features=5, num_classes=2, hidden=(16,), dtype=torch.float64,
                            generator=torch.Generator().manual_seed(0))
        trained = train_sgd(model, torch.tensor(X[rows]), torch.tensor(y[rows]), cfg)
        model.load_state_dict(trained.params, strict=False)
        torch.save(model.state_dict(), tmp_path / name)
    text = (AUDITS / "deployed_model_template.toml").read_text()
    text = text.replace('args = { hidden = [64] }', 'args = { hidden = [16], dtype = "float64" }')
    text = text.replace('# original = "model_before.pt"', 'original = "model_before.pt"')
    text = text.replace('# unlearned = "model.pt"', 'unlearned = "model.pt"')
    text = text.replace("shadows = 16", "shadows = 4").replace("shadow_batch_size = 64", "shadow_batch_size = 20")
    plan = tmp_path / "plan.toml"
    plan.write_text(text)
    result = runner.invoke(app, ["audit", str(plan), "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code in (0, 1), result.output  # 1 = FAIL verdict, still a complete report
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["certificate"]["certified"] is False
    assert report["mia_u"] is not None and report["mia_l"]["attacks"]
    assert (tmp_path / "out" / "report.html").read_text().count("<svg") >= 1


def test_bad_plan_exits_2(tmp_path) -> None:
    plan = tmp_path / "bad.toml"
    shutil.copy(AUDITS / "digits_logreg_hfocu.toml", plan)
    plan.write_text(plan.read_text().replace("[audit]", "[audit]\nshadowz = 3"))
    result = runner.invoke(app, ["audit", str(plan), "--out", str(tmp_path / "o"), "--no-progress"])
    assert result.exit_code == 2
    assert "unknown key 'shadowz'" in result.stderr
    assert not (tmp_path / "o").exists()


def _minimal(kind: str = "hfocu", **sections: object) -> dict:
    return {"schema_version": 1, "name": "p", "claim": "c", "kind": kind, **sections}


def test_sections_are_typed_with_their_defaults_defined_once() -> None:
    from certunlearn.jobs.plan import HFOCUAudit, HFOCUTraining

    plan = parse_plan(_minimal(training={"epochs": 3}, audit={"attacks": ["loss"], "sweep_epsilons": [1, 2]}),
                      base=".")
    assert isinstance(plan.training, HFOCUTraining) and plan.training.epochs == 3
    assert plan.training.batch_size == HFOCUTraining().batch_size  # untouched keys: the dataclass default
    assert plan.audit == HFOCUAudit(attacks=("loss",), sweep_epsilons=(1.0, 2.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.training.epochs = 4  # type: ignore[misc]


@pytest.mark.parametrize(("sections", "message"), [
    ({"training": {"epochs": "20"}}, r"\[training\]: 'epochs' must be an integer, got '20'"),
    ({"training": {"epochs": 2.5}}, r"'epochs' must be an integer"),
    ({"request": {"epsilon": True}}, r"\[request\]: 'epsilon' must be a number"),
    ({"audit": {"attacks": "loss"}}, r"'attacks' must be a list of names"),
    ({"audit": {"mia_u": 1}}, r"'mia_u' must be true or false"),
    ({"data": []}, r"\[data\] must be a table"),
])
def test_bad_section_values_are_named(sections: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_plan(_minimal(**sections), base=".")


def test_deployed_sections_require_their_files() -> None:
    with pytest.raises(InputError, match=r"\[model\]: 'name' is required"):
        parse_plan(_minimal("deployed", model={"weights": "w.pt"}), base=".")
