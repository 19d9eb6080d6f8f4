"""The root ``certunlearn`` typer app (the command modules register on it). Imports no torch."""

from __future__ import annotations

from typing import Annotated

import typer

from certunlearn._version import __version__

__all__ = ["app"]

app = typer.Typer(
    name="certunlearn",
    help="Certified machine unlearning and privacy auditing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"certunlearn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Certified machine unlearning (HF-OCU) and privacy auditing."""
