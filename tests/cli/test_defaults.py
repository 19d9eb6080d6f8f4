"""Every CLI option that sets a job spec's field has the spec's default: the spec defines it, the CLI
repeats it only because typer needs a literal (importing the specs would load torch at CLI start)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer

from certunlearn.cli.main import app
from certunlearn.jobs.capacity import CapacitySpec
from certunlearn.jobs.demo import DemoSpec
from certunlearn.jobs.forget import ForgetSpec
from certunlearn.jobs.mia_jobs import MIALJob, MIAUJob

COMMANDS = {("demo",): DemoSpec, ("capacity",): CapacitySpec, ("forget",): ForgetSpec,
            ("audit", "mia-l"): MIALJob, ("audit", "mia-u"): MIAUJob}


def _command(path: tuple[str, ...]):  # noqa: ANN202
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _as_cli(value: object) -> object:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_cli_defaults_are_the_spec_defaults(path: tuple[str, ...]) -> None:
    fields = {f.name: f for f in dataclasses.fields(COMMANDS[path])}
    compared = 0
    for param in _command(path).params:
        field = fields.get(param.name)
        if field is None or field.default is dataclasses.MISSING:
            continue  # CLI-only flags (--json, --progress) and required options
        if param.default is None and field.default is not None:
            continue  # the CLI's None means "the spec's default" (e.g. forget --out without --state)
        given = str(param.default) if isinstance(param.default, Path) else param.default
        assert given == _as_cli(field.default), (path, param.name, param.default, field.default)
        compared += 1
    assert compared >= 3, path
