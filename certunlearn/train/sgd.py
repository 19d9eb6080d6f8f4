"""Deterministic mini-batch SGD and the coupled retrain that replays its schedule.

One step of training (``normalizer = |B_t|``)::

    g_t = (1/|B_t|) Σ_{i∈B_t} ∇ℓ_i(w_t)            ℓ_i includes (λ/2)‖w‖²
    g_t ← g_t · min(1, C/‖g_t‖)                       only if clip_norm = C is set
    v_t = w_t − η_t g_t
    w_{t+1} = v_t · min(1, R/‖v_t‖)                   only if projection_radius = R is set

The coupled retrain (HF-OCU paper, eq. 5) runs the same steps from the same w_0 with the deleted ids
dropped from every batch; its normaliser is the original |B_t| (``"full_batch"``, the reference the
HF-OCU approximator models) or the remaining |B_t \\ U| (``"remaining"``). Training, retraining
and the many-models trainer (:mod:`certunlearn.train.many`) share one step rule, :func:`sgd_step`,
so a retrain without deletions reproduces training bit for bit.

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> X = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> y = (X[:, 0] > 0).long()
    >>> cfg = SGDConfig(epochs=2, batch_size=8, lr=0.5, weight_decay=0.01, seed=1)
    >>> result = train_sgd(LogisticRegression(3, 2), X, y, cfg)
    >>> again = coupled_retrain(LogisticRegression(3, 2), X, y, result.schedule, cfg, exclude=[])
    >>> all(torch.equal(result.params[k], again[k]) for k in again)
    True
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.errors import InputError, SampleIdError
from certunlearn.progress import ProgressFn, report
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule
from certunlearn.validation import check_choice

__all__ = [
    "NORMALIZATIONS",
    "StepInfo",
    "TrainResult",
    "TrainingObserver",
    "check_sample_ids",
    "coupled_retrain",
    "prepare_data",
    "run_schedule",
    "sgd_step",
    "train_sgd",
]


@dataclass(frozen=True, slots=True)
class StepInfo:
    """What an observer sees of one training step (all tensors on the training device).

    Attributes:
        step: Index t of the step.
        theta: Flat parameters w_t before the step (do not modify).
        batch_ids: ``[|B_t|]`` int64 sample ids of the minibatch.
        X: ``[|B_t|, ...]`` minibatch features; ``y`` its targets.
        lr: Step size η_t.
        normalizer: The divisor of the summed gradient (|B_t| in training).
        grad: The minibatch gradient g_t before clipping.
        clip_norm: C if training clips the batch gradient, else None.
        pre_projection: v_t, the point before the projection (equals w_{t+1} without projection).
        projection_radius: R if training projects, else None.
    """

    step: int
    theta: Tensor
    batch_ids: Tensor
    X: Tensor
    y: Tensor
    lr: float
    normalizer: float
    grad: Tensor
    clip_norm: float | None
    pre_projection: Tensor
    projection_radius: float | None


class TrainingObserver(Protocol):
    """Something that rides along training and sees every step (e.g. the HF-OCU recorder)."""

    def on_step(self, info: StepInfo) -> None:
        """Called once per step, after the update is computed and before w is replaced."""


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Output of :func:`train_sgd`.

    Attributes:
        params: Trained parameters and buffers, keyed like ``model.state_dict()``.
        theta: The same trainable parameters as one flat vector.
        schedule: The recorded batch schedule.
    """

    params: dict[str, Tensor]
    theta: Tensor
    schedule: Schedule


def _normalize_full_batch(batch_size: int, kept: int) -> float:
    del kept
    return float(batch_size)


def _normalize_remaining(batch_size: int, kept: int) -> float:
    del batch_size
    return float(max(kept, 1))


NORMALIZATIONS: dict[str, Callable[[int, int], float]] = {
    "full_batch": _normalize_full_batch,
    "remaining": _normalize_remaining,
}
"""How a retrain step divides its summed gradient: by |B_t| or by |B_t \\ U|."""


