"""Tests of certunlearn.data: embedded datasets, seeded splits, ids, standardisation, clipping, files."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from certunlearn.data import DATASETS, Dataset, clip_rows, load_dataset, load_file, make_dataset
from certunlearn.errors import ConfigError, InputError

# (rows, features, classes) of the scikit-learn bundled copies (sklearn.datasets documentation).
EMBEDDED = {"wine": (178, 13, 3), "breast_cancer": (569, 30, 2), "digits": (1797, 64, 10)}


def _raw(
    n: int = 40, features: int = 3, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=2.0, scale=3.0, size=(n, features))
    y = np.arange(n) % classes
    return X, y


def _assert_same_dataset(a: Dataset, b: Dataset) -> None:
    for field in ("X_train", "y_train", "X_test", "y_test", "source_index"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.num_classes == b.num_classes
    assert a.feature_norm_bound == b.feature_norm_bound


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---------------------------------------------------------------------------------------------
# Embedded datasets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_dataset_loads_without_network(name: str, no_network: None) -> None:
    rows, features, classes = EMBEDDED[name]
    ds = load_dataset(name, seed=0)
    n_test = int(np.floor(0.2 * rows))
    assert ds.n_train == rows - n_test
    assert ds.X_test.shape == (n_test, features)
    assert ds.num_features == features
    assert ds.num_classes == classes
    assert ds.X_train.dtype == torch.float64 and ds.y_train.dtype == torch.int64
    assert ds.name == name


def test_embedded_split_is_deterministic_and_seed_dependent() -> None:
    a, b = load_dataset("wine", seed=3), load_dataset("wine", seed=3)
    _assert_same_dataset(a, b)
    c = load_dataset("wine", seed=4)
    assert not torch.equal(a.source_index, c.source_index)
    assert not torch.equal(a.X_train, c.X_train)


def test_ids_and_source_index() -> None:
    X, y = DATASETS["wine"]()
    ds = load_dataset("wine", seed=5, standardize=False)
    assert torch.equal(ds.ids, torch.arange(ds.n_train))
    source = ds.source_index
    assert source.dtype == torch.int64 and source.shape == (ds.n_train,)
    assert len(set(source.tolist())) == ds.n_train  # no repeats
    assert int(source.min()) >= 0 and int(source.max()) < len(X)  # a subset of the source rows
    # Row i of X_train is source row source_index[i] (no standardisation here).
    assert torch.equal(ds.X_train, torch.as_tensor(X)[source])
    assert torch.equal(ds.y_train, torch.as_tensor(y, dtype=torch.int64)[source])
    # The test rows are exactly the source rows that are not training rows.
    test_rows = sorted(set(range(len(X))) - set(source.tolist()))
    assert len(test_rows) == ds.X_test.shape[0]
    expected_test = {tuple(r) for r in X[test_rows].tolist()}
    assert {tuple(r) for r in ds.X_test.tolist()} == expected_test


# ---------------------------------------------------------------------------------------------
# make_dataset: standardisation, clipping, dtype
# ---------------------------------------------------------------------------------------------


def test_standardisation_uses_training_statistics_only() -> None:
    X, y = _raw(n=50, seed=1)
    raw = make_dataset(X, y, seed=2, standardize=False)
    ds = make_dataset(X, y, seed=2)
    train = X[raw.source_index.numpy()]
    mean, std = train.mean(axis=0), train.std(axis=0)  # population std (ddof = 0)
    np.testing.assert_allclose(ds.X_train.numpy(), (train - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        ds.X_test.numpy(), (raw.X_test.numpy() - mean) / std, rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(ds.X_train.numpy().mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.X_train.numpy().std(axis=0), 1.0, rtol=1e-12)


def test_standardisation_ignores_explicit_test_set() -> None:
    X, y = _raw(n=30, seed=2)
    far_away = X[:5] + 1000.0
    ds = make_dataset(X, y, X_test=far_away, y_test=y[:5])
    mean, std = X.mean(axis=0), X.std(axis=0)
    np.testing.assert_allclose(ds.X_train.numpy(), (X - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds.X_test.numpy(), (far_away - mean) / std, rtol=1e-12)
    assert torch.equal(ds.source_index, torch.arange(30))


def test_constant_feature_is_centred_not_divided_by_zero() -> None:
    X, y = _raw(n=20, seed=3)
    X[:, 1] = 7.0
    ds = make_dataset(X, y, test_fraction=0.25)
    assert torch.isfinite(ds.X_train).all() and torch.isfinite(ds.X_test).all()
    assert torch.equal(ds.X_train[:, 1], torch.zeros(15, dtype=torch.float64))


@pytest.mark.parametrize("clip_norm", [0.5, 2.0])
def test_clip_norm_bounds_every_row(clip_norm: float) -> None:
    X, y = _raw(n=60, features=4, seed=4)
    unclipped = make_dataset(X, y, seed=1)
    ds = make_dataset(X, y, seed=1, clip_norm=clip_norm)
    assert ds.feature_norm_bound == clip_norm
    assert unclipped.feature_norm_bound is None
    for clipped, original in ((ds.X_train, unclipped.X_train), (ds.X_test, unclipped.X_test)):
        norms = clipped.norm(dim=1)
        assert bool((norms <= clip_norm * (1 + 1e-12)).all())
        long_rows = original.norm(dim=1) > clip_norm
        assert bool(long_rows.any()), "the test needs rows to clip"
        # Long rows keep their direction and land on the bound; short rows are untouched.
        torch.testing.assert_close(
            norms[long_rows], torch.full_like(norms[long_rows], clip_norm), rtol=1e-12, atol=0.0
        )
        direction = original[long_rows] / original[long_rows].norm(dim=1, keepdim=True)
        torch.testing.assert_close(
            clipped[long_rows], clip_norm * direction, rtol=1e-12, atol=1e-12
        )
        assert torch.equal(clipped[~long_rows], original[~long_rows])


def test_clip_rows_rejects_bad_bound() -> None:
    with pytest.raises(ConfigError, match="max_norm"):
        clip_rows(torch.ones(2, 2), 0.0)
    assert torch.equal(clip_rows(torch.zeros(2, 2), 1.0), torch.zeros(2, 2))


def test_dtype_is_respected() -> None:
    X, y = _raw(n=10)
    assert make_dataset(X, y, dtype=torch.float32).X_train.dtype == torch.float32


def test_integral_float_labels_are_accepted() -> None:
    X, y = _raw(n=10, classes=2)
    ds = make_dataset(X, y.astype(np.float64), test_fraction=0.0)
    assert ds.y_train.dtype == torch.int64
    assert torch.equal(ds.y_train, torch.as_tensor(y, dtype=torch.int64)[ds.source_index])


# ---------------------------------------------------------------------------------------------
# make_dataset / Dataset: bad inputs
# ---------------------------------------------------------------------------------------------


def _bad_inputs() -> list[tuple[str, dict[str, object]]]:
    X, y = _raw(n=10, classes=2)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    X_inf = X.copy()
    X_inf[0, 0] = np.inf
    return [
        ("nan", {"X": X_nan, "y": y}),
        ("inf", {"X": X_inf, "y": y}),
        ("short_y", {"X": X, "y": y[:-1]}),
        ("2d_y", {"X": X, "y": y.reshape(5, 2)}),
        ("fractional_labels", {"X": X, "y": y + 0.5}),
        ("nan_labels", {"X": X, "y": np.where(y == 0, np.nan, 1.0)}),
        ("negative_labels", {"X": X, "y": y - 1}),
        ("no_rows", {"X": np.zeros((0, 3)), "y": np.zeros(0, dtype=np.int64)}),
        ("x_test_without_y_test", {"X": X, "y": y, "X_test": X}),
        ("y_test_without_x_test", {"X": X, "y": y, "y_test": y}),
        ("test_feature_mismatch", {"X": X, "y": y, "X_test": X[:, :2], "y_test": y}),
        ("test_label_count_mismatch", {"X": X, "y": y, "X_test": X, "y_test": y[:-2]}),
        ("test_nan", {"X": X, "y": y, "X_test": X_nan, "y_test": y}),
        ("test_negative_labels", {"X": X, "y": y, "X_test": X, "y_test": y - 1}),
    ]


@pytest.mark.parametrize(("case", "kwargs"), _bad_inputs(), ids=[c for c, _ in _bad_inputs()])
def test_make_dataset_rejects_bad_input(case: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        make_dataset(**kwargs)  # type: ignore[arg-type]


def test_make_dataset_rejects_fractional_test_labels() -> None:
    """Explicit test labels must be integers too: 0.7 must not silently become class 0."""
    X, y = _raw(n=10, classes=2)
    with pytest.raises(InputError):
        make_dataset(X, y, X_test=X[:2], y_test=np.array([0.7, 1.2]))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"test_fraction": float("nan")}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"clip_norm": 0.0}, "clip_norm"),
    ],
)
def test_make_dataset_rejects_bad_config(kwargs: dict[str, object], field: str) -> None:
    X, y = _raw(n=10)
    with pytest.raises(ConfigError, match=field):
        make_dataset(X, y, **kwargs)  # type: ignore[arg-type]


def test_dataset_post_init_validates() -> None:
    X = torch.zeros(4, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1])
    good = {"X_test": X, "y_test": y, "num_classes": 2, "source_index": torch.arange(4)}
    Dataset("ok", X, y, **good)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        Dataset("label_too_big", X, torch.tensor([0, 1, 2, 1]), **good)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        Dataset("nan", X.clone().fill_(float("nan")), y, **good)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        Dataset("3d", X.reshape(4, 2, 1), y, **good)  # type: ignore[arg-type]


def test_unknown_dataset_name() -> None:
    with pytest.raises(ConfigError, match="'no_such_dataset'"):
        load_dataset("no_such_dataset")
    with pytest.raises(ConfigError, match="data.csv"):
        load_dataset("data.csv")


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def test_npz_round_trip(tmp_path: Path) -> None:
    X, y = _raw(n=25, seed=6)
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=y)
    expected = make_dataset(X, y, seed=9, clip_norm=1.5)
    _assert_same_dataset(load_file(path, seed=9, clip_norm=1.5), expected)
    _assert_same_dataset(load_dataset(str(path), seed=9, clip_norm=1.5), expected)
    assert load_file(path).name == "data.npz"


def test_pt_round_trip(tmp_path: Path) -> None:
    X, y = _raw(n=25, seed=7)
    path = tmp_path / "data.pt"
    torch.save({"X": torch.as_tensor(X), "y": torch.as_tensor(y)}, path)
    _assert_same_dataset(load_file(path, seed=2), make_dataset(X, y, seed=2))
    _assert_same_dataset(load_dataset(str(path), seed=2), make_dataset(X, y, seed=2))


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_file_with_explicit_test_split(tmp_path: Path, suffix: str) -> None:
    X, y = _raw(n=20, seed=8)
    arrays = {"X": X[:15], "y": y[:15], "X_test": X[15:], "y_test": y[15:]}
    path = tmp_path / f"split{suffix}"
    if suffix == ".npz":
        np.savez(path, **arrays)
    else:
        torch.save({k: torch.as_tensor(v) for k, v in arrays.items()}, path)
    ds = load_file(path, standardize=False)
    assert torch.equal(ds.X_train, torch.as_tensor(X[:15]))
    assert torch.equal(ds.X_test, torch.as_tensor(X[15:]))
    assert torch.equal(ds.y_test, torch.as_tensor(y[15:], dtype=torch.int64))


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_corrupt_file_gives_input_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="cannot read"):
        load_file(path)


def test_truncated_npz_gives_input_error(tmp_path: Path) -> None:
    X, y = _raw(n=25)
    good = tmp_path / "good.npz"
    np.savez(good, X=X, y=y)
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError):
        load_file(bad)


def test_pt_that_is_not_a_dict_gives_input_error(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3, 2), path)
    with pytest.raises(InputError):
        load_file(path)


class _NotATensor:
    pass


def test_pt_with_arbitrary_objects_is_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "pickle.pt"
    torch.save({"X": _NotATensor(), "y": torch.zeros(2)}, path)
    with pytest.raises(InputError):
        load_file(path)


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_unknown_key_in_file_is_refused(tmp_path: Path, suffix: str) -> None:
    X, y = _raw(n=10)
    path = tmp_path / f"extra{suffix}"
    if suffix == ".npz":
        np.savez(path, X=X, y=y, weights=np.ones(10))
    else:
        torch.save(
            {"X": torch.as_tensor(X), "y": torch.as_tensor(y), "weights": torch.ones(10)}, path
        )
    with pytest.raises(InputError, match="weights"):
        load_file(path)


def test_missing_key_in_file_is_refused(tmp_path: Path) -> None:
    X, _ = _raw(n=10)
    path = tmp_path / "no_y.npz"
    np.savez(path, X=X)
    with pytest.raises(InputError, match="y"):
        load_file(path)


def test_missing_or_unsupported_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_file(tmp_path / "absent.npz")
    other = tmp_path / "data.csv"
    other.write_text("1,2\n")
    with pytest.raises(InputError, match="unsupported"):
        load_file(other)


def test_nan_in_file_gives_input_error(tmp_path: Path) -> None:
    X, y = _raw(n=10)
    X[2, 2] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, X=X, y=y)
    with pytest.raises(InputError, match="NaN"):
        load_file(path)
