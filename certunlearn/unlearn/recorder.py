"""The HF-OCU recorder: per-sample approximators a_u updated at every SGD step, batched.

For every tracked sample u (Qiao et al., ICLR 2025, paper order; docs/theory.md §1.4)::

    a_u ← J_Π(v_t) · ( a_u − η_t · J_clip(g_t) · ( H_t a_u − 1[u∈B_t] ∇ℓ(w_t; u)/|B_t| ) )

with H_t the Hessian of the minibatch objective at w_t (the learned trajectory, u included), and
J_clip, J_Π the Jacobians of the batch-gradient clipping and of the projection that training
applies (identities when training does neither). Without clipping and projection this is exactly
``a_u ← (I − η_t H_t) a_u + 1[u∈B_t] (η_t/|B_t|) ∇ℓ(w_t; u)``: the injection is *not* multiplied by
the current step's propagator (the authors' code does that; it costs an O(η) error per injection).

Batched: H_t is applied to a whole block of approximators at once by
:meth:`~certunlearn.autodiff.functional.FunctionalModel.batch_hvp` (the hand-written R-operator for
chains of dense layers, else ``vmap`` over the vector-Jacobian product of ``grad``); per-sample
gradients come from :meth:`~certunlearn.autodiff.functional.FunctionalModel.per_sample_grads`. No
per-sample Python loop.

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> from certunlearn.autodiff import FunctionalModel
    >>> from certunlearn.train import SGDConfig
    >>> from certunlearn.train.schedule import Schedule
    >>> from certunlearn.train.sgd import run_schedule
    >>> from certunlearn.unlearn.store import StatisticsStore
    >>> X = torch.randn(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> y = (X[:, 0] > 0).long()
    >>> cfg = SGDConfig(epochs=2, batch_size=4, lr=0.5, weight_decay=0.1)
    >>> fm = FunctionalModel(LogisticRegression(3, 2))
    >>> store = StatisticsStore(range(12), fm.dim, storage_dtype="float64")
    >>> rec = HFOCURecorder(fm, store, weight_decay=cfg.weight_decay)
    >>> _ = run_schedule(fm, X, y, Schedule.build(n_samples=12, config=cfg), cfg, observers=[rec])
    >>> bool(store.read(0, 12, dtype=torch.float64, device="cpu").abs().sum() > 0)
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.train.sgd import StepInfo
from certunlearn.unlearn.store import StatisticsStore
from certunlearn.validation import check_int

DEFAULT_VMAP_CHUNK = 256

__all__ = ["DEFAULT_VMAP_CHUNK", "HFOCURecorder", "clip_jacobian_apply", "projection_jacobian_apply"]


def _radial_jacobian_apply(point: Tensor, radius: float | None, rows: Tensor) -> Tensor:
    """Apply the Jacobian of x ↦ x·min(1, r/‖x‖) at ``point`` to every row of ``rows``."""
    if radius is None:
        return rows
    norm = torch.linalg.vector_norm(point)
    if norm <= radius:
        return rows
    unit = point / norm
    return (radius / norm) * (rows - torch.outer(rows @ unit, unit))


def clip_jacobian_apply(grad: Tensor, clip_norm: float | None, rows: Tensor) -> Tensor:
    """Jacobian of batch-gradient clipping g ↦ g·min(1, C/‖g‖) at ``grad``, applied to ``rows [K, d]``.

    Example:
        >>> clip_jacobian_apply(torch.tensor([2.0, 0.0]), 1.0, torch.tensor([[1.0, 1.0]]))
        tensor([[0.0000, 0.5000]])
    """
    return _radial_jacobian_apply(grad, clip_norm, rows)


def projection_jacobian_apply(point: Tensor, radius: float | None, rows: Tensor) -> Tensor:
    """Jacobian of the projection onto ‖w‖ ≤ R at ``point`` (before projection), applied to rows.

    Example:
        >>> projection_jacobian_apply(torch.tensor([0.5, 0.0]), 1.0, torch.tensor([[1.0, 1.0]]))
        tensor([[1., 1.]])
    """
    return _radial_jacobian_apply(point, radius, rows)


class HFOCURecorder:
    """A :class:`~certunlearn.train.sgd.TrainingObserver` that keeps a_u for tracked ids in a store.

    Args:
        fm: The functional model being trained.
        store: Rows a_u (zero-initialised: a_u,0 = 0).
        weight_decay: λ of the training loss (part of every ℓ_i, hence of H_t and ∇ℓ_u).
        block_rows: Rows processed at once (memory ↔ speed); None = all rows in one block.
        vmap_chunk: Tangents per batched HVP call (``chunk_size`` of the vmapped HVP, or the chunk
            of the chain R-operator). Default 256: one call over thousands of tangents can be
            cache-bound on a CPU (see docs/performance.md).
    """

    def __init__(
        self,
        fm: FunctionalModel,
        store: StatisticsStore,
        *,
        weight_decay: float,
        block_rows: int | None = None,
        vmap_chunk: int | None = None,
    ) -> None:
        if store.dim != fm.dim:
            raise ValueError(f"store has rows of {store.dim} parameters, model has {fm.dim}")
        self.fm = fm
        self.store = store
        self.weight_decay = float(weight_decay)
        self.block_rows = None if block_rows is None else check_int("block_rows", block_rows, minimum=1)
        self.vmap_chunk = DEFAULT_VMAP_CHUNK if vmap_chunk is None else check_int("vmap_chunk", vmap_chunk, minimum=1)
        self.steps_seen = 0

    def on_step(self, info: StepInfo) -> None:
        """Propagate every tracked a_u through step t and inject the batch members' gradients."""
        fm, dtype, device = self.fm, self.fm.dtype, self.fm.device
        positions, rows = self.store.tracked_mask(info.batch_ids)
        injections = None
        if rows.numel():
            picked = positions.to(info.X.device)
            grads = fm.per_sample_grads(
                info.theta, info.X[picked], info.y[picked], weight_decay=self.weight_decay,
                chunk_size=self.vmap_chunk,
            )
            injections = (rows, grads / info.normalizer)
        for start, stop in self.store.blocks(self.block_rows):
            block = self.store.read(start, stop, dtype=dtype, device=device)
            hv = fm.batch_hvp(
                info.theta, info.X, info.y, block, normalizer=info.normalizer,
                weight_decay=self.weight_decay, chunk_size=self.vmap_chunk,
            )
            if injections is not None:
                rows_all, grads = injections
                inside = (rows_all >= start) & (rows_all < stop)
                if bool(inside.any()):
                    local = (rows_all[inside] - start).to(device)
                    hv.index_add_(0, local, -grads[inside.to(grads.device)])
            block.add_(clip_jacobian_apply(info.grad, info.clip_norm, hv), alpha=-info.lr)  # block is a copy
            block = projection_jacobian_apply(info.pre_projection, info.projection_radius, block)
            self.store.write(start, stop, block)
            self.store.release(start, stop)
        self.steps_seen += 1
