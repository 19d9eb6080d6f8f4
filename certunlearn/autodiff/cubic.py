"""The cubic-regularised Newton subproblem: minimise m(d) = gᵀd + ½ dᵀHd + (M/6)‖d‖³.

Its global minimiser satisfies (H + αI) d = −g with α = (M/2)‖d‖ and H + αI ⪰ 0 (Nesterov & Polyak
2006; Cartis, Gould & Toint 2011), so it exists and is bounded whether H is positive definite,
singular or indefinite. Two solvers, chosen by ``method``:

* ``exact``: eigendecomposition H = QΛQᵀ (a dense H given, or built from d HVPs), then the secular
  equation ‖(Λ + αI)⁻¹Qᵀg‖ = 2α/M solved on α > max(0, −λ₁) by Brent's method; the *hard case*
  (g orthogonal to the bottom eigenvector of an indefinite H) is detected and resolved by adding a
  multiple of that eigenvector.
* ``lanczos``: k steps of Lanczos with full re-orthogonalisation from g give an orthonormal basis V_k
  and a tridiagonal T_k; the k-dimensional subproblem with right-hand side ‖g‖e₁ is solved exactly and
  d = V_k y. k grows until the model decrease changes by less than ``tol`` (relative) between two
  solves of the small problem (after each of the first 5 steps, then every 5th). Cost: k HVPs and
  k·d memory. Like every Krylov method it cannot see a hard case (g ⟂ q₁ keeps q₁ out of the space).

Example:
    >>> H = torch.diag(torch.tensor([-1.0, 2.0], dtype=torch.float64))
    >>> g = torch.tensor([0.5, 1.0], dtype=torch.float64)
    >>> step = solve_cubic(g, lambda v: H @ v, 1.0, method="exact")
    >>> bool(torch.allclose((H + step.alpha * torch.eye(2, dtype=torch.float64)) @ step.step, -g))
    True
    >>> abs(step.alpha - 0.5 * step.step.norm().item()) < 1e-12   # α = (M/2)‖d‖
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import brentq
from torch import Tensor

from certunlearn.errors import ConfigError, InputError
from certunlearn.validation import check_choice, check_int, check_positive

__all__ = ["CUBIC_METHODS", "CubicCache", "CubicStep", "cubic_model", "solve_cubic"]

HVP = Callable[[Tensor], Tensor]


@dataclass(frozen=True, slots=True)
class CubicStep:
    """Solution of the cubic subproblem.

    Attributes:
        step: The minimiser d (same dtype and device as g).
        alpha: The multiplier α = (M/2)‖d‖ with (H + αI)d = −g.
        model_decrease: −m(d) ≥ 0, the decrease the cubic model predicts.
        hvp_count: Hessian-vector products used (d for ``exact`` without a dense H).
        method: ``exact`` or ``lanczos``.
        hard_case: True when the exact solver resolved the hard case.
        krylov_dim: Dimension of the Krylov space (``lanczos``), else 0.
    """

    step: Tensor
    alpha: float
    model_decrease: float
    hvp_count: int
    method: str
    hard_case: bool = False
    krylov_dim: int = 0


def cubic_model(g: Tensor, hvp: HVP, M: float, d: Tensor) -> float:
    """Evaluate m(d) = gᵀd + ½ dᵀHd + (M/6)‖d‖³ (one HVP).

    Example:
        >>> g = torch.tensor([1.0, 0.0]); d = torch.tensor([-1.0, 0.0])
        >>> cubic_model(g, lambda v: v, 6.0, d)   # −1 + ½ + 1
        0.5
    """
    return float(g @ d + 0.5 * (d @ hvp(d)) + (M / 6.0) * d.norm() ** 3)


def _secular_solution(
    lam: np.ndarray, gt: np.ndarray, M: float
) -> tuple[np.ndarray, float, bool]:
    """Minimise Σ gt_i y_i + ½ Σ λ_i y_i² + (M/6)‖y‖³ in the eigenbasis; returns (y, α, hard_case).

    Every threshold is relative to the problem's own scale, so rescaling (g, H, M) → (cg, cH, cM)
    rescales nothing but the answer's units.
    """
    g_norm = float(np.linalg.norm(gt))
    lam1 = float(lam[0])
    scale = max(float(np.abs(lam).max()), math.sqrt(M * g_norm))
    if scale == 0.0 or (g_norm == 0.0 and lam1 >= 0.0):
        return np.zeros_like(gt), 0.0, False
    low = max(0.0, -lam1)
    tiny = 1e-13 * scale

    base = lam + low  # ≥ 0, exactly 0 for the bottom eigenvalue when low = −λ₁

    def y_of(s: float) -> np.ndarray:
        # (λ + low) + s, not λ + (low + s): when s ≪ low, rounding low + s would lose most of s and
        # with it the length of the component along the bottom eigenvector
        return -gt / (base + s)

    def psi(s: float) -> float:  # decreasing in s = α − low on (0, ∞)
        return float(np.linalg.norm(y_of(s))) - 2.0 * (low + s) / M

    if lam1 > tiny:  # positive definite: ψ(0) = ‖H⁻¹g‖ > 0, the root may be arbitrarily close to 0
        lo = 0.0
    elif psi(tiny) > 0.0:
        lo = tiny
    else:
        # Hard case (or numerically so): the root sits at α = low. Solve on the eigenvalues above λ₁
        # and fill the missing length along the bottom eigenvector.
        alpha = low
        shifted = lam + alpha
        easy = shifted > tiny
        y = np.zeros_like(gt)
        y[easy] = -gt[easy] / shifted[easy]
        if easy[0]:  # nothing to fill: the bottom direction is an ordinary one
            return y, alpha, False
        target = 2.0 * alpha / M
        tau = math.sqrt(max(target * target - float(y @ y), 0.0))
        y[0] = tau if gt[0] <= 0.0 else -tau  # the sign that does not increase gᵀd
        return y, alpha, True
    # Upper bracket: every λ_i + low + s ≥ s, so ‖y‖ ≤ ‖g‖/s and ψ(s) ≤ ‖g‖/s − 2s/M ≤ 0 once
    # s ≥ √(M‖g‖/2). Starting there saves the ~40 doublings up from `tiny`; the loop stays as a guard.
    hi = max(lo, tiny, math.sqrt(0.5 * M * g_norm))
    while psi(hi) > 0.0:
        lo, hi = hi, 2.0 * hi
        if not math.isfinite(hi):
            raise InputError("cubic subproblem: could not bracket the secular equation")
    s = brentq(psi, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    return y_of(s), low + s, False


class CubicCache:
    """Factorisations of one (g, H) pair, reused when only M changes (e.g. after a rejected step).

    Pass the same instance to successive :func:`solve_cubic` calls with the same g and H: the exact
    solver keeps H's eigendecomposition, the Lanczos solver its Krylov basis and tridiagonal matrix,
    so a new M costs no further HVPs.

    Example:
        >>> H = torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64))
        >>> g = torch.tensor([1.0, 1.0], dtype=torch.float64)
        >>> cache = CubicCache()
        >>> solve_cubic(g, lambda v: H @ v, 1.0, method="lanczos", cache=cache).hvp_count
        2
        >>> solve_cubic(g, lambda v: H @ v, 4.0, method="lanczos", cache=cache).hvp_count
        0
    """

    def __init__(self) -> None:
        self.spectral: tuple[Tensor, Tensor] | None = None
        self.krylov: tuple[Tensor, list[float], list[float]] | None = None


def _exact(g: Tensor, hvp: HVP, M: float, hessian: Tensor | None, cache: CubicCache | None) -> CubicStep:
    d = g.numel()
    count = 0
    if cache is not None and cache.spectral is not None:
        lam, Q = cache.spectral
    else:
        if hessian is None:
            eye = torch.eye(d, dtype=g.dtype, device=g.device)
            hessian = torch.stack([hvp(eye[i]) for i in range(d)], dim=1)
            count = d
        if hessian.shape != (d, d):
            raise InputError(f"hessian must be [{d}, {d}], got {tuple(hessian.shape)}")
        H = hessian.detach().to(device="cpu", dtype=torch.float64)
        lam, Q = torch.linalg.eigh(0.5 * (H + H.T))
        if cache is not None:
            cache.spectral = (lam, Q)
    gt = (Q.T @ g.detach().to(device="cpu", dtype=torch.float64)).numpy()
    y, alpha, hard = _secular_solution(lam.numpy(), gt, M)
    step64 = Q @ torch.from_numpy(y)
    value = float(gt @ y + 0.5 * (lam.numpy() * y * y).sum() + (M / 6.0) * np.linalg.norm(y) ** 3)
    return CubicStep(step64.to(dtype=g.dtype, device=g.device), alpha, -value, count, "exact", hard)


def _solve_tridiagonal(g_norm: float, alphas: list[float], betas: list[float], M: float) -> tuple[np.ndarray, float, float]:
    """The Krylov subproblem with T = tridiag(betas, alphas, betas) and right-hand side ‖g‖e₁."""
    k = len(alphas)
    T = np.diag(alphas) + np.diag(betas[: k - 1], 1) + np.diag(betas[: k - 1], -1)
    lam, Qt = np.linalg.eigh(T)
    rhs = np.zeros(k)
    rhs[0] = g_norm
    z, alpha, _ = _secular_solution(lam, Qt.T @ rhs, M)
    y = Qt @ z
    value = float(rhs @ y + 0.5 * y @ T @ y + (M / 6.0) * np.linalg.norm(y) ** 3)
    return y, alpha, value


_CHECK_EVERY = 5
"""Lanczos re-solves its k-dimensional subproblem (the stopping test) after each of the first
_CHECK_EVERY steps, then after every _CHECK_EVERY-th: each solve costs an eigendecomposition and a
root search, about a third of the solver's time on small networks when done at every step."""


