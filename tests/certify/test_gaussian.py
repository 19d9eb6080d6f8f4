"""Tests of the Gaussian-mechanism calibration (certunlearn.certify.gaussian).

Layers: pinned values with their source, an mpmath high-precision reference
of the exact trade-off, a cross-check against Opacus' exact GDP duality, post-conditions, hypothesis
properties, and validation.
"""

from __future__ import annotations

import math

import mpmath as mp
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from certunlearn.certify.gaussian import (
    gaussian_delta,
    gaussian_epsilon,
    gaussian_sigma,
    log_delta_for_mu,
)
from certunlearn.errors import CertUnlearnError, ConfigError

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, database=None)

# ---------------------------------------------------------------------------------------------
# mpmath reference: δ(μ, ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2), at 60 significant digits.
# ---------------------------------------------------------------------------------------------

_DPS = 60


def mp_delta(mu: object, epsilon: object) -> mp.mpf:
    """Exact δ of the Gaussian mechanism with μ = Δ/σ (Balle & Wang 2018; Dong, Roth & Su Cor. 2.13)."""
    with mp.workdps(_DPS):
        mu, epsilon = mp.mpf(mu), mp.mpf(epsilon)
        return +(
            mp.ncdf(-epsilon / mu + mu / 2) - mp.exp(epsilon) * mp.ncdf(-epsilon / mu - mu / 2)
        )


def mp_sigma(epsilon: float, delta: float) -> mp.mpf:
    """σ₁(ε, δ) for Δ = 1 by bisection in log μ on the mpmath δ (increasing in μ), to ~1e-25."""
    with mp.workdps(_DPS):
        log_target = mp.log(mp.mpf(delta))

        def excess(log_mu: mp.mpf) -> mp.mpf:
            return mp.log(mp_delta(mp.exp(log_mu), epsilon)) - log_target

        lo, hi = mp.mpf(-1), mp.mpf(1)
        while excess(lo) > 0:
            lo -= 2
        while excess(hi) < 0:
            hi += 2
        for _ in range(90):
            mid = (lo + hi) / 2
            if excess(mid) > 0:
                hi = mid
            else:
                lo = mid
        return 1 / mp.exp((lo + hi) / 2)


def _rel_err(value: float, reference: mp.mpf) -> float:
    with mp.workdps(_DPS):
        return float(abs(mp.mpf(value) / reference - 1))


GRID_EPSILONS = [1e-3, 0.1, 0.5, 1.0, 2.0, 10.0, 100.0, 1000.0]
GRID_DELTAS = [0.5, 1e-2, 1e-5, 1e-8, 1e-12]
GRID = [(e, d) for e in GRID_EPSILONS for d in GRID_DELTAS]


# ---------------------------------------------------------------------------------------------
# Pinned values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epsilon", "delta", "expected"),
    [(1.0, 1e-5, 3.7306), (0.5, 1e-5, 7.0318), (2.0, 1e-6, 2.2305), (10.0, 1e-5, 0.4999)],
)
def test_analytic_sigma_pinned_values(epsilon: float, delta: float, expected: float) -> None:
    """σ₁(ε, δ) of the analytic Gaussian mechanism (Balle & Wang, ICML 2018), Δ = 1.

    Values: the root of Balle & Wang's exact condition (Thm. 8), as tabulated in docs/calibration.md
    §4, column "analytic", recomputed independently with numpy/scipy; printed to 4 decimals, hence
    the 5e-5 tolerance.
    """
    assert gaussian_sigma(epsilon=epsilon, delta=delta) == pytest.approx(expected, abs=5e-5)


def test_classical_sigma_pinned_value() -> None:
    """Classical σ = Δ√(2 ln(1.25/δ))/ε (Dwork & Roth 2014, Thm. A.1) at (0.5, 1e-5): 9.690.

    Value from the formula itself, as tabulated in docs/calibration.md §4, column "classical".
    """
    sigma = gaussian_sigma(epsilon=0.5, delta=1e-5, method="classical")
    assert sigma == pytest.approx(9.690, abs=5e-4)
    assert gaussian_sigma(epsilon=0.5, delta=1e-5, method="classical", sensitivity=3.0) == (
        pytest.approx(3.0 * sigma, rel=1e-14)
    )


@pytest.mark.parametrize("epsilon", [1.0, 1.5, 2.0, 10.0])
def test_classical_refuses_epsilon_at_least_one(epsilon: float) -> None:
    """Dwork & Roth's bound is only proven for ε < 1 (Dwork & Roth 2014, Thm. A.1); ε ≥ 1 is refused."""
    with pytest.raises(ConfigError, match="epsilon"):
        gaussian_sigma(epsilon=epsilon, delta=1e-5, method="classical")


