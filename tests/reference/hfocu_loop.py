"""Slow, obvious reference of the HF-OCU recursion (Qiao et al., ICLR 2025, paper order; docs/theory.md §1.4).

Nothing here uses certunlearn's recorder, store or functional model: the module is evaluated with
``torch.func.functional_call`` on parameters cut out of one flat vector (``named_parameters`` order),
per-sample gradients come from one ``torch.autograd.grad`` call per sample, the minibatch Hessian is a
dense ``[d, d]`` matrix from ``torch.func.hessian`` of the minibatch objective written as a Python sum
over the batch, and the Jacobians of gradient clipping and of the projection are dense matrices from
``torch.autograd.functional.jacobian`` of the two maps themselves.

Training (what certunlearn's SGD does, ``N_t = |B_t|``)::

    ℓ_i(w)  = loss(f_w(x_i), y_i) + (λ/2)‖w‖²
    g_t     = (1/N_t) Σ_{i∈B_t} ∇ℓ_i(w_t)
    v_t     = w_t − η_t · clip(g_t)               clip(g) = g · min(1, C/‖g‖)   (if C is set)
    w_{t+1} = Π(v_t)                              Π(v) = v · min(1, R/‖v‖)       (if R is set)

Recursion, paper order (the injection is *outside* the propagator)::

    a_0 = 0
    a_{t+1} = J_Π(v_t) [ (I − η_t J_clip(g_t) H_t) a_t + η_t J_clip(g_t) · inj_t ]
    H_t     = ∇² (1/N_t) Σ_{i∈B_t} ℓ_i (w_t)           dense
    inj_t   = (1/N_t) Σ_{u∈V∩B_t} ∇ℓ_u(w_t)            for a single id (V = {u}) or a set V

Without clipping and projection this is ``a ← (I − η_t H_t) a + 1[u∈B_t] (η_t/|B_t|) ∇ℓ_u(w_t)``.

Example:
    >>> import torch
    >>> lin = torch.nn.Linear(2, 2, dtype=torch.float64)
    >>> X = torch.eye(2, dtype=torch.float64); y = torch.tensor([0, 1])
    >>> ref = reference_hfocu(lin, X, y, [[0, 1]], [0.5], weight_decay=0.0, track=[0])
    >>> bool(ref.approximators[0].abs().sum() > 0)
    True
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ReferenceHFOCU",
    "clip_map",
    "flat_params",
    "projection_map",
    "radial_jacobian",
    "reference_hfocu",
    "step_map",
]


@dataclass
class ReferenceHFOCU:
    """What :func:`reference_hfocu` computed.

    Attributes:
        theta: Final flat parameters w_T.
        approximators: id -> a_u at T, for every tracked id.
        set_approximators: a^V at T for every requested set V (one recursion with the summed
            injection), in the order the sets were given.
        clipped_steps: Steps where the batch gradient was clipped.
        projected_steps: Steps where the projection was active.
        trajectory: w_0, ..., w_T.
    """

    theta: Tensor
    approximators: dict[int, Tensor]
    set_approximators: list[Tensor]
    clipped_steps: int = 0
    projected_steps: int = 0
    trajectory: list[Tensor] = field(default_factory=list)


def flat_params(module: nn.Module) -> Tensor:
    """The module's trainable parameters concatenated in ``named_parameters`` order (a copy)."""
    return torch.cat([p.detach().reshape(-1) for _, p in module.named_parameters()]).clone()


def _unflatten(module: nn.Module, theta: Tensor) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    offset = 0
    for name, p in module.named_parameters():
        out[name] = theta[offset : offset + p.numel()].view(p.shape)
        offset += p.numel()
    assert offset == theta.numel()
    return out


def _sample_loss(
    module: nn.Module, theta: Tensor, x: Tensor, y: Tensor, loss: str, weight_decay: float
) -> Tensor:
    """ℓ(θ; x, y) + (λ/2)‖θ‖² for ONE sample."""
    out = torch.func.functional_call(module, _unflatten(module, theta), (x.unsqueeze(0),))
    if loss == "cross_entropy":
        data = F.cross_entropy(out, y.reshape(1).long())
    elif loss == "mse":
        data = 0.5 * (out.reshape(-1) - y.to(out.dtype)).pow(2).sum()
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return data + 0.5 * weight_decay * (theta * theta).sum()


def _batch_objective(
    module: nn.Module,
    theta: Tensor,
    X: Tensor,
    y: Tensor,
    batch: Sequence[int],
    loss: str,
    weight_decay: float,
) -> Tensor:
    total = theta.new_zeros(())
    for i in batch:
        total = total + _sample_loss(module, theta, X[i], y[i], loss, weight_decay)
    return total / len(batch)


def _sample_grad(
    module: nn.Module, theta: Tensor, x: Tensor, y: Tensor, loss: str, weight_decay: float
) -> Tensor:
    w = theta.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_sample_loss(module, w, x, y, loss, weight_decay), w)
    return g.detach()


def clip_map(g: Tensor, clip_norm: float | None) -> Tensor:
    """g · min(1, C/‖g‖) (identity when C is None)."""
    if clip_norm is None:
        return g
    norm = torch.sqrt((g * g).sum())
    return g * (clip_norm / norm) if norm > clip_norm else g


