"""Compliance reports: build → validate round trip, schema strictness, digests, verdict rules,
policy TOML, HTML/Markdown safety, the ``certunlearn report`` commands and a headless-browser check."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from certunlearn.audit.report_example import example_report
from certunlearn.cli.main import app
from certunlearn.errors import ConfigError, InputError
from certunlearn.report import (
    Policy,
    ReportValidationError,
    build_report,
    load_schema,
    render_html,
    render_markdown,
    report_digest,
    validate_report,
    verdict,
)
from certunlearn.report.build import sanitise
from certunlearn.report.entries import score_histogram
from certunlearn.report.policy import RULES, benjamini_hochberg, hanley_mcneil_se
from certunlearn.report.render import VERDICT_COLOURS, markdown_escape
from certunlearn.report.schema import first_error, iter_errors

FIXTURES = Path(__file__).parent / "fixtures"
EVIL = "<script>alert(1)</script>"
runner = CliRunner()


# ---------------------------------------------------------------------------------------------
# Helpers: hand-made reports
# ---------------------------------------------------------------------------------------------

CERTIFIED = {"method": "hfocu", "status": "certified", "certified": True, "sensitivity": 0.01,
             "epsilon": 1.0, "delta": 1e-5, "sigma": 0.0373, "calibration": "analytic"}
UTILITY = {"released": {"retain": 0.97, "test": 0.95, "forget": 0.9},
           "retrained": {"retain": 0.97, "test": 0.95, "forget": 0.9}}


def attack(auc: float, *, ci: tuple[float, float] | None = None, n: int = 200,
           ref_auc: float | None = 0.5, ref_n: int = 200, name: str = "loss") -> dict[str, Any]:
    """A flat attack entry with an optional retrained reference."""
    entry: dict[str, Any] = {"name": name, "auc": auc, "auc_ci": ci, "n_members": n, "n_non_members": n}
    if ref_auc is not None:
        entry["reference"] = {"auc": ref_auc, "n_members": ref_n, "n_non_members": ref_n}
    return entry


def make(*, certificate: dict[str, Any] | None = None, utility: dict[str, Any] | None = None,
         mia_l: Any = None, mia_u: Any = None, empirical: Any = None, policy: Any = None,
         request_id: str = "req-1", ids: list[int] | None = None) -> dict[str, Any]:
    return build_report(
        request={"request_id": request_id, "ids": ids or [3, 5, 8], "reported_at": "2025-02-01T12:00:00+00:00"},
        lineage={"seeds": {"noise": 1}, "device": "cpu"},
        certificate=CERTIFIED if certificate is None else certificate,
        utility=UTILITY if utility is None else utility,
        mia_l=mia_l, mia_u=mia_u, empirical=empirical, policy=policy,
    )


def rules(report: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in report["verdict"]["reasons"]]


def redigest(report: dict[str, Any]) -> dict[str, Any]:
    report["report_digest"] = report_digest(report)
    return report


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return example_report()


@pytest.fixture(scope="module")
def failing() -> dict[str, Any]:
    return example_report(leak=1.5)


# ---------------------------------------------------------------------------------------------
# Build, schema, digest
# ---------------------------------------------------------------------------------------------


def test_build_validate_round_trip(example: dict[str, Any]) -> None:
    text = json.dumps(example, sort_keys=True, allow_nan=False)
    loaded = json.loads(text)
    validate_report(loaded)
    assert loaded == example
    assert list(example) == ["schema_version", "kind", "request", "lineage", "certificate", "utility", "mia_l",
                             "mia_u", "empirical_privacy", "policy", "verdict", "limitations", "glossary",
                             "sanitised", "report_digest"]
    assert example["schema_version"] == 3
    assert example["report_digest"] == report_digest(loaded)


def test_stored_version_1_report_still_validates() -> None:
    """A report written by schema version 1 (fixture) stays valid: the schema is a contract."""
    stored = json.loads((FIXTURES / "report_v1.json").read_text(encoding="utf-8"))
    validate_report(stored)
    assert stored["verdict"]["status"] == "INVESTIGATE"


def test_ids_are_never_stored() -> None:
    report = make(ids=[987654321, 123456789])
    text = json.dumps(report)
    assert "987654321" not in text and "123456789" not in text
    assert report["request"]["forget_set"]["count"] == 2
    assert re.fullmatch(r"[0-9a-f]{64}", report["request"]["forget_set"]["ids_sha256"])


def test_certificate_request_ids_are_counted_and_dropped() -> None:
    report = make(certificate={**CERTIFIED, "request_ids": [424242, 434343], "bound": "second-order"})
    assert "424242" not in json.dumps(report)
    assert report["certificate"]["request_deletions"] == 2
    assert report["certificate"]["extras"] == {"bound": "second-order"}


def test_schema_rejects_a_missing_section(example: dict[str, Any]) -> None:
    report = copy.deepcopy(example)
    del report["certificate"]
    with pytest.raises(ReportValidationError, match=r"^\$: missing required key 'certificate'$"):
        validate_report(redigest(report))


def test_schema_rejects_a_wrong_version(example: dict[str, Any]) -> None:
    report = copy.deepcopy(example)
    report["schema_version"] = 4
    with pytest.raises(ReportValidationError, match=r"unsupported schema_version 4"):
        validate_report(redigest(report))
    report["schema_version"] = 1  # a version-2 body (it has the refine fields) is not a valid version 1
    with pytest.raises(ReportValidationError, match=r"unexpected key .reference."):
        validate_report(redigest(report))
    report["schema_version"] = "1"
    with pytest.raises(ReportValidationError, match=r"unsupported schema_version '1'"):
        validate_report(report)


def test_schema_rejects_extra_keys(example: dict[str, Any]) -> None:
    report = copy.deepcopy(example)
    report["raw_ids"] = [1, 2, 3]
    with pytest.raises(ReportValidationError, match=r"^\$: unexpected key 'raw_ids'"):
        validate_report(redigest(report))
    report = copy.deepcopy(example)
    report["certificate"]["hidden"] = True
    with pytest.raises(ReportValidationError, match=r"^\$\.certificate: unexpected key 'hidden'"):
        validate_report(redigest(report))


def test_schema_names_the_path_of_a_wrong_type(example: dict[str, Any]) -> None:
    report = copy.deepcopy(example)
    report["mia_l"]["attacks"][0]["auc"] = "0.5"
    with pytest.raises(ReportValidationError, match=r"^\$\.mia_l\.attacks\[0\]\.auc: expected number or null"):
        validate_report(redigest(report))


def test_digest_is_stable_and_detects_changes(example: dict[str, Any]) -> None:
    again = example_report()
    assert again["report_digest"] == example["report_digest"]
    shuffled = dict(reversed(list(example.items())))
    assert report_digest(shuffled) == example["report_digest"]
    tampered = copy.deepcopy(example)
    tampered["certificate"]["epsilon"] = 0.5
    assert report_digest(tampered) != example["report_digest"]
    with pytest.raises(ReportValidationError, match=r"report_digest: does not match"):
        validate_report(tampered)


def test_an_edited_verdict_is_caught_even_with_a_new_digest(failing: dict[str, Any]) -> None:
    assert failing["verdict"]["status"] == "FAIL"
    forged = copy.deepcopy(failing)
    forged["verdict"] = {"status": "PASS", "reasons": [], "notes": [], "rules_version": 2}
    with pytest.raises(ReportValidationError, match=r"^\$\.verdict: recorded PASS does not follow"):
        validate_report(redigest(forged))


def test_non_finite_numbers_become_null_with_a_note() -> None:
    report = make(utility={"released": {"test": 0.9, "retain": 0.9},
                           "retrained": {"test": 0.0, "retain": 0.9}},
                  mia_l={"attacks": [attack(float("nan"), ref_auc=None)]})
    assert report["utility"]["ratios"]["test_accuracy_ratio"] is None
    assert report["mia_l"]["attacks"][0]["auc"] is None
    paths = {(s["path"], s["value"]) for s in report["sanitised"]}
    assert ("$.utility.ratios.test_accuracy_ratio", "inf") in paths
    assert ("$.mia_l.attacks[0].auc", "nan") in paths
    json.dumps(report, allow_nan=False)
    validate_report(report)


def test_sanitise_reports_paths() -> None:
    clean, notes = sanitise({"a": {"b": [0.0, float("-inf")]}})
    assert clean == {"a": {"b": [0.0, None]}}
    assert notes == [{"path": "$.a.b[1]", "value": "-inf"}]


def test_bad_inputs_name_the_key() -> None:
    with pytest.raises(ConfigError, match="unknown request key 'subject'"):
        build_report(request={"request_id": "r", "ids": [1], "subject": "x"}, lineage=None,
                     certificate=CERTIFIED, utility=UTILITY, policy=None)
    with pytest.raises(ConfigError, match="unknown lineage key 'seed'"):
        build_report(request={"request_id": "r", "ids": [1]}, lineage={"seed": 3},
                     certificate=CERTIFIED, utility=UTILITY, policy=None)
    with pytest.raises(ConfigError, match="certificate status must be one of"):
        make(certificate={**CERTIFIED, "status": "proven"})
    with pytest.raises(ConfigError, match="original_params must be a SHA-256 hex digest"):
        build_report(request={"request_id": "r", "ids": [1]}, lineage={"original_params": "abc"},
                     certificate=CERTIFIED, utility=UTILITY, policy=None)


def test_library_objects_are_accepted() -> None:
    """AttackMetrics / EpsilonBound report entries, an UnlearnResult-like summary() and a Ledger go in."""
    from certunlearn.audit.epsilon import epsilon_lower_bound
    from certunlearn.audit.metrics import attack_metrics
    from certunlearn.certify.ledger import Ledger, LedgerEvent, LedgerPolicy

    rng = np.random.default_rng(3)
    s_in, s_out, s_ref = rng.normal(0.1, 1, 300), rng.normal(0, 1, 300), rng.normal(0.1, 1, 300)
    metrics = attack_metrics(s_in, s_out, n_bootstrap=100, rng=rng)
    ledger = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5))
    ledger.record(LedgerEvent.create(request_id="req-1", ids=[3, 5, 8], cumulative_count=3, method="hfocu",
                                     sensitivity=0.01, sigma=0.0373, epsilon=1.0, delta=1e-5, certified=True,
                                     timestamp="2025-02-01T12:00:00+00:00"))

    class Result:
        def summary(self) -> dict[str, Any]:
            return {**CERTIFIED, "request_ids": [3, 5, 8], "cumulative_deletions": 3, "elapsed_s": 0.001}

    report = make(
        certificate={**Result().summary(), "ledger": ledger},
        mia_l={"attacks": [metrics.report_entry(
            name="loss", epsilon=epsilon_lower_bound(s_in, s_out), scores_in=s_in, scores_out=s_out,
        ).with_reference(attack_metrics(s_ref, s_out, n_bootstrap=100, rng=rng).report_entry(
            name="loss", scores_in=s_ref, scores_out=s_out))]},
        empirical=epsilon_lower_bound(s_in, s_out, alpha=0.05),
    )
    entry = report["mia_l"]["attacks"][0]
    assert entry["auc"] == pytest.approx(metrics.auc)
    assert entry["reference"]["auc"] is not None and entry["comparison"]["p_value"] is not None
    assert sum(entry["score_histogram"]["members"]) == 300
    assert len(entry["roc"]["fpr"]) <= 256
    assert report["certificate"]["ledger"][0]["ids_digest"] == report["request"]["forget_set"]["ids_sha256"]
    assert report["empirical_privacy"]["bounds"][0]["method"] == "clopper-pearson"
    validate_report(json.loads(json.dumps(report)))


def test_audit_results_go_in_as_they_are() -> None:
    """``run_mia_l`` / ``run_mia_u`` result objects, with the retrained model's MIA-L beside them."""
    import torch

    from certunlearn.audit.mia_l import run_mia_l
    from certunlearn.audit.mia_u import run_mia_u
    from certunlearn.audit.mia_u_spec import MIAUSpec
    from certunlearn.train import SGDConfig

    rng = np.random.default_rng(0)
    released, retrained = rng.normal(size=(80, 3)), rng.normal(size=(80, 3))
    labels = np.zeros(40, dtype=np.int64)

    def mia_l(logits: np.ndarray) -> Any:
        return run_mia_l(lambda X: torch.as_tensor(logits), logits[:40], labels, logits[40:], labels,
                         attacks=("loss",))

    X = torch.randn(60, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=4, records_per_original=20, model="logreg",
                    training=SGDConfig(epochs=3, batch_size=20, lr=0.5), attack_models=("logistic_regression",),
                    features=("l2_distance", "basic"), n_bootstrap=0)
    report = make(mia_l=mia_l(released).report_section(reference=mia_l(retrained)),
                  mia_u=run_mia_u(X, (X[:, 0] > 0).long(), spec=spec))
    validate_report(json.loads(json.dumps(report)))
    assert report["mia_l"]["attacks"][0]["reference"]["auc"] is not None
    assert [a["name"] for a in report["mia_u"]["attacks"]] == ["l2_distance/logistic_regression",
                                                                "basic/logistic_regression"]
    assert report["mia_u"]["negatives"] == "out_out"
    assert [b["source"] for b in report["empirical_privacy"]["bounds"]] == ["mia_l", "mia_u"]
    assert report["empirical_privacy"]["bounds"][0]["n_members"] == 40


