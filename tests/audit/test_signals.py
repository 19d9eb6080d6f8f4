"""Tests of the membership signals (certunlearn.audit.signals).

Layers: direct formulas on a naive float64 softmax, an mpmath reference at
extreme logits, hypothesis properties (finite LiRA logit, loss >= 0, monotone relations), the
registry's sign convention (higher = member) and input validation.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from certunlearn.audit.signals import (
    PROBABILITY_FLOOR,
    SIGNALS,
    confidence,
    lira_logit,
    loss,
    membership_scores,
    modified_entropy,
    register_signal,
)
from certunlearn.errors import ConfigError, InputError

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, database=None)
LOG_FLOOR = math.log(PROBABILITY_FLOOR)


def naive_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def naive_signals(p: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The signals' formulas (loss, p_y, LiRA's φ of Carlini et al. 2022, Song & Mittal's Mentr)
    written out per row with Python loops."""
    out: dict[str, list[float]] = {"loss": [], "confidence": [], "lira": [], "mentr": []}
    for row, label in zip(p, y, strict=True):
        p_y = row[label]
        rest = sum(row[i] for i in range(row.size) if i != label)
        out["loss"].append(-math.log(p_y))
        out["confidence"].append(p_y)
        out["lira"].append(math.log(p_y) - math.log(rest))
        out["mentr"].append(
            -(1 - p_y) * math.log(p_y)
            - sum(row[i] * math.log(1 - row[i]) for i in range(row.size) if i != label)
        )
    return {key: np.array(values) for key, values in out.items()}


@pytest.fixture
def moderate() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 3.0, size=(40, 5))
    labels = rng.integers(0, 5, size=40)
    return logits, labels


# ---------------------------------------------------------------------------------------------
# Direct formulas
# ---------------------------------------------------------------------------------------------


def test_signals_match_direct_formulas_from_logits(moderate):
    logits, labels = moderate
    expected = naive_signals(naive_softmax(logits), labels)
    np.testing.assert_allclose(
        loss(logits=logits, labels=labels), expected["loss"], rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        confidence(logits=logits, labels=labels), expected["confidence"], rtol=1e-12
    )
    np.testing.assert_allclose(
        lira_logit(logits=logits, labels=labels), expected["lira"], rtol=1e-11, atol=1e-12
    )
    np.testing.assert_allclose(
        modified_entropy(logits=logits, labels=labels), expected["mentr"], rtol=1e-10, atol=1e-13
    )


def test_signals_match_direct_formulas_from_probabilities(moderate):
    logits, labels = moderate
    p = naive_softmax(logits)
    expected = naive_signals(p, labels)
    np.testing.assert_allclose(
        loss(probabilities=p, labels=labels), expected["loss"], rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        lira_logit(probabilities=p, labels=labels), expected["lira"], rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        modified_entropy(probabilities=p, labels=labels), expected["mentr"], rtol=1e-10, atol=1e-13
    )


def test_hand_values():
    # p = (0.7, 0.2, 0.1), y = 0: L = −ln 0.7, φ = ln 0.7 − ln 0.3,
    # Mentr = −0.3 ln 0.7 − 0.2 ln 0.8 − 0.1 ln 0.9.
    p = np.array([[0.7, 0.2, 0.1]])
    y = np.array([0])
    assert loss(probabilities=p, labels=y)[0] == pytest.approx(-math.log(0.7), rel=1e-14)
    assert lira_logit(probabilities=p, labels=y)[0] == pytest.approx(math.log(0.7 / 0.3), rel=1e-14)
    mentr = -0.3 * math.log(0.7) - 0.2 * math.log(0.8) - 0.1 * math.log(0.9)
    assert modified_entropy(probabilities=p, labels=y)[0] == pytest.approx(mentr, rel=1e-14)


