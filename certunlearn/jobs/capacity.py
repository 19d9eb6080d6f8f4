"""The job behind ``certunlearn capacity``: proven and empirical deletion capacity of one model.

It trains softmax regression with HF-OCU statistics (:mod:`certunlearn.jobs.setup`), then answers
"how many deletions can this model absorb?" twice:

* **proven** — :func:`certunlearn.certify.capacity.deletion_capacity` with the excess-risk tolerance
  and the sensitivity of the certificate in use: for ``refine`` (the default) the public budget Δ_b,
  the same for every m, so the capacity is limited only by m_max (every release is within Δ_b of the
  exact retrain, whose gradient is 0); for ``worst-case`` the HF-OCU sensitivity Δ̄(m) (valid wherever
  the m ids fall in the schedule, so it can be announced before any request arrives), rounding
  included. The worst-case figure is always reported too (``proven_worst_case``);
* **empirical** — :func:`empirical_capacity`: released versus retrained test accuracy for growing
  seeded deletion sets (a measurement on the user's data, not a guarantee).

Example:
    >>> spec = CapacitySpec(dataset="wine", epochs=2, batch_size=32, grid=(1, 2), repeats=1, m_max=5)
    >>> out = run_capacity(spec)
    >>> sorted(out), out["proven"]["capacity"], out["proven_worst_case"]["capacity"] <= 5
    (['data', 'empirical', 'proven', 'proven_worst_case', 'spec'], 5, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from certunlearn.errors import ConfigError
from certunlearn.jobs.setup import SoftmaxSetup, fit_softmax_hfocu
from certunlearn.progress import ProgressFn, report
from certunlearn.validation import (
    check_choice,
    check_int,
    check_nonnegative,
    check_open_unit,
    check_positive,
)

__all__ = ["DEFAULT_GRID", "CapacitySpec", "empirical_capacity", "run_capacity"]

if TYPE_CHECKING:
    from certunlearn.unlearn.hfocu import HFOCU

DEFAULT_GRID = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass(frozen=True, slots=True)
class CapacitySpec(SoftmaxSetup):
    """A :class:`SoftmaxSetup` plus the capacity question.

    Attributes:
        epsilon: ε of every release.
        delta: δ of every release.
        risk_tolerance: Excess-risk tolerance of the proven capacity (Sekhari et al. use 0.01).
        accuracy_tolerance: Allowed test-accuracy drop of the release below the retrained model.
        m_max: Largest m examined by the proven capacity.
        grid: Deletion counts tried by the empirical capacity (strictly increasing; values above
            half the training set are dropped).
        repeats: Noise draws averaged per m.
        certificate: ``refine`` (the default) or ``worst-case``.
    """

    epsilon: float = 1.0
    delta: float = 1e-5
    risk_tolerance: float = 0.01
    accuracy_tolerance: float = 0.02
    m_max: int = 1000
    grid: tuple[int, ...] = DEFAULT_GRID
    repeats: int = 3
    certificate: str = "refine"

    def __post_init__(self) -> None:
        SoftmaxSetup.__post_init__(self)
        check_choice("certificate", self.certificate, ("refine", "worst-case"))
        check_positive("epsilon", self.epsilon)
        check_open_unit("delta", self.delta)
        check_positive("risk_tolerance", self.risk_tolerance)
        check_nonnegative("accuracy_tolerance", self.accuracy_tolerance)
        check_int("m_max", self.m_max, minimum=1)
        check_int("repeats", self.repeats, minimum=1)
        grid = [check_int("grid entry", m, minimum=1) for m in self.grid]
        if not grid or grid != sorted(set(grid)):
            raise ConfigError(f"grid must be a non-empty, strictly increasing list, got {list(self.grid)}")


def _accuracy(hf: HFOCU, theta: Tensor | dict[str, Tensor], X: Tensor, y: Tensor) -> float:
    logits = hf.outputs(theta, X)
    return float((logits.argmax(dim=1).cpu() == y.cpu()).double().mean())


def empirical_capacity(
    hf: HFOCU,
    X: Tensor,
    y: Tensor,
    X_test: Tensor,
    y_test: Tensor,
    *,
    grid: Sequence[int],
    epsilon: float,
    delta: float,
    tolerance: float = 0.02,
    repeats: int = 3,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Measure, for each m in ``grid``, released vs retrained test accuracy.

    For growing deletion sets (seeded random ids among the tracked, not yet deleted ones), release
    through HF-OCU (a dry run: the unlearner is not changed), retrain without the same ids — the
    certificate's own reference (:meth:`HFOCU.reference`) — and compare test accuracy. The empirical
    capacity is the largest m of the grid, before the first failure, whose released model's mean
    test accuracy (over ``repeats`` noise draws) stays within ``tolerance`` of the retrained
    model's. The proven capacity is :func:`certunlearn.certify.capacity.deletion_capacity`.

    Args:
        hf: A fitted :class:`HFOCU` (not modified).
        X: Training features (ids = rows), as given to ``fit``; ``y`` the labels.
        X_test: Held-out features; ``y_test`` their labels.
        grid: Increasing deletion counts to try.
        epsilon: ε of the releases.
        delta: δ of the releases.
        tolerance: Allowed drop of test accuracy below the retrained model's.
        repeats: Noise draws averaged per m.
        seed: Seed of the deletion sets and the noise.
        progress: Optional progress callback.

    Returns:
        ``{"capacity": m or 0, "tolerance", "curve": [{"m", "certified", "sigma", "sensitivity",
        "released_accuracy", "retrained_accuracy", "ok"}, ...]}``.
    """
    check_nonnegative("tolerance", tolerance)
    repeats = check_int("repeats", repeats, minimum=1)
    grid = [check_int("grid entry", m, minimum=1) for m in grid]
    if grid != sorted(set(grid)):
        raise ConfigError("grid must be strictly increasing")
    available = np.setdiff1d(hf.tracked_ids, np.asarray(hf.deleted_ids, dtype=np.int64))
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=hf.theta_.device).manual_seed(seed)
    curve: list[dict[str, Any]] = []
    capacity = 0
    for k, m in enumerate(grid):
        if m > available.size:
            break
        ids = sorted(int(i) for i in rng.choice(available, size=m, replace=False))
        released_acc = []
        res = None
        for _ in range(repeats):
            res = hf.forget(ids, epsilon=epsilon, delta=delta, generator=generator, dry_run=True)
            released_acc.append(_accuracy(hf, res.params_released, X_test, y_test))
        retrained_acc = _accuracy(hf, hf.reference(X, y, list(hf.deleted_ids) + ids), X_test, y_test)
        ok = float(np.mean(released_acc)) >= retrained_acc - tolerance
        curve.append({
            "m": m, "certified": res.certified, "sigma": res.sigma, "sensitivity": res.sensitivity,
            "released_accuracy": float(np.mean(released_acc)), "retrained_accuracy": retrained_acc, "ok": ok,
        })
        report(progress, k + 1, len(grid), "empirical capacity")
        if not ok:
            break
        capacity = m
    return {"capacity": capacity, "tolerance": tolerance, "epsilon": epsilon, "delta": delta, "curve": curve}


