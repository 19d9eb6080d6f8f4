"""Tests of the empirical ε lower bounds (certunlearn.audit.epsilon).

Layers: pinned values with their source (the perfect-attack cap table and worked example, recomputed
with scipy's Beta quantiles; Steinke–Nasr–Jagielski one-run values), brute-force references (every
threshold looped, scipy Beta/normal quantiles), seeded statistical checks on a Gaussian mechanism
with known ε (soundness and growth with n) and under the null, post-conditions, and validation.
The challenge score is tested in test_unlearning_challenge.py.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.stats import beta, binom, norm

from certunlearn.audit.epsilon import (
    CP_DIRECTIONS,
    GDP_DIRECTIONS,
    EpsilonBound,
    epsilon_from_counts,
    epsilon_lower_bound,
    gdp_mu_lower_bound,
    one_run_epsilon,
)
from certunlearn.audit.metrics import roc_curve
from certunlearn.certify.gaussian import gaussian_epsilon, log_delta_for_mu
from certunlearn.errors import ConfigError, InputError

# ---------------------------------------------------------------------------------------------
# Pinned values
# ---------------------------------------------------------------------------------------------

# Sample-size cap table, recomputed with scipy.stats.beta.ppf(0.95, 1, n): perfect attack (0 FP / 0 FN),
# single threshold, δ = 1e-5, one-sided 95% Clopper–Pearson bound on each rate. epsilon_from_counts takes the
# *overall* α and splits it over the two rates (Bonferroni), so the table is alpha = 0.10 here.
CAP_TABLE = [  # n per class, FPR_ub as printed, max provable ε_lb
    (100, "0.0295", 3.49),
    (1_000, "0.00299", 5.81),
    (10_000, "0.00030", 8.11),
    (100_000, "0.00003", 10.42),
]
# Same cases at overall α = 0.05 (one-sided 97.5% per rate), recomputed here with
# scipy.stats.beta.ppf(0.975, 1, n) [N]: the cap of one threshold fixed in advance. An audit that picks
# its threshold from the data reports less (test_cap_of_data_chosen_thresholds).
CAP_AT_ALPHA_005 = [(100, 3.28), (1_000, 5.60), (10_000, 7.90), (100_000, 10.21)]


@pytest.mark.parametrize(("n", "fpr_ub", "epsilon"), CAP_TABLE)
def test_perfect_attack_cap_table(n, fpr_ub, epsilon):
    bound = epsilon_from_counts(fp=0, fn=0, n_out=n, n_in=n, delta=1e-5, alpha=0.10)
    decimals = len(fpr_ub.split(".")[1])
    assert f"{bound.fpr_ub:.{decimals}f}" == fpr_ub
    assert bound.fpr_ub == pytest.approx(bound.fnr_ub)
    assert round(bound.epsilon, 2) == epsilon
    assert bound.cap == bound.epsilon  # a perfect attack reaches the cap
    assert bound.threshold is None and bound.n_thresholds == 1


@pytest.mark.parametrize(("n", "epsilon"), CAP_AT_ALPHA_005)
def test_cap_at_overall_alpha_005(n, epsilon):
    bound = epsilon_from_counts(fp=0, fn=0, n_out=n, n_in=n, delta=1e-5, alpha=0.05)
    assert round(bound.epsilon, 2) == epsilon
    assert bound.fpr_ub == pytest.approx(beta.ppf(0.975, 1, n), rel=1e-10)


@pytest.mark.parametrize(("n", "rounded"), [(100, 2.45), (1_000, 4.54), (10_000, 6.65)])
def test_cap_of_data_chosen_thresholds(n, rounded):
    """epsilon_lower_bound corrects for max(K, n_in, n_out) = n thresholds: each rate's one-sided
    Clopper–Pearson bound at α/(2n) with 0 errors, 1 − (α/2n)^(1/n) = beta.ppf(1 − α/2n, 1, n)."""
    bound = epsilon_lower_bound(np.ones(n), np.zeros(n), delta=1e-5, alpha=0.05)
    u = beta.ppf(1 - 0.05 / (2 * n), 1, n)
    assert bound.cap == pytest.approx(np.log((1 - u - 1e-5) / u), rel=1e-12)
    assert bound.epsilon == bound.cap and round(bound.cap, 2) == rounded


def test_worked_example():
    """n = 1000, 1 FP, 500 FN ⇒ FPR_ub 0.0047, FNR_ub 0.526, ε_lb = 4.61 (the module docstring's
    example; one-sided 95% per rate, i.e. overall alpha = 0.10 here)."""
    bound = epsilon_from_counts(fp=1, fn=500, n_out=1000, n_in=1000, delta=1e-5, alpha=0.10)
    assert round(bound.fpr_ub, 4) == 0.0047
    assert round(bound.fnr_ub, 3) == 0.526
    assert round(bound.epsilon, 2) == 4.61
    assert bound.direction == "in-out"
    assert round(bound.cap, 2) == 5.81
    # At overall α = 0.05 [N, recomputed with scipy.stats.beta]: 4.43.
    assert (
        round(epsilon_from_counts(fp=1, fn=500, n_out=1000, n_in=1000, alpha=0.05).epsilon, 2)
        == 4.43
    )


def test_epsilon_from_counts_matches_formula_and_bonferroni():
    fp, fn, n_out, n_in, delta, alpha, m = 7, 40, 300, 200, 1e-3, 0.05, 25
    bound = epsilon_from_counts(
        fp=fp, fn=fn, n_out=n_out, n_in=n_in, delta=delta, alpha=alpha, n_thresholds=m
    )
    level = alpha / (2 * m)
    fpr_ub = beta.ppf(1 - level, fp + 1, n_out - fp)
    fnr_ub = beta.ppf(1 - level, fn + 1, n_in - fn)
    expected = max(
        math.log((1 - delta - fnr_ub) / fpr_ub), math.log((1 - delta - fpr_ub) / fnr_ub), 0.0
    )
    assert bound.epsilon == pytest.approx(expected, rel=1e-10)
    assert (bound.fpr_ub, bound.fnr_ub) == pytest.approx((fpr_ub, fnr_ub), rel=1e-10)
    # the "out-in" direction wins when FNR is the small rate
    swapped = epsilon_from_counts(
        fp=fn, fn=fp, n_out=n_in, n_in=n_out, delta=delta, alpha=alpha, n_thresholds=m
    )
    assert swapped.direction == "out-in" and swapped.epsilon == pytest.approx(
        bound.epsilon, rel=1e-12
    )
    # more thresholds ⇒ a stricter correction ⇒ a smaller bound and cap
    looser = epsilon_from_counts(
        fp=fp, fn=fn, n_out=n_out, n_in=n_in, delta=delta, alpha=alpha, n_thresholds=1
    )
    assert looser.epsilon > bound.epsilon and looser.cap > bound.cap
    # no evidence ⇒ 0, never negative
    assert epsilon_from_counts(fp=150, fn=100, n_out=300, n_in=200).epsilon == 0.0


# One-run audit values of Steinke, Nasr & Jagielski ("Privacy Auditing with One (1) Training Run",
# NeurIPS 2023), recomputed independently with scipy's binomial distribution.
@pytest.mark.parametrize(
    ("m", "r", "v", "delta", "expected"),
    [
        (1000, 100, 100, 0.0, 3.49),
        (1000, 100, 100, 1e-5, 3.47),
        (1000, 100, 90, 0.0, 1.63),
        (10_000, 1000, 1000, 0.0, 5.81),
        (10_000, 1000, 1000, 1e-5, 5.53),
    ],
)
def test_one_run_pinned_values(m, r, v, delta, expected):
    assert round(one_run_epsilon(m=m, r=r, v=v, delta=delta), 2) == expected


def _one_run_p(epsilon, m, r, v, delta):
    """Steinke, Nasr & Jagielski's p(ε, δ), written out with an explicit loop over i."""
    q = math.exp(epsilon) / (1 + math.exp(epsilon))
    tail = binom.sf(v - 1, r, q)
    if delta == 0:
        return tail
    best = max((binom.cdf(v - 1, r, q) - binom.cdf(v - i - 1, r, q)) / i for i in range(1, v + 1))
    return tail + 2 * m * delta * best