def _lanczos(g: Tensor, hvp: HVP, M: float, max_dim: int, tol: float, cache: CubicCache | None) -> CubicStep:
    g_norm = float(g.norm())
    if g_norm == 0.0:
        return CubicStep(torch.zeros_like(g), 0.0, 0.0, 0, "lanczos")
    count = 0
    solved = None  # the last check's solution, reused when Lanczos stops right after it
    if cache is not None and cache.krylov is not None:
        V, alphas, betas = cache.krylov
    else:
        k_max = min(max_dim, g.numel())
        basis = g.new_empty((k_max, g.numel()))  # k·d memory, filled row by row
        basis[0] = g / g_norm
        alphas, betas = [], []
        previous = None
        t_norm = 0.0
        for j in range(k_max):
            w = hvp(basis[j])
            count += 1
            a = float(w @ basis[j])
            alphas.append(a)
            done = basis[: j + 1]
            for _ in range(2):  # full re-orthogonalisation, twice is enough (Kahan–Parlett)
                w = w - done.T @ (done @ w)
            b = float(w.norm())
            t_norm = max(t_norm, abs(a), b)
            if j + 1 == k_max or b <= 1e-12 * t_norm:  # relative: an invariant subspace was found
                break
            if j < _CHECK_EVERY or (j + 1) % _CHECK_EVERY == 0:
                solved = _solve_tridiagonal(g_norm, alphas, betas, M)
                value = solved[2]
                if previous is not None and abs(value - previous) <= tol * abs(value):
                    break
                solved, previous = None, value
            betas.append(b)
            basis[j + 1] = w / b
        V = basis[: len(alphas)]
        if cache is not None:
            cache.krylov = (V, alphas, betas)
    y, alpha, value = solved if solved is not None else _solve_tridiagonal(g_norm, alphas, betas, M)
    step = V.T @ torch.as_tensor(y, dtype=g.dtype, device=g.device)
    return CubicStep(step, alpha, -value, count, "lanczos", False, len(alphas))


