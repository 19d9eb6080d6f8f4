"""A tiny progress protocol so the library reports progress without printing.

Long loops accept ``progress: ProgressFn | None`` and call ``progress(done, total, label)``; the CLI
passes a rich progress bar, library users may pass anything (or nothing).

Example:
    >>> seen = []
    >>> report(lambda done, total, label: seen.append((done, total, label)), 1, 2, "train")
    >>> seen
    [(1, 2, 'train')]
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int, int, str], None]

__all__ = ["ProgressFn", "report"]


def report(progress: ProgressFn | None, done: int, total: int, label: str) -> None:
    """Call ``progress`` if one was given."""
    if progress is not None:
        progress(done, total, label)