@pytest.mark.parametrize(
    ("m", "r", "v", "delta"), [(1000, 100, 100, 1e-5), (500, 200, 150, 1e-4), (50, 40, 35, 0.0)]
)
def test_one_run_post_condition(m, r, v, delta):
    epsilon = one_run_epsilon(m=m, r=r, v=v, delta=delta)
    assert epsilon > 0
    assert _one_run_p(epsilon, m, r, v, delta) < 0.05  # the claim ε_lb is rejected …
    assert _one_run_p(epsilon + 1e-6, m, r, v, delta) >= 0.05  # … and nothing much larger is


def test_one_run_edge_cases_and_monotonicity():
    assert one_run_epsilon(m=100, r=0, v=0) == 0.0
    assert one_run_epsilon(m=1000, r=100, v=50) == 0.0  # chance level
    values = [one_run_epsilon(m=1000, r=100, v=v) for v in (70, 80, 90, 100)]
    assert values == sorted(values) and values[0] > 0
    assert one_run_epsilon(m=1000, r=100, v=100, delta=1e-3) < one_run_epsilon(m=1000, r=100, v=100)
    with pytest.raises(ConfigError, match="v must be <= r"):
        one_run_epsilon(m=10, r=5, v=6)
    with pytest.raises(ConfigError, match="r must be <= m"):
        one_run_epsilon(m=10, r=11, v=1)
    with pytest.raises(ConfigError, match="p0"):
        one_run_epsilon(m=10, r=5, v=5, p0=1.0)
    with pytest.raises(ConfigError, match="delta"):
        one_run_epsilon(m=10, r=5, v=5, delta=1.0)


