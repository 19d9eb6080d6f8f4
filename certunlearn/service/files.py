"""Durable files of a state directory: atomic writes, directory fsyncs, content digests.

A file of a state directory is never rewritten in place. :func:`write_atomic` writes the new content
to a temporary name in the target's own directory (``.<name>.<random>.tmp``), flushes and fsyncs it,
renames it over the target (``os.replace``: atomic on POSIX) and fsyncs the directory, so that after a
crash at any point the target is either absent (or its old content) or complete. A leftover temporary
file is an orphan that the state's integrity check removes (:mod:`certunlearn.service.state`).

Example:
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> write_atomic(d / "a.bin", lambda handle: handle.write(b"abc"))
    >>> sorted(p.name for p in d.iterdir()), file_record(d / "a.bin")["bytes"]
    (['a.bin'], 3)
    >>> is_temporary(".a.bin.3f2a.tmp"), is_temporary("a.bin")
    (True, False)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["file_record", "fsync_dir", "fsync_file", "is_temporary", "sha256_file", "write_atomic"]

_CHUNK = 1 << 20
_TMP_SUFFIX = ".tmp"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (new, renamed or removed names) to disk.

    Example:
        >>> import tempfile
        >>> fsync_dir(tempfile.mkdtemp())
    """
    fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's content to disk (for files written by code that does not fsync, e.g. ``torch.save``).

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "x"; _ = f.write_bytes(b"1"); fsync_file(f)
    """
    fd = os.open(os.fspath(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`write_atomic` (an orphan once its writer is gone)."""
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through ``write(handle)``: temporary name, fsync, rename over ``path``, fsync the directory.

    Args:
        path: The target; its directory must exist.
        write: Writes the whole content into the binary handle it is given.

    On any error the temporary file is removed and ``path`` is unchanged.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x.txt"
        >>> write_atomic(p, lambda handle: handle.write(b"one")); write_atomic(p, lambda h: h.write(b"two"))
        >>> p.read_bytes()
        b'two'
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_TMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "e"; _ = p.write_bytes(b"")
        >>> sha256_file(p)[:16]
        'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: str | os.PathLike[str]) -> dict[str, int | str]:
    """``{"bytes": size, "sha256": digest}`` of a file: how a state's manifest identifies it."""
    return {"bytes": Path(path).stat().st_size, "sha256": sha256_file(path)}
