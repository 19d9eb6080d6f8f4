"""The soundness experiment at test scale: every certified HF-OCU release is within Δ of the coupled retrain.

For ~50 random softmax-regression problems (fp64, fixed seeds ``np.random.default_rng(k)``):

* 40 strongly convex ones (weight decay λ ∈ [0.01, 0.5], rows clipped to a public norm X; a few with
  projection too; a few with a step size above 2/(λ+β), which must come out uncertified);
* 10 merely convex ones (λ = 0 with projection onto a ball; half with constants derived by HF-OCU,
  half with ``Assumptions`` declared by hand);

we fit :class:`~certunlearn.unlearn.HFOCU` with the worst-case certificate, forget a random deletion
set (size 1..n/4, placed at random, inside one batch, or in the first / last batch), replay the
schedule without it (``coupled_retrain(..., normalization="full_batch")``) and check, whenever the
release is certified,

    ‖params_noiseless − retrain‖ ≤ result.sensitivity                    (the certificate, no allowance:
                                                                          rounding is inside Δ, §9)
    ‖w_T − retrain‖ ≤ S and ‖a^U_T‖ ≤ S,  2S = coupled_sgd_bound           (Theorem 6, parts 1–2)
    ‖params_noiseless − retrain‖ ≤ second_order_sgd_bound(actual counts)   (Theorem 12, no projection)

the last two (exact-arithmetic theorems) up to a relative 1e-9 for fp64 rounding. A failure here is a
bug in a certificate, never a reason to loosen the check. The refine certificate has its own soundness
test (tests/certify/test_refine_soundness.py). Slack = Δ / measured is collected; its minimum and
median are printed by ``test_slack_summary`` (run with ``-s`` to see them) and put in its messages.
The long version is ``benchmarks/bench_soundness.py``.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from certunlearn.certify.assumptions import Assumptions, softmax_regression_assumptions
from certunlearn.certify.hfocu_bounds import coupled_sgd_bound, second_order_sgd_bound
from certunlearn.certify.rounding import Precision
from certunlearn.data import clip_rows
from certunlearn.models import LogisticRegression
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule
from certunlearn.train.sgd import coupled_retrain
from certunlearn.unlearn import HFOCU

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _softmax_problems import (  # noqa: E402  (shared with benchmarks/bench_soundness.py)
    ABS_ROUNDING,
    PLACEMENTS,
    choose_ids,
    declared_assumptions,
    flat,
    make_data,
    within,
)

N_STRONG, N_CONVEX = 40, 10


@dataclass(frozen=True)
class Problem:
    seed: int
    kind: str  # "strong" or "convex"
    n: int
    features: int
    classes: int
    clip: float
    weight_decay: float
    lr: float
    lr_decay: float
    batch_size: int
    epochs: int
    projection_radius: float | None
    declared: bool
    violates_step_size: bool
    m: int
    placement: str

    def config(self) -> SGDConfig:
        return SGDConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                         lr_decay=self.lr_decay, weight_decay=self.weight_decay,
                         projection_radius=self.projection_radius, seed=self.seed)


def make_problem(k: int) -> Problem:
    """Problem k: 0..N_STRONG-1 strongly convex, then N_CONVEX convex (λ = 0 + projection)."""
    rng = np.random.default_rng(k)
    kind = "strong" if k < N_STRONG else "convex"
    n = int(rng.integers(20, 121))
    epochs = int(rng.integers(1, 5))
    # keep the run short (≤ ~60 steps); small n may use |B| = 1
    batch_size = int(rng.integers(max(1, math.ceil(n * epochs / 60)), n + 1))
    clip = float(rng.uniform(0.3, 3.0))
    if kind == "strong":
        lam = float(np.exp(rng.uniform(np.log(0.01), np.log(0.5))))
        radius = float(rng.uniform(0.2, 3.0)) if k % 10 == 3 else None
        violates = k % 8 == 7
    else:
        lam, radius, violates = 0.0, float(rng.uniform(0.1, 2.0)), False
    beta = (clip * clip + 1) / 2 + lam
    limit = 2.0 / (lam + beta)
    if violates:
        frac = float(rng.uniform(1.1, 1.8))
    else:
        frac = 1.0 if k % 6 == 0 else float(rng.uniform(0.2, 1.0))  # the limit itself sometimes
    lr_decay = 1.0 if rng.random() < 0.5 else float(rng.uniform(0.95, 1.0))
    m = int(rng.integers(1, max(1, n // 4) + 1))
    return Problem(
        seed=k, kind=kind, n=n, features=int(rng.integers(2, 13)), classes=int(rng.integers(2, 5)),
        clip=clip, weight_decay=lam, lr=frac * limit, lr_decay=lr_decay, batch_size=batch_size,
        epochs=epochs, projection_radius=radius, declared=kind == "convex" and k % 2 == 1,
        violates_step_size=violates, m=m, placement=PLACEMENTS[int(rng.integers(len(PLACEMENTS)))],
    )


def data_of(p: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    return make_data(p.n, p.features, p.classes, p.clip, torch.Generator().manual_seed(10_000 + p.seed))


FP64 = Precision("float64")


def fit(p: Problem, X: torch.Tensor, y: torch.Tensor, track_ids: list[int] | None = None) -> HFOCU:
    kwargs = {"assumptions": problem_assumptions(p)} if p.declared else {"feature_norm_bound": p.clip}
    return HFOCU(LogisticRegression(p.features, p.classes), p.config(), track_ids=track_ids,
                 certificate="worst-case", **kwargs).fit(X, y)


def problem_assumptions(p: Problem, *, rounding: bool = True) -> Assumptions:
    """The problem's constants; with the rounding model (what HF-OCU derives) unless ``rounding=False``."""
    shape = dict(features=p.features, classes=p.classes) if rounding else {}
    if p.declared:
        return declared_assumptions(p.clip, radius=p.projection_radius, **shape)
    return softmax_regression_assumptions(feature_norm_bound=p.clip, weight_decay=p.weight_decay,
                                          projection_radius=p.projection_radius, **shape)