# ---------------------------------------------------------------------------------------------
# Brute-force references for the score-based bounds
# ---------------------------------------------------------------------------------------------


def brute_force_cp(scores_in, scores_out, delta, alpha):
    thresholds = [math.inf, *sorted(set(scores_in) | set(scores_out), reverse=True)]
    m = max(len(thresholds), len(scores_in), len(scores_out))
    level = alpha / (2 * m)
    best = -math.inf
    for t in thresholds:
        fp = sum(s >= t for s in scores_out)
        fn = sum(s < t for s in scores_in)
        fpr_ub = 1.0 if fp == len(scores_out) else beta.ppf(1 - level, fp + 1, len(scores_out) - fp)
        fnr_ub = 1.0 if fn == len(scores_in) else beta.ppf(1 - level, fn + 1, len(scores_in) - fn)
        for numerator, denominator in ((1 - delta - fnr_ub, fpr_ub), (1 - delta - fpr_ub, fnr_ub)):
            if numerator > 0:
                best = max(best, math.log(numerator / denominator))
    return max(best, 0.0), m


def brute_force_gdp_mu(scores_in, scores_out, alpha):
    thresholds = [math.inf, *sorted(set(scores_in) | set(scores_out), reverse=True)]
    m = max(len(thresholds), len(scores_in), len(scores_out))
    level = alpha / (4 * m)
    n_in, n_out = len(scores_in), len(scores_out)
    best = 0.0
    for t in thresholds:
        fp = sum(s >= t for s in scores_out)
        fn = sum(s < t for s in scores_in)
        fpr_ub = 1.0 if fp == n_out else beta.ppf(1 - level, fp + 1, n_out - fp)
        fnr_ub = 1.0 if fn == n_in else beta.ppf(1 - level, fn + 1, n_in - fn)
        fpr_lb = 0.0 if fp == 0 else beta.ppf(level, fp, n_out - fp + 1)
        fnr_lb = 0.0 if fn == 0 else beta.ppf(level, fn, n_in - fn + 1)
        forward = norm.ppf(1 - fpr_ub) - norm.ppf(fnr_ub)
        reverse = norm.ppf(1 - (1 - fpr_lb)) - norm.ppf(1 - fnr_lb)  # test "score < t"
        for mu in (forward, reverse):
            if np.isfinite(mu):
                best = max(best, mu)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_epsilon_lower_bound_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores_in = np.round(rng.normal(1.5, 1, 60), 1)  # rounding creates ties
    scores_out = np.round(rng.normal(0, 1, 45), 1)
    expected, m = brute_force_cp(scores_in.tolist(), scores_out.tolist(), delta=1e-3, alpha=0.05)
    bound = epsilon_lower_bound(scores_in, scores_out, delta=1e-3, alpha=0.05)
    assert bound.epsilon == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert bound.n_thresholds == m and bound.threshold_mode == "all"
    assert bound.n_in == 60 and bound.n_out == 45 and bound.method == "clopper-pearson"
    # the reported threshold reproduces the reported rate bounds
    fp = int(np.sum(scores_out >= bound.threshold))
    fn = int(np.sum(scores_in < bound.threshold))
    level = 0.05 / (2 * m)
    assert bound.fpr_ub == pytest.approx(beta.ppf(1 - level, fp + 1, 45 - fp), rel=1e-10)
    assert bound.fnr_ub == pytest.approx(beta.ppf(1 - level, fn + 1, 60 - fn), rel=1e-10)
    assert bound.epsilon <= bound.cap


