r"""Membership inference against the unlearning itself (MIA-U, Chen et al., CCS 2021) and the
population attack of the NeurIPS 2023 unlearning challenge.

**MIA-U shadow protocol** (REFERENCE §4.4; "When Machine Unlearning Jeopardizes Privacy",
repository MinChen00/UnlearningLeaks). The records (rows of ``X``) are split 50/50 into a **shadow**
and a **target** universe; each universe into a positive pool (``positive_fraction``, 80% in the
paper) and a negative pool. In each universe ``n_shadow_originals`` original models are trained on
``records_per_original`` records drawn from the positive pool; for each original,
``n_unlearned_per_original`` unlearned models each forget one distinct record of its training set.
Every (original, unlearned) pair is queried on

* a **positive** — the deleted record, ⟨in, out⟩ (in the original, out of the unlearned training
  set), and
* a **negative**, either ``"out_out"`` — a record of the negative pool that neither model saw
  (Chen et al.'s definition) — or ``"in_in"`` — a record both models were trained on (a retained
  record; this measures leakage about the retained set and is a different question).

Each query gives the posteriors ``p_o`` and ``p_u`` (after the output defence) and the features of
:mod:`certunlearn.audit.features`. Attack classifiers (scikit-learn on standardised features, Chen
et al.'s settings: :data:`ATTACK_CLASSIFIERS`) are **fitted on the shadow universe's features and
evaluated on the held-out target universe** — never on their own training features (the HF-OCU
and Zhang et al. code do; that is optimistic). The report gives, per (defence, feature, classifier),
AUC, balanced accuracy, TPR@FPR with Clopper–Pearson bounds (:func:`attack_metrics`), the empirical
ε lower bound (:func:`epsilon_lower_bound`) and DegCount / DegRate against ``basic``; the headline is
the best combination on the target set, whose ε bound is Bonferroni-corrected for that selection.

The unlearning operation is pluggable: ``"retrain"`` (default: :func:`train_sgd` on the remaining
records, same initialisation and configuration), ``"coupled_retrain"`` (replay of the original
batch schedule without the record), or a callable ``(model, X, y, forget_ids) -> unlearned`` so a
user's method can be audited (:func:`posthoc_unlearning` wraps the registered post-hoc
unlearners). :func:`audit_unlearning` applies a fitted attack to one (original, unlearned) pair a
user brings.

**Population attack** (:func:`population_attack`): the challenge starting kit's simple MIA,
cross-validated logistic regression separating forget-set losses from test-set losses; run it on
the unlearned model and on the retrained reference side by side
(:func:`compare_population_attacks`).

Example:
    >>> import torch
    >>> from certunlearn.train import SGDConfig
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(60, 4, dtype=torch.float64, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=4, records_per_original=20,
    ...     model="logreg", training=SGDConfig(epochs=3, batch_size=20, lr=0.5),
    ...     attack_models=("logistic_regression",), features=("l2_distance", "basic"), n_bootstrap=0)
    >>> result = run_mia_u(X, y, spec=spec)
    >>> len(result.attacks), result.target.record_ids.size
    (2, 8)
    >>> set(result.shadow.universe_ids.tolist()).isdisjoint(result.target.universe_ids.tolist())
    True
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from certunlearn.audit.epsilon import EpsilonBound, epsilon_lower_bound
from certunlearn.audit.features import (
    CHEN_FEATURES,
    FEATURES,
    apply_defence,
    compute_features,
    deg_count,
    deg_rate,
    parse_defence,
    true_label_confidences,
)
from certunlearn.audit.metrics import AttackMetrics, attack_metrics, readonly_copy
from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.errors import ConfigError, InputError
from certunlearn.models import MODELS, build_model
from certunlearn.progress import ProgressFn, report
from certunlearn.serialize import plain
from certunlearn.train.config import SGDConfig
from certunlearn.train.sgd import coupled_retrain, train_sgd
from certunlearn.unlearn.base import UnlearnResult, get_unlearner
from certunlearn.validation import (
    check_choice,
    check_int,
    check_open_unit,
    check_real,
    check_real_array,
    register,
)

__all__ = [
    "ATTACK_CLASSIFIERS",
    "NEGATIVES",
    "UNLEARNING_METHODS",
    "FittedAttack",
    "MIAUAttackResult",
    "MIAUQueries",
    "MIAUResult",
    "MIAUSpec",
    "PopulationAttackComparison",
    "PopulationAttackResult",
    "UnlearningAudit",
    "audit_unlearning",
    "compare_population_attacks",
    "population_attack",
    "posthoc_unlearning",
    "register_attack_classifier",
    "run_mia_u",
]

NEGATIVES: Mapping[str, str] = MappingProxyType(
    {
        "out_out": "never trained: in neither the original's nor the unlearned model's training set "
        "(Chen et al.'s negatives)",
        "in_in": "retained: in both the original's and the unlearned model's training set "
        "(leakage about the retained set, a different question)",
    }
)
"""Negative-example definitions: ``"out_out"`` (never trained) or ``"in_in"`` (retained)."""

UNLEARNING_METHODS = ("coupled_retrain", "retrain")
"""Built-in unlearning operations of the shadow protocol (a callable may be given instead)."""

EVALUATION = (
    "attack classifiers fitted on the shadow universe's features, evaluated on the disjoint "
    "held-out target universe"
)

UnlearnFn = Callable[[nn.Module, Tensor, Tensor, list[int]], Any]
"""``f(original_model, X, y, forget_ids) -> nn.Module | state dict | UnlearnResult | logits_fn``.

