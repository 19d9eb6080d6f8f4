"""One rule for (X, y) everywhere: the shared checks, and the entry points that use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from certunlearn.data import make_dataset
from certunlearn.data_checks import as_class_labels, as_classification_data, as_features
from certunlearn.errors import InputError


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=30))
@settings(max_examples=50, deadline=None)
def test_integral_labels_are_the_same_in_any_dtype(labels: list[int]) -> None:
    expected = torch.tensor(labels, dtype=torch.int64)
    for dtype in (np.int32, np.int64, np.float32, np.float64):
        got = as_class_labels(np.asarray(labels, dtype=dtype), len(labels))
        assert got.dtype == torch.int64 and torch.equal(got, expected)


@pytest.mark.parametrize(("y", "message"), [
    (np.array([0.0, 0.7]), "0.7 is not an integer"),
    (np.array([0.0, np.nan]), "not an integer"),
    (np.array([0, -1]), ">= 0"),
    (np.array([True, False]), "integer class labels"),
    (np.array([0, 1, 2]), r"shape \(2,\)"),
    (np.zeros((2, 1), dtype=np.int64), r"shape \(2,\)"),
])
def test_bad_labels_are_refused_with_the_reason(y: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        as_class_labels(y, 2)


@pytest.mark.parametrize(("X", "message"), [
    (np.array([1.0, 2.0]), r"\[n, features"),
    (np.zeros((0, 3)), "no rows"),
    (np.array([[1.0, np.inf]]), "NaN or infinite"),
    (np.array([[1j]]), "real-valued"),
    (np.array([["a"]]), "numeric"),
])
def test_bad_features_are_refused_with_the_reason(X: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        as_features(X, name="X")


def test_names_appear_in_messages() -> None:
    with pytest.raises(InputError, match="y_audit"):
        as_classification_data(np.ones((2, 1)), [0.5, 1], names=("X_audit", "y_audit"))


def test_datasets_and_shadows_read_float_labels_alike() -> None:
    """An .npz that stores labels as floats is read the same by the dataset loader and the audits."""
    from certunlearn.audit.shadows import ShadowSpec, train_shadows

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    ds_int = make_dataset(X, y, test_fraction=0.25, seed=0)
    ds_float = make_dataset(X, y.astype(np.float64), test_fraction=0.25, seed=0)
    assert torch.equal(ds_int.y_train, ds_float.y_train)
    spec = ShadowSpec(model="logreg", n_shadows=2, training={"epochs": 1, "batch_size": 8, "lr": 0.5})
    a = train_shadows(spec, X, y)
    b = train_shadows(spec, X, y.astype(np.float64))
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