def prepare_data(fm: FunctionalModel, X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Check shapes and values; move X and y to the model's device, X to its dtype."""
    if not isinstance(X, Tensor) or not isinstance(y, Tensor):
        raise InputError("X and y must be torch tensors")
    if X.ndim < 1 or y.ndim < 1 or X.shape[0] != y.shape[0]:
        raise InputError(f"X and y need the same number of rows, got {tuple(X.shape)} and {tuple(y.shape)}")
    if X.shape[0] == 0:
        raise InputError("X has no rows")
    X = X.to(device=fm.device, dtype=fm.dtype)
    if not torch.isfinite(X).all():
        raise InputError("X contains NaN or infinite values")
    if y.dtype.is_floating_point and not torch.isfinite(y).all():
        raise InputError("y contains NaN or infinite values")
    return X, y.to(fm.device)


def check_sample_ids(ids: Iterable[int], n_samples: int, *, what: str = "sample ids") -> list[int]:
    """Return ``ids`` as a list of ints after checking they are known and not repeated.

    Example:
        >>> check_sample_ids([3, 3], 10)
        Traceback (most recent call last):
        ...
        certunlearn.errors.SampleIdError: repeated sample ids: [3]
    """
    out: list[int] = []
    for i in ids:
        try:
            if isinstance(i, bool):
                raise TypeError
            out.append(operator.index(i))  # ints, numpy integers, integer 0-d tensors
        except TypeError as exc:
            raise SampleIdError(f"{what} must be integers, got {i!r}") from exc
    counts = Counter(out)
    repeated = sorted(i for i, c in counts.items() if c > 1)
    if repeated:
        raise SampleIdError(f"repeated {what}: {repeated[:10]}")
    unknown = [i for i in out if not 0 <= i < n_samples]
    if unknown:
        raise SampleIdError(f"unknown {what} {unknown[:10]}: ids are 0..{n_samples - 1}")
    return out


Params = Tensor | Mapping[str, Tensor]
"""Parameters as one flat vector ``[d]`` or as named tensors (a pytree), read as their concatenation."""


def _shrink(v: Params, radius: float | None) -> Params:
    """v scaled into the ball of ``radius`` (gradient clipping, projection); v itself if None.

    The norm of named tensors is the norm of their concatenation, so both forms round alike.
    """
    if radius is None:
        return v
    if isinstance(v, Tensor):
        norm = torch.linalg.vector_norm(v)
        return v * torch.clamp(radius / torch.clamp(norm, min=torch.finfo(v.dtype).tiny), max=1.0)
    norm = torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in v.values()]))
    scale = torch.clamp(radius / torch.clamp(norm, min=torch.finfo(norm.dtype).tiny), max=1.0)
    return {k: t * scale for k, t in v.items()}


def sgd_step(theta: Params, grad: Params, *, lr: float | Tensor, config: SGDConfig) -> tuple[Params, Params]:
    """One update of the SGD rule (module docstring) from w_t and its minibatch gradient g_t.

    ``v_t = w_t − η_t · clip_C(g_t)`` and ``w_{t+1} = Π_R(v_t)``, with C = ``config.clip_norm`` and
    R = ``config.projection_radius`` (each skipped when None). The one step rule of every trainer:
    :func:`run_schedule` calls it on flat vectors, and :mod:`certunlearn.train.many` on each model's
    named parameters under ``torch.func.vmap`` (``lr`` is then a 0-d tensor, one per model).

    Args:
        theta: Parameters w_t: a flat ``[d]`` vector, or a dict of named tensors (clipping and
            projection then use the norm of their concatenation).
        grad: The minibatch gradient g_t (weight decay included), in the same form as ``theta``.
        lr: Step size η_t.
        config: Supplies the clipping norm and the projection radius.

    Returns:
        ``(v_t, w_{t+1})``: the point before the projection and the new parameters.

    Example:
        >>> cfg = SGDConfig(epochs=1, batch_size=1, lr=1.0, clip_norm=1.0, projection_radius=0.5)
        >>> v, new = sgd_step(torch.zeros(2), torch.tensor([3.0, 4.0]), lr=1.0, config=cfg)
        >>> [round(x, 4) for x in v.tolist()], [round(x, 4) for x in new.tolist()]  # clipped, projected
        ([-0.6, -0.8], [-0.3, -0.4])
        >>> _, named = sgd_step({"a": torch.zeros(1), "b": torch.zeros(1)},
        ...                     {"a": torch.tensor([3.0]), "b": torch.tensor([4.0])}, lr=1.0, config=cfg)
        >>> [round(float(named[k]), 4) for k in ("a", "b")]
        [-0.3, -0.4]
    """
    if isinstance(theta, Tensor) != isinstance(grad, Tensor):
        raise InputError("theta and grad must both be flat tensors or both dicts of named tensors")
    g = _shrink(grad, config.clip_norm)
    v = theta - lr * g if isinstance(theta, Tensor) else {k: t - lr * g[k] for k, t in theta.items()}
    return v, _shrink(v, config.projection_radius)


