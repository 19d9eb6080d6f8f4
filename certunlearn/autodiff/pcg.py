"""Preconditioned conjugate gradients for Hx = g with H symmetric positive definite, given by HVPs.

The refine certificate (:mod:`certunlearn.unlearn.refine`) solves one such system per Newton step.
The solver's accuracy never enters a certificate: the residual of the returned x is recomputed with a
fresh HVP and bounded there. Preconditioners only change the speed: a Cholesky factor of a nearby
Hessian (a few iterations), its diagonal, or none.

Example:
    >>> H = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> g = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> sol = conjugate_gradients(H.__matmul__, g, stop=lambda x, r: bool(r.norm() < 1e-12))
    >>> bool(torch.allclose(H @ sol.x, g)), sol.iterations <= 2
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from certunlearn.errors import UnlearningError
from certunlearn.validation import check_int

__all__ = ["CGSolution", "Preconditioner", "cholesky_preconditioner", "conjugate_gradients", "diagonal_preconditioner"]

Preconditioner = Callable[[Tensor], Tensor]
"""r ↦ P⁻¹ r for a symmetric positive definite P ≈ H."""


@dataclass(frozen=True, slots=True)
class CGSolution:
    """The approximate solution, the iterations used and the recursive residual (not re-measured)."""

    x: Tensor
    iterations: int
    residual: Tensor


def conjugate_gradients(
    hvp: Callable[[Tensor], Tensor],
    g: Tensor,
    *,
    stop: Callable[[Tensor, Tensor], bool],
    preconditioner: Preconditioner | None = None,
    max_iter: int = 250,
) -> CGSolution:
    """PCG from x = 0 until ``stop(x, residual)`` or ``max_iter`` iterations.

    Args:
        hvp: v ↦ Hv (H symmetric positive definite).
        g: Right-hand side ``[d]``.
        stop: Called after every iteration with the iterate and its recursive residual g − Hx.
        preconditioner: r ↦ P⁻¹r, or None.
        max_iter: Iteration cap (≥ 1).

    Raises:
        UnlearningError: H is not positive definite along a search direction.
    """
    max_iter = check_int("max_iter", max_iter, minimum=1)
    apply = preconditioner or (lambda r: r)
    x = torch.zeros_like(g)
    r = g.clone()
    if float(r.norm()) == 0.0:
        return CGSolution(x, 0, r)
    z = apply(r)
    p = z.clone()
    rz = float(r @ z)
    k = 0
    while k < max_iter:
        hp = hvp(p)
        curvature = float(p @ hp)
        if not curvature > 0.0:
            raise UnlearningError(f"conjugate gradients met non-positive curvature {curvature:.3g}: the Hessian is "
                                  "not positive definite")
        a = rz / curvature
        x.add_(p, alpha=a)
        r.sub_(hp, alpha=a)
        k += 1
        if stop(x, r):
            break
        z = apply(r)
        rz_next = float(r @ z)
        p.mul_(rz_next / rz).add_(z)
        rz = rz_next
    return CGSolution(x, k, r)


def cholesky_preconditioner(hessian: Tensor) -> Preconditioner | None:
    """P⁻¹r = H⁻¹r from a Cholesky factor of a dense ``[d, d]`` Hessian; None if it is not positive definite.

    Example:
        >>> P = cholesky_preconditioner(torch.eye(2, dtype=torch.float64) * 2)
        >>> [round(v, 12) for v in P(torch.ones(2, dtype=torch.float64)).tolist()]
        [0.5, 0.5]
    """
    factor, info = torch.linalg.cholesky_ex(0.5 * (hessian + hessian.T))
    if int(info) != 0:
        return None
    # the inverse once (d³/3 more flops): every application is then one matrix-vector product, several
    # times faster than two triangular solves per call; a preconditioner needs no more accuracy
    inverse = torch.cholesky_inverse(factor)

    def apply(r: Tensor) -> Tensor:
        return inverse @ r

    return apply


def diagonal_preconditioner(diagonal: Tensor) -> Preconditioner:
    """P⁻¹r = r / diag (Jacobi); entries are floored at the smallest positive one.

    Example:
        >>> diagonal_preconditioner(torch.tensor([2.0, 4.0]))(torch.ones(2)).tolist()
        [0.5, 0.25]
    """
    positive = diagonal[diagonal > 0]
    floor = float(positive.min()) if positive.numel() else 1.0
    inverse = 1.0 / diagonal.clamp(min=floor)
    return lambda r: r * inverse
