"""Render a report (the validated JSON dict) as self-contained HTML or as Markdown.

* :func:`render_html` — one HTML file: jinja2 with **autoescaping on**, inline CSS, no scripts, no
  external fonts, images or style sheets; plots are inline SVG drawn with matplotlib's object API
  (``Figure`` + the SVG canvas, never pyplot, so no GUI backend and no global state), text kept as
  text (``svg.fonttype = "none"``, escaped by matplotlib), comments, metadata and namespace URLs
  stripped, element ids prefixed per figure. Plots: the log-log ROC of each MIA-L / MIA-U attack on
  the released model with the retrained model's curve beside it, score histograms, the
  privacy–utility curve (accuracy vs ε over a σ sweep, when the report has one) and the empirical
  ε lower bounds against the claimed ε and the audit's cap.
* :func:`render_markdown` — the same sections as Markdown tables; every value passes through
  :func:`markdown_escape` (HTML-escaped and Markdown-escaped), so user strings cannot inject markup.

Both validate the report first (:func:`~certunlearn.report.schema.validate_report`).

Example:
    >>> from certunlearn.audit.report_example import example_report
    >>> html = render_html(example_report())
    >>> html.startswith("<!DOCTYPE html>") and "<script" not in html
    True
"""

from __future__ import annotations

import html as _html
import io
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from certunlearn.report.policy import format_pvalue
from certunlearn.report.schema import validate_report

__all__ = ["markdown_escape", "render_html", "render_markdown"]

VERDICT_COLOURS = {"PASS": "#1a7f37", "INVESTIGATE": "#9a6700", "FAIL": "#cf222e"}
"""Badge colour of each status (also what the browser test looks for)."""

_PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#57606a")
_LOG_FLOOR = 1e-5
_MAX_PLOTTED_ATTACKS = 6
_MAX_HISTOGRAMS = 3


# ---------------------------------------------------------------------------------------------
# Formatting helpers (shared by both templates)
# ---------------------------------------------------------------------------------------------


def _num(value: object, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _interval(value: object, digits: int = 3) -> str:
    if not isinstance(value, Sequence) or len(value) != 2:
        return "—"
    return f"[{_num(value[0], digits)}, {_num(value[1], digits)}]"


def _pvalue(value: object) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    return format_pvalue(value)


def markdown_escape(value: object) -> str:
    """Make any value safe inside Markdown text and table cells.

    HTML special characters become entities (Markdown passes raw HTML through), Markdown
    punctuation that could start links, emphasis, code or table cells is backslash-escaped, and line
    breaks become spaces.

    Args:
        value: Any value (None becomes an empty string).

    Returns:
        The escaped text.

    Example:
        >>> markdown_escape("<script>alert(1)</script> | [x](http://e) *a*")
        '&lt;script&gt;alert(1)&lt;/script&gt; \\\\| \\\\[x\\\\](http://e) \\\\*a\\\\*'
    """
    text = "" if value is None else str(value)
    text = _html.escape(text, quote=True)
    text = re.sub(r"([\\`*_{}\[\]|!#~])", r"\\\1", text)
    return re.sub(r"[\r\n]+", " ", text)


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, SVG strings)
# ---------------------------------------------------------------------------------------------


def _label(text: object, limit: int = 40) -> str:
    out = str(text)
    out = out if len(out) <= limit else out[: limit - 1] + "…"
    return out.replace("$", r"\$")  # no mathtext from user strings


def _clean_svg(svg: str, prefix: str) -> str:
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    svg = re.sub(r'<svg\s+width="[^"]*"\s+height="[^"]*"', '<svg class="figure"', svg, count=1)
    return svg.strip()


