"""The pure mathematics of the refine certificate (certunlearn.certify.refine).

* :func:`erm_distance_bound` (docs/theory.md, Theorem 23) against the true distance ‖w − argmin f‖ on
  strongly convex functions f(w) = Σ_i a_i φ(c_iᵀw + b_i) + (λ/2)‖w‖², φ = softplus or log-cosh, in
  1-3 dimensions. Their Hessian is M-Lipschitz with M = sup|φ'''| · Σ_i a_i ‖c_i‖³ (sup|softplus'''| =
  1/(6√3), sup|logcosh'''| = 4/(3√3)); the minimiser, g, H and H⁻¹g are computed here in mpmath at 40
  digits (a damped Newton iteration written in this file), never by the code under test. Steps x are
  exact, perturbed, or bad (random, zero, huge).
* The switch to the gradient bound ‖g‖/λ, the formulas of the Newton bound, tightness when 2Mr/λ is
  small, monotonicity and validation.
* :func:`default_sensitivity_budget`: with σ = gaussian_sigma(ε, δ, Δ_b) the excess-risk bound
  (β/2)(Δ_b² + dσ²) is ≤ τ and within 0.1 % of it; monotone in ε, d, β, τ; the closed form.
* :func:`budget_floor` and :func:`check_budget`: values and messages.
"""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certunlearn.certify.gaussian import gaussian_sigma
from certunlearn.certify.refine import (
    DEFAULT_RISK_TOLERANCE,
    ErmBound,
    budget_floor,
    check_budget,
    default_sensitivity_budget,
    erm_distance_bound,
)
from certunlearn.errors import ConfigError

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, database=None)
_DPS = 40

# =========================================================================== a test function, in mpmath
# sup |φ'''| of each scalar profile: softplus''' = s(1-s)(1-2s) (s the logistic), max at
# s = (3-√3)/6; logcosh''' = -2 tanh·sech², max at tanh = 1/√3.
PHI_THIRD_SUP = {"softplus": 1.0 / (6.0 * math.sqrt(3.0)), "logcosh": 4.0 / (3.0 * math.sqrt(3.0))}


def _phi(kind: str, z: mp.mpf) -> tuple[mp.mpf, mp.mpf, mp.mpf]:
    """φ(z), φ'(z), φ''(z) in mpmath."""
    if kind == "softplus":
        s = 1 / (1 + mp.exp(-z))
        return mp.log1p(mp.exp(z)) if z < 30 else z + mp.log1p(mp.exp(-z)), s, s * (1 - s)
    t = mp.tanh(z)
    return mp.log(mp.cosh(z)), t, 1 - t * t


class Problem:
    """f(w) = Σ_i a_i φ(c_iᵀw + b_i) + (λ/2)‖w‖² (λ-strongly convex, Hessian M-Lipschitz)."""

    def __init__(self, kind: str, a: np.ndarray, C: np.ndarray, b: np.ndarray, lam: float) -> None:
        self.kind, self.lam, self.d = kind, lam, C.shape[1]
        with mp.workdps(_DPS):
            self.a = [mp.mpf(float(v)) for v in a]
            self.C = [[mp.mpf(float(v)) for v in row] for row in C]
            self.b = [mp.mpf(float(v)) for v in b]
        norms3 = sum(float(ai) * float(np.linalg.norm(ci)) ** 3 for ai, ci in zip(a, C, strict=True))
        self._star: mp.matrix | None = None
        self.M = PHI_THIRD_SUP[kind] * norms3  # ‖∇²f(u) − ∇²f(v)‖ ≤ Σ a_i sup|φ'''| ‖c_i‖³ ‖u − v‖

    def value_grad_hess(self, w: mp.matrix) -> tuple[mp.mpf, mp.matrix, mp.matrix]:
        with mp.workdps(_DPS):
            f = self.lam / 2 * sum(w[j] ** 2 for j in range(self.d))
            g = mp.matrix([self.lam * w[j] for j in range(self.d)])
            H = mp.eye(self.d) * self.lam
            for ai, ci, bi in zip(self.a, self.C, self.b, strict=True):
                z = sum(ci[j] * w[j] for j in range(self.d)) + bi
                p0, p1, p2 = _phi(self.kind, z)
                f += ai * p0
                for j in range(self.d):
                    g[j] += ai * p1 * ci[j]
                    for k in range(self.d):
                        H[j, k] += ai * p2 * ci[j] * ci[k]
            return f, g, H

    def minimiser(self) -> mp.matrix:
        """argmin f by damped Newton (Armijo backtracking far away, full steps near w*) in mpmath."""
        if self._star is not None:
            return self._star
        with mp.workdps(_DPS):
            w = mp.matrix([0] * self.d)
            for _ in range(100):
                f, g, H = self.value_grad_hess(w)
                if mp.norm(g) < mp.mpf("1e-32"):
                    self._star = w
                    return w
                step = mp.lu_solve(H, g)
                t = mp.mpf(1)
                if mp.norm(g) > mp.mpf("1e-6"):  # quadratic convergence from here on: full steps
                    slope = (g.T * step)[0]
                    while self.value_grad_hess(w - t * step)[0] > f - mp.mpf("1e-4") * t * slope:
                        t /= 2
                w = w - t * step
            raise AssertionError("reference Newton did not converge")


