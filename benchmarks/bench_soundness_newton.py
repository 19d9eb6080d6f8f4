"""Soundness of the Newton-family certificates over many random strongly convex problems.

For each random softmax-regression problem (rows clipped to a public norm, weight decay λ > 0) the
model is trained to optimality on all rows (L-BFGS), a random set of ids is forgotten by every
certifiable method (Newton step, damped Newton, CureNewton with 1 and 3 steps), and the measured
distance to the exact remaining-data minimiser (L-BFGS on the remaining rows) is compared with the
certified Δ (docs/theory.md, Theorems 14–15). Prints violations (must be 0) and the slack Δ/measured.

    python benchmarks/bench_soundness_newton.py --problems 100 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from certunlearn.data import clip_rows
from certunlearn.models import LogisticRegression
from certunlearn.unlearn import CureNewton, DampedNewton, ExactRetrain, NewtonStep

METHODS = {
    "newton": (NewtonStep, {}),
    "damped-newton": (DampedNewton, {"damping": None}),  # drawn per problem
    "curenewton-1": (CureNewton, {"iterations": 1}),
    "curenewton-3": (CureNewton, {"iterations": 3}),
}


def _flat(params: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([params[k].reshape(-1) for k in sorted(params)])


def _trained(model: LogisticRegression, X: torch.Tensor, y: torch.Tensor, lam: float) -> LogisticRegression:
    """Minimise the full-data objective with L-BFGS (the 'stored model' ŵ) and load it into ``model``."""
    oracle = ExactRetrain(model, weight_decay=lam, tol=1e-12).fit(X, y)
    theta = oracle.theta_star.clone().requires_grad_(True)
    keep = oracle.keep_mask([])
    opt = torch.optim.LBFGS([theta], max_iter=2000, tolerance_grad=1e-13, tolerance_change=0.0,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = oracle.objective(theta, keep)
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        for name, value in oracle.fm.layout.unflatten(theta.detach()).items():
            model.get_parameter(name).copy_(value)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    slack: dict[str, list[float]] = {name: [] for name in METHODS}
    certified = dict.fromkeys(METHODS, 0)
    violations: list[str] = []
    for k in range(args.problems):
        n, d, c = int(rng.integers(60, 300)), int(rng.integers(2, 10)), int(rng.integers(2, 5))
        lam, clip = float(10 ** rng.uniform(-1.5, 0)), float(rng.uniform(0.5, 2.0))
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        X = clip_rows(torch.randn(n, d, dtype=torch.float64, generator=gen) * 2.0, clip)
        y = torch.randint(0, c, (n,), generator=gen)
        model = _trained(LogisticRegression(d, c, dtype=torch.float64), X, y, lam)
        m = int(rng.integers(1, max(2, n // 10)))
        ids = sorted(int(i) for i in rng.choice(n, size=m, replace=False))
        common = {"weight_decay": lam, "feature_norm_bound": clip, "certificate": "worst-case"}  # a priori bounds
        probe = ExactRetrain(model, **common).fit(X, y)
        gap = float(probe.gradient(probe.theta_star, probe.keep_mask([])).norm())
        common["optimality_gap"] = max(2.0 * gap, 1e-12)  # declared: what training guaranteed
        reference = _flat(ExactRetrain(model, tol=1e-12, **common).fit(X, y).forget(ids).params_noiseless)
        for name, (cls, options) in METHODS.items():
            opts = dict(options)
            if "damping" in opts:
                opts["damping"] = float(10 ** rng.uniform(-3, 0))
            res = cls(model, **common, **opts).fit(X, y).forget(ids, epsilon=1.0, delta=1e-5,
                                                            generator=torch.Generator().manual_seed(k))
            if not res.certified:
                violations.append(f"problem {k}: {name} unexpectedly uncertified: {res.reasons}")
                continue
            certified[name] += 1
            measured = float((_flat(res.params_noiseless) - reference).norm())
            allowance = 1e-9 * max(1.0, float(reference.norm()))  # L-BFGS reference accuracy
            if measured > res.sensitivity * (1 + 1e-9) + allowance:
                violations.append(f"problem {k}: {name} measured {measured:.3g} > Delta {res.sensitivity:.3g}")
            elif measured > allowance:
                slack[name].append(res.sensitivity / measured)
    print(f"Newton-family soundness: {args.problems} problems (seed {args.seed}, "
          f"{time.perf_counter() - started:.1f} s, fp64 CPU)")
    print(f"{'method':<16}{'certified':>10}{'min slack':>12}{'median':>10}{'max':>10}")
    for name in METHODS:
        values = np.asarray(slack[name]) if slack[name] else np.asarray([np.nan])
        print(f"{name:<16}{certified[name]:>10}{np.min(values):>12.3g}{np.median(values):>10.3g}"
              f"{np.max(values):>10.3g}")
    print(f"violations: {len(violations)}")
    for line in violations[:20]:
        print("  " + line)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
