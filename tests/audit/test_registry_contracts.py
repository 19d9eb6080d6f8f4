"""Contract tests shared by every entry of the audit registries.

Each registry is parametrised over its entries at collection time, so an entry added with its
``register_*`` function is held to the same contract:

* MIA-L attacks (:data:`certunlearn.audit.attacks.ATTACKS`): ``fn(AttackInputs)`` -> finite ``[n]``
  scores (or ``(scores, details)``), higher for members on a planted signal (AUC > 0.8),
  deterministic, an ``InputError`` on NaN or wrongly shaped outputs and on missing inputs that the
  entry declares it needs (``needs_shadows`` / ``needs_population``).
* Membership signals (:data:`certunlearn.audit.SIGNALS`): ``f(*, labels, logits | probabilities)``
  -> finite ``[n]``, higher for members, the same from logits and from their softmax, errors on
  NaN, on a label vector of the wrong length and on both/neither output kinds.
* MIA-U features (:data:`certunlearn.audit.features.FEATURES`): ``[n, d]`` with the documented d
  (Chen et al.'s table), carrying a planted deletion signal that a linear read-out fitted on one half
  of the rows finds on the other half (AUC > 0.8).
* Output defences (:data:`certunlearn.audit.features.DEFENCES`): probabilities ``[n, C]`` (rows sum
  to 1) from logits or probabilities, the arg-max kept, members' confidence still higher on a
  strong planted signal.
* MIA-U attack classifiers (``ATTACK_CLASSIFIERS``, found through ``certunlearn.audit`` or the
  audit module that defines it): behind a ``StandardScaler`` as ``run_mia_u`` uses them, finite
  member probabilities ``[n]`` in [0, 1], AUC > 0.8 on held-out planted features, deterministic,
  scikit-learn's ``ValueError`` on a wrong number of features, and on NaN unless the estimator
  takes missing values natively (scikit-learn's trees), whose outputs must then stay finite.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from scipy.special import softmax

import certunlearn.audit as A
from certunlearn.audit.attacks import ATTACKS, DEFAULT_ATTACKS, AttackInputs, attack_options
from certunlearn.audit.features import (
    CHEN_FEATURES,
    DEFENCES,
    FEATURES,
    apply_defence,
    compute_features,
    parse_defence,
)
from certunlearn.audit.metrics import attack_metrics
from certunlearn.errors import ConfigError, InputError


def _audit_attribute(name: str, *candidates: str) -> Any:
    """``certunlearn.audit.<name>`` when the package exports it, else the audit module defining it.

    Audit modules are being reorganised; the contract follows the registry, not its module: the
    ``candidates`` are tried first, then every module of the package.
    """
    if hasattr(A, name):
        return getattr(A, name)
    scanned = [info.name for info in pkgutil.iter_modules(A.__path__)]
    for module_name in (*candidates, *sorted(set(scanned) - set(candidates))):
        module = importlib.import_module(f"certunlearn.audit.{module_name}")
        if hasattr(module, name):
            return getattr(module, name)
    raise AssertionError(f"no module of certunlearn.audit defines {name}")


ATTACK_CLASSIFIERS = _audit_attribute("ATTACK_CLASSIFIERS", "mia_u", "mia_u_spec", "mia_u_attacks")
MIAUSpec = _audit_attribute("MIAUSpec", "mia_u", "mia_u_spec")


def _auc(members: np.ndarray, non_members: np.ndarray) -> float:
    return attack_metrics(members, non_members, fprs=(), n_bootstrap=0).auc


def _balanced_membership(rng: np.random.Generator, n_models: int, n: int) -> np.ndarray:
    """``[n_models, n]`` bool: each example IN for exactly half of the models."""
    return np.argsort(rng.random((n_models, n)), axis=0) < n_models // 2


def _with_true_logit(true_logit: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                     classes: int) -> np.ndarray:
    """Logits ``[..., n, C]``: small noise, and ``true_logit [..., n]`` at each example's label."""
    out = rng.normal(0.0, 0.3, (*true_logit.shape, classes))
    out[..., np.arange(labels.size), labels] = true_logit
    return out


# ---------------------------------------------------------------------------------------------
# MIA-L attacks
# ---------------------------------------------------------------------------------------------

N_AUDIT, N_POPULATION, N_SHADOWS, CLASSES = 200, 100, 8, 3