def deletion_set(k: int) -> tuple[Problem, Schedule, list[int]]:
    """The problem, its schedule (drawn from the seed alone, as ``fit`` draws it) and the ids to forget."""
    p = make_problem(k)
    schedule = Schedule.build(n_samples=p.n, config=p.config())
    return p, schedule, choose_ids(p.placement, p.n, p.m, schedule, np.random.default_rng(20_000 + k))


@dataclass(frozen=True)
class Outcome:
    problem: Problem
    ids: tuple[int, ...]
    certified: bool
    status: str
    reasons: tuple[str, ...]
    bound_used: str | None
    sensitivity: float | None
    measured: float          # ‖w̄ − w^{-U}_T‖
    allowance: float         # absolute rounding allowance ABS_ROUNDING · max(1, ‖w_T‖)
    retrain_gap: float       # ‖w_T − w^{-U}_T‖
    approx_norm: float       # ‖a^U_T‖
    first: float             # 2S (coupled_sgd_bound, actual counts)
    s: float | None          # S
    second: float | None     # second_order_sgd_bound (actual counts), when it applies
    expected_sensitivity: float | None


@cache
def outcome(k: int) -> Outcome:
    p, schedule, ids = deletion_set(k)
    X, y = data_of(p)
    # only the deleted ids need statistics (the trajectory is the same); every 7th run tracks all
    hf = fit(p, X, y, track_ids=None if k % 7 == 0 else ids)
    assert hf.schedule == schedule
    res = hf.forget(ids, epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(k))
    retrain = coupled_retrain(LogisticRegression(p.features, p.classes), X, y, hf.schedule, p.config(),
                              exclude=ids, normalization="full_batch")
    w_bar, w_T, w_ret = flat(res.params_noiseless), flat(hf.params), flat(retrain)
    counts = hf.schedule.deletion_counts(ids)
    a = problem_assumptions(p)
    kw = dict(lrs=hf.schedule.lrs, batch_sizes=hf.schedule.batch_sizes, deletion_counts=counts,
              assumptions=a)
    first = coupled_sgd_bound(**kw)  # exact arithmetic: the theorems' own values
    second = second_order_sgd_bound(**kw, projection_radius=p.projection_radius)
    fp_first = coupled_sgd_bound(**kw, precision=FP64, projection=p.projection_radius is not None)
    fp_second = second_order_sgd_bound(**kw, projection_radius=p.projection_radius, precision=FP64)
    expected = None
    if fp_first.certified:
        expected = min(fp_first.value, fp_second.value) if fp_second.certified else fp_first.value
    return Outcome(
        problem=p, ids=tuple(ids), certified=res.certified, status=res.status, reasons=res.reasons,
        bound_used=res.extras.get("bound"), sensitivity=res.sensitivity,
        measured=float((w_bar - w_ret).norm()), allowance=ABS_ROUNDING * max(1.0, float(w_T.norm())),
        retrain_gap=float((w_T - w_ret).norm()),
        approx_norm=float((w_bar - w_T).norm()),
        first=first.value, s=first.noise_only_value,
        second=second.value if second.certified else None, expected_sensitivity=expected,
    )


