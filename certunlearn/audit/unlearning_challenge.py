r"""The NeurIPS 2023 Machine Unlearning Challenge: its ε and score, and its population attack.

Unlearning-challenge scoring and population attack in one module: both set an unlearned model
beside models retrained from scratch, as the challenge did (Triantafillou et al., "Are we making
progress in unlearning? Findings from the first NeurIPS unlearning competition", arXiv 2406.09073,
2024 — its evaluation methodology; the population attack is the one of the challenge's starting
kit, repository unlearning-challenge/starting-kit).

**Challenge score** (point estimates with no confidence intervals, for comparison with the
leaderboard only; :func:`~certunlearn.audit.epsilon.epsilon_lower_bound` gives a guarantee):

* :func:`challenge_epsilon` — per forget example s, the N outputs of unlearned models and of
  retrained models (one scalar each, e.g. the loss) are separated by the attacks of
  :data:`CHALLENGE_ATTACKS`; :func:`challenge_epsilon_from_rates` turns their (FPR, FNR) into
  ``ε_s = max{ln(1−δ−FPR) − ln FNR, ln(1−δ−FNR) − ln FPR}`` with δ = 0.01;
* :func:`forgetting_quality` — F = mean over examples of ``H = 2 / 2^n``,
  ``n = digitize(ε_s, CHALLENGE_BIN_EDGES)`` (bins of width 0.5 on [0, 6]);
* :func:`challenge_score` — ``F · (RA_U / RA_R) · (TA_U / TA_R)``.

**Population attack** (:func:`population_attack`): the starting kit's simple MIA,
cross-validated logistic regression separating forget-set losses from test-set losses; run it on
the unlearned model and on the retrained reference side by side
(:func:`compare_population_attacks`).

Example:
    >>> rng = np.random.default_rng(0)
    >>> eps = challenge_epsilon(rng.normal(size=(64, 4)), rng.normal(size=(64, 4)), rng=rng)
    >>> eps.shape, 0.0 < forgetting_quality(eps) <= 1.0
    ((4,), True)
    >>> population_attack(np.zeros(20), np.ones(20)).accuracy
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from certunlearn.errors import ConfigError, InputError
from certunlearn.validation import check_int, check_open_unit, check_real, check_real_array

__all__ = [
    "CHALLENGE_ATTACKS",
    "CHALLENGE_BIN_EDGES",
    "ChallengeAttack",
    "PopulationAttackComparison",
    "PopulationAttackResult",
    "challenge_epsilon",
    "challenge_epsilon_from_rates",
    "challenge_score",
    "compare_population_attacks",
    "forgetting_quality",
    "population_attack",
]


# ---------------------------------------------------------------------------------------------
# NeurIPS 2023 Machine Unlearning Challenge (Triantafillou et al. 2024, arXiv 2406.09073)
# ---------------------------------------------------------------------------------------------

CHALLENGE_BIN_EDGES = np.arange(13) * 0.5
"""Bin edges 0, 0.5, …, 6 of the forgetting-quality score (13 edges)."""

ChallengeAttack = Callable[..., tuple[np.ndarray, np.ndarray]]
"""``f(unlearned [N], retrained [N], *, random_state) -> (fprs, fnrs)``; positives = unlearned."""


def _best_threshold_attack(
    unlearned: np.ndarray, retrained: np.ndarray, *, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every threshold t at a pooled output: predict "unlearned" when output > t (in-sample rates)."""
    del random_state  # deterministic
    candidates = np.sort(np.concatenate([retrained, unlearned]))
    fp = retrained.size - np.searchsorted(np.sort(retrained), candidates, side="right")
    fn = np.searchsorted(np.sort(unlearned), candidates, side="right")
    return fp / retrained.size, fn / unlearned.size


