r"""The attack stage of MIA-U: fit on the shadow universe, evaluate on the held-out target universe.

Given both universes' query pairs (:class:`~certunlearn.audit.mia_u_results.MIAUQueries`, built by
:func:`~certunlearn.audit.mia_u.run_mia_u`), this module does the part of Chen et al.'s protocol
("When Machine Unlearning Jeopardizes Privacy", ACM CCS 2021) that needs no model, only numpy and
scikit-learn:

* :func:`fit_attacks` — for every output defence, feature and attack classifier, fit a
  standardised classifier on the **shadow** features (``basic`` always, as the DegCount/DegRate
  reference) and score the **target** features;
* :func:`evaluate_attacks` — target-set AUC, TPR@FPR with Clopper–Pearson bounds, the empirical ε
  lower bound and DegCount / DegRate against ``basic`` for each requested attack;
* :func:`best_attack` — the highest target AUC, its ε bound Bonferroni-corrected for choosing it.

An attack is never scored on the features it was fitted on.

Example:
    >>> from certunlearn.audit.mia_u_results import MIAUQueries
    >>> from certunlearn.audit.mia_u_spec import MIAUSpec
    >>> def universe(name, seed):  # the deleted records' posteriors sharpen after unlearning
    ...     member, logits = np.tile([True, False], 20), np.random.default_rng(seed).normal(size=(40, 3))
    ...     return MIAUQueries(name, np.arange(40), (np.arange(40),), np.arange(40), member,
    ...         np.zeros(40, int), np.repeat(np.arange(20), 2), logits, logits * (1 + 2 * member[:, None]))
    >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=20, records_per_original=40,
    ...     attack_models=("logistic_regression",), features=("l2_distance",), n_bootstrap=0)
    >>> target = universe("target", 1)
    >>> fitted, scores, notes = fit_attacks(universe("shadow", 0), target, spec)
    >>> results = evaluate_attacks(target, scores, spec)
    >>> index, epsilon = best_attack(results, spec)
    >>> results[index].feature, results[index].auc, round(results[index].deg_count, 2)
    ('l2_distance', 1.0, 0.97)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from certunlearn.audit.epsilon import EpsilonBound, epsilon_lower_bound
from certunlearn.audit.features import (
    apply_defence,
    compute_features,
    deg_count,
    deg_rate,
    true_label_confidences,
)
from certunlearn.audit.metrics import attack_metrics
from certunlearn.audit.mia_u_results import (
    FittedAttack,
    MIAUAttackResult,
    MIAUQueries,
    _member_probabilities,
)
from certunlearn.audit.mia_u_spec import ATTACK_CLASSIFIERS, MIAUSpec
from certunlearn.errors import InputError

__all__ = ["AttackKey", "best_attack", "evaluate_attacks", "fit_attacks"]

AttackKey = tuple[str, str, str]
"""``(defence, feature, classifier)``: one attack of the protocol."""


def _fit(estimator: Any, features: np.ndarray, labels: np.ndarray, what: str, notes: list[str]) -> Any:
    """Fit ``estimator``; convergence warnings become ``notes``, other warnings pass through."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(features, labels)
        except ValueError as exc:
            raise InputError(
                f"{what}: fitting on {labels.size} shadow queries failed ({exc}); raise "
                f"n_shadow_originals or n_unlearned_per_original, or drop this classifier"
            ) from exc
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            notes.append(f"{what}: {str(warning.message).splitlines()[0]}")
        else:  # re-emit anything else unchanged
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return estimator


def _defended(queries: MIAUQueries, defence: str) -> dict[str, np.ndarray]:
    """Both models' posteriors under ``defence``, as :func:`compute_features` takes them."""
    return {"p_original": apply_defence(defence, logits=queries.original_logits),
            "p_unlearned": apply_defence(defence, logits=queries.unlearned_logits)}


