"""Compliance reports: results → JSON (versioned schema) → HTML / Markdown, judged against a policy.

* :mod:`certunlearn.report.build` — :func:`build_report` assembles the report dict (ids only as a
  digest, floats sanitised, verdict, limitations, glossary, ``report_digest``) from the sections
  of :mod:`~certunlearn.report.provenance`, :mod:`~certunlearn.report.utility` and
  :mod:`~certunlearn.report.privacy`.
* :mod:`certunlearn.report.entries` — the report-entry shapes audit results hand to the builder:
  :class:`AttackEntry`, :class:`AttackSection`, :class:`BoundEntry` (``report_entry()`` /
  ``report_section()`` on the audit results return them).
* :mod:`certunlearn.report.schema` — the JSON Schema shipped in ``schemas/<version>/``, a small
  validator for it, :func:`validate_report` and :func:`report_digest`.
* :mod:`certunlearn.report.policy` — :class:`Policy` (TOML, unknown keys rejected) and
  :func:`verdict` (PASS / INVESTIGATE / FAIL with explicit rules).
* :mod:`certunlearn.report.render` — :func:`render_html` (self-contained, inline SVG plots) and
  :func:`render_markdown`, both from the JSON only.

Reports are data first: render from the JSON, never the reverse. Nothing here imports torch;
jinja2 and matplotlib are imported only when rendering.

Example:
    >>> report = build_report(
    ...     request={"request_id": "r-7", "ids": [1, 2], "reported_at": "2025-01-01T00:00:00+00:00"},
    ...     lineage=None,
    ...     certificate={"method": "hfocu", "status": "certified", "sensitivity": 0.02,
    ...                  "epsilon": 1.0, "delta": 1e-5, "sigma": 0.075, "calibration": "analytic"},
    ...     utility={"released": {"test": 0.94}, "retrained": {"test": 0.95}}, policy=None)
    >>> validate_report(report)
    >>> report["verdict"]["status"]
    'PASS'
"""

from certunlearn.report.build import (
    GLOSSARY,
    LIMITATIONS,
    build_report,
    sanitise,
)
from certunlearn.report.entries import (
    AttackEntry,
    AttackSection,
    BoundEntry,
    OperatingPointEntry,
    ReferenceEntry,
    score_histogram,
    thin_roc,
)
from certunlearn.report.policy import RULES, Policy, Reason, Verdict, verdict
from certunlearn.report.render import render_html, render_markdown
from certunlearn.report.schema import (
    SCHEMA_VERSION,
    ReportValidationError,
    load_schema,
    report_digest,
    validate_report,
)

__all__ = [
    "GLOSSARY",
    "LIMITATIONS",
    "RULES",
    "SCHEMA_VERSION",
    "AttackEntry",
    "AttackSection",
    "BoundEntry",
    "OperatingPointEntry",
    "Policy",
    "Reason",
    "ReferenceEntry",
    "ReportValidationError",
    "Verdict",
    "build_report",
    "load_schema",
    "render_html",
    "render_markdown",
    "report_digest",
    "sanitise",
    "score_histogram",
    "thin_roc",
    "validate_report",
    "verdict",
]