def test_demo_summary_fits(tmp_path: Path) -> None:
    """``run_demo``'s own report validates, and its certificate and accuracy dicts fit unchanged."""
    from certunlearn.jobs.demo import DemoSpec, run_demo

    summary = run_demo(DemoSpec(epochs=1), audit=False)
    validate_report(summary["report"])
    report = build_report(
        request={"request_id": "demo", "ids": summary["certificate"]["request_ids"]}, lineage={"seeds": {"seed": 0}},
        certificate=summary["certificate"], utility=summary["accuracy"], policy=None,
    )
    validate_report(report)
    assert report["certificate"]["certified"] is True
    assert report["utility"]["models"]["noiseless"] is not None


# ---------------------------------------------------------------------------------------------
# Verdict rules
# ---------------------------------------------------------------------------------------------


def test_pass_when_nothing_triggers() -> None:
    report = make(mia_l={"attacks": [attack(0.52, ci=(0.47, 0.57), ref_auc=0.51)]},
                  empirical={"bounds": [{"source": "gdp", "epsilon_lb": 0.3, "cap": 5.0, "delta": 1e-5}]})
    assert report["verdict"]["status"] == "PASS" and rules(report) == []


def test_fail_when_the_empirical_bound_contradicts_the_certificate() -> None:
    report = make(empirical=[{"source": "one-run", "epsilon_lb": 1.7, "cap": 6.0, "delta": 1e-5}])
    assert report["verdict"]["status"] == "FAIL"
    assert rules(report) == ["epsilon-contradicted"]
    assert "1.7 exceeds the claimed epsilon 1" in report["verdict"]["reasons"][0]["message"]


