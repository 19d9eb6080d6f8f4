"""Slow, obvious reference for mini-batch SGD on a linear model (no torch, no vectorisation).

The model is ``z = W x + b`` with ``W`` a ``C × F`` list of lists and ``b`` a list of ``C`` floats; the
flat parameter vector is ``W`` row by row followed by ``b`` (the order of
``certunlearn.models.LogisticRegression``'s ``linear.weight`` / ``linear.bias``). Two per-sample
losses, with hand-written gradients:

* ``"cross_entropy"`` (softmax regression): ``ℓ = −log softmax(z)_y``, ``∂ℓ/∂z_c = p_c − [c = y]``;
* ``"mse"`` (linear least squares against a scalar target broadcast over the outputs):
  ``ℓ = ½ Σ_c (z_c − y)²``, ``∂ℓ/∂z_c = z_c − y``.

Every per-sample loss carries ``(λ/2)‖w‖²``. One step over the batch ``B_t`` with kept samples
``K_t = B_t \\ U``::

    g   = (1/N_t) Σ_{i ∈ K_t} [∇ℓ_i(w) + λ w]     N_t = |B_t| ("full_batch") or max(|K_t|, 1) ("remaining")
    g   ← g · C/‖g‖                              if clip_norm = C is set and ‖g‖ > C
    v   = w − η_t g
    w'  = v · R/‖v‖                              if projection_radius = R is set and ‖v‖ > R

A step whose batch is fully excluded has ``g = 0``: ``w`` is unchanged except for the projection.

Example:
    >>> run = reference_sgd([[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0], [[1.0, 0.0]], [0], [[0]], [1.0])
    >>> run.W, run.b
    ([[0.5, 0.0], [-0.5, 0.0]], [0.5, -0.5])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ReferenceRun", "reference_sgd", "sample_gradient", "sample_loss"]

NORMALIZATIONS = ("full_batch", "remaining")
LOSSES = ("cross_entropy", "mse")


@dataclass
class ReferenceRun:
    """Final parameters of :func:`reference_sgd` and counts of what happened along the way."""

    W: list[list[float]]
    b: list[float]
    clipped_steps: int
    projected_steps: int
    empty_steps: int

    def flat(self) -> list[float]:
        """W row by row, then b."""
        return [w for row in self.W for w in row] + list(self.b)


def _logits(W: Sequence[Sequence[float]], b: Sequence[float], x: Sequence[float]) -> list[float]:
    z = []
    for c in range(len(W)):
        total = b[c]
        for f in range(len(x)):
            total += W[c][f] * x[f]
        z.append(total)
    return z


def _squared_norm(W: Sequence[Sequence[float]], b: Sequence[float]) -> float:
    total = 0.0
    for row in W:
        for w in row:
            total += w * w
    for v in b:
        total += v * v
    return total


def sample_loss(
    W: Sequence[Sequence[float]],
    b: Sequence[float],
    x: Sequence[float],
    y: float,
    *,
    loss: str = "cross_entropy",
    weight_decay: float = 0.0,
) -> float:
    """ℓ(w; x, y) + (λ/2)‖w‖² for one sample."""
    z = _logits(W, b, x)
    if loss == "cross_entropy":
        m = max(z)
        log_sum = m + math.log(sum(math.exp(zc - m) for zc in z))
        data = log_sum - z[int(y)]
    elif loss == "mse":
        data = 0.5 * sum((zc - y) ** 2 for zc in z)
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return data + 0.5 * weight_decay * _squared_norm(W, b)


def sample_gradient(
    W: Sequence[Sequence[float]],
    b: Sequence[float],
    x: Sequence[float],
    y: float,
    *,
    loss: str = "cross_entropy",
    weight_decay: float = 0.0,
) -> tuple[list[list[float]], list[float]]:
    """Hand-written gradient (dW, db) of :func:`sample_loss`."""
    z = _logits(W, b, x)
    if loss == "cross_entropy":
        m = max(z)
        exps = [math.exp(zc - m) for zc in z]
        total = sum(exps)
        dz = [exps[c] / total - (1.0 if c == int(y) else 0.0) for c in range(len(z))]
    elif loss == "mse":
        dz = [zc - y for zc in z]
    else:
        raise ValueError(f"unknown loss {loss!r}")
    dW = [[dz[c] * x[f] + weight_decay * W[c][f] for f in range(len(x))] for c in range(len(W))]
    db = [dz[c] + weight_decay * b[c] for c in range(len(b))]
    return dW, db


def reference_sgd(
    W0: Sequence[Sequence[float]],
    b0: Sequence[float],
    X: Sequence[Sequence[float]],
    y: Sequence[float],
    batches: Sequence[Sequence[int]],
    lrs: Sequence[float],
    *,
    loss: str = "cross_entropy",
    weight_decay: float = 0.0,
    clip_norm: float | None = None,
    projection_radius: float | None = None,
    exclude: Sequence[int] = (),
    normalization: str = "full_batch",
) -> ReferenceRun:
    """Run the steps ``batches[t]`` with step sizes ``lrs[t]`` from ``(W0, b0)``; see the module doc."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}")
    if len(batches) != len(lrs):
        raise ValueError("one step size per batch")
    excluded = set(exclude)
    W = [list(map(float, row)) for row in W0]
    b = [float(v) for v in b0]
    C, F = len(W), len(W[0])
    clipped = projected = empty = 0
    for batch, lr in zip(batches, lrs, strict=True):
        kept = [i for i in batch if i not in excluded]
        if normalization == "full_batch":
            normalizer = float(len(batch))
        else:
            normalizer = float(max(len(kept), 1))
        gW = [[0.0] * F for _ in range(C)]
        gb = [0.0] * C
        for i in kept:
            dW, db = sample_gradient(W, b, X[i], y[i], loss=loss, weight_decay=weight_decay)
            for c in range(C):
                for f in range(F):
                    gW[c][f] += dW[c][f]
                gb[c] += db[c]
        for c in range(C):
            for f in range(F):
                gW[c][f] /= normalizer
            gb[c] /= normalizer
        if not kept:
            empty += 1
        if clip_norm is not None:
            norm = math.sqrt(_squared_norm(gW, gb))
            if norm > clip_norm:
                clipped += 1
                scale = clip_norm / norm
                gW = [[g * scale for g in row] for row in gW]
                gb = [g * scale for g in gb]
        W = [[W[c][f] - lr * gW[c][f] for f in range(F)] for c in range(C)]
        b = [b[c] - lr * gb[c] for c in range(C)]
        if projection_radius is not None:
            norm = math.sqrt(_squared_norm(W, b))
            if norm > projection_radius:
                projected += 1
                scale = projection_radius / norm
                W = [[w * scale for w in row] for row in W]
                b = [v * scale for v in b]
    return ReferenceRun(W, b, clipped, projected, empty)