def _logistic_regression_attack(
    unlearned: np.ndarray, retrained: np.ndarray, *, random_state: int, n_splits: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on the standardised output, stratified shuffle splits (10% held out);
    held-out FPR and FNR averaged over the splits, as in the challenge's scoring code."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedShuffleSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    samples = np.concatenate([retrained, unlearned]).reshape(-1, 1)
    labels = np.concatenate([np.zeros(retrained.size, np.int64), np.ones(unlearned.size, np.int64)])
    splitter = StratifiedShuffleSplit(n_splits=n_splits, test_size=0.1, random_state=random_state)
    fprs, fnrs = [], []
    for train, test in splitter.split(samples, labels):
        model = make_pipeline(StandardScaler(), LogisticRegression())
        model.fit(samples[train], labels[train])
        predicted = model.predict(samples[test])
        truth = labels[test]
        fprs.append(np.mean(predicted[truth == 0] == 1))
        fnrs.append(np.mean(predicted[truth == 1] == 0))
    return np.array([np.mean(fprs)]), np.array([np.mean(fnrs)])


CHALLENGE_ATTACKS: dict[str, ChallengeAttack] = {
    "best_threshold": _best_threshold_attack,
    "logistic_regression": _logistic_regression_attack,
}
"""Attacks of the challenge's scoring: name -> f(unlearned, retrained, *, random_state)."""

_MIN_CHALLENGE_MODELS = 6  # a 10% stratified test split needs >= 2 held-out samples


def challenge_epsilon_from_rates(
    *, fprs: Sequence[float] | np.ndarray, fnrs: Sequence[float] | np.ndarray, delta: float = 0.01
) -> float:
    """Per-example ε_s of the challenge from the (FPR, FNR) of several attacks (point estimates).

    ``ε_s = max over attacks of max{ln(1−δ−FPR) − ln FNR, ln(1−δ−FNR) − ln FPR}``, floored at 0,
    with the challenge's rules: both rates 0 ⇒ +inf (a perfect attack); exactly one rate 0 ⇒ the
    attack is discarded; both logarithms undefined (FPR and FNR > 1 − δ: a perfectly *inverted*
    attack) ⇒ +inf, as in the challenge's code.

    Args:
        fprs: False-positive rates in [0, 1], one per attack.
        fnrs: False-negative rates in [0, 1], same length.
        delta: δ of the challenge (0.01), in (0, 1).

    Returns:
        ε_s in [0, +inf].

    Example:
        >>> challenge_epsilon_from_rates(fprs=[0.0, 0.5], fnrs=[0.3, 0.5])
        0.0
        >>> challenge_epsilon_from_rates(fprs=[0.0], fnrs=[0.0])
        inf
    """
    fpr = np.asarray(fprs, dtype=np.float64).ravel()
    fnr = np.asarray(fnrs, dtype=np.float64).ravel()
    if fpr.shape != fnr.shape:
        raise InputError(f"fprs and fnrs must have the same length, got {fpr.size} and {fnr.size}")
    if np.any(~np.isfinite(fpr)) or np.any(~np.isfinite(fnr)):
        raise InputError("fprs and fnrs must be finite")
    if np.any((fpr < 0) | (fpr > 1) | (fnr < 0) | (fnr > 1)):
        raise InputError("fprs and fnrs must lie in [0, 1]")
    delta = check_open_unit("delta", delta)
    best = 0.0
    for a, b in zip(fpr.tolist(), fnr.tolist(), strict=True):
        if a == 0.0 and b == 0.0:
            return math.inf
        if a == 0.0 or b == 0.0:
            continue  # discarded attack
        candidates = [
            math.log(1.0 - delta - a) - math.log(b) if 1.0 - delta - a > 0 else math.nan,
            math.log(1.0 - delta - b) - math.log(a) if 1.0 - delta - b > 0 else math.nan,
        ]
        finite = [c for c in candidates if not math.isnan(c)]
        if not finite:
            return math.inf
        best = max(best, *finite)
    return best


def challenge_epsilon(
    unlearned_outputs: object,
    retrained_outputs: object,
    *,
    delta: float = 0.01,
    attacks: Sequence[str] = ("best_threshold", "logistic_regression"),
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Per-example ε_s of the NeurIPS 2023 unlearning challenge (Triantafillou et al. 2024).

    For each forget example s, the N outputs of unlearned models (positives) and the N outputs of
    retrained-from-scratch models (negatives) — one scalar per model, e.g. the loss — are separated
    by every attack in ``attacks`` (:data:`CHALLENGE_ATTACKS`: the best single threshold, in-sample;
    logistic regression on the standardised output with two stratified 90/10 splits); the rates go
    through :func:`challenge_epsilon_from_rates`. Point estimates, no confidence intervals: use it
    to compare with the leaderboard, and :func:`epsilon_lower_bound` for a guarantee.

    Args:
        unlearned_outputs: ``[N, S]`` (models × forget examples) or ``[N]`` for one example.
        retrained_outputs: Same shape.
        delta: δ of the challenge, in (0, 1).
        attacks: Keys of :data:`CHALLENGE_ATTACKS`.
        rng: Source of the split randomness; None uses ``random_state=0`` as the challenge did.

    Returns:
        ``[S]`` float64 array of ε_s (may contain +inf).

    Raises:
        InputError: Shapes differ, fewer than 6 models, or non-finite outputs.
        ConfigError: Unknown attack or bad ``delta``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> same = challenge_epsilon(rng.normal(size=(512, 3)), rng.normal(size=(512, 3)), rng=rng)
        >>> bool(np.all(same < 0.5)), forgetting_quality(same)
        (True, 1.0)
    """
    unlearned = np.asarray(unlearned_outputs, dtype=np.float64)
    retrained = np.asarray(retrained_outputs, dtype=np.float64)
    if unlearned.shape != retrained.shape:
        raise InputError(
            f"unlearned_outputs and retrained_outputs must have the same shape, "
            f"got {unlearned.shape} and {retrained.shape}"
        )
    if unlearned.ndim == 1:
        unlearned, retrained = unlearned[:, None], retrained[:, None]
    if unlearned.ndim != 2:
        raise InputError(f"outputs must have shape [N, S] or [N], got {unlearned_outputs!r:.60}")
    if unlearned.shape[0] < _MIN_CHALLENGE_MODELS:
        raise InputError(
            f"need at least {_MIN_CHALLENGE_MODELS} models per side for the stratified splits, "
            f"got {unlearned.shape[0]}"
        )
    if not (np.all(np.isfinite(unlearned)) and np.all(np.isfinite(retrained))):
        raise InputError("outputs contain NaN or infinite values")
    delta = check_open_unit("delta", delta)
    if isinstance(attacks, str) or len(attacks) == 0:
        raise ConfigError(f"attacks must be a non-empty sequence of names, got {attacks!r}")
    for name in attacks:
        if name not in CHALLENGE_ATTACKS:
            raise ConfigError(f"attacks must be among {sorted(CHALLENGE_ATTACKS)}, got {name!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    random_state = 0 if rng is None else int(rng.integers(0, 2**31 - 1))
    epsilons = np.empty(unlearned.shape[1])
    for s in range(unlearned.shape[1]):
        fprs, fnrs = [], []
        for name in attacks:
            fpr, fnr = CHALLENGE_ATTACKS[name](
                unlearned[:, s], retrained[:, s], random_state=random_state
            )
            fprs.append(fpr)
            fnrs.append(fnr)
        epsilons[s] = challenge_epsilon_from_rates(
            fprs=np.concatenate(fprs), fnrs=np.concatenate(fnrs), delta=delta
        )
    return epsilons


def forgetting_quality(eps_per_example: object) -> float:
    """Forgetting quality F of the challenge: mean of H = 2 / 2^n over examples.

    ``n = digitize(ε_s, [0, 0.5, …, 6])``, so ε in [0, 0.5) ⇒ n = 1 ⇒ H = 1, each further 0.5 halves
    H, and ε >= 6 (including +inf) ⇒ n = 13 ⇒ H = 2⁻¹².

    Args:
        eps_per_example: ε_s values ``[S]`` (>= 0, +inf allowed, no NaN).

    Returns:
        F in (0, 1].

    Example:
        >>> forgetting_quality([0.0, 0.49, 0.5, 6.0, float("inf")])
        0.50009765625
    """
    eps = np.asarray(eps_per_example, dtype=np.float64).ravel()
    if eps.size == 0:
        raise InputError("eps_per_example must not be empty")
    if np.any(np.isnan(eps)) or np.any(eps < 0):
        raise InputError("eps_per_example must be >= 0 (inf allowed) and free of NaN")
    bins = np.digitize(eps, CHALLENGE_BIN_EDGES)
    return float(np.mean(2.0 / 2.0**bins))


def challenge_score(
    *,
    forgetting_quality: float,
    retain_accuracy_unlearned: float,
    retain_accuracy_retrained: float,
    test_accuracy_unlearned: float,
    test_accuracy_retrained: float,
) -> float:
    """Challenge score ``F · (RA_U / RA_R) · (TA_U / TA_R)`` (accuracies averaged over models).

    Args:
        forgetting_quality: F from :func:`forgetting_quality`, in [0, 1].
        retain_accuracy_unlearned: Mean retain-set accuracy of the unlearned models, in [0, 1].
        retain_accuracy_retrained: Same for the retrained models, in (0, 1].
        test_accuracy_unlearned: Mean test accuracy of the unlearned models, in [0, 1].
        test_accuracy_retrained: Same for the retrained models, in (0, 1].

    Returns:
        The score (>= 0; above F when the unlearned models are more accurate).

    Example:
        >>> challenge_score(forgetting_quality=0.5, retain_accuracy_unlearned=0.9,
        ...     retain_accuracy_retrained=1.0, test_accuracy_unlearned=0.8, test_accuracy_retrained=0.8)
        0.45
    """
    values = {
        "forgetting_quality": forgetting_quality,
        "retain_accuracy_unlearned": retain_accuracy_unlearned,
        "retain_accuracy_retrained": retain_accuracy_retrained,
        "test_accuracy_unlearned": test_accuracy_unlearned,
        "test_accuracy_retrained": test_accuracy_retrained,
    }
    checked = {}
    for name, value in values.items():
        number = check_real(name, value)
        if not 0.0 <= number <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        checked[name] = number
    for name in ("retain_accuracy_retrained", "test_accuracy_retrained"):
        if checked[name] == 0.0:
            raise ConfigError(f"{name} must be > 0, got {values[name]!r}")
    return (
        checked["forgetting_quality"]
        * (checked["retain_accuracy_unlearned"] / checked["retain_accuracy_retrained"])
        * (checked["test_accuracy_unlearned"] / checked["test_accuracy_retrained"])
    )


# ---------------------------------------------------------------------------------------------
# Population attack of the NeurIPS 2023 unlearning challenge
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PopulationAttackResult:
    """Cross-validated forget-vs-test logistic-regression attack on per-example losses.

    Attributes:
        accuracy: Mean held-out accuracy over the folds (0.5 = chance on balanced classes).
        accuracy_std: Standard deviation of the fold accuracies.
        auc: Mean held-out AUC over the folds.
        auc_std: Standard deviation of the fold AUCs.
        fold_accuracies: Per-fold accuracies.
        fold_aucs: Per-fold AUCs.
        n_forget: Forget losses used (after balancing).
        n_test: Test losses used (after balancing).
        n_splits: Folds of the stratified K-fold.
        balanced: Whether the larger side was subsampled to the smaller one's size.
    """

    accuracy: float
    accuracy_std: float
    auc: float
    auc_std: float
    fold_accuracies: tuple[float, ...]
    fold_aucs: tuple[float, ...]
    n_forget: int
    n_test: int
    n_splits: int
    balanced: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy.

        Example:
            >>> r = population_attack(np.r_[np.zeros(20)], np.r_[np.ones(20)])
            >>> r.as_dict()["accuracy"], r.as_dict()["method"][:19]
            (1.0, 'logistic regression')
        """
        return {
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "auc": self.auc,
            "auc_std": self.auc_std,
            "fold_accuracies": list(self.fold_accuracies),
            "fold_aucs": list(self.fold_aucs),
            "n_forget": self.n_forget,
            "n_test": self.n_test,
            "n_splits": self.n_splits,
            "balanced": self.balanced,
            "method": "logistic regression on the loss, stratified K-fold "
            "(NeurIPS 2023 unlearning challenge starting kit)",
        }


def _check_losses(name: str, values: object) -> np.ndarray:
    return check_real_array(name, values, ndim=1)


def population_attack(
    forget_losses: object,
    test_losses: object,
    *,
    rng: np.random.Generator | None = None,
    n_splits: int = 10,
    balance: bool = True,
) -> PopulationAttackResult:
    """The NeurIPS 2023 unlearning challenge kit's simple MIA: forget vs test losses.

    Logistic regression (scikit-learn defaults) on the per-example loss, label 1 = forget set,
    0 = test set, scored by stratified K-fold cross-validation (held-out accuracy and AUC averaged
    over the folds). As in the kit, the larger set is first subsampled to the smaller one's size so
    chance accuracy is 0.5. (The kit itself scored 10 stratified shuffle splits with 10% held out;
    K-fold holds every example out exactly once.) Run it on the unlearned model and on the retrained reference
    (:func:`compare_population_attacks`): accuracy near the reference's is the goal, not 0.5. A
    population attack is much weaker than per-example ones (U-LiRA); it can show leakage, never
    its absence.

    Args:
        forget_losses: ``[n_forget]`` losses of the model on the forget set.
        test_losses: ``[n_test]`` losses on held-out test records.
        rng: Source of the subsampling and of the fold shuffling; None behaves like
            ``np.random.default_rng(0)`` (reproducible, as the kit's ``random_state=0``).
        n_splits: Folds (>= 2); each class needs at least this many examples.
        balance: Subsample the larger side (the kit does).

    Returns:
        :class:`PopulationAttackResult`.

    Raises:
        InputError: Non-finite or non-1-D losses, or too few examples for the folds.
        ConfigError: Bad ``n_splits`` or ``rng``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> same = population_attack(rng.exponential(1.0, 400), rng.exponential(1.0, 400), rng=rng)
        >>> abs(same.accuracy - 0.5) < 0.06
        True
        >>> apart = population_attack(rng.exponential(0.1, 400), rng.exponential(1.0, 400), rng=rng)
        >>> apart.accuracy > 0.7 and apart.auc > 0.8
        True
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate

    forget = _check_losses("forget_losses", forget_losses)
    test = _check_losses("test_losses", test_losses)
    n_splits = check_int("n_splits", n_splits, minimum=2)
    if rng is None:
        rng = np.random.default_rng(0)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    if balance:
        size = min(forget.size, test.size)
        if forget.size > size:
            forget = rng.choice(forget, size=size, replace=False)
        if test.size > size:
            test = rng.choice(test, size=size, replace=False)
    if min(forget.size, test.size) < n_splits:
        raise InputError(
            f"each side needs at least n_splits={n_splits} losses, got {forget.size} forget and "
            f"{test.size} test"
        )
    samples = np.concatenate([test, forget]).reshape(-1, 1)
    labels = np.concatenate([np.zeros(test.size, np.int64), np.ones(forget.size, np.int64)])
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
    scores = cross_validate(
        LogisticRegression(), samples, labels, cv=folds, scoring=("accuracy", "roc_auc")
    )
    accuracies = np.asarray(scores["test_accuracy"], dtype=np.float64)
    aucs = np.asarray(scores["test_roc_auc"], dtype=np.float64)
    return PopulationAttackResult(
        accuracy=float(accuracies.mean()),
        accuracy_std=float(accuracies.std()),
        auc=float(aucs.mean()),
        auc_std=float(aucs.std()),
        fold_accuracies=tuple(float(a) for a in accuracies),
        fold_aucs=tuple(float(a) for a in aucs),
        n_forget=int(forget.size),
        n_test=int(test.size),
        n_splits=n_splits,
        balanced=bool(balance),
    )


@dataclass(frozen=True, slots=True)
class PopulationAttackComparison:
    """The population attack on the unlearned model and on the retrained reference, side by side.

    Attributes:
        unlearned: Result on the unlearned model's losses.
        retrained: Result on the retrained-from-scratch reference's losses.
        accuracy_gap: ``unlearned.accuracy − retrained.accuracy`` (> 0: the forget set is easier to
            spot than after a real retrain — under-unlearning; < 0: over-unlearning, also a leak).
        auc_gap: ``unlearned.auc − retrained.auc``.
    """

    unlearned: PopulationAttackResult
    retrained: PopulationAttackResult
    accuracy_gap: float
    auc_gap: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy.

        Example:
            >>> z, o = np.zeros(20), np.ones(20)
            >>> c = compare_population_attacks(unlearned_forget_losses=z, unlearned_test_losses=o,
            ...     retrained_forget_losses=o, retrained_test_losses=o)
            >>> c.as_dict()["accuracy_gap"]
            0.5
        """
        return {
            "unlearned": self.unlearned.as_dict(),
            "retrained": self.retrained.as_dict(),
            "accuracy_gap": self.accuracy_gap,
            "auc_gap": self.auc_gap,
        }


def compare_population_attacks(
    *,
    unlearned_forget_losses: object,
    unlearned_test_losses: object,
    retrained_forget_losses: object,
    retrained_test_losses: object,
    rng: np.random.Generator | None = None,
    n_splits: int = 10,
) -> PopulationAttackComparison:
    """:func:`population_attack` on the unlearned model and on the retrained reference, same folds.

    Both runs use the same seed for subsampling and folds, so with equal sizes the comparison is
    paired.

    Args:
        unlearned_forget_losses: Unlearned model's losses on the forget set.
        unlearned_test_losses: Unlearned model's losses on the test set.
        retrained_forget_losses: Retrained reference's losses on the forget set.
        retrained_test_losses: Retrained reference's losses on the test set.
        rng: Source of the shared seed; None uses 0.
        n_splits: Folds of each cross-validation.

    Returns:
        :class:`PopulationAttackComparison`.

    Example:
        >>> rng = np.random.default_rng(3)
        >>> c = compare_population_attacks(unlearned_forget_losses=rng.exponential(0.2, 300),
        ...     unlearned_test_losses=rng.exponential(1.0, 300),
        ...     retrained_forget_losses=rng.exponential(1.0, 300),
        ...     retrained_test_losses=rng.exponential(1.0, 300), rng=rng)
        >>> c.accuracy_gap > 0.1
        True
    """
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    seed = 0 if rng is None else int(rng.integers(2**31 - 1))
    unlearned = population_attack(
        unlearned_forget_losses, unlearned_test_losses, rng=np.random.default_rng(seed),
        n_splits=n_splits,
    )
    retrained = population_attack(
        retrained_forget_losses, retrained_test_losses, rng=np.random.default_rng(seed),
        n_splits=n_splits,
    )
    return PopulationAttackComparison(
        unlearned=unlearned,
        retrained=retrained,
        accuracy_gap=unlearned.accuracy - retrained.accuracy,
        auc_gap=unlearned.auc - retrained.auc,
    )
