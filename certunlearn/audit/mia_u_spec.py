r"""Settings of the MIA-U shadow protocol: the spec, its attack-classifier registry and negatives.

What :func:`~certunlearn.audit.mia_u.run_mia_u` is told to do, validated before any model is
trained (Chen, Zhang, Wang, Backes, Humbert & Zhang, "When Machine Unlearning Jeopardizes
Privacy", ACM CCS 2021; defaults from their code, repository MinChen00/UnlearningLeaks):

* :class:`MIAUSpec` — the budget (originals per universe, unlearned models per original, records
  per original), the model and its SGD training, the attack classifiers, features, negatives and
  output defences, and the statistics' settings (α, δ, FPR targets, bootstrap, seed);
* :data:`ATTACK_CLASSIFIERS` / :func:`register_attack_classifier` — the scikit-learn attack
  models with Chen et al.'s settings (each behind a StandardScaler);
* :data:`NEGATIVES` — what a negative query is: ``"out_out"``, a record neither model saw (Chen et
  al.'s definition), or ``"in_in"``, a retained record (leakage about the retained set);
* :data:`EVALUATION` — how the protocol's metrics are obtained (shadow-fitted, target-evaluated).

Example:
    >>> spec = MIAUSpec(n_shadow_originals=2, n_unlearned_per_original=5, records_per_original=50)
    >>> spec.n_queries, spec.negatives, sorted(ATTACK_CLASSIFIERS)[:2]
    (10, 'out_out', ['decision_tree', 'logistic_regression'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from certunlearn.audit.features import CHEN_FEATURES, FEATURES, parse_defence
from certunlearn.errors import ConfigError
from certunlearn.models import MODELS
from certunlearn.serialize import plain
from certunlearn.train.config import SGDConfig
from certunlearn.validation import check_choice, check_int, check_open_unit, check_real, register

__all__ = [
    "ATTACK_CLASSIFIERS",
    "EVALUATION",
    "NEGATIVES",
    "AttackClassifierFactory",
    "MIAUSpec",
    "register_attack_classifier",
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

EVALUATION = (
    "attack classifiers fitted on the shadow universe's features, evaluated on the disjoint "
    "held-out target universe"
)
"""How the protocol's metrics are obtained (the ``evaluation`` field of every MIA-U result)."""


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

