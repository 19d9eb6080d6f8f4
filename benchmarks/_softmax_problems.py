"""Random softmax-regression problems for the HF-OCU soundness experiments.

Shared by ``bench_soundness.py`` (the long run) and ``tests/certify/test_soundness.py`` (the short
one): data with a share of clipped rows, deletion sets placed in the batch schedule, the hand-derived
constants of the declared (λ = 0) case and the soundness comparison with its rounding allowance.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from certunlearn.certify.assumptions import Assumptions
from certunlearn.certify.rounding import SoftmaxErrorModel
from certunlearn.data import clip_rows
from certunlearn.train.schedule import Schedule

ROUNDING = 1e-9  # relative allowance for fp64 rounding in the exact-arithmetic theorems only ...
ABS_ROUNDING = 1e-12  # ... and an absolute one, times max(1, ‖w_T‖); certificates need none (rounding is inside)
PLACEMENTS = ("random", "same_batch", "first_batch", "last_batch")


def make_data(n: int, features: int, classes: int, clip: float,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows clipped to ``clip`` (a good share of them is clipped) and noisy teacher labels."""
    scale = 1.5 * clip / math.sqrt(features)
    X = clip_rows(scale * torch.randn(n, features, dtype=torch.float64, generator=gen), clip)
    teacher = torch.randn(features, classes, dtype=torch.float64, generator=gen)
    noisy = X @ teacher / clip + 0.5 * torch.randn(n, classes, dtype=torch.float64, generator=gen)
    return X, noisy.argmax(dim=1)


def choose_ids(placement: str, n: int, m: int, schedule: Schedule, rng: np.random.Generator) -> list[int]:
    """m ids: anywhere (``random``), or from one batch of the schedule (first, last or a random one),
    topped up with random others when the batch is smaller than m."""
    if placement == "random":
        return sorted(int(i) for i in rng.choice(n, size=m, replace=False))
    steps = schedule.steps
    step = {"first_batch": 0, "last_batch": len(steps) - 1}.get(placement)
    if step is None:
        step = int(rng.integers(len(steps)))
    ids = [int(i) for i in rng.permutation(list(steps[step].ids))[:m]]
    if len(ids) < m:
        rest = np.setdiff1d(np.arange(n), ids)
        ids += [int(i) for i in rng.choice(rest, size=m - len(ids), replace=False)]
    return sorted(ids)


def declared_assumptions(clip: float, features: int | None = None, classes: int | None = None,
                         radius: float | None = None) -> Assumptions:
    """By hand, docs/theory.md §4.3 table, λ = 0 row: G = G_CE, β = (X²+1)/2, convex, no M; with the
    rounding model of softmax regression on the projection ball when features, classes and radius are given."""
    error_model = None
    if features is not None and classes is not None and radius is not None:
        error_model = SoftmaxErrorModel(features=features, classes=classes, feature_norm=clip,
                                        radius=1.01 * radius, weight_decay=0.0)
    return Assumptions(gradient_bound=math.sqrt(2) * math.sqrt(clip**2 + 1), smoothness=(clip**2 + 1) / 2,
                       strong_convexity=0.0, convex=True, notes=("declared by the soundness experiment",),
                       error_model=error_model)


def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """A softmax regression's parameters as one vector."""
    return torch.cat([state[k].reshape(-1) for k in ("linear.weight", "linear.bias")])


def within(measured: float, bound: float | None, allowance: float) -> bool:
    """Is ``measured`` ≤ the bound, up to fp64 rounding (relative ROUNDING plus ``allowance``)?"""
    return bound is not None and measured <= bound * (1 + ROUNDING) + allowance


# ---------------------------------------------------------------------------------------------
# Adversarial placements (bench_soundness.py): appended; nothing above depends on them.
# ---------------------------------------------------------------------------------------------

ADVERSARIAL_PLACEMENTS = ("random", "same_batch", "first_batch", "last_batch_each_epoch", "last_step")
"""``random``, ``same_batch`` and ``first_batch`` as in :func:`choose_ids` (topped up with random ids when
the batch is smaller than m); ``last_batch_each_epoch``: only ids of the last (small) batch of each epoch,
spread over the epochs; ``last_step``: only ids of the run's final step (in a one-epoch run they occur
nowhere else, so Δ = 0 in exact arithmetic). The last two are never topped up: m is capped instead."""


def epoch_last_steps(schedule: Schedule) -> list[int]:
    """Index of the last step of every epoch (the greedy epochs of :meth:`Schedule.epoch_lengths`)."""
    return [int(t) - 1 for t in np.cumsum(schedule.epoch_lengths())]


def choose_adversarial_ids(placement: str, n: int, m: int, schedule: Schedule,
                           rng: np.random.Generator) -> list[int]:
    """m ids placed by ``placement`` (one of :data:`ADVERSARIAL_PLACEMENTS`); fewer than m when the
    placement's steps hold fewer distinct ids (``last_batch_each_epoch``, ``last_step``)."""
    if placement in PLACEMENTS:
        return choose_ids(placement, n, m, schedule, rng)
    steps = schedule.steps
    if placement == "last_step":
        pool = [int(i) for i in rng.permutation(list(steps[-1].ids))]
        return sorted(pool[:m])
    if placement != "last_batch_each_epoch":
        raise ValueError(f"unknown placement {placement!r}")
    # round-robin over the epochs' last batches, so that every epoch's small last batch holds deleted ids
    queues = [[int(i) for i in rng.permutation(list(steps[t].ids))] for t in epoch_last_steps(schedule)]
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < m and any(queues):
        for queue in queues:
            while queue and queue[0] in seen:
                queue.pop(0)
            if queue and len(chosen) < m:
                i = queue.pop(0)
                chosen.append(i)
                seen.add(i)
    return sorted(chosen)
