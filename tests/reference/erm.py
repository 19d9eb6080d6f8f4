"""Slow, obvious references for regularised empirical-risk minimisers (float64, torch.autograd).

* Softmax regression: ``F(θ) = (1/n) Σ CE(W x + b, y) + (λ/2)‖θ‖²`` with ``θ = [vec W; b]`` (weight
  row-major, then bias: the order of ``certunlearn.models.LogisticRegression``), written with
  ``torch.nn.functional.cross_entropy``; its gradient and Hessian by ``torch.autograd.functional``
  and its minimiser by a damped Newton iteration (``newton_minimise``).
* Ridge regression: ``(1/|R|) Σ_R ½(wᵀx + b − y)² + (λ/2)(‖w‖² + b²)`` in closed form
  (``ridge_solution``).

Nothing here calls certunlearn: the tests compare the library against these.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ce_objective(theta: Tensor, X: Tensor, y: Tensor, lam: float, K: int) -> Tensor:
    """(1/n) Σ CE(Wx + b, y) + (λ/2)‖θ‖², θ = [vec W; b]."""
    p = X.shape[1]
    W, b = theta[: K * p].view(K, p), theta[K * p :]
    return F.cross_entropy(X @ W.T + b, y) + 0.5 * lam * theta.pow(2).sum()


def ce_grad(theta: Tensor, X: Tensor, y: Tensor, lam: float, K: int) -> Tensor:
    """∇F(θ) by autograd."""
    return torch.autograd.functional.jacobian(lambda t: ce_objective(t, X, y, lam, K), theta)


def ce_hessian(theta: Tensor, X: Tensor, y: Tensor, lam: float, K: int) -> Tensor:
    """∇²F(θ) (dense) by autograd."""
    return torch.autograd.functional.hessian(lambda t: ce_objective(t, X, y, lam, K), theta)


def newton_minimise(X: Tensor, y: Tensor, lam: float, K: int, start: Tensor | None = None) -> Tensor:
    """argmin F (strongly convex) in float64: damped Newton (Armijo backtracking while ‖∇F‖ > 1e-6)
    until ‖∇F‖ < 1e-13, then two more full steps (quadratic convergence: the result sits at the
    float64 floor)."""
    X = X.to(torch.float64)
    d = K * (X.shape[1] + 1)
    theta = torch.zeros(d, dtype=torch.float64) if start is None else start.to(torch.float64).clone()
    extra = 0
    for _ in range(200):
        g = ce_grad(theta, X, y, lam, K)
        if float(g.norm()) < 1e-13:
            extra += 1
            if extra > 2:
                break
        step = torch.linalg.solve(ce_hessian(theta, X, y, lam, K), g)
        f0, t, slope = float(ce_objective(theta, X, y, lam, K)), 1.0, float(g @ step)
        if float(g.norm()) > 1e-6:
            while float(ce_objective(theta - t * step, X, y, lam, K)) > f0 - 1e-4 * t * slope and t > 1e-10:
                t *= 0.5
        theta = theta - t * step
    assert float(ce_grad(theta, X, y, lam, K).norm()) < 1e-13
    return theta


def ridge_solution(X: Tensor, y: Tensor, keep: Tensor, lam: float) -> Tensor:
    """argmin over the kept rows R: (X̃ᵀX̃/|R| + λI)θ = X̃ᵀy/|R| with X̃ = [X, 1]."""
    Xr, yr = X[keep], y[keep]
    r = Xr.shape[0]
    Xt = torch.cat([Xr, torch.ones(r, 1, dtype=X.dtype)], dim=1)
    A = Xt.T @ Xt / r + lam * torch.eye(Xt.shape[1], dtype=X.dtype)
    return torch.linalg.solve(A, Xt.T @ yr / r)
