"""Shared set-up of the jobs behind the CLI: data with public clipping, softmax regression, HF-OCU.

``certunlearn demo`` and ``certunlearn capacity`` both train softmax regression with HF-OCU statistics
on a dataset whose rows are clipped to a public norm (so every certificate constant is public). This
module holds that set-up once.

Example:
    >>> setup = SoftmaxSetup(dataset="wine", epochs=1, batch_size=32)
    >>> fitted = fit_softmax_hfocu(setup)
    >>> fitted.hf.schedule.n_samples == fitted.data.n_train
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from certunlearn.progress import ProgressFn
from certunlearn.validation import check_int, check_nonnegative, check_positive, check_real

if TYPE_CHECKING:
    from certunlearn.data import Dataset
    from certunlearn.models import LogisticRegression
    from certunlearn.train import SGDConfig
    from certunlearn.unlearn import HFOCU

__all__ = ["FittedSoftmax", "SoftmaxSetup", "fit_softmax_hfocu"]


@dataclass(frozen=True, slots=True)
class SoftmaxSetup:
    """Data and training settings for softmax regression with HF-OCU.

    Attributes:
        dataset: Embedded dataset name (``digits``, ``wine``, ``breast_cancer``) or a ``.npz`` /
            ``.pt`` file with ``X``, ``y`` (and optionally ``X_test``, ``y_test``).
        epochs: Training epochs.
        batch_size: Minibatch size.
        lr: Initial step size.
        lr_decay: Per-step multiplicative decay of the step size.
        weight_decay: L2 regularisation λ (the strong convexity of the certificate).
        clip_norm: Public bound on every (standardised) row's norm.
        seed: Seed of the split and of the batch schedule.
    """

    dataset: str = "digits"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.5
    lr_decay: float = 0.999
    weight_decay: float = 0.1
    clip_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_positive("lr", self.lr)
        check_real("lr_decay", self.lr_decay)
        check_nonnegative("weight_decay", self.weight_decay)
        check_positive("clip_norm", self.clip_norm)
        check_int("seed", self.seed, minimum=0)

    def sgd_config(self) -> SGDConfig:
        """The :class:`~certunlearn.train.SGDConfig` of this set-up."""
        from certunlearn.train import SGDConfig

        return SGDConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, lr_decay=self.lr_decay,
            weight_decay=self.weight_decay, seed=self.seed,
        )


@dataclass(frozen=True, slots=True)
class FittedSoftmax:
    """What :func:`fit_softmax_hfocu` returns: the data, the initial model and the fitted HF-OCU."""

    data: Dataset
    model: LogisticRegression
    hf: HFOCU


def fit_softmax_hfocu(setup: SoftmaxSetup, *, progress: ProgressFn | None = None,
                      certificate: str | None = None, track_ids: list[int] | None = None) -> FittedSoftmax:
    """Load the data (rows clipped to ``clip_norm``), train softmax regression and record HF-OCU.

    Args:
        setup: The settings.
        progress: Optional progress callback for training.
        certificate: ``refine``, ``worst-case`` or None (refine wherever it applies).
        track_ids: Ids that may be deleted (default: all).

    Returns:
        :class:`FittedSoftmax`; ``hf`` certifies with constants derived from ``clip_norm``.
    """
    from certunlearn.data import load_dataset
    from certunlearn.models import LogisticRegression
    from certunlearn.unlearn import HFOCU

    data = load_dataset(setup.dataset, seed=setup.seed, clip_norm=setup.clip_norm)
    model = LogisticRegression(data.num_features, data.num_classes)
    hf = HFOCU(model, setup.sgd_config(), feature_norm_bound=setup.clip_norm, certificate=certificate,
               track_ids=track_ids)
    hf.fit(data.X_train, data.y_train, progress=progress)
    return FittedSoftmax(data, model, hf)