def test_extreme_logits_against_mpmath():
    """φ and Mentr at logits whose naive softmax underflows, against 50-digit mpmath."""
    logits = np.array([[60.0, 0.0, -5.0], [0.0, 80.0, 79.0], [-700.0, 700.0, 0.0]])
    labels = np.array([0, 0, 1])

    def reference(row: np.ndarray, label: int) -> tuple[float, float]:
        with mp.workdps(50):
            z = [mp.mpf(float(v)) for v in row]
            total = mp.fsum(mp.exp(v) for v in z)
            p = [mp.exp(v) / total for v in z]
            floor = mp.mpf(PROBABILITY_FLOOR)
            rest = mp.fsum(p[i] for i in range(len(p)) if i != label)
            phi = mp.log(max(p[label], floor)) - mp.log(max(rest, floor))
            mentr = -(1 - p[label]) * mp.log(max(p[label], floor)) - mp.fsum(
                p[i] * mp.log(max(1 - p[i], floor)) for i in range(len(p)) if i != label
            )
            return float(phi), float(mentr)

    phis = lira_logit(logits=logits, labels=labels)
    mentrs = modified_entropy(logits=logits, labels=labels)
    for i in range(3):
        phi, mentr = reference(logits[i], int(labels[i]))
        assert phis[i] == pytest.approx(phi, rel=1e-12, abs=1e-12)
        assert mentrs[i] == pytest.approx(mentr, rel=1e-10, abs=1e-300)
    # logits [0, 80, 79], y = 0: a confident wrong prediction; Mentr ≈ 80·(1 − p_0) + Σ ≈ large
    assert mentrs[1] > 70.0


def test_floor_saturates_and_matches_between_input_kinds():
    logits = np.array([[2000.0, 0.0], [0.0, 2000.0]])
    labels = np.array([0, 0])
    phi = lira_logit(logits=logits, labels=labels)
    assert phi[0] == pytest.approx(-LOG_FLOOR, rel=1e-15)
    assert phi[1] == pytest.approx(LOG_FLOOR, rel=1e-15)
    assert loss(logits=logits, labels=labels)[1] == pytest.approx(-LOG_FLOOR, rel=1e-15)
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(lira_logit(probabilities=p, labels=labels), phi, rtol=1e-15)
    np.testing.assert_allclose(
        loss(probabilities=p, labels=labels), loss(logits=logits, labels=labels)
    )


def test_integer_logits_and_empty_input():
    assert loss(logits=np.array([[1, 1]]), labels=np.array([0]))[0] == pytest.approx(math.log(2))
    empty = loss(logits=np.zeros((0, 3)), labels=np.zeros(0, dtype=np.int64))
    assert empty.shape == (0,)


# ---------------------------------------------------------------------------------------------
# Registry and convention
# ---------------------------------------------------------------------------------------------


def test_registry_scores_are_higher_for_members(moderate):
    logits, labels = moderate
    assert sorted(SIGNALS) == ["confidence", "lira_logit", "loss", "mentr"]
    np.testing.assert_array_equal(
        membership_scores("loss", logits=logits, labels=labels), -loss(logits=logits, labels=labels)
    )
    np.testing.assert_array_equal(
        membership_scores("mentr", logits=logits, labels=labels),
        -modified_entropy(logits=logits, labels=labels),
    )
    np.testing.assert_array_equal(
        membership_scores("confidence", logits=logits, labels=labels),
        confidence(logits=logits, labels=labels),
    )
    # A sharper correct prediction (more "member-like") scores higher under every signal.
    sharp = np.array([[6.0, 0.0, 0.0]])
    flat = np.array([[1.0, 0.0, 0.0]])
    y = np.array([0])
    for name in SIGNALS:
        assert (
            membership_scores(name, logits=sharp, labels=y)[0]
            > membership_scores(name, logits=flat, labels=y)[0]
        )


def test_registry_collision_force_and_unknown():
    with pytest.raises(ConfigError, match="already registered"):
        register_signal("loss", SIGNALS["loss"])
    original = SIGNALS["loss"]
    try:
        register_signal("loss", original, force=True)
        register_signal("neg_confidence_test", lambda **kw: -confidence(**kw))
        assert "neg_confidence_test" in SIGNALS
    finally:
        SIGNALS.pop("neg_confidence_test", None)
        SIGNALS["loss"] = original
    with pytest.raises(ConfigError, match=r"\['confidence', 'lira_logit', 'loss', 'mentr'\]"):
        membership_scores("entropy", logits=np.zeros((1, 2)), labels=np.array([0]))


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"logits": np.zeros((3, 2)), "labels": np.array([0, 1])}, "shape"),
        ({"logits": np.zeros(3), "labels": np.array([0, 1, 0])}, "shape"),
        ({"logits": np.zeros((3, 1)), "labels": np.array([0, 0, 0])}, "at least 2 classes"),
        ({"logits": np.array([[0.0, np.nan]]), "labels": np.array([0])}, "NaN"),
        ({"logits": np.array([[0.0, np.inf]]), "labels": np.array([0])}, "infinite"),
        ({"logits": np.zeros((2, 3)), "labels": np.array([0, 3])}, r"\[0, 2\]"),
        ({"logits": np.zeros((2, 3)), "labels": np.array([-1, 0])}, r"\[0, 2\]"),
        ({"logits": np.zeros((2, 3)), "labels": np.array([0.0, 1.0])}, "integer"),
        ({"logits": np.zeros((2, 3)), "labels": np.array([True, False])}, "integer"),
        ({"logits": np.array([["a", "b"]]), "labels": np.array([0])}, "real-valued"),
        ({"labels": np.array([0])}, "exactly one"),
        (
            {
                "logits": np.zeros((1, 2)),
                "probabilities": np.full((1, 2), 0.5),
                "labels": np.array([0]),
            },
            "exactly one",
        ),
        ({"probabilities": np.array([[0.5, 0.6]]), "labels": np.array([0])}, "sum to 1"),
        ({"probabilities": np.array([[1.5, -0.5]]), "labels": np.array([0])}, r"\[0, 1\]"),
    ],
)
def test_input_validation(kwargs, match):
    with pytest.raises(InputError, match=match):
        loss(**kwargs)