def test_a_bound_at_a_smaller_delta_cannot_refute() -> None:
    report = make(empirical=[{"source": "cp", "epsilon_lb": 1.7, "cap": 6.0, "delta": 1e-9}])
    assert report["verdict"]["status"] == "PASS"
    assert any("cannot refute the certificate" in n for n in report["verdict"]["notes"])


def test_a_cap_below_the_claim_is_noted() -> None:
    report = make(empirical=[{"source": "small", "epsilon_lb": 0.2, "cap": 0.9, "delta": 1e-5}])
    assert report["verdict"]["status"] == "PASS"
    assert any("cannot refute the claim" in n for n in report["verdict"]["notes"])
    assert any("could not have refuted" in item for item in report["limitations"])


def test_fail_when_the_forget_set_attack_beats_the_reference() -> None:
    report = make(mia_l={"attacks": [attack(0.9, ci=(0.86, 0.93), ref_auc=0.5)]})
    assert report["verdict"]["status"] == "FAIL"
    assert rules(report) == ["attack-above-reference", "auc-ci-excludes-reference"]
    assert "significantly above the retrained reference" in report["verdict"]["reasons"][0]["message"]
    assert report["mia_l"]["attacks"][0]["comparison"]["significant"] is True


def test_mia_u_attack_above_reference_fails_too() -> None:
    report = make(mia_u={"attacks": [attack(0.8, n=300, ref_auc=0.55, name="sorted_diff/random_forest")],
                         "negatives": "out_out"})
    assert report["verdict"]["status"] == "FAIL"
    assert rules(report) == ["attack-above-reference"]
    assert report["verdict"]["reasons"][0]["message"].startswith("MIA-U sorted_diff/random_forest")


