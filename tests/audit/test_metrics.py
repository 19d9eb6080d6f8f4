"""Tests of the attack metrics (certunlearn.audit.metrics).

Layers: scikit-learn as the reference for the ROC and the AUC (ties
included), brute-force loops for balanced accuracy and advantage, a hand-built TPR@FPR example for
the ``fpr <= x`` convention, Clopper–Pearson against ``scipy.stats.binomtest`` and Beta quantiles,
the bootstrap against a naive loop fed the same draws, a seeded statistical check under the null,
hypothesis properties and validation.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta, binomtest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from certunlearn.audit.metrics import (
    AUC_CI_METHOD,
    TPR_CONVENTION,
    AttackMetrics,
    RocCurve,
    attack_metrics,
    clopper_pearson,
    log_roc_curve,
    roc_curve,
)
from certunlearn.errors import ConfigError, InputError

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, database=None)


def sklearn_reference(scores_in, scores_out):
    labels = np.r_[np.ones(len(scores_in)), np.zeros(len(scores_out))]
    scores = np.r_[scores_in, scores_out]
    fpr, tpr, thresholds = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    return fpr, tpr, thresholds, roc_auc_score(labels, scores)


# ---------------------------------------------------------------------------------------------
# ROC and AUC against scikit-learn
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: (rng.normal(1, 1, 200), rng.normal(0, 1, 150)),
        lambda rng: (rng.integers(0, 4, 120).astype(float), rng.integers(0, 3, 90).astype(float)),
        lambda rng: (np.full(10, 2.0), np.full(7, 2.0)),  # everything tied
        lambda rng: (np.array([5.0]), np.array([-5.0])),
    ],
    ids=["continuous", "heavy-ties", "all-tied", "one-each"],
)
def test_roc_and_auc_match_sklearn(make):
    scores_in, scores_out = make(np.random.default_rng(3))
    fpr, tpr, thresholds, auc = sklearn_reference(scores_in, scores_out)
    roc = roc_curve(scores_in, scores_out)
    np.testing.assert_array_equal(roc.fpr, fpr)
    np.testing.assert_array_equal(roc.tpr, tpr)
    np.testing.assert_array_equal(roc.thresholds, thresholds)
    assert roc.thresholds[0] == math.inf
    metrics = attack_metrics(scores_in, scores_out, n_bootstrap=0)
    assert metrics.auc == pytest.approx(auc, rel=1e-12, abs=1e-15)
    assert metrics.n_in == len(scores_in) and metrics.n_out == len(scores_out)


@PROPERTY_SETTINGS
@given(
    scores_in=st.lists(st.integers(-3, 3), min_size=1, max_size=25),
    scores_out=st.lists(st.integers(-3, 3), min_size=1, max_size=25),
)
def test_roc_matches_sklearn_on_random_ties(scores_in, scores_out):
    scores_in, scores_out = np.array(scores_in, float), np.array(scores_out, float)
    fpr, tpr, thresholds, _ = sklearn_reference(scores_in, scores_out)
    roc = roc_curve(scores_in, scores_out)
    np.testing.assert_array_equal(roc.fpr, fpr)
    np.testing.assert_array_equal(roc.tpr, tpr)
    np.testing.assert_array_equal(roc.thresholds, thresholds)
    # counts agree with direct comparisons at every threshold (score >= τ ⇒ member)
    for t, tp, fp in zip(roc.thresholds, roc.true_positives, roc.false_positives, strict=True):
        assert tp == np.sum(scores_in >= t) and fp == np.sum(scores_out >= t)
    # AUC = P[s_in > s_out] + ½ P[s_in = s_out] (Mann–Whitney with ties)
    wins = (scores_in[:, None] > scores_out[None, :]) + 0.5 * (
        scores_in[:, None] == scores_out[None, :]
    )
    metrics = attack_metrics(scores_in, scores_out, n_bootstrap=0)
    assert metrics.auc == pytest.approx(wins.mean(), rel=1e-12, abs=1e-15)
    # balanced accuracy and advantage by brute force over every threshold
    grid = np.r_[np.inf, np.unique(np.r_[scores_in, scores_out])]
    tprs = np.array([np.mean(scores_in >= t) for t in grid])
    fprs = np.array([np.mean(scores_out >= t) for t in grid])
    assert metrics.balanced_accuracy == pytest.approx(np.max(1 - (fprs + (1 - tprs)) / 2))
    assert metrics.advantage == pytest.approx(np.max(np.abs(tprs - fprs)))


# ---------------------------------------------------------------------------------------------
# TPR@FPR convention: hand-built example
# ---------------------------------------------------------------------------------------------


def test_tpr_at_fpr_uses_last_point_with_fpr_at_most_x():
    """Non-members 0..9 (each FP step is 0.1); members 9.5, 8.5, 8.5, 7.5, 5.0.

    ROC points (threshold: tp, fp): inf: 0,0 | 9.5: 1,0 | 9: 1,1 | 8.5: 3,1 | 8: 3,2 | 7.5: 4,2 |
    7: 4,3 | 6: 4,4 | 5: 5,5 (member 5.0 tied with non-member 5) | ...
    """
    scores_out = np.arange(10.0)
    scores_in = np.array([9.5, 8.5, 8.5, 7.5, 5.0])
    metrics = attack_metrics(
        scores_in, scores_out, fprs=(0.0, 0.1, 0.15, 0.2, 0.45, 0.5), n_bootstrap=0
    )
    assert metrics.tpr_convention == TPR_CONVENTION == "TPR at the last ROC point with fpr <= x"
    assert metrics.tpr_at == {0.0: 0.2, 0.1: 0.6, 0.15: 0.6, 0.2: 0.8, 0.45: 0.8, 0.5: 1.0}
    point = metrics.operating_points[0.1]
    assert (point.threshold, point.true_positives, point.false_positives) == (8.5, 3, 1)
    assert point.fpr == 0.1 and point.tpr == 0.6
    # "fpr < x" would give 0.2 at x = 0.1, hull interpolation 0.6 too but 0.7 at x = 0.15:
    # the convention matters and is stored with the numbers.
    assert metrics.operating_points[0.5].threshold == 5.0
    assert metrics.operating_points[0.0].enough_non_members is False
    assert metrics.operating_points[0.1].enough_non_members is False  # needs >= 100 non-members


def test_operating_point_intervals_are_clopper_pearson():
    scores_out = np.arange(10.0)
    scores_in = np.array([9.5, 8.5, 8.5, 7.5, 5.0])
    point = attack_metrics(
        scores_in, scores_out, fprs=(0.1,), alpha=0.1, n_bootstrap=0
    ).operating_points[0.1]
    assert point.tpr_ci == pytest.approx(clopper_pearson(3, 5, alpha=0.1))
    assert point.fpr_ci == pytest.approx(clopper_pearson(1, 10, alpha=0.1))
    assert point.tpr_upper == pytest.approx(beta.ppf(0.9, 4, 2), rel=1e-10)
    assert point.fpr_upper == pytest.approx(beta.ppf(0.9, 2, 9), rel=1e-10)


# ---------------------------------------------------------------------------------------------
# Clopper–Pearson
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n"), [(0, 1), (0, 10), (3, 10), (10, 10), (1, 1000), (500, 1000), (37, 41)]
)
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.001])
def test_clopper_pearson_matches_scipy(k, n, alpha):
    two = binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
    assert clopper_pearson(k, n, alpha=alpha) == pytest.approx(
        (two.low, two.high), rel=1e-9, abs=1e-15
    )
    upper = binomtest(k, n, alternative="less").proportion_ci(
        confidence_level=1 - alpha, method="exact"
    )
    assert clopper_pearson(k, n, alpha=alpha, side="upper") == pytest.approx(
        (0.0, upper.high), rel=1e-9
    )
    lower = binomtest(k, n, alternative="greater").proportion_ci(
        confidence_level=1 - alpha, method="exact"
    )
    assert clopper_pearson(k, n, alpha=alpha, side="lower") == pytest.approx(
        (lower.low, 1.0), rel=1e-9, abs=1e-15
    )
    # and the Beta-quantile formula (Clopper & Pearson, Biometrika 1934) for the one-sided upper bound
    expected_upper = 1.0 if k == n else beta.ppf(1 - alpha, k + 1, n - k)
    assert clopper_pearson(k, n, alpha=alpha, side="upper")[1] == pytest.approx(
        expected_upper, rel=1e-10
    )


def test_clopper_pearson_hand_values():
    # k = 0: the upper bound solves (1 − p)^n = α ⇒ p = 1 − α^(1/n); k = n: lower = α^(1/n).
    assert clopper_pearson(0, 100, alpha=0.05, side="upper")[1] == pytest.approx(
        1 - 0.05 ** (1 / 100), rel=1e-12
    )
    assert clopper_pearson(20, 20, alpha=0.05, side="lower")[0] == pytest.approx(
        0.05 ** (1 / 20), rel=1e-12
    )
    # Two-sided 95% for 5/10: (0.187086, 0.812914) (symmetric, standard table value).
    low, high = clopper_pearson(5, 10, alpha=0.05)
    assert (round(low, 6), round(high, 6)) == (0.187086, 0.812914)
    assert low == pytest.approx(1 - high, rel=1e-12)


def test_clopper_pearson_vectorised_and_validation():
    lows, highs = clopper_pearson(np.array([0, 5, 10]), 10, alpha=0.05, side="two")
    assert lows.shape == highs.shape == (3,)
    assert lows[0] == 0.0 and highs[2] == 1.0
    for i, k in enumerate([0, 5, 10]):
        assert (lows[i], highs[i]) == pytest.approx(clopper_pearson(k, 10), rel=1e-14)
    with pytest.raises(InputError):
        clopper_pearson(11, 10)
    with pytest.raises(InputError):
        clopper_pearson(1.5, 10)
    with pytest.raises(InputError):
        clopper_pearson(-1, 10)
    with pytest.raises(ConfigError, match="alpha"):
        clopper_pearson(1, 10, alpha=1.0)
    with pytest.raises(ConfigError, match=r"\['lower', 'two', 'upper'\]"):
        clopper_pearson(1, 10, side="both")
    with pytest.raises(ConfigError, match="n must be >= 1"):
        clopper_pearson(0, 0)


@PROPERTY_SETTINGS
@given(n=st.integers(1, 500), data=st.data(), alpha=st.floats(1e-6, 0.5))
def test_clopper_pearson_properties(n, data, alpha):
    k = data.draw(st.integers(0, n))
    low, high = clopper_pearson(k, n, alpha=alpha)
    assert 0.0 <= low <= k / n <= high <= 1.0
    one_sided = clopper_pearson(k, n, alpha=alpha, side="upper")[1]
    assert one_sided <= high + 1e-15  # the one-sided bound at α is tighter than the two-sided one
    if k < n:
        assert clopper_pearson(k + 1, n, alpha=alpha, side="upper")[1] >= one_sided


# ---------------------------------------------------------------------------------------------
# Bootstrap band
# ---------------------------------------------------------------------------------------------


def test_bootstrap_matches_naive_loop_with_the_same_draws():
    rng = np.random.default_rng(11)
    scores_in = rng.integers(0, 6, 40).astype(float)  # ties on purpose
    scores_out = rng.integers(0, 5, 30).astype(float)
    n_bootstrap, alpha = 50, 0.1
    metrics = attack_metrics(
        scores_in, scores_out, alpha=alpha, n_bootstrap=n_bootstrap, rng=np.random.default_rng(5)
    )
    # Same stream as the implementation: one block of non-member indices (into the sorted
    # non-members), then one block of member indices.
    replay = np.random.default_rng(5)
    sorted_out = np.sort(scores_out)
    draws_out = replay.integers(0, 30, size=(n_bootstrap, 30))
    draws_in = replay.integers(0, 40, size=(n_bootstrap, 40))
    values = []
    for b in range(n_bootstrap):
        sample_in, sample_out = scores_in[draws_in[b]], sorted_out[draws_out[b]]
        labels = np.r_[np.ones(40), np.zeros(30)]
        values.append(roc_auc_score(labels, np.r_[sample_in, sample_out]))
    expected = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    assert metrics.auc_ci == pytest.approx(tuple(expected), rel=1e-12)
    assert metrics.auc_ci_method == AUC_CI_METHOD
    assert "not a guarantee" in metrics.auc_ci_method


def test_bootstrap_is_reproducible_and_optional():
    rng_scores = np.random.default_rng(0)
    a, b = rng_scores.normal(1, 1, 100), rng_scores.normal(0, 1, 100)
    first = attack_metrics(a, b, n_bootstrap=100, rng=np.random.default_rng(1))
    second = attack_metrics(a, b, n_bootstrap=100, rng=np.random.default_rng(1))
    assert first.auc_ci == second.auc_ci
    assert attack_metrics(a, b, n_bootstrap=0).auc_ci is None
    assert attack_metrics(a, b, n_bootstrap=20).auc_ci is not None  # rng=None: fresh entropy


def test_null_auc_band_covers_half_in_most_repetitions():
    """Identical distributions: the 95% bootstrap band should cover AUC = 0.5 in ~95% of runs.

    Seeded, 100 repetitions, 300 resamples each; slack: require >= 85% (percentile bootstraps
    slightly under-cover and 100 runs have a binomial standard error of ~2%).
    """
    rng = np.random.default_rng(2024)
    covered = 0
    for _ in range(100):
        metrics = attack_metrics(
            rng.normal(size=150), rng.normal(size=150), n_bootstrap=300, rng=rng, fprs=()
        )
        covered += metrics.auc_ci[0] <= 0.5 <= metrics.auc_ci[1]
    assert covered >= 85


# ---------------------------------------------------------------------------------------------
# Result objects, log ROC, validation
# ---------------------------------------------------------------------------------------------


def test_as_dict_is_json_and_results_are_frozen():
    metrics = attack_metrics(
        [3.0, 2.0, 1.0], [2.0, 0.0], n_bootstrap=10, rng=np.random.default_rng(0)
    )
    text = json.dumps(metrics.as_dict(), sort_keys=True)
    loaded = json.loads(text)
    assert loaded["tpr_convention"] == TPR_CONVENTION
    assert set(loaded["tpr_at"]) == {"0.01", "0.001"}
    assert loaded["roc"]["thresholds"][0] == "inf"
    assert "roc" not in metrics.as_dict(include_roc=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        metrics.auc = 0.1  # type: ignore[misc]
    with pytest.raises(TypeError):
        metrics.tpr_at[0.5] = 1.0  # type: ignore[index]
    with pytest.raises(ValueError):
        metrics.roc.fpr[0] = 0.5
    assert isinstance(metrics, AttackMetrics)


def test_log_roc_curve_clips_to_floor():
    roc = roc_curve([3.0, 2.0], [1.0, 0.0])
    fpr, tpr = log_roc_curve(roc)
    assert fpr.min() == 1e-5 and tpr.min() == 1e-5 and fpr.max() == 1.0
    fpr, _ = log_roc_curve(roc, floor=1e-3)
    assert fpr[0] == 1e-3
    with pytest.raises(ConfigError):
        log_roc_curve(roc, floor=0.0)
    with pytest.raises(InputError):
        log_roc_curve((roc.fpr, roc.tpr))  # type: ignore[arg-type]


def test_roc_curve_object_validation():
    with pytest.raises(InputError, match="non-decreasing"):
        RocCurve(
            thresholds=np.array([np.inf, 1.0]),
            fpr=np.array([0.5, 0.0]),
            tpr=np.array([0.0, 1.0]),
            true_positives=np.array([0, 1]),
            false_positives=np.array([1, 0]),
            n_in=1,
            n_out=2,
        )


@pytest.mark.parametrize(
    ("scores_in", "scores_out", "kwargs", "error", "match"),
    [
        ([], [1.0], {}, InputError, "scores_in must not be empty"),
        ([1.0], [], {}, InputError, "scores_out must not be empty"),
        ([1.0, np.nan], [0.0], {}, InputError, "NaN"),
        ([1.0], [np.inf], {}, InputError, "infinite"),
        ([[1.0]], [0.0], {}, InputError, "one-dimensional"),
        (["a"], [0.0], {}, InputError, "real-valued"),
        ([1.0], [0.0], {"alpha": 0.0}, ConfigError, "alpha"),
        ([1.0], [0.0], {"fprs": (1.5,)}, ConfigError, "fprs"),
        ([1.0], [0.0], {"fprs": 0.01}, ConfigError, "fprs"),
        ([1.0], [0.0], {"n_bootstrap": -1}, ConfigError, "n_bootstrap"),
        ([1.0], [0.0], {"rng": 0}, ConfigError, "rng"),
    ],
)
def test_attack_metrics_validation(scores_in, scores_out, kwargs, error, match):
    with pytest.raises(error, match=match):
        attack_metrics(scores_in, scores_out, **kwargs)


def test_perfect_and_inverted_attacks():
    perfect = attack_metrics([2.0, 3.0], [0.0, 1.0], n_bootstrap=0)
    assert (perfect.auc, perfect.balanced_accuracy, perfect.advantage) == (1.0, 1.0, 1.0)
    inverted = attack_metrics([0.0, 1.0], [2.0, 3.0], n_bootstrap=0)
    assert inverted.auc == 0.0 and inverted.balanced_accuracy == 0.5 and inverted.advantage == 1.0
