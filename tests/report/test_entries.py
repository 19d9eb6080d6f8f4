"""The report-entry shapes (certunlearn.report.entries): one definition matching the schema, strict
mappings, and the ``report_entry()`` / ``report_section()`` methods of the audit results."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import numpy as np
import pytest
import torch

from certunlearn.audit.epsilon import epsilon_lower_bound
from certunlearn.audit.metrics import attack_metrics
from certunlearn.audit.mia_l import run_mia_l
from certunlearn.audit.mia_u_results import MIAUAttackResult, UnlearningAudit
from certunlearn.errors import ConfigError
from certunlearn.report import build_report, load_schema, validate_report
from certunlearn.report.entries import (
    MAX_ROC_POINTS,
    AttackEntry,
    AttackSection,
    BoundEntry,
    OperatingPointEntry,
    ReferenceEntry,
    score_histogram,
    thin_roc,
)

CERTIFIED = {"method": "hfocu", "status": "certified", "certified": True, "sensitivity": 0.01,
             "epsilon": 1.0, "delta": 1e-5, "sigma": 0.0373, "calibration": "analytic"}


def make(**kwargs: Any) -> dict[str, Any]:
    return build_report(request={"request_id": "r", "ids": [1, 2], "reported_at": "2025-01-01T00:00:00+00:00"},
                        lineage=None, certificate=CERTIFIED, utility={"released": {"test": 0.9}},
                        policy=None, **kwargs)


def _scores(seed: int = 0, shift: float = 0.3, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)


# ---------------------------------------------------------------------------------------------
# One shape, the schema's
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "definition", "added_by_builder"), [
    (AttackEntry, "attack", {"comparison"}),
    (ReferenceEntry, "reference", set()),
    (OperatingPointEntry, "operating_point", set()),
    (AttackSection, "attack_section", {"best_attack"}),
    (BoundEntry, "bound", set()),
])
def test_entry_fields_are_the_schema_fields(entry: type, definition: str, added_by_builder: set[str]) -> None:
    schema = load_schema()["$defs"][definition]
    names = {f.name for f in fields(entry)}
    assert names | added_by_builder == set(schema["required"]) == set(schema["properties"])
    assert not names & added_by_builder


def test_attack_entry_as_dict_is_the_report_attack_less_its_comparison() -> None:
    s_in, s_out = _scores()
    entry = attack_metrics(s_in, s_out, n_bootstrap=50, rng=np.random.default_rng(0)).report_entry(
        name="loss", epsilon=epsilon_lower_bound(s_in, s_out), scores_in=s_in, scores_out=s_out)
    report = make(mia_l=AttackSection(attacks=(entry,)))
    assert report["mia_l"]["attacks"][0] == {**json.loads(json.dumps(entry.as_dict())), "comparison": None}


# ---------------------------------------------------------------------------------------------
# Strict mappings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mia_l": {"attacks": [{"name": "loss", "scores_in": [0.1]}]}}, r"unknown attack 'loss' key 'scores_in'"),
    ({"mia_l": {"attacks": [{"name": "loss", "metrics": {"auc": 0.5}}]}}, r"unknown attack 'loss' key 'metrics'"),
    ({"mia_l": {"attacks": [{"name": "loss"}], "retrained": {}}}, r"unknown mia_l key 'retrained'"),
    ({"mia_l": {"result": {}, "retrained": {}}}, r"unknown mia_l key 'result'"),
    ({"mia_u": {"attacks": {"loss": {"auc": 0.5}}}}, r"attacks must be a list of attack entries"),
    ({"mia_l": {"attacks": []}}, r"needs at least one attack"),
    ({"mia_l": {"negatives": "out_out"}}, r"mia_l needs 'attacks'"),
    ({"mia_l": {"attacks": [{"auc": 0.5}]}}, r"attack 0 needs 'name'"),
    ({"mia_l": {"attacks": [{"name": "a"}, {"name": "a"}]}}, r"attack names must be unique, repeated: \['a'\]"),
    ({"mia_l": {"attacks": [{"name": "loss", "auc": "0.5"}]}}, r"auc must be a number or None, got '0.5'"),
    ({"mia_l": {"attacks": [{"name": "loss", "auc": 1.5}]}}, r"auc must be in \[0, 1\]"),
    ({"mia_l": {"attacks": [{"name": "loss", "n_members": 2.0}]}}, r"n_members must be an integer"),
    ({"mia_l": {"attacks": [{"name": "loss", "reference": {"auc": 0.5, "n_in": 3}}]}},
     r"unknown reference key 'n_in'"),
    ({"mia_l": {"attacks": [{"name": "loss", "roc": {"fpr": [0, 1], "tpr": [0]}}]}},
     r"roc fpr and tpr must have the same length"),
    ({"mia_l": {"attacks": [{"name": "loss", "roc": {"fpr": [0, 1], "tpr": [0, 1], "thresholds": [1, 0]}}]}},
     r"unknown roc key 'thresholds'"),
    ({"mia_l": {"attacks": [{"name": "loss", "tpr_at": {"0.01": 2.0}}]}}, r"tpr_at\['0.01'\] must be in \[0, 1\]"),
    ({"mia_l": {"attacks": [{"name": "loss", "operating_points": [{"tpr": 0.1, "threshold": 1.0}]}]}},
     r"unknown operating_points\[0\] key 'threshold'"),
    ({"mia_l": {"attacks": [{"name": "loss", "score_histogram": {"edges": [0, 1], "members": [1, 2],
                                                                  "non_members": [1]}}]}},
     r"one count per bin"),
    ({"mia_l": object()}, r"mia_l must be one of: an AttackSection, an object with report_section\(\)"),
    ({"empirical": [{"source": "x", "epsilon": 1.0}]}, r"unknown empirical\[0\] key 'epsilon'"),
    ({"empirical": {"bounds": [], "quality": 1.0}}, r"unknown empirical key 'quality'"),
    ({"empirical": [{"epsilon_lb": -1.0}]}, r"epsilon_lb must be >= 0"),
    ({"empirical": 1.0}, r"empirical\[0\] must be one of: a BoundEntry, an object with report_entry\(\)"),
])
def test_mappings_must_have_the_entry_shape(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make(**kwargs)


def test_a_mapping_in_the_entry_shape_goes_in() -> None:
    report = make(
        mia_u={"attacks": [{"name": "none/l2/rf", "auc": 0.7, "auc_ci": [0.6, 0.8], "auc_ci_level": 0.95,
                            "n_members": 50, "n_non_members": 50, "roc": {"fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1]},
                            "tpr_at": {"0.01": 0.1}, "deg_count": 0.6, "deg_rate": 0.1,
                            "operating_points": [{"target_fpr": 0.01, "tpr": 0.1, "tpr_ci": [0.0, 0.3]}],
                            "reference": {"auc": 0.52, "n_members": 50, "n_non_members": 50}}],
               "negatives": "out_out", "defences": ["none"], "epsilon_lb": 0.2, "epsilon_cap": 3.0},
        empirical={"bounds": [BoundEntry(epsilon_lb=0.1, cap=2.0), {"source": "gdp", "epsilon_lb": 0.3}],
                   "forgetting_quality": 0.9},
    )
    validate_report(report)
    attack = report["mia_u"]["attacks"][0]
    assert attack["roc"] == {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0]} and attack["comparison"] is not None
    assert report["mia_u"]["target"] == "original and unlearned models"
    assert [b["source"] for b in report["empirical_privacy"]["bounds"]] == ["mia_u", "empirical[0]", "gdp"]
    assert report["empirical_privacy"]["forgetting_quality"] == 0.9


# ---------------------------------------------------------------------------------------------
# Entries and helpers
# ---------------------------------------------------------------------------------------------


def test_thin_roc_keeps_the_ends_and_is_idempotent() -> None:
    fpr = np.linspace(0.0, 1.0, 5001)
    tpr = np.sqrt(fpr)
    thin = thin_roc(fpr, tpr)
    assert len(thin["fpr"]) <= MAX_ROC_POINTS
    assert (thin["fpr"][0], thin["fpr"][-1], thin["tpr"][-1]) == (0.0, 1.0, 1.0)
    assert thin_roc(thin["fpr"], thin["tpr"]) == thin
    assert thin_roc([], []) is None


def test_score_histogram_counts_finite_scores_only() -> None:
    h = score_histogram([0.0, 1.0, float("inf")], [0.5, float("nan")])
    assert sum(h["members"]) == 2 and sum(h["non_members"]) == 1 and len(h["edges"]) == 31
    assert score_histogram(None, [1.0]) is None and score_histogram([float("nan")], [1.0]) is None


def test_entries_are_frozen_and_normalised() -> None:
    entry = AttackEntry(name="loss", auc=np.float32(0.5), n_members=np.int64(3), auc_ci=[0.4, 0.6],
                        tpr_at={0.01: 0.2}, operating_points=[{"target_fpr": 0.01}])
    assert type(entry.auc) is float and type(entry.n_members) is int and entry.auc_ci == (0.4, 0.6)
    assert dict(entry.tpr_at) == {"0.01": 0.2} and isinstance(entry.operating_points[0], OperatingPointEntry)
    with pytest.raises(AttributeError):
        entry.auc = 0.9  # type: ignore[misc]
    with pytest.raises(TypeError):
        entry.tpr_at["0.1"] = 0.5  # type: ignore[index]


def test_with_reference_matches_by_name_and_keeps_an_own_reference() -> None:
    own = AttackEntry(name="a", auc=0.6, reference=ReferenceEntry(auc=0.55))
    released = AttackSection(attacks=(own, AttackEntry(name="b", auc=0.7), AttackEntry(name="c", auc=0.8)))
    retrained = {"attacks": [{"name": "a", "auc": 0.5}, {"name": "b", "auc": 0.51}]}
    out = released.with_reference(retrained)
    assert [None if a.reference is None else a.reference.auc for a in out.attacks] == [0.55, 0.51, None]
    assert released.attacks[1].reference is None  # a new section; the old one is unchanged


# ---------------------------------------------------------------------------------------------
# The audit results' methods
# ---------------------------------------------------------------------------------------------


def test_attack_metrics_entry_matches_its_as_dict() -> None:
    s_in, s_out = _scores(1)
    metrics = attack_metrics(s_in, s_out, n_bootstrap=100, rng=np.random.default_rng(0))
    bound = epsilon_lower_bound(s_in, s_out, alpha=0.05)
    entry = metrics.report_entry(name="loss", description="d", epsilon=bound, scores_in=s_in, scores_out=s_out)
    raw = metrics.as_dict(include_roc=True)
    assert (entry.auc, list(entry.auc_ci), entry.auc_ci_level) == (raw["auc"], raw["auc_ci"], 1.0 - raw["alpha"])
    assert (entry.n_members, entry.n_non_members) == (raw["n_in"], raw["n_out"])
    assert dict(entry.tpr_at) == raw["tpr_at"]
    assert [p.tpr for p in entry.operating_points] == [p["tpr"] for p in raw["operating_points"]]
    assert (entry.epsilon_lb, entry.epsilon_cap) == (bound.epsilon, bound.cap)
    assert len(entry.roc["fpr"]) <= MAX_ROC_POINTS and sum(entry.score_histogram["members"]) == s_in.size
    bare = metrics.report_entry(name="loss", include_roc=False)
    assert bare.roc is None and bare.score_histogram is None and bare.epsilon_lb is None


def test_epsilon_bound_entry() -> None:
    s_in, s_out = _scores(2, shift=2.0)
    bound = epsilon_lower_bound(s_in, s_out, delta=1e-5)
    report = make(empirical=[bound, bound.report_entry(source="audit", correction="none")])
    first, second = report["empirical_privacy"]["bounds"]
    assert first["source"] == "empirical[0]" and second["source"] == "audit"
    assert (first["epsilon_lb"], first["cap"], first["n_members"], first["method"]) == (
        bound.epsilon, bound.cap, bound.n_in, "clopper-pearson")


def test_mia_l_section_with_its_reference() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros(30, dtype=np.int64)

    def run(shift: float) -> Any:
        logits = rng.normal(size=(60, 3))
        logits[:30, 0] += shift
        return run_mia_l(lambda X: torch.as_tensor(logits), logits[:30], labels, logits[30:], labels,
                         attacks=("loss",))

    released, retrained = run(1.0), run(0.0)
    section = released.report_section(reference=retrained)
    (attack,) = section.attacks
    assert attack.reference.auc == pytest.approx(retrained.auc) and attack.auc == pytest.approx(released.auc)
    assert section.epsilon_lb == released.epsilon_lower_bound and section.n_shadows == 0
    assert section.epsilon_correction == released.as_dict()["epsilon_correction"]
    lean = released.report_section(include_roc=False, include_histograms=False)
    assert lean.attacks[0].roc is None and lean.attacks[0].score_histogram is None
    validate_report(make(mia_l=section))


def test_mia_u_attack_and_unlearning_audit_entries() -> None:
    s_in, s_out = _scores(3)
    metrics = attack_metrics(s_in, s_out, n_bootstrap=0)
    bound = epsilon_lower_bound(s_in, s_out)
    result = MIAUAttackResult("none", "l2_distance", "random_forest", metrics, bound, 0.7, 0.05, s_in, s_out)
    entry = result.report_entry()
    assert entry.name == "l2_distance/random_forest" and (entry.deg_count, entry.deg_rate) == (0.7, 0.05)
    assert MIAUAttackResult("top2", "basic", "mlp", metrics, bound, None, None, s_in, s_out).report_entry().name \
        == "top2/basic/mlp"
    audit = UnlearningAudit({"feature": "l2_distance", "classifier": "mlp", "defence": "none",
                             "negatives": "out_out"}, metrics, bound, s_in, s_out, {})
    report = make(mia_u=audit, mia_l={"attacks": [result]})  # objects with report_entry() inside a mapping
    validate_report(report)
    assert report["mia_u"]["attacks"][0]["name"] == "l2_distance/mlp" and report["mia_u"]["negatives"] == "out_out"
    assert report["mia_u"]["epsilon_lb"] == bound.epsilon
    assert report["mia_l"]["attacks"][0]["deg_count"] == 0.7