def test_tolerated_excess_turns_fail_into_investigate() -> None:
    policy = {"max_mia_l_auc_excess": 0.45}
    report = make(mia_l={"attacks": [attack(0.9, ci=(0.86, 0.93), ref_auc=0.5)]}, policy=policy)
    assert report["verdict"]["status"] == "INVESTIGATE"
    assert rules(report) == ["auc-ci-excludes-reference"]


def test_investigate_when_the_interval_lies_below_the_reference() -> None:
    """Over-unlearning (AUC well below the retrained model's) is a signal too."""
    report = make(mia_l={"attacks": [attack(0.41, ci=(0.33, 0.49), n=40, ref_auc=0.5, ref_n=40)]})
    assert report["verdict"]["status"] == "INVESTIGATE"
    assert rules(report) == ["auc-ci-excludes-reference"]
    assert "lies below the retrained reference" in report["verdict"]["reasons"][0]["message"]


def test_benjamini_hochberg_over_attacks_can_clear_a_marginal_one() -> None:
    """One marginal attack (p ≈ 0.03) among several nulls is not significant after BH."""
    marginal = attack(0.6, n=100, ref_auc=0.5, ref_n=100, name="marginal")
    nulls = [attack(0.5, n=100, ref_auc=0.5, ref_n=100, name=f"null{i}") for i in range(4)]
    alone = make(mia_l={"attacks": [marginal]})
    together = make(mia_l={"attacks": [marginal, *nulls]})
    p = alone["mia_l"]["attacks"][0]["comparison"]["p_value"]
    assert 0.01 < p < 0.05
    assert alone["verdict"]["status"] == "FAIL"
    assert together["verdict"]["status"] == "PASS"
    assert together["mia_l"]["attacks"][0]["comparison"]["p_value_adjusted"] == pytest.approx(min(1.0, 5 * p))


@pytest.mark.parametrize(("utility", "rule"), [
    ({"released": {"test": 0.80, "retain": 0.97}, "retrained": {"test": 0.95, "retain": 0.97}}, "test-accuracy-ratio"),
    ({"released": {"test": 0.95, "retain": 0.80}, "retrained": {"test": 0.95, "retain": 0.97}}, "retain-accuracy-ratio"),
])
def test_investigate_when_utility_drops(utility: dict[str, Any], rule: str) -> None:
    report = make(utility=utility)
    assert report["verdict"]["status"] == "INVESTIGATE"
    assert rules(report) == [rule]
    assert "below the policy minimum 0.95" in report["verdict"]["reasons"][0]["message"]