def _describe(o: Outcome) -> str:
    return (f"problem {o.problem} ids={list(o.ids)}: measured={o.measured:.6g}, "
            f"sensitivity={o.sensitivity}, 2S={o.first:.6g}, second={o.second}, bound={o.bound_used}")


@cache
def zero_delta(k: int) -> bool:
    """Does the second-order bound give Δ = 0 (every deleted id only where D_t = 0, e.g. all of them
    in the final step of a one-epoch run)? Then w̄ = w^{-U}_T in exact arithmetic."""
    p, schedule, ids = deletion_set(k)
    b = second_order_sgd_bound(lrs=schedule.lrs, batch_sizes=schedule.batch_sizes,
                               deletion_counts=schedule.deletion_counts(ids),
                               assumptions=problem_assumptions(p), projection_radius=p.projection_radius)
    return b.certified and b.value == 0.0


def _ks():
    yield from range(N_STRONG + N_CONVEX)


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", list(_ks()))
def test_certified_release_is_sound(k: int) -> None:
    o = outcome(k)
    p = o.problem
    if p.violates_step_size:
        assert not o.certified and o.status == "uncertified", _describe(o)
        assert any("step size" in r for r in o.reasons), o.reasons
        assert o.sensitivity is None  # no noise_sensitivity given: nothing to calibrate
        return
    assert o.certified, f"expected a certificate: {o.reasons} ({_describe(o)})"
    # the certificate: no allowance, the floating-point term is part of Δ
    assert o.measured <= o.sensitivity, _describe(o)
    # it is the smaller of the applicable proven bounds with their rounding, from the actual counts
    assert o.sensitivity == pytest.approx(o.expected_sensitivity, rel=1e-12)
    exact = min(o.first, o.second) if o.second is not None else o.first
    assert exact < o.sensitivity <= exact + 1e-9 * max(1.0, exact), _describe(o)  # fp64: a tiny term
    want = "second-order-sgd" if o.second is not None and o.second <= o.first else "coupled-sgd"
    assert o.bound_used == want
    # Theorem 6, parts 1-3
    assert within(o.retrain_gap, o.s, o.allowance), _describe(o)
    assert within(o.approx_norm, o.s, o.allowance), _describe(o)
    assert within(o.measured, o.first, o.allowance), _describe(o)
    # Theorem 12 (second order), only without projection
    if p.projection_radius is None:
        assert o.second is not None
        assert within(o.measured, o.second, o.allowance), _describe(o)
    else:
        assert o.second is None


def _slack_stats(values: list[float]) -> str:
    arr = np.asarray(values)
    return f"n={arr.size} min={arr.min():.3g} median={np.median(arr):.3g} max={arr.max():.3g}"


def test_slack_summary() -> None:
    outcomes = [outcome(k) for k in range(N_STRONG + N_CONVEX)]
    crashed: list[int] = []
    certified = [o for o in outcomes if o.certified]
    measurable = [o for o in certified if o.measured > o.allowance]  # slack is defined
    first = [o.first / o.measured for o in measurable]
    second = [o.second / o.measured for o in measurable if o.second is not None]
    used = [o.sensitivity / o.measured for o in measurable]
    convex = [o.first / o.measured for o in measurable if o.problem.kind == "convex"]
    violations = [_describe(o) for o in certified if not o.measured <= o.sensitivity]
    summary = (
        f"soundness ({len(outcomes) + len(crashed)} problems, {len(certified)} certified, "
        f"{len(violations)} violations; forget raised on Δ = 0 for problems {crashed})\n"
        f"  first-order 2S / measured:   {_slack_stats(first)}\n"
        f"  second-order / measured:     {_slack_stats(second)}\n"
        f"  HF-OCU's Δ / measured:       {_slack_stats(used)}\n"
        f"  convex (λ=0, projection):    {_slack_stats(convex)}\n"
        f"  bound used: second-order {sum(o.bound_used == 'second-order-sgd' for o in certified)}, "
        f"coupled {sum(o.bound_used == 'coupled-sgd' for o in certified)}"
    )
    print("\n" + summary)
    assert not violations, summary + "\n" + "\n".join(violations)
    assert min(used) >= 1.0, summary
    assert len(certified) == sum(not o.problem.violates_step_size for o in outcomes), summary
    # the mix is what it claims
    assert sum(o.problem.kind == "convex" for o in certified) == N_CONVEX, summary
    assert len(second) >= 20, summary


