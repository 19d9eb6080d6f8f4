"""Tests of the NeurIPS 2023 unlearning challenge's scoring and population attack
(certunlearn.audit.unlearning_challenge).

What is checked (Triantafillou et al., "Are we making progress in unlearning? Findings from the
first NeurIPS unlearning competition", arXiv 2406.09073, 2024, and the challenge's starting kit):

* the per-example ε rules from (FPR, FNR): both rates 0 ⇒ +inf, exactly one 0 ⇒ the attack is
  discarded, a perfectly inverted attack ⇒ +inf, otherwise the larger of the two logarithms;
* the forgetting-quality bins (width 0.5 on [0, 6], 13 edges, H = 2 / 2^n) and the score
  F · (RA_U / RA_R) · (TA_U / TA_R);
* the best-threshold attack against a plain loop over thresholds, end-to-end ε on null and on
  separated populations, reproducibility, validation;
* :func:`population_attack` is ≈ 0.5 on identical loss distributions and > 0.5 on separated ones,
  reproducible, and compared side by side with the retrained reference.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from certunlearn.audit.unlearning_challenge import (
    challenge_epsilon,
    challenge_epsilon_from_rates,
    challenge_score,
    compare_population_attacks,
    forgetting_quality,
    population_attack,
)
from certunlearn.errors import ConfigError, InputError

# ---------------------------------------------------------------------------------------------
# Challenge score
# ---------------------------------------------------------------------------------------------


def test_challenge_rates_rules():
    # both rates 0 ⇒ +inf; exactly one 0 ⇒ discarded; negative values floored at 0
    assert challenge_epsilon_from_rates(fprs=[0.0], fnrs=[0.0]) == math.inf
    assert challenge_epsilon_from_rates(fprs=[0.0, 0.4], fnrs=[0.1, 0.4]) == pytest.approx(
        max(0.0, math.log(1 - 0.01 - 0.4) - math.log(0.4))
    )
    assert challenge_epsilon_from_rates(fprs=[0.0, 1.0], fnrs=[0.5, 0.0]) == 0.0
    # ε = max{ln(1−δ−FPR) − ln FNR, ln(1−δ−FNR) − ln FPR}: FPR 0.01, FNR 0.5, δ 0.01
    assert challenge_epsilon_from_rates(fprs=[0.01], fnrs=[0.5]) == pytest.approx(
        math.log(0.49 / 0.01)
    )
    # both rates above 1 − δ (a perfectly inverted attack) ⇒ +inf, as in the challenge's code
    assert challenge_epsilon_from_rates(fprs=[0.995], fnrs=[0.999]) == math.inf
    with pytest.raises(InputError):
        challenge_epsilon_from_rates(fprs=[0.1, 0.2], fnrs=[0.1])
    with pytest.raises(InputError):
        challenge_epsilon_from_rates(fprs=[1.1], fnrs=[0.1])


@pytest.mark.parametrize(
    ("eps", "expected_bins"),
    [
        ([0.0], [1]),
        ([0.4999], [1]),
        ([0.5], [2]),
        ([1.0], [3]),
        ([5.99], [12]),
        ([6.0], [13]),
        ([math.inf], [13]),
        ([0.2, 0.7, 2.6], [1, 2, 6]),
    ],
)
def test_forgetting_quality_bins(eps, expected_bins):
    """Bins of width 0.5 on [0, 6] (13 edges), H = 2 / 2^n (Triantafillou et al. 2024)."""
    expected = np.mean([2.0 / 2.0**n for n in expected_bins])
    assert forgetting_quality(eps) == pytest.approx(expected, rel=1e-15)


def test_forgetting_quality_validation_and_score():
    for bad in ([], [np.nan], [-0.1]):
        with pytest.raises(InputError):
            forgetting_quality(bad)
    score = challenge_score(
        forgetting_quality=0.8,
        retain_accuracy_unlearned=0.9,
        retain_accuracy_retrained=0.95,
        test_accuracy_unlearned=0.85,
        test_accuracy_retrained=0.88,
    )
    assert score == pytest.approx(0.8 * (0.9 / 0.95) * (0.85 / 0.88), rel=1e-15)
    with pytest.raises(ConfigError, match="retain_accuracy_retrained"):
        challenge_score(
            forgetting_quality=0.8,
            retain_accuracy_unlearned=0.9,
            retain_accuracy_retrained=0.0,
            test_accuracy_unlearned=0.85,
            test_accuracy_retrained=0.88,
        )
    with pytest.raises(ConfigError, match="forgetting_quality"):
        challenge_score(
            forgetting_quality=1.5,
            retain_accuracy_unlearned=0.9,
            retain_accuracy_retrained=0.9,
            test_accuracy_unlearned=0.85,
            test_accuracy_retrained=0.88,
        )


def naive_best_threshold_epsilon(unlearned, retrained, delta):
    """The challenge's best-threshold attack and ε_s rules, as a plain loop."""
    samples = np.concatenate([retrained, unlearned])
    labels = np.r_[np.zeros(len(retrained)), np.ones(len(unlearned))]
    best = 0.0
    for t in sorted(samples):
        predicted = samples > t
        fpr = np.mean(predicted[labels == 0])
        fnr = np.mean(~predicted[labels == 1])
        if fpr == 0 and fnr == 0:
            return math.inf
        if fpr == 0 or fnr == 0:
            continue
        for a, b in ((fpr, fnr), (fnr, fpr)):
            if 1 - delta - a > 0:
                best = max(best, math.log(1 - delta - a) - math.log(b))
    return best