def projection_map(v: Tensor, radius: float | None) -> Tensor:
    """v · min(1, R/‖v‖) (identity when R is None)."""
    return clip_map(v, radius)


def radial_jacobian(point: Tensor, radius: float | None) -> Tensor:
    """Dense Jacobian ``[d, d]`` of x ↦ x · min(1, r/‖x‖) at ``point`` (autograd of the map)."""
    d = point.numel()
    if radius is None or float(torch.sqrt((point * point).sum())) <= radius:
        return torch.eye(d, dtype=point.dtype)
    return torch.autograd.functional.jacobian(
        lambda p: p * (radius / torch.sqrt((p * p).sum())), point
    )


def step_map(
    module: nn.Module,
    theta: Tensor,
    X: Tensor,
    y: Tensor,
    batch: Sequence[int],
    lr: float,
    *,
    weights: Tensor | None = None,
    loss: str = "cross_entropy",
    weight_decay: float = 0.0,
    clip_norm: float | None = None,
    projection_radius: float | None = None,
) -> Tensor:
    """One training step Π(θ − η clip((1/|B|) Σ_i s_i ∇ℓ_i(θ))) with per-sample weights s (default 1).

    Differentiable in θ and in ``weights``: its Jacobian in θ is the exact propagator of the
    linearised step, and −∂/∂s_u is the exact first-order effect of dropping u (used to check the
    hand-written recursion of :func:`reference_hfocu`).
    """
    s = torch.ones(len(batch), dtype=theta.dtype) if weights is None else weights
    total = theta.new_zeros(())
    for k, i in enumerate(batch):
        total = total + s[k] * _sample_loss(module, theta, X[i], y[i], loss, weight_decay)
    (g,) = torch.autograd.grad(total / len(batch), theta, create_graph=True)
    return projection_map(theta - lr * clip_map(g, clip_norm), projection_radius)


def reference_hfocu(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    batches: Sequence[Sequence[int]],
    lrs: Sequence[float],
    *,
    weight_decay: float,
    loss: str = "cross_entropy",
    clip_norm: float | None = None,
    projection_radius: float | None = None,
    track: Iterable[int] | None = None,
    sets: Sequence[Iterable[int]] = (),
) -> ReferenceHFOCU:
    """Train by the module doc's SGD from ``model``'s parameters and run the HF-OCU recursion.

    Args:
        model: Initial model (deep-copied, put in eval mode; never modified).
        X: ``[n, ...]`` features (fp64 recommended); ``y`` targets.
        batches: Sample ids of every step's minibatch.
        lrs: η_t of every step.
        weight_decay: λ in every per-sample loss.
        loss: ``cross_entropy`` or ``mse``.
        clip_norm: Batch-gradient clip norm C, if training clips.
        projection_radius: R, if training projects.
        track: Ids whose a_u to compute (default: all rows).
        sets: Sets V whose a^V to compute by one recursion with the summed injection.
    """
    module = copy.deepcopy(model).eval()
    theta = flat_params(module)
    d = theta.numel()
    eye = torch.eye(d, dtype=theta.dtype)
    tracked = list(range(X.shape[0])) if track is None else [int(u) for u in track]
    a = {u: torch.zeros(d, dtype=theta.dtype) for u in tracked}
    set_list = [set(int(u) for u in V) for V in sets]
    a_sets = [torch.zeros(d, dtype=theta.dtype) for _ in set_list]
    clipped = projected = 0
    trajectory = [theta.clone()]
    for batch, lr in zip(batches, lrs, strict=True):
        batch = [int(i) for i in batch]
        n_b = float(len(batch))
        grads = {i: _sample_grad(module, theta, X[i], y[i], loss, weight_decay) for i in batch}
        g = torch.zeros(d, dtype=theta.dtype)
        for i in batch:
            g = g + grads[i]
        g = g / n_b
        H = torch.func.hessian(
            lambda t, batch=batch: _batch_objective(module, t, X, y, batch, loss, weight_decay)
        )(theta)
        J_clip = radial_jacobian(g, clip_norm)
        v = theta - lr * clip_map(g, clip_norm)
        J_proj = radial_jacobian(v, projection_radius)
        if clip_norm is not None and float(g.norm()) > clip_norm:
            clipped += 1
        if projection_radius is not None and float(v.norm()) > projection_radius:
            projected += 1
        propagator = eye - lr * (J_clip @ H)
        for u in tracked:
            new = propagator @ a[u]
            if u in grads:
                new = new + lr * (J_clip @ (grads[u] / n_b))
            a[u] = J_proj @ new
        for k, V in enumerate(set_list):
            inj = torch.zeros(d, dtype=theta.dtype)
            for u in V:
                if u in grads:
                    inj = inj + grads[u] / n_b
            a_sets[k] = J_proj @ (propagator @ a_sets[k] + lr * (J_clip @ inj))
        theta = projection_map(v, projection_radius).detach()
        trajectory.append(theta.clone())
    return ReferenceHFOCU(theta, a, a_sets, clipped, projected, trajectory)
