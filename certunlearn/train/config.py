"""The validated SGD configuration shared by training, recording and the coupled retrain.

Example:
    >>> cfg = SGDConfig(epochs=2, batch_size=32, lr=0.1, lr_decay=0.99, weight_decay=1e-3, seed=0)
    >>> round(cfg.lr_at(2), 6)
    0.09801
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from certunlearn.autodiff.functional import LOSSES
from certunlearn.errors import ConfigError
from certunlearn.validation import (
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_real,
)

__all__ = ["SGDConfig"]


@dataclass(frozen=True, slots=True)
class SGDConfig:
    """Hyper-parameters of mini-batch SGD ``w ← Π(w − η_t · clip((1/|B_t|) Σ_{i∈B_t} ∇ℓ_i(w)))``.

    Attributes:
        epochs: Passes over the data (>= 1).
        batch_size: Samples per step (>= 1); the last batch of an epoch may be smaller.
        lr: Initial step size η_0 (> 0).
        lr_decay: Per-step decay γ in (0, 1]: η_t = η_0 γ^t.
        weight_decay: L2 weight λ >= 0; each per-sample loss includes (λ/2)‖w‖².
        projection_radius: If set, project w onto the ball ‖w‖ ≤ R after every step.
        clip_norm: If set, clip the whole minibatch gradient to norm C (not per sample).
        seed: Seed of the batch permutation (>= 0).
        loss: Per-sample loss name (``cross_entropy`` or ``mse``).
    """

    epochs: int
    batch_size: int
    lr: float
    lr_decay: float = 1.0
    weight_decay: float = 0.0
    projection_radius: float | None = None
    clip_norm: float | None = None
    seed: int = 0
    loss: str = "cross_entropy"

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_positive("lr", self.lr)
        decay = check_real("lr_decay", self.lr_decay)
        if not 0.0 < decay <= 1.0:
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        check_nonnegative("weight_decay", self.weight_decay)
        if self.projection_radius is not None:
            check_positive("projection_radius", self.projection_radius)
        if self.clip_norm is not None:
            check_positive("clip_norm", self.clip_norm)
        check_int("seed", self.seed, minimum=0)
        check_choice("loss", self.loss, LOSSES)

    def lr_at(self, step: int) -> float:
        """Step size η_t = lr · lr_decay^t."""
        return float(self.lr * self.lr_decay**step)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SGDConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused by name.

        Example:
            >>> SGDConfig.from_dict({"epochs": 1, "batch_size": 4, "lr": 0.1, "momentum": 0.9})
            Traceback (most recent call last):
            ...
            certunlearn.errors.ConfigError: unknown SGDConfig keys: ['momentum']
        """
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown SGDConfig keys: {unknown}")
        return cls(**data)
