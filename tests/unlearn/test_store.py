"""StatisticsStore: in-memory vs memory-mapped backends, storage dtypes, id lookups, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from certunlearn.errors import ConfigError, InputError, SampleIdError
from certunlearn.unlearn.store import StatisticsStore

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
ITEMSIZE = {"float32": 4, "float64": 8, "bfloat16": 2}
PROPERTY = settings(max_examples=25, deadline=None, database=None)


def _rows(k: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(k, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _pair(
    ids: list[int], d: int, storage: str, tmp_path: Path
) -> tuple[StatisticsStore, StatisticsStore]:
    """The same rows in a memory store and in a memory-mapped store."""
    mem = StatisticsStore(ids, d, storage_dtype=storage)
    mapped = StatisticsStore(ids, d, storage_dtype=storage, path=tmp_path / f"rows-{storage}.bin")
    values = _rows(len(ids), d)
    for store in (mem, mapped):
        store.write(0, len(ids), values)
    return mem, mapped


@pytest.mark.parametrize("storage", list(DTYPES))
def test_backends_dtype_and_size(storage: str, tmp_path: Path) -> None:
    ids = [7, 3, 11, 0, 5]
    mem, mapped = _pair(ids, 6, storage, tmp_path)
    assert (mem.backend, mapped.backend) == ("memory", "memmap")
    for store in (mem, mapped):
        assert store.num_rows == 5 and store.dim == 6
        assert store.nbytes == 5 * 6 * ITEMSIZE[storage]
    assert (tmp_path / f"rows-{storage}.bin").stat().st_size == 5 * 6 * ITEMSIZE[storage]
    # values are rounded to the storage dtype, identically in both backends
    expected = _rows(5, 6).to(DTYPES[storage]).to(torch.float64)
    for store in (mem, mapped):
        assert torch.equal(store.read(0, 5, dtype=torch.float64, device="cpu"), expected)


@given(
    ids=st.lists(st.integers(0, 10_000), min_size=1, max_size=12, unique=True),
    dim=st.integers(1, 7),
    storage=st.sampled_from(list(DTYPES)),
    data=st.data(),
)
@PROPERTY
def test_memmap_sums_equal_in_memory_sums(ids, dim, storage, data, tmp_path_factory) -> None:
    mem, mapped = _pair(ids, dim, storage, tmp_path_factory.mktemp("store"))
    subset = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True))
    got_mem = mem.sum_rows(mem.rows_of(subset), dtype=torch.float64, device="cpu")
    got_map = mapped.sum_rows(mapped.rows_of(subset), dtype=torch.float64, device="cpu")
    assert torch.equal(got_mem, got_map)
    stored = _rows(len(ids), dim).to(DTYPES[storage]).to(torch.float64).numpy()
    expected = sum(stored[ids.index(u)] for u in subset)  # the row of id u is where u was listed
    np.testing.assert_allclose(got_map.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_rows_of_maps_ids_to_their_rows_and_refuses_unknown_ids() -> None:
    ids = [40, 2, 17, 9]
    store = StatisticsStore(ids, 3, storage_dtype="float64")
    store.write(0, 4, torch.arange(4, dtype=torch.float64)[:, None].expand(4, 3))
    assert store.rows_of([17, 40, 9, 2]).tolist() == [2, 0, 3, 1]
    assert store.rows_of([]).size == 0
    for bad in ([3], [41], [-1], [2, 100], [10**9]):
        with pytest.raises(SampleIdError, match="not tracked"):
            store.rows_of(bad)
    assert store.sum_rows(store.rows_of([9, 2]), dtype=torch.float64).tolist() == [4.0, 4.0, 4.0]
    where, rows = store.tracked_mask(torch.tensor([5, 9, 40, 6, 2]))
    assert where.tolist() == [1, 2, 4] and rows.tolist() == [3, 0, 1]


@pytest.mark.parametrize(
    ("args", "kw", "error"),
    [
        (([], 3), {}, SampleIdError),
        (([1, 1], 3), {}, SampleIdError),
        (([0, -2], 3), {}, SampleIdError),
        (([0, 1], 0), {}, ConfigError),
        (([0, 1], 3), {"storage_dtype": "float16"}, ConfigError),
    ],
    ids=["empty", "repeated", "negative", "zero-dim", "bad-dtype"],
)
def test_constructor_refuses_bad_arguments(args, kw, error) -> None:
    with pytest.raises(error):
        StatisticsStore(*args, **kw)


@pytest.mark.parametrize("storage", list(DTYPES))
def test_release_does_not_change_values_and_flushes_to_disk(storage: str, tmp_path: Path) -> None:
    ids = list(range(9))
    dim = 1500  # rows span several pages, so release() drops whole pages in the middle of the map
    mem, mapped = _pair(ids, dim, storage, tmp_path)
    before = mapped.read(0, 9, dtype=torch.float64, device="cpu")
    for start, stop in [(0, 2), (3, 7), (8, 9), (0, 9)]:
        mapped.release(start, stop)
        mem.release(start, stop)  # a no-op for the memory backend
        assert torch.equal(mapped.read(0, 9, dtype=torch.float64, device="cpu"), before)
        assert torch.equal(mem.read(0, 9, dtype=torch.float64, device="cpu"), before)
    raw = np.fromfile(
        tmp_path / f"rows-{storage}.bin", dtype=np.uint16 if storage == "bfloat16" else storage
    )
    on_disk = torch.from_numpy(raw.reshape(9, dim))
    if storage == "bfloat16":
        on_disk = on_disk.view(torch.bfloat16)
    assert torch.equal(on_disk.to(torch.float64), before)


def test_blocks_cover_every_row_once() -> None:
    store = StatisticsStore(range(10), 2)
    for block in (None, 1, 3, 10, 64):
        spans = list(store.blocks(block))
        covered = [r for a, b in spans for r in range(a, b)]
        assert covered == list(range(10))
        assert all(b - a <= (block or 10) for a, b in spans)
    with pytest.raises(ConfigError):
        list(store.blocks(0))


@pytest.mark.parametrize("mmap_mode", [True, False])
@pytest.mark.parametrize("backend", ["memory", "memmap"])
@pytest.mark.parametrize("storage", list(DTYPES))
def test_save_load_round_trip(storage: str, backend: str, mmap_mode: bool, tmp_path: Path) -> None:
    ids = [12, 4, 8]
    mem, mapped = _pair(ids, 5, storage, tmp_path)
    store = mem if backend == "memory" else mapped
    store.save(tmp_path / "saved")
    loaded = StatisticsStore.load(tmp_path / "saved", mmap_mode=mmap_mode)
    assert loaded.ids.tolist() == ids and loaded.dim == 5 and loaded.storage_dtype == storage
    assert loaded.backend == ("memmap" if mmap_mode else "memory")
    assert loaded.nbytes == store.nbytes
    values = store.read(0, 3, dtype=torch.float64, device="cpu")
    assert torch.equal(loaded.read(0, 3, dtype=torch.float64, device="cpu"), values)
    assert torch.equal(
        loaded.sum_rows(loaded.rows_of([8, 12]), dtype=torch.float64),
        store.sum_rows(store.rows_of([8, 12]), dtype=torch.float64),
    )
    # a loaded store is private: writing to it never changes the saved file
    loaded.write(0, 3, torch.zeros(3, 5, dtype=torch.float64))
    assert float(loaded.read(0, 3, dtype=torch.float64, device="cpu").abs().sum()) == 0.0
    reloaded = StatisticsStore.load(tmp_path / "saved")
    assert torch.equal(reloaded.read(0, 3, dtype=torch.float64, device="cpu"), values)


def test_a_memmap_store_saved_to_its_own_directory_is_flushed(tmp_path: Path) -> None:
    store = StatisticsStore([3, 1], 4, storage_dtype="float64", path=tmp_path / "statistics.bin")
    store.write(0, 2, _rows(2, 4))
    store.save(tmp_path)
    loaded = StatisticsStore.load(tmp_path, mmap_mode=False)
    assert torch.equal(loaded.read(0, 2, dtype=torch.float64, device="cpu"), _rows(2, 4))


def _corrupt(directory: Path, how: str) -> None:
    meta_path = directory / "statistics.json"
    meta = json.loads(meta_path.read_text())
    if how == "missing-directory":
        for p in directory.iterdir():
            p.unlink()
        directory.rmdir()
    elif how == "meta-missing":
        meta_path.unlink()
    elif how == "meta-not-json":
        meta_path.write_text("{")
    elif how == "wrong-schema":
        meta_path.write_text(json.dumps({**meta, "schema_version": 2}))
    elif how == "unknown-dtype":
        meta_path.write_text(json.dumps({**meta, "storage_dtype": "float16"}))
    elif how == "missing-key":
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "dim"}))
    elif how == "data-missing":
        (directory / "statistics.bin").unlink()
    elif how == "data-truncated":
        data = (directory / "statistics.bin").read_bytes()
        (directory / "statistics.bin").write_bytes(data[:-1])
    elif how == "data-too-long":
        with open(directory / "statistics.bin", "ab") as fh:
            fh.write(b"\0" * 8)
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "missing-directory",
        "meta-missing",
        "meta-not-json",
        "wrong-schema",
        "unknown-dtype",
        "missing-key",
        "data-missing",
        "data-truncated",
        "data-too-long",
    ],
)
def test_loading_a_corrupt_store_raises_input_error(how: str, tmp_path: Path) -> None:
    store = StatisticsStore([0, 1], 3, storage_dtype="float32")
    store.write(0, 2, _rows(2, 3))
    store.save(tmp_path / "s")
    _corrupt(tmp_path / "s", how)
    with pytest.raises(InputError):
        StatisticsStore.load(tmp_path / "s")


@pytest.mark.parametrize("memmap", [False, True])
def test_sum_rows_in_several_blocks_equals_a_plain_sum(tmp_path, monkeypatch, memmap) -> None:
    """Force blocks of 3 rows (bounded memory) and compare with numpy's sum over the chosen rows."""
    import certunlearn.unlearn.store as store_module

    ids, d = list(range(20)), 5
    store = StatisticsStore(ids, d, storage_dtype="float64", path=tmp_path / "rows.bin" if memmap else None)
    values = np.random.default_rng(0).normal(size=(20, d))
    store.write(0, 20, torch.from_numpy(values))
    monkeypatch.setattr(store_module, "_BLOCK_BYTES", 3 * d * 8)
    rows = np.array([1, 4, 5, 9, 11, 12, 17, 19])
    total = store.sum_rows(rows, dtype=torch.float64)
    np.testing.assert_allclose(total.numpy(), values[rows].sum(axis=0), rtol=1e-12)
