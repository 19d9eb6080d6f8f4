"""Entry point of the ``certunlearn`` command. Imports no torch until a command needs it.

The commands live in one module per group (:mod:`~certunlearn.cli.unlearn_commands`,
:mod:`~certunlearn.cli.audit_commands`, :mod:`~certunlearn.cli.report_commands`), registered on the
root app (:mod:`~certunlearn.cli.app`) when imported here.
"""

from __future__ import annotations

from certunlearn.cli import (  # noqa: F401  (registration, in the order of --help)
    audit_commands,
    report_commands,
    service_commands,
    unlearn_commands,
)
from certunlearn.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
