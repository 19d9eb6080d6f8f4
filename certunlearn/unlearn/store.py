"""Per-sample statistics store: one row a_u ∈ R^d per tracked sample id, in memory or memory-mapped.

The in-memory backend is a ``[K, d]`` tensor on any device. The memory-mapped backend is a raw file
on disk viewed as a CPU tensor; the recorder reads and writes it in row blocks and releases each block's
pages after writing (``madvise(MADV_DONTNEED)``), so resident memory stays bounded by a block even when
the store is larger than RAM. Storage dtype: float32, float64 or bfloat16 (computation always runs in
the model's dtype; bfloat16 storage rounds the approximators at every step and is an explicit
accuracy-for-memory trade).

Example:
    >>> store = StatisticsStore([5, 2, 9], dim=4)
    >>> store.write(0, 3, torch.ones(3, 4))
    >>> store.sum_rows(store.rows_of([9, 2]), dtype=torch.float64).tolist()
    [2.0, 2.0, 2.0, 2.0]
    >>> store.nbytes
    48
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from certunlearn.errors import InputError, SampleIdError
from certunlearn.validation import check_choice, check_int

__all__ = ["STORAGE_DTYPES", "STORE_SCHEMA_VERSION", "StatisticsStore"]

STORE_SCHEMA_VERSION = 1
STORAGE_DTYPES: dict[str, tuple[torch.dtype, type]] = {
    "float32": (torch.float32, np.float32),
    "float64": (torch.float64, np.float64),
    "bfloat16": (torch.bfloat16, np.uint16),  # numpy has no bfloat16: stored as raw 16-bit words
}
_DATA_FILE = "statistics.bin"
_META_FILE = "statistics.json"


_BLOCK_BYTES = 64 << 20  # sum_rows gathers, and save writes, at most this much at once


class StatisticsStore:
    """Rows a_u for a fixed set of tracked sample ids.

    Args:
        ids: Tracked sample ids (distinct, >= 0).
        dim: Number of parameters d.
        storage_dtype: ``float32``, ``float64`` or ``bfloat16``.
        device: Device of the in-memory backend (ignored for memory maps, which live on the CPU).
        path: If given, a file to memory-map (created, zero-filled) instead of holding rows in memory.
    """

    def __init__(
        self,
        ids: Iterable[int],
        dim: int,
        *,
        storage_dtype: str = "float32",
        device: torch.device | str | None = None,
        path: str | Path | None = None,
        _existing: np.memmap | None = None,
        _rows: Tensor | None = None,
    ) -> None:
        ids_arr = np.asarray(list(ids), dtype=np.int64)
        if ids_arr.size == 0:
            raise SampleIdError("a statistics store needs at least one tracked id")
        if len(np.unique(ids_arr)) != ids_arr.size or ids_arr.min() < 0:
            raise SampleIdError("tracked ids must be distinct and >= 0")
        self.ids = ids_arr
        self._order = np.argsort(ids_arr, kind="stable")
        self._sorted = ids_arr[self._order]
        self.dim = check_int("dim", dim, minimum=1)
        self.storage_dtype = check_choice("storage_dtype", storage_dtype, STORAGE_DTYPES)
        torch_dtype, np_dtype = STORAGE_DTYPES[storage_dtype]
        self.path = None if path is None else Path(path)
        self._memmap: np.memmap | None = None
        if _existing is not None:
            self._memmap = _existing
        elif self.path is not None:
            self._memmap = np.memmap(self.path, dtype=np_dtype, mode="w+", shape=(len(ids_arr), self.dim))
        if self._memmap is not None:
            data = torch.from_numpy(self._memmap)
            self._data = data.view(torch.bfloat16) if storage_dtype == "bfloat16" else data
        elif _rows is not None:
            self._data = _rows
        else:
            self._data = torch.zeros((len(ids_arr), self.dim), dtype=torch_dtype, device=device)

    @property
    def backend(self) -> str:
        """``memory`` or ``memmap``."""
        return "memory" if self._memmap is None else "memmap"

    @property
    def num_rows(self) -> int:
        """Number of tracked ids K."""
        return int(self.ids.size)

    @property
    def nbytes(self) -> int:
        """Size of the statistics in bytes (K · d · itemsize)."""
        return self.num_rows * self.dim * self._data.element_size()

    @property
    def device(self) -> torch.device:
        """Where rows live."""
        return self._data.device

    def rows_of(self, ids: Iterable[int]) -> np.ndarray:
        """Row numbers of ``ids``; raises :class:`SampleIdError` for ids that are not tracked."""
        wanted = np.asarray(list(ids), dtype=np.int64)
        pos = np.searchsorted(self._sorted, wanted)
        pos = np.minimum(pos, self._sorted.size - 1)
        missing = wanted[self._sorted[pos] != wanted] if wanted.size else wanted
        if missing.size:
            raise SampleIdError(f"ids not tracked by the statistics store: {missing[:10].tolist()}")
        return self._order[pos]

    def tracked_mask(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """For a tensor of ids, return (positions in ``ids`` that are tracked, their rows)."""
        arr = ids.detach().cpu().numpy().astype(np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, arr), self._sorted.size - 1)
        hit = self._sorted[pos] == arr
        where = np.nonzero(hit)[0]
        return torch.from_numpy(where), torch.from_numpy(self._order[pos[hit]])

    def blocks(self, block_rows: int | None) -> Iterator[tuple[int, int]]:
        """Consecutive (start, stop) row ranges of at most ``block_rows`` rows (all if None)."""
        step = self.num_rows if block_rows is None else check_int("block_rows", block_rows, minimum=1)
        for start in range(0, self.num_rows, step):
            yield start, min(start + step, self.num_rows)

    def read(self, start: int, stop: int, *, dtype: torch.dtype, device: torch.device | str) -> Tensor:
        """Rows ``start:stop`` converted to ``dtype`` on ``device`` (a copy)."""
        return self._data[start:stop].to(device=device, dtype=dtype, copy=True)

    def write(self, start: int, stop: int, values: Tensor) -> None:
        """Overwrite rows ``start:stop`` (rounding to the storage dtype)."""
        self._data[start:stop] = values.to(device=self._data.device, dtype=self._data.dtype)

    def release(self, start: int, stop: int) -> None:
        """Flush rows ``start:stop`` of a memory map to disk and drop their resident pages."""
        if self._memmap is None:
            return
        itemsize = self._data.element_size()
        begin = start * self.dim * itemsize
        begin -= begin % mmap.PAGESIZE  # flush/madvise need page-aligned offsets; our maps start at 0
        length = stop * self.dim * itemsize - begin
        raw = self._memmap._mmap  # the mmap object numpy maps the file with
        if raw is None or length <= 0:
            return
        raw.flush(begin, length)
        raw.madvise(mmap.MADV_DONTNEED, begin, length)

    def gather(self, rows: np.ndarray, *, dtype: torch.dtype, device: torch.device | str | None = None) -> Tensor:
        """Rows ``[m, d]`` (copies) in ``dtype``."""
        index = torch.as_tensor(rows, dtype=torch.int64, device=self._data.device)
        out = self._data.index_select(0, index)
        return out.to(device=device or self._data.device, dtype=dtype)

    def sum_rows(
        self, rows: np.ndarray, *, dtype: torch.dtype, device: torch.device | str | None = None
    ) -> Tensor:
        """Σ of the given rows, ``[d]`` in ``dtype`` (the O(m·d) HF-OCU deletion)."""
        target = device or self._data.device
        if len(rows) == 1:
            total = self._data[int(rows[0])].to(device=target, dtype=dtype, copy=True)
        else:  # blocks of rows: memory O(block·d), not O(m·d)
            total = torch.zeros(self.dim, dtype=dtype, device=target)
            block = max(1, _BLOCK_BYTES // (self.dim * max(self._data.element_size(), total.element_size())))
            for start in range(0, len(rows), block):
                total += self.gather(rows[start : start + block], dtype=dtype, device=target).sum(dim=0)
        if self._memmap is not None:  # drop the pages just read: resident memory stays bounded
            for row in rows:
                self.release(int(row), int(row) + 1)
        return total

    def save(self, directory: str | Path) -> Path:
        """Write the rows and their ids into ``directory`` (``statistics.bin`` + ``statistics.json``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / _DATA_FILE
        if self._memmap is not None and self.path is not None and self.path.resolve() == target.resolve():
            self._memmap.flush()
        else:
            words = self._data.detach().cpu()
            if self.storage_dtype == "bfloat16":
                words = words.view(torch.int16)
            # write a new file and rename it over the target: the target may be the file this very
            # store was loaded from and still maps (truncating a mapped file raises SIGBUS on access)
            partial = target.with_name(target.name + ".partial")
            with open(partial, "wb") as fh:
                for start, stop in self.blocks(max(1, _BLOCK_BYTES // max(1, self.dim * words.element_size()))):
                    fh.write(words[start:stop].contiguous().numpy().tobytes())
            os.replace(partial, target)
        meta = {
            "schema_version": STORE_SCHEMA_VERSION,
            "dim": self.dim,
            "storage_dtype": self.storage_dtype,
            "ids": self.ids.tolist(),
        }
        (directory / _META_FILE).write_text(json.dumps(meta))
        return directory

    def state_dict(self) -> dict[str, Any]:
        """The tracked ids (int64 tensor), the rows ``[K, d]`` in the storage dtype and its name.

        The rows are the store's own tensor (a view of the memory map for that backend), not a copy:
        save or read them, never modify them.

        Example:
            >>> store = StatisticsStore([4, 1], dim=2)
            >>> again = StatisticsStore.from_state_dict(store.state_dict())
            >>> again.ids.tolist(), again.storage_dtype, again.backend
            ([4, 1], 'float32', 'memory')
        """
        return {"ids": torch.from_numpy(self.ids.copy()), "rows": self._data, "storage_dtype": self.storage_dtype}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], *, device: torch.device | str | None = None) -> StatisticsStore:
        """An in-memory store holding a copy of :meth:`state_dict`'s rows (on ``device``, default theirs).

        Raises:
            InputError: Missing or unknown keys, an unknown storage dtype, or ids and rows that do not fit.
        """
        if not isinstance(state, Mapping) or set(state) != {"ids", "rows", "storage_dtype"}:
            raise InputError("the statistics state must be a dict with the keys 'ids', 'rows', 'storage_dtype'")
        name, ids, rows = state["storage_dtype"], state["ids"], state["rows"]
        if name not in STORAGE_DTYPES:
            raise InputError(f"unknown statistics storage dtype {name!r}: use one of {sorted(STORAGE_DTYPES)}")
        if not isinstance(ids, Tensor) or ids.ndim != 1 or ids.dtype != torch.int64:
            raise InputError("the statistics ids must be a 1-d int64 tensor")
        if (not isinstance(rows, Tensor) or rows.ndim != 2 or rows.shape[0] != ids.numel()
                or rows.dtype != STORAGE_DTYPES[name][0]):
            raise InputError(f"the statistics rows must be a [{ids.numel()}, d] tensor of dtype {name}")
        data = rows.detach().to(device=rows.device if device is None else device, copy=True)
        return cls(ids.tolist(), int(rows.shape[1]), storage_dtype=name, _rows=data)

    @classmethod
    def load(
        cls, directory: str | Path, *, mmap_mode: bool = True, device: torch.device | str | None = None
    ) -> StatisticsStore:
        """Open a saved store, memory-mapped (copy-on-write; default) or read into memory."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / _META_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{directory}: cannot read the statistics metadata ({exc})") from exc
        if meta.get("schema_version") != STORE_SCHEMA_VERSION:
            raise InputError(f"{directory}: unsupported statistics schema {meta.get('schema_version')!r}")
        try:
            ids, dim, sd = meta["ids"], int(meta["dim"]), meta["storage_dtype"]
            np_dtype = STORAGE_DTYPES[sd][1]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{directory}: malformed statistics metadata ({exc!r})") from exc
        data_path = directory / _DATA_FILE
        expected = len(ids) * dim * np.dtype(np_dtype).itemsize
        if not data_path.is_file() or data_path.stat().st_size != expected:
            raise InputError(f"{data_path}: missing or truncated (expected {expected} bytes)")
        memmap = np.memmap(data_path, dtype=np_dtype, mode="c", shape=(len(ids), dim))
        store = cls(ids, dim, storage_dtype=sd, _existing=memmap)
        if not mmap_mode:
            resident = store._data.to(device=device, copy=True)
            store._memmap = None
            store._data = resident
        return store
