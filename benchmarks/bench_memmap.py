"""Peak resident memory of a memory-mapped HF-OCU ``StatisticsStore`` of a few GB.

Phases (peak RSS = ``VmHWM`` reset before each phase through ``/proc/self/clear_refs``):

1. **write**: a store of ``--gb`` GB (rows of ``--dim`` parameters) memory-mapped at a file and
   filled block by block (``--block-rows`` rows of random values per block) the way the recorder
   does it: ``read`` → update → ``write`` → ``release`` (flush + ``MADV_DONTNEED``);
2. **recorder pass**: one more read-modify-write pass over all blocks (one recorder step);
3. **forget**: ``sum_rows`` of ``--forget-ids`` random rows (the O(m·d) deletion);
4. **forget 10%**: ``sum_rows`` of 10% of the rows (``sum_rows`` gathers the m rows before summing,
   so this phase is O(m·d) in memory); then every row read once by a single-row ``sum_rows``
   (``sum_rows`` does not drop the pages it read, so clean file pages accumulate in RSS: the
   kernel can reclaim them, but RSS grows towards the store size);
5. **reopen**: ``save`` (metadata only: the file is already in place), ``StatisticsStore.load``
   (memory-mapped, copy-on-write) and ``sum_rows`` of ``--forget-ids`` rows;
6. **HFOCU** (``--fit-gb`` > 0): an actual ``HFOCU.fit`` with ``store_path=`` (softmax regression,
   d = ``--fit-dim``, ``--fit-gb`` GB of statistics, one epoch, ``block_rows`` = ``vmap_chunk`` =
   ``--fit-block-rows``, batches of ``--fit-batch``) and one ``forget``. Its working memory is
   O((block_rows · c + |B|) · d) for a small constant c (HVP temporaries, per-sample gradients).

Peak RSS is reported as baseline (interpreter + torch, measured before the first phase) + growth.
Target: growth bounded by a few blocks (≪ store size), except phase 4 by design.

Example::

    python benchmarks/bench_memmap.py --gb 2 --dim 1000000 --block-rows 16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    emit,
    fmt_bytes,
    machine_info,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
)

from certunlearn.autodiff.functional import FunctionalModel  # noqa: E402
from certunlearn.data import clip_rows  # noqa: E402
from certunlearn.models import LogisticRegression  # noqa: E402
from certunlearn.train import SGDConfig  # noqa: E402
from certunlearn.unlearn import HFOCU  # noqa: E402
from certunlearn.unlearn.store import STORAGE_DTYPES, StatisticsStore  # noqa: E402


class Phases:
    """Collects (seconds, peak RSS, RSS after) per phase."""

    def __init__(self, store_bytes: int) -> None:
        self.store_bytes = store_bytes
        self.rows: list[dict] = []
        self.can_reset = reset_peak_rss()
        self.baseline = rss_bytes() or 0  # the interpreter, torch and the data, before any phase

    def run(self, name: str, fn, store_bytes: int | None = None):
        reset_peak_rss()
        before = rss_bytes()
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        peak = peak_rss_bytes()
        size = self.store_bytes if store_bytes is None else store_bytes
        growth = peak - self.baseline
        row = {"phase": name, "seconds": seconds, "baseline_rss": self.baseline, "rss_before": before,
               "peak_rss": peak, "peak_above_baseline": growth, "rss_after": rss_bytes(),
               "store_bytes": size, "growth_over_store": growth / size}
        self.rows.append(row)
        print(f"{name:<40s} {seconds:7.2f} s  peak RSS {fmt_bytes(peak):>10s} = baseline + "
              f"{fmt_bytes(growth):>10s} ({100 * growth / size:5.1f}% of the {fmt_bytes(size)} store); "
              f"after: {fmt_bytes(row['rss_after'])}")
        return out


def _warm_up_torch_func() -> None:
    """Run a tiny HVP and per-sample gradient once, so their one-time set-up is not counted."""
    fm = FunctionalModel(LogisticRegression(3, 2, dtype=torch.float32))
    X, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    fm.batch_hvp(fm.theta0, X, y, torch.randn(2, fm.dim), normalizer=4.0, weight_decay=0.1, chunk_size=2)
    fm.per_sample_grads(fm.theta0, X, y, weight_decay=0.1, chunk_size=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=2.0, help="store size in GB (1e9 bytes)")
    parser.add_argument("--dim", type=int, default=1_000_000, help="parameters per row d")
    parser.add_argument("--block-rows", type=int, default=16, help="rows per block (recorder's block_rows)")
    parser.add_argument("--storage-dtype", choices=sorted(STORAGE_DTYPES), default="float32")
    parser.add_argument("--forget-ids", type=int, default=8, help="rows summed by the forget phase")
    parser.add_argument("--fit-gb", type=float, default=0.12, help="statistics of the HFOCU phase (0: skip)")
    parser.add_argument("--fit-dim", type=int, default=100_000, help="d of the HFOCU phase")
    parser.add_argument("--fit-block-rows", type=int, default=4, help="block_rows (and vmap_chunk) of the fit")
    parser.add_argument("--fit-batch", type=int, default=8, help="batch size of the fit")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch_dtype, np_dtype = STORAGE_DTYPES[args.storage_dtype]
    itemsize = np.dtype(np_dtype).itemsize
    rows = max(1, int(args.gb * 1e9 // (args.dim * itemsize)))
    store_bytes = rows * args.dim * itemsize
    block_bytes = args.block_rows * args.dim * itemsize
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    _warm_up_torch_func()  # one-time allocations of torch.func (jvp decompositions) go into the baseline
    phases = Phases(store_bytes)
    print(f"store: {rows} rows x {args.dim:,} x {args.storage_dtype} = {fmt_bytes(store_bytes)}; "
          f"block {args.block_rows} rows = {fmt_bytes(block_bytes)}; baseline RSS {fmt_bytes(phases.baseline)}")
    if not phases.can_reset:
        print("warning: cannot reset the peak RSS (/proc/self/clear_refs); peaks are cumulative")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        path = directory / "statistics.bin"
        store = StatisticsStore(range(rows), args.dim, storage_dtype=args.storage_dtype, path=path)

        def write_all() -> None:
            for start, stop in store.blocks(args.block_rows):
                block = torch.randn(stop - start, args.dim, generator=gen).to(torch_dtype)
                store.write(start, stop, block)
                store.release(start, stop)

        def recorder_pass() -> None:  # what HFOCURecorder.on_step does to every block
            for start, stop in store.blocks(args.block_rows):
                block = store.read(start, stop, dtype=torch.float32, device="cpu")
                store.write(start, stop, block.mul_(0.999))
                store.release(start, stop)

        forget_rows = store.rows_of(rng.choice(rows, size=min(args.forget_ids, rows), replace=False))
        many_rows = store.rows_of(rng.choice(rows, size=max(1, rows // 10), replace=False))
        phases.run("write (block-wise)", write_all)
        phases.run("recorder pass (read/write/release)", recorder_pass)
        phases.run(f"forget: sum_rows of {len(forget_rows)} rows",
                   lambda: store.sum_rows(forget_rows, dtype=torch.float32))
        phases.run(f"forget: sum_rows of {len(many_rows)} rows (10%)",
                   lambda: store.sum_rows(many_rows, dtype=torch.float32))

        def every_row_once() -> None:  # K single-id forgets: sum_rows does not release its pages
            for row in range(rows):
                store.sum_rows(np.array([row]), dtype=torch.float32)

        phases.run(f"{rows} single-row sum_rows (no release)", every_row_once)
        store.save(directory)
        store = None  # drop the map before reopening

        def reopen() -> torch.Tensor:
            again = StatisticsStore.load(directory, mmap_mode=True)
            return again.sum_rows(forget_rows, dtype=torch.float32)

        phases.run(f"reopen (mmap) + sum_rows of {len(forget_rows)}", reopen)

    if args.fit_gb > 0:
        classes = 10
        features = (args.fit_dim - classes) // classes
        d = features * classes + classes
        fit_rows = max(2, int(args.fit_gb * 1e9 // (d * itemsize)))
        X = clip_rows(torch.randn(fit_rows, features, generator=gen), 0.999)
        y = torch.randint(0, classes, (fit_rows,), generator=gen)
        # small batches: the per-sample gradients of a step are one [|B|, d] matrix whatever block_rows is
        config = SGDConfig(epochs=1, batch_size=args.fit_batch, lr=0.5, weight_decay=0.1, seed=args.seed)
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            hf = HFOCU(LogisticRegression(features, classes, dtype=torch.float32), config,
                       feature_norm_bound=1.0, store_path=Path(tmp) / "stats.bin",
                       storage_dtype=args.storage_dtype, block_rows=args.fit_block_rows,
                       vmap_chunk=args.fit_block_rows, certificate="worst-case")  # the store alone
            fit_bytes = fit_rows * d * itemsize
            print(f"HFOCU: {fit_rows} rows, d = {d:,}, {len(X)} samples, {config.epochs} epochs of "
                  f"{-(-fit_rows // config.batch_size)} steps; statistics {fmt_bytes(fit_bytes)} "
                  f"(X itself: {fmt_bytes(X.numel() * 4)})")
            phases.run("HFOCU.fit (memmap store)", lambda: hf.fit(X, y), store_bytes=fit_bytes)
            phases.run("HFOCU.forget (1 id, noise)",
                       lambda: hf.forget([0], epsilon=1.0, delta=1e-5, generator=gen), store_bytes=fit_bytes)
            hf = None  # unmap before the directory goes

    results = {"benchmark": "memmap", "machine": machine_info("cpu"), "rows": rows, "dim": args.dim,
               "storage_dtype": args.storage_dtype, "block_rows": args.block_rows,
               "block_bytes": block_bytes, "phases": phases.rows}
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
