"""Tests of the MIA-U features, output defences and DegCount/DegRate (certunlearn.audit.features).

Layers: hand examples against the direct formulas of Chen et al.'s table (ACM CCS 2021, as
reproduced in the features module docstring), shapes and the ascending sort order, hypothesis properties (class-permutation
invariance of the sorted features, defences keep rows on the simplex), defences applied to every
feature alike (label-only makes each feature a function of the two arg-maxes), DegCount/DegRate
hand cases, registries and input validation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import softmax

from certunlearn.audit.features import (
    CHEN_FEATURES,
    DEFENCES,
    FEATURES,
    apply_defence,
    basic,
    compute_features,
    deg_count,
    deg_rate,
    direct_concat,
    direct_diff,
    l2_distance,
    label_only,
    no_defence,
    parse_defence,
    register_defence,
    register_feature,
    sorted_concat,
    sorted_diff,
    temperature_scaling,
    top_k,
    true_label_confidences,
)
from certunlearn.errors import ConfigError, InputError

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, database=None)

P_O = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
P_U = np.array([[0.3, 0.3, 0.4], [0.1, 0.6, 0.3]])

logit_rows = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(2, 6)),
    elements=st.floats(-20, 20, allow_nan=False, allow_infinity=False),
)


def _posteriors(seed: int, n: int = 5, num_classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        softmax(rng.normal(0, 2, (n, num_classes)), axis=1),
        softmax(rng.normal(0, 2, (n, num_classes)), axis=1),
    )


# --------------------------------------------------------------------------- the six features


def test_direct_concat_hand_example() -> None:
    np.testing.assert_array_equal(
        direct_concat(p_original=P_O, p_unlearned=P_U),
        [[0.2, 0.7, 0.1, 0.3, 0.3, 0.4], [0.5, 0.25, 0.25, 0.1, 0.6, 0.3]],
    )


def test_sorted_concat_hand_example_uses_the_original_order_for_both() -> None:
    # row 0: argsort(p_o) ascending = [2, 0, 1]; row 1: [1, 2, 0] (tie 0.25/0.25 kept in column order)
    np.testing.assert_array_equal(
        sorted_concat(p_original=P_O, p_unlearned=P_U),
        [[0.1, 0.2, 0.7, 0.4, 0.3, 0.3], [0.25, 0.25, 0.5, 0.6, 0.3, 0.1]],
    )


def test_direct_and_sorted_diff_hand_examples() -> None:
    np.testing.assert_allclose(
        direct_diff(p_original=P_O, p_unlearned=P_U), [[-0.1, 0.4, -0.3], [0.4, -0.35, -0.05]]
    )
    np.testing.assert_allclose(
        sorted_diff(p_original=P_O, p_unlearned=P_U), [[-0.3, -0.1, 0.4], [-0.35, -0.05, 0.4]]
    )


def test_l2_distance_and_basic_hand_examples() -> None:
    expected = [[np.sqrt(0.01 + 0.16 + 0.09)], [np.sqrt(0.16 + 0.1225 + 0.0025)]]
    np.testing.assert_allclose(l2_distance(p_original=P_O, p_unlearned=P_U), expected, rtol=1e-15)
    np.testing.assert_array_equal(basic(p_original=P_O, p_unlearned=P_U), P_O)


@pytest.mark.parametrize(
    ("name", "width"),
    [("direct_concat", 8), ("sorted_concat", 8), ("direct_diff", 4), ("sorted_diff", 4),
     ("l2_distance", 1), ("basic", 4)],
)
def test_feature_shapes(name: str, width: int) -> None:
    p_o, p_u = _posteriors(0, n=5, num_classes=4)
    out = compute_features(name, p_original=p_o, p_unlearned=p_u)
    assert out.shape == (5, width)
    assert out.dtype == np.float64


def test_registry_holds_exactly_chens_six_features_by_default() -> None:
    assert set(CHEN_FEATURES) <= set(FEATURES)
    assert len(CHEN_FEATURES) == 6


def test_sorted_features_relations_to_direct_ones() -> None:
    p_o, p_u = _posteriors(1, n=7, num_classes=5)
    concat = sorted_concat(p_original=p_o, p_unlearned=p_u)
    assert np.all(np.diff(concat[:, :5], axis=1) >= 0)  # ascending in p_o
    np.testing.assert_allclose(
        sorted_diff(p_original=p_o, p_unlearned=p_u), concat[:, :5] - concat[:, 5:], atol=0
    )
    np.testing.assert_allclose(
        l2_distance(p_original=p_o, p_unlearned=p_u)[:, 0],
        np.linalg.norm(direct_diff(p_original=p_o, p_unlearned=p_u), axis=1),
    )
    loops = np.array([[row_o[i] - row_u[i] for i in np.argsort(row_o, kind="stable")]
                      for row_o, row_u in zip(p_o, p_u, strict=True)])
    np.testing.assert_array_equal(sorted_diff(p_original=p_o, p_unlearned=p_u), loops)


@PROPERTY_SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_sorted_features_invariant_to_relabelling_classes(seed: int) -> None:
    p_o, p_u = _posteriors(seed, n=4, num_classes=5)
    permutation = np.random.default_rng(seed).permutation(5)
    for name in ("sorted_concat", "sorted_diff", "l2_distance"):
        np.testing.assert_allclose(
            compute_features(name, p_original=p_o[:, permutation], p_unlearned=p_u[:, permutation]),
            compute_features(name, p_original=p_o, p_unlearned=p_u),
            atol=1e-15,
        )


def test_identical_posteriors_give_zero_differences() -> None:
    p_o, _ = _posteriors(2)
    for name in ("direct_diff", "sorted_diff", "l2_distance"):
        assert np.all(compute_features(name, p_original=p_o, p_unlearned=p_o) == 0.0)


# --------------------------------------------------------------------------- defences


def test_no_defence_is_softmax_of_logits() -> None:
    logits = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(no_defence(logits=logits), softmax(logits, axis=1))
    np.testing.assert_array_equal(no_defence(probabilities=P_O), P_O)


def test_top_k_keeps_the_largest_and_spreads_the_rest() -> None:
    p = np.array([[0.05, 0.5, 0.3, 0.15], [0.25, 0.25, 0.25, 0.25]])
    out = top_k(probabilities=p, k=2)
    np.testing.assert_allclose(out[0], [0.1, 0.5, 0.3, 0.1])
    np.testing.assert_allclose(out[1], [0.25, 0.25, 0.25, 0.25])  # ties: first columns kept
    np.testing.assert_array_equal(top_k(probabilities=p, k=4), p)
    np.testing.assert_array_equal(top_k(probabilities=p, k=9), p)


def test_label_only_is_one_hot_argmax_and_temperature_rescales_logits() -> None:
    logits = np.array([[0.0, 2.0, 1.0], [5.0, 5.0, 0.0]])
    np.testing.assert_array_equal(label_only(logits=logits), [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_allclose(
        temperature_scaling(logits=logits, temperature=3.0), softmax(logits / 3.0, axis=1)
    )
    np.testing.assert_allclose(
        temperature_scaling(probabilities=softmax(logits, axis=1), temperature=3.0),
        softmax(logits / 3.0, axis=1),
        rtol=1e-12,
    )
    np.testing.assert_allclose(temperature_scaling(logits=logits, temperature=1.0), softmax(logits, axis=1))


@PROPERTY_SETTINGS
@given(logit_rows, st.sampled_from(["none", "top_k:1", "top_k:2", "label_only", "temperature:0.5",
                                    "temperature:4"]))
def test_defences_return_probabilities_and_keep_the_argmax(logits: np.ndarray, spec: str) -> None:
    out = apply_defence(spec, logits=logits)
    assert out.shape == logits.shape
    assert np.all(out >= 0) and np.all(out <= 1)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
    # the arg-max of the logits (softmax is monotone; its rounding can tie logits 0 and 1e-35)
    top = np.argmax(logits, axis=1)
    assert np.all(out[np.arange(len(out)), top] >= out.max(axis=1) - 1e-12)


def test_label_only_makes_every_feature_a_function_of_the_argmaxes() -> None:
    # two very different output pairs with the same arg-maxes (original: class 1, unlearned: class 2)
    first_o, first_u = np.array([[0.1, 9.0, 0.0, -3.0]]), np.array([[0.0, 1.0, 1.5, 0.2]])
    second_o, second_u = np.array([[2.0, 2.1, -5.0, 1.0]]), np.array([[-1.0, -2.0, 7.0, 6.9]])
    for name in CHEN_FEATURES:
        features = [
            compute_features(
                name,
                p_original=apply_defence("label_only", logits=o),
                p_unlearned=apply_defence("label_only", logits=u),
            )
            for o, u in ((first_o, first_u), (second_o, second_u))
        ]
        np.testing.assert_array_equal(features[0], features[1], err_msg=name)
    # without the defence they differ for every feature
    for name in CHEN_FEATURES:
        plain = [
            compute_features(name, p_original=softmax(o, axis=1), p_unlearned=softmax(u, axis=1))
            for o, u in ((first_o, first_u), (second_o, second_u))
        ]
        assert not np.array_equal(plain[0], plain[1]), name


@pytest.mark.parametrize("spec", ["top_k:1", "temperature:5", "label_only"])
def test_defences_act_on_every_feature_including_direct_concat(spec: str) -> None:
    logits_o, logits_u = np.random.default_rng(3).normal(0, 3, (2, 6, 4))
    p_o, p_u = apply_defence(spec, logits=logits_o), apply_defence(spec, logits=logits_u)
    np.testing.assert_array_equal(
        compute_features("direct_concat", p_original=p_o, p_unlearned=p_u),
        np.concatenate([p_o, p_u], axis=1),
    )
    undefended = compute_features(
        "direct_concat", p_original=softmax(logits_o, axis=1), p_unlearned=softmax(logits_u, axis=1)
    )
    assert not np.allclose(undefended, np.concatenate([p_o, p_u], axis=1))


def test_parse_defence_accepts_and_rejects() -> None:
    assert parse_defence("none") == ("none", None)
    assert parse_defence("temperature:2.5") == ("temperature", 2.5)
    assert parse_defence("top_k:3") == ("top_k", 3)
    assert sorted(DEFENCES) == ["label_only", "none", "temperature", "top_k"]
    with pytest.raises(ConfigError, match=r"unknown defence 'dp'.*\['label_only', 'none'"):
        parse_defence("dp")
    with pytest.raises(ConfigError, match="needs a value for k"):
        parse_defence("top_k")
    with pytest.raises(ConfigError, match="takes no parameter"):
        parse_defence("label_only:1")
    with pytest.raises(ConfigError, match="k must be int"):
        parse_defence("top_k:1.5")
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        parse_defence("temperature:-1")
    with pytest.raises(ConfigError, match="must be a string"):
        parse_defence(3)  # type: ignore[arg-type]


def test_defence_input_validation() -> None:
    with pytest.raises(InputError, match="exactly one"):
        apply_defence("none")
    with pytest.raises(InputError, match="exactly one"):
        apply_defence("none", logits=P_O, probabilities=P_O)
    with pytest.raises(InputError, match="sum to 1"):
        apply_defence("none", probabilities=[[0.5, 0.6]])
    with pytest.raises(InputError, match="NaN"):
        apply_defence("none", logits=[[np.nan, 0.0]])
    with pytest.raises(InputError, match="at least 2 classes"):
        apply_defence("none", logits=[[1.0]])


def test_register_defence_and_feature_refuse_collisions_and_allow_force() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_defence("top_k", top_k, parameter="k", parameter_type=int)
    with pytest.raises(ConfigError, match="without ':'"):
        register_defence("a:b", no_defence)
    with pytest.raises(ConfigError, match="already registered"):
        register_feature("l2_distance", l2_distance)

    def bad(*, p_original: np.ndarray, p_unlearned: np.ndarray) -> np.ndarray:
        return p_original[:, 0]  # 1-D: not [n, d]

    register_feature("_test_bad", bad)
    try:
        with pytest.raises(InputError, match="must return an array"):
            compute_features("_test_bad", p_original=P_O, p_unlearned=P_U)
        register_feature("_test_bad", basic, force=True)
        np.testing.assert_array_equal(compute_features("_test_bad", p_original=P_O, p_unlearned=P_U), P_O)
    finally:
        FEATURES.pop("_test_bad")


@pytest.mark.parametrize(
    ("p_original", "p_unlearned", "message"),
    [
        (P_O, P_U[:1], "same shape"),
        (P_O[0], P_U[0], r"shape \[n, num_classes\]"),
        (P_O, P_U * 2, "must lie in"),
        (P_O, P_U * 0.5, "sum to 1"),
        (P_O, np.where(P_U == 0.3, np.nan, P_U), "NaN"),
        (P_O.astype(bool), P_U, "real-valued"),
    ],
)
def test_feature_input_validation(p_original: object, p_unlearned: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        compute_features("direct_diff", p_original=p_original, p_unlearned=p_unlearned)


def test_unknown_feature_lists_the_registry() -> None:
    with pytest.raises(ConfigError, match=r"unknown feature 'loss'.*'basic'"):
        compute_features("loss", p_original=P_O, p_unlearned=P_U)


# --------------------------------------------------------------------------- DegCount / DegRate


def test_deg_count_and_rate_hand_cases() -> None:
    c_f, c_b = [0.9, 0.4, 0.5, 0.75], [0.6, 0.5, 0.5, 0.25]
    assert deg_count(feature_confidences=c_f, basic_confidences=c_b) == 0.5  # the tie is not "better"
    assert deg_rate(feature_confidences=c_f, basic_confidences=c_b) == pytest.approx(
        (0.3 - 0.1 + 0.0 + 0.5) / 4
    )
    same = [0.2, 0.8]
    assert deg_count(feature_confidences=same, basic_confidences=same) == 0.0
    assert deg_rate(feature_confidences=same, basic_confidences=same) == 0.0
    assert deg_count(feature_confidences=[1.0, 1.0], basic_confidences=[0.0, 0.0]) == 1.0
    assert deg_rate(feature_confidences=[0.0], basic_confidences=[1.0]) == -1.0


def test_true_label_confidences() -> None:
    out = true_label_confidences(member_probabilities=[0.9, 0.9, 0.2], is_member=[True, False, False])
    np.testing.assert_allclose(out, [0.9, 0.1, 0.8])
    with pytest.raises(InputError, match="0/1"):
        true_label_confidences(member_probabilities=[0.5], is_member=[2])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        true_label_confidences(member_probabilities=[1.5], is_member=[1])
    with pytest.raises(InputError, match="same length"):
        true_label_confidences(member_probabilities=[0.5, 0.5], is_member=[1])


@pytest.mark.parametrize(
    ("c_f", "c_b", "message"),
    [([0.5], [0.5, 0.5], "same"), ([], [], "non-empty"), ([1.5], [0.5], r"\[0, 1\]"),
     ([np.nan], [0.5], "NaN")],
)
def test_deg_input_validation(c_f: list[float], c_b: list[float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        deg_count(feature_confidences=c_f, basic_confidences=c_b)
    with pytest.raises(InputError, match=message):
        deg_rate(feature_confidences=c_f, basic_confidences=c_b)