def test_challenge_epsilon_best_threshold_matches_naive_loop():
    rng = np.random.default_rng(12)
    unlearned = rng.normal(0.5, 1, size=(40, 4))
    retrained = rng.normal(0.0, 1, size=(40, 4))
    eps = challenge_epsilon(unlearned, retrained, attacks=("best_threshold",))
    for s in range(4):
        assert eps[s] == pytest.approx(
            naive_best_threshold_epsilon(unlearned[:, s], retrained[:, s], 0.01)
        )


def test_challenge_epsilon_end_to_end():
    rng = np.random.default_rng(3)
    same = challenge_epsilon(
        rng.normal(size=(256, 5)), rng.normal(size=(256, 5)), rng=np.random.default_rng(0)
    )
    # point estimates on held-out 10% splits are noisy: most, not all, null examples land in bin 1
    assert same.shape == (5,) and np.median(same) < 0.5 and forgetting_quality(same) > 0.6
    separated = challenge_epsilon(rng.normal(10, 1, size=(32, 2)), rng.normal(0, 1, size=(32, 2)))
    assert np.all(np.isinf(separated))
    assert forgetting_quality(separated) == pytest.approx(2.0 / 2**13)
    one = challenge_epsilon(
        rng.normal(1, 1, 64), rng.normal(0, 1, 64), attacks=("logistic_regression",)
    )
    assert one.shape == (1,) and 0.0 <= one[0] < math.inf
    identical = np.tile(np.arange(64.0)[:, None], (1, 2))
    assert np.all(challenge_epsilon(identical, identical.copy()) == 0.0)  # nothing separates them
    # reproducible: rng=None is the challenge's random_state=0; a seeded rng repeats itself
    u, r = rng.normal(0.3, 1, (64, 3)), rng.normal(0, 1, (64, 3))
    np.testing.assert_array_equal(challenge_epsilon(u, r), challenge_epsilon(u, r))
    np.testing.assert_array_equal(
        challenge_epsilon(u, r, rng=np.random.default_rng(1)),
        challenge_epsilon(u, r, rng=np.random.default_rng(1)),
    )


@pytest.mark.parametrize(
    ("unlearned", "retrained", "kwargs", "error"),
    [
        (np.zeros((10, 2)), np.zeros((10, 3)), {}, InputError),
        (np.zeros((5, 2)), np.zeros((5, 2)), {}, InputError),
        (np.full((10, 2), np.nan), np.zeros((10, 2)), {}, InputError),
        (np.zeros((10, 2, 2)), np.zeros((10, 2, 2)), {}, InputError),
        (np.zeros((10, 2)), np.zeros((10, 2)), {"attacks": ("svm",)}, ConfigError),
        (np.zeros((10, 2)), np.zeros((10, 2)), {"attacks": ()}, ConfigError),
        (np.zeros((10, 2)), np.zeros((10, 2)), {"delta": 0.0}, ConfigError),
        (np.zeros((10, 2)), np.zeros((10, 2)), {"rng": 3}, ConfigError),
    ],
)
def test_challenge_epsilon_validation(unlearned, retrained, kwargs, error):
    with pytest.raises(error):
        challenge_epsilon(unlearned, retrained, **kwargs)


# ---------------------------------------------------------------------------------------------
# Population attack of the starting kit
# ---------------------------------------------------------------------------------------------


def test_population_attack_is_chance_on_identical_losses() -> None:
    rng = np.random.default_rng(11)
    result = population_attack(rng.exponential(1.0, 500), rng.exponential(1.0, 500), rng=rng)
    assert abs(result.accuracy - 0.5) < 0.06
    assert abs(result.auc - 0.5) < 0.08
    assert len(result.fold_accuracies) == len(result.fold_aucs) == 10


def test_population_attack_separates_lower_forget_losses() -> None:
    rng = np.random.default_rng(12)
    result = population_attack(rng.exponential(0.2, 300), rng.exponential(1.0, 500), rng=rng)
    assert result.accuracy > 0.7 and result.auc > 0.8
    assert result.n_forget == result.n_test == 300  # balanced like the kit
    unbalanced = population_attack(rng.exponential(0.2, 300), rng.exponential(1.0, 500), rng=rng,
                                   balance=False)
    assert (unbalanced.n_forget, unbalanced.n_test) == (300, 500)


def test_population_attack_is_reproducible_and_compares_side_by_side() -> None:
    rng = np.random.default_rng(13)
    forget, test = rng.exponential(0.3, 200), rng.exponential(1.0, 200)
    assert population_attack(forget, test) == population_attack(forget, test)
    same = compare_population_attacks(
        unlearned_forget_losses=forget, unlearned_test_losses=test,
        retrained_forget_losses=forget, retrained_test_losses=test,
        rng=np.random.default_rng(0),
    )
    assert same.accuracy_gap == 0.0 and same.auc_gap == 0.0
    leaky = compare_population_attacks(
        unlearned_forget_losses=forget, unlearned_test_losses=test,
        retrained_forget_losses=rng.exponential(1.0, 200), retrained_test_losses=test,
    )
    assert leaky.accuracy_gap > 0.1 and leaky.auc_gap > 0.1
    assert json.dumps(leaky.as_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("forget", "test", "kwargs", "error", "message"),
    [
        (np.ones(5), np.ones(50), {}, InputError, "at least n_splits=10"),
        (np.array([np.nan] * 20), np.ones(20), {}, InputError, "NaN"),
        (np.ones((20, 1)), np.ones(20), {}, InputError, "one-dimensional"),
        (np.array([True] * 20), np.ones(20), {}, InputError, "real-valued"),
        (np.ones(20), np.ones(20), {"n_splits": 1}, ConfigError, "n_splits must be >= 2"),
        (np.ones(20), np.ones(20), {"rng": 0}, ConfigError, "numpy.random.Generator"),
    ],
)
def test_population_attack_validation(forget, test, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        population_attack(forget, test, **kwargs)