@PROPERTY_SETTINGS
@given(
    epsilon=st.floats(min_value=1e-3, max_value=0.999),
    log10_delta=st.floats(min_value=-12, max_value=-1),
)
def test_classical_is_never_below_analytic(epsilon: float, log10_delta: float) -> None:
    """For ε < 1 the classical σ is valid, so it can never be below the exact (smallest) σ."""
    delta = 10.0**log10_delta
    assert gaussian_sigma(epsilon=epsilon, delta=delta, method="classical") > gaussian_sigma(
        epsilon=epsilon, delta=delta
    )


# ---------------------------------------------------------------------------------------------
# mpmath reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("epsilon", "delta"), GRID)
def test_gaussian_delta_matches_mpmath(epsilon: float, delta: float) -> None:
    """gaussian_delta at the exact σ₁(ε, δ) agrees with the 60-digit mpmath δ to 1e-9 (relative).

    The 1e-9 slack covers the float64 cancellation in 1 − e^z for small ε (observed ≤ 1e-10 on
    this grid); the float64 σ itself is rounded, so both sides are evaluated at the same float σ.
    """
    sigma = float(mp_sigma(epsilon, delta))
    with mp.workdps(_DPS):
        exact = mp_delta(1 / mp.mpf(sigma), epsilon)
    value = gaussian_delta(sigma=sigma, epsilon=epsilon)
    assert _rel_err(value, exact) < 1e-9, (value, float(exact))
    log_value = log_delta_for_mu(mu=1.0 / sigma, epsilon=epsilon)
    with mp.workdps(_DPS):
        exact_log = mp.log(mp_delta(mp.mpf(1.0 / sigma), epsilon))
    assert abs(log_value - float(exact_log)) < 1e-9


@pytest.mark.parametrize(("epsilon", "delta"), GRID)
def test_gaussian_sigma_matches_mpmath(epsilon: float, delta: float) -> None:
    """gaussian_sigma is the exact root: it agrees with the mpmath σ₁(ε, δ) to 1e-10 (relative)."""
    assert _rel_err(gaussian_sigma(epsilon=epsilon, delta=delta), mp_sigma(epsilon, delta)) < 1e-10


@pytest.mark.parametrize(("epsilon", "delta"), [*GRID, (1e-6, 1e-5), (1e-6, 1e-12)])
def test_returned_sigma_is_private_in_exact_arithmetic(epsilon: float, delta: float) -> None:
    """The promise "a returned value is never less private than asked", checked with mpmath.

    The true δ at the returned σ may exceed the target only by float64 evaluation noise
    (relative 1e-11 here); anything larger means the float post-check accepted an unsafe σ.
    """
    sigma = gaussian_sigma(epsilon=epsilon, delta=delta)
    with mp.workdps(_DPS):
        true_delta = mp_delta(1 / mp.mpf(sigma), epsilon)
        excess = float(true_delta / mp.mpf(delta) - 1)
    assert excess <= 1e-11, f"true delta exceeds the target by a relative {excess:.2e}"


# ---------------------------------------------------------------------------------------------
# Opacus cross-check (exact GDP duality for one Gaussian release)
# ---------------------------------------------------------------------------------------------

OPACUS_POINTS = [(1.0, 1e-5), (0.5, 1e-5), (2.0, 1e-6), (10.0, 1e-5), (0.3, 1e-3), (5.0, 1e-8)]


@pytest.mark.parametrize(("epsilon", "delta"), OPACUS_POINTS)
def test_cross_check_with_opacus_gdp(epsilon: float, delta: float) -> None:
    """Opacus' ``delta_eps_mu(eps=, mu=)`` and ``eps_from_mu(mu=, delta=)`` (one Gaussian, μ = Δ/σ)."""
    from opacus.accountants.analysis.gdp import delta_eps_mu, eps_from_mu

    sigma = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=2.0)
    mu = 2.0 / sigma  # the noise multiplier is σ/Δ, so μ = Δ/σ
    assert float(delta_eps_mu(eps=epsilon, mu=mu)) == pytest.approx(delta, rel=1e-7)
    assert float(eps_from_mu(mu=mu, delta=delta)) == pytest.approx(epsilon, rel=1e-7)
    assert gaussian_epsilon(sigma=sigma, delta=delta, sensitivity=2.0) == pytest.approx(
        float(eps_from_mu(mu=mu, delta=delta)), rel=1e-7
    )
    assert gaussian_delta(sigma=sigma, epsilon=epsilon, sensitivity=2.0) == pytest.approx(
        float(delta_eps_mu(eps=epsilon, mu=mu)), rel=1e-7
    )


