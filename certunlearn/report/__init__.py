"""Compliance reports: results → JSON (versioned schema) → HTML / Markdown, judged against a policy.

* :mod:`certunlearn.report.build` — :func:`build_report` assembles the report dict (ids only as a
  digest, floats sanitised, verdict, limitations, glossary, ``report_digest``).
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
    array_digest,
    build_report,
    config_digest,
    sanitise,
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
    "Policy",
    "Reason",
    "ReportValidationError",
    "Verdict",
    "array_digest",
    "build_report",
    "config_digest",
    "load_schema",
    "render_html",
    "render_markdown",
    "report_digest",
    "sanitise",
    "validate_report",
    "verdict",
]