def random_problem(rng: np.random.Generator) -> Problem:
    d = int(rng.integers(1, 4))
    m = int(rng.integers(1, 6))
    kind = ("softplus", "logcosh")[int(rng.integers(2))]
    a = rng.uniform(0.2, 2.0, size=m)
    C = rng.normal(size=(m, d)) * rng.uniform(0.3, 2.0)
    b = rng.normal(size=m)
    lam = float(np.exp(rng.uniform(np.log(1e-2), np.log(1.0))))
    return Problem(kind, a, C, b, lam)


def up(v: mp.mpf) -> float:
    """A float ≥ v (v computed in mpmath): the bound takes upper bounds on norms."""
    out = float(v)
    return out if out >= v else math.nextafter(out, math.inf)


def measure(prob: Problem, w: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """Upper bounds on ‖x‖, ‖Hx − g‖, ‖g‖ at w, and the exact ‖H⁻¹g‖ and ‖w − w*‖ (mpmath)."""
    with mp.workdps(_DPS):
        wm = mp.matrix([float(v) for v in w])
        xm = mp.matrix([float(v) for v in x])
        _, g, H = prob.value_grad_hess(wm)
        newton = mp.lu_solve(H, g)
        star = prob.minimiser()
        return {
            "step_norm": up(mp.norm(xm)),
            "residual_norm": up(mp.norm(H * xm - g)),
            "gradient_norm": up(mp.norm(g)),
            "newton_norm": float(mp.norm(newton)),
            "newton": [float(v) for v in newton],
            "distance": float(mp.norm(wm - star)),
            "distance_mp": mp.norm(wm - star),
            "star": np.array([float(v) for v in star]),
        }


def bound_of(prob: Problem, m: dict[str, float], *, M: float | None = None) -> ErmBound:
    return erm_distance_bound(step_norm=m["step_norm"], residual_norm=m["residual_norm"],
                              gradient_norm=m["gradient_norm"], strong_convexity=prob.lam,
                              hessian_lipschitz=prob.M if M is None else M)


STEP_KINDS = ("exact", "perturbed", "random", "zero", "huge", "scaled")


def make_step(kind: str, newton: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = newton.size
    if kind == "exact":
        return newton
    if kind == "perturbed":  # an inexact solve: relative error up to 50 %
        return newton + rng.uniform(0, 0.5) * np.linalg.norm(newton) * rng.normal(size=d) / math.sqrt(d)
    if kind == "random":
        return rng.normal(size=d) * rng.uniform(0.01, 3.0)
    if kind == "zero":
        return np.zeros(d)
    if kind == "huge":
        return rng.normal(size=d) * 1e3
    return newton * rng.uniform(0.3, 1.7)  # right direction, wrong length


# =========================================================================== erm_distance_bound
@pytest.mark.parametrize("step", STEP_KINDS)
@pytest.mark.parametrize("seed", range(10))
def test_bound_is_at_least_the_true_distance(seed, step):
    """For random problems, points at distance 1e-4..3 from w* and any step x (exact, inexact, random,
    zero, huge, mis-scaled), the returned value is ≥ ‖w − w*‖ (and so is ‖g‖/λ)."""
    rng = np.random.default_rng([seed, STEP_KINDS.index(step)])
    prob = random_problem(rng)
    scale = float(np.exp(rng.uniform(np.log(1e-4), np.log(3.0))))
    star = measure(prob, np.zeros(prob.d), np.zeros(prob.d))["star"]
    w = star + scale * rng.normal(size=prob.d)
    m0 = measure(prob, w, np.zeros(prob.d))
    x = make_step(step, np.array(m0["newton"]), rng)
    m = measure(prob, w, x)
    b = bound_of(prob, m)
    assert b.value >= m["distance_mp"], (b, m["distance"], prob.kind, prob.lam, prob.M)
    assert m["gradient_norm"] / prob.lam >= m["distance_mp"]  # the fallback bound itself is valid
    # r ≥ ‖H⁻¹g‖ for every x (H ⪰ λI)
    assert b.newton_radius >= m["newton_norm"] * (1 - 1e-15)
    # never worse than the gradient bound
    assert b.value <= m["gradient_norm"] / prob.lam * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_bound_with_exact_step_is_tight_near_the_minimiser(seed):
    """With x = H⁻¹g and 2Mr/λ ≤ 0.1 the bound is within 10 % of ‖H⁻¹g‖ and of the true distance."""
    rng = np.random.default_rng(100 + seed)
    prob = random_problem(rng)
    star = measure(prob, np.zeros(prob.d), np.zeros(prob.d))["star"]
    direction = rng.normal(size=prob.d)
    direction /= np.linalg.norm(direction)
    # distance s with 2 M s (≈ r) / λ about 0.05 (M > 0 always here)
    s = 0.05 * prob.lam / (2.0 * prob.M) * rng.uniform(0.05, 1.0)
    w = star + s * direction
    m0 = measure(prob, w, np.zeros(prob.d))
    m = measure(prob, w, np.array(m0["newton"]))
    b = bound_of(prob, m)
    assert b.kind == "newton" and b.condition <= 0.1, b
    assert m["distance_mp"] <= b.value <= 1.1 * m["newton_norm"], (b, m["distance"], m["newton_norm"])
    assert b.value <= 1.1 * m["distance"], (b, m["distance"])
    # 2r/(1 + √(1 − c)) ≤ r (1 + c/2) for c ≤ 1: the 1 + O(Mr/λ) of Theorem 23
    assert b.value <= b.newton_radius * (1 + b.condition / 2) * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_bound_at_the_edge_of_the_newton_region_is_sound(seed):
    """Points where 2Mr/λ ∈ (0.5, 1) with exact or slightly inexact x: the Newton bound applies and
    is still ≥ the true distance (the delicate end of Theorem 23)."""
    rng = np.random.default_rng(400 + seed)
    prob = random_problem(rng)
    star = measure(prob, np.zeros(prob.d), np.zeros(prob.d))["star"]
    direction = rng.normal(size=prob.d)
    direction /= np.linalg.norm(direction)
    target = rng.uniform(0.55, 0.95)
    s = target * prob.lam / (2.0 * prob.M)
    for _ in range(60):  # adjust the distance until the condition lands in (0.5, 1)
        w = star + s * direction
        m0 = measure(prob, w, np.zeros(prob.d))
        newton = np.array(m0["newton"])
        if seed % 2:
            newton = newton * (1 + 1e-3 * rng.normal(size=prob.d))
        m = measure(prob, w, newton)
        b = bound_of(prob, m)
        if 0.5 < b.condition < 1.0:
            break
        s *= math.sqrt(target / b.condition)
    assert 0.5 < b.condition < 1.0, b
    assert b.value >= m["distance_mp"], (b, m["distance"])
    if b.kind == "newton":
        assert b.value == pytest.approx(2 * b.newton_radius / (1 + math.sqrt(1 - b.condition)), rel=1e-12)
    else:  # the gradient bound was smaller
        assert b.value <= 2 * b.newton_radius / (1 + math.sqrt(1 - b.condition))


@pytest.mark.parametrize("seed", range(6))
def test_quadratic_bound_is_the_newton_step_length(seed):
    """M = 0 (f quadratic): the bound is r = ‖x‖ + ‖Hx − g‖/λ and equals the distance for exact x."""
    rng = np.random.default_rng(200 + seed)
    d = int(rng.integers(1, 4))
    A = rng.normal(size=(d, d))
    lam = float(rng.uniform(0.05, 1.0))
    H = A @ A.T + lam * np.eye(d)  # f(w) = ½ (w − w*)ᵀ H (w − w*): w* known exactly
    star = rng.normal(size=d)
    w = star + rng.normal(size=d)
    g = H @ (w - star)
    x = np.linalg.solve(H, g)
    res = float(np.linalg.norm(H @ x - g))
    dist = float(np.linalg.norm(w - star))
    b = erm_distance_bound(step_norm=float(np.linalg.norm(x)), residual_norm=res,
                           gradient_norm=float(np.linalg.norm(g)), strong_convexity=lam, hessian_lipschitz=0.0)
    assert b.kind == "newton" and b.condition == 0.0
    assert b.value == pytest.approx(float(np.linalg.norm(x)) + res / lam, rel=1e-13)
    assert b.value >= dist * (1 - 1e-12) and b.value <= dist * (1 + 1e-9)


def test_kind_switches_to_gradient_when_the_condition_fails():
    """2Mr/λ > 1: the Newton bound does not apply and the value is ‖g‖/λ (up to a few ulps)."""
    lam, M, x, res, g = 0.5, 3.0, 0.1, 0.0, 0.4  # r = 0.1, 2Mr/λ = 1.2
    b = erm_distance_bound(step_norm=x, residual_norm=res, gradient_norm=g, strong_convexity=lam,
                           hessian_lipschitz=M)
    assert b.kind == "gradient"
    assert b.condition == pytest.approx(2 * M * 0.1 / lam, rel=1e-15) and b.condition > 1
    assert b.newton_radius == pytest.approx(0.1, rel=1e-15)
    assert g / lam <= b.value <= g / lam * (1 + 1e-12)
    # just inside the region: the Newton bound 2r/(1 + √(1 − c)) applies
    M_in = 0.99 * lam / (2 * 0.1)
    b = erm_distance_bound(step_norm=x, residual_norm=res, gradient_norm=g, strong_convexity=lam,
                           hessian_lipschitz=M_in)
    c = 2 * M_in * 0.1 / lam
    assert b.kind == "newton"
    assert b.value == pytest.approx(2 * 0.1 / (1 + math.sqrt(1 - c)), rel=1e-12)
    assert b.value >= 2 * 0.1 / (1 + math.sqrt(1 - c))


def test_gradient_bound_wins_when_it_is_smaller():
    """Condition ≤ 1 but 2r/(1+√(1−c)) > ‖g‖/λ (a bad step): the smaller, gradient bound is returned."""
    b = erm_distance_bound(step_norm=5.0, residual_norm=1.0, gradient_norm=0.1, strong_convexity=1.0,
                           hessian_lipschitz=0.01)
    assert b.condition <= 1 and b.kind == "gradient"
    assert 0.1 <= b.value <= 0.1 * (1 + 1e-12)
    assert b.newton_radius == pytest.approx(6.0, rel=1e-15)


@pytest.mark.parametrize("seed", range(8))
def test_bad_steps_on_far_points_fall_back_to_the_gradient_and_stay_sound(seed):
    """Far from w* with a huge x: condition > 1, kind 'gradient', still ≥ the true distance."""
    rng = np.random.default_rng(300 + seed)
    prob = random_problem(rng)
    star = measure(prob, np.zeros(prob.d), np.zeros(prob.d))["star"]
    w = star + 2.0 * rng.normal(size=prob.d)
    x = 1e3 * rng.normal(size=prob.d)
    m = measure(prob, w, x)
    b = bound_of(prob, m)
    assert b.condition > 1 and b.kind == "gradient", b
    assert b.value >= m["distance_mp"]
    assert b.value == pytest.approx(m["gradient_norm"] / prob.lam, rel=1e-12)


@PROPERTY_SETTINGS
@given(x=st.floats(0, 10), res=st.floats(0, 10), g=st.floats(0, 10), lam=st.floats(1e-3, 10),
       M=st.floats(0, 100), factor=st.floats(1.0, 4.0))
def test_bound_is_monotone_in_its_inputs(x, res, g, lam, M, factor):
    """Larger upper bounds on ‖x‖, ‖Hx − g‖, ‖g‖, M give a larger (or equal) value; larger λ a smaller one."""
    base = dict(step_norm=x, residual_norm=res, gradient_norm=g, strong_convexity=lam, hessian_lipschitz=M)
    v = erm_distance_bound(**base).value
    for key in ("step_norm", "residual_norm", "gradient_norm", "hessian_lipschitz"):
        assert erm_distance_bound(**dict(base, **{key: base[key] * factor})).value >= v, key
    assert erm_distance_bound(**dict(base, strong_convexity=lam * factor)).value <= v
    # the formulas, re-derived
    r = x + res / lam
    c = 2 * M * r / lam
    want = g / lam
    if c <= 1:
        want = min(want, 2 * r / (1 + math.sqrt(1 - c)))
    assert v == pytest.approx(want, rel=1e-12, abs=1e-300)
    assert v >= want


@pytest.mark.parametrize("bad", [
    dict(strong_convexity=0.0), dict(strong_convexity=-1.0), dict(strong_convexity=math.inf),
    dict(hessian_lipschitz=-1e-9), dict(hessian_lipschitz=math.nan),
    dict(step_norm=-1.0), dict(residual_norm=-1e-300), dict(gradient_norm=-2.0),
    dict(step_norm=math.nan), dict(gradient_norm=math.inf), dict(residual_norm="1"),
])
def test_erm_distance_bound_validates_its_inputs(bad):
    good = dict(step_norm=1e-3, residual_norm=1e-6, gradient_norm=1e-3, strong_convexity=0.1,
                hessian_lipschitz=1.0)
    with pytest.raises(ConfigError):
        erm_distance_bound(**dict(good, **bad))


def test_erm_bound_is_frozen():
    b = erm_distance_bound(step_norm=1.0, residual_norm=0.0, gradient_norm=1.0, strong_convexity=1.0,
                           hessian_lipschitz=0.0)
    with pytest.raises(FrozenInstanceError):
        b.value = 0.0  # type: ignore[misc]


# =========================================================================== default_sensitivity_budget
def excess_risk(budget: float, *, epsilon: float, delta: float, dim: int, smoothness: float,
                calibration: str = "analytic") -> float:
    """(β/2)(Δ² + dσ²), σ = gaussian_sigma(ε, δ, Δ): the excess-risk bound of docs/theory.md §8."""
    sigma = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=budget, method=calibration)
    return 0.5 * smoothness * (budget * budget + dim * sigma * sigma)


@PROPERTY_SETTINGS
@given(epsilon=st.floats(0.05, 20.0), log_delta=st.floats(-12, -1), dim=st.integers(1, 10**6),
       smoothness=st.floats(1e-2, 100.0), tau=st.floats(1e-4, 1.0))
def test_default_budget_spends_the_risk_tolerance(epsilon, log_delta, dim, smoothness, tau):
    """(β/2)(Δ_b² + dσ(Δ_b)²) ≤ τ, and ≥ 0.999 τ: the rule picks (about) the largest admissible budget."""
    delta = 10.0**log_delta
    budget = default_sensitivity_budget(epsilon=epsilon, delta=delta, dim=dim, smoothness=smoothness,
                                        risk_tolerance=tau)
    risk = excess_risk(budget, epsilon=epsilon, delta=delta, dim=dim, smoothness=smoothness)
    assert risk <= tau, (risk, tau)
    assert risk >= 0.999 * tau, (risk, tau)
    # the closed form Δ_b = √(2τ / (β (1 + d σ₁²))), a hair below
    unit = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=1.0)
    closed = math.sqrt(2 * tau / (smoothness * (1 + dim * unit * unit)))
    assert 0.999 * closed <= budget <= closed


