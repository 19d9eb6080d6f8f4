"""Tests of the verdict's rule registry (certunlearn.report.rules) and the built-in rules.

Every registered rule is triggered by a minimal report of its own (a new rule without a case here
fails the coverage test); a custom rule changes the verdict while it is registered and not after;
the registry refuses collisions, malformed rules and findings a rule may not return.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from certunlearn.errors import ConfigError
from certunlearn.report.policy import RULES, Evidence, Policy, verdict
from certunlearn.report.rules import (
    RULE_REGISTRY,
    Finding,
    Rule,
    register_rule,
    unregister_rule,
)

BUILT_IN = (
    "epsilon-contradicted",
    "attack-above-reference",
    "auc-ci-excludes-reference",
    "test-accuracy-ratio",
    "retain-accuracy-ratio",
    "uncertified",
    "epsilon-above-policy",
    "delta-above-policy",
    "deletions-above-policy",
    "reproducible-noise",
)


def _clean(**sections: Any) -> dict[str, Any]:
    """A report that triggers nothing, with ``sections`` replaced."""
    report: dict[str, Any] = {
        "certificate": {"status": "certified", "epsilon": 1.0, "delta": 1e-5, "cumulative_deletions": 3},
        "utility": {"ratios": {"test_accuracy_ratio": 1.0, "retain_accuracy_ratio": 1.0}},
        "empirical_privacy": {"bounds": []},
        "mia_l": None,
        "mia_u": None,
    }
    report.update(sections)
    return report


def _attack(auc: float, ci: tuple[float, float], ref_auc: float, n: int = 500) -> dict[str, Any]:
    return {"name": "loss", "auc": auc, "auc_ci": list(ci), "n_members": n, "n_non_members": n,
            "reference": {"auc": ref_auc, "n_members": n, "n_non_members": n}}


def _certificate(**changes: Any) -> dict[str, Any]:
    return {"status": "certified", "epsilon": 1.0, "delta": 1e-5, "cumulative_deletions": 3, **changes}


# rule -> (report that triggers it, policy)
TRIGGERS: dict[str, tuple[dict[str, Any], Policy]] = {
    "epsilon-contradicted": (
        _clean(empirical_privacy={"bounds": [{"source": "mia_l", "epsilon_lb": 2.0, "cap": 5.0, "delta": 1e-5}]}),
        Policy()),
    "attack-above-reference": (_clean(mia_l={"attacks": [_attack(0.8, (0.45, 0.95), 0.5)]}), Policy()),
    "auc-ci-excludes-reference": (_clean(mia_u={"attacks": [_attack(0.52, (0.51, 0.53), 0.5, n=20)]}), Policy()),
    "test-accuracy-ratio": (
        _clean(utility={"ratios": {"test_accuracy_ratio": 0.5, "retain_accuracy_ratio": 1.0}}), Policy()),
    "retain-accuracy-ratio": (
        _clean(utility={"ratios": {"test_accuracy_ratio": 1.0, "retain_accuracy_ratio": 0.5}}), Policy()),
    "uncertified": (_clean(certificate=_certificate(status="uncertified", reasons=["clipping"])), Policy()),
    "epsilon-above-policy": (_clean(certificate=_certificate(epsilon=3.0)), Policy()),
    "delta-above-policy": (_clean(certificate=_certificate(delta=1e-3)), Policy()),
    "deletions-above-policy": (_clean(), Policy(max_cumulative_deletions=2)),
    "reproducible-noise": (_clean(certificate={**_certificate(), "noise_source": "seeded"}), Policy()),
}


@pytest.fixture
def custom_rule() -> Iterator[str]:
    """Registers nothing itself; removes the rule named ``lineage-missing`` after the test."""
    yield "lineage-missing"
    if "lineage-missing" in RULE_REGISTRY:
        unregister_rule("lineage-missing")


def test_the_built_in_rules_are_registered_in_order() -> None:
    assert tuple(RULE_REGISTRY) == BUILT_IN
    assert dict(RULES) == {name: rule.status for name, rule in RULE_REGISTRY.items()}


def test_the_clean_report_passes_without_notes() -> None:
    v = verdict(_clean(), Policy())
    assert (v.status, v.reasons, v.notes) == ("PASS", (), ())


def test_every_registered_rule_is_exercised() -> None:
    assert set(TRIGGERS) == set(RULE_REGISTRY), "each registered rule needs a triggering case here"
    for name, (report, policy) in TRIGGERS.items():
        v = verdict(report, policy)
        assert v.rules == (name,), (name, v.rules)
        assert v.status == RULES[name]
        findings = RULE_REGISTRY[name].findings(Evidence.gather(report, policy), policy)
        assert [f.message for f in findings if f.status != "PASS"] == [r.message for r in v.reasons]


def test_pass_findings_become_notes() -> None:
    report = _clean(certificate=_certificate(status="uncertified"), utility={"ratios": {}})
    v = verdict(report, Policy(require_certified=False))
    assert v.status == "PASS" and v.reasons == ()
    assert v.notes == (
        "utility: test_accuracy_ratio not available (no retrained reference), not checked",
        "utility: retain_accuracy_ratio not available (no retrained reference), not checked",
        "certificate: the release is uncertified; the policy does not require certification",
    )


def test_registering_a_custom_rule_changes_the_verdict(custom_rule: str) -> None:
    report = _clean(lineage=None)
    assert verdict(report, Policy()).status == "PASS"

    def lineage_missing(evidence: Evidence, policy: Policy) -> list[Finding]:
        if evidence.report.get("lineage") is None:
            return [Finding(custom_rule, "FAIL", "lineage: no model hashes recorded")]
        return [Finding(custom_rule, "PASS", "lineage: recorded")]

    rule = register_rule(custom_rule, "FAIL", lineage_missing)
    assert isinstance(rule, Rule) and RULES[custom_rule] == "FAIL"
    assert tuple(RULE_REGISTRY)[-1] == custom_rule
    v = verdict(report, Policy())
    assert (v.status, v.rules) == ("FAIL", (custom_rule,))
    assert v.as_dict()["reasons"] == [{"rule": custom_rule, "status": "FAIL",
                                       "message": "lineage: no model hashes recorded"}]
    # a custom rule's PASS finding is a note, listed after the built-in rules' notes
    v = verdict(_clean(lineage={"model": "abc"}, utility={"ratios": {}}), Policy())
    assert v.status == "PASS" and v.notes[-1] == "lineage: recorded"
    # it is judged with the built-in rules and listed after them
    v = verdict(_clean(certificate=_certificate(epsilon=3.0), lineage=None), Policy())
    assert v.status == "FAIL" and v.rules == ("epsilon-above-policy", custom_rule)

    unregister_rule(custom_rule)
    assert custom_rule not in RULES and verdict(report, Policy()).status == "PASS"


def test_force_replaces_a_rule_in_place() -> None:
    original = RULE_REGISTRY["delta-above-policy"]
    try:
        register_rule("delta-above-policy", "INVESTIGATE",
                      lambda evidence, policy: [Finding("delta-above-policy", "INVESTIGATE", "always")], force=True)
        assert tuple(RULE_REGISTRY) == BUILT_IN
        assert verdict(_clean(), Policy()).rules == ("delta-above-policy",)
    finally:
        register_rule(original.name, original.status, original.check, force=True)
    assert verdict(_clean(), Policy()).status == "PASS"


def test_the_registry_refuses_collisions_and_malformed_rules() -> None:
    def nothing(evidence: Evidence, policy: Policy) -> list[Finding]:
        return []

    with pytest.raises(ConfigError, match="already registered"):
        register_rule("uncertified", "INVESTIGATE", nothing)
    with pytest.raises(ConfigError, match="lower-case words"):
        register_rule("Lineage Missing", "FAIL", nothing)
    with pytest.raises(ConfigError, match="a rule triggers one of"):
        register_rule("lineage-missing", "PASS", nothing)
    with pytest.raises(ConfigError, match="must be callable"):
        register_rule("lineage-missing", "FAIL", "not a function")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no rule 'lineage-missing'; registered: attack-above-reference"):
        unregister_rule("lineage-missing")
    assert tuple(RULE_REGISTRY) == BUILT_IN


@pytest.mark.parametrize(
    ("finding", "match"),
    [
        (Finding("lineage-missing", "INVESTIGATE", "x"),
         "rule 'lineage-missing' returned a finding for rule 'lineage-missing' with status 'INVESTIGATE'"),
        (Finding("uncertified", "FAIL", "x"), "rule 'lineage-missing' returned a finding for rule 'uncertified'"),
        ("a string", "rule 'lineage-missing' must return Finding objects, got str"),
    ],
)
def test_a_rule_speaks_only_for_itself(finding: Any, match: str, custom_rule: str) -> None:
    register_rule(custom_rule, "FAIL", lambda evidence, policy: [finding])
    with pytest.raises(ConfigError, match=match):
        verdict(_clean(), Policy())


def test_findings_are_validated() -> None:
    with pytest.raises(ConfigError, match="status must be one of"):
        Finding("uncertified", "WARN", "x")
    with pytest.raises(ConfigError, match="rule must be a non-empty string"):
        Finding("", "PASS", "x")
    with pytest.raises(ConfigError, match="message must be a string"):
        Finding("uncertified", "PASS", 3)  # type: ignore[arg-type]
