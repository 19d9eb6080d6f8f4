"""Tests of the composition of published releases (certunlearn.accounting).

References used here, none of them the module under test:

* the exact ε of one Gaussian mechanism (certunlearn.certify.gaussian, itself checked against mpmath
  in tests/certify/test_gaussian.py) and an mpmath evaluation of the Balle & Wang (ICML 2018, Thm. 8)
  trade-off, δ(μ, ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2);
* Gaussian DP composition (Dong, Roth & Su, JRSS-B 2022, Cor. 3.3): k full-batch releases with
  multipliers z_i are exactly one Gaussian mechanism with μ = √(Σ 1/z_i²), so k releases at z are
  one release at z/√k;
* closed forms of the RDP route: at q = 1 a release has RDP ρα with ρ = 1/(2z²) (Mironov, CSF 2017,
  Prop. 7), RDP adds up; opacus's get_privacy_spent converts with Balle et al. (AISTATS 2020, Thm. 21),
  ε = min_α ρα + log((α − 1)/α) − (log δ + log α)/(α − 1), never above Mironov's conversion
  (Prop. 3), whose continuous optimum is ε = ρ + 2√(ρ log(1/δ));
* basic composition (Dwork & Roth 2014, Thm. 3.16): Σε_i, Σδ_i.
"""

from __future__ import annotations

import json
import math

import mpmath as mp
import numpy as np
import pytest

from certunlearn.accounting import (
    COMPOSITION_METHODS,
    PRV_EPS_ERROR,
    RDP_ORDERS,
    ComposedPrivacy,
    GaussianRelease,
    compose_releases,
)
from certunlearn.certify.gaussian import gaussian_epsilon, gaussian_sigma
from certunlearn.certify.ledger import LedgerEvent
from certunlearn.errors import ConfigError


def _releases(multipliers: list[float], sensitivity: float = 0.25) -> list[GaussianRelease]:
    return [GaussianRelease(sigma=z * sensitivity, sensitivity=sensitivity) for z in multipliers]


def _exact(multipliers: list[float], delta: float) -> float:
    """ε of the composition, exactly: one Gaussian mechanism with μ = √(Σ 1/z²) (Dong et al.)."""
    mu = math.sqrt(sum(1.0 / z**2 for z in multipliers))
    return gaussian_epsilon(sigma=1.0 / mu, delta=delta)


def _balle_rdp_epsilon(rho: float, delta: float) -> float:
    """Balle et al. 2020 Thm. 21 over the module's order grid, for total RDP ρα (independent code)."""
    best = math.inf
    for alpha in RDP_ORDERS:
        value = rho * alpha + math.log((alpha - 1) / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        best = min(best, value)
    return max(best, 0.0)


def _mironov_epsilon(rho: float, delta: float) -> float:
    """Mironov 2017 Prop. 3, minimised over α in closed form: ρ + 2√(ρ log(1/δ))."""
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def _mp_delta(mu: float, epsilon: float) -> float:
    with mp.workdps(50):
        mu, epsilon = mp.mpf(mu), mp.mpf(epsilon)
        return float(mp.ncdf(-epsilon / mu + mu / 2) - mp.exp(epsilon) * mp.ncdf(-epsilon / mu - mu / 2))


# --------------------------------------------------------------------------------------------------
# one release
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [1e-5, 1e-8])
@pytest.mark.parametrize("z", [0.5, 1.0, 2.0, 3.7306, 5.0, 10.0])
def test_one_release_rdp_is_above_the_exact_epsilon_and_not_far(z: float, delta: float) -> None:
    result = compose_releases(_releases([z]), delta=delta)
    exact = gaussian_epsilon(sigma=z, delta=delta)
    assert result.epsilon >= exact
    assert result.epsilon <= 1.25 * exact  # RDP's looseness for one Gaussian is a few to ~20 per cent
    assert result.epsilon == pytest.approx(_balle_rdp_epsilon(1 / (2 * z**2), delta), rel=1e-12)
    assert result.basic_epsilon == pytest.approx(exact, rel=1e-12)  # one release: δ_1 = δ, its exact ε
    assert result.basic_delta == delta


