"""Shadow-model training, vectorised vs sequential: N MLPs on scikit-learn's digits, same work.

Both paths call :func:`certunlearn.audit.shadows.train_shadows` with the same :class:`ShadowSpec`
(same balanced membership, initialisations, batches and steps — the results agree to rounding):

* vectorised: ``stack_module_state`` + ``vmap(grad(...))`` over one functional SGD step, all N
  models stepping together on their own minibatches;
* sequential: ``vectorize=False``, one :func:`certunlearn.train.sgd.train_sgd` per shadow.

Each path is warmed up once on a one-epoch spec, then timed ``--repeat`` times (device synchronised
around each call); the ratio compares the medians measured in the same run. Printed: seconds per
path, ms per model-epoch, the ratio, and the largest parameter difference between the two paths.
Target: >= 4x on two CPU cores for 16 shadows.

Example::

    python benchmarks/bench_shadows.py --threads 2 --shadows 16 --epochs 10
    python benchmarks/bench_shadows.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_args, emit, machine_info, setup, sync, timed  # noqa: E402

from certunlearn.audit.shadows import ShadowSpec, train_shadows  # noqa: E402
from certunlearn.data import load_dataset  # noqa: E402


def spec_for(args: argparse.Namespace, dtype: torch.dtype, epochs: int) -> ShadowSpec:
    return ShadowSpec(
        model="mlp",
        model_kwargs={"hidden": [args.hidden]},
        n_shadows=args.shadows,
        training={"epochs": epochs, "batch_size": args.batch_size, "lr": 0.1, "seed": args.seed},
        dtype="float64" if dtype == torch.float64 else "float32",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--shadows", type=int, default=16, help="number of shadow models N")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--hidden", type=int, default=64, help="hidden width of the MLP 64 -> h -> 10"
    )
    parser.add_argument(
        "--rows", type=int, default=0, help="digits rows in the pool (0: the whole train split)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device, dtype = setup(args)

    ds = load_dataset("digits", seed=args.seed, dtype=dtype)
    rows = ds.n_train if args.rows <= 0 else min(args.rows, ds.n_train)
    X, y = ds.X_train[:rows].to(device), ds.y_train[:rows].to(device)
    spec = spec_for(args, dtype, args.epochs)

    warm = spec_for(args, dtype, 1)
    train_shadows(warm, X, y)
    train_shadows(warm, X, y, vectorize=False)
    sync(device)

    times: dict[str, list[float]] = {"vectorized": [], "sequential": []}
    results = {}
    for _ in range(args.repeat):
        for name, vectorize in (("vectorized", True), ("sequential", False)):
            seconds, out = timed(lambda v=vectorize: train_shadows(spec, X, y, vectorize=v), device)
            times[name].append(seconds)
            results[name] = out
    diff = max(
        float((results["vectorized"].state[k] - results["sequential"].state[k]).abs().max())
        for k in results["vectorized"].state
    )
    median = {name: statistics.median(values) for name, values in times.items()}
    model_epochs = args.shadows * args.epochs
    ratio = median["sequential"] / median["vectorized"]
    steps_per_epoch = -(-(rows // 2) // args.batch_size)

    info = machine_info(device)
    print(
        f"shadow training on digits: {args.shadows} MLPs 64-{args.hidden}-10, "
        f"{rows} rows in the pool (~{rows // 2} per shadow, ~{steps_per_epoch} steps/epoch), "
        f"{args.epochs} epochs, batch {args.batch_size}, {dtype}, device {device}, "
        f"torch threads {info['torch_threads']}"
    )
    for name in ("sequential", "vectorized"):
        print(
            f"  {name:>10}: {median[name]:8.3f} s (median of {args.repeat}: "
            f"{', '.join(f'{t:.3f}' for t in times[name])})  "
            f"{1e3 * median[name] / model_epochs:7.2f} ms per model-epoch"
        )
    print(f"  speed-up sequential / vectorized: {ratio:.2f}x   (target >= 4x on two CPU cores)")
    print(f"  max |theta_vectorized - theta_sequential| = {diff:.2e}")
    emit(
        {
            "benchmark": "shadows",
            "machine": info,
            "config": {**vars(args), "json": None, "rows": rows},
            "seconds": times,
            "median_seconds": median,
            "speedup": ratio,
            "max_abs_param_diff": diff,
        },
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