# ---------------------------------------------------------------------------------------------
# Post-conditions, tightness, round trips, large ε
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("epsilon", "delta"), [*GRID, (5000.0, 1e-5), (5000.0, 1e-12)])
@pytest.mark.parametrize("sensitivity", [1.0, 0.03, 250.0])
def test_sigma_post_condition_and_tightness(
    epsilon: float, delta: float, sensitivity: float
) -> None:
    """δ(σ) ≤ δ target for the returned float σ, and σ·(1 − 1e-9) already violates it."""
    sigma = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=sensitivity)
    assert math.isfinite(sigma) and sigma > 0
    assert gaussian_delta(sigma=sigma, epsilon=epsilon, sensitivity=sensitivity) <= delta
    smaller = sigma * (1 - 1e-9)
    assert gaussian_delta(sigma=smaller, epsilon=epsilon, sensitivity=sensitivity) > delta


@pytest.mark.parametrize(("epsilon", "delta"), GRID)
def test_epsilon_post_condition_and_tightness(epsilon: float, delta: float) -> None:
    """gaussian_epsilon returns ε with δ(σ, ε) ≤ δ, and ε·(1 − 1e-9) violates it."""
    sigma = float(mp_sigma(epsilon, delta))
    eps = gaussian_epsilon(sigma=sigma, delta=delta)
    assert gaussian_delta(sigma=sigma, epsilon=eps) <= delta
    assert gaussian_delta(sigma=sigma, epsilon=eps * (1 - 1e-9)) > delta
    assert eps == pytest.approx(epsilon, rel=1e-9)


@pytest.mark.parametrize(("epsilon", "delta"), GRID)
def test_round_trip_epsilon_sigma_epsilon(epsilon: float, delta: float) -> None:
    """ε → σ → ε and σ → ε → σ return the start to 1e-9 (relative)."""
    sigma = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=0.7)
    eps = gaussian_epsilon(sigma=sigma, delta=delta, sensitivity=0.7)
    assert eps == pytest.approx(epsilon, rel=1e-9)
    assert gaussian_sigma(epsilon=eps, delta=delta, sensitivity=0.7) == pytest.approx(
        sigma, rel=1e-9
    )


@pytest.mark.parametrize("epsilon", [1000.0, 5000.0])
def test_large_epsilon_does_not_overflow(epsilon: float) -> None:
    """e^ε overflows a float for ε ≳ 709 (docs/calibration.md §2, "Why the computation is done in the
    log domain"): the log domain must not."""
    with pytest.raises(OverflowError):  # the premise: e^ε itself is not a float
        math.exp(epsilon)
    sigma = gaussian_sigma(epsilon=epsilon, delta=1e-5)
    assert math.isfinite(sigma) and 0 < sigma < 1
    assert _rel_err(sigma, mp_sigma(epsilon, 1e-5)) < 1e-10
    assert gaussian_epsilon(sigma=sigma, delta=1e-5) == pytest.approx(epsilon, rel=1e-9)
    delta = gaussian_delta(sigma=sigma, epsilon=epsilon)
    assert math.isfinite(delta) and 0 < delta <= 1e-5
    assert math.isfinite(log_delta_for_mu(mu=1.0 / sigma, epsilon=epsilon))


def test_epsilon_zero_when_noise_already_suffices() -> None:
    """δ(σ, 0) = 2Φ(μ/2) − 1; if that is already ≤ δ, the smallest ε is 0."""
    sigma = 1e6
    with mp.workdps(_DPS):
        delta_at_zero = float(2 * mp.ncdf(mp.mpf(0.5) / sigma) - 1)
    assert gaussian_delta(sigma=sigma, epsilon=0.0) == pytest.approx(delta_at_zero, rel=1e-9)
    assert gaussian_epsilon(sigma=sigma, delta=1e-5) == 0.0
    assert gaussian_epsilon(sigma=1.0, delta=1e-5) > 0.0


# ---------------------------------------------------------------------------------------------
# Hypothesis properties
# ---------------------------------------------------------------------------------------------

epsilons = st.floats(min_value=0.01, max_value=50.0)
log10_deltas = st.floats(min_value=-12.0, max_value=-1.0)
factors = st.floats(min_value=1.001, max_value=10.0)


@PROPERTY_SETTINGS
@given(epsilon=epsilons, log10_delta=log10_deltas, factor=factors)
def test_sigma_decreasing_in_epsilon(epsilon: float, log10_delta: float, factor: float) -> None:
    delta = 10.0**log10_delta
    assert gaussian_sigma(epsilon=epsilon, delta=delta) > gaussian_sigma(
        epsilon=epsilon * factor, delta=delta
    )


@PROPERTY_SETTINGS
@given(epsilon=epsilons, log10_delta=log10_deltas, factor=factors)
def test_sigma_decreasing_in_delta(epsilon: float, log10_delta: float, factor: float) -> None:
    delta = 10.0**log10_delta
    larger = min(delta * factor, 0.9)
    assume(larger > delta * 1.001)
    assert gaussian_sigma(epsilon=epsilon, delta=delta) > gaussian_sigma(
        epsilon=epsilon, delta=larger
    )


