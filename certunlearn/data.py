"""Datasets: embedded ones that need no download, and user files (.npz / .pt).

Every training sample gets a stable integer id: its row index in ``Dataset.X_train`` (0..n-1),
fixed by the seed of the split. ``Dataset.source_index`` maps ids back to rows of the source.

Example:
    >>> ds = load_dataset("wine", seed=0)
    >>> ds.X_train.shape[1], ds.num_classes, int(ds.ids[0])
    (13, 3, 0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from certunlearn.data_checks import as_class_labels
from certunlearn.errors import ConfigError, InputError
from certunlearn.validation import check_int, check_positive, check_real, register

__all__ = [
    "DATASETS",
    "Dataset",
    "clip_rows",
    "load_dataset",
    "load_file",
    "make_dataset",
    "read_arrays",
    "register_dataset",
]


@dataclass(frozen=True, slots=True)
class Dataset:
    """A train/test split with stable sample ids.

    Attributes:
        name: Where the data came from.
        X_train: ``[n, features]`` float tensor; row i is sample id i.
        y_train: ``[n]`` int64 labels.
        X_test: ``[n_test, features]``.
        y_test: ``[n_test]``.
        num_classes: Number of classes (labels are 0..num_classes-1).
        source_index: ``[n]`` int64, the row of the source array each training id came from.
        feature_norm_bound: Public bound on ‖x‖ for every row (set when rows were clipped), else None.
    """

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    source_index: torch.Tensor
    feature_norm_bound: float | None = None

    def __post_init__(self) -> None:
        for split, X, y in (("train", self.X_train, self.y_train), ("test", self.X_test, self.y_test)):
            _check_arrays(f"{self.name}/{split}", X, y, self.num_classes)

    @property
    def ids(self) -> torch.Tensor:
        """Sample ids 0..n-1 of the training rows."""
        return torch.arange(self.X_train.shape[0])

    @property
    def n_train(self) -> int:
        """Number of training samples."""
        return int(self.X_train.shape[0])

    @property
    def num_features(self) -> int:
        """Number of input features per sample."""
        return int(self.X_train.shape[1])


def _check_arrays(name: str, X: torch.Tensor, y: torch.Tensor, num_classes: int) -> None:
    if X.ndim != 2:
        raise InputError(f"{name}: X must be 2-D [samples, features], got shape {tuple(X.shape)}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise InputError(
            f"{name}: y must be 1-D with one label per row of X ({X.shape[0]}), got {tuple(y.shape)}"
        )
    if not torch.isfinite(X).all():
        raise InputError(f"{name}: X contains NaN or infinite values")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise InputError(f"{name}: labels must be in 0..{num_classes - 1}")


def clip_rows(X: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale every row of ``X`` whose L2 norm exceeds ``max_norm`` down to that norm.

    Args:
        X: ``[n, features]``.
        max_norm: The bound (> 0); afterwards ‖X[i]‖ ≤ max_norm for all i.

    Example:
        >>> clip_rows(torch.tensor([[3.0, 4.0], [0.3, 0.4]]), 1.0)
        tensor([[0.6000, 0.8000],
                [0.3000, 0.4000]])
    """
    max_norm = check_positive("max_norm", max_norm)
    norms = X.norm(dim=1, keepdim=True)
    scale = torch.clamp(max_norm / torch.clamp(norms, min=torch.finfo(X.dtype).tiny), max=1.0)
    return X * scale