@pytest.fixture(scope="module")
def planted() -> dict[str, Any]:
    """Members (the first half) and IN shadows have a true-class logit 2 higher, on top of a
    per-example difficulty shared by the target and the shadows; the population is OUT of the
    target and balanced over the shadows."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, N_AUDIT)
    pop_labels = rng.integers(0, CLASSES, N_POPULATION)
    is_member = np.arange(N_AUDIT) < N_AUDIT // 2
    membership = _balanced_membership(rng, N_SHADOWS, N_AUDIT)
    pop_membership = _balanced_membership(rng, N_SHADOWS, N_POPULATION)
    difficulty, pop_difficulty = rng.normal(0, 1, N_AUDIT), rng.normal(0, 1, N_POPULATION)

    def logits(base: np.ndarray, inside: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _with_true_logit(1.0 + base + 2.0 * inside + rng.normal(0, 0.3, inside.shape), y,
                                rng, CLASSES)

    return {
        "is_member": is_member,
        "inputs": AttackInputs(
            target_logits=logits(difficulty, is_member, labels),
            labels=labels,
            shadow_logits=logits(difficulty[None], membership, labels),
            membership=membership,
            population_logits=logits(pop_difficulty, np.zeros(N_POPULATION, bool), pop_labels),
            population_labels=pop_labels,
            population_shadow_logits=logits(pop_difficulty[None], pop_membership, pop_labels),
            population_membership=pop_membership,
            options=attack_options(),
        ),
    }


def _run_attack(name: str, inputs: AttackInputs) -> np.ndarray:
    output = ATTACKS[name].fn(inputs)
    scores, details = output if isinstance(output, tuple) else (output, {})
    assert isinstance(details, Mapping), type(details)
    return np.asarray(scores)


def _replace(inputs: AttackInputs, **changes: Any) -> AttackInputs:
    fields = {name: getattr(inputs, name) for name in AttackInputs.__dataclass_fields__}
    return AttackInputs(**{**fields, **changes})


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_scores_are_finite_per_example_and_find_members(name, planted):
    scores = _run_attack(name, planted["inputs"])
    assert scores.shape == (N_AUDIT,) and scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    members, non_members = scores[planted["is_member"]], scores[~planted["is_member"]]
    assert members.mean() > non_members.mean()
    assert _auc(members, non_members) > 0.8, name


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_deterministic(name, planted):
    first = _run_attack(name, planted["inputs"])
    np.testing.assert_array_equal(_run_attack(name, planted["inputs"]), first)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_refuses_nan_and_wrong_shapes(name, planted):
    inputs = planted["inputs"]
    bad = inputs.target_logits.copy()
    bad[3, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        _run_attack(name, _replace(inputs, target_logits=bad))
    with pytest.raises(InputError, match="shape"):
        _run_attack(name, _replace(inputs, target_logits=inputs.target_logits[:-1]))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_needs_what_it_declares(name, planted):
    inputs, entry = planted["inputs"], ATTACKS[name]
    without_shadows = _replace(inputs, shadow_logits=None, membership=None)
    without_population = _replace(inputs, population_logits=None, population_labels=None,
                                  population_shadow_logits=None, population_membership=None)
    for declared, reduced in ((entry.needs_shadows, without_shadows),
                              (entry.needs_population, without_population)):
        if declared:
            with pytest.raises(InputError, match="needs"):
                _run_attack(name, reduced)
        else:  # an attack that does not declare an input must run without it
            assert _run_attack(name, reduced).shape == (N_AUDIT,)


def test_attack_defaults_are_registered_and_agree():
    """One MIA-L default for run_mia_l, MIALJob and the CLI; audit plans have their own."""
    from certunlearn.audit.mia_l import run_mia_l
    from certunlearn.cli import audit_commands
    from certunlearn.jobs.mia_jobs import MIALJob
    from certunlearn.jobs.plan import PLAN_ATTACKS, PLAN_KINDS

    assert set(DEFAULT_ATTACKS) <= set(ATTACKS) and set(PLAN_ATTACKS) <= set(ATTACKS)
    assert inspect.signature(run_mia_l).parameters["attacks"].default == DEFAULT_ATTACKS
    assert MIALJob.__dataclass_fields__["attacks"].default == DEFAULT_ATTACKS
    cli_default = inspect.signature(audit_commands.audit_mia_l).parameters["attacks"].default
    assert tuple(cli_default.split(",")) == DEFAULT_ATTACKS  # a literal there: no SciPy at CLI start
    for kind in ("hfocu", "deployed"):
        assert PLAN_KINDS[kind]["audit"]().attacks == PLAN_ATTACKS


# ---------------------------------------------------------------------------------------------
# Membership signals
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_outputs() -> dict[str, np.ndarray]:
    """Members are confident and right (true logit 3), non-members mostly wrong (true logit −1)."""
    rng = np.random.default_rng(1)
    n, classes = 300, 3
    labels = rng.integers(0, classes, n)
    is_member = np.arange(n) < n // 2
    true_logit = np.where(is_member, 3.0, -1.0) + rng.normal(0, 0.5, n)
    logits = _with_true_logit(true_logit, labels, rng, classes)
    return {"labels": labels, "is_member": is_member, "logits": logits}


@pytest.mark.parametrize("name", sorted(A.SIGNALS))
def test_signal_scores_are_finite_per_example_and_find_members(name, planted_outputs):
    labels, logits, is_member = (planted_outputs[k] for k in ("labels", "logits", "is_member"))
    scores = A.SIGNALS[name](labels=labels, logits=logits)
    assert scores.shape == labels.shape and np.all(np.isfinite(scores))
    assert scores[is_member].mean() > scores[~is_member].mean()
    assert _auc(scores[is_member], scores[~is_member]) > 0.8
    np.testing.assert_array_equal(A.SIGNALS[name](labels=labels, logits=logits), scores)
    from_probabilities = A.SIGNALS[name](labels=labels, probabilities=softmax(logits, axis=1))
    np.testing.assert_allclose(from_probabilities, scores, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", sorted(A.SIGNALS))
def test_signal_refuses_bad_input(name, planted_outputs):
    labels, logits = planted_outputs["labels"], planted_outputs["logits"]
    bad = logits.copy()
    bad[0, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        A.SIGNALS[name](labels=labels, logits=bad)
    with pytest.raises(InputError, match="shape"):
        A.SIGNALS[name](labels=labels[:-1], logits=logits)
    with pytest.raises(InputError, match="exactly one"):
        A.SIGNALS[name](labels=labels, logits=logits, probabilities=softmax(logits, axis=1))
    with pytest.raises(InputError, match="exactly one"):
        A.SIGNALS[name](labels=labels)


# ---------------------------------------------------------------------------------------------
# MIA-U features
# ---------------------------------------------------------------------------------------------

FEATURE_WIDTH = {  # d as a function of C, from Chen et al.'s table (features module docstring)
    "direct_concat": lambda c: 2 * c,
    "sorted_concat": lambda c: 2 * c,
    "direct_diff": lambda c: c,
    "sorted_diff": lambda c: c,
    "l2_distance": lambda c: 1,
    "basic": lambda c: c,
}


@pytest.fixture(scope="module")
def planted_pairs() -> dict[str, np.ndarray]:
    """Deleted rows (the first half): the original is confident in class 0, the unlearned model
    much less; never-trained rows: both models alike and unsure."""
    rng = np.random.default_rng(2)
    n, classes = 400, 4
    labels = np.zeros(n, dtype=np.int64)
    deleted = np.arange(n) < n // 2
    original = np.where(deleted, 3.0, 0.5) + rng.normal(0, 0.5, n)
    unlearned = 0.5 + rng.normal(0, 0.5, n)
    p_o = softmax(_with_true_logit(original, labels, rng, classes), axis=1)
    p_u = softmax(_with_true_logit(unlearned, labels, rng, classes), axis=1)
    return {"p_original": p_o, "p_unlearned": p_u, "deleted": deleted}


def _pairs(planted_pairs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"p_original": planted_pairs["p_original"], "p_unlearned": planted_pairs["p_unlearned"]}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_feature_shape_and_planted_deletion_signal(name, planted_pairs):
    features = compute_features(name, **_pairs(planted_pairs))
    n, classes = planted_pairs["p_original"].shape
    assert features.ndim == 2 and features.shape[0] == n and np.all(np.isfinite(features))
    if name in FEATURE_WIDTH:
        assert features.shape[1] == FEATURE_WIDTH[name](classes)
    np.testing.assert_array_equal(compute_features(name, **_pairs(planted_pairs)), features)
    # a linear read-out (difference of the class means) fitted on even rows, scored on odd rows
    deleted = planted_pairs["deleted"]
    fit, held_out = np.arange(n) % 2 == 0, np.arange(n) % 2 == 1
    direction = features[fit & deleted].mean(0) - features[fit & ~deleted].mean(0)
    scores = features @ direction
    assert _auc(scores[held_out & deleted], scores[held_out & ~deleted]) > 0.8, name


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_feature_refuses_bad_input(name, planted_pairs):
    pairs = _pairs(planted_pairs)
    bad = pairs["p_original"].copy()
    bad[0, 0] = np.nan
    calls = [lambda **kw: compute_features(name, **kw)]
    if name in CHEN_FEATURES:  # the package's own entries validate when called directly too
        calls.append(FEATURES[name])
    for call in calls:
        with pytest.raises(InputError, match="NaN"):
            call(p_original=bad, p_unlearned=pairs["p_unlearned"])
        with pytest.raises(InputError, match="shape"):
            call(p_original=pairs["p_original"][:-1], p_unlearned=pairs["p_unlearned"])
        with pytest.raises(InputError, match="sum to 1"):
            call(p_original=2 * pairs["p_original"] / 3, p_unlearned=pairs["p_unlearned"])


# ---------------------------------------------------------------------------------------------
# Output defences
# ---------------------------------------------------------------------------------------------


def _defence_spec(name: str) -> str:
    entry = DEFENCES[name]
    if entry.parameter is None:
        return name
    return f"{name}:{2 if entry.parameter_type is int else 2.0}"


@pytest.mark.parametrize("name", sorted(DEFENCES))
def test_defence_releases_probabilities_that_keep_the_prediction(name, planted_outputs):
    labels, logits, is_member = (planted_outputs[k] for k in ("labels", "logits", "is_member"))
    spec = _defence_spec(name)
    for given in ({"logits": logits}, {"probabilities": softmax(logits, axis=1)}):
        released = apply_defence(spec, **given)
        assert released.shape == logits.shape and np.all(np.isfinite(released))
        assert np.all((released >= 0) & (released <= 1))
        np.testing.assert_allclose(released.sum(axis=1), 1.0, atol=1e-9)
        np.testing.assert_array_equal(released.argmax(axis=1), logits.argmax(axis=1))
        np.testing.assert_array_equal(apply_defence(spec, **given), released)
        confidence = A.SIGNALS["confidence"](labels=labels, probabilities=released)
        assert confidence[is_member].mean() > confidence[~is_member].mean()
        assert _auc(confidence[is_member], confidence[~is_member]) > 0.8, spec


@pytest.mark.parametrize("name", sorted(DEFENCES))
def test_defence_refuses_bad_input(name, planted_outputs):
    logits = planted_outputs["logits"]
    spec = _defence_spec(name)
    bad = logits.copy()
    bad[1, 1] = np.inf
    with pytest.raises(InputError, match="NaN"):
        apply_defence(spec, logits=bad)
    with pytest.raises(InputError, match="shape"):
        apply_defence(spec, logits=logits[:, 0])
    with pytest.raises(InputError, match="exactly one"):
        apply_defence(spec, logits=logits, probabilities=softmax(logits, axis=1))
    if DEFENCES[name].parameter is not None:
        with pytest.raises(ConfigError, match="needs a value"):
            parse_defence(name)


# ---------------------------------------------------------------------------------------------
# MIA-U attack classifiers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_features() -> dict[str, np.ndarray]:
    """Positives shifted by 1.5 along two of four feature dimensions; even rows fit, odd rows test."""
    rng = np.random.default_rng(3)
    n = 600
    labels = (np.arange(n) % 4 < 2).astype(np.int64)
    features = rng.normal(0, 1, (n, 4))
    features[:, :2] += 1.5 * labels[:, None]
    return {"features": features, "labels": labels, "fit": np.arange(n) % 2 == 0}


def _fitted_classifier(name: str, features: np.ndarray, labels: np.ndarray) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(StandardScaler(), ATTACK_CLASSIFIERS[name](MIAUSpec(random_forest_trees=25)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # run_mia_u notes these, never raises
        return estimator.fit(features, labels)


def _member_probability(estimator: Any, features: np.ndarray) -> np.ndarray:
    proba = np.asarray(estimator.predict_proba(features), dtype=np.float64)
    return proba[:, list(estimator.classes_).index(1)]


@pytest.mark.parametrize("name", sorted(ATTACK_CLASSIFIERS))
def test_attack_classifier_finds_planted_members_on_held_out_rows(name, planted_features):
    X, y, fit = (planted_features[k] for k in ("features", "labels", "fit"))
    estimator = _fitted_classifier(name, X[fit], y[fit])
    p = _member_probability(estimator, X[~fit])
    assert p.shape == (int((~fit).sum()),) and np.all(np.isfinite(p))
    assert np.all((p >= 0) & (p <= 1))
    held_out = y[~fit].astype(bool)
    assert p[held_out].mean() > p[~held_out].mean()
    assert _auc(p[held_out], p[~held_out]) > 0.8, name
    again = _fitted_classifier(name, X[fit], y[fit])  # a fresh fit on the same rows
    np.testing.assert_array_equal(_member_probability(again, X[~fit]), p)


@pytest.mark.parametrize("name", sorted(ATTACK_CLASSIFIERS))
def test_attack_classifier_refuses_bad_input(name, planted_features):
    X, y, fit = (planted_features[k] for k in ("features", "labels", "fit"))
    bad = X[fit].copy()
    bad[0, 0] = np.nan
    try:
        tolerant = _fitted_classifier(name, bad, y[fit])
    except ValueError as exc:
        assert "NaN" in str(exc)
    else:  # scikit-learn's trees take missing values natively: the output must stay finite
        assert np.all(np.isfinite(_member_probability(tolerant, bad)))
    estimator = _fitted_classifier(name, X[fit], y[fit])
    with pytest.raises(ValueError, match="features"):
        estimator.predict_proba(X[~fit][:, :3])