@pytest.mark.parametrize("seed", [0, 1])
def test_gdp_matches_brute_force_and_converts_with_certify_gaussian(seed):
    rng = np.random.default_rng(seed)
    scores_in = np.round(rng.normal(2, 1, 50), 1)
    scores_out = np.round(rng.normal(0, 1, 40), 1)
    bound = gdp_mu_lower_bound(scores_in, scores_out, delta=1e-5, alpha=0.05)
    assert bound.mu == pytest.approx(
        brute_force_gdp_mu(scores_in.tolist(), scores_out.tolist(), 0.05), rel=1e-9
    )
    assert bound.method == "gdp" and bound.direction in GDP_DIRECTIONS
    exact = gaussian_epsilon(sigma=1.0, delta=1e-5, sensitivity=bound.mu)
    assert bound.epsilon == pytest.approx(exact, rel=1e-12)
    assert bound.epsilon <= exact  # rounded down: a lower bound never exceeds the exact conversion
    assert log_delta_for_mu(mu=bound.mu, epsilon=bound.epsilon) > math.log(1e-5)
    assert bound.epsilon <= bound.cap


def test_gdp_detects_a_reversed_attack_with_its_own_bounds():
    rng = np.random.default_rng(5)
    scores_in, scores_out = rng.normal(-3, 1, 300), rng.normal(0, 1, 300)
    gdp = gdp_mu_lower_bound(scores_in, scores_out, delta=1e-5)
    assert gdp.direction == "lower-member" and gdp.mu > 1.5
    flipped = gdp_mu_lower_bound(-scores_in, -scores_out, delta=1e-5)
    assert flipped.direction == "higher-member"
    assert flipped.mu == pytest.approx(gdp.mu, rel=0.05)
    # The Clopper–Pearson bound evaluates the score convention's test only (score >= τ declares a
    # member): a reversed attack must be negated first.
    assert epsilon_lower_bound(scores_in, scores_out).epsilon == 0.0
    assert epsilon_lower_bound(-scores_in, -scores_out).epsilon > 1.0


# ---------------------------------------------------------------------------------------------
# Statistical validation on a Gaussian mechanism with known ε
# ---------------------------------------------------------------------------------------------


def true_epsilon(mu: float, delta: float) -> float:
    """ε(μ, δ) of the Gaussian mechanism with sensitivity μ and σ = 1 (certify.gaussian)."""
    return gaussian_epsilon(sigma=1.0, delta=delta, sensitivity=mu)