def run_schedule(
    fm: FunctionalModel,
    X: Tensor,
    y: Tensor,
    schedule: Schedule,
    config: SGDConfig,
    *,
    keep: Tensor | None = None,
    normalization: str = "full_batch",
    observers: Sequence[TrainingObserver] = (),
    progress: ProgressFn | None = None,
    label: str = "train",
) -> Tensor:
    """Run the SGD steps of ``schedule`` from ``fm.theta0``; return the final flat parameters.

    Args:
        fm: The functional model (its θ_0 is the initialisation).
        X: ``[n, ...]`` features on ``fm``'s device and dtype; ``y`` the targets.
        schedule: The steps to run.
        config: Hyper-parameters (weight decay, clipping, projection).
        keep: Optional ``[n]`` bool mask; rows with False are dropped from every batch.
        normalization: A key of :data:`NORMALIZATIONS`.
        observers: Called at every step with a :class:`StepInfo`.
        progress: Optional progress callback.
        label: Progress label.
    """
    normalize = NORMALIZATIONS[check_choice("normalization", normalization, NORMALIZATIONS)]
    if schedule.n_samples != X.shape[0]:
        raise InputError(f"the schedule covers {schedule.n_samples} samples but X has {X.shape[0]} rows")
    theta = fm.theta0.clone()
    total = len(schedule)
    every = max(1, total // 100)
    for t, step in enumerate(schedule.steps):
        idx = torch.tensor(step.ids, dtype=torch.int64, device=X.device)
        kept = idx if keep is None else idx[keep[idx]]
        normalizer = normalize(len(step.ids), int(kept.numel()))
        Xb, yb = X[kept], y[kept]
        g = fm.objective_grad(theta, Xb, yb, normalizer=normalizer, weight_decay=config.weight_decay)
        v, new_theta = sgd_step(theta, g, lr=step.lr, config=config)
        if observers:
            info = StepInfo(
                step=t,
                theta=theta,
                batch_ids=kept,
                X=Xb,
                y=yb,
                lr=step.lr,
                normalizer=normalizer,
                grad=g,
                clip_norm=config.clip_norm,
                pre_projection=v,
                projection_radius=config.projection_radius,
            )
            for observer in observers:
                observer.on_step(info)
        theta = new_theta.detach()
        if (t + 1) % every == 0 or t + 1 == total:
            report(progress, t + 1, total, label)
    return theta


def train_sgd(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    config: SGDConfig,
    *,
    observers: Sequence[TrainingObserver] = (),
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train ``model`` (never modified; its parameters are w_0) by deterministic mini-batch SGD.

    Args:
        model: Initial model; its current parameters are the initialisation w_0.
        X: ``[n, ...]`` features; sample ids are the row indices 0..n-1.
        y: ``[n]`` targets.
        config: :class:`SGDConfig`.
        observers: Recorders that see every step (e.g. HF-OCU statistics).
        progress: Optional progress callback ``(done, total, label)``.

    Returns:
        :class:`TrainResult` with the trained parameters and the recorded :class:`Schedule`.
        Same seed and inputs give bit-identical results on CPU.

    Example:
        >>> from certunlearn.models import LogisticRegression
        >>> X, y = torch.eye(4, dtype=torch.float64), torch.tensor([0, 1, 0, 1])
        >>> res = train_sgd(LogisticRegression(4, 2), X, y, SGDConfig(epochs=3, batch_size=2, lr=1.0))
        >>> len(res.schedule), sorted(res.params)
        (6, ['linear.bias', 'linear.weight'])
    """
    fm = FunctionalModel(model, loss=config.loss)
    X, y = prepare_data(fm, X, y)
    schedule = Schedule.build(n_samples=X.shape[0], config=config)
    theta = run_schedule(fm, X, y, schedule, config, observers=observers, progress=progress)
    return TrainResult(fm.state_dict(theta), theta, schedule)


def coupled_retrain(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    schedule: Schedule,
    config: SGDConfig,
    *,
    exclude: Iterable[int] = (),
    normalization: str = "full_batch",
    progress: ProgressFn | None = None,
) -> dict[str, Tensor]:
    """Replay ``schedule`` from ``model``'s parameters with the ids in ``exclude`` removed.

    This is the oracle the HF-OCU certificate speaks about: same initialisation, same batches, same
    step sizes, the deleted samples dropped.

    Args:
        model: The *initial* model (the same w_0 training started from).
        X: Features of all n training samples (ids are rows).
        y: Targets.
        schedule: The schedule recorded by :func:`train_sgd`.
        config: The training configuration.
        exclude: Sample ids to drop (unique, in 0..n-1).
        normalization: ``"full_batch"`` (divide by the original |B_t|, the HF-OCU reference) or
            ``"remaining"`` (divide by |B_t \\ U|).
        progress: Optional progress callback.

    Returns:
        Retrained parameters keyed like ``model.state_dict()``.

    Example:
        >>> from certunlearn.models import LogisticRegression
        >>> X, y = torch.eye(4, dtype=torch.float64), torch.tensor([0, 1, 0, 1])
        >>> cfg = SGDConfig(epochs=1, batch_size=4, lr=1.0)
        >>> sched = train_sgd(LogisticRegression(4, 2), X, y, cfg).schedule
        >>> w = coupled_retrain(LogisticRegression(4, 2), X, y, sched, cfg, exclude=[0, 1, 2, 3])
        >>> float(w["linear.weight"].abs().sum())  # nothing left to learn from
        0.0
    """
    fm = FunctionalModel(model, loss=config.loss)
    X, y = prepare_data(fm, X, y)
    ids = check_sample_ids(exclude, X.shape[0], what="excluded ids")
    keep = torch.ones(X.shape[0], dtype=torch.bool, device=X.device)
    keep[ids] = False
    theta = run_schedule(
        fm, X, y, schedule, config, keep=keep, normalization=normalization,
        progress=progress, label="retrain",
    )
    return fm.state_dict(theta)
