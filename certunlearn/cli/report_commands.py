"""``certunlearn report validate | render``: compliance reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certunlearn.cli.app import app
from certunlearn.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_USAGE,
    fail,
    handle_errors,
    read_text,
)

# --- certunlearn report: validate and render compliance reports (certunlearn.report) -------------

report_app = typer.Typer(
    name="report",
    help="Validate compliance reports (report.json) and render them as HTML / Markdown; with --state, "
         "write the report of one request from a state's ledger.",
    invoke_without_command=True,
)
app.add_typer(report_app, name="report")


@report_app.callback()
@handle_errors
def report_root(
    ctx: typer.Context,
    state: Annotated[Path | None, typer.Option(help="A state directory made by `certunlearn fit`.")] = None,
    request_id: Annotated[str | None, typer.Option(help="The request whose report to write (with --state).")] = None,
    out: Annotated[Path | None, typer.Option(help="Directory for report.json/.html/.md (default report-<request id>).")] = None,
) -> None:
    """``certunlearn report --state DIR --request-id R [--out D]``, or a subcommand."""
    if ctx.invoked_subcommand is not None:
        if state is not None or request_id is not None or out is not None:
            raise fail("--state/--request-id/--out go without a subcommand: certunlearn report --state DIR ...")
        return
    if state is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(EXIT_USAGE if request_id is not None or out is not None else 0)
    from certunlearn.cli.service_commands import report_from_state

    report_from_state(state, request_id, out)


def _load_report_json(path: Path) -> object:
    """Parse a report file ('-' = stdin): strict JSON (no NaN/Infinity, no duplicate keys), else exit 2."""
    import json as _json
    import sys as _sys

    def no_constants(token: str) -> object:
        raise ValueError(f"{token} is not valid JSON")

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    text = _sys.stdin.read() if str(path) == "-" else read_text(path)
    try:
        return _json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except ValueError as exc:
        raise fail(f"{path}: not JSON ({exc})") from None


def _load_valid_report(path: Path, code: int) -> dict:
    """The report at ``path``, validated; an invalid one exits with ``code``."""
    from certunlearn.report.schema import ReportValidationError, validate_report

    data = _load_report_json(path)
    try:
        validate_report(data)
    except ReportValidationError as exc:
        raise fail(f"{path}: invalid report: {exc}", code) from None
    return data  # type: ignore[return-value]  # validate_report: a JSON object


@report_app.command("validate")
@handle_errors
def report_validate(
    report: Annotated[Path, typer.Argument(help="The report JSON ('-' reads stdin).")],
) -> None:
    """Check a report against its versioned schema, its digest and its verdict (exit 1 if invalid)."""
    checked = _load_valid_report(report, EXIT_CHECK_FAILED)
    typer.echo(f"{report}: valid (schema_version {checked['schema_version']}, verdict "
               f"{checked['verdict']['status']}, digest {checked['report_digest']})")


@report_app.command("render")
@handle_errors
def report_render(
    report: Annotated[Path, typer.Argument(help="The report JSON ('-' reads stdin).")],
    html: Annotated[Path | None, typer.Option("--html", help="Write self-contained HTML here ('-' = stdout).")] = None,
    md: Annotated[Path | None, typer.Option("--md", help="Write Markdown here ('-' = stdout).")] = None,
) -> None:
    """Render a validated report as HTML and/or Markdown (default: both, beside REPORT.json)."""
    from certunlearn.report.render import render_html, render_markdown

    data = _load_valid_report(report, EXIT_USAGE)
    if html is None and md is None:
        if str(report) == "-":
            md = Path("-")
        else:
            html, md = report.with_suffix(".html"), report.with_suffix(".md")
    written = []
    for target, render in ((html, render_html), (md, render_markdown)):
        if target is None:
            continue
        text = render(data, validate=False)  # type: ignore[operator]
        if str(target) == "-":
            typer.echo(text, nl=False)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(str(target))
    if written:
        typer.echo(f"verdict {data['verdict']['status']}; wrote " + ", ".join(written), err=True)  # type: ignore[index]
