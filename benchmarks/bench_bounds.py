"""Cost of the per-request HF-OCU bounds at a long schedule (what every ``forget`` evaluates).

Builds a softmax-regression schedule (n = 1564 rows, batch 2, 10 epochs: T = 7820 steps by default),
three deleted ids, and times ``coupled_sgd_bound`` + ``second_order_sgd_bound`` with the step and
batch-size arrays that ``HFOCU`` keeps (``ScheduleIndex``). Prints the median time per request and
the bound values (to compare revisions: they must agree exactly).

    python benchmarks/bench_bounds.py --repeat 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine_info  # noqa: E402

from certunlearn.certify.bounds import (  # noqa: E402
    coupled_sgd_bound,
    second_order_sgd_bound,
    softmax_regression_assumptions,
)
from certunlearn.train import SGDConfig  # noqa: E402
from certunlearn.train.schedule import Schedule, ScheduleIndex  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1564, help="training rows (default 1564)")
    parser.add_argument("--batch-size", type=int, default=2, help="minibatch size (default 2)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    parser.add_argument("--repeat", type=int, default=50, help="timed requests (default 50)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    config = SGDConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.5, lr_decay=0.9999,
                       weight_decay=0.1, seed=0)
    index = ScheduleIndex(Schedule.build(n_samples=args.rows, config=config))
    assumptions = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.1)
    counts = index.deletion_counts([3, 17, min(400, args.rows - 1)])

    def request() -> tuple[float, float]:
        kw = dict(lrs=index.lrs, batch_sizes=index.batch_sizes, deletion_counts=counts, assumptions=assumptions)
        return coupled_sgd_bound(**kw).value, second_order_sgd_bound(**kw).value

    values = request()
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        request()
        times.append(time.perf_counter() - start)
    median_ms = 1e3 * statistics.median(times)
    print(f"T = {index.n_steps} steps: {median_ms:.2f} ms per request (median of {args.repeat}); "
          f"first-order {values[0]!r}, second-order {values[1]!r}")
    emit({"machine": machine_info("cpu"), "steps": index.n_steps, "median_ms": median_ms,
          "first_order": values[0], "second_order": values[1]}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