@PROPERTY_SETTINGS
@given(epsilon=st.floats(0.05, 0.95), log_delta=st.floats(-12, -2), dim=st.integers(1, 10**5),
       smoothness=st.floats(1e-2, 10.0))
def test_default_budget_with_classical_calibration(epsilon, log_delta, dim, smoothness):
    """The classical σ (ε < 1) is larger, so its budget is smaller; the risk is still ≤ τ, ≥ 0.999 τ."""
    delta = 10.0**log_delta
    kw = dict(epsilon=epsilon, delta=delta, dim=dim, smoothness=smoothness)
    classical = default_sensitivity_budget(**kw, calibration="classical")
    analytic = default_sensitivity_budget(**kw)
    assert classical < analytic
    risk = excess_risk(classical, **kw, calibration="classical")
    assert 0.999 * DEFAULT_RISK_TOLERANCE <= risk <= DEFAULT_RISK_TOLERANCE


@PROPERTY_SETTINGS
@given(epsilon=st.floats(0.05, 10.0), factor=st.floats(1.01, 10.0), log_delta=st.floats(-10, -2),
       dim=st.integers(1, 10**5), smoothness=st.floats(1e-2, 10.0))
def test_default_budget_is_monotone(epsilon, factor, log_delta, dim, smoothness):
    """Larger ε or τ: larger budget; larger d or β: smaller budget."""
    delta = 10.0**log_delta
    base = dict(epsilon=epsilon, delta=delta, dim=dim, smoothness=smoothness)
    b = default_sensitivity_budget(**base)
    assert default_sensitivity_budget(**dict(base, epsilon=epsilon * factor)) > b
    assert default_sensitivity_budget(**dict(base, dim=dim * 2 + 1)) < b
    assert default_sensitivity_budget(**dict(base, smoothness=smoothness * factor)) < b
    assert default_sensitivity_budget(**base, risk_tolerance=DEFAULT_RISK_TOLERANCE * factor) > b


