"""Empirical deletion capacity: how many deletions keep the released model as useful as retraining.

For growing deletion sets (seeded random ids), release through HF-OCU (a dry run: the unlearner is not
changed), retrain without the same ids — the certificate's own reference: the exact minimiser of the
remaining-data objective for the refine certificate, the coupled schedule for the worst-case one —
and compare test accuracy. The
empirical capacity is the largest m of the grid, before the first failure, whose released model's
mean test accuracy (over ``repeats`` noise draws) stays within ``tolerance`` of the retrained model's.
This is a measurement on the user's data, not a guarantee; the proven capacity is
:func:`certunlearn.certify.capacity.deletion_capacity`.

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> from certunlearn.train import SGDConfig
    >>> from certunlearn.unlearn import HFOCU
    >>> X = torch.randn(60, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> X = X / X.norm(dim=1, keepdim=True).clamp(min=1); y = (X[:, 0] > 0).long()
    >>> hf = HFOCU(LogisticRegression(3, 2), SGDConfig(epochs=2, batch_size=10, lr=0.5, weight_decay=0.1),
    ...            feature_norm_bound=1.0).fit(X, y)
    >>> res = empirical_capacity(hf, X, y, X, y, grid=[1, 2], epsilon=1e4, delta=1e-5, tolerance=0.2)
    >>> [row["m"] for row in res["curve"]]
    [1, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from certunlearn.errors import ConfigError
from certunlearn.progress import ProgressFn, report
from certunlearn.train.sgd import coupled_retrain
from certunlearn.unlearn.hfocu import HFOCU
from certunlearn.validation import check_int, check_nonnegative

__all__ = ["empirical_capacity", "reference_model"]


def _accuracy(hf: HFOCU, theta: Tensor, X: Tensor, y: Tensor) -> float:
    fm = hf.fm_
    with torch.no_grad():
        logits = fm.outputs(theta, X.to(device=fm.device, dtype=fm.dtype))
    return float((logits.argmax(dim=1).cpu() == y.cpu()).double().mean())


def reference_model(hf: HFOCU, X: Tensor, y: Tensor, deleted: list[int]) -> Tensor:
    """The retrained model the certificate speaks about, as a flat vector in the model's dtype.

    ``refine``: argmin F_R by Newton steps in float64 from the ERM anchor (to the measured bound's
    floor); ``worst-case``: the coupled retrain of the recorded schedule.
    """
    if hf.certificate_ == "refine" and hf.certifier_ is not None:
        certifier = hf.certifier_
        theta = certifier.refiner.solve(hf.anchor_, certifier.keep_mask(deleted))
        return theta.to(device=hf.fm_.device, dtype=hf.fm_.dtype)
    retrained = coupled_retrain(hf.fm_.module, X, y, hf.schedule, hf.config, exclude=deleted)
    return hf.fm_.layout.flatten(retrained).to(hf.fm_.device)


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
    hf._check_fitted()
    check_nonnegative("tolerance", tolerance)
    repeats = check_int("repeats", repeats, minimum=1)
    grid = [check_int("grid entry", m, minimum=1) for m in grid]
    if grid != sorted(set(grid)):
        raise ConfigError("grid must be strictly increasing")
    available = np.setdiff1d(hf.store_.ids, np.asarray(hf.deleted_ids, dtype=np.int64))
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=hf.fm_.device).manual_seed(seed)
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
            theta = hf.fm_.layout.flatten(res.params_released)
            released_acc.append(_accuracy(hf, theta, X_test, y_test))
        retrained_acc = _accuracy(hf, reference_model(hf, X, y, list(hf.deleted_ids) + ids), X_test, y_test)
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
