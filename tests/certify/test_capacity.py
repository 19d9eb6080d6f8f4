"""Tests of the deletion capacity (certunlearn.certify.capacity, certunlearn.jobs.capacity).

* ``deletion_capacity``: hand-computed capacities for a linear Δ(m) (closed form with the σ of
  ``gaussian_sigma``), monotonicity in the tolerance and in ε, validation, JSON round trip.
* ``hfocu_worst_case_sensitivity``: the closed form and the worked numbers of docs/theory.md §3.4/§4.4,
  and, by brute force over concrete deletion sets on real schedules (``Schedule`` / ``ScheduleIndex``),
  Δ̄(m) ≥ the bound for every placement (first order against ``coupled_sgd_bound``, second order
  against ``second_order_sgd_bound``).
* ``empirical_capacity`` on a tiny softmax problem.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from certunlearn.certify.assumptions import Assumptions, softmax_regression_assumptions
from certunlearn.certify.capacity import (
    CapacityResult,
    deletion_capacity,
    hfocu_worst_case_sensitivity,
)
from certunlearn.certify.gaussian import gaussian_sigma
from certunlearn.certify.hfocu_bounds import coupled_sgd_bound, second_order_sgd_bound
from certunlearn.errors import ConfigError
from certunlearn.jobs.capacity import empirical_capacity
from certunlearn.models import LogisticRegression
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule, ScheduleIndex
from certunlearn.unlearn import HFOCU

PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, database=None)




# ---------------------------------------------------------------------------------------------
# deletion_capacity
# ---------------------------------------------------------------------------------------------


def _linear_capacity(c: float, *, epsilon: float, delta: float, dim: int, beta: float, tol: float,
                     g: float = 0.0) -> float:
    """Real root m* of g·c·m + (β/2) c² m² (1 + d σ₁²) = tol, σ₁ = σ(ε, δ, Δ = 1) (σ is linear in Δ)."""
    s1 = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=1.0)
    a = 0.5 * beta * c * c * (1 + dim * s1 * s1)
    b = g * c
    return (-b + math.sqrt(b * b + 4 * a * tol)) / (2 * a)


@pytest.mark.parametrize(("c", "epsilon", "delta", "dim", "beta", "tol", "g"), [
    (0.01, 1.0, 1e-5, 1, 1.0, 0.01, 0.0),      # the module docstring: m* = 3.66 ⇒ 3
    (0.001, 0.5, 1e-6, 10, 2.0, 0.05, 0.0),
    (0.0003, 2.0, 1e-5, 100, 0.5, 0.02, 0.0),
    (0.002, 1.0, 1e-5, 5, 1.0, 0.05, 0.3),      # with a reference gradient g
])
def test_linear_sensitivity_closed_form(c, epsilon, delta, dim, beta, tol, g) -> None:
    m_star = _linear_capacity(c, epsilon=epsilon, delta=delta, dim=dim, beta=beta, tol=tol, g=g)
    assert abs(m_star - round(m_star)) > 1e-6  # not on a knife edge
    expected = min(int(math.floor(m_star)), 10_000)
    res = deletion_capacity(sensitivity=lambda m: c * m, epsilon=epsilon, delta=delta, dim=dim,
                            smoothness=beta, tolerance=tol, m_max=10_000, reference_gradient=g)
    assert res.capacity == expected
    # the curve runs 1..capacity+1 and stops at the first failure
    assert res.m == tuple(range(1, expected + 2))
    for m, d_m, s_m, risk in zip(res.m, res.sensitivity, res.sigma, res.excess_risk_bound, strict=True):
        assert d_m == pytest.approx(c * m, rel=1e-15)
        assert s_m == gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=c * m)
        assert risk == pytest.approx(g * d_m + 0.5 * beta * (d_m**2 + dim * s_m**2), rel=1e-12)
    assert all(r <= tol for r in res.excess_risk_bound[:-1]) and res.excess_risk_bound[-1] > tol


def test_capacity_capped_by_m_max_and_zero() -> None:
    res = deletion_capacity(sensitivity=lambda m: 1e-9 * m, epsilon=1.0, delta=1e-5, dim=2,
                            smoothness=1.0, tolerance=0.01, m_max=25)
    assert res.capacity == 25 and res.m == tuple(range(1, 26))
    zero = deletion_capacity(sensitivity=lambda m: 10.0 * m, epsilon=1.0, delta=1e-5, dim=2,
                             smoothness=1.0, tolerance=0.01, m_max=25)
    assert zero.capacity == 0 and zero.m == (1,)


def test_infinite_sensitivity_stops_the_curve() -> None:
    res = deletion_capacity(sensitivity=lambda m: 1e-6 * m if m <= 3 else math.inf, epsilon=1.0,
                            delta=1e-5, dim=1, smoothness=1.0, tolerance=0.01, m_max=100)
    assert res.capacity == 3 and res.m == (1, 2, 3)


def test_zero_sensitivity_means_full_capacity() -> None:
    a = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.1)
    f = hfocu_worst_case_sensitivity(lrs=np.array([0.5]), batch_sizes=np.array([100]),
                                     epoch_lengths=[1], assumptions=a, order="second")
    assert f(1) == 0.0 == f(5)  # one step: the approximator is exact (docs/theory.md Theorem 12)
    res = deletion_capacity(sensitivity=f, epsilon=1.0, delta=1e-5, dim=3, smoothness=1.1,
                            tolerance=0.01, m_max=10)
    assert res.capacity == 10


def test_decreasing_sensitivity_is_an_error() -> None:
    with pytest.raises(ConfigError, match="m=3"):
        deletion_capacity(sensitivity=lambda m: [0.0, 1e-4, 2e-4, 1e-4][m], epsilon=1.0, delta=1e-5,
                          dim=1, smoothness=1.0, tolerance=0.01, m_max=3)


@pytest.mark.parametrize(("key", "value"), [
    ("epsilon", 0.0), ("dim", 0), ("smoothness", -1.0), ("tolerance", 0.0), ("m_max", 0),
    ("reference_gradient", -0.1),
])
def test_capacity_validation(key: str, value: float) -> None:
    kw = dict(sensitivity=lambda m: 0.01 * m, epsilon=1.0, delta=1e-5, dim=1, smoothness=1.0,
              tolerance=0.01, m_max=10)
    with pytest.raises(ConfigError, match=key):
        deletion_capacity(**{**kw, key: value})


def test_as_dict_is_json_round_trip() -> None:
    res = deletion_capacity(sensitivity=lambda m: 0.01 * m, epsilon=1.0, delta=1e-5, dim=3,
                            smoothness=1.0, tolerance=0.05, m_max=100)
    d = res.as_dict()
    again = json.loads(json.dumps(d))
    assert again == d
    rebuilt = CapacityResult(
        capacity=again["capacity"], tolerance=again["tolerance"],
        m=tuple(r["m"] for r in again["curve"]),
        sensitivity=tuple(r["sensitivity"] for r in again["curve"]),
        sigma=tuple(r["sigma"] for r in again["curve"]),
        excess_risk_bound=tuple(r["excess_risk_bound"] for r in again["curve"]),
        assumptions=tuple(again["assumptions"]),
    )
    assert rebuilt == res


@given(
    c=st.floats(1e-5, 1e-1),
    power=st.sampled_from([1.0, 1.5, 2.0]),
    tol=st.floats(1e-3, 1.0),
    factor=st.floats(1.0, 10.0),
    eps=st.floats(0.1, 5.0),
    dim=st.integers(1, 50),
)
@PROPERTY_SETTINGS
def test_capacity_monotone_in_tolerance_and_epsilon(c, power, tol, factor, eps, dim) -> None:
    kw = dict(sensitivity=lambda m: c * m**power, delta=1e-5, dim=dim, smoothness=1.0, m_max=120)
    base = deletion_capacity(epsilon=eps, tolerance=tol, **kw).capacity
    assert deletion_capacity(epsilon=eps, tolerance=tol * factor, **kw).capacity >= base
    assert deletion_capacity(epsilon=eps * factor, tolerance=tol, **kw).capacity >= base


# ---------------------------------------------------------------------------------------------
# hfocu_worst_case_sensitivity: closed forms
# ---------------------------------------------------------------------------------------------


def test_worst_case_matches_theory_worked_numbers() -> None:
    """docs/theory.md §4.4: X = 1, λ = 0.01 (G = 4, β = 1.01), η = 0.5, n = 1000, |B| = 50, E = 10:
    Δ̄(1) = 0.5349, Δ̄(10) = 5.726."""
    a = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.01)
    f = hfocu_worst_case_sensitivity(lrs=np.full(200, 0.5), batch_sizes=np.full(200, 50),
                                     epoch_lengths=[20] * 10, assumptions=a)
    assert f(1) == pytest.approx(0.5349, abs=5e-5)
    assert f(10) == pytest.approx(5.726, abs=5e-4)


@pytest.mark.parametrize("seed", range(5))
def test_worst_case_closed_form_constant_lr(seed: int) -> None:
    """§3.4: constant η, P steps of |B| per epoch: S̄(m) = m(ηG/|B|) Σ_{j<E} c̄^{jP}."""
    rng = np.random.default_rng(seed)
    E, P, size = int(rng.integers(1, 6)), int(rng.integers(1, 8)), int(rng.integers(1, 20))
    lam, beta, G = float(rng.uniform(0, 0.5)), float(rng.uniform(0.6, 3)), float(rng.uniform(0.1, 5))
    eta = float(rng.uniform(0.1, 1.0)) * 2 / (lam + beta)
    a = Assumptions(gradient_bound=G, smoothness=beta, strong_convexity=lam)
    f = hfocu_worst_case_sensitivity(lrs=np.full(E * P, eta), batch_sizes=np.full(E * P, size),
                                     epoch_lengths=[P] * E, assumptions=a)
    for m in (1, 2, size, size + 3):
        c_bar = 1 - eta * lam * (1 - min(m, size) / size)
        s_bar = m * eta * G / size * sum(c_bar ** (j * P) for j in range(E))
        assert f(m) == pytest.approx(2 * s_bar, rel=1e-12)
    a0 = Assumptions(gradient_bound=G, smoothness=beta)  # λ = 0: Δ̄ = 2·E·m·η·G/|B|
    f0 = hfocu_worst_case_sensitivity(lrs=np.full(E * P, eta), batch_sizes=np.full(E * P, size),
                                      epoch_lengths=[P] * E, assumptions=a0)
    assert f0(3) == pytest.approx(2 * E * 3 * eta * G / size, rel=1e-12)


def test_worst_case_validation() -> None:
    a = Assumptions(gradient_bound=1.0, smoothness=1.0, strong_convexity=0.1, hessian_lipschitz=1.0)
    kw = dict(lrs=np.full(4, 0.5), batch_sizes=np.full(4, 2), epoch_lengths=[2, 2], assumptions=a)
    with pytest.raises(ConfigError):
        hfocu_worst_case_sensitivity(**{**kw, "epoch_lengths": [2, 1]})
    with pytest.raises(ConfigError):
        hfocu_worst_case_sensitivity(**{**kw, "batch_sizes": np.full(3, 2)})
    with pytest.raises(ConfigError, match="step size"):
        hfocu_worst_case_sensitivity(**{**kw, "lrs": np.full(4, 2.0)})
    with pytest.raises(ConfigError, match="convex"):
        hfocu_worst_case_sensitivity(**{**kw, "assumptions": Assumptions(
            gradient_bound=1.0, smoothness=1.0, convex=False)})
    with pytest.raises(ConfigError):
        hfocu_worst_case_sensitivity(**kw, order="third")
    with pytest.raises(ConfigError):
        hfocu_worst_case_sensitivity(**kw, order="second", projection_radius=1.0)
    with pytest.raises(ConfigError):
        hfocu_worst_case_sensitivity(**{**kw, "assumptions": Assumptions(
            gradient_bound=1.0, smoothness=1.0, strong_convexity=0.1)}, order="second")


def test_worst_case_refuses_estimated_constants() -> None:
    a = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.1, source="estimated")
    try:
        hfocu_worst_case_sensitivity(lrs=np.full(4, 0.5), batch_sizes=np.full(4, 2),
                                     epoch_lengths=[2, 2], assumptions=a)
    except ConfigError:
        return
    raise AssertionError("estimated constants were accepted")


# ---------------------------------------------------------------------------------------------
# hfocu_worst_case_sensitivity ≥ the bound of every concrete deletion set (brute force)
# ---------------------------------------------------------------------------------------------


def _epoch_lengths(n: int, batch_size: int, epochs: int) -> list[int]:
    return [math.ceil(n / batch_size)] * epochs


def test_schedule_epoch_lengths() -> None:
    cfg = SGDConfig(epochs=3, batch_size=4, lr=0.1, seed=2)
    s = Schedule.build(n_samples=10, config=cfg)
    assert s.epoch_lengths() == _epoch_lengths(10, 4, 3) == [3, 3, 3]


def _setting(seed: int, n: int, batch_size: int, epochs: int, *, decay: bool):
    rng = np.random.default_rng(seed)
    X, lam = float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.01, 0.5))
    a = softmax_regression_assumptions(feature_norm_bound=X, weight_decay=lam)
    lr = float(rng.uniform(0.3, 1.0)) * 2 / (lam + a.smoothness)
    cfg = SGDConfig(epochs=epochs, batch_size=batch_size, lr=lr, lr_decay=0.97 if decay else 1.0,
                    weight_decay=lam, seed=seed)
    return Schedule.build(n_samples=n, config=cfg), a, rng


def _bounds_for(schedule: Schedule, index: ScheduleIndex, ids, a: Assumptions) -> tuple[float, float]:
    counts = index.deletion_counts(ids)
    assert np.array_equal(counts, schedule.deletion_counts(ids))
    kw = dict(lrs=schedule.lrs, batch_sizes=schedule.batch_sizes, deletion_counts=counts, assumptions=a)
    first = coupled_sgd_bound(**kw)
    second = second_order_sgd_bound(**kw)
    assert first.certified and second.certified
    return first.value, second.value


@pytest.mark.parametrize(("seed", "n", "batch_size", "epochs", "decay"), [
    (0, 7, 3, 3, False), (1, 7, 3, 2, True), (2, 8, 2, 3, True), (3, 6, 6, 3, False), (4, 7, 1, 2, True),
])
def test_worst_case_exhaustive_tiny(seed, n, batch_size, epochs, decay) -> None:
    """Every deletion set of a tiny schedule (last batch smaller when |B| ∤ n)."""
    schedule, a, _ = _setting(seed, n, batch_size, epochs, decay=decay)
    index = ScheduleIndex(schedule)
    lengths = schedule.epoch_lengths()
    assert lengths == _epoch_lengths(n, batch_size, epochs)
    kw = dict(lrs=schedule.lrs, batch_sizes=schedule.batch_sizes, epoch_lengths=lengths, assumptions=a)
    first = hfocu_worst_case_sensitivity(**kw)
    second = hfocu_worst_case_sensitivity(**kw, order="second")
    for m in range(1, n):
        worst1 = worst2 = 0.0
        for ids in itertools.combinations(range(n), m):
            v1, v2 = _bounds_for(schedule, index, ids, a)
            worst1, worst2 = max(worst1, v1), max(worst2, v2)
        assert worst1 <= first(m) * (1 + 1e-12), (m, worst1, first(m))
        assert worst2 <= second(m) * (1 + 1e-12), (m, worst2, second(m))
        assert second(m) <= first(m) * (1 + 1e-12)
        assert first(m + 1) >= first(m) and second(m + 1) >= second(m)  # capacity needs this


@pytest.mark.parametrize("seed", range(4))
def test_worst_case_random_sets(seed: int) -> None:
    rng = np.random.default_rng(50 + seed)
    n = int(rng.integers(30, 90))
    batch_size = int(rng.integers(2, 17))
    schedule, a, rng = _setting(50 + seed, n, batch_size, int(rng.integers(1, 5)), decay=seed % 2 == 1)
    index = ScheduleIndex(schedule)
    kw = dict(lrs=schedule.lrs, batch_sizes=schedule.batch_sizes,
              epoch_lengths=schedule.epoch_lengths(), assumptions=a)
    first = hfocu_worst_case_sensitivity(**kw)
    second = hfocu_worst_case_sensitivity(**kw, order="second")
    last = schedule.steps[-1].ids
    for m in (1, 2, 3, batch_size, n // 4):
        candidates = [rng.choice(n, size=m, replace=False) for _ in range(60)]
        if m <= len(last):  # adversarial: ids of the last batch (largest weight in the sum)
            candidates.append(np.array(last[:m]))
        worst1 = worst2 = 0.0
        for ids in candidates:
            v1, v2 = _bounds_for(schedule, index, ids.tolist(), a)
            worst1, worst2 = max(worst1, v1), max(worst2, v2)
        assert worst1 <= first(m) * (1 + 1e-12)
        assert worst2 <= second(m) * (1 + 1e-12)


def test_worst_case_attained_lambda_zero_equal_batches() -> None:
    """λ = 0, constant η, |B| | n: every placement has the same S = m·E·ηG/|B| = S̄(m)."""
    cfg = SGDConfig(epochs=3, batch_size=4, lr=0.5, seed=1)
    schedule = Schedule.build(n_samples=12, config=cfg)
    a = Assumptions(gradient_bound=2.0, smoothness=1.0)
    f = hfocu_worst_case_sensitivity(lrs=schedule.lrs, batch_sizes=schedule.batch_sizes,
                                     epoch_lengths=schedule.epoch_lengths(), assumptions=a)
    for ids in ([0], [3, 7], [1, 2, 5, 11]):
        b = coupled_sgd_bound(lrs=schedule.lrs, batch_sizes=schedule.batch_sizes,
                              deletion_counts=schedule.deletion_counts(ids), assumptions=a)
        assert b.value == pytest.approx(f(len(ids)), rel=1e-12)
        assert f(len(ids)) == pytest.approx(2 * 3 * len(ids) * 0.5 * 2.0 / 4, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# empirical_capacity
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted() -> tuple[HFOCU, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(80, 3, dtype=torch.float64, generator=gen)
    X = X / X.norm(dim=1, keepdim=True).clamp(min=1.0)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    cfg = SGDConfig(epochs=3, batch_size=10, lr=0.5, weight_decay=0.05, seed=0)
    hf = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0, certificate="worst-case").fit(X[:60], y[:60])
    return hf, X[:60], y[:60], X[60:], y[60:]


def test_refine_empirical_capacity_is_not_drowned_by_small_epsilon(fitted) -> None:
    """With the refine certificate the noise follows the public budget rule, whose σ does not grow as ε
    shrinks (ε only decides how close to the exact retrain the candidate must be): at ε = 1e-3, where
    the worst-case certificate's σ exceeds 100, the released model keeps the retrain's accuracy."""
    _, X, y, Xt, yt = fitted
    cfg = SGDConfig(epochs=3, batch_size=10, lr=0.5, weight_decay=0.05, seed=0)
    hf = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0).fit(X, y)
    res = empirical_capacity(hf, X, y, Xt, yt, grid=[1, 3, 10], epsilon=1e-3, delta=1e-5, tolerance=0.05,
                             repeats=2, seed=0)
    assert res["capacity"] == 10, res
    assert all(row["certified"] and row["sigma"] < 0.2 for row in res["curve"])


def _snapshot(hf: HFOCU):
    return hf.deleted_ids, hf.sum_a_.clone(), hf.counts_.copy()


def _unchanged(hf: HFOCU, snap) -> bool:
    deleted, sum_a, counts = snap
    return hf.deleted_ids == deleted and torch.equal(hf.sum_a_, sum_a) and np.array_equal(hf.counts_, counts)


def test_empirical_capacity_small_noise(fitted) -> None:
    hf, X, y, Xt, yt = fitted
    snap = _snapshot(hf)
    grid = [1, 2, 4, 8]
    res = empirical_capacity(hf, X, y, Xt, yt, grid=grid, epsilon=1e6, delta=1e-5, tolerance=0.2,
                             repeats=2, seed=3)
    assert _unchanged(hf, snap)
    assert res["capacity"] in [0, *grid]
    assert [row["m"] for row in res["curve"]] == grid  # nothing failed at ε = 1e6
    assert res["capacity"] == 8
    for row in res["curve"]:
        assert row["certified"] and row["sigma"] > 0 and row["sensitivity"] > 0
        assert 0.0 <= row["retrained_accuracy"] <= 1.0 and row["retrained_accuracy"] >= 0.8
        # with negligible noise the release is within Δ of the retrain: same predictions, nearly
        assert abs(row["released_accuracy"] - row["retrained_accuracy"]) <= 0.1
        assert row["ok"]
    json.dumps(res)


def test_empirical_capacity_large_noise_and_prior_deletions(fitted) -> None:
    hf, X, y, Xt, yt = fitted
    before = _snapshot(hf)
    res = empirical_capacity(hf, X, y, Xt, yt, grid=[1, 3], epsilon=1e-3, delta=1e-5,
                             tolerance=0.01, repeats=3, seed=0)
    assert _unchanged(hf, before)
    assert res["capacity"] == 0 and len(res["curve"]) == 1 and not res["curve"][0]["ok"]
    assert res["curve"][0]["sigma"] > 100  # ε = 1e-3 drowns the model

    # after a real deletion the dry runs see (and keep) it
    import copy

    hf2 = copy.deepcopy(hf)
    hf2.forget([0, 1], epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(0))
    snap = _snapshot(hf2)
    grid = [1, 57, 58, 59]  # only 58 ids remain available
    res2 = empirical_capacity(hf2, X, y, Xt, yt, grid=grid, epsilon=1e6, delta=1e-5, tolerance=1.0,
                              repeats=1, seed=1)
    assert _unchanged(hf2, snap) and hf2.deleted_ids == (0, 1)
    assert [row["m"] for row in res2["curve"]] == [1, 57, 58]
    assert res2["capacity"] == 58


def test_empirical_capacity_validation(fitted) -> None:
    hf, X, y, Xt, yt = fitted
    with pytest.raises(ValueError):
        empirical_capacity(hf, X, y, Xt, yt, grid=[2, 1], epsilon=1.0, delta=1e-5)
    with pytest.raises(ValueError):
        empirical_capacity(hf, X, y, Xt, yt, grid=[0, 1], epsilon=1.0, delta=1e-5)
    with pytest.raises(ValueError):
        empirical_capacity(hf, X, y, Xt, yt, grid=[1], epsilon=1.0, delta=1e-5, repeats=0)
    with pytest.raises(ConfigError):
        empirical_capacity(HFOCU(LogisticRegression(3, 2), hf.config), X, y, Xt, yt, grid=[1],
                           epsilon=1.0, delta=1e-5)