def test_default_budget_docstring_value():
    """The module's example (ε = 1, δ = 1e-5, d = 650, β = 1.001), recomputed from gaussian_sigma."""
    unit = gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=1.0)
    want = math.sqrt(2 * 0.01 / (1.001 * (1 + 650 * unit * unit)))
    got = default_sensitivity_budget(epsilon=1.0, delta=1e-5, dim=650, smoothness=1.001)
    assert got == pytest.approx(want, rel=2e-6) and got < want
    assert round(got, 6) == 0.001486
    assert DEFAULT_RISK_TOLERANCE == 0.01


@pytest.mark.parametrize("bad", [
    dict(epsilon=0.0), dict(epsilon=-1.0), dict(delta=0.0), dict(delta=1.0), dict(dim=0), dict(dim=2.5),
    dict(dim=True), dict(smoothness=0.0), dict(smoothness=math.inf), dict(risk_tolerance=0.0),
    dict(risk_tolerance=-0.1), dict(calibration="bogus"), dict(calibration="classical", epsilon=2.0),
])
def test_default_budget_validates_its_inputs(bad):
    good = dict(epsilon=1.0, delta=1e-5, dim=10, smoothness=1.0)
    with pytest.raises(ConfigError):
        default_sensitivity_budget(**dict(good, **bad))


