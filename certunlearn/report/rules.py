"""The verdict's rule registry: what a rule is, what it returns, and how rules are added.

A rule is a name, the status it triggers (``INVESTIGATE`` or ``FAIL``) and a check: a function of
the report's :class:`~certunlearn.report.policy.Evidence` and the
:class:`~certunlearn.report.policy.Policy` that returns :class:`Finding` objects. A finding at the
rule's status triggers it (a reason of the verdict); a ``PASS`` finding is a note (a fact that
limits what the audit can show). :func:`~certunlearn.report.policy.verdict` runs every registered
rule in registration order and folds the findings; the built-in rules are registered by
:mod:`certunlearn.report.policy` (docs/report.md, "Verdict rules"), custom ones with
:func:`register_rule`.

Example:
    >>> from certunlearn.report.policy import Policy, verdict
    >>> def no_lineage(evidence, policy):
    ...     if evidence.report.get("lineage") is None:
    ...         return [Finding("lineage-missing", "INVESTIGATE", "lineage: no model hashes recorded")]
    ...     return []
    >>> _ = register_rule("lineage-missing", "INVESTIGATE", no_lineage)
    >>> report = {"certificate": {"status": "certified", "epsilon": 1.0, "delta": 1e-5}}
    >>> v = verdict(report, Policy())
    >>> v.status, v.rules
    ('INVESTIGATE', ('lineage-missing',))
    >>> _ = unregister_rule("lineage-missing")
    >>> verdict(report, Policy()).status
    'PASS'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from certunlearn.errors import ConfigError

if TYPE_CHECKING:
    from certunlearn.report.policy import Evidence, Policy

__all__ = [
    "RULES",
    "RULE_REGISTRY",
    "STATUSES",
    "TRIGGER_STATUSES",
    "Finding",
    "Rule",
    "RuleCheck",
    "register_rule",
    "unregister_rule",
]

STATUSES = ("PASS", "INVESTIGATE", "FAIL")
"""Verdict statuses, mildest first."""

TRIGGER_STATUSES = ("INVESTIGATE", "FAIL")
"""The statuses a rule can trigger."""


@dataclass(frozen=True, slots=True)
class Finding:
    """What one rule found: its id, a status and a sentence.

    ``PASS`` findings are notes; ``INVESTIGATE`` and ``FAIL`` findings trigger the rule and become
    the verdict's :class:`~certunlearn.report.policy.Reason` objects.

    Example:
        >>> Finding("uncertified", "PASS", "the policy does not require certification").status
        'PASS'
        >>> Finding("uncertified", "OK", "x")
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: status must be one of ['PASS', 'INVESTIGATE', 'FAIL'], got 'OK'
    """

    rule: str
    status: str
    message: str

    def __post_init__(self) -> None:
        if not isinstance(self.rule, str) or not self.rule:
            raise ConfigError(f"rule must be a non-empty string, got {self.rule!r}")
        if self.status not in STATUSES:
            raise ConfigError(f"status must be one of {list(STATUSES)}, got {self.status!r}")
        if not isinstance(self.message, str):
            raise ConfigError(f"message must be a string, got {type(self.message).__name__}")


RuleCheck = Callable[["Evidence", "Policy"], Iterable[Finding]]
"""A rule's check: reads the evidence under a policy, returns its findings (possibly none)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered rule: its id, the status it triggers, and its check.

    Example:
        >>> RULE_REGISTRY["uncertified"].status
        'INVESTIGATE'
        >>> Rule("Bad Name", "FAIL", lambda evidence, policy: [])
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: rule name must be lower-case words joined by '-', got 'Bad Name'
    """

    name: str
    status: str
    check: RuleCheck

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", self.name) is None:
            raise ConfigError(f"rule name must be lower-case words joined by '-', got {self.name!r}")
        if self.status not in TRIGGER_STATUSES:
            raise ConfigError(f"a rule triggers one of {list(TRIGGER_STATUSES)}, got {self.status!r}")
        if not callable(self.check):
            raise ConfigError(f"check of rule {self.name!r} must be callable, got {type(self.check).__name__}")

    def findings(self, evidence: Evidence, policy: Policy) -> list[Finding]:
        """Run the check and verify that it speaks only for this rule, at PASS or its own status.

        Example:
            >>> from certunlearn.report.policy import Evidence, Policy
            >>> RULE_REGISTRY["uncertified"].findings(Evidence.gather({}, Policy()), Policy())[0].message
            'certificate: the release is not certified'
        """
        found = list(self.check(evidence, policy))
        for finding in found:
            if not isinstance(finding, Finding):
                raise ConfigError(f"rule {self.name!r} must return Finding objects, got {type(finding).__name__}")
            if finding.rule != self.name or finding.status not in ("PASS", self.status):
                raise ConfigError(f"rule {self.name!r} returned a finding for rule {finding.rule!r} with status "
                                  f"{finding.status!r} (allowed: PASS or {self.status!r})")
        return found


_REGISTRY: dict[str, Rule] = {}
_STATUS_OF: dict[str, str] = {}

RULE_REGISTRY: Mapping[str, Rule] = MappingProxyType(_REGISTRY)
"""Rule id → :class:`Rule`, in the order the verdict lists reasons (read-only; see :func:`register_rule`)."""

RULES: Mapping[str, str] = MappingProxyType(_STATUS_OF)
"""Rule id → the status it triggers (read-only view of the registry)."""


def register_rule(name: str, status: str, check: RuleCheck, *, force: bool = False) -> Rule:
    """Add a rule to the verdict (after those registered before), or replace one in place with ``force``.

    A custom rule is judged like the built-in ones, but it is not part of
    :data:`~certunlearn.report.policy.RULES_VERSION`: a report whose verdict it changed validates
    only where the same rule is registered.

    Args:
        name: The rule id (lower-case words joined by ``-``).
        status: The status it triggers, ``INVESTIGATE`` or ``FAIL``.
        check: ``check(evidence, policy)`` → findings of this rule (``PASS`` ones are notes).
        force: Replace a registered rule of the same name instead of raising.

    Returns:
        The registered :class:`Rule`.

    Raises:
        ConfigError: The name is taken (and not ``force``), or the rule is malformed.

    Example:
        >>> register_rule("uncertified", "FAIL", lambda evidence, policy: [])
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: rule 'uncertified' is already registered (use force=True to replace it)
    """
    rule = Rule(name, status, check)
    if name in _REGISTRY and not force:
        raise ConfigError(f"rule {name!r} is already registered (use force=True to replace it)")
    _REGISTRY[name] = rule
    _STATUS_OF[name] = status
    return rule


def unregister_rule(name: str) -> Rule:
    """Remove a registered rule (e.g. a custom one after use) and return it.

    Args:
        name: The rule id.

    Returns:
        The removed :class:`Rule`.

    Raises:
        ConfigError: No rule of that name; the message lists the registered ones.

    Example:
        >>> unregister_rule("no-such-rule")
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: no rule 'no-such-rule'; registered: attack-above-reference, auc-ci-excludes-reference, deletions-above-policy, delta-above-policy, epsilon-above-policy, epsilon-contradicted, reproducible-noise, retain-accuracy-ratio, test-accuracy-ratio, uncertified
    """
    if name not in _REGISTRY:
        raise ConfigError(f"no rule {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    del _STATUS_OF[name]
    return _REGISTRY.pop(name)