@PROPERTY_SETTINGS
@given(
    epsilon=epsilons,
    log10_delta=log10_deltas,
    sensitivity=st.floats(min_value=1e-3, max_value=1e3),
)
def test_sigma_linear_in_sensitivity(
    epsilon: float, log10_delta: float, sensitivity: float
) -> None:
    delta = 10.0**log10_delta
    unit = gaussian_sigma(epsilon=epsilon, delta=delta)
    scaled = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=sensitivity)
    assert scaled == pytest.approx(sensitivity * unit, rel=1e-12)


@PROPERTY_SETTINGS
@given(sigma=st.floats(min_value=0.05, max_value=100.0), log10_delta=log10_deltas, factor=factors)
def test_epsilon_decreasing_in_sigma(sigma: float, log10_delta: float, factor: float) -> None:
    delta = 10.0**log10_delta
    low_noise = gaussian_epsilon(sigma=sigma, delta=delta)
    high_noise = gaussian_epsilon(sigma=sigma * factor, delta=delta)
    assert high_noise <= low_noise
    if low_noise > 0:
        assert high_noise < low_noise


@PROPERTY_SETTINGS
@given(sigma=st.floats(min_value=0.05, max_value=100.0), log10_delta=log10_deltas)
def test_round_trip_sigma_epsilon_sigma(sigma: float, log10_delta: float) -> None:
    delta = 10.0**log10_delta
    epsilon = gaussian_epsilon(sigma=sigma, delta=delta)
    assume(epsilon > 1e-2)
    assert gaussian_sigma(epsilon=epsilon, delta=delta) == pytest.approx(sigma, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

GOOD = {"epsilon": 1.0, "delta": 1e-5, "sensitivity": 1.0}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epsilon", 0.0),
        ("epsilon", -1.0),
        ("epsilon", math.nan),
        ("epsilon", math.inf),
        ("epsilon", True),
        ("epsilon", "1.0"),
        ("delta", 0.0),
        ("delta", 1.0),
        ("delta", -1e-5),
        ("delta", 1.5),
        ("delta", math.nan),
        ("delta", math.inf),
        ("delta", False),
        ("sensitivity", 0.0),
        ("sensitivity", -2.0),
        ("sensitivity", math.nan),
        ("sensitivity", math.inf),
        ("sensitivity", True),
    ],
)
def test_gaussian_sigma_rejects_bad_arguments(field: str, value: object) -> None:
    kwargs = {**GOOD, field: value}
    with pytest.raises(ConfigError) as info:
        gaussian_sigma(**kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert field in message and repr(value) in message, message


def test_gaussian_sigma_rejects_unknown_method() -> None:
    with pytest.raises(ConfigError) as info:
        gaussian_sigma(epsilon=1.0, delta=1e-5, method="renyi")
    message = str(info.value)
    assert "'renyi'" in message and "analytic" in message and "classical" in message


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"sigma": 0.0, "delta": 1e-5}, "sigma"),
        ({"sigma": -1.0, "delta": 1e-5}, "sigma"),
        ({"sigma": math.nan, "delta": 1e-5}, "sigma"),
        ({"sigma": 1.0, "delta": 1.0}, "delta"),
        ({"sigma": 1.0, "delta": math.inf}, "delta"),
        ({"sigma": 1.0, "delta": 1e-5, "sensitivity": 0.0}, "sensitivity"),
    ],
)
def test_gaussian_epsilon_rejects_bad_arguments(kwargs: dict[str, float], bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        gaussian_epsilon(**kwargs)
    assert bad in str(info.value) and repr(kwargs[bad]) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"sigma": 1.0, "epsilon": -0.1}, "epsilon"),
        ({"sigma": 1.0, "epsilon": math.nan}, "epsilon"),
        ({"sigma": 1.0, "epsilon": math.inf}, "epsilon"),
        ({"sigma": 1.0, "epsilon": True}, "epsilon"),
        ({"sigma": 0.0, "epsilon": 1.0}, "sigma"),
        ({"sigma": 1.0, "epsilon": 1.0, "sensitivity": -1.0}, "sensitivity"),
    ],
)
def test_gaussian_delta_rejects_bad_arguments(kwargs: dict[str, float], bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        gaussian_delta(**kwargs)
    assert bad in str(info.value) and repr(kwargs[bad]) in str(info.value)


def test_errors_are_value_errors_of_the_library_tree() -> None:
    with pytest.raises(ValueError):
        gaussian_sigma(epsilon=-1.0, delta=1e-5)
    with pytest.raises(CertUnlearnError):
        gaussian_sigma(epsilon=-1.0, delta=1e-5)


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        gaussian_sigma(1.0, 1e-5)  # type: ignore[misc]