def fit_attacks(
    shadow: MIAUQueries, target: MIAUQueries, spec: MIAUSpec
) -> tuple[dict[AttackKey, FittedAttack], dict[AttackKey, np.ndarray], list[str]]:
    """Fit every (defence, feature, classifier) on the shadow universe; score the target one.

    For each defence of ``spec`` (applied to both models' logits), each feature (``basic`` is
    always added: it is the DegCount/DegRate reference) and each attack classifier, a
    StandardScaler + :data:`~certunlearn.audit.mia_u_spec.ATTACK_CLASSIFIERS` pipeline is fitted
    on the shadow features (label 1 = deleted record) and applied to the target features.

    Args:
        shadow: Queries of the shadow universe (the attacks' training data).
        target: Queries of the target universe (scored, never fitted on).
        spec: The protocol's settings (defences, features, classifiers, negatives).

    Returns:
        ``(fitted, target_scores, notes)``: the :class:`FittedAttack` per :data:`AttackKey`, its
        ``[m]`` target scores (P(deleted)), and the convergence warnings met while fitting.

    Raises:
        InputError: A classifier cannot be fitted on the shadow queries (e.g. too few of them).

    Example:
        >>> from certunlearn.audit.mia_u_results import MIAUQueries
        >>> from certunlearn.audit.mia_u_spec import MIAUSpec
        >>> member, logits = np.tile([True, False], 10), np.random.default_rng(0).normal(size=(20, 3))
        >>> queries = MIAUQueries("shadow", np.arange(20), (np.arange(20),), np.arange(20), member,
        ...     np.zeros(20, int), np.repeat(np.arange(10), 2), logits, logits * (1 + member[:, None]))
        >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=10, records_per_original=20,
        ...     attack_models=("decision_tree",), features=("l2_distance",), n_bootstrap=0)
        >>> fitted, scores, notes = fit_attacks(queries, queries, spec)
        >>> sorted(fitted), scores[("none", "l2_distance", "decision_tree")].shape
        ([('none', 'basic', 'decision_tree'), ('none', 'l2_distance', 'decision_tree')], (20,))
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    notes: list[str] = []
    fitted: dict[AttackKey, FittedAttack] = {}
    target_scores: dict[AttackKey, np.ndarray] = {}
    fit_features = spec.features if "basic" in spec.features else (*spec.features, "basic")
    shadow_labels = shadow.is_member.astype(np.int64)
    for defence in spec.defences:
        shadow_p, target_p = _defended(shadow, defence), _defended(target, defence)  # once per defence
        for feature in fit_features:
            train_features = compute_features(feature, **shadow_p)
            test_features = compute_features(feature, **target_p)
            for classifier in spec.attack_models:
                estimator = make_pipeline(StandardScaler(), ATTACK_CLASSIFIERS[classifier](spec))
                what = f"{classifier} on {feature} ({defence})"
                _fit(estimator, train_features, shadow_labels, what, notes)
                key = (defence, feature, classifier)
                fitted[key] = FittedAttack(
                    feature, classifier, defence, spec.negatives, estimator, int(shadow_labels.size)
                )
                target_scores[key] = _member_probabilities(estimator, test_features)
    return fitted, target_scores, notes


def _degradation(
    scores: np.ndarray, basic_scores: np.ndarray, members: np.ndarray
) -> tuple[float, float]:
    """(DegCount, DegRate) of an attack's target scores against ``basic``'s."""
    c_f = true_label_confidences(member_probabilities=scores, is_member=members)
    c_b = true_label_confidences(member_probabilities=basic_scores, is_member=members)
    return (
        deg_count(feature_confidences=c_f, basic_confidences=c_b),
        deg_rate(feature_confidences=c_f, basic_confidences=c_b),
    )


def evaluate_attacks(
    target: MIAUQueries, target_scores: Mapping[AttackKey, np.ndarray], spec: MIAUSpec
) -> list[MIAUAttackResult]:
    """Target-set metrics of every requested attack, in (defence, feature, classifier) order.

    Members are the target universe's positives (deleted records). Each attack gets
    :func:`~certunlearn.audit.metrics.attack_metrics` (bootstrap draws from one generator seeded
    by ``[spec.seed, 1]``, shared in order), :func:`~certunlearn.audit.epsilon.epsilon_lower_bound`
    at ``spec.alpha`` (valid for that attack chosen in advance) and, except ``basic`` itself,
    DegCount / DegRate against ``basic`` with the same defence and classifier.

    Args:
        target: Queries of the target universe.
        target_scores: Target scores per :data:`AttackKey` (from :func:`fit_attacks`), ``basic``
            included.
        spec: The protocol's settings (which attacks to report, α, δ, FPR targets, bootstrap).

    Returns:
        One :class:`MIAUAttackResult` per (defence, feature, classifier) of ``spec``.

    Example:
        >>> from certunlearn.audit.mia_u_results import MIAUQueries
        >>> from certunlearn.audit.mia_u_spec import MIAUSpec
        >>> member, logits = np.tile([True, False], 10), np.zeros((20, 2))
        >>> target = MIAUQueries("target", np.arange(20), (np.arange(20),), np.arange(20), member,
        ...     np.zeros(20, int), np.repeat(np.arange(10), 2), logits, logits)
        >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=10, records_per_original=20,
        ...     attack_models=("mlp",), features=("l2_distance",), n_bootstrap=0)
        >>> scores = {("none", "l2_distance", "mlp"): member * 0.9 + 0.05,
        ...     ("none", "basic", "mlp"): np.full(20, 0.5)}
        >>> [(r.feature, r.auc, r.deg_count) for r in evaluate_attacks(target, scores, spec)]
        [('l2_distance', 1.0, 1.0)]
    """
    members = target.is_member
    metric_rng = np.random.default_rng([spec.seed, 1])
    results: list[MIAUAttackResult] = []
    for defence in spec.defences:
        for feature in spec.features:
            for classifier in spec.attack_models:
                scores = target_scores[(defence, feature, classifier)]
                count = rate = None
                if feature != "basic":
                    count, rate = _degradation(
                        scores, target_scores[(defence, "basic", classifier)], members
                    )
                results.append(
                    MIAUAttackResult(
                        defence=defence,
                        feature=feature,
                        classifier=classifier,
                        metrics=attack_metrics(
                            scores[members], scores[~members], alpha=spec.alpha, fprs=spec.fprs,
                            n_bootstrap=spec.n_bootstrap, rng=metric_rng,
                        ),
                        epsilon=epsilon_lower_bound(
                            scores[members], scores[~members], delta=spec.delta, alpha=spec.alpha
                        ),
                        deg_count=count,
                        deg_rate=rate,
                        scores_in=scores[members],
                        scores_out=scores[~members],
                    )
                )
    return results


def best_attack(results: Sequence[MIAUAttackResult], spec: MIAUSpec) -> tuple[int, EpsilonBound]:
    """The attack with the highest target AUC and its selection-corrected ε lower bound.

    Choosing the best of ``len(results)`` attacks on the same target scores is a multiple
    comparison, so its ε bound is taken at level ``spec.alpha / len(results)`` (Bonferroni).

    Args:
        results: Target-set results (:func:`evaluate_attacks`), at least one.
        spec: The protocol's settings (α, δ).

    Returns:
        ``(index, epsilon)``: the index in ``results`` of the highest AUC (first on ties) and
        :class:`~certunlearn.audit.epsilon.EpsilonBound` of its scores.

    Example:
        >>> from certunlearn.audit.mia_u_spec import MIAUSpec
        >>> from certunlearn.audit import attack_metrics, epsilon_lower_bound
        >>> def result(feature, scores_in):
        ...     return MIAUAttackResult("none", feature, "mlp", attack_metrics(scores_in, [0.0] * 50,
        ...         n_bootstrap=0), epsilon_lower_bound(scores_in, [0.0] * 50), None, None,
        ...         np.asarray(scores_in), np.zeros(50))
        >>> results = [result("basic", [0.0] * 50), result("l2_distance", [1.0] * 50)]
        >>> index, epsilon = best_attack(results, MIAUSpec())
        >>> index, epsilon.alpha, epsilon.epsilon < results[1].epsilon.epsilon
        (1, 0.025, True)
    """
    best_index = int(np.argmax(np.array([r.auc for r in results])))
    best = results[best_index]
    epsilon = epsilon_lower_bound(
        best.scores_in, best.scores_out, delta=spec.delta, alpha=spec.alpha / len(results)
    )
    return best_index, epsilon


