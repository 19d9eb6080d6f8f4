r"""The compliance policy a report is judged against, and the verdict rules (docs/report.md).

A :class:`Policy` is a frozen, validated dataclass, loaded from TOML with :meth:`Policy.from_toml`
(``tomllib``; unknown keys are rejected with the key named). :func:`verdict` runs every rule of the
registry (:mod:`certunlearn.report.rules`) on a report dict (the JSON, not Python objects, so anyone
can re-judge a stored report) and folds their findings. The built-in rules, in order:

**FAIL** — evidence of non-compliance:

* ``epsilon-contradicted``: an empirical ε lower bound exceeds the claimed ε of the certificate
  (the certificate is refuted at the bound's confidence). Only bounds computed at a δ no smaller than
  the certificate's can refute it; others are listed as notes.
* ``attack-above-reference``: a membership attack on the forget set (MIA-L: forget set vs held-out
  on the released model; MIA-U: deleted vs never-trained records, original vs unlearned outputs) has
  an AUC significantly above the same attack on the retrained reference plus the policy's tolerated
  excess (:func:`compare_with_reference`: one-sided test with Hanley–McNeil standard errors, the two
  AUCs treated as independent, which is conservative; Benjamini–Hochberg over every attack with a
  reference; adjusted ``p < alpha``).

**INVESTIGATE** — something a person must look at:

* ``auc-ci-excludes-reference``: an attack's AUC confidence interval excludes the reference AUC in
  either direction (far *below* the reference — over-unlearning — is also a signal).
* ``test-accuracy-ratio`` / ``retain-accuracy-ratio``: released / retrained accuracy below the minimum.
* ``uncertified``: the release carries no certificate (status other than ``certified``), when
  ``require_certified``.
* ``epsilon-above-policy`` / ``delta-above-policy``: the certificate is weaker than the policy allows.
* ``deletions-above-policy``: cumulative deletions exceed ``max_cumulative_deletions`` (retrain).
* ``reproducible-noise``: the release noise came from a seeded generator (not private).

**PASS** otherwise. Every triggered rule is listed with its reason; facts that limit what the audit
can show (no reference, claimed ε above the audit's cap) are listed as notes. Custom rules are added
with :func:`~certunlearn.report.rules.register_rule`.

Example:
    >>> policy = Policy.from_toml('max_epsilon = 2.0\nalpha = 0.01')
    >>> policy.max_epsilon, policy.alpha, policy.max_delta
    (2.0, 0.01, 1e-05)
    >>> Policy.from_toml('max_epsilom = 2.0')
    Traceback (most recent call last):
    ...
    certunlearn.errors.ConfigError: unknown policy key 'max_epsilom' (did you mean 'max_epsilon'?); allowed keys: alpha, max_cumulative_deletions, max_delta, max_epsilon, max_mia_l_auc_excess, max_mia_u_auc_excess, min_retain_accuracy_ratio, min_test_accuracy_ratio, name, require_certified
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from certunlearn.errors import ConfigError, InputError
from certunlearn.report.rules import (
    RULE_REGISTRY,
    RULES,
    STATUSES,
    Finding,
    RuleCheck,
    register_rule,
)
from certunlearn.report.stats import benjamini_hochberg, hanley_mcneil_se
from certunlearn.validation import (
    check_int,
    check_nonnegative,
    check_open_unit,
    check_positive,
    check_real,
)

__all__ = [
    "RULES",
    "RULES_VERSION",
    "STATUSES",
    "Evidence",
    "Policy",
    "Reason",
    "Verdict",
    "benjamini_hochberg",
    "compare_with_reference",
    "format_pvalue",
    "hanley_mcneil_se",
    "verdict",
]

RULES_VERSION = 2  # 2 adds reproducible-noise (report schema 3)
"""Version of the rule set below (recorded in every verdict)."""

ATTACK_SECTIONS = ("mia_l", "mia_u")


@dataclass(frozen=True, slots=True)
class Policy:
    """Thresholds a compliance report is judged against (defaults documented in docs/report.md).

    Attributes:
        name: Label shown in the report.
        max_epsilon: Largest certified ε the policy accepts (> 0).
        max_delta: Largest certified δ the policy accepts, in (0, 1).
        alpha: Significance level of the attack-vs-reference tests (after Benjamini–Hochberg).
        max_mia_l_auc_excess: Tolerated MIA-L AUC excess over the retrained reference, in [0, 0.5]
            (0: any significant excess fails; docs/report.md, "Policy keys and defaults").
        max_mia_u_auc_excess: Tolerated MIA-U AUC excess over the retrained reference, in [0, 0.5].
        min_test_accuracy_ratio: Smallest released / retrained test accuracy (TA_U / TA_R), >= 0.
        min_retain_accuracy_ratio: Smallest released / retrained retain accuracy (RA_U / RA_R), >= 0.
        require_certified: An uncertified release is INVESTIGATE (else only a note).
        max_cumulative_deletions: Cumulative deletions after which the model must be retrained
            (None: no limit).

    Example:
        >>> Policy().max_epsilon, Policy().min_test_accuracy_ratio
        (1.0, 0.95)
        >>> Policy(alpha=1.5)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: alpha must be in (0, 1), got 1.5
    """

    name: str = "default"
    max_epsilon: float = 1.0
    max_delta: float = 1e-5
    alpha: float = 0.05
    max_mia_l_auc_excess: float = 0.0
    max_mia_u_auc_excess: float = 0.0
    min_test_accuracy_ratio: float = 0.95
    min_retain_accuracy_ratio: float = 0.95
    require_certified: bool = True
    max_cumulative_deletions: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"name must be a non-empty string, got {self.name!r}")
        check_positive("max_epsilon", self.max_epsilon)
        check_open_unit("max_delta", self.max_delta)
        check_open_unit("alpha", self.alpha)
        for name in ("max_mia_l_auc_excess", "max_mia_u_auc_excess"):
            value = check_real(name, getattr(self, name))
            if not 0.0 <= value <= 0.5:
                raise ConfigError(f"{name} must be in [0, 0.5], got {value!r}")
        check_nonnegative("min_test_accuracy_ratio", self.min_test_accuracy_ratio)
        check_nonnegative("min_retain_accuracy_ratio", self.min_retain_accuracy_ratio)
        if not isinstance(self.require_certified, bool):
            raise ConfigError(f"require_certified must be true or false, got {self.require_certified!r}")
        if self.max_cumulative_deletions is not None:
            check_int("max_cumulative_deletions", self.max_cumulative_deletions, minimum=1)
        for name in ("max_epsilon", "max_delta", "alpha", "max_mia_l_auc_excess", "max_mia_u_auc_excess",
                     "min_test_accuracy_ratio", "min_retain_accuracy_ratio"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Policy:
        """Build from a mapping (a TOML table, a report's ``policy`` section); unknown keys rejected.

        Example:
            >>> Policy.from_mapping({"max_epsilon": 3}).max_epsilon
            3.0
        """
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"a policy must be a table of keys, got {type(mapping).__name__}")
        allowed = sorted(f.name for f in fields(cls))
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown policy key {key!r}{hint}; allowed keys: {', '.join(allowed)}")
        return cls(**dict(mapping))

    @classmethod
    def from_toml(cls, source: str | Path) -> Policy:
        """Load a policy from a TOML file (a :class:`~pathlib.Path`) or TOML text (a ``str``).

        The document holds the keys of :class:`Policy` at top level; anything else is an error.

        Args:
            source: A path to a ``.toml`` file, or the TOML text itself.

        Raises:
            InputError: Unreadable file or TOML syntax error.
            ConfigError: Unknown key (named) or a value out of range.

        Example:
            >>> Policy.from_toml('name = "strict"\\nmax_epsilon = 0.5').name
            'strict'
        """
        if isinstance(source, Path):
            try:
                text = source.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{source}: cannot read policy ({exc})") from None
        elif isinstance(source, str):
            text = source
        else:
            raise ConfigError(f"source must be a Path or TOML text, got {type(source).__name__}")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"policy is not valid TOML: {exc}") from None
        return cls.from_mapping(data)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (what a report records).

        Example:
            >>> Policy().as_dict()["require_certified"]
            True
        """
        return asdict(self)

    def auc_excess(self, section: str) -> float:
        """Tolerated AUC excess of an attack section (``"mia_l"`` or ``"mia_u"``).

        Example:
            >>> Policy(max_mia_u_auc_excess=0.02).auc_excess("mia_u")
            0.02
        """
        if section not in ATTACK_SECTIONS:
            raise ConfigError(f"section must be one of {list(ATTACK_SECTIONS)}, got {section!r}")
        return self.max_mia_l_auc_excess if section == "mia_l" else self.max_mia_u_auc_excess


@dataclass(frozen=True, slots=True)
class Reason:
    """One triggered rule: its id (:data:`~certunlearn.report.rules.RULES`), the status it triggers, and a sentence.

    Example:
        >>> Reason("uncertified", "INVESTIGATE", "no bound applies").rule
        'uncertified'
        >>> Reason("uncertified", "FAIL", "x")
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: rule 'uncertified' must trigger 'INVESTIGATE', got 'FAIL'
    """

    rule: str
    status: str
    message: str

    def __post_init__(self) -> None:
        if RULES.get(self.rule) != self.status:
            raise ConfigError(f"rule {self.rule!r} must trigger {RULES.get(self.rule)!r}, got {self.status!r}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """PASS / INVESTIGATE / FAIL with every triggered rule and the audit's notes.

    Example:
        >>> Verdict("PASS").as_dict()
        {'status': 'PASS', 'reasons': [], 'notes': [], 'rules_version': 2}
    """

    status: str
    reasons: tuple[Reason, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"status must be one of {list(STATUSES)}, got {self.status!r}")
        worst = max((STATUSES.index(r.status) for r in self.reasons), default=0)
        if STATUSES.index(self.status) != worst:
            raise ConfigError(f"status {self.status!r} does not match its reasons (worst {STATUSES[worst]!r})")

    @property
    def rules(self) -> tuple[str, ...]:
        """Ids of the triggered rules, in order.

        Example:
            >>> Verdict("INVESTIGATE", (Reason("uncertified", "INVESTIGATE", "no bound"),)).rules
            ('uncertified',)
        """
        return tuple(r.rule for r in self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (the report's ``verdict`` section).

        Example:
            >>> Verdict("FAIL", (Reason("epsilon-contradicted", "FAIL", "eps_lb 3 > 1"),)).as_dict()["reasons"][0]["rule"]
            'epsilon-contradicted'
        """
        return {
            "status": self.status,
            "reasons": [{"rule": r.rule, "status": r.status, "message": r.message} for r in self.reasons],
            "notes": list(self.notes),
            "rules_version": RULES_VERSION,
        }


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def _one_comparison(attack: Mapping[str, Any], excess: float) -> dict[str, Any] | None:
    reference = attack.get("reference")
    if not isinstance(reference, Mapping):
        return None
    auc, ref_auc = _num(attack.get("auc")), _num(reference.get("auc"))
    if auc is None or ref_auc is None:
        return None
    out: dict[str, Any] = {
        "auc_difference": auc - ref_auc,
        "tolerated_excess": excess,
        "standard_error": None,
        "p_value": None,
        "p_value_adjusted": None,
        "significant": False,
        "ci_excludes_reference": None,
        "method": "one-sided z test of AUC - AUC_ref > tolerated excess, Hanley-McNeil standard "
                  "errors (independent AUCs), Benjamini-Hochberg over all attacks with a reference",
    }
    ci = attack.get("auc_ci")
    if isinstance(ci, Sequence) and len(ci) == 2 and _num(ci[0]) is not None and _num(ci[1]) is not None:
        out["ci_excludes_reference"] = not (float(ci[0]) <= ref_auc <= float(ci[1]))
    sizes = [_count(attack.get("n_members")), _count(attack.get("n_non_members")),
             _count(reference.get("n_members")), _count(reference.get("n_non_members"))]
    if any(s is None for s in sizes):
        return out
    se = math.hypot(
        hanley_mcneil_se(auc=auc, n_members=sizes[0], n_non_members=sizes[1]),  # type: ignore[arg-type]
        hanley_mcneil_se(auc=ref_auc, n_members=sizes[2], n_non_members=sizes[3]),  # type: ignore[arg-type]
    )
    margin = auc - ref_auc - excess
    if se > 0:
        p = 0.5 * math.erfc(margin / se / math.sqrt(2.0))
    else:
        p = 0.0 if margin > 0 else 1.0
    out["standard_error"], out["p_value"] = se, p
    return out


def compare_with_reference(report: Mapping[str, Any], policy: Policy) -> dict[tuple[str, int], dict[str, Any]]:
    """Compare every attack that has a retrained reference with it (the numbers behind the verdict).

    Args:
        report: A report dict (sections ``mia_l`` / ``mia_u`` with ``attacks`` lists).
        policy: Gives ``alpha`` and the tolerated excesses.

    Returns:
        ``{(section, attack index): comparison}`` with the AUC difference, standard error, raw and
        Benjamini–Hochberg-adjusted one-sided p-values, ``significant`` (adjusted p < alpha) and
        whether the AUC interval excludes the reference AUC.

    Example:
        >>> attack = {"auc": 0.9, "auc_ci": [0.85, 0.95], "n_members": 200, "n_non_members": 200,
        ...           "reference": {"auc": 0.5, "n_members": 200, "n_non_members": 200}}
        >>> c = compare_with_reference({"mia_l": {"attacks": [attack]}, "mia_u": None}, Policy())
        >>> c[("mia_l", 0)]["significant"], c[("mia_l", 0)]["ci_excludes_reference"]
        (True, True)
    """
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for section in ATTACK_SECTIONS:
        block = report.get(section)
        if not isinstance(block, Mapping):
            continue
        for index, attack in enumerate(block.get("attacks") or ()):
            comparison = _one_comparison(attack, policy.auc_excess(section))
            if comparison is not None:
                found[(section, index)] = comparison
    tested = [key for key, c in found.items() if c["p_value"] is not None]
    for key, adjusted in zip(tested, benjamini_hochberg([found[k]["p_value"] for k in tested]), strict=True):
        found[key]["p_value_adjusted"] = adjusted
        found[key]["significant"] = adjusted < policy.alpha
    return found


# ---------------------------------------------------------------------------------------------
# The rules: a registry of checks, each reading the evidence and returning findings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the rules read: the report dict and the facts several rules share, gathered once.

    Attributes:
        report: The report dict (its evidence sections; a recorded verdict is never read).
        certificate: The report's ``certificate`` section (empty when absent).
        claimed_epsilon: The certificate's ε, or None when absent or not a finite number.
        claimed_delta: The certificate's δ, or None.
        comparisons: :func:`compare_with_reference` of the report under the policy.

    Example:
        >>> e = Evidence.gather({"certificate": {"epsilon": 1.0}}, Policy())
        >>> e.claimed_epsilon, e.claimed_delta, e.comparisons
        (1.0, None, {})
    """

    report: Mapping[str, Any]
    certificate: Mapping[str, Any]
    claimed_epsilon: float | None
    claimed_delta: float | None
    comparisons: Mapping[tuple[str, int], Mapping[str, Any]]

    @classmethod
    def gather(cls, report: Mapping[str, Any], policy: Policy) -> Evidence:
        """Read the shared facts of ``report`` (the attack comparisons use ``policy``'s thresholds).

        Example:
            >>> Evidence.gather({}, Policy()).certificate
            {}
        """
        cert = report.get("certificate") or {}
        return cls(report=report, certificate=cert, claimed_epsilon=_num(cert.get("epsilon")),
                   claimed_delta=_num(cert.get("delta")), comparisons=compare_with_reference(report, policy))


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def format_pvalue(p: float) -> str:
    """A (Benjamini–Hochberg-adjusted) p-value as reports print it: ``< 1e-6`` or 3 significant digits.

    Example:
        >>> format_pvalue(3e-9), format_pvalue(0.01234)
        ('< 1e-6', '0.0123')
    """
    return "< 1e-6" if p < 1e-6 else f"{p:.3g}"


def _hit(rule: str, message: str) -> Finding:
    return Finding(rule, RULES[rule], message)


def _note(rule: str, message: str) -> Finding:
    return Finding(rule, "PASS", message)


def _builtin(name: str, status: str) -> Callable[[RuleCheck], RuleCheck]:
    """Register the decorated check as a built-in rule (definition order = the verdict's rule order)."""

    def add(check: RuleCheck) -> RuleCheck:
        register_rule(name, status, check)
        return check

    return add


@_builtin("epsilon-contradicted", "FAIL")
def _epsilon_contradicted(evidence: Evidence, policy: Policy) -> list[Finding]:
    """FAIL: an empirical ε lower bound (at a δ no smaller than the certificate's) exceeds the claim."""
    rule, found = "epsilon-contradicted", []
    claimed_eps, claimed_delta = evidence.claimed_epsilon, evidence.claimed_delta
    for bound in (evidence.report.get("empirical_privacy") or {}).get("bounds") or []:
        lb, cap, b_delta = _num(bound.get("epsilon_lb")), _num(bound.get("cap")), _num(bound.get("delta"))
        source = bound.get("source", "audit")
        if lb is None:
            continue
        if claimed_eps is None:
            found.append(_note(rule, f"{source}: epsilon lower bound {_fmt(lb)} has no claimed epsilon to "
                                     "compare with"))
            continue
        if b_delta is not None and claimed_delta is not None and b_delta < claimed_delta:
            found.append(_note(rule, f"{source}: the bound is computed at delta={b_delta:g}, below the certificate's "
                                     f"delta={claimed_delta:g}, so it cannot refute the certificate"))
            continue
        if lb > claimed_eps:
            found.append(_hit(rule, f"{source}: empirical epsilon lower bound {_fmt(lb)} exceeds the claimed "
                                    f"epsilon {_fmt(claimed_eps)}: the certificate is contradicted"))
        elif cap is not None and cap <= claimed_eps:
            found.append(_note(rule, f"{source}: this audit could show at most epsilon={_fmt(cap)} (its cap), which "
                                     f"is not above the claimed {_fmt(claimed_eps)}: it cannot refute the claim"))
    return found


def _attack_sections(evidence: Evidence) -> Iterator[tuple[str, str, Sequence[Mapping[str, Any]]]]:
    """(section, label, attacks) of every attack section the report has."""
    for section in ATTACK_SECTIONS:
        block = evidence.report.get(section)
        if isinstance(block, Mapping):
            yield section, "MIA-L" if section == "mia_l" else "MIA-U", block.get("attacks") or []


@_builtin("attack-above-reference", "FAIL")
def _attack_above_reference(evidence: Evidence, policy: Policy) -> list[Finding]:
    """FAIL: an attack's AUC is significantly above the retrained reference's plus the tolerated excess.

    The notes on what a comparison lacked (no reference, no sample sizes, no AUC interval) are listed
    here, attack by attack, for both attack rules.
    """
    rule, found = "attack-above-reference", []
    for section, label, attacks in _attack_sections(evidence):
        if attacks and not any((section, i) in evidence.comparisons for i in range(len(attacks))):
            found.append(_note(rule, f"{label}: no retrained reference, so the attacks were not compared with one"))
        for index, attack in enumerate(attacks):
            c = evidence.comparisons.get((section, index))
            if c is None:
                continue
            name = attack.get("name", str(index))
            auc, ref = float(attack["auc"]), float(attack["reference"]["auc"])
            if c["significant"]:
                excess = f" + tolerated excess {_fmt(c['tolerated_excess'])}" if c["tolerated_excess"] else ""
                p_text = format_pvalue(c["p_value_adjusted"])
                p_text = p_text if p_text.startswith("<") else f"= {p_text}"
                found.append(_hit(rule, f"{label} {name}: AUC {_fmt(auc)} is significantly above the retrained "
                                        f"reference AUC {_fmt(ref)}{excess} (Benjamini-Hochberg-adjusted one-sided "
                                        f"p {p_text} < alpha = {policy.alpha:g})"))
            elif c["p_value"] is None:
                found.append(_note(rule, f"{label} {name}: sample sizes missing, no significance test against the "
                                         "reference"))
            if c["ci_excludes_reference"] is None:
                found.append(_note(rule, f"{label} {name}: no AUC interval, so it was not compared with the "
                                         "reference AUC"))
    return found


@_builtin("auc-ci-excludes-reference", "INVESTIGATE")
def _auc_ci_excludes_reference(evidence: Evidence, policy: Policy) -> list[Finding]:
    """INVESTIGATE: an attack's AUC interval excludes the reference AUC, in either direction."""
    rule, found = "auc-ci-excludes-reference", []
    for section, label, attacks in _attack_sections(evidence):
        for index, attack in enumerate(attacks):
            c = evidence.comparisons.get((section, index))
            if c is None or not c["ci_excludes_reference"]:
                continue
            name, ref = attack.get("name", str(index)), float(attack["reference"]["auc"])
            lo, hi = attack["auc_ci"]
            side = "above" if ref < lo else "below"
            what = ("the attack does better on the released model than on the retrained one" if side == "above"
                    else "the released model looks less like a member than a retrained one would "
                         "(over-unlearning, itself detectable)")
            found.append(_hit(rule, f"{label} {name}: AUC interval [{_fmt(lo)}, {_fmt(hi)}] lies {side} the "
                                    f"retrained reference AUC {_fmt(ref)}: {what}"))
    return found


def _utility_rule(rule: str, key: str, minimum: Callable[[Policy], float]) -> RuleCheck:
    """INVESTIGATE: the released / retrained accuracy ratio ``key`` is below the policy's minimum."""

    def check(evidence: Evidence, policy: Policy) -> list[Finding]:
        ratio = _num(((evidence.report.get("utility") or {}).get("ratios") or {}).get(key))
        if ratio is None:
            return [_note(rule, f"utility: {key} not available (no retrained reference), not checked")]
        if ratio < minimum(policy):
            return [_hit(rule, f"utility: {key.replace('_', ' ')} {_fmt(ratio)} is below the policy minimum "
                               f"{_fmt(minimum(policy))}")]
        return []

    return check


register_rule("test-accuracy-ratio", "INVESTIGATE",
              _utility_rule("test-accuracy-ratio", "test_accuracy_ratio", lambda p: p.min_test_accuracy_ratio))
register_rule("retain-accuracy-ratio", "INVESTIGATE",
              _utility_rule("retain-accuracy-ratio", "retain_accuracy_ratio", lambda p: p.min_retain_accuracy_ratio))


@_builtin("uncertified", "INVESTIGATE")
def _uncertified(evidence: Evidence, policy: Policy) -> list[Finding]:
    """INVESTIGATE: the release carries no certificate (a note when the policy does not require one)."""
    status = evidence.certificate.get("status")
    if status == "certified":
        return []
    message = f"certificate: the release is {status or 'not certified'}"
    why = [str(r) for r in evidence.certificate.get("reasons") or []]
    if why:
        message += " (" + "; ".join(why[:3]) + ")"
    if policy.require_certified:
        return [_hit("uncertified", message)]
    return [_note("uncertified", message + "; the policy does not require certification")]


@_builtin("epsilon-above-policy", "INVESTIGATE")
def _epsilon_above_policy(evidence: Evidence, policy: Policy) -> list[Finding]:
    """INVESTIGATE: the certified ε is above the policy's ``max_epsilon``."""
    eps = evidence.claimed_epsilon
    if eps is None or eps <= policy.max_epsilon:
        return []
    return [_hit("epsilon-above-policy", f"certificate: epsilon {_fmt(eps)} is above the policy's "
                                         f"max_epsilon {_fmt(policy.max_epsilon)}")]


@_builtin("delta-above-policy", "INVESTIGATE")
def _delta_above_policy(evidence: Evidence, policy: Policy) -> list[Finding]:
    """INVESTIGATE: the certified δ is above the policy's ``max_delta``."""
    delta = evidence.claimed_delta
    if delta is None or delta <= policy.max_delta:
        return []
    return [_hit("delta-above-policy", f"certificate: delta {delta:g} is above the policy's "
                                       f"max_delta {policy.max_delta:g}")]


@_builtin("deletions-above-policy", "INVESTIGATE")
def _deletions_above_policy(evidence: Evidence, policy: Policy) -> list[Finding]:
    """INVESTIGATE: cumulative deletions exceed ``max_cumulative_deletions`` (the model must be retrained)."""
    deletions, limit = evidence.certificate.get("cumulative_deletions"), policy.max_cumulative_deletions
    if limit is None or not isinstance(deletions, int) or deletions <= limit:
        return []
    return [_hit("deletions-above-policy", f"certificate: {deletions} cumulative deletions exceed the policy's "
                                           f"max_cumulative_deletions {limit}: retrain")]


@_builtin("reproducible-noise", "INVESTIGATE")
def _reproducible_noise(evidence: Evidence, policy: Policy) -> list[Finding]:
    """INVESTIGATE: seeded release noise can be regenerated and subtracted (never PASS)."""
    if evidence.certificate.get("noise_source") != "seeded":
        return []
    return [_hit("reproducible-noise", "reproducible noise: not private (the release noise came from a seeded "
                 "generator; whoever has the seed can remove it)")]



def verdict(report: Mapping[str, Any], policy: Policy) -> Verdict:
    """Judge a report dict against ``policy``: run every registered rule and fold its findings.

    Runs the built-in rules of this module's docstring, in order, then any added with
    :func:`~certunlearn.report.rules.register_rule`. Triggered findings become reasons, in rule
    order; ``PASS`` findings become notes; the status is the worst triggered rule's (else PASS).

    Args:
        report: A report as built by :func:`~certunlearn.report.build.build_report` (or read from
            its JSON); only the evidence sections are read, never a recorded verdict.
        policy: The thresholds.

    Returns:
        The :class:`Verdict` (status, reasons in rule order, notes).

    Example:
        >>> report = {"certificate": {"status": "certified", "epsilon": 1.0, "delta": 1e-5},
        ...           "empirical_privacy": {"bounds": [{"source": "mia_l", "epsilon_lb": 2.5,
        ...                                             "cap": 5.0, "delta": 1e-5}]}}
        >>> v = verdict(report, Policy())
        >>> v.status, v.rules
        ('FAIL', ('epsilon-contradicted',))
    """
    if not isinstance(policy, Policy):
        raise ConfigError(f"policy must be a Policy, got {type(policy).__name__}")
    evidence = Evidence.gather(report, policy)
    reasons: list[Reason] = []
    notes: list[str] = []
    for rule in tuple(RULE_REGISTRY.values()):
        for finding in rule.findings(evidence, policy):
            if finding.status == "PASS":
                notes.append(finding.message)
            else:
                reasons.append(Reason(finding.rule, finding.status, finding.message))
    worst = max((STATUSES.index(r.status) for r in reasons), default=0)
    return Verdict(STATUSES[worst], tuple(reasons), tuple(notes))