def run_capacity(spec: CapacitySpec, *, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Train, then compute the proven and the empirical deletion capacity (JSON-serialisable)."""
    from certunlearn.certify.capacity import deletion_capacity, hfocu_worst_case_sensitivity
    from certunlearn.certify.refine import default_sensitivity_budget

    fitted = fit_softmax_hfocu(spec, progress=progress, certificate=spec.certificate)
    hf, data = fitted.hf, fitted.data
    assumptions = hf.assumptions_
    if assumptions is None or hf.assumption_problems_:  # cannot happen with public clipping
        raise ConfigError("no certified constants for this model: " + "; ".join(hf.assumption_problems_))
    m_max = min(spec.m_max, data.n_train - 1)
    common = dict(epsilon=spec.epsilon, delta=spec.delta, dim=hf.dim, smoothness=assumptions.smoothness,
                  tolerance=spec.risk_tolerance, m_max=m_max)
    worst_sensitivity = hfocu_worst_case_sensitivity(
        lrs=hf.schedule.lrs, batch_sizes=hf.schedule.batch_sizes,
        epoch_lengths=hf.schedule.epoch_lengths(), assumptions=assumptions,
        order="second" if assumptions.hessian_lipschitz is not None else "first",
        projection_radius=hf.config.projection_radius, precision=hf.precision_,
    )
    worst = deletion_capacity(sensitivity=worst_sensitivity, reference_gradient=assumptions.gradient_bound, **common)
    worst_dict = worst.as_dict()
    worst_dict["sensitivity_bound"] = ("HF-OCU min(second-order, first-order), worst case over placements, rounding "
                                       "included (docs/theory.md §8, §9); reference: the coupled retrain")
    worst_dict["assumptions"] = list(assumptions.describe()) + worst_dict["assumptions"]
    proven_dict = worst_dict
    if hf.certificate_ == "refine":
        budget = default_sensitivity_budget(epsilon=spec.epsilon, delta=spec.delta, dim=hf.dim,
                                            smoothness=assumptions.smoothness, risk_tolerance=spec.risk_tolerance)
        proven = deletion_capacity(sensitivity=lambda m: budget, reference_gradient=0.0, **common)
        proven_dict = proven.as_dict()
        proven_dict["sensitivity_bound"] = (
            "refine: every release is within the public budget Delta_b of the exact retrain (argmin of the "
            "remaining-data objective, gradient 0) whatever the number of deletions (docs/theory.md §10); "
            "a request whose refinement cannot meet the budget is refused, never released")
        proven_dict["sensitivity_budget"] = budget
        proven_dict["assumptions"] = list(assumptions.describe()) + proven_dict["assumptions"]
    grid = [m for m in spec.grid if m <= data.n_train // 2]
    if not grid:
        raise ConfigError(f"every grid entry exceeds half the training set ({data.n_train} rows)")
    empirical = empirical_capacity(
        hf, data.X_train, data.y_train, data.X_test, data.y_test, grid=grid,
        epsilon=spec.epsilon, delta=spec.delta, tolerance=spec.accuracy_tolerance,
        repeats=spec.repeats, seed=spec.seed, progress=progress,
    )
    return {
        "spec": {**asdict(spec), "grid": list(spec.grid)},
        "data": {"name": data.name, "n_train": data.n_train, "parameters": hf.dim},
        "proven": {**proven_dict, "certificate": hf.certificate_},
        "proven_worst_case": worst_dict,
        "empirical": empirical,
    }
