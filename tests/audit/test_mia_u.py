"""Tests of the MIA-U shadow protocol and single-pair audits (certunlearn.audit.mia_u, with its
spec, attack stage and results modules mia_u_spec, mia_u_attacks, mia_u_results).

What is checked (Chen et al., "When Machine Unlearning Jeopardizes Privacy", ACM CCS 2021):

* the protocol never evaluates an attack on its training features: the shadow and target universes
  are disjoint record sets, every query and training record stays in its universe, positives are
  in the original's training set, ``out_out`` negatives in neither, ``in_in`` negatives retained,
  and the reported scores are the fitted attack's outputs on the *target* features;
* a toy where unlearning leaves a trace — a small MLP overfit on 60 digits, unlearned by retraining
  without the record — with ``in_in`` negatives (deleted vs retained records, so the original model
  alone cannot tell them apart): the attacks on difference features clearly beat chance on the
  target set (AUC and its bootstrap band), with DegCount > 0.5 and DegRate > 0 against ``basic``;
* the "null" unlearning whose unlearned posteriors are identical to the original ones: the robust,
  exact statement is that every difference feature is identically 0, so every attack on it scores a
  constant and has AUC exactly 0.5 and ε_lb = 0; ``basic`` does not depend on the unlearning at all;
* a defence acts on every feature (label-only scores depend only on the two arg-maxes);
* :func:`audit_unlearning` reproduces the protocol's target scores and detects a real retrain;
* input validation.

The challenge's population attack is tested in test_unlearning_challenge.py.

Budgets are tiny and seeds fixed. The models are so small that torch's intra-op threads only add
synchronisation cost on a shared 2-core machine, so this module runs torch single-threaded (and
restores the setting afterwards).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from certunlearn.audit.mia_u import audit_unlearning, posthoc_unlearning, run_mia_u
from certunlearn.audit.mia_u_results import FittedAttack, MIAUResult
from certunlearn.audit.mia_u_spec import (
    ATTACK_CLASSIFIERS,
    NEGATIVES,
    MIAUSpec,
    register_attack_classifier,
)
from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.errors import ConfigError, InputError
from certunlearn.models import build_model
from certunlearn.train import SGDConfig, train_sgd

DIFFERENCE_FEATURES = ("direct_diff", "sorted_diff", "l2_distance")
TOY_TRAINING = SGDConfig(epochs=20, batch_size=60, lr=2.0)  # full batch: overfits 60 digits




@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8)
    return torch.as_tensor(X[:400]), torch.as_tensor(y[:400])


def _toy_spec(**changes: object) -> MIAUSpec:
    base = MIAUSpec(
        n_shadow_originals=3,
        n_unlearned_per_original=10,
        records_per_original=60,
        model="mlp",
        model_kwargs={"hidden": (32,)},
        training=TOY_TRAINING,
        attack_models=("logistic_regression", "decision_tree"),
        negatives="in_in",
        n_bootstrap=200,
        seed=0,
    )
    return dataclasses.replace(base, **changes)


def _identity_unlearning(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, ids: list[int]):
    del X, y, ids
    return model  # "unlearned" == original: identical posteriors


@pytest.fixture(scope="module")
def trace_result(digits: tuple[torch.Tensor, torch.Tensor]) -> MIAUResult:
    X, y = digits
    return run_mia_u(X[:300], y[:300], spec=_toy_spec())


@pytest.fixture(scope="module")
def null_result(digits: tuple[torch.Tensor, torch.Tensor]) -> MIAUResult:
    X, y = digits
    return run_mia_u(X[:300], y[:300], spec=_toy_spec(n_bootstrap=0), unlearning=_identity_unlearning)


def _tiny_spec(**changes: object) -> MIAUSpec:
    base = MIAUSpec(
        n_shadow_originals=2,
        n_unlearned_per_original=5,
        records_per_original=15,
        model="logreg",
        training=SGDConfig(epochs=3, batch_size=15, lr=0.5, weight_decay=0.1),
        attack_models=("logistic_regression",),
        features=("l2_distance", "basic"),
        n_bootstrap=0,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.randn(80, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).long()


# --------------------------------------------------------------------------- protocol structure


def _check_universes(result: MIAUResult) -> None:
    shadow, target = result.shadow, result.target
    assert set(shadow.universe_ids.tolist()).isdisjoint(target.universe_ids.tolist())
    for queries in (shadow, target):
        universe = set(queries.universe_ids.tolist())
        assert set(queries.record_ids.tolist()) <= universe
        for training in queries.training_ids:
            assert set(training.tolist()) <= universe
        for o, training in enumerate(queries.training_ids):
            rows = queries.original_index == o
            positives = queries.record_ids[rows & queries.is_member]
            negatives = queries.record_ids[rows & ~queries.is_member]
            assert set(positives.tolist()) <= set(training.tolist())
            assert len(set(positives.tolist())) == positives.size  # distinct deletions
            if result.negatives == "out_out":
                assert set(negatives.tolist()).isdisjoint(training.tolist())
            else:
                assert set(negatives.tolist()) <= set(training.tolist())
                assert set(negatives.tolist()).isdisjoint(positives.tolist())
        assert queries.n_positives == queries.n_negatives == result.spec.n_queries


@pytest.mark.parametrize("negatives", sorted(NEGATIVES))
def test_universes_are_disjoint_and_queries_stay_in_them(
    tiny_data: tuple[torch.Tensor, torch.Tensor], negatives: str
) -> None:
    X, y = tiny_data
    result = run_mia_u(X, y, spec=_tiny_spec(negatives=negatives))
    assert result.negatives == negatives and result.negatives_definition == NEGATIVES[negatives]
    _check_universes(result)


def test_reported_metrics_are_the_fitted_attacks_outputs_on_target_features(
    trace_result: MIAUResult,
) -> None:
    _check_universes(trace_result)
    target, shadow = trace_result.target, trace_result.shadow
    for attack in trace_result.attacks:
        fitted = trace_result.fitted[(attack.defence, attack.feature, attack.classifier)]
        assert fitted.n_train == shadow.record_ids.size  # fitted on the shadow queries only
        scores = fitted.membership_scores(
            original_logits=target.original_logits, unlearned_logits=target.unlearned_logits
        )
        np.testing.assert_array_equal(scores[target.is_member], attack.scores_in)
        np.testing.assert_array_equal(scores[~target.is_member], attack.scores_out)
        assert attack.metrics.n_in == target.n_positives and attack.metrics.n_out == target.n_negatives


def test_progress_counts_every_trained_model(tiny_data: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = tiny_data
    seen: list[tuple[int, int, str]] = []
    spec = _tiny_spec()
    run_mia_u(X, y, spec=spec, progress=lambda done, total, label: seen.append((done, total, label)))
    total = 2 * spec.n_shadow_originals * (1 + spec.n_unlearned_per_original)
    assert [s[0] for s in seen] == list(range(1, total + 1))
    assert {s[1] for s in seen} == {total}
    assert {s[2] for s in seen} == {"mia-u shadow models", "mia-u target models"}


def test_runs_are_deterministic_and_serialisable(tiny_data: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = tiny_data
    first = run_mia_u(X, y, spec=_tiny_spec(defences=("none", "top_k:1")))
    second = run_mia_u(X, y, spec=_tiny_spec(defences=("none", "top_k:1")))
    for a, b in zip(first.attacks, second.attacks, strict=True):
        np.testing.assert_array_equal(a.scores_in, b.scores_in)
        np.testing.assert_array_equal(a.scores_out, b.scores_out)
    text = json.dumps(
        first.as_dict(include_scores=True, include_roc=True, include_queries=True), allow_nan=False
    )
    out = json.loads(text)
    assert out["spec"]["defences"] == ["none", "top_k:1"]
    assert out["evaluation"].startswith("attack classifiers fitted on the shadow universe")
    assert len(out["attacks"]) == 2 * 2 * 1
    assert out["epsilon_correction"] == "Bonferroni over 4 attacks"
    assert "record_ids" not in first.as_dict()["target"]


def test_best_attack_and_bonferroni_epsilon(trace_result: MIAUResult) -> None:
    aucs = [a.auc for a in trace_result.attacks]
    assert trace_result.auc == max(aucs)
    assert trace_result.best is trace_result.attacks[int(np.argmax(aucs))]
    assert trace_result.tpr_at == trace_result.best.tpr_at
    assert trace_result.epsilon.alpha == pytest.approx(trace_result.spec.alpha / len(aucs))
    assert trace_result.epsilon.epsilon <= trace_result.best.epsilon.epsilon
    assert trace_result.best_attack.feature == trace_result.best.feature
    with pytest.raises(ConfigError, match="evaluated"):
        trace_result.attack("l2_distance", "random_forest")


# --------------------------------------------------------------------------- statistical toys


def test_unlearning_trace_is_detected_on_the_target_set(trace_result: MIAUResult) -> None:
    # in_in negatives: deleted vs retained records, both trained on by the original
    for feature in ("sorted_diff", "l2_distance"):
        attack = trace_result.attack(feature, "logistic_regression")
        assert attack.auc > 0.85, (feature, attack.auc)
        assert attack.metrics.auc_ci is not None and attack.metrics.auc_ci[0] > 0.7
    sorted_diff = trace_result.attack("sorted_diff", "logistic_regression")
    assert sorted_diff.deg_count is not None and sorted_diff.deg_count > 0.5
    assert sorted_diff.deg_rate is not None and sorted_diff.deg_rate > 0.0
    assert trace_result.auc > 0.9
    assert trace_result.epsilon.epsilon > 0.0  # even after the Bonferroni correction for the choice
    assert trace_result.attack("basic", "logistic_regression").deg_count is None


def test_null_unlearning_gives_chance_on_every_difference_feature(
    null_result: MIAUResult, trace_result: MIAUResult
) -> None:
    for feature in DIFFERENCE_FEATURES:
        for classifier in null_result.spec.attack_models:
            attack = null_result.attack(feature, classifier)
            assert attack.auc == 0.5, (feature, classifier)
            assert attack.epsilon.epsilon == 0.0
            assert np.unique(np.concatenate([attack.scores_in, attack.scores_out])).size == 1
    np.testing.assert_array_equal(null_result.target.original_logits, null_result.target.unlearned_logits)
    # the originals, queries and hence the ``basic`` attack do not depend on the unlearning
    np.testing.assert_array_equal(null_result.target.record_ids, trace_result.target.record_ids)
    for classifier in null_result.spec.attack_models:
        np.testing.assert_array_equal(
            null_result.attack("basic", classifier).scores_in,
            trace_result.attack("basic", classifier).scores_in,
        )


def test_label_only_defence_reaches_every_feature(tiny_data: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = tiny_data
    spec = _tiny_spec(features=("direct_concat", "sorted_diff", "basic"), defences=("label_only",),
                      attack_models=("decision_tree", "logistic_regression"))
    result = run_mia_u(X, y, spec=spec)
    target = result.target
    groups = [tuple(pair) for pair in np.stack(
        [target.original_logits.argmax(axis=1), target.unlearned_logits.argmax(axis=1)], axis=1)]
    for attack in result.attacks:
        fitted = result.fitted[(attack.defence, attack.feature, attack.classifier)]
        scores = fitted.membership_scores(
            original_logits=target.original_logits, unlearned_logits=target.unlearned_logits
        )
        by_group: dict[tuple[int, ...], set[float]] = {}
        for group, score in zip(groups, scores.tolist(), strict=True):
            by_group.setdefault(group, set()).add(score)
        assert all(len(values) == 1 for values in by_group.values()), attack.feature


# --------------------------------------------------------------------------- pluggable unlearning


def test_coupled_retrain_and_posthoc_unlearning_plug_in(tiny_data: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = tiny_data
    coupled = run_mia_u(X, y, spec=_tiny_spec(), unlearning="coupled-retrain")
    assert coupled.unlearning == "coupled-retrain"
    assert not np.array_equal(coupled.target.original_logits, coupled.target.unlearned_logits)
    newton = run_mia_u(X, y, spec=_tiny_spec(), unlearning=posthoc_unlearning("newton", weight_decay=0.1))
    assert newton.unlearning == "newton"
    moved = np.linalg.norm(newton.target.original_logits - newton.target.unlearned_logits, axis=1)
    assert np.all(np.isfinite(moved)) and np.all(moved > 0)


def test_unlearning_callable_may_return_a_state_dict_or_a_logits_function(
    tiny_data: tuple[torch.Tensor, torch.Tensor],
) -> None:
    X, y = tiny_data

    def as_state(model, X_o, y_o, ids):
        return {k: v.clone() for k, v in model.state_dict().items()}

    def as_function(model, X_o, y_o, ids):
        return lambda inputs: model(inputs) * 0.0

    state = run_mia_u(X, y, spec=_tiny_spec(), unlearning=as_state)
    np.testing.assert_array_equal(state.target.original_logits, state.target.unlearned_logits)
    function = run_mia_u(X, y, spec=_tiny_spec(), unlearning=as_function)
    assert np.all(function.target.unlearned_logits == 0.0)


# --------------------------------------------------------------------------- audit of one pair


def test_audit_reproduces_the_protocols_target_scores(trace_result: MIAUResult) -> None:
    target = trace_result.target
    rows_in, rows_out = np.flatnonzero(target.is_member), np.flatnonzero(~target.is_member)
    labels = np.zeros(target.record_ids.size, dtype=np.int64)
    audit = audit_unlearning(
        lambda rows: target.original_logits[rows],
        lambda rows: target.unlearned_logits[rows],
        rows_in, labels[rows_in], rows_out, labels[rows_out],
        trace_result, n_bootstrap=0,
    )
    best = trace_result.best
    np.testing.assert_array_equal(audit.scores_forget, best.scores_in)
    np.testing.assert_array_equal(audit.scores_negative, best.scores_out)
    assert audit.auc == best.auc
    assert audit.attack["negatives"] == "in_in"
    assert json.dumps(audit.as_dict(include_scores=True), allow_nan=False)


def test_audit_detects_a_real_retrain(
    trace_result: MIAUResult, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    X, y = digits
    X_pair, y_pair = X[300:360], y[300:360]  # records outside both universes
    initial = build_model("mlp", in_features=64, num_classes=10, hidden=(32,),
                          generator=torch.Generator().manual_seed(123))
    original = train_sgd(initial, X_pair, y_pair, TOY_TRAINING)
    unlearned = train_sgd(initial, X_pair[20:], y_pair[20:], TOY_TRAINING)  # forget rows 0..19
    fm = FunctionalModel(initial)
    attack = trace_result.fitted[("none", "sorted_diff", "logistic_regression")]
    audit = audit_unlearning(
        lambda inputs: fm.outputs(original.theta, inputs),
        lambda inputs: fm.outputs(unlearned.theta, inputs),
        X_pair[:20], y_pair[:20], X_pair[20:40], y_pair[20:40],  # negatives: retained (in_in)
        attack, n_bootstrap=0,
    )
    assert audit.auc > 0.7
    assert audit.accuracy["original_forget"] == 1.0
    assert set(audit.accuracy) == {"original_forget", "unlearned_forget", "original_negative",
                                   "unlearned_negative"}


def test_audit_input_validation(trace_result: MIAUResult) -> None:
    attack = trace_result.best_attack
    logits = lambda rows: np.zeros((len(rows), 10))  # noqa: E731
    rows = np.arange(4)
    labels = np.zeros(4, dtype=np.int64)
    with pytest.raises(ConfigError, match="FittedAttack or an MIAUResult"):
        audit_unlearning(logits, logits, rows, labels, rows, labels, "best")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="must not be empty"):
        audit_unlearning(logits, logits, rows[:0], labels[:0], rows, labels, attack)
    with pytest.raises(InputError, match="y_forget must be 4 integer labels"):
        audit_unlearning(logits, logits, rows, labels[:3], rows, labels, attack)
    with pytest.raises(InputError, match=r"shape \[4, 10\]"):
        audit_unlearning(logits, lambda r: np.zeros((len(r), 3)), rows, labels, rows, labels, attack)
    with pytest.raises(ConfigError, match="must be callable"):
        audit_unlearning(logits, None, rows, labels, rows, labels, attack)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="NaN or infinite"):
        audit_unlearning(logits, lambda r: np.full((len(r), 10), np.nan), rows, labels, rows, labels,
                         attack)


def test_fitted_attack_describe_has_no_estimator(trace_result: MIAUResult) -> None:
    described = trace_result.best_attack.as_dict()
    assert set(described) == {"feature", "classifier", "defence", "negatives", "n_train"}
    assert isinstance(trace_result.best_attack, FittedAttack)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_shadow_originals": 0}, "n_shadow_originals must be >= 1"),
        ({"n_unlearned_per_original": 15}, "n_unlearned_per_original must be < records_per_original"),
        ({"negatives": "in_in", "n_unlearned_per_original": 8}, "records_per_original must be >= 2"),
        ({"negatives": "in_out"}, r"negatives must be one of \['in_in', 'out_out'\]"),
        ({"model": "resnet"}, "unknown model 'resnet'"),
        ({"model": 3}, "model must be a name or a factory"),
        ({"model_kwargs": {"num_classes": 3}}, "must not set"),
        ({"training": {"epochs": 1}}, "training must be an SGDConfig"),
        ({"training": SGDConfig(epochs=1, batch_size=4, lr=0.1, loss="mse")}, "cross_entropy"),
        ({"attack_models": ()}, "non-empty sequence"),
        ({"attack_models": "mlp"}, "non-empty sequence"),
        ({"attack_models": ("svm",)}, r"unknown attack_model 'svm'.*'decision_tree'"),
        ({"attack_models": ("mlp", "mlp")}, "repeats"),
        ({"random_forest_trees": 0}, "random_forest_trees must be >= 1"),
        ({"features": ("loss",)}, "unknown feature 'loss'"),
        ({"defences": ("top_k",)}, "needs a value"),
        ({"defences": ("none", "none")}, "repeats"),
        ({"positive_fraction": 1.0}, "positive_fraction must be in"),
        ({"alpha": 0.0}, "alpha must be in"),
        ({"delta": 1.0}, "delta must be in"),
        ({"fprs": (1.5,)}, "fractions in"),
        ({"n_bootstrap": -1}, "n_bootstrap must be >= 0"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_spec_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _tiny_spec(**changes)


def test_spec_is_frozen_and_serialisable() -> None:
    spec = _tiny_spec(model_kwargs={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 3  # type: ignore[misc]
    assert json.loads(json.dumps(spec.as_dict()))["training"]["lr"] == 0.5
    assert MIAUSpec().attack_models == tuple(sorted(ATTACK_CLASSIFIERS, key=[
        "decision_tree", "logistic_regression", "random_forest", "mlp"].index))
    assert MIAUSpec(model=build_model).as_dict()["model"] == "certunlearn.models:build_model"


def test_run_validation(tiny_data: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = tiny_data
    with pytest.raises(ConfigError, match="spec must be an MIAUSpec"):
        run_mia_u(X, y, spec={"seed": 0})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unlearning must be one of \['sgd-retrain', 'coupled-retrain'\], a "
                                          r"registered post-hoc unlearner or a callable, got 'forget'"):
        run_mia_u(X, y, spec=_tiny_spec(), unlearning="forget")
    for old, new in (("retrain", "sgd-retrain"), ("coupled_retrain", "coupled-retrain")):
        with pytest.raises(ConfigError, match=f"use '{new}'"):  # a renamed spelling never runs silently
            run_mia_u(X, y, spec=_tiny_spec(), unlearning=old)
    with pytest.raises(ConfigError, match="not a post-hoc unlearner"):
        run_mia_u(X, y, spec=_tiny_spec(), unlearning="hfocu")
    with pytest.raises(ConfigError, match="or a callable"):
        run_mia_u(X, y, spec=_tiny_spec(), unlearning=3)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="positive pool has 16 records"):
        run_mia_u(X[:40], y[:40], spec=_tiny_spec(records_per_original=18,
                                                  n_unlearned_per_original=2))
    with pytest.raises(InputError, match="negative pool"):
        run_mia_u(X, y, spec=_tiny_spec(positive_fraction=0.95))
    with pytest.raises(InputError, match=r"y must have shape \(80,\)"):
        run_mia_u(X, y[:10], spec=_tiny_spec())
    with pytest.raises(InputError, match="integer class labels"):
        run_mia_u(X, y.double() + 0.5, spec=_tiny_spec())
    with pytest.raises(InputError, match="must return an nn.Module"):
        run_mia_u(X, y, spec=_tiny_spec(), unlearning=lambda model, X_o, y_o, ids: 3)
    with pytest.raises(InputError, match="fitting on 8 shadow queries failed"):
        run_mia_u(X, y, spec=_tiny_spec(n_unlearned_per_original=2, attack_models=("mlp",)))


def test_attack_classifier_registry() -> None:
    assert sorted(ATTACK_CLASSIFIERS) == ["decision_tree", "logistic_regression", "mlp", "random_forest"]
    with pytest.raises(ConfigError, match="already registered"):
        register_attack_classifier("decision_tree", ATTACK_CLASSIFIERS["decision_tree"])
    with pytest.raises(ConfigError, match="must be callable"):
        register_attack_classifier("_test", 3)  # type: ignore[arg-type]


def test_every_attack_classifier_runs(tiny_data: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = tiny_data
    spec = _tiny_spec(attack_models=tuple(sorted(ATTACK_CLASSIFIERS)), random_forest_trees=10)
    result = run_mia_u(X, y, spec=spec)
    assert {a.classifier for a in result.attacks} == set(ATTACK_CLASSIFIERS)
    assert all(0.0 <= a.auc <= 1.0 for a in result.attacks)
