r"""Results → a compliance-report dict (schema version 2), validated, with a digest for signing.

:func:`build_report` takes what the pipeline produced — the deletion request, the model's lineage,
the certificate (an :class:`~certunlearn.unlearn.base.UnlearnResult` or its ``summary()``), utility
figures, optional MIA-L / MIA-U audits and extra empirical ε bounds in the report-entry shapes of
:mod:`certunlearn.report.entries` (audit results give them through ``report_section()`` /
``report_entry()``) — and returns a plain dict that

* never holds raw data: forgotten ids appear only as a SHA-256 digest and a count, parameters and
  data only as digests, configs only as a hash, attack scores only as histograms;
* holds only finite numbers: NaN and ±inf become ``null`` and each is listed in ``sanitised``;
* carries its verdict under the given :class:`~certunlearn.report.policy.Policy`, the policy itself,
  limitations, a glossary, and ``report_digest`` (SHA-256 of the canonical JSON, see
  :func:`~certunlearn.report.schema.report_digest`);
* is validated against the shipped schema before it is returned.

The sections are built by :mod:`certunlearn.report.provenance` (request, lineage, certificate),
:mod:`certunlearn.report.utility` and :mod:`certunlearn.report.privacy` (MIA-L, MIA-U, empirical
privacy); this module assembles, judges, sanitises and digests them.

Top-level keys: ``schema_version``, ``kind``, ``request``, ``lineage``, ``certificate``,
``utility``, ``mia_l``, ``mia_u``, ``empirical_privacy``, ``policy``, ``verdict``, ``limitations``,
``glossary``, ``sanitised``, ``report_digest``.

Example:
    >>> report = build_report(
    ...     request={"request_id": "req-1", "ids": [4, 8, 15], "reported_at": "2025-01-01T00:00:00+00:00"},
    ...     lineage={"seeds": {"noise": 0}},
    ...     certificate={"method": "hfocu", "status": "certified", "certified": True, "sensitivity": 0.01,
    ...                  "epsilon": 1.0, "delta": 1e-5, "sigma": 0.037, "calibration": "analytic"},
    ...     utility={"released": {"test": 0.95, "retain": 0.97}, "retrained": {"test": 0.95, "retain": 0.97}},
    ...     policy=None)
    >>> report["verdict"]["status"], report["request"]["forget_set"]["count"]
    ('PASS', 3)
    >>> "15" in str(report["request"])  # the ids themselves are not in the report
    False
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from certunlearn.errors import ConfigError
from certunlearn.report.policy import Policy, compare_with_reference, verdict
from certunlearn.report.privacy import attack_section, empirical_section
from certunlearn.report.provenance import certificate_section, lineage_section, request_section
from certunlearn.report.schema import (
    SCHEMA_VERSION,
    ReportValidationError,
    first_error,
    load_schema,
    report_digest,
)
from certunlearn.report.utility import utility_section
from certunlearn.serialize import plain

__all__ = [
    "GLOSSARY",
    "LIMITATIONS",
    "REPORT_KIND",
    "build_report",
    "sanitise",
]

REPORT_KIND = "certunlearn.compliance_report"
"""Value of the ``kind`` field."""

LIMITATIONS: tuple[str, ...] = (
    "Only the certificate is a guarantee: it states that the released model is (epsilon, delta)-"
    "indistinguishable from retraining without the forgotten records, provided its assumptions hold.",
    "A membership-inference audit can only show non-compliance (a significant attack) or the absence of "
    "detected leakage up to the audit's power; it never proves deletion. Attack results are lower bounds "
    "on leakage: a stronger attack, more shadow models or more queries may find more.",
    "An empirical epsilon lower bound can refute a claimed epsilon only up to the audit's cap (about ln of "
    "the number of audited examples); claims above the cap cannot be tested by this audit.",
    "Intervals on the AUC are bootstrap estimates, not guarantees; the Clopper-Pearson bounds on TPR/FPR and "
    "the epsilon lower bounds hold with the stated confidence.",
    "A dishonest provider can game verification by auditing a different model than the one deployed "
    "(Zhang et al., ICML 2024, 'Verification of Machine Unlearning is Fragile'); the parameter digests "
    "tie this report to specific weights.",
    "Raw scores, ids and data are not embedded; the report holds digests, summary curves and histograms.",
    "Legal references (GDPR Art. 17, 12(3), 5(2), 35; EDPB Opinion 28/2024) are context, not legal advice.",
)
"""Standard limitations written into every report."""

GLOSSARY: Mapping[str, str] = {
    "epsilon (ε)": "Privacy loss of the certificate: a smaller epsilon means the released model is harder "
                   "to tell apart from a model retrained without the forgotten records.",
    "delta (δ)": "Small probability with which the epsilon guarantee may fail.",
    "sensitivity (Δ)": "Proven bound on the distance between the unlearned model and retraining; the noise "
                       "is calibrated to it.",
    "sigma (σ)": "Standard deviation of the Gaussian noise added to the released parameters.",
    "certified / conditional / heuristic / uncertified": "Status of the bound: certified when its assumptions "
        "are proven for this model; conditional when they are assumed; heuristic when estimated; "
        "uncertified when no bound applies.",
    "retrained reference": "A model trained without the forgotten records: what perfect unlearning looks like.",
    "MIA-L": "Membership inference on the released model: can an attacker tell forgotten records from "
             "records never used in training?",
    "MIA-U": "Membership inference against the unlearning: comparing the model before and after deletion "
             "to tell deleted records from others (Chen et al., CCS 2021).",
    "AUC": "Area under the ROC curve of an attack: 0.5 is guessing, 1.0 is perfect separation.",
    "TPR / FPR": "True-positive rate (forgotten records correctly flagged) and false-positive rate (other "
                 "records wrongly flagged).",
    "TPR@FPR=x": "Fraction of forgotten records an attack finds while flagging at most a fraction x of others.",
    "empirical epsilon lower bound": "Smallest epsilon consistent with the attack's error rates at the stated "
                                     "confidence; above the claimed epsilon it refutes the certificate.",
    "cap": "Largest epsilon lower bound the audit could have produced at its sample sizes.",
    "Clopper-Pearson": "Exact binomial confidence bound used for TPR/FPR and epsilon lower bounds.",
    "Benjamini-Hochberg": "Correction of p-values for testing several attacks at once.",
    "DegCount / DegRate": "How often / how much an MIA-U feature beats the original model alone; above 0.5 / 0 "
                          "the unlearning leaks more than the original model.",
}
"""Plain-language glossary written into every report."""


def sanitise(value: Any, *, path: str = "$") -> tuple[Any, list[dict[str, str]]]:
    """Replace NaN and ±inf by ``None`` and say where: ``(clean copy, [{"path", "value"}])``.

    Args:
        value: A JSON-like value (numpy arrays and scalars are converted to Python first).
        path: JSON path of ``value`` (for the notes).

    Returns:
        The cleaned copy and one note per replaced number.

    Example:
        >>> sanitise({"a": [1.0, float("nan")], "b": float("inf")})
        ({'a': [1.0, None], 'b': None}, [{'path': '$.a[1]', 'value': 'nan'}, {'path': '$.b', 'value': 'inf'}])
    """
    notes: list[dict[str, str]] = []

    def walk(item: Any, where: str) -> Any:
        if isinstance(item, Mapping):
            return {k: walk(v, f"{where}.{k}" if str(k).isidentifier() else f"{where}[{json.dumps(str(k))}]")
                    for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(item)]
        if isinstance(item, float) and not math.isfinite(item):
            notes.append({"path": where, "value": repr(item)})
            return None
        return item

    return walk(plain(value), path), notes


def _dynamic_limitations(report: Mapping[str, Any]) -> list[str]:
    out = []
    if not (report["mia_l"] or report["mia_u"]):
        out.append("No membership-inference audit was run for this report: only the certificate speaks.")
    claimed, cap = report["empirical_privacy"]["claimed_epsilon"], report["empirical_privacy"]["max_cap"]
    if claimed is not None and cap is not None and cap <= claimed:
        out.append(f"The audit's cap (epsilon {cap:.3g}) does not exceed the claimed epsilon {claimed:.3g}: "
                   "this audit could not have refuted the certificate.")
    if report["utility"]["models"]["retrained"] is None:
        out.append("No retrained reference model: utility ratios and attack comparisons are not available.")
    if report["certificate"]["status"] != "certified":
        out.append("The release is not certified: without a certificate there is no guarantee, only the audit.")
    return out


# ---------------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------------


def build_report(
    *,
    request: Mapping[str, Any],
    lineage: Mapping[str, Any] | None,
    certificate: Any,
    utility: Mapping[str, Any],
    mia_l: Any = None,
    mia_u: Any = None,
    empirical: Any = None,
    policy: Policy | Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Assemble, judge, sanitise, digest and validate a compliance report.

    Args:
        request: ``request_id`` (str) and either ``ids`` (digested here, never stored) or
            ``ids_sha256`` + ``count``; optional ``subject_id`` (pseudonymous), ``ground`` (the Art. 17
            ground), ``scope``, ``records_sha256`` (digest of the forget set's record manifest) and
            timestamps ``received_at`` / ``executed_at`` / ``reported_at`` (default: now, UTC).
        lineage: Optional ``original_params`` / ``released_params`` (hex digest, tensor, array, or a
            state dict — hashed here), ``data_manifest`` (digest or arrays), ``config`` (mapping,
            hashed), ``seeds`` ({name: int}), ``device``, ``commit``, ``model``, ``dataset``,
            ``retrain_reference`` (bool), ``versions`` (extra package versions). certunlearn, torch,
            opacus, numpy and Python versions are filled in (torch is not imported).
        certificate: An :class:`~certunlearn.unlearn.base.UnlearnResult` or a mapping like its
            ``summary()``; optional ``adjacency``, ``accountant``, ``noise_seed``, ``composition``,
            ``ledger`` (a :class:`~certunlearn.certify.ledger.Ledger`, its state dict, or events).
            Raw ``request_ids`` are counted and dropped.
        utility: ``released`` (required), ``retrained``, ``original`` (or ``trained``) and
            ``noiseless`` (or ``unlearned_noiseless``) — each ``{retain, test, forget}`` accuracies
            (or ``*_accuracy``) and optional ``*_loss`` — and ``privacy_utility_curve``: a list of
            ``{sigma, epsilon, test_accuracy, retain_accuracy}`` from a σ sweep. ``run_demo``'s
            ``accuracy`` dict fits as is.
        mia_l: The MIA-L audit of the released model, or None (not run): an object with
            ``report_section()`` (e.g. ``run_mia_l(...).report_section(reference=retrained_result)``
            for the same attacks run on the retrained model beside it), an
            :class:`~certunlearn.report.entries.AttackSection`, or a mapping of exactly its keys
            (``attacks``: a list of :class:`~certunlearn.report.entries.AttackEntry` objects,
            objects with ``report_entry()`` or mappings of exactly the entry's keys).
        mia_u: The MIA-U audit, in the same forms (e.g. ``run_mia_u(...)`` itself).
        empirical: Extra ε lower bounds: one (an object with ``report_entry()`` such as an
            ``EpsilonBound``, a :class:`~certunlearn.report.entries.BoundEntry` or a mapping of its
            keys), a list of them, or ``{"bounds": [...], "forgetting_quality": F}``. The MIA
            sections' headline bounds are added automatically.
        policy: A :class:`Policy`, a mapping of policy keys, or None (the documented defaults).

    Returns:
        The report dict (valid against the schema, with ``report_digest``).

    Raises:
        ConfigError: A malformed input (the message names the key).

    Example:
        >>> report = build_report(request={"request_id": "r", "ids": [1], "reported_at": "2025-01-01"},
        ...     lineage=None, certificate={"method": "retrain", "status": "uncertified"},
        ...     utility={"released": {"test": 0.9}}, policy={"require_certified": True})
        >>> report["verdict"]["status"], [r["rule"] for r in report["verdict"]["reasons"]]
        ('INVESTIGATE', ['uncertified'])
    """
    if policy is None:
        policy = Policy()
    elif isinstance(policy, Mapping):
        policy = Policy.from_mapping(policy)
    elif not isinstance(policy, Policy):
        raise ConfigError(f"policy must be a Policy, a mapping or None, got {type(policy).__name__}")
    request_part = request_section(request)
    certificate_part = certificate_section(certificate, request_part["forget_set"]["count"])
    sections = {"mia_l": attack_section("mia_l", mia_l), "mia_u": attack_section("mia_u", mia_u)}
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": REPORT_KIND,
        "request": request_part,
        "lineage": lineage_section(lineage),
        "certificate": certificate_part,
        "utility": utility_section(utility),
        **sections,
        "empirical_privacy": empirical_section(empirical, sections, certificate_part),
        "policy": policy.as_dict(),
    }
    body, sanitised = sanitise(body)
    for (section, index), comparison in compare_with_reference(body, policy).items():
        body[section]["attacks"][index]["comparison"] = comparison
    body, more = sanitise(body)
    body["verdict"] = verdict(body, policy).as_dict()
    body["limitations"] = [*LIMITATIONS, *_dynamic_limitations(body)]
    body["glossary"] = dict(GLOSSARY)
    body["sanitised"] = sanitised + more
    body["report_digest"] = report_digest(body)
    problem = first_error(body, load_schema(SCHEMA_VERSION))
    if problem is not None:  # a bug in this module, not in the caller's input
        raise ReportValidationError(f"built report does not match its schema: {problem}")
    return body