CUBIC_METHODS = ("exact", "lanczos")


def solve_cubic(
    g: Tensor,
    hvp: HVP,
    M: float,
    method: str = "exact",
    *,
    hessian: Tensor | None = None,
    max_krylov_dim: int = 100,
    tol: float = 1e-8,
    cache: CubicCache | None = None,
) -> CubicStep:
    """Globally minimise gᵀd + ½ dᵀHd + (M/6)‖d‖³.

    Args:
        g: Gradient, a 1-D tensor ``[d]``.
        hvp: v ↦ Hv for 1-D tensors (H symmetric).
        M: Cubic regularisation (> 0); M → 0 approaches Newton's step, M → ∞ a short gradient step.
        method: ``exact`` (eigendecomposition; for d up to a few thousand) or ``lanczos`` (HVPs only).
        hessian: Optional dense ``[d, d]`` H for ``exact`` (saves d HVPs).
        max_krylov_dim: Largest Krylov dimension k for ``lanczos``.
        tol: ``lanczos`` stops when the model decrease changes by less than this (relative) between
            two checks (after each of the first 5 Lanczos steps, then after every 5th).
        cache: A :class:`CubicCache` shared by calls with the same g and H (only M differs).

    Returns:
        :class:`CubicStep` with the step, α, the predicted decrease −m(d) and the HVP count.

    Raises:
        InputError: g not 1-D or not finite.
        ConfigError: M ≤ 0 or an unknown method.

    Example:
        >>> g = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
        >>> H = torch.diag(torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64))
        >>> a = solve_cubic(g, lambda v: H @ v, 0.3, method="exact")
        >>> b = solve_cubic(g, lambda v: H @ v, 0.3, method="lanczos")
        >>> bool(torch.allclose(a.step, b.step, atol=1e-8)), a.model_decrease > 0
        (True, True)
    """
    if g.ndim != 1 or g.numel() == 0:
        raise InputError(f"g must be a non-empty 1-D tensor, got shape {tuple(g.shape)}")
    if not bool(torch.isfinite(g).all()):
        raise InputError("g contains NaN or infinite values")
    M = check_positive("M", M)
    method = check_choice("method", method, CUBIC_METHODS)
    if method == "exact":
        return _exact(g, hvp, M, hessian, cache)
    max_dim = check_int("max_krylov_dim", max_krylov_dim, minimum=1)
    tol = check_positive("tol", tol)
    if hessian is not None:
        raise ConfigError("hessian= is only used by method='exact'")
    return _lanczos(g, hvp, M, max_dim, tol, cache)