``X, y`` are the original's training records and ``forget_ids`` row indices into them; the
original module is a fresh copy (it may be modified). A ``logits_fn`` maps a tensor of inputs to
logits ``[n, C]``.
"""


# ---------------------------------------------------------------------------------------------
# Attack classifiers
# ---------------------------------------------------------------------------------------------

AttackClassifierFactory = Callable[["MIAUSpec"], Any]
"""``factory(spec) -> unfitted scikit-learn classifier`` (standardisation is added around it)."""


def _decision_tree(spec: MIAUSpec) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    del spec
    return DecisionTreeClassifier(max_leaf_nodes=10, random_state=0)


def _random_forest(spec: MIAUSpec) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=spec.random_forest_trees, min_samples_leaf=30, random_state=0
    )


def _logistic_regression(spec: MIAUSpec) -> Any:
    from sklearn.linear_model import LogisticRegression

    del spec
    return LogisticRegression(solver="lbfgs", max_iter=400)


def _mlp(spec: MIAUSpec) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(early_stopping=True, learning_rate_init=0.01, random_state=spec.seed)


ATTACK_CLASSIFIERS: dict[str, AttackClassifierFactory] = {
    "decision_tree": _decision_tree,
    "logistic_regression": _logistic_regression,
    "random_forest": _random_forest,
    "mlp": _mlp,
}
"""Attack classifiers with Chen et al.'s settings: DecisionTree (max_leaf_nodes=10,
random_state=0), LogisticRegression (lbfgs, max_iter=400), RandomForest (``random_forest_trees``
trees, min_samples_leaf=30, random_state=0), MLPClassifier (early_stopping, learning_rate_init=0.01,
random_state = the spec's seed). Each is preceded by a StandardScaler."""


def register_attack_classifier(
    name: str, factory: AttackClassifierFactory, *, force: bool = False
) -> None:
    """Register ``factory(spec) -> scikit-learn classifier`` as an MIA-U attack model.

    Args:
        name: Registry key.
        factory: Builds an unfitted classifier with ``fit`` and ``predict_proba``.
        force: Replace an existing entry.

    Raises:
        ConfigError: Name taken without ``force``, or ``factory`` not callable.

    Example:
        >>> register_attack_classifier("mlp", lambda spec: None)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: attack classifier 'mlp' is already registered; pass force=True to replace it
    """
    if not callable(factory):
        raise ConfigError(f"attack classifier {name!r} factory must be callable")
    register("attack classifier", ATTACK_CLASSIFIERS, name, factory, force=force)


# ---------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------


def _default_training() -> SGDConfig:
    return SGDConfig(epochs=50, batch_size=64, lr=0.1)


def _names(what: str, values: object, registry: Mapping[str, Any] | Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
        raise ConfigError(f"{what} must be a non-empty sequence of names, got {values!r}")
    out = tuple(values)
    for value in out:
        if value not in registry:
            raise ConfigError(f"unknown {what[:-1]} {value!r}: use one of {sorted(registry)}")
    repeated = sorted({v for v in out if out.count(v) > 1})
    if repeated:
        raise ConfigError(f"{what} repeats {repeated}")
    return out


def _spec_plain(value: Any) -> Any:
    return plain(value, unknown=repr)


_RESERVED_MODEL_KWARGS = ("generator", "in_features", "num_classes")


@dataclass(frozen=True, slots=True)
class MIAUSpec:
    """Budget and settings of the MIA-U shadow protocol (Chen et al.'s code defaults).

    Attributes:
        n_shadow_originals: Original models trained per universe (shadow and target alike; >= 1).
        n_unlearned_per_original: Unlearned models per original, each forgetting one distinct
            record (>= 1): the universe yields ``n_shadow_originals · n_unlearned_per_original``
            positives and as many negatives.
        records_per_original: Training records of each original (>= 2), drawn from the positive pool.
        model: A :data:`~certunlearn.models.MODELS` name, ``"package.module:factory"``, or a callable
            ``factory(in_features=, num_classes=, generator=, **model_kwargs) -> nn.Module``.
        model_kwargs: Extra keyword arguments of the factory (not ``in_features``,
            ``num_classes``, ``generator``: the protocol sets those).
        training: SGD settings of every original (and of the ``retrain`` unlearning); its seed is
            replaced by a per-original seed drawn from ``seed``.
        attack_models: Keys of :data:`ATTACK_CLASSIFIERS`.
        random_forest_trees: Trees of the random forest (500 in Chen et al.; fewer is faster).
        features: Keys of :data:`~certunlearn.audit.features.FEATURES`. ``basic`` is always fitted
            as the DegCount/DegRate reference; it enters the results only if listed.
        negatives: ``"out_out"`` (never trained) or ``"in_in"`` (retained), see :data:`NEGATIVES`.
        defences: Defence strings (``"none"``, ``"top_k:3"``, ``"label_only"``,
            ``"temperature:2"``), each evaluated separately and applied to every feature.
        positive_fraction: Share of a universe in its positive pool, in (0, 1) (0.8 in the paper).
        alpha: Error level of the Clopper–Pearson bounds, the bootstrap band and ε_lb, in (0, 1).
        delta: δ of the ε lower bounds, in [0, 1).
        fprs: FPR targets x of TPR@FPR=x, fractions in [0, 1].
        n_bootstrap: Bootstrap resamples of each AUC band (0 skips them).
        seed: Seed of every random choice (split, pools, model initialisations, batch orders).

    Example:
        >>> MIAUSpec(n_shadow_originals=2, n_unlearned_per_original=5, records_per_original=50).negatives
        'out_out'
        >>> MIAUSpec(negatives="in_out")
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: negatives must be one of ['in_in', 'out_out'], got 'in_out'
    """

    n_shadow_originals: int = 10
    n_unlearned_per_original: int = 20
    records_per_original: int = 2000
    model: str | Callable[..., nn.Module] = "mlp"
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    training: SGDConfig = field(default_factory=_default_training)
    attack_models: tuple[str, ...] = ("decision_tree", "logistic_regression", "random_forest", "mlp")
    random_forest_trees: int = 500
    features: tuple[str, ...] = CHEN_FEATURES
    negatives: str = "out_out"
    defences: tuple[str, ...] = ("none",)
    positive_fraction: float = 0.8
    alpha: float = 0.05
    delta: float = 1e-5
    fprs: tuple[float, ...] = (0.01, 0.001)
    n_bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n_shadow_originals", self.n_shadow_originals, minimum=1)
        n_unlearned = check_int("n_unlearned_per_original", self.n_unlearned_per_original, minimum=1)
        records = check_int("records_per_original", self.records_per_original, minimum=2)
        check_choice("negatives", self.negatives, NEGATIVES)
        if n_unlearned >= records:
            raise ConfigError(
                f"n_unlearned_per_original must be < records_per_original={records} (each unlearned "
                f"model forgets a distinct record and keeps at least one), got {n_unlearned}"
            )
        if self.negatives == "in_in" and 2 * n_unlearned > records:
            raise ConfigError(
                f"with negatives='in_in', records_per_original must be >= 2 · n_unlearned_per_original "
                f"= {2 * n_unlearned} (distinct deleted and retained queries), got {records}"
            )
        if isinstance(self.model, str):
            if ":" not in self.model and self.model not in MODELS:
                raise ConfigError(
                    f"unknown model {self.model!r}: use one of {sorted(MODELS)} or 'module:factory'"
                )
        elif not callable(self.model):
            raise ConfigError(f"model must be a name or a factory callable, got {self.model!r}")
        if not isinstance(self.model_kwargs, Mapping):
            raise ConfigError(f"model_kwargs must be a mapping, got {type(self.model_kwargs).__name__}")
        reserved = sorted(set(self.model_kwargs) & set(_RESERVED_MODEL_KWARGS))
        if reserved:
            raise ConfigError(f"model_kwargs must not set {reserved}: the protocol sets them")
        object.__setattr__(self, "model_kwargs", MappingProxyType(dict(self.model_kwargs)))
        if not isinstance(self.training, SGDConfig):
            raise ConfigError(f"training must be an SGDConfig, got {type(self.training).__name__}")
        if self.training.loss != "cross_entropy":
            raise ConfigError(
                f"training.loss must be 'cross_entropy' (MIA-U attacks classifiers' posteriors), "
                f"got {self.training.loss!r}"
            )
        object.__setattr__(
            self, "attack_models", _names("attack_models", self.attack_models, ATTACK_CLASSIFIERS)
        )
        check_int("random_forest_trees", self.random_forest_trees, minimum=1)
        object.__setattr__(self, "features", _names("features", self.features, FEATURES))
        if isinstance(self.defences, str) or not isinstance(self.defences, Sequence) or not self.defences:
            raise ConfigError(f"defences must be a non-empty sequence of strings, got {self.defences!r}")
        defences = tuple(self.defences)
        for defence in defences:
            parse_defence(defence)
        if len(set(defences)) != len(defences):
            raise ConfigError(f"defences repeats an entry: {list(defences)}")
        object.__setattr__(self, "defences", defences)
        check_open_unit("positive_fraction", self.positive_fraction)
        check_open_unit("alpha", self.alpha)
        delta = check_real("delta", self.delta)
        if not 0.0 <= delta < 1.0:
            raise ConfigError(f"delta must be in [0, 1), got {self.delta!r}")
        if isinstance(self.fprs, str) or not isinstance(self.fprs, Sequence) or not self.fprs:
            raise ConfigError(f"fprs must be a non-empty sequence of fractions, got {self.fprs!r}")
        fprs = tuple(check_real("fprs", x) for x in self.fprs)
        if any(not 0.0 <= x <= 1.0 for x in fprs):
            raise ConfigError(f"fprs must be fractions in [0, 1] (0.01 is 1%), got {list(fprs)}")
        object.__setattr__(self, "fprs", fprs)
        check_int("n_bootstrap", self.n_bootstrap, minimum=0)
        check_int("seed", self.seed, minimum=0)

    @property
    def n_queries(self) -> int:
        """Positives (= negatives) per universe: ``n_shadow_originals · n_unlearned_per_original``."""
        return self.n_shadow_originals * self.n_unlearned_per_original

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (a callable model is written as its qualified name).

        Example:
            >>> MIAUSpec().as_dict()["training"]["epochs"]
            50
        """
        model = self.model
        if not isinstance(model, str):
            model = f"{getattr(model, '__module__', '?')}:{getattr(model, '__qualname__', repr(model))}"
        return {
            "n_shadow_originals": self.n_shadow_originals,
            "n_unlearned_per_original": self.n_unlearned_per_original,
            "records_per_original": self.records_per_original,
            "model": model,
            "model_kwargs": _spec_plain(dict(self.model_kwargs)),
            "training": self.training.to_dict(),
            "attack_models": list(self.attack_models),
            "random_forest_trees": self.random_forest_trees,
            "features": list(self.features),
            "negatives": self.negatives,
            "defences": list(self.defences),
            "positive_fraction": self.positive_fraction,
            "alpha": self.alpha,
            "delta": self.delta,
            "fprs": list(self.fprs),
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
        }


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MIAUQueries:
    """The (original, unlearned) query pairs of one universe and the models' raw outputs.

    Row ``r`` is one query: record ``record_ids[r]`` (a row of the protocol's ``X``) sent to
    original model ``original_index[r]`` and to its ``unlearned_index[r]``-th unlearned model.

    Attributes:
        universe: ``"shadow"`` or ``"target"``.
        universe_ids: Every record id of the universe (sorted).
        training_ids: Per original model, the record ids it was trained on.
        record_ids: ``[m]`` queried record ids.
        is_member: ``[m]`` True for positives ⟨in, out⟩ (the deleted record), False for negatives.
        original_index: ``[m]`` index of the original model.
        unlearned_index: ``[m]`` index of the unlearned model within its original.
        original_logits: ``[m, C]`` logits of the original model.
        unlearned_logits: ``[m, C]`` logits of the unlearned model.
    """

    universe: str
    universe_ids: np.ndarray
    training_ids: tuple[np.ndarray, ...]
    record_ids: np.ndarray
    is_member: np.ndarray
    original_index: np.ndarray
    unlearned_index: np.ndarray
    original_logits: np.ndarray
    unlearned_logits: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.record_ids).shape[0]
        for name in ("is_member", "original_index", "unlearned_index"):
            if np.asarray(getattr(self, name)).shape != (m,):
                raise InputError(f"MIAUQueries.{name} must have shape ({m},)")
        for name in ("original_logits", "unlearned_logits"):
            array = np.asarray(getattr(self, name))
            if array.ndim != 2 or array.shape[0] != m:
                raise InputError(f"MIAUQueries.{name} must have shape ({m}, C), got {array.shape}")
        for name in (
            "universe_ids", "record_ids", "is_member", "original_index", "unlearned_index",
            "original_logits", "unlearned_logits",
        ):
            object.__setattr__(self, name, readonly_copy(np.asarray(getattr(self, name))))
        object.__setattr__(self, "training_ids", tuple(readonly_copy(t) for t in self.training_ids))

    @property
    def n_positives(self) -> int:
        """Number of positive queries (deleted records)."""
        return int(np.sum(self.is_member))

    @property
    def n_negatives(self) -> int:
        """Number of negative queries."""
        return int(self.is_member.size - np.sum(self.is_member))

    def as_dict(self, *, include_logits: bool = False) -> dict[str, Any]:
        """JSON-friendly copy (ids always; raw logits only when asked).

        Example:
            >>> q = MIAUQueries("shadow", np.arange(4), (np.arange(2),), np.array([0, 3]),
            ...     np.array([True, False]), np.zeros(2, int), np.zeros(2, int), np.zeros((2, 2)),
            ...     np.zeros((2, 2)))
            >>> q.as_dict()["n_positives"], q.as_dict()["record_ids"]
            (1, [0, 3])
        """
        out: dict[str, Any] = {
            "universe": self.universe,
            "n_records": int(self.universe_ids.size),
            "n_originals": len(self.training_ids),
            "n_positives": self.n_positives,
            "n_negatives": self.n_negatives,
            "record_ids": self.record_ids.tolist(),
            "is_member": self.is_member.tolist(),
            "original_index": self.original_index.tolist(),
            "unlearned_index": self.unlearned_index.tolist(),
        }
        if include_logits:
            out["original_logits"] = self.original_logits.tolist()
            out["unlearned_logits"] = self.unlearned_logits.tolist()
        return out


@dataclass(frozen=True, slots=True)
class FittedAttack:
    """An MIA-U attack fitted on shadow features: defence → feature → standardised classifier.

    Attributes:
        feature: Key of :data:`~certunlearn.audit.features.FEATURES`.
        classifier: Key of :data:`ATTACK_CLASSIFIERS`.
        defence: Defence string applied to both models' outputs before the feature.
        negatives: What the attack was trained to tell the deleted records from (:data:`NEGATIVES`).
        estimator: The fitted scikit-learn pipeline (StandardScaler, classifier).
        n_train: Number of shadow queries it was fitted on.
    """

    feature: str
    classifier: str
    defence: str
    negatives: str
    estimator: Any
    n_train: int

    def membership_scores(
        self,
        *,
        original_logits: object = None,
        unlearned_logits: object = None,
        original_probabilities: object = None,
        unlearned_probabilities: object = None,
    ) -> np.ndarray:
        """P(deleted | features) for paired outputs — higher = more likely a deleted record.

        Give logits or probabilities for each model (logits are needed for temperature defences to
        act on the logits themselves).

        Args:
            original_logits: ``[n, C]`` logits of the original model.
            unlearned_logits: ``[n, C]`` logits of the unlearned model on the same inputs.
            original_probabilities: ``[n, C]`` posteriors instead of logits.
            unlearned_probabilities: ``[n, C]`` posteriors instead of logits.

        Returns:
            ``[n]`` float64 scores in [0, 1].

        Example:
            >>> from sklearn.linear_model import LogisticRegression
            >>> fitted = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
            >>> attack = FittedAttack("l2_distance", "logistic_regression", "none", "out_out", fitted, 2)
            >>> s = attack.membership_scores(original_probabilities=[[1.0, 0.0], [0.5, 0.5]],
            ...     unlearned_probabilities=[[0.0, 1.0], [0.5, 0.5]])
            >>> bool(s[0] > s[1])
            True
        """
        p_o = apply_defence(self.defence, logits=original_logits, probabilities=original_probabilities)
        p_u = apply_defence(
            self.defence, logits=unlearned_logits, probabilities=unlearned_probabilities
        )
        features = compute_features(self.feature, p_original=p_o, p_unlearned=p_u)
        return _member_probabilities(self.estimator, features)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly description (the fitted estimator is left out).

        Example:
            >>> FittedAttack("basic", "mlp", "none", "in_in", None, 10).as_dict()["negatives"]
            'in_in'
        """
        return {
            "feature": self.feature,
            "classifier": self.classifier,
            "defence": self.defence,
            "negatives": self.negatives,
            "n_train": self.n_train,
        }


@dataclass(frozen=True, slots=True)
class MIAUAttackResult:
    """Target-set metrics of one (defence, feature, classifier) MIA-U attack.

    Attributes:
        defence: The output defence.
        feature: The feature.
        classifier: The attack classifier.
        metrics: :class:`~certunlearn.audit.metrics.AttackMetrics` on the target universe
            (members = deleted records).
        epsilon: ε lower bound from the target scores (valid for this attack chosen in advance).
        deg_count: DegCount against ``basic`` (same defence and classifier); None for ``basic``.
        deg_rate: DegRate against ``basic``; None for ``basic``.
        scores_in: ``[n_in]`` target scores of the positives.
        scores_out: ``[n_out]`` target scores of the negatives.
    """

    defence: str
    feature: str
    classifier: str
    metrics: AttackMetrics
    epsilon: EpsilonBound
    deg_count: float | None
    deg_rate: float | None
    scores_in: np.ndarray
    scores_out: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores_in", readonly_copy(np.asarray(self.scores_in, np.float64)))
        object.__setattr__(self, "scores_out", readonly_copy(np.asarray(self.scores_out, np.float64)))

    @property
    def auc(self) -> float:
        """Target-set AUC."""
        return self.metrics.auc

    @property
    def tpr_at(self) -> Mapping[float, float]:
        """Target-set TPR@FPR (convention ``fpr <= x``)."""
        return self.metrics.tpr_at

    def as_dict(self, *, include_scores: bool = False, include_roc: bool = False) -> dict[str, Any]:
        """JSON-friendly copy.

        Args:
            include_scores: Also write the raw target scores.
            include_roc: Also write the full ROC.

        Example:
            >>> from certunlearn.audit import attack_metrics, epsilon_lower_bound
            >>> r = MIAUAttackResult("none", "basic", "mlp", attack_metrics([1.0], [0.0], n_bootstrap=0),
            ...     epsilon_lower_bound([1.0], [0.0]), None, None, np.array([1.0]), np.array([0.0]))
            >>> r.as_dict()["auc"], r.as_dict(include_scores=True)["scores_in"]
            (1.0, [1.0])
        """
        out: dict[str, Any] = {
            "defence": self.defence,
            "feature": self.feature,
            "classifier": self.classifier,
            "auc": self.auc,
            "metrics": self.metrics.as_dict(include_roc=include_roc),
            "epsilon": self.epsilon.as_dict(),
            "deg_count": self.deg_count,
            "deg_rate": self.deg_rate,
        }
        if include_scores:
            out["scores_in"] = self.scores_in.tolist()
            out["scores_out"] = self.scores_out.tolist()
        return out


@dataclass(frozen=True, slots=True)
class MIAUResult:
    """Outcome of :func:`run_mia_u`.

    Attributes:
        spec: The :class:`MIAUSpec` that ran.
        unlearning: Name of the unlearning operation audited.
        negatives: ``"out_out"`` or ``"in_in"``.
        negatives_definition: What a negative is, in words.
        shadow: Queries of the shadow universe (the attacks' training data).
        target: Queries of the target universe (the evaluation data).
        attacks: One :class:`MIAUAttackResult` per (defence, feature, classifier), target metrics.
        fitted: ``{(defence, feature, classifier): FittedAttack}`` including ``basic``.
        best_index: Index in ``attacks`` of the highest target AUC (first on ties).
        epsilon: ε lower bound of the best attack, Bonferroni-corrected for choosing it among
            ``len(attacks)`` (its level is ``alpha / len(attacks)``).
        notes: Warnings collected while fitting (e.g. non-converged classifiers).
        elapsed_s: Wall time of the run.
        evaluation: How the metrics were obtained (shadow-fitted, target-evaluated).
    """

    spec: MIAUSpec
    unlearning: str
    negatives: str
    negatives_definition: str
    shadow: MIAUQueries
    target: MIAUQueries
    attacks: tuple[MIAUAttackResult, ...]
    fitted: Mapping[tuple[str, str, str], FittedAttack]
    best_index: int
    epsilon: EpsilonBound
    notes: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    evaluation: str = EVALUATION

    def __post_init__(self) -> None:
        if not self.attacks:
            raise InputError("MIAUResult needs at least one attack result")
        if not 0 <= self.best_index < len(self.attacks):
            raise InputError(f"best_index must be in [0, {len(self.attacks)}), got {self.best_index}")
        object.__setattr__(self, "fitted", MappingProxyType(dict(self.fitted)))

    @property
    def best(self) -> MIAUAttackResult:
        """The (defence, feature, classifier) with the highest target AUC."""
        return self.attacks[self.best_index]

    @property
    def best_attack(self) -> FittedAttack:
        """The fitted attack behind :attr:`best` (for :func:`audit_unlearning`)."""
        best = self.best
        return self.fitted[(best.defence, best.feature, best.classifier)]

    @property
    def auc(self) -> float:
        """Target-set AUC of the best attack."""
        return self.best.auc

    @property
    def tpr_at(self) -> Mapping[float, float]:
        """Target-set TPR@FPR of the best attack."""
        return self.best.tpr_at

    def attack(self, feature: str, classifier: str, defence: str = "none") -> MIAUAttackResult:
        """The result of one combination.

        Raises:
            ConfigError: The combination was not evaluated (the message lists those that were).

        Example:
            >>> import torch
            >>> from certunlearn.train import SGDConfig
            >>> X = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
            >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=3, records_per_original=12,
            ...     model="logreg", training=SGDConfig(epochs=2, batch_size=12, lr=0.5),
            ...     attack_models=("decision_tree",), features=("direct_diff",), n_bootstrap=0)
            >>> run_mia_u(X, (X[:, 1] > 0).long(), spec=spec).attack("direct_diff", "decision_tree").feature
            'direct_diff'
        """
        for result in self.attacks:
            if (result.feature, result.classifier, result.defence) == (feature, classifier, defence):
                return result
        evaluated = sorted((r.feature, r.classifier, r.defence) for r in self.attacks)
        raise ConfigError(
            f"no attack ({feature!r}, {classifier!r}, {defence!r}); evaluated: {evaluated}"
        )

    def as_dict(
        self, *, include_scores: bool = False, include_roc: bool = False, include_queries: bool = False
    ) -> dict[str, Any]:
        """JSON-friendly copy (no fitted estimators).

        Args:
            include_scores: Raw target scores of every attack.
            include_roc: Full ROC of every attack.
            include_queries: Query ids and raw logits of both universes.

        Example:
            >>> import torch
            >>> from certunlearn.train import SGDConfig
            >>> X = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
            >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=3, records_per_original=12,
            ...     model="logreg", training=SGDConfig(epochs=2, batch_size=12, lr=0.5),
            ...     attack_models=("logistic_regression",), features=("l2_distance",), n_bootstrap=0)
            >>> out = run_mia_u(X, (X[:, 1] > 0).long(), spec=spec).as_dict()
            >>> out["negatives"], out["target"]["n_positives"], out["best"]["feature"]
            ('out_out', 3, 'l2_distance')
        """
        out: dict[str, Any] = {
            "attack": "mia-u",
            "reference": "Chen et al., CCS 2021, 'When Machine Unlearning Jeopardizes Privacy'",
            "spec": self.spec.as_dict(),
            "unlearning": self.unlearning,
            "negatives": self.negatives,
            "negatives_definition": self.negatives_definition,
            "evaluation": self.evaluation,
            "shadow": self.shadow.as_dict(include_logits=include_queries),
            "target": self.target.as_dict(include_logits=include_queries),
            "attacks": [
                r.as_dict(include_scores=include_scores, include_roc=include_roc) for r in self.attacks
            ],
            "best": {
                "defence": self.best.defence,
                "feature": self.best.feature,
                "classifier": self.best.classifier,
                "auc": self.auc,
                "tpr_at": {repr(x): v for x, v in self.tpr_at.items()},
                "selection": "highest target AUC over all evaluated attacks",
            },
            "epsilon": self.epsilon.as_dict(),
            "epsilon_correction": f"Bonferroni over {len(self.attacks)} attacks",
            "notes": list(self.notes),
            "elapsed_s": self.elapsed_s,
        }
        if not include_queries:
            for universe in ("shadow", "target"):
                for key in ("record_ids", "is_member", "original_index", "unlearned_index"):
                    out[universe].pop(key)
        return out


# ---------------------------------------------------------------------------------------------
# Helpers: data, models, outputs
# ---------------------------------------------------------------------------------------------


def _as_tensor_data(X: object, y: object) -> tuple[Tensor, Tensor]:
    X_t = X if isinstance(X, Tensor) else torch.as_tensor(np.asarray(X))
    y_t = y if isinstance(y, Tensor) else torch.as_tensor(np.asarray(y))
    if X_t.ndim < 2:
        raise InputError(f"X must have shape [n, features...], got {tuple(X_t.shape)}")
    if not (X_t.dtype.is_floating_point or X_t.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise InputError(f"X must be numeric, got {X_t.dtype}")
    if y_t.ndim != 1 or y_t.shape[0] != X_t.shape[0]:
        raise InputError(
            f"y must be 1-D with one label per row of X ({X_t.shape[0]}), got {tuple(y_t.shape)}"
        )
    if y_t.dtype.is_floating_point or y_t.dtype == torch.bool or y_t.dtype.is_complex:
        raise InputError(f"y must hold integer class labels, got {y_t.dtype}")
    if y_t.numel() and int(y_t.min()) < 0:
        raise InputError("y labels must be >= 0")
    if X_t.dtype.is_floating_point and not bool(torch.isfinite(X_t).all()):
        raise InputError("X contains NaN or infinite values")
    if not X_t.dtype.is_floating_point:
        X_t = X_t.to(torch.float64)
    return X_t, y_t.to(torch.int64)


def _build(spec: MIAUSpec, in_features: int, num_classes: int, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    kwargs = dict(spec.model_kwargs)
    if isinstance(spec.model, str):
        return build_model(
            spec.model, in_features=in_features, num_classes=num_classes, generator=generator, **kwargs
        )
    model = spec.model(in_features=in_features, num_classes=num_classes, generator=generator, **kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"the model factory returned {type(model).__name__}, not an nn.Module")
    return model


def _to_numpy(name: str, output: object, n: int, num_classes: int | None) -> np.ndarray:
    if isinstance(output, Tensor):
        output = output.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(output, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n or (num_classes is not None and array.shape[1] != num_classes):
        expected = f"[{n}, {num_classes if num_classes is not None else 'C'}]"
        raise InputError(f"{name} must return logits of shape {expected}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} returned NaN or infinite logits")
    return array


def _module_logits(module: nn.Module, X: Tensor) -> Tensor:
    fm = FunctionalModel(module)
    with torch.no_grad():
        return fm.outputs(fm.theta0, X.to(device=fm.device, dtype=fm.dtype))


def _unlearned_logits_fn(output: object, template: nn.Module, name: str) -> Callable[[Tensor], Any]:
    """Turn what an unlearning callable returned into ``X -> logits``."""
    if isinstance(output, UnlearnResult):
        output = output.params_released
    if isinstance(output, nn.Module):
        module = output
        return lambda X: _module_logits(module, X)
    if isinstance(output, Mapping):
        module = copy.deepcopy(template)
        try:
            module.load_state_dict(dict(output))
        except RuntimeError as exc:
            raise InputError(f"{name} returned a state dict that does not fit the model: {exc}") from exc
        return lambda X: _module_logits(module, X)
    if callable(output):
        return output  # type: ignore[return-value]
    raise InputError(
        f"{name} must return an nn.Module, a state dict, an UnlearnResult or a logits function, "
        f"got {type(output).__name__}"
    )


def _unlearning_name(unlearning: object) -> str:
    if isinstance(unlearning, str):
        return check_choice("unlearning", unlearning, UNLEARNING_METHODS)
    if not callable(unlearning):
        raise ConfigError(
            f"unlearning must be one of {list(UNLEARNING_METHODS)} or a callable, got {unlearning!r}"
        )
    return str(getattr(unlearning, "__name__", type(unlearning).__name__))


# ---------------------------------------------------------------------------------------------
# Protocol
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Progress:
    callback: ProgressFn | None
    total: int
    done: int = 0

    def step(self, label: str) -> None:
        self.done += 1
        report(self.callback, self.done, self.total, label)


def _run_universe(
    name: str,
    universe_ids: np.ndarray,
    X: Tensor,
    y: Tensor,
    num_classes: int,
    spec: MIAUSpec,
    unlearning: str | UnlearnFn,
    rng: np.random.Generator,
    progress: _Progress,
) -> MIAUQueries:
    n_positive_pool = int(round(spec.positive_fraction * universe_ids.size))
    shuffled = rng.permutation(universe_ids)
    positive_pool, negative_pool = shuffled[:n_positive_pool], shuffled[n_positive_pool:]
    m, k = spec.records_per_original, spec.n_unlearned_per_original
    if positive_pool.size < m:
        raise InputError(
            f"the {name} universe's positive pool has {positive_pool.size} records "
            f"(positive_fraction={spec.positive_fraction} of {universe_ids.size}) but "
            f"records_per_original={m}: pass more records or a smaller spec"
        )
    if spec.negatives == "out_out" and negative_pool.size < k:
        raise InputError(
            f"the {name} universe's negative pool has {negative_pool.size} records but each "
            f"original needs n_unlearned_per_original={k} distinct never-trained negatives"
        )
    in_features = int(np.prod(X.shape[1:]))
    label = f"mia-u {name} models"
    training_ids, record_ids, is_member = [], [], []
    original_index, unlearned_index, original_logits, unlearned_logits = [], [], [], []
    unlearn_name = _unlearning_name(unlearning)
    for o in range(spec.n_shadow_originals):
        train_ids = np.sort(rng.choice(positive_pool, size=m, replace=False))
        init_seed, schedule_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
        initial = _build(spec, in_features, num_classes, init_seed).to(X.device)
        config = replace(spec.training, seed=schedule_seed)
        X_o, y_o = X[torch.as_tensor(train_ids)], y[torch.as_tensor(train_ids)]
        trained = train_sgd(initial, X_o, y_o, config)
        progress.step(label)
        fm = FunctionalModel(initial, loss=config.loss)
        deleted_local = rng.choice(m, size=k, replace=False)
        if spec.negatives == "out_out":
            negative_ids = rng.choice(negative_pool, size=k, replace=False)
        else:
            retained_local = np.setdiff1d(np.arange(m), deleted_local)
            negative_ids = train_ids[rng.choice(retained_local, size=k, replace=False)]
        query_ids = np.concatenate([train_ids[deleted_local], negative_ids])
        X_query = X[torch.as_tensor(query_ids)].to(device=fm.device, dtype=fm.dtype)
        for j, local in enumerate(deleted_local.tolist()):
            pair = X_query[[j, k + j]]
            # both models see the same [2, ...] batch, so identical models give bit-identical logits
            with torch.no_grad():
                logits_o = _to_numpy("the original model", fm.outputs(trained.theta, pair), 2,
                                     num_classes)
            if unlearning == "retrain":
                keep = torch.ones(m, dtype=torch.bool, device=X_o.device)
                keep[local] = False
                theta_u = train_sgd(initial, X_o[keep], y_o[keep], config).theta
                with torch.no_grad():
                    raw = fm.outputs(theta_u, pair)
            elif unlearning == "coupled_retrain":
                params = coupled_retrain(initial, X_o, y_o, trained.schedule, config, exclude=[local])
                with torch.no_grad():
                    raw = fm.outputs(fm.layout.flatten(params), pair)
            else:
                original = copy.deepcopy(initial)
                original.load_state_dict(trained.params)
                output = unlearning(original, X_o, y_o, [local])  # type: ignore[operator]
                logits_fn = _unlearned_logits_fn(output, initial, f"unlearning {unlearn_name!r}")
                with torch.no_grad():
                    raw = logits_fn(pair)
            logits_u = _to_numpy(f"unlearning {unlearn_name!r}", raw, 2, num_classes)
            progress.step(label)
            for row, member in ((0, True), (1, False)):
                record_ids.append(int(query_ids[j if member else k + j]))
                is_member.append(member)
                original_index.append(o)
                unlearned_index.append(j)
                original_logits.append(logits_o[row])
                unlearned_logits.append(logits_u[row])
        training_ids.append(train_ids)
    return MIAUQueries(
        universe=name,
        universe_ids=np.sort(universe_ids),
        training_ids=tuple(training_ids),
        record_ids=np.asarray(record_ids, dtype=np.int64),
        is_member=np.asarray(is_member, dtype=bool),
        original_index=np.asarray(original_index, dtype=np.int64),
        unlearned_index=np.asarray(unlearned_index, dtype=np.int64),
        original_logits=np.stack(original_logits),
        unlearned_logits=np.stack(unlearned_logits),
    )


def _member_probabilities(estimator: Any, features: np.ndarray) -> np.ndarray:
    proba = np.asarray(estimator.predict_proba(features), dtype=np.float64)
    classes = list(getattr(estimator, "classes_", [0, 1]))
    return proba[:, classes.index(1)] if 1 in classes else np.zeros(features.shape[0])


def _fit(estimator: Any, features: np.ndarray, labels: np.ndarray, what: str, notes: list[str]) -> Any:
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


def run_mia_u(
    X: object,
    y: object,
    *,
    spec: MIAUSpec,
    unlearning: str | UnlearnFn = "retrain",
    progress: ProgressFn | None = None,
) -> MIAUResult:
    """Run Chen et al.'s MIA-U shadow protocol: attack the unlearning of single records.

    Trains ``2 · n_shadow_originals · (1 + n_unlearned_per_original)`` models (shadow and target
    universes), fits every attack on the shadow universe's features and reports target-universe
    metrics — the attack never sees the records, models or features it is evaluated on.

    Args:
        X: ``[N, ...]`` records (tensor or array); record ids are the row indices.
        y: ``[N]`` integer class labels (the number of classes is ``max(y) + 1``, at least 2).
        spec: Budget and settings (:class:`MIAUSpec`).
        unlearning: ``"retrain"`` (:func:`train_sgd` on the remaining records from the same
            initialisation and configuration), ``"coupled_retrain"`` (the original schedule replayed
            without the record), or a callable ``(original_model, X, y, forget_ids) -> unlearned``
            (:data:`UnlearnFn`; ids are rows of the given ``X``).
        progress: Called as ``progress(done, total, label)`` after each trained or unlearned model.

    Returns:
        :class:`MIAUResult` (``.auc``, ``.tpr_at`` of the best attack on the target set).

    Raises:
        ConfigError: A bad ``unlearning`` or spec.
        InputError: Malformed data, or too few records for the spec.

    Example:
        >>> import torch
        >>> from certunlearn.train import SGDConfig
        >>> X = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=2, records_per_original=10,
        ...     model="logreg", training=SGDConfig(epochs=2, batch_size=10, lr=0.5),
        ...     attack_models=("logistic_regression",), features=("basic",), n_bootstrap=0)
        >>> seen = []
        >>> result = run_mia_u(X, (X[:, 0] > 0).long(), spec=spec,
        ...     progress=lambda done, total, label: seen.append(done))
        >>> seen == list(range(1, 7)), 0.0 <= result.auc <= 1.0
        (True, True)
    """
    if not isinstance(spec, MIAUSpec):
        raise ConfigError(f"spec must be an MIAUSpec, got {type(spec).__name__}")
    unlearn_name = _unlearning_name(unlearning)
    X_t, y_t = _as_tensor_data(X, y)
    n = int(X_t.shape[0])
    if n < 4:
        raise InputError(f"need at least 4 records for two universes with two pools each, got {n}")
    num_classes = max(int(y_t.max()) + 1, 2)
    started = time.perf_counter()
    rng = np.random.default_rng(spec.seed)
    permutation = rng.permutation(n)
    halves = {"shadow": permutation[: n // 2], "target": permutation[n // 2 :]}
    per_universe = spec.n_shadow_originals * (1 + spec.n_unlearned_per_original)
    tracker = _Progress(progress, 2 * per_universe)
    universes = {
        name: _run_universe(name, ids, X_t, y_t, num_classes, spec, unlearning, rng, tracker)
        for name, ids in halves.items()
    }
    shadow, target = universes["shadow"], universes["target"]

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    notes: list[str] = []
    fitted: dict[tuple[str, str, str], FittedAttack] = {}
    target_scores: dict[tuple[str, str, str], np.ndarray] = {}
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

    members = target.is_member
    metric_rng = np.random.default_rng([spec.seed, 1])
    results: list[MIAUAttackResult] = []
    for defence in spec.defences:
        for feature in spec.features:
            for classifier in spec.attack_models:
                scores = target_scores[(defence, feature, classifier)]
                count = rate = None
                if feature != "basic":
                    c_f = true_label_confidences(member_probabilities=scores, is_member=members)
                    c_b = true_label_confidences(
                        member_probabilities=target_scores[(defence, "basic", classifier)],
                        is_member=members,
                    )
                    count = deg_count(feature_confidences=c_f, basic_confidences=c_b)
                    rate = deg_rate(feature_confidences=c_f, basic_confidences=c_b)
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
    aucs = np.array([r.auc for r in results])
    best_index = int(np.argmax(aucs))
    best = results[best_index]
    epsilon = epsilon_lower_bound(
        best.scores_in, best.scores_out, delta=spec.delta, alpha=spec.alpha / len(results)
    )
    return MIAUResult(
        spec=spec,
        unlearning=unlearn_name,
        negatives=spec.negatives,
        negatives_definition=NEGATIVES[spec.negatives],
        shadow=shadow,
        target=target,
        attacks=tuple(results),
        fitted=fitted,
        best_index=best_index,
        epsilon=epsilon,
        notes=tuple(dict.fromkeys(notes)),
        elapsed_s=time.perf_counter() - started,
    )


def posthoc_unlearning(
    method: str,
    *,
    epsilon: float | None = None,
    delta: float | None = None,
    generator: torch.Generator | None = None,
    **options: Any,
) -> UnlearnFn:
    """Wrap a registered post-hoc unlearner (Newton family, CureNewton, fine-tune …) for :func:`run_mia_u`.

    The returned callable builds ``UNLEARNERS[method](model, X, y, **options)`` on each original
    and returns ``forget(forget_ids, epsilon=, delta=, generator=)``'s released parameters. HF-OCU
    records its statistics during training and is not a post-hoc method.

    Args:
        method: Name of a :class:`~certunlearn.unlearn.posthoc.PostHocUnlearner` subclass in
            :data:`~certunlearn.unlearn.UNLEARNERS`.
        epsilon: ε of a noisy release (with ``delta``), or None for a noiseless one.
        delta: δ of a noisy release.
        generator: Source of the release noise (and of stochastic methods' minibatches).
        **options: Constructor options of the method (e.g. ``weight_decay`` — pass the value the
            models were trained with).

    Returns:
        An :data:`UnlearnFn` named after the method.

    Raises:
        ConfigError: Unknown method, or one that is not post-hoc.

    Example:
        >>> fn = posthoc_unlearning("newton", weight_decay=0.1)
        >>> fn.__name__
        'newton'
        >>> posthoc_unlearning("hfocu")
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: 'hfocu' is not a post-hoc unlearner (it cannot start from a trained model); use one of ['abs-newton', 'coupled-retrain', 'curenewton', 'damped-newton', 'finetune', 'gradient-ascent', 'influence', 'newton', 'pinv-newton', 'retrain']
    """
    import certunlearn.unlearn  # noqa: F401  (registers every method)
    from certunlearn.unlearn.base import UNLEARNERS
    from certunlearn.unlearn.posthoc import PostHocUnlearner

    cls = get_unlearner(method)
    allowed = sorted(n for n, c in UNLEARNERS.items() if issubclass(c, PostHocUnlearner))
    if not issubclass(cls, PostHocUnlearner):
        raise ConfigError(
            f"{method!r} is not a post-hoc unlearner (it cannot start from a trained model); "
            f"use one of {allowed}"
        )

    def unlearn(model: nn.Module, X: Tensor, y: Tensor, forget_ids: list[int]) -> UnlearnResult:
        unlearner = cls(model, X, y, **options)  # type: ignore[call-arg]
        return unlearner.forget(forget_ids, epsilon=epsilon, delta=delta, generator=generator)

    unlearn.__name__ = method
    unlearn.__qualname__ = method
    return unlearn


# ---------------------------------------------------------------------------------------------
# Auditing one (original, unlearned) pair with a fitted attack
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnlearningAudit:
    """A fitted MIA-U attack applied to one (original, unlearned) pair.

    Attributes:
        attack: Description of the fitted attack (:meth:`FittedAttack.as_dict`).
        metrics: :class:`~certunlearn.audit.metrics.AttackMetrics`, members = the forget set.
        epsilon: ε lower bound from the same scores.
        scores_forget: ``[n_forget]`` attack scores of the forget records.
        scores_negative: ``[n_negative]`` attack scores of the negatives.
        accuracy: Accuracy of each model on each set: keys ``original_forget``,
            ``unlearned_forget``, ``original_negative``, ``unlearned_negative``.
    """

    attack: Mapping[str, Any]
    metrics: AttackMetrics
    epsilon: EpsilonBound
    scores_forget: np.ndarray
    scores_negative: np.ndarray
    accuracy: Mapping[str, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "attack", MappingProxyType(dict(self.attack)))
        object.__setattr__(self, "accuracy", MappingProxyType(dict(self.accuracy)))
        object.__setattr__(self, "scores_forget", readonly_copy(np.asarray(self.scores_forget, np.float64)))
        object.__setattr__(
            self, "scores_negative", readonly_copy(np.asarray(self.scores_negative, np.float64))
        )

    @property
    def auc(self) -> float:
        """AUC of forget records vs negatives."""
        return self.metrics.auc

    @property
    def tpr_at(self) -> Mapping[float, float]:
        """TPR@FPR (convention ``fpr <= x``)."""
        return self.metrics.tpr_at

    def as_dict(self, *, include_scores: bool = False) -> dict[str, Any]:
        """JSON-friendly copy.

        Example:
            >>> from certunlearn.audit import attack_metrics, epsilon_lower_bound
            >>> a = UnlearningAudit({"feature": "basic"}, attack_metrics([1.0], [0.0], n_bootstrap=0),
            ...     epsilon_lower_bound([1.0], [0.0]), np.array([1.0]), np.array([0.0]), {})
            >>> a.as_dict()["auc"]
            1.0
        """
        out: dict[str, Any] = {
            "attack": dict(self.attack),
            "auc": self.auc,
            "metrics": self.metrics.as_dict(include_roc=False),
            "epsilon": self.epsilon.as_dict(),
            "accuracy": dict(self.accuracy),
        }
        if include_scores:
            out["scores_forget"] = self.scores_forget.tolist()
            out["scores_negative"] = self.scores_negative.tolist()
        return out


def _call_logits(name: str, fn: object, X: object, n: int, num_classes: int | None) -> np.ndarray:
    if not callable(fn):
        raise ConfigError(f"{name} must be callable (X -> logits), got {type(fn).__name__}")
    with torch.no_grad():
        return _to_numpy(name, fn(X), n, num_classes)


def _labels(name: str, y: object, n: int) -> np.ndarray:
    labels = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{name} must be {n} integer labels, got shape {labels.shape}, dtype {labels.dtype}")
    return labels.astype(np.int64)


def audit_unlearning(
    original_logits_fn: Callable[[Any], Any],
    unlearned_logits_fn: Callable[[Any], Any],
    X_forget: object,
    y_forget: object,
    X_negative: object,
    y_negative: object,
    attack: FittedAttack | MIAUResult,
    *,
    alpha: float = 0.05,
    delta: float = 1e-5,
    fprs: Sequence[float] = (0.01, 0.001),
    n_bootstrap: int = 1000,
    rng: np.random.Generator | None = None,
) -> UnlearningAudit:
    """Apply a fitted MIA-U attack to one (original, unlearned) pair that a user brings.

    Members are the forgotten records; negatives must match what the attack was trained against
    (``attack.negatives``: records neither model saw for ``"out_out"``, retained records for
    ``"in_in"``). The attack applies its own output defence to both models' logits.

    Args:
        original_logits_fn: ``X -> logits [n, C]`` of the original model (an ``nn.Module`` works).
        unlearned_logits_fn: The same for the unlearned model.
        X_forget: Forgotten records, in whatever form the two functions take.
        y_forget: ``[n_forget]`` labels (used for the accuracies in the result).
        X_negative: Negative records.
        y_negative: ``[n_negative]`` labels.
        attack: A :class:`FittedAttack`, or an :class:`MIAUResult` (its best attack is used).
        alpha: Error level of the intervals and of ε_lb, in (0, 1).
        delta: δ of ε_lb.
        fprs: Targets x of TPR@FPR=x.
        n_bootstrap: Resamples of the AUC band.
        rng: Source of the bootstrap randomness.

    Returns:
        :class:`UnlearningAudit`.

    Raises:
        ConfigError: ``attack`` is neither a fitted attack nor a result; bad options.
        InputError: Shapes that do not match, non-finite logits.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> attack = FittedAttack("l2_distance", "logistic_regression", "none", "out_out",
        ...     LogisticRegression().fit([[0.0], [1.0]], [0, 1]), 2)
        >>> original = lambda X: np.stack([X, -X], axis=1)
        >>> unlearned = lambda X: np.stack([-np.abs(X), np.abs(X)], axis=1)
        >>> audit = audit_unlearning(original, unlearned, np.array([2.0, 3.0]), np.array([0, 0]),
        ...     np.array([-2.0, -3.0]), np.array([1, 1]), attack, n_bootstrap=0)
        >>> audit.auc, audit.accuracy["original_forget"], audit.accuracy["unlearned_forget"]
        (1.0, 1.0, 0.0)
    """
    if isinstance(attack, MIAUResult):
        attack = attack.best_attack
    if not isinstance(attack, FittedAttack):
        raise ConfigError(f"attack must be a FittedAttack or an MIAUResult, got {type(attack).__name__}")
    n_forget, n_negative = len(X_forget), len(X_negative)  # type: ignore[arg-type]
    if n_forget == 0 or n_negative == 0:
        raise InputError("X_forget and X_negative must not be empty")
    labels_forget = _labels("y_forget", y_forget, n_forget)
    labels_negative = _labels("y_negative", y_negative, n_negative)
    o_forget = _call_logits("original_logits_fn", original_logits_fn, X_forget, n_forget, None)
    num_classes = o_forget.shape[1]
    u_forget = _call_logits("unlearned_logits_fn", unlearned_logits_fn, X_forget, n_forget, num_classes)
    o_negative = _call_logits("original_logits_fn", original_logits_fn, X_negative, n_negative, num_classes)
    u_negative = _call_logits(
        "unlearned_logits_fn", unlearned_logits_fn, X_negative, n_negative, num_classes
    )
    scores_forget = attack.membership_scores(original_logits=o_forget, unlearned_logits=u_forget)
    scores_negative = attack.membership_scores(original_logits=o_negative, unlearned_logits=u_negative)
    accuracy = {
        "original_forget": float(np.mean(o_forget.argmax(axis=1) == labels_forget)),
        "unlearned_forget": float(np.mean(u_forget.argmax(axis=1) == labels_forget)),
        "original_negative": float(np.mean(o_negative.argmax(axis=1) == labels_negative)),
        "unlearned_negative": float(np.mean(u_negative.argmax(axis=1) == labels_negative)),
    }
    return UnlearningAudit(
        attack=attack.as_dict(),
        metrics=attack_metrics(
            scores_forget, scores_negative, alpha=alpha, fprs=fprs, n_bootstrap=n_bootstrap, rng=rng
        ),
        epsilon=epsilon_lower_bound(scores_forget, scores_negative, delta=delta, alpha=alpha),
        scores_forget=scores_forget,
        scores_negative=scores_negative,
        accuracy=accuracy,
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
