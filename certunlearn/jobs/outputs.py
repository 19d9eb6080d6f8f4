"""Where jobs write: output paths checked before any work, files replaced atomically.

A job checks its output location first (so a bad ``--out`` costs nothing and changes nothing: exit 2
from the CLI), then writes each file to a temporary name in the same directory, flushes it to disk
and renames it over the target, so a reader never sees half a file.

Example:
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> out = check_output_dir(os.path.join(d, "out"))
    >>> write_text_atomic(out / "a.json", "{}")
    >>> sorted(os.listdir(out))
    ['a.json']
    >>> open(os.path.join(d, "file"), "w").close()
    >>> check_output_dir(os.path.join(d, "file"))
    Traceback (most recent call last):
    ...
    certunlearn.errors.InputError: --out '...file' is a file, not a directory
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from certunlearn.errors import InputError

__all__ = ["check_output_dir", "check_output_file", "write_atomic", "write_text_atomic"]


def _writable_ancestor(path: Path, what: str) -> None:
    parent = path
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{what} {str(path)!r}: {str(parent)!r} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {str(path)!r}: {str(parent)!r} is not writable")


def check_output_dir(path: str | os.PathLike[str], *, what: str = "--out") -> Path:
    """Check that ``path`` is (or can be created as) a writable directory; nothing is created here.

    Args:
        path: The output directory.
        what: How the option is named in messages.

    Returns:
        The directory.

    Raises:
        InputError: ``path`` is a file, or it (or the directory it would be created in) is not writable.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{what} {str(out)!r} is a file, not a directory")
    _writable_ancestor(out, what)
    return out


def check_output_file(path: str | os.PathLike[str], *, what: str = "--out") -> Path:
    """Check that ``path`` can be written as a file (an existing directory there is refused).

    Raises:
        InputError: ``path`` is a directory, or its directory is not writable.
    """
    out = Path(path)
    if out.is_dir():
        raise InputError(f"{what} {str(out)!r} is a directory, not a file")
    if out.exists() and not os.access(out, os.W_OK):
        raise InputError(f"{what} {str(out)!r} is not writable")
    _writable_ancestor(out.parent, what)
    return out


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Write a file through ``write(handle)`` to a temporary name, fsync it and rename it to ``path``
    (creating its directory first): :func:`certunlearn.service.files.write_atomic`, the one atomic write.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x.bin"
        >>> write_atomic(p, lambda f: f.write(b"abc"))
        >>> p.read_bytes()
        b'abc'
    """
    from certunlearn.service.files import write_atomic as replace_atomically

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(target, write)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """:func:`write_atomic` of UTF-8 text."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