def test_pinned_single_release_values() -> None:
    # z = 1, δ = 1e-5: exact ε = 4.3772 (Balle & Wang; gaussian_epsilon), Mironov's closed form
    # 0.5 + 2√(0.5·ln 1e5) = 5.2985, Balle et al.'s Thm. 21 over the grid 4.7284.
    result = compose_releases(_releases([1.0]), delta=1e-5)
    assert round(gaussian_epsilon(sigma=1.0, delta=1e-5), 4) == 4.3772
    assert round(_mironov_epsilon(0.5, 1e-5), 4) == 5.2985
    assert round(result.epsilon, 4) == 4.7284
    assert "alpha = " in result.note and result.method == "rdp" and result.releases == 1


# --------------------------------------------------------------------------------------------------
# k identical releases = one release at z/√k
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 4, 9, 25, 100])
@pytest.mark.parametrize("z", [1.0, 2.0, 5.0])
def test_k_releases_compose_like_one_release_at_z_over_sqrt_k(z: float, k: int) -> None:
    delta = 1e-5
    composed = compose_releases(_releases([z] * k), delta=delta)
    single = compose_releases(_releases([z / math.sqrt(k)]), delta=delta)
    assert composed.epsilon == pytest.approx(single.epsilon, rel=1e-9, abs=1e-9)
    rho = k / (2 * z**2)
    assert composed.epsilon == pytest.approx(_balle_rdp_epsilon(rho, delta), rel=1e-9)
    assert composed.epsilon <= _mironov_epsilon(rho, delta) * (1 + 1e-4)  # grid loss <= ~2e-5
    assert composed.epsilon >= gaussian_epsilon(sigma=z / math.sqrt(k), delta=delta)


@pytest.mark.parametrize("k", [1, 4, 16, 64])
def test_analytic_is_exact_for_k_identical_releases(k: int) -> None:
    z, delta = 3.0, 1e-6
    result = compose_releases(_releases([z] * k), delta=delta, method="analytic")
    mu = math.sqrt(k) / z
    assert result.epsilon == pytest.approx(gaussian_epsilon(sigma=z / math.sqrt(k), delta=delta), rel=1e-12)
    achieved = _mp_delta(mu, result.epsilon)  # the trade-off at the returned ε, in high precision
    assert achieved <= delta * (1 + 1e-12)
    assert achieved >= delta * (1 - 1e-6)  # tight: the exact ε, not a bound with slack


# --------------------------------------------------------------------------------------------------
# mixed multipliers, PRV, and the order of methods
# --------------------------------------------------------------------------------------------------

MIXED = [1.5, 2.0, 2.0, 3.0, 4.5, 5.0]


def test_mixed_multipliers_match_the_closed_forms_and_the_order_does_not_matter() -> None:
    delta = 1e-5
    rho = sum(1 / (2 * z**2) for z in MIXED)
    rdp = compose_releases(_releases(MIXED), delta=delta)
    assert rdp.epsilon == pytest.approx(_balle_rdp_epsilon(rho, delta), rel=1e-9)
    assert compose_releases(_releases(MIXED[::-1]), delta=delta).epsilon == rdp.epsilon
    analytic = compose_releases(_releases(MIXED), delta=delta, method="analytic")
    assert analytic.epsilon == pytest.approx(_exact(MIXED, delta), rel=1e-12)
    assert analytic.epsilon <= rdp.epsilon < rdp.basic_epsilon


@pytest.mark.parametrize("multipliers", [[1.0], [2.0] * 4, MIXED, [5.0] * 100, [0.5] * 3])
def test_prv_is_an_upper_bound_within_its_stated_error(multipliers: list[float]) -> None:
    delta = 1e-5
    prv = compose_releases(_releases(multipliers), delta=delta, method="prv")
    # opacus's stated guarantee: ε(δ − δ/1000) + eps_error, ε(·) the exact curve, up to its discretisation
    assert _exact(multipliers, delta) <= prv.epsilon
    assert prv.epsilon <= _exact(multipliers, delta * (1 - 1e-3)) + PRV_EPS_ERROR * 1.05
    assert prv.epsilon <= compose_releases(_releases(multipliers), delta=delta).epsilon
    assert "PRV" in prv.note


