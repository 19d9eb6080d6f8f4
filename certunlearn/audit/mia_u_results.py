r"""Results of MIA-U: the query pairs, the fitted attacks and their target-set metrics.

The outcome types of :mod:`certunlearn.audit.mia_u` (Chen et al., ACM CCS 2021, "When Machine
Unlearning Jeopardizes Privacy"), frozen and validated, each with a JSON-friendly ``as_dict``:

* :class:`MIAUQueries` — one universe's (original, unlearned) query pairs and both models' raw
  logits;
* :class:`FittedAttack` — defence → feature → standardised classifier, fitted on the shadow
  universe; :meth:`FittedAttack.membership_scores` scores any paired outputs;
* :class:`MIAUAttackResult` — target-set metrics of one (defence, feature, classifier), with
  DegCount / DegRate against ``basic``;
* :class:`MIAUResult` — everything :func:`~certunlearn.audit.mia_u.run_mia_u` returns, with the
  best attack and its Bonferroni-corrected ε lower bound;
* :class:`UnlearningAudit` — a fitted attack applied to one (original, unlearned) pair
  (:func:`~certunlearn.audit.mia_u.audit_unlearning`).

Example:
    >>> from sklearn.linear_model import LogisticRegression
    >>> attack = FittedAttack("l2_distance", "logistic_regression", "none", "out_out",
    ...     LogisticRegression().fit([[0.0], [1.0]], [0, 1]), 2)
    >>> scores = attack.membership_scores(original_probabilities=[[1.0, 0.0], [0.5, 0.5]],
    ...     unlearned_probabilities=[[0.0, 1.0], [0.5, 0.5]])
    >>> bool(scores[0] > scores[1]), attack.as_dict()["n_train"]
    (True, 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from certunlearn.audit.epsilon import EpsilonBound
from certunlearn.audit.features import apply_defence, compute_features
from certunlearn.audit.metrics import AttackMetrics, readonly_copy
from certunlearn.audit.mia_u_spec import EVALUATION, MIAUSpec
from certunlearn.errors import ConfigError, InputError
from certunlearn.report.entries import AttackEntry, AttackSection

__all__ = [
    "FittedAttack",
    "MIAUAttackResult",
    "MIAUQueries",
    "MIAUResult",
    "UnlearningAudit",
]


def _attack_name(defence: object, feature: object, classifier: object) -> str:
    """``defence/feature/classifier`` without an absent or ``none`` part (the report's attack name)."""
    return "/".join(str(p) for p in (defence, feature, classifier) if p and p != "none")


def _member_probabilities(estimator: Any, features: np.ndarray) -> np.ndarray:
    """P(class 1 = deleted record) from a fitted classifier (0 where it never saw class 1)."""
    proba = np.asarray(estimator.predict_proba(features), dtype=np.float64)
    classes = list(getattr(estimator, "classes_", [0, 1]))
    return proba[:, classes.index(1)] if 1 in classes else np.zeros(features.shape[0])


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
        classifier: Key of :data:`~certunlearn.audit.mia_u_spec.ATTACK_CLASSIFIERS`.
        defence: Defence string applied to both models' outputs before the feature.
        negatives: What the attack was trained to tell the deleted records from
            (:data:`~certunlearn.audit.mia_u_spec.NEGATIVES`).
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

    def report_entry(self, *, include_roc: bool = True, include_histogram: bool = True) -> AttackEntry:
        """This attack as an entry of a compliance report, named ``defence/feature/classifier``
        (a ``none`` defence left out).

        Example:
            >>> from certunlearn.audit import attack_metrics, epsilon_lower_bound
            >>> r = MIAUAttackResult("none", "basic", "mlp", attack_metrics([1.0], [0.0], n_bootstrap=0),
            ...     epsilon_lower_bound([1.0], [0.0]), None, None, np.array([1.0]), np.array([0.0]))
            >>> entry = r.report_entry()
            >>> entry.name, entry.auc, entry.deg_count
            ('basic/mlp', 1.0, None)
        """
        return self.metrics.report_entry(
            name=_attack_name(self.defence, self.feature, self.classifier), epsilon=self.epsilon,
            scores_in=self.scores_in if include_histogram else None,
            scores_out=self.scores_out if include_histogram else None,
            include_roc=include_roc, deg_count=self.deg_count, deg_rate=self.deg_rate,
        )


@dataclass(frozen=True, slots=True)
class MIAUResult:
    """Outcome of :func:`~certunlearn.audit.mia_u.run_mia_u`.

    Attributes:
        spec: The :class:`~certunlearn.audit.mia_u_spec.MIAUSpec` that ran.
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
        """The fitted attack behind :attr:`best` (for :func:`~certunlearn.audit.mia_u.audit_unlearning`)."""
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
            >>> from certunlearn.audit.mia_u import run_mia_u
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
            >>> from certunlearn.audit.mia_u import run_mia_u
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
            "epsilon_correction": self._epsilon_correction(),
            "notes": list(self.notes),
            "elapsed_s": self.elapsed_s,
        }
        if not include_queries:
            for universe in ("shadow", "target"):
                for key in ("record_ids", "is_member", "original_index", "unlearned_index"):
                    out[universe].pop(key)
        return out

    def _epsilon_correction(self) -> str:
        return f"Bonferroni over {len(self.attacks)} attacks"

    def report_section(
        self, *, reference: MIAUResult | AttackSection | None = None, include_roc: bool = True,
        include_histograms: bool = True,
    ) -> AttackSection:
        """This audit as the MIA-U section of a compliance report (:class:`~certunlearn.report.entries.AttackSection`).

        One entry per (defence, feature, classifier) with its target-set metrics, ε bound and
        DegCount / DegRate; the headline bound is :attr:`epsilon` (the best attack's, Bonferroni
        over all of them).

        Args:
            reference: The same attacks against the retrained model (matched by name), or None.
            include_roc: Put each attack's ROC (thinned to 256 points) in the report.
            include_histograms: Put each attack's score histograms in the report.

        Example:
            >>> import torch
            >>> from certunlearn.audit.mia_u import run_mia_u
            >>> from certunlearn.train import SGDConfig
            >>> X = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
            >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=3, records_per_original=12,
            ...     model="logreg", training=SGDConfig(epochs=2, batch_size=12, lr=0.5),
            ...     attack_models=("logistic_regression",), features=("l2_distance",), n_bootstrap=0)
            >>> section = run_mia_u(X, (X[:, 1] > 0).long(), spec=spec).report_section()
            >>> section.attacks[0].name, section.negatives, section.n_shadows
            ('l2_distance/logistic_regression', 'out_out', 1)
        """
        section = AttackSection(
            attacks=tuple(r.report_entry(include_roc=include_roc, include_histogram=include_histograms)
                          for r in self.attacks),
            n_shadows=self.spec.n_shadow_originals,
            alpha=self.spec.alpha,
            delta=self.spec.delta,
            unlearning=self.unlearning,
            negatives=self.negatives,
            negatives_definition=self.negatives_definition,
            evaluation=self.evaluation,
            defences=tuple(self.spec.defences),
            epsilon_lb=self.epsilon.epsilon,
            epsilon_cap=self.epsilon.cap,
            epsilon_correction=self._epsilon_correction(),
            notes=self.notes,
        )
        if isinstance(reference, MIAUResult):
            reference = reference.report_section(include_roc=include_roc, include_histograms=include_histograms)
        return section if reference is None else section.with_reference(reference)



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

    def report_entry(self, *, include_roc: bool = True, include_histogram: bool = True) -> AttackEntry:
        """This audit's attack as an entry of a compliance report (forget records vs negatives),
        named ``defence/feature/classifier`` from :attr:`attack`.

        Example:
            >>> from certunlearn.audit import attack_metrics, epsilon_lower_bound
            >>> a = UnlearningAudit({"feature": "basic", "classifier": "mlp", "defence": "none"},
            ...     attack_metrics([1.0], [0.0], n_bootstrap=0), epsilon_lower_bound([1.0], [0.0]),
            ...     np.array([1.0]), np.array([0.0]), {})
            >>> a.report_entry().name, a.report_section().negatives
            ('basic/mlp', None)
        """
        name = _attack_name(self.attack.get("defence"), self.attack.get("feature"), self.attack.get("classifier"))
        return self.metrics.report_entry(
            name=name or "mia-u", epsilon=self.epsilon,
            scores_in=self.scores_forget if include_histogram else None,
            scores_out=self.scores_negative if include_histogram else None, include_roc=include_roc,
        )

    def report_section(self, *, include_roc: bool = True, include_histograms: bool = True) -> AttackSection:
        """This audit as the MIA-U section of a compliance report: its one attack and ε bound."""
        return AttackSection(
            attacks=(self.report_entry(include_roc=include_roc, include_histogram=include_histograms),),
            alpha=self.epsilon.alpha, delta=self.epsilon.delta, negatives=self.attack.get("negatives"),
            epsilon_lb=self.epsilon.epsilon, epsilon_cap=self.epsilon.cap,
        )