def _figure_to_svg(fig: Any, prefix: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _clean_svg(buffer.getvalue(), prefix)


def _rc() -> dict[str, Any]:
    return {"svg.fonttype": "none", "svg.hashsalt": "certunlearn-report", "font.size": 9,
            "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _roc_figure(section: Mapping[str, Any], prefix: str, title: str) -> str | None:
    attacks = [a for a in section["attacks"] if a.get("roc")][:_MAX_PLOTTED_ATTACKS]
    if not attacks:
        return None
    import numpy as np

    fig = _new_figure(6.0, 4.2)
    ax = fig.add_subplot()
    grid = np.logspace(math.log10(_LOG_FLOOR), 0, 50)
    ax.plot(grid, grid, color="#8c959f", linestyle=":", linewidth=1, label="chance")
    for colour, attack in zip(_PALETTE, attacks, strict=False):
        roc = attack["roc"]
        ax.step(np.maximum(roc["fpr"], _LOG_FLOOR), np.maximum(roc["tpr"], _LOG_FLOOR), where="post",
                color=colour, linewidth=1.6, label=f"{_label(attack['name'])} (released, AUC {_num(attack['auc'], 3)})")
        reference = attack.get("reference") or {}
        if reference.get("roc"):
            ref = reference["roc"]
            ax.step(np.maximum(ref["fpr"], _LOG_FLOOR), np.maximum(ref["tpr"], _LOG_FLOOR), where="post",
                    color=colour, linewidth=1.2, linestyle="--",
                    label=f"{_label(attack['name'])} (retrained, AUC {_num(reference.get('auc'), 3)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(_LOG_FLOOR, 1.0)
    ax.set_ylim(_LOG_FLOOR, 1.05)
    ax.set_xlabel("false-positive rate (log)")
    ax.set_ylabel("true-positive rate (log)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    return _figure_to_svg(fig, prefix)


def _histogram_figure(section: Mapping[str, Any], prefix: str) -> str | None:
    attacks = [a for a in section["attacks"] if a.get("score_histogram")][:_MAX_HISTOGRAMS]
    if not attacks:
        return None
    import numpy as np

    with_ref = any((a.get("reference") or {}).get("score_histogram") for a in attacks)
    columns = 2 if with_ref else 1
    fig = _new_figure(3.4 * columns, 2.3 * len(attacks))
    axes = fig.subplots(len(attacks), columns, squeeze=False)
    for row, attack in enumerate(attacks):
        panels = [("released", attack["score_histogram"])]
        if with_ref:
            panels.append(("retrained", (attack.get("reference") or {}).get("score_histogram")))
        for col, (which, hist) in enumerate(panels):
            ax = axes[row][col]
            ax.set_title(f"{_label(attack['name'], 30)} — {which}", fontsize=8)
            if not hist:
                ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            edges = np.asarray(hist["edges"], dtype=float)
            width = np.diff(edges)
            for counts, colour, name in ((hist["non_members"], "#57606a", "non-members"),
                                         (hist["members"], "#cf222e", "forget set / members")):
                counts = np.asarray(counts, dtype=float)
                density = counts / max(counts.sum(), 1.0) / np.where(width > 0, width, 1.0)
                ax.stairs(density, edges, fill=True, alpha=0.35, color=colour, label=name)
                ax.stairs(density, edges, color=colour, linewidth=1.0)
            ax.set_xlabel("membership score (higher = member)", fontsize=7)
            ax.set_ylabel("density", fontsize=7)
            if row == 0 and col == 0:
                ax.legend(fontsize=6)
    return _figure_to_svg(fig, prefix)


def _privacy_utility_figure(report: Mapping[str, Any], prefix: str) -> str | None:
    curve = report["utility"]["privacy_utility_curve"] or []
    points = [p for p in curve if p["epsilon"] is not None and p["test_accuracy"] is not None and p["epsilon"] > 0]
    if not points:
        return None
    points.sort(key=lambda p: p["epsilon"])
    fig = _new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    ax.plot([p["epsilon"] for p in points], [p["test_accuracy"] for p in points], marker="o", markersize=3,
            color="#0969da", label="released model (σ sweep)")
    retrained = report["utility"]["models"]["retrained"]
    if retrained and retrained["test_accuracy"] is not None:
        ax.axhline(retrained["test_accuracy"], color="#1a7f37", linestyle="--", linewidth=1, label="retrained")
    cert, released = report["certificate"], report["utility"]["models"]["released"]
    if cert["epsilon"] and released["test_accuracy"] is not None:
        ax.scatter([cert["epsilon"]], [released["test_accuracy"]], color="#cf222e", zorder=3, s=30,
                   label=f"this release (ε = {_num(cert['epsilon'], 3)})")
    ax.set_xscale("log")
    ax.set_xlabel("ε (log)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Privacy–utility trade-off")
    ax.legend(fontsize=7)
    return _figure_to_svg(fig, prefix)


def _epsilon_figure(report: Mapping[str, Any], prefix: str) -> str | None:
    empirical = report["empirical_privacy"]
    bounds = [b for b in empirical["bounds"] if b["epsilon_lb"] is not None]
    claimed = empirical["claimed_epsilon"]
    if not bounds and claimed is None:
        return None
    fig = _new_figure(6.0, 1.2 + 0.5 * max(len(bounds), 1))
    ax = fig.add_subplot()
    names = [_label(b["source"], 24) for b in bounds]
    positions = list(range(len(bounds)))
    caps = [b["cap"] if b["cap"] is not None else 0.0 for b in bounds]
    ax.barh(positions, caps, color="none", edgecolor="#8c959f", hatch="//", label="audit cap (max provable)")
    ax.barh(positions, [b["epsilon_lb"] for b in bounds], color="#0969da", height=0.5, label="empirical ε lower bound")
    if claimed is not None:
        ax.axvline(claimed, color="#cf222e", linewidth=2, label=f"claimed ε = {_num(claimed, 3)}")
    ax.set_yticks(positions, names)
    ax.set_xlabel("ε")
    ax.set_title("Empirical ε lower bound vs claimed ε")
    fig.legend(fontsize=7, loc="outside lower center", ncols=3)
    ax.set_xlim(left=0)
    return _figure_to_svg(fig, prefix)


def _figures(report: Mapping[str, Any]) -> dict[str, str | None]:
    import matplotlib

    with matplotlib.rc_context(_rc()):
        return {
            "roc_mia_l": _roc_figure(report["mia_l"], "fig-roc-l", "MIA-L: forget set vs held-out (log-log ROC)")
            if report["mia_l"] else None,
            "hist_mia_l": _histogram_figure(report["mia_l"], "fig-hist-l") if report["mia_l"] else None,
            "roc_mia_u": _roc_figure(report["mia_u"], "fig-roc-u", "MIA-U: deleted vs negatives (log-log ROC)")
            if report["mia_u"] else None,
            "hist_mia_u": _histogram_figure(report["mia_u"], "fig-hist-u") if report["mia_u"] else None,
            "privacy_utility": _privacy_utility_figure(report, "fig-pu"),
            "epsilon": _epsilon_figure(report, "fig-eps"),
        }


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _environment(kind: str) -> Any:
    import jinja2

    common = {"loader": jinja2.PackageLoader("certunlearn.report", "templates"), "trim_blocks": True,
              "lstrip_blocks": True, "undefined": jinja2.StrictUndefined, "keep_trailing_newline": True}
    if kind == "html":
        env = jinja2.Environment(autoescape=True, **common)
    else:
        env = jinja2.Environment(autoescape=False, finalize=markdown_escape, **common)
    env.filters.update(num=_num, interval=_interval, pvalue=_pvalue)
    return env


def _context(report: Mapping[str, Any]) -> dict[str, Any]:
    verdict = report["verdict"]
    return {"r": report, "status": verdict["status"], "colour": VERDICT_COLOURS[verdict["status"]],
            "sections": [(key, report[key]) for key in ("mia_l", "mia_u") if report[key]]}


def render_html(report: Mapping[str, Any], *, validate: bool = True) -> str:
    """The report as one self-contained HTML page (no network requests, no scripts).

    Args:
        report: A report dict (as built, or parsed from its JSON).
        validate: Validate it first (schema, digest, verdict); leave on unless it was just checked.

    Returns:
        The HTML text.

    Raises:
        ReportValidationError: The report is not valid.

    Example:
        >>> from certunlearn.audit.report_example import example_report
        >>> "PASS" in render_html(example_report())
        True
    """
    if validate:
        validate_report(report)
    from markupsafe import Markup

    figures = {key: (None if svg is None else Markup(svg)) for key, svg in _figures(report).items()}
    return _environment("html").get_template("report.html.j2").render(figures=figures, **_context(report))


def render_markdown(report: Mapping[str, Any], *, validate: bool = True) -> str:
    """The report as Markdown (tables; no figures), every value escaped.

    Args:
        report: A report dict.
        validate: Validate it first.

    Returns:
        The Markdown text.

    Example:
        >>> from certunlearn.audit.report_example import example_report
        >>> render_markdown(example_report()).splitlines()[0]
        '# Unlearning compliance report: request demo-request-001'
    """
    if validate:
        validate_report(report)
    return _environment("markdown").get_template("report.md.j2").render(**_context(report))