# ---------------------------------------------------------------------------------------------
# Hypothesis properties
# ---------------------------------------------------------------------------------------------

extreme_logits = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(2, 6)),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)


@PROPERTY_SETTINGS
@given(logits=extreme_logits, data=st.data())
def test_signals_are_finite_and_in_range_for_extreme_logits(logits, data):
    n, c = logits.shape
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    phi = lira_logit(logits=logits, labels=labels)
    ell = loss(logits=logits, labels=labels)
    conf = confidence(logits=logits, labels=labels)
    mentr = modified_entropy(logits=logits, labels=labels)
    for values in (phi, ell, conf, mentr):
        assert np.all(np.isfinite(values))
    assert np.all(np.abs(phi) <= -LOG_FLOOR * (1 + 1e-15))
    assert np.all(ell >= 0.0) and np.all(ell <= -LOG_FLOOR * (1 + 1e-15))
    assert np.all(mentr >= 0.0)
    np.testing.assert_allclose(conf, np.exp(-ell), rtol=1e-15)


@PROPERTY_SETTINGS
@given(
    base=hnp.arrays(np.float64, 4, elements=st.floats(-30, 30)),
    label=st.integers(0, 3),
    bump=st.floats(0.01, 20),
)
def test_raising_the_true_logit_is_more_member_like(base, label, bump):
    raised = base.copy()
    raised[label] += bump
    both = np.stack([base, raised])
    y = np.array([label, label])
    conf = confidence(logits=both, labels=y)
    phi = lira_logit(logits=both, labels=y)
    ell = loss(logits=both, labels=y)
    assert conf[1] >= conf[0] and phi[1] > phi[0] and ell[1] <= ell[0]
    # Without saturation φ = z_y − log Σ_{i≠y} e^{z_i} (the logit of p_y).
    others = np.log(np.sum(np.exp(np.delete(both, label, axis=1)), axis=1))
    np.testing.assert_allclose(phi, both[:, label] - others, rtol=1e-12, atol=1e-12)


@PROPERTY_SETTINGS
@given(p=st.floats(1e-6, 1 - 1e-6), flip=st.booleans())
def test_binary_modified_entropy_closed_form(p, flip):
    """For C = 2, Mentr = −2(1 − p_y) log p_y, decreasing in p_y."""
    row = np.array([[p, 1 - p]]) if not flip else np.array([[1 - p, p]])
    label = np.array([0 if not flip else 1])
    value = modified_entropy(probabilities=row, labels=label)[0]
    assert value == pytest.approx(-2 * (1 - p) * math.log(p), rel=1e-9, abs=1e-15)
    higher = min(p + 1e-3, 1 - 1e-7)
    row2 = np.array([[higher, 1 - higher]]) if not flip else np.array([[1 - higher, higher]])
    assert modified_entropy(probabilities=row2, labels=label)[0] <= value


@PROPERTY_SETTINGS
@given(logits=hnp.arrays(np.float64, (3, 4), elements=st.floats(-40, 40)), data=st.data())
def test_logits_and_probabilities_agree(logits, data):
    labels = np.array(data.draw(st.lists(st.integers(0, 3), min_size=3, max_size=3)))
    p = naive_softmax(logits)
    for name in SIGNALS:
        a = membership_scores(name, logits=logits, labels=labels)
        b = membership_scores(name, probabilities=p, labels=labels)
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
