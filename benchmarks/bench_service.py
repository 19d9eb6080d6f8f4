"""Deletion-request latency of the durable service: library and CLI, database commit and fsync included.

For each d, a state is created with :func:`certunlearn.jobs.fit.run_fit` (softmax regression with
``d = 10·features + 10`` parameters on synthetic rows clipped to norm 1, every row tracked), then
single-id requests are timed:

* **library** — ``DeletionService.forget(request_id, [i], ...)`` in one open service: noise draw
  (OS CSPRNG), release file written to a temporary name + fsync + rename + directory fsync, one
  SQLite transaction (synchronous FULL). p50 / p99 over ``--requests`` requests; then the same with
  the noise drawn ahead by ``DeletionService.prefetch_noise()`` outside the clock (a server's idle
  time).
* **CLI** — ``certunlearn forget --state DIR --request-id R --ids i`` as a subprocess: process
  start, imports, opening the state (integrity check, replay of the ledger) and the request.
* **burst** (first d only) — ``--burst`` single-id requests back to back through the library:
  requests per second.

Target (issue 15): library p50 ≤ 10 ms at d = 1e6 on CPU, fsync included.

Example::

    python benchmarks/bench_service.py --dims 650,1000000 --requests 30 --cli 5 --burst 1000
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine_info, percentiles  # noqa: E402

from certunlearn.jobs.fit import FitSpec, run_fit  # noqa: E402

CLASSES = 10


def _state(root: Path, d: int, rows: int, seed: int) -> Path:
    """A state at dimension d; rows = tracked ids (all rows), float32 model."""
    if d == 650:  # the embedded digits problem: 64 features x 10 classes + 10
        spec = FitSpec(data="digits", epochs=5, model_args={"dtype": "float32"})
    else:
        if (d - CLASSES) % CLASSES:
            raise SystemExit(f"d must be 10·features + 10, got {d}")
        features = (d - CLASSES) // CLASSES
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(rows, features)).astype(np.float32)
        y = rng.integers(0, CLASSES, size=rows)
        y[:CLASSES] = np.arange(CLASSES)  # every class present
        path = root / f"rows-{d}.npz"
        np.savez(path, X=X, y=y)
        # the worst-case certificate needs no data pass per request; lambda = 10 keeps its fp32 rounding term
        # bounded at d = 1e6 (as benchmarks/bench_delete.py)
        spec = FitSpec(data=str(path), epochs=2, batch_size=max(1, rows // 2), lr=0.09, weight_decay=10.0,
                       test_fraction=0.0, certificate="worst-case", model_args={"dtype": "float32"})
    state = root / f"state-{d}"
    run_fit(spec, state).close()
    return state


def _library(state: Path, ids: list[int], args: argparse.Namespace, tag: str, *, prefetch: bool = False) -> list[float]:
    from certunlearn.service import DeletionService

    times = []
    with DeletionService.open(state) as service:
        for k, i in enumerate(ids):
            if prefetch:
                service.prefetch_noise()  # idle time of a server: outside the clock
            started = time.perf_counter()
            outcome = service.forget(f"{tag}-{k}", [i], epsilon=args.epsilon, delta=args.delta)
            times.append(time.perf_counter() - started)
            assert outcome.status == "released"
    return times


def _cli(state: Path, ids: list[int], args: argparse.Namespace) -> list[float]:
    times = []
    for k, i in enumerate(ids):
        cmd = [sys.executable, "-m", "certunlearn.cli.main", "forget", "--state", str(state),
               "--request-id", f"cli-{k}", "--ids", str(i), "--epsilon", str(args.epsilon), "--delta", str(args.delta)]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="650,1000000")
    parser.add_argument("--rows", type=int, default=48, help="training rows of the synthetic problems (all tracked)")
    parser.add_argument("--requests", type=int, default=30, help="timed library requests per d")
    parser.add_argument("--cli", type=int, default=5, help="timed CLI requests per d")
    parser.add_argument("--burst", type=int, default=1000, help="single-id requests of the burst (first d)")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out = {"machine": machine_info("cpu"), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n, d in enumerate(int(x) for x in args.dims.split(",")):
            started = time.perf_counter()
            state = _state(root, d, args.rows, args.seed)
            fit_s = time.perf_counter() - started
            from certunlearn.service import DeletionService

            with DeletionService.open(state) as service:
                tracked = service.status()["tracked"]
            ids = list(range(tracked))
            lib_n = min(args.requests, (tracked - args.cli - (args.burst if n == 0 else 0)) // 2)
            if lib_n < 1:
                raise SystemExit(f"d={d}: {tracked} tracked ids are too few for the requested counts")
            lib = percentiles(_library(state, ids[:lib_n], args, "lib"))
            pre = percentiles(_library(state, ids[lib_n:2 * lib_n], args, "pre", prefetch=True))
            ids = ids[lib_n:]
            cli = percentiles(_cli(state, ids[lib_n:lib_n + args.cli], args)) if args.cli else None
            row = {"d": d, "tracked": tracked, "fit_seconds": fit_s, "library": lib, "library_prefetched": pre,
                   "cli": cli}
            print(f"d={d}: fit {fit_s:.1f}s; library forget p50 {lib['p50'] * 1e3:.2f} ms p99 "
                  f"{lib['p99'] * 1e3:.2f} ms over {lib_n}; noise prefetched while idle p50 {pre['p50'] * 1e3:.2f} ms "
                  f"p99 {pre['p99'] * 1e3:.2f} ms" + (f"; CLI p50 {cli['p50']:.2f} s" if cli else ""))
            if n == 0 and args.burst:
                burst_ids = ids[lib_n + args.cli:lib_n + args.cli + args.burst]
                started = time.perf_counter()
                times = _library(state, burst_ids, args, "burst")
                wall = time.perf_counter() - started
                row["burst"] = {"requests": len(burst_ids), "seconds": wall, "per_second": len(burst_ids) / wall,
                                "median_ms": statistics.median(times) * 1e3}
                print(f"d={d}: burst of {len(burst_ids)} single-id requests: {len(burst_ids) / wall:.0f} requests/s "
                      f"(median {statistics.median(times) * 1e3:.2f} ms)")
            out["rows"].append(row)
    emit(out, args.json)


if __name__ == "__main__":
    main()