def test_pinned_composition_of_ten_certified_releases() -> None:
    # Ten releases each certified (ε, δ) = (1, 1e-5): z = σ₁(1, 1e-5) = 3.7306 (docs/calibration.md §4);
    # basic composition says (10, 1e-4); at the same total δ = 1e-4 the accountants say much less.
    sigma_1 = gaussian_sigma(epsilon=1.0, delta=1e-5)
    releases = [GaussianRelease(sigma=sigma_1 * 0.2, sensitivity=0.2, epsilon=1.0, delta=1e-5)] * 10
    results = {m: compose_releases(releases, delta=1e-4, method=m) for m in COMPOSITION_METHODS}
    assert results["basic"].epsilon == pytest.approx(10.0) and results["basic"].delta == pytest.approx(1e-4)
    assert round(results["analytic"].epsilon, 3) == 3.130
    assert round(results["rdp"].epsilon, 3) == 3.443
    assert results["analytic"].epsilon <= results["prv"].epsilon <= results["analytic"].epsilon + 0.0105
    for result in results.values():
        assert result.basic_epsilon == pytest.approx(10.0) and result.basic_delta == pytest.approx(1e-4)


# --------------------------------------------------------------------------------------------------
# better than the basic sum, monotone in k
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["rdp", "analytic"])
@pytest.mark.parametrize("z", [1.0, 2.0, 3.0, 5.0])
def test_composition_beats_the_basic_sum_and_grows_with_k(z: float, method: str) -> None:
    delta = 1e-5
    previous = 0.0
    for k in [1, 2, 4, 8, 16, 32]:
        result = compose_releases(_releases([z] * k), delta=delta, method=method)
        assert result.basic_delta == pytest.approx(delta)  # same total δ: the comparison is fair
        if k >= 4:
            assert result.epsilon < result.basic_epsilon
        assert result.epsilon > previous
        previous = result.epsilon


def test_prv_is_monotone_in_k_and_below_the_basic_sum() -> None:
    values = [compose_releases(_releases([2.0] * k), delta=1e-5, method="prv") for k in (1, 4, 16)]
    assert values[0].epsilon < values[1].epsilon < values[2].epsilon
    assert all(v.epsilon < v.basic_epsilon for v in values[1:])


# --------------------------------------------------------------------------------------------------
# undefined compositions, ledger events, results
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "phrase"), [
    (GaussianRelease(sigma=0.0, sensitivity=0.1, label="r2"), "release 1 (r2) has no noise"),
    (GaussianRelease(sigma=0.5, sensitivity=None), "release 1 has no known sensitivity"),
    (GaussianRelease(sigma=0.5, sensitivity=0.1, noise_source="seeded"), "reproducible noise"),
])
@pytest.mark.parametrize("method", sorted(COMPOSITION_METHODS))
def test_a_release_that_is_no_gaussian_mechanism_makes_the_composition_undefined(
    bad: GaussianRelease, phrase: str, method: str
) -> None:
    result = compose_releases([GaussianRelease(sigma=0.5, sensitivity=0.1), bad], delta=1e-5, method=method)
    assert result.epsilon is None and result.basic_epsilon is None and result.basic_delta is None
    assert not result.defined and phrase in result.note and "release 0" not in result.note
    assert json.loads(json.dumps(result.as_dict()))["defined"] is False


def test_ledger_events_are_read_directly() -> None:
    sigma = gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=0.1)
    events = [LedgerEvent.create(request_id=f"r{i}", ids=[i], cumulative_count=i + 1, method="hfocu",
                                 sensitivity=0.1, sigma=sigma, epsilon=1.0, delta=1e-5, certified=True)
              for i in range(4)]
    result = compose_releases(events, delta=4e-5)
    assert result.basic_epsilon == pytest.approx(4.0) and result.basic_delta == pytest.approx(4e-5)
    assert result.epsilon < 4.0
    seeded = LedgerEvent.create(request_id="r9", ids=[9], cumulative_count=5, method="hfocu", sensitivity=0.1,
                                sigma=sigma, epsilon=1.0, delta=1e-5, certified=True, noise_source="seeded")
    assert "release 4 (r9) has reproducible noise" in compose_releases([*events, seeded], delta=1e-5).note


def test_result_is_frozen_and_serialisable() -> None:
    result = compose_releases(_releases([2.0, 3.0]), delta=1e-6, method="basic")
    assert result.epsilon == result.basic_epsilon and result.delta == result.basic_delta
    assert "basic composition" in result.note and "fallback" in result.note
    data = json.loads(json.dumps(result.as_dict()))
    assert data["method"] == "basic" and data["releases"] == 2 and data["defined"] is True
    with pytest.raises(AttributeError):
        result.epsilon = 0.0  # type: ignore[misc]