def test_investigate_when_uncertified_unless_the_policy_allows_it() -> None:
    uncertified = {"method": "finetune", "status": "uncertified", "reasons": ["no bound for fine-tuning"]}
    report = make(certificate=uncertified)
    assert report["verdict"]["status"] == "INVESTIGATE"
    assert rules(report) == ["uncertified"]
    assert "no bound for fine-tuning" in report["verdict"]["reasons"][0]["message"]
    relaxed = make(certificate=uncertified, policy=Policy(require_certified=False))
    assert relaxed["verdict"]["status"] == "PASS"
    assert any("does not require certification" in n for n in relaxed["verdict"]["notes"])


def test_investigate_when_the_certificate_is_weaker_than_the_policy() -> None:
    report = make(certificate={**CERTIFIED, "epsilon": 4.0, "delta": 1e-3, "cumulative_deletions": 500},
                  policy=Policy(max_cumulative_deletions=100))
    assert report["verdict"]["status"] == "INVESTIGATE"
    assert rules(report) == ["epsilon-above-policy", "delta-above-policy", "deletions-above-policy"]


def test_no_reference_is_a_note_not_a_pass_reason() -> None:
    report = make(mia_l={"attacks": [attack(0.9, ref_auc=None)]}, utility={"released": {"test": 0.9}})
    assert report["verdict"]["status"] == "PASS"
    notes = " ".join(report["verdict"]["notes"])
    assert "no retrained reference" in notes and "test_accuracy_ratio not available" in notes


def test_rule_statuses_are_right() -> None:
    assert set(RULES.values()) == {"FAIL", "INVESTIGATE"}
    assert {rule for rule, status in RULES.items() if status == "FAIL"} == {
        "epsilon-contradicted", "attack-above-reference"}


def test_verdict_is_recomputable_from_the_json(failing: dict[str, Any]) -> None:
    loaded = json.loads(json.dumps(failing))
    again = verdict(loaded, Policy.from_mapping(loaded["policy"]))
    assert again.as_dict() == failing["verdict"]
    stricter = verdict(loaded, Policy(max_mia_l_auc_excess=0.5, max_epsilon=2.0))
    assert "epsilon-contradicted" in stricter.rules


def test_statistics_helpers() -> None:
    # Hanley & McNeil (1982) Table: A = 0.5, n = 100 / 100 → SE ≈ 0.0409.
    assert hanley_mcneil_se(auc=0.5, n_members=100, n_non_members=100) == pytest.approx(0.04092, abs=1e-4)
    assert benjamini_hochberg([0.01, 0.02, 0.03, 0.5]) == pytest.approx([0.04, 0.04, 0.04, 0.5])
    assert benjamini_hochberg([]) == []


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------


def test_policy_defaults_are_documented() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "report.md").read_text(encoding="utf-8")
    for key, value in Policy().as_dict().items():
        assert f"`{key}`" in docs, key
        if value is not None:
            token = json.dumps(value) if isinstance(value, (bool, str)) else repr(value)
            assert f"`{key}` | `{token}`" in docs, (key, token)


def test_policy_from_toml_file() -> None:
    policy = Policy.from_toml(FIXTURES / "strict_policy.toml")
    assert policy.name == "strict" and policy.max_epsilon == 0.5 and policy.max_cumulative_deletions == 100
    assert policy.max_mia_u_auc_excess == 0.0  # default kept


def test_policy_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown policy key 'min_test_acuracy_ratio' \(did you mean "
                                          r"'min_test_accuracy_ratio'\?\)"):
        Policy.from_toml(FIXTURES / "unknown_key_policy.toml")


def test_policy_bad_values_and_syntax() -> None:
    with pytest.raises(ConfigError, match=r"max_delta must be in \(0, 1\), got 2.0"):
        Policy.from_toml("max_delta = 2.0")
    with pytest.raises(ConfigError, match=r"require_certified must be true or false"):
        Policy.from_toml('require_certified = "yes"')
    with pytest.raises(InputError, match="not valid TOML"):
        Policy.from_toml("max_epsilon = ")
    with pytest.raises(InputError, match="cannot read policy"):
        Policy.from_toml(FIXTURES / "missing.toml")
    with pytest.raises(ConfigError, match="unknown policy key 'policy'"):
        Policy.from_toml("[policy]\nmax_epsilon = 1.0")


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

_LOADING_TAGS = {"script", "link", "img", "iframe", "frame", "object", "embed", "video", "audio", "source",
                 "track", "base", "image", "feimage", "meta"}
_URL_ATTRIBUTES = {"src", "srcset", "href", "xlink:href", "data", "poster", "action", "background"}