@pytest.mark.parametrize(("mu", "delta"), [(2.0, 1e-5), (1.0, 0.05)])
def test_bounds_are_sound_on_a_gaussian_mechanism(mu, delta):
    """Members ~ N(μ, 1), non-members ~ N(0, 1): both bounds must stay <= the true ε in at least
    99% of 200 seeded repetitions (nominal failure rate <= α = 5%; in practice ~0)."""
    truth = true_epsilon(mu, delta)
    rng = np.random.default_rng(20231)
    cp_ok = gdp_ok = 0
    for _ in range(200):
        scores_in, scores_out = rng.normal(mu, 1, 150), rng.normal(0, 1, 150)
        cp_ok += epsilon_lower_bound(scores_in, scores_out, delta=delta).epsilon <= truth
        gdp_ok += gdp_mu_lower_bound(scores_in, scores_out, delta=delta).epsilon <= truth
    assert cp_ok >= 198 and gdp_ok >= 198


def test_bounds_approach_the_true_epsilon_as_n_grows():
    mu, delta = 2.0, 1e-5
    truth = true_epsilon(mu, delta)  # ≈ 10.0
    rng = np.random.default_rng(77)
    means_cp, means_gdp = [], []
    for n in (100, 1000, 4000):
        cp, gdp = [], []
        for _ in range(12):
            scores_in, scores_out = rng.normal(mu, 1, n), rng.normal(0, 1, n)
            cp.append(epsilon_lower_bound(scores_in, scores_out, delta=delta).epsilon)
            gdp.append(gdp_mu_lower_bound(scores_in, scores_out, delta=delta).epsilon)
        means_cp.append(np.mean(cp))
        means_gdp.append(np.mean(gdp))
    assert means_cp[0] < means_cp[1] < means_cp[2] <= truth
    assert means_gdp[0] < means_gdp[1] < means_gdp[2] <= truth
    assert means_gdp[2] > 0.8 * truth  # the Gaussian-shaped estimator gets close at n = 4000


def test_null_scores_give_zero_epsilon():
    """Identical distributions: ε_lb = 0 in most repetitions (both estimators; no |μ| shortcut)."""
    rng = np.random.default_rng(99)
    cp_zero = gdp_zero = 0
    for _ in range(200):
        scores_in, scores_out = rng.normal(size=100), rng.normal(size=100)
        cp_zero += epsilon_lower_bound(scores_in, scores_out).epsilon == 0.0
        gdp_zero += gdp_mu_lower_bound(scores_in, scores_out).epsilon == 0.0
    assert cp_zero >= 190 and gdp_zero >= 190


# ---------------------------------------------------------------------------------------------
# Threshold modes
# ---------------------------------------------------------------------------------------------


def test_hull_thresholds_are_the_upper_convex_hull():
    rng = np.random.default_rng(4)
    scores_in, scores_out = rng.normal(1, 1, 80), rng.normal(0, 1, 70)
    roc = roc_curve(scores_in, scores_out)
    hull = epsilon_lower_bound(scores_in, scores_out, thresholds="hull")
    assert hull.threshold_mode == "hull" and hull.n_thresholds == 80  # max(n_in, n_out) floor
    from certunlearn.audit.epsilon import _upper_hull

    keep = _upper_hull(roc.fpr, roc.tpr)
    assert keep[0] == 0 and keep[-1] == roc.fpr.size - 1
    interpolated = np.interp(roc.fpr, roc.fpr[keep], roc.tpr[keep])
    assert np.all(roc.tpr <= interpolated + 1e-12)  # every ROC point on or below the hull
    hull_x, hull_y = roc.fpr[keep], roc.tpr[keep]
    with np.errstate(divide="ignore"):
        slopes = np.diff(hull_y) / np.diff(hull_x)  # +inf for a vertical first segment
    assert np.all(np.diff(slopes) < 0)  # strictly concave: only true vertices kept