def test_epsilon_is_never_negative_and_far_out_orders_are_labelled() -> None:
    assert compose_releases(_releases([10.0]), delta=0.9).epsilon == 0.0
    loose = compose_releases(_releases([1e-5]), delta=1e-5)  # the best order is below the grid
    assert loose.epsilon >= gaussian_epsilon(sigma=1e-5, delta=1e-5)
    assert "end of the grid" in loose.note


def test_basic_vacuous_delta_is_labelled() -> None:
    releases = [GaussianRelease(sigma=1.0, sensitivity=1.0, epsilon=5.0, delta=0.4)] * 3
    result = compose_releases(releases, delta=1e-5, method="basic")
    assert result.delta == pytest.approx(1.2) and "vacuous" in result.note


# --------------------------------------------------------------------------------------------------
# input errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "phrase"), [
    ({"sigma": -0.1, "sensitivity": 1.0}, "sigma must be >= 0"),
    ({"sigma": math.nan, "sensitivity": 1.0}, "sigma must be finite"),
    ({"sigma": 1.0, "sensitivity": 0.0}, "sensitivity must be > 0"),
    ({"sigma": 1.0, "sensitivity": -2.0}, "sensitivity must be > 0"),
    ({"sigma": 1.0, "sensitivity": 1.0, "epsilon": 1.0}, "together"),
    ({"sigma": 1.0, "sensitivity": 1.0, "epsilon": -1.0, "delta": 1e-5}, "epsilon must be >= 0"),
    ({"sigma": 1.0, "sensitivity": 1.0, "epsilon": 1.0, "delta": 1.0}, "delta must be in (0, 1)"),
    ({"sigma": 1.0, "sensitivity": 1.0, "noise_source": "mt19937"}, "noise_source must be one of"),
])
def test_bad_releases_are_config_errors(fields: dict, phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        GaussianRelease(**fields)
    with pytest.raises(ConfigError):
        compose_releases([fields], delta=1e-5)


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, 1.5, math.nan, math.inf, "1e-5", True])
def test_bad_delta_is_a_config_error(delta: object) -> None:
    with pytest.raises(ConfigError, match="delta"):
        compose_releases(_releases([1.0]), delta=delta)  # type: ignore[arg-type]


@pytest.mark.parametrize(("releases", "phrase"), [
    ([], "empty"),
    (GaussianRelease(sigma=1.0, sensitivity=1.0), "list of releases"),
    ({"sigma": 1.0, "sensitivity": 1.0}, "list of releases"),
    ("releases", "list of releases"),
    (3, "list of releases"),
    ([{"sensitivity": 1.0}], "needs a sigma"),
])
def test_bad_release_lists_are_config_errors(releases: object, phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        compose_releases(releases, delta=1e-5)  # type: ignore[arg-type]


def test_unknown_method_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"method must be one of \['analytic', 'basic', 'prv', 'rdp'\]"):
        compose_releases(_releases([1.0]), delta=1e-5, method="moments")


def test_a_release_stating_more_privacy_than_its_noise_gives_is_refused() -> None:
    release = GaussianRelease(sigma=1.0, sensitivity=1.0, epsilon=1.0, delta=1e-5, label="r7")
    with pytest.raises(ConfigError, match=r"release 0 \(r7\) states"):
        compose_releases([release], delta=1e-5)


def test_prv_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ConfigError, match="method='prv' refused: 2000 releases"):
        compose_releases(_releases([1.0] * 2000), delta=1e-5, method="prv")
    with pytest.raises(ConfigError, match="method='prv' refused at delta"):
        compose_releases(_releases([1.0]), delta=1e-300, method="prv")


def test_results_validate_their_fields() -> None:
    with pytest.raises(ConfigError, match="method"):
        ComposedPrivacy(method="x", epsilon=1.0, delta=1e-5, releases=1, basic_epsilon=1.0,
                        basic_delta=1e-5, note="")
    with pytest.raises(ConfigError, match="say why"):
        ComposedPrivacy(method="rdp", epsilon=None, delta=1e-5, releases=1, basic_epsilon=None,
                        basic_delta=None, note="")
    with pytest.raises(ConfigError, match="releases"):
        ComposedPrivacy(method="rdp", epsilon=1.0, delta=1e-5, releases=0, basic_epsilon=1.0,
                        basic_delta=1e-5, note="n")


def test_the_order_grid_is_increasing_and_wide() -> None:
    orders = np.asarray(RDP_ORDERS)
    assert np.all(np.diff(orders) > 0) and orders[0] > 1.0 and orders[-1] > 1e6
