"""Cost of the per-request HF-OCU bounds at a long schedule (what every ``forget`` evaluates).

Builds a softmax-regression schedule (n = 1564 rows, batch 2, 10 epochs: T = 7820 steps by default),
three deleted ids, and times ``coupled_sgd_bound`` + ``second_order_sgd_bound`` with the step and
batch-size arrays that ``HFOCU`` keeps (``ScheduleIndex``): in exact arithmetic, and as ``HFOCU``
evaluates them since the floating-point terms (``--precision float64``: the fit-time
``HFOCURoundingPlan`` turns the counts into the terms by dot products, then both bounds use them;
docs/theory.md §9). Prints the median time per request and the bound values (to
compare revisions: the exact ones must agree exactly).

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

from certunlearn.certify.assumptions import softmax_regression_assumptions  # noqa: E402
from certunlearn.certify.hfocu_bounds import coupled_sgd_bound, second_order_sgd_bound  # noqa: E402
from certunlearn.certify.rounding import HFOCURoundingPlan, Precision, sgd_trajectory_error  # noqa: E402
from certunlearn.train import SGDConfig  # noqa: E402
from certunlearn.train.schedule import Schedule, ScheduleIndex  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1564, help="training rows (default 1564)")
    parser.add_argument("--batch-size", type=int, default=2, help="minibatch size (default 2)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    parser.add_argument("--repeat", type=int, default=50, help="timed requests (default 50)")
    parser.add_argument("--precision", default="float64", choices=["float64", "float32"],
                        help="dtype of the floating-point terms (default float64)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    config = SGDConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.5, lr_decay=0.9999,
                       weight_decay=0.1, seed=0)
    index = ScheduleIndex(Schedule.build(n_samples=args.rows, config=config))
    assumptions = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.1, features=64, classes=10)
    counts = index.deletion_counts([3, 17, min(400, args.rows - 1)])
    precision = Precision(args.precision)
    model = assumptions.error_model
    trajectory = sgd_trajectory_error(lrs=index.lrs, batch_sizes=index.batch_sizes, precision=precision,
                                      model=model, gradient_bound=assumptions.gradient_bound, dim=model.dim)

    def exact() -> tuple[float, float]:
        kw = dict(lrs=index.lrs, batch_sizes=index.batch_sizes, deletion_counts=counts, assumptions=assumptions)
        return coupled_sgd_bound(**kw).value, second_order_sgd_bound(**kw).value

    plan = HFOCURoundingPlan(lrs=index.lrs, batch_sizes=index.batch_sizes, precision=precision, model=model,
                             gradient_bound=assumptions.gradient_bound, smoothness=assumptions.smoothness,
                             strong_convexity=assumptions.strong_convexity, dim=model.dim,
                             hessian_lipschitz=assumptions.hessian_lipschitz, trajectory=trajectory)  # at fit

    def with_rounding() -> tuple[float, float]:  # what HFOCU._bound_from_counts does per request
        terms = plan.terms(counts)
        kw = dict(lrs=index.lrs, batch_sizes=index.batch_sizes, deletion_counts=counts, assumptions=assumptions,
                  precision=precision, trajectory_error=trajectory, rounding_terms=terms)
        return coupled_sgd_bound(**kw).value, second_order_sgd_bound(**kw).value

    out: dict[str, object] = {"machine": machine_info("cpu"), "steps": index.n_steps}
    for label, fn in (("exact arithmetic", exact), (f"with {args.precision} rounding", with_rounding)):
        values = fn()
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        median_ms = 1e3 * statistics.median(times)
        print(f"T = {index.n_steps} steps, {label}: {median_ms:.2f} ms per request (median of {args.repeat}); "
              f"first-order {values[0]!r}, second-order {values[1]!r}")
        out[label] = {"median_ms": median_ms, "first_order": values[0], "second_order": values[1]}
    emit(out, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