def _as_feature_matrix(name: str, key: str, X: object, dtype: torch.dtype) -> torch.Tensor:
    array = np.asarray(X)
    if array.ndim == 0 or array.shape[0] == 0 or array.size == 0:
        raise InputError(f"{name}: {key} has no rows (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InputError(f"{name}: {key} must be numeric, got dtype {array.dtype}")
    return torch.as_tensor(array).reshape(array.shape[0], -1).to(dtype)


def make_dataset(
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    name: str = "user",
    test_fraction: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    clip_norm: float | None = None,
    dtype: torch.dtype = torch.float64,
    X_test: np.ndarray | torch.Tensor | None = None,
    y_test: np.ndarray | torch.Tensor | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from arrays: seeded split, optional standardisation and clipping.

    Args:
        X: ``[n, ...]`` features (flattened to 2-D).
        y: ``[n]`` integer labels.
        name: A name for reports.
        test_fraction: Fraction held out for testing when ``X_test`` is not given, in [0, 1).
        seed: Seed of the split permutation.
        standardize: Centre and scale features by the training split's mean and std.
        clip_norm: If set, clip every row (train and test) to this L2 norm after standardising,
            so that ``feature_norm_bound`` is a public constant.
        dtype: Floating dtype of the features.
        X_test: Optional explicit test features (then no split is made).
        y_test: Labels for ``X_test``.

    Returns:
        The dataset; ids are rows of ``X_train``.

    Example:
        >>> ds = make_dataset(np.eye(4), np.array([0, 1, 0, 1]), test_fraction=0.5, clip_norm=1.0)
        >>> ds.n_train, ds.feature_norm_bound
        (2, 1.0)
    """
    seed = check_int("seed", seed, minimum=0)
    test_fraction = check_real("test_fraction", test_fraction)
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    Xa = _as_feature_matrix(name, "X", X, dtype)
    ya = as_class_labels(y, Xa.shape[0], name=f"{name}: y")
    if (X_test is None) != (y_test is None):
        raise InputError("X_test and y_test must be given together")
    if X_test is None:
        perm = torch.as_tensor(np.random.default_rng(seed).permutation(Xa.shape[0]))
        n_test = int(math.floor(test_fraction * Xa.shape[0]))
        train_idx, test_idx = perm[n_test:], perm[:n_test]
        Xtr, ytr, Xte, yte = Xa[train_idx], ya[train_idx], Xa[test_idx], ya[test_idx]
        source = train_idx.to(torch.int64)
    else:
        Xtr, ytr = Xa, ya
        Xte = _as_feature_matrix(name, "X_test", X_test, dtype)
        yte = as_class_labels(y_test, Xte.shape[0], name=f"{name}: y_test")
        source = torch.arange(Xa.shape[0])
        if Xte.shape[1] != Xtr.shape[1]:
            raise InputError(f"X_test has {Xte.shape[1]} features, X has {Xtr.shape[1]}")
    if not (torch.isfinite(Xtr).all() and torch.isfinite(Xte).all()):
        raise InputError(f"{name}: X contains NaN or infinite values")
    num_classes = int(max(int(ytr.max()), int(yte.max()) if yte.numel() else 0)) + 1
    if standardize:
        mean = Xtr.mean(dim=0)
        std = Xtr.std(dim=0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
        Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
    bound = None
    if clip_norm is not None:
        bound = check_positive("clip_norm", clip_norm)
        Xtr, Xte = clip_rows(Xtr, bound), clip_rows(Xte, bound)
    return Dataset(name, Xtr.contiguous(), ytr, Xte.contiguous(), yte, num_classes, source, bound)


def _sklearn_loader(loader_name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def load() -> tuple[np.ndarray, np.ndarray]:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)

    return load


DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {}
"""Registry of embedded datasets: name -> loader returning (X, y) numpy arrays."""


def register_dataset(
    name: str, loader: Callable[[], tuple[np.ndarray, np.ndarray]], *, force: bool = False
) -> None:
    """Register an embedded dataset loader under ``name``.

    Example:
        >>> register_dataset("tiny", lambda: (np.eye(2), np.array([0, 1])), force=True)
        >>> "tiny" in DATASETS
        True
    """
    register("dataset", DATASETS, name, loader, force=force)


for _name, _loader in (
    ("digits", "load_digits"),
    ("wine", "load_wine"),
    ("breast_cancer", "load_breast_cancer"),
):
    register_dataset(_name, _sklearn_loader(_loader))


def load_dataset(name: str, **kwargs: object) -> Dataset:
    """Load an embedded dataset (no download) or a user file (``.npz`` / ``.pt`` path).

    Args:
        name: A registered name (``digits``, ``wine``, ``breast_cancer``) or a path to a file.
        **kwargs: Passed to :func:`make_dataset` (``test_fraction``, ``seed``, ``standardize``,
            ``clip_norm``, ``dtype``).

    Example:
        >>> load_dataset("digits", seed=1).num_features
        64
    """
    if name in DATASETS:
        X, y = DATASETS[name]()
        return make_dataset(X, y, name=name, **kwargs)  # type: ignore[arg-type]
    if Path(name).suffix in _FILE_LOADERS:
        return load_file(name, **kwargs)
    raise ConfigError(
        f"unknown dataset {name!r}: use one of {sorted(DATASETS)} or a path ending in "
        f"{sorted(_FILE_LOADERS)}"
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _read_pt(path: Path) -> dict[str, np.ndarray]:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return {str(k): torch.as_tensor(v).numpy() for k, v in obj.items()}


_FILE_LOADERS: dict[str, Callable[[Path], dict[str, np.ndarray]]] = {
    ".npz": _read_npz,
    ".pt": _read_pt,
}
_FILE_KEYS = {"X", "y", "X_test", "y_test"}


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read the arrays of a user data file as stored (no split, no standardisation).

    The file (``.npz``, or ``.pt`` holding a dict of tensors, loaded weights-only) holds ``X`` and
    ``y`` and optionally ``X_test`` and ``y_test``; other keys are refused. Use it when the rows are
    already the training set a model saw (sample ids = row indices of ``X``).

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "d.npz")
        >>> np.savez(f, X=np.ones((4, 3)), y=np.arange(4) % 2)
        >>> sorted(read_arrays(f))
        ['X', 'y']
    """
    path = Path(path)
    reader = _FILE_LOADERS.get(path.suffix)
    if reader is None:
        raise InputError(f"{path}: unsupported file type; use one of {sorted(_FILE_LOADERS)}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        arrays = reader(path)
    except InputError:
        raise
    except Exception as exc:  # corrupt archives raise many different types
        raise InputError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    unknown = set(arrays) - _FILE_KEYS
    if unknown or not {"X", "y"} <= set(arrays):
        raise InputError(
            f"{path}: expected keys X, y (and optionally X_test, y_test), got {sorted(arrays)}"
        )
    return arrays


def load_file(path: str | Path, **kwargs: object) -> Dataset:
    """Load user data from ``.npz`` (numpy) or ``.pt`` (dict of tensors, loaded weights-only).

    The file holds ``X`` and ``y`` and optionally ``X_test`` and ``y_test``; other keys are refused.

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "d.npz")
        >>> np.savez(f, X=np.ones((10, 3)), y=np.arange(10) % 2)
        >>> load_file(f, test_fraction=0.3).n_train
        7
    """
    path = Path(path)
    arrays = read_arrays(path)
    kwargs.setdefault("name", path.name)
    return make_dataset(
        arrays["X"], arrays["y"], X_test=arrays.get("X_test"), y_test=arrays.get("y_test"), **kwargs
    )  # type: ignore[arg-type]