class _ResourceFinder(HTMLParser):
    """Collects every way the markup (not its text) could make the browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _LOADING_TAGS and not (tag == "meta" and self._harmless_meta(attrs)):
            self.loads.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip()
            if name in _URL_ATTRIBUTES and not value.startswith("#"):
                self.loads.append(f"{tag}[{name}={value!r}]")
            if name == "style" and re.search(r"url\(\s*['\"]?(?!#)|@import", value, flags=re.I):
                self.loads.append(f"{tag}[style={value!r}]")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and re.search(r"url\(\s*['\"]?(?!#)|@import", data, flags=re.I):
            self.loads.append("<style> with url()/@import")

    @staticmethod
    def _harmless_meta(attrs: list[tuple[str, str | None]]) -> bool:
        names = {name for name, _ in attrs}
        return not ({"http-equiv"} & names) or dict(attrs).get("http-equiv", "").lower() == "content-security-policy"


def _assert_self_contained(html: str, *, no_urls_at_all: bool = True) -> None:
    finder = _ResourceFinder()
    finder.feed(html)
    finder.close()
    assert finder.loads == [], f"resource loads in HTML: {finder.loads}"
    if no_urls_at_all:
        assert "http://" not in html and "https://" not in html


def test_the_resource_checker_catches_loads() -> None:
    for bad in ('<img src="https://x/y.png">', '<link rel="stylesheet" href="https://x/a.css">',
                '<div style="background: url(https://x/a.png)"></div>', "<style>@import 'x.css';</style>",
                '<svg><use href="https://x/s.svg#a"/></svg>', '<meta http-equiv="refresh" content="0; url=x">'):
        with pytest.raises(AssertionError, match="resource loads"):
            _assert_self_contained(bad, no_urls_at_all=False)
    _assert_self_contained('<svg><use href="#glyph"/><path clip-path="url(#c1)"/></svg>')


def test_html_is_self_contained_and_shows_the_verdict(example: dict[str, Any], failing: dict[str, Any]) -> None:
    for report in (example, failing):
        html = render_html(report)
        assert html.startswith("<!DOCTYPE html>")
        _assert_self_contained(html)
        status = report["verdict"]["status"]
        assert f'<div class="badge">{status}</div>' in html
        assert VERDICT_COLOURS[status] in html
        assert html.count("<svg") == 4  # privacy-utility, ROC, histograms, epsilon bars
        assert re.search(r"attack-above-reference", html) if status == "FAIL" else True


def test_html_escapes_user_strings() -> None:
    hostile = f'{EVIL}<img src="https://evil.example/x.png">'
    report = make(request_id=EVIL,
                  certificate={**CERTIFIED, "assumptions": [hostile]},
                  mia_l={"attacks": [{**attack(0.52, ci=(0.47, 0.57), ref_auc=0.5), "name": EVIL,
                                      "roc": {"fpr": [0, 0.5, 1], "tpr": [0, 0.6, 1]},
                                      "score_histogram": score_histogram([0.1, 0.2], [0.0, 0.3])}]})
    html = render_html(report)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    _assert_self_contained(html, no_urls_at_all=False)  # the URL is there, but only as escaped text
    assert "src=&#34;https://evil.example" in html


def test_markdown_contains_verdict_and_certificate_numbers(example: dict[str, Any]) -> None:
    md = render_markdown(example)
    assert "**Verdict: PASS**" in md
    for row in ("| epsilon | 1 |", "| delta | 1e-05 |", "| sensitivity Δ | 0.0094 |", "| noise σ | 0.035 |",
                "| noise-only σ | 0.38 |", "| status | certified |"):
        assert row in md, row
    assert example["report_digest"] in md


def test_markdown_escapes_user_strings() -> None:
    report = make(request_id=f"{EVIL} | [x](javascript:alert(1)) *bold*")
    md = render_markdown(report)
    assert "<script" not in md
    assert "&lt;script&gt;" in md and r"\| \[x\](javascript:alert(1)) \*bold\*" in md
    assert markdown_escape("a\nb") == "a b"


def test_rendering_refuses_an_invalid_report(example: dict[str, Any]) -> None:
    broken = copy.deepcopy(example)
    broken["verdict"]["status"] = "MAYBE"
    with pytest.raises(ReportValidationError, match=r"\$\.verdict\.status"):
        render_html(redigest(broken))
    with pytest.raises(ReportValidationError):
        render_markdown(broken)


def test_html_without_audits_or_curve_still_renders() -> None:
    report = make(certificate={"method": "retrain", "status": "uncertified"}, utility={"released": {"test": 0.9}})
    html = render_html(report)
    assert "No membership-inference audit was run" in html
    assert '<div class="badge">INVESTIGATE</div>' in html
    _assert_self_contained(html)


# ---------------------------------------------------------------------------------------------
# Schema file and validator
# ---------------------------------------------------------------------------------------------


def test_schema_is_packaged_and_versioned() -> None:
    schema = load_schema()
    assert schema["$id"].endswith(":3") and load_schema(2)["$id"].endswith(":2") and load_schema(1)["$id"].endswith(":1")
    new = {"reference", "certificate_kind", "sensitivity_budget", "measured_bound", "refinement"}
    assert new <= set(schema["properties"]["certificate"]["required"])
    assert not new & set(load_schema(1)["properties"]["certificate"]["required"])
    assert "schema_version" in schema["required"]
    assert schema["additionalProperties"] is False


def test_validator_agrees_with_jsonschema(example: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed: cross-check skipped")
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(example)) == []
    broken = [copy.deepcopy(example) for _ in range(4)]
    del broken[0]["utility"]
    broken[1]["kind"] = "other"
    broken[2]["request"]["forget_set"]["ids_sha256"] = "XYZ"
    broken[3]["mia_l"]["attacks"][0]["tpr_at"]["0.01"] = 1.5
    for doc in broken:
        assert list(validator.iter_errors(doc)), doc.keys()
        assert first_error(doc, schema) is not None


def test_validator_yields_all_problems() -> None:
    schema = {"type": "object", "required": ["a", "b"], "additionalProperties": False,
              "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"enum": ["x"]}}}
    assert list(iter_errors({"a": -1, "c": 1}, schema)) == [
        "$: missing required key 'b'", "$.a: must be >= 0, got -1", "$: unexpected key 'c' (allowed: a, b)"]
    assert first_error(True, {"type": "integer"}) == "$: expected integer, got boolean true"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _write(path: Path, report: Any) -> Path:
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def test_cli_validate_exit_codes(tmp_path: Path, example: dict[str, Any]) -> None:
    good = _write(tmp_path / "report.json", example)
    result = runner.invoke(app, ["report", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "valid (schema_version 3, verdict PASS" in result.output

    broken = copy.deepcopy(example)
    del broken["lineage"]
    bad = _write(tmp_path / "bad.json", redigest(broken))
    result = runner.invoke(app, ["report", "validate", str(bad)])
    assert result.exit_code == 1
    assert "invalid report: $: missing required key 'lineage'" in result.output

    (tmp_path / "nan.json").write_text('{"schema_version": NaN}')
    (tmp_path / "dup.json").write_text('{"a": 1, "a": 2}')
    (tmp_path / "text.json").write_text("not json")
    for name in ("nan.json", "dup.json", "text.json", "missing.json"):
        result = runner.invoke(app, ["report", "validate", str(tmp_path / name)])
        assert result.exit_code == 2, (name, result.output)
        assert "error:" in result.output


def test_cli_render_writes_html_and_markdown(tmp_path: Path, failing: dict[str, Any]) -> None:
    source = _write(tmp_path / "report.json", failing)
    result = runner.invoke(app, ["report", "render", str(source)])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert '<div class="badge">FAIL</div>' in html and "**Verdict: FAIL**" in md

    out = tmp_path / "sub" / "x.html"
    result = runner.invoke(app, ["report", "render", str(source), "--html", str(out)])
    assert result.exit_code == 0 and out.exists() and not (tmp_path / "sub" / "x.md").exists()

    result = runner.invoke(app, ["report", "render", str(source), "--md", "-"])
    assert result.exit_code == 0
    assert result.stdout.startswith("# Unlearning compliance report")


def test_cli_render_refuses_invalid_and_unreadable(tmp_path: Path, example: dict[str, Any]) -> None:
    broken = copy.deepcopy(example)
    broken["schema_version"] = 7
    bad = _write(tmp_path / "bad.json", broken)
    result = runner.invoke(app, ["report", "render", str(bad)])
    assert result.exit_code == 2
    assert "unsupported schema_version 7" in result.output
    assert not (tmp_path / "bad.html").exists()
    result = runner.invoke(app, ["report", "render", str(tmp_path / "nope.json")])
    assert result.exit_code == 2


def test_version_does_not_import_report_dependencies() -> None:
    code = (
        "import sys; from certunlearn.cli.main import app; from typer.testing import CliRunner; "
        "CliRunner().invoke(app, ['--version']); "
        "print(sorted(m for m in ('jinja2', 'matplotlib', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# Real browser
# ---------------------------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_html_in_headless_chromium(tmp_path: Path, failing: dict[str, Any]) -> None:
    """Screenshot the rendered HTML in Debian's Chromium: not blank, and the FAIL badge is visible."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium or chromium-browser on PATH (Debian: apt-get install chromium; .ci/run does)")
    import matplotlib.image

    page = tmp_path / "report.html"
    page.write_text(render_html(failing), encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
           page.as_uri()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish within 90 s")
    assert shot.exists(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    image = matplotlib.image.imread(str(shot))[..., :3]
    assert image.shape[:2] == (2000, 1200)
    assert float(image.var()) > 0.0, "blank screenshot"
    # The FAIL badge (#cf222e) is drawn near the top of the page.
    red = np.array([0xCF, 0x22, 0x2E]) / 255.0
    top = image[:400]
    badge = np.all(np.abs(top - red) < 0.03, axis=-1)
    assert badge.sum() > 2000, f"verdict badge not visible ({int(badge.sum())} badge-coloured pixels)"


def test_wheel_ships_the_schema_and_templates(tmp_path: Path) -> None:
    """The schema and templates are package data: they must be in the wheel, not only in the tree."""
    pytest.importorskip("hatchling", reason="hatchling (the build backend) not installed: wheel check skipped")
    import zipfile

    root = Path(__file__).parents[2]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("certunlearn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("certunlearn/report/schemas/1/report.schema.json", "certunlearn/report/templates/report.html.j2",
                 "certunlearn/report/templates/report.md.j2"):
        assert name in names, name


# ---------------------------------------------------------------------------------------------
# The refine certificate in the report (schema 2)
# ---------------------------------------------------------------------------------------------

REFINED = {**CERTIFIED, "certificate": "refine", "reference": "erm", "sensitivity": 0.0015,
           "sensitivity_budget": 0.0015, "measured_bound": 4.5e-5, "refine_path": "refined", "refine_steps": 1,
           "refine_hvps": 7, "refine_passes": 11, "refine_seconds": 0.012, "refine_start_bound": 0.16,
           "refine_rounding": 1e-9, "refine_bound_kind": "newton", "refine_preconditioner": "cholesky",
           "refine_met": True}


def test_refine_certificate_is_reported_with_its_budget_and_refinement() -> None:
    report = make(certificate=REFINED)
    validate_report(report)
    cert = report["certificate"]
    assert cert["certificate_kind"] == "refine" and cert["reference"] == "erm"
    assert cert["sensitivity_budget"] == 0.0015 and cert["measured_bound"] == 4.5e-5
    assert cert["refinement"] == {"path": "refined", "steps": 1, "hvps": 7, "passes": 11, "seconds": 0.012,
                                  "start_bound": 0.16, "rounding": 1e-9, "bound_kind": "newton",
                                  "preconditioner": "cholesky"}
    assert not any(k.startswith("refine_") for k in cert["extras"])  # grouped, not left among the extras
    assert "exact retrain" in cert["summary"] and "public budget 0.0015" in cert["summary"]
    md, html = render_markdown(report), render_html(report)
    for text in (md, html):
        assert "refined: 1 Newton steps" in text and "measured bound" in text


def test_a_certified_refine_release_needs_a_measured_bound_within_its_budget() -> None:
    with pytest.raises(ConfigError, match="measured bound within it"):
        make(certificate={**REFINED, "measured_bound": 0.002})
    with pytest.raises(ConfigError, match="reference must be"):
        make(certificate={**REFINED, "reference": "sgd"})


def test_version_1_report_renders() -> None:
    """Renderers read both versions: a stored version-1 report has no refine fields."""
    stored = json.loads((FIXTURES / "report_v1.json").read_text(encoding="utf-8"))
    assert "reference" not in stored["certificate"]
    assert "Verdict" in render_markdown(stored) and "<html" in render_html(stored)


def test_version_2_reports_still_validate_and_render() -> None:
    """A report written before schema 3 (no noise source, rules version 1) is read as it is."""
    from certunlearn.audit.report_example import example_report
    from certunlearn.report.render import render_markdown
    from certunlearn.report.schema import report_digest

    old = json.loads(json.dumps(example_report()))
    old["schema_version"] = 2
    del old["certificate"]["noise_source"]
    old["verdict"]["rules_version"] = 1
    old["report_digest"] = report_digest(old)
    validate_report(old)
    assert "**Verdict: PASS**" in render_markdown(old)
    old["certificate"]["noise_source"] = "secure"  # a version-3 key in a version-2 report is refused
    old["report_digest"] = report_digest(old)
    with pytest.raises(ReportValidationError, match="noise_source"):
        validate_report(old)


def test_a_seeded_release_is_labelled_and_never_passes() -> None:
    from certunlearn.audit.report_example import example_report

    report = example_report()
    assert report["certificate"]["noise_source"] == "secure" and report["verdict"]["status"] == "PASS"
    seeded = build_report(
        request={"request_id": "r", "ids": [1, 2]}, lineage={},
        certificate={"method": "hfocu", "status": "certified", "certified": True, "sensitivity": 0.01,
                     "epsilon": 1.0, "delta": 1e-5, "sigma": 0.04, "noise_source": "seeded",
                     "reference": "coupled-sgd", "certificate": "worst-case"},
        utility={"released": {"test": 0.9}, "retrained": {"test": 0.9}}, policy=None,
    )
    assert seeded["certificate"]["noise_source"] == "seeded"
    assert seeded["verdict"]["status"] == "INVESTIGATE"
    assert [r["rule"] for r in seeded["verdict"]["reasons"]] == ["reproducible-noise"]
    validate_report(json.loads(json.dumps(seeded)))
    with pytest.raises(ConfigError, match="contradicts sigma"):
        build_report(request={"request_id": "r", "ids": [1]}, lineage={},
                     certificate={"method": "newton", "status": "uncertified", "sigma": 0.0,
                                  "noise_source": "secure"},
                     utility={"released": {"test": 0.9}, "retrained": {"test": 0.9}}, policy=None)