def test_grid_and_fixed_thresholds():
    rng = np.random.default_rng(8)
    scores_in, scores_out = rng.normal(2, 1, 200), rng.normal(0, 1, 300)
    grid = epsilon_lower_bound(scores_in, scores_out, thresholds=20)
    assert grid.threshold_mode == "grid" and grid.n_thresholds == 300
    fixed = epsilon_lower_bound(scores_in, scores_out, thresholds=[1.0])
    fp, fn = int(np.sum(scores_out >= 1.0)), int(np.sum(scores_in < 1.0))
    reference = epsilon_from_counts(fp=fp, fn=fn, n_out=300, n_in=200)
    assert fixed.epsilon == pytest.approx(reference.epsilon, rel=1e-12)
    assert fixed.cap == pytest.approx(reference.cap, rel=1e-12)
    assert fixed.threshold == 1.0 and fixed.n_thresholds == 1 and fixed.threshold_mode == "fixed"
    two = epsilon_lower_bound(scores_in, scores_out, thresholds=np.array([1.0, 0.5]))
    assert two.n_thresholds == 2


@pytest.mark.parametrize("thresholds", ["best", 0, -3, True, [], [np.nan], "ALL"])
def test_bad_thresholds(thresholds):
    with pytest.raises(ConfigError):
        epsilon_lower_bound([1.0, 2.0], [0.0, 1.0], thresholds=thresholds)


def test_input_validation_of_score_bounds():
    with pytest.raises(InputError):
        epsilon_lower_bound([], [1.0])
    with pytest.raises(InputError):
        gdp_mu_lower_bound([np.nan], [1.0])
    with pytest.raises(ConfigError, match="delta"):
        epsilon_lower_bound([1.0], [0.0], delta=1.0)
    with pytest.raises(ConfigError, match="delta"):
        gdp_mu_lower_bound([1.0], [0.0], delta=0.0)  # GDP conversion needs δ > 0
    with pytest.raises(ConfigError, match="alpha"):
        epsilon_lower_bound([1.0], [0.0], alpha=0.0)
    with pytest.raises(ConfigError, match="fp must be <= n_out"):
        epsilon_from_counts(fp=11, fn=0, n_out=10, n_in=10)
    assert epsilon_lower_bound([1.0], [0.0], delta=0.0).epsilon >= 0.0


# ---------------------------------------------------------------------------------------------
# The result object
# ---------------------------------------------------------------------------------------------


def test_epsilon_bound_is_frozen_validated_and_serialisable():
    bound = epsilon_lower_bound([3.0, 2.0, 1.5], [0.0, 1.0, 2.0])
    assert json.loads(json.dumps(bound.as_dict()))["method"] == "clopper-pearson"
    with pytest.raises(dataclasses.FrozenInstanceError):
        bound.epsilon = 1.0  # type: ignore[misc]
    gdp = gdp_mu_lower_bound([3.0, 2.0, 1.5], [0.0, 1.0, 2.0])
    assert json.loads(json.dumps(gdp.as_dict()))["mu"] == gdp.mu
    good = dataclasses.asdict(epsilon_from_counts(fp=0, fn=0, n_out=10, n_in=10))
    assert set(CP_DIRECTIONS) == {"in-out", "out-in"}
    for change, match in [
        ({"epsilon": -0.1}, "epsilon"),
        ({"cap": 0.0, "epsilon": 1.0}, "cap"),
        ({"direction": "higher-member"}, "direction"),
        ({"method": "jagielski"}, "method"),
        ({"mu": 1.0}, "mu"),
        ({"fpr_ub": 1.5}, "fpr_ub"),
        ({"n_in": 0}, "n_in"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold_mode": "best"}, "threshold_mode"),
    ]:
        with pytest.raises(ConfigError, match=match):
            EpsilonBound(**{**good, **change})
    assert EpsilonBound(**{**good, "threshold": math.inf}).as_dict()["threshold"] == "inf"
    assert epsilon_from_counts(fp=0, fn=0, n_out=1000, n_in=1000).refutes(1.0)
    assert not epsilon_from_counts(fp=0, fn=0, n_out=10, n_in=10).refutes(5.0)
