"""Shared CLI plumbing: error handling (exit codes), JSON output, progress bars, option parsing.

Exit codes: 0 ok, 1 a check failed, 2 usage or input error.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer

from certunlearn.errors import CertUnlearnError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn library input errors into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (CertUnlearnError, ValueError) as exc:
            if isinstance(exc, CertUnlearnError) and not isinstance(exc, ValueError):
                raise fail(str(exc), EXIT_CHECK_FAILED) from None
            raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def emit_json(data: Any) -> None:
    """Print ``data`` as sorted, indented JSON on stdout."""
    typer.echo(json.dumps(data, sort_keys=True, indent=2))


@contextmanager
def progress_bar(enabled: bool | None = None) -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich progress bar on stderr, yielded as a ``progress(done, total, label)`` callback.

    Disabled (yields None) when stderr is not a terminal, unless ``enabled`` forces it.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=False,
    ) as bar:

        def update(done: int, total: int, label: str) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield update


def split_names(text: str) -> tuple[str, ...]:
    """A comma-separated option as its non-empty, stripped items."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_grid(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in split_names(text))
    except ValueError:
        raise fail(f"--grid must be comma-separated integers, got {text!r}") from None



def parse_ids(ids: str | None, ids_file: Path | None) -> tuple[int, ...]:
    if (ids is None) == (ids_file is None):
        raise fail("give exactly one of --ids and --ids-file")
    text = ids if ids is not None else read_text(ids_file)  # type: ignore[arg-type]
    parts = split_names(text.replace("\n", ",").replace(" ", ","))
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise fail(f"sample ids must be integers, got {list(parts[:5])}") from None


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: cannot read ({exc})") from None


def parse_options(items: list[str] | None, flag: str) -> dict[str, object]:
    """``key=value`` pairs; values are parsed as JSON when they can be (numbers, lists, true/false)."""
    import json as _json

    out: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"{flag} takes key=value, got {item!r}")
        try:
            out[key.strip()] = _json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out



def write_or_print(result: dict, out: Path | None) -> None:
    import json as _json

    if out is None:
        emit_json(result)
        return
    from certunlearn.jobs.outputs import check_output_file, write_text_atomic

    write_text_atomic(check_output_file(out), _json.dumps(result, sort_keys=True, indent=2, default=str))
    typer.echo(f"results written to {out}", err=True)
