"""Hessian-vector products of the remaining-data objective: one tangent at a time (what Lanczos and
conjugate gradients ask for) vs batched, for the MLPs of the CureNewton evaluation.

Per problem and path it prints the time per product (median of ``--repeat`` timed calls after
warm-up, divided by the number of tangents of the call) and the largest difference from the
torch.func reference. Paths:

* ``torch.func``: ``FunctionalModel(structured=False).hvp_fn`` (reverse-over-reverse through the
  gradient graph built once per θ), one tangent per call;
* ``chain, 1 tangent``: ``FunctionalModel.hvp_fn`` (the hand-written R-operator, single-tangent path);
* ``chain, K tangents``: ``FunctionalModel.batch_hvp`` on K tangents at once, time divided by K.

Problems (random standardised rows and weights of the evaluation's shapes, float64 as there):
``breast`` 30-16-2 tanh, n = 433; ``digits`` 64-16-10 tanh, n = 950.

    python benchmarks/bench_hvp.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_common_args, emit, machine_info, setup, time_calls  # noqa: E402

from certunlearn.autodiff import FunctionalModel  # noqa: E402
from certunlearn.models import MLP  # noqa: E402

PROBLEMS = {"breast": (433, 30, 16, 2), "digits": (950, 64, 16, 10)}


def run(name: str, device: torch.device, dtype: torch.dtype, k: int, repeat: int) -> dict:
    n, features, hidden, classes = PROBLEMS[name]
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n, features, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=gen).to(device)
    model = MLP(features, classes, hidden=(hidden,), activation="tanh", generator=gen).to(device=device, dtype=dtype)
    fast, slow = FunctionalModel(model), FunctionalModel(model, structured=False)
    theta = fast.theta0
    V = torch.randn(k, fast.dim, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    kwargs = {"normalizer": n, "weight_decay": 1e-4}
    one, ref = fast.hvp_fn(theta, X, y, **kwargs), slow.hvp_fn(theta, X, y, **kwargs)
    expected = torch.stack([ref(v) for v in V])
    paths = {
        "torch.func": (lambda: ref(V[0]), 1),
        "chain, 1 tangent": (lambda: one(V[0]), 1),
        f"chain, {k} tangents": (lambda: fast.batch_hvp(theta, X, y, V, **kwargs), k),
    }
    rows = {}
    for label, (fn, per) in paths.items():
        times = time_calls(fn, device=device, warmup=20, repeat=repeat)
        rows[label] = {"ms_per_product": 1e3 * statistics.median(times) / per}
    rows["chain, 1 tangent"]["max_abs_diff"] = float((torch.stack([one(v) for v in V]) - expected).abs().max())
    rows[f"chain, {k} tangents"]["max_abs_diff"] = float((fast.batch_hvp(theta, X, y, V, **kwargs) - expected).abs().max())
    return {"d": fast.dim, "n": n, "paths": rows}


def main(argv: list[str] | None = None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), dtype="float64")
    parser.add_argument("--problems", default="breast,digits", help="comma-separated: " + ",".join(PROBLEMS))
    parser.add_argument("--k", type=int, default=32, help="tangents of the batched call (default 32)")
    parser.add_argument("--repeat", type=int, default=300, help="timed calls per path (default 300)")
    args = parser.parse_args(argv)
    device, dtype = setup(args)
    names = [p.strip() for p in args.problems.split(",") if p.strip()]
    unknown = sorted(set(names) - set(PROBLEMS))
    if unknown:
        parser.error(f"unknown problems {unknown}; choose from {sorted(PROBLEMS)}")
    results = {"machine": machine_info(device), "dtype": str(dtype), "problems": {}}
    for name in names:
        res = run(name, device, dtype, args.k, args.repeat)
        results["problems"][name] = res
        print(f"{name}: d = {res['d']}, n = {res['n']}, {device}, {dtype}, {torch.get_num_threads()} thread(s)")
        base = res["paths"]["torch.func"]["ms_per_product"]
        for label, row in res["paths"].items():
            diff = f", max |diff| vs torch.func {row['max_abs_diff']:.1e}" if "max_abs_diff" in row else ""
            print(f"  {label:<20} {row['ms_per_product']:8.3f} ms per product  "
                  f"({base / row['ms_per_product']:5.1f}x torch.func){diff}")
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