# =========================================================================== floor and check
def test_budget_floor_is_eight_unit_roundoffs_times_the_radius():
    assert budget_floor(unit_roundoff=2.0**-24, radius=10.0) == 8 * 2.0**-24 * 10.0
    assert budget_floor(unit_roundoff=2.0**-53, radius=3.0) == pytest.approx(8 * 2.0**-53 * 3.0, rel=1e-15)
    for bad in (dict(unit_roundoff=0.0), dict(radius=0.0), dict(radius=-1.0), dict(unit_roundoff=math.nan)):
        with pytest.raises(ConfigError):
            budget_floor(**dict(dict(unit_roundoff=2.0**-24, radius=1.0), **bad))


def test_check_budget_accepts_at_and_above_the_floor_and_explains_a_refusal():
    floor = budget_floor(unit_roundoff=2.0**-24, radius=10.0)
    assert check_budget(floor, floor) == floor
    assert check_budget(2 * floor, floor) == 2 * floor
    assert check_budget(1e-300, None) == 1e-300  # no floor known: any positive budget
    with pytest.raises(ConfigError) as info:
        check_budget(0.5 * floor, floor)
    message = str(info.value)
    assert "below" in message and f"{floor:.3g}" in message and f"{0.5 * floor:.3g}" in message
    assert "float64" in message and "8 u R" in message
    for bad in (0.0, -1e-3, math.nan, math.inf):
        with pytest.raises(ConfigError, match="sensitivity_budget"):
            check_budget(bad, None)