def test_problem_mix() -> None:
    """The generator covers what the experiment claims: placements, |B| = 1 and full batches, decay."""
    problems = [make_problem(k) for k in range(N_STRONG + N_CONVEX)]
    assert {p.placement for p in problems} == set(PLACEMENTS)
    assert sum(p.violates_step_size for p in problems) >= 4
    assert sum(p.projection_radius is not None and p.kind == "strong" for p in problems) >= 3
    assert any(p.lr_decay < 1 for p in problems) and any(p.lr_decay == 1 for p in problems)
    assert {p.classes for p in problems} == {2, 3, 4} and {p.epochs for p in problems} == {1, 2, 3, 4}
    assert all(0.01 <= p.weight_decay <= 0.5 for p in problems if p.kind == "strong")
    assert any(p.batch_size >= p.n // 2 for p in problems) and any(p.batch_size <= 5 for p in problems)


def test_forget_with_zero_second_order_bound() -> None:
    """Δ = 0 in exact arithmetic (the deleted ids occur only in the last step): the floating-point term
    keeps the certified Δ, hence σ, positive, and the release is still within Δ of the retrain."""
    gen = torch.Generator().manual_seed(0)
    X = clip_rows(torch.randn(12, 3, dtype=torch.float64, generator=gen), 1.0)
    y = (X[:, 0] > 0).long()
    cfg = SGDConfig(epochs=1, batch_size=4, lr=0.5, weight_decay=0.1, seed=0)
    hf = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0, certificate="worst-case").fit(X, y)
    ids = sorted(hf.schedule.steps[-1].ids[:2])
    exact = second_order_sgd_bound(lrs=hf.schedule.lrs, batch_sizes=hf.schedule.batch_sizes,
                                   deletion_counts=hf.schedule.deletion_counts(ids),
                                   assumptions=hf.assumptions_)
    assert exact.value == 0.0 and exact.rounding is None
    bound = hf.bound(ids)
    assert bound.certified and 0.0 < bound.value < 1e-12 and bound.value == bound.rounding
    res = hf.forget(ids, epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(0))
    assert res.certified and res.sigma > 0.0 and res.sensitivity == bound.value
    retrain = coupled_retrain(LogisticRegression(3, 2), X, y, hf.schedule, cfg, exclude=ids)
    assert float((flat(res.params_noiseless) - flat(retrain)).norm()) <= res.sensitivity


# ---------------------------------------------------------------------------------------------
# Online: three requests, each release certified against the retrain without the cumulative set
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, N_STRONG + 2])  # a strongly convex problem and a convex one
def test_online_requests_are_sound(k: int) -> None:
    p = make_problem(k)
    X, y = data_of(p)
    hf = fit(p, X, y)
    batch = copy.deepcopy(hf)
    rng = np.random.default_rng(30_000 + k)
    order = [int(i) for i in rng.permutation(p.n)]
    requests = [order[:2], order[2:5], order[5:6]]
    a = problem_assumptions(p)
    cumulative: list[int] = []
    previous_sigma = 0.0
    for j, request in enumerate(requests):
        res = hf.forget(request, epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(j))
        cumulative += request
        assert res.certified and res.cumulative_ids == tuple(sorted(cumulative))
        retrain = coupled_retrain(LogisticRegression(p.features, p.classes), X, y, hf.schedule,
                                  p.config(), exclude=cumulative, normalization="full_batch")
        measured = float((flat(res.params_noiseless) - flat(retrain)).norm())
        assert measured <= res.sensitivity, (j, measured, res.sensitivity)
        # calibrated to the cumulative set (never to the request alone)
        counts = hf.schedule.deletion_counts(cumulative)
        kw = dict(lrs=hf.schedule.lrs, batch_sizes=hf.schedule.batch_sizes, deletion_counts=counts,
                  assumptions=a, precision=FP64)
        first = coupled_sgd_bound(**kw, projection=p.projection_radius is not None)
        second = second_order_sgd_bound(**kw, projection_radius=p.projection_radius)
        want = min(first.value, second.value) if second.certified else first.value
        assert res.sensitivity == pytest.approx(want, rel=1e-12)
        # fresh noise around the noiseless model, not stacked on the previous release: exactly
        # σ·N(0, I) from this request's generator
        noise = flat(res.params_released) - flat(res.params_noiseless)
        fresh = res.sigma * torch.randn(noise.shape, generator=torch.Generator().manual_seed(j), dtype=noise.dtype)
        torch.testing.assert_close(noise, fresh, rtol=1e-12, atol=1e-12)
        assert res.sigma > 0 and res.sigma != previous_sigma
        previous_sigma = res.sigma
    # additivity: the same noiseless model as one batch deletion of the cumulative set
    once = batch.forget(cumulative, epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(flat(once.params_noiseless), flat(res.params_noiseless),
                               rtol=1e-12, atol=1e-14)
    assert once.sensitivity == pytest.approx(res.sensitivity, rel=1e-12)
