"""The Newton family on dense Hessians: Newton step (Sekhari et al.), damped, pseudo-inverse and
absolute-eigenvalue Newton, and the infinitesimal jackknife.

All of them move the trained θ* by −T(H) g, where g = ∇F_R(θ*) is the remaining-data gradient and
T a spectral filter of a Hessian (docs/curenewton.md, "What it computes"):

================  =====================================  ==========================================
method            filter of H = QΛQᵀ                     certified when
================  =====================================  ==========================================
``newton``        1/λ_i (Ĥ from the stored training      strongly convex, M-Hessian-Lipschitz,
                  Hessian minus the deleted samples')    declared optimality gap (Theorem 14)
``damped-newton`` 1/(λ_i + τ)                            same (Theorem 15, part 1)
``pinv-newton``   1/λ_i where |λ_i| > rtol·max|λ|, else 0 never (a baseline that fails on
``abs-newton``    1/|λ_i| (same cut-off)                  indefinite or near-singular H)
``influence``     θ* + (1/n) H_S⁻¹ Σ_U ∇ℓ_u (full-data   never
                  Hessian, no re-weighting)
================  =====================================  ==========================================

These need the dense d × d Hessian (``max_dense_dim`` guards memory); CureNewton
(:mod:`certunlearn.unlearn.curenewton`) works with HVPs only.

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> X = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    >>> X = X / X.norm(dim=1, keepdim=True); y = (X[:, 0] > 0).long()
    >>> un = DampedNewton(LogisticRegression(3, 2), weight_decay=0.1, damping=1e-3).fit(X, y)
    >>> res = un.forget([1, 2, 3])
    >>> res.extras["step_norm"] > 0
    True
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor, nn

from certunlearn.certify.assumptions import Assumptions, Bound
from certunlearn.certify.newton_bounds import damped_newton_bound, newton_step_bound
from certunlearn.errors import ConfigError, UnlearningError
from certunlearn.unlearn.base import register_unlearner
from certunlearn.unlearn.posthoc import PostHocUnlearner
from certunlearn.validation import check_int, check_nonnegative, check_positive

__all__ = ["AbsEigNewton", "DampedNewton", "InfluenceJackknife", "NewtonStep", "PinvNewton"]

DEFAULT_MAX_DENSE_DIM = 5000


def _check_dense(unlearner: PostHocUnlearner, max_dense_dim: int) -> int:
    """Refuse a model whose dense d x d Hessian is above ``max_dense_dim``; returns the limit."""
    limit = check_int("max_dense_dim", max_dense_dim, minimum=1)
    if unlearner.fm.dim > limit:
        raise ConfigError(
            f"{unlearner.name} needs a dense {unlearner.fm.dim} x {unlearner.fm.dim} Hessian (limit "
            f"max_dense_dim={limit}); use CureNewton with solver='lanczos' for large models"
        )
    return limit


def _training_hessian(unlearner: PostHocUnlearner) -> Tensor:
    """∇²F_S(θ*) over all training rows ``[d, d]``."""
    return unlearner.fm.dense_hessian(unlearner.theta_star, unlearner.X, unlearner.y, normalizer=unlearner.n,
                                      weight_decay=unlearner.weight_decay).detach()


class _DenseNewton(PostHocUnlearner):
    """Shared machinery: dense remaining-data Hessian, eigendecomposition, spectral filter."""

    def __init__(self, model: nn.Module, *, max_dense_dim: int = DEFAULT_MAX_DENSE_DIM, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.max_dense_dim = _check_dense(self, max_dense_dim)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "max_dense_dim": self.max_dense_dim}

    def remaining_hessian(self, deleted: list[int], keep: Tensor) -> Tensor:
        """∇²F_R(θ*) ``[d, d]``."""
        del deleted
        return self.hessian(self.theta_star, keep)

    @abc.abstractmethod
    def _filter(self, eigenvalues: Tensor) -> Tensor:
        """Spectral filter: weights w_i so that the step is −Q diag(w) Qᵀ g."""

    def _cholesky_shift(self) -> float | None:
        """τ for a step −(H + τI)⁻¹g by a Cholesky solve (the certified methods: its backward error is
        bounded, docs/theory.md Lemma 22); None for spectral filters (eigendecomposition)."""
        return None

    def _unlearn(self, deleted: list[int], keep: Tensor, generator: torch.Generator | None) -> tuple[Tensor, dict[str, Any], tuple[str, ...]]:
        del generator
        H = self.remaining_hessian(deleted, keep)
        g = self.gradient(self.theta_star, keep)
        symmetric = 0.5 * (H + H.T)
        shift, reasons = self._cholesky_shift(), ()
        if shift is not None:
            lam = torch.linalg.eigvalsh(symmetric)
            eye = torch.eye(symmetric.shape[0], dtype=symmetric.dtype, device=symmetric.device)
            factor, info = torch.linalg.cholesky_ex(symmetric + shift * eye)
            if int(info) == 0:
                step = -torch.cholesky_solve(g.unsqueeze(1), factor).squeeze(1)
            else:
                shift, reasons = None, ("the Hessian is not numerically positive definite: eigendecomposition used",)
        if shift is None:
            lam, Q = torch.linalg.eigh(symmetric)
            weights = self._filter(lam)
            if not bool(torch.isfinite(weights).all()):
                raise UnlearningError(f"{self.name}: the Hessian is singular on the remaining data; "
                                      "use damped-newton, pinv-newton or curenewton")
            step = -(Q @ (weights * (Q.T @ g)))
        extras = {"hessian_min_eig": float(lam[0]), "hessian_max_eig": float(lam[-1]),
                  "gradient_norm": float(g.norm())}
        return self.theta_star + step, extras, reasons


class NewtonStep(_DenseNewton):
    """One Newton step with a stored training Hessian (Sekhari, Acharya, Kamath, Suresh 2021).

    At fit time the training Hessian H_S = ∇²F_S(θ*) is computed and kept (O(d²) memory, the
    statistic T(S) of the paper). A request removes the deleted samples' Hessians,
    Ĥ = (n H_S − Σ_{u∈U} ∇²ℓ_u(θ*))/(n − m), and returns θ* − Ĥ⁻¹ ∇F_R(θ*). Certified by
    :func:`~certunlearn.certify.newton_bounds.newton_step_bound` where its assumptions hold.
    """

    name = "newton"

    def _fit_method(self) -> None:
        self.training_hessian_ = _training_hessian(self)

    def remaining_hessian(self, deleted: list[int], keep: Tensor) -> Tensor:
        Xu, yu = self._rows(deleted)
        removed = self.fm.dense_hessian(self.theta_star, Xu, yu, normalizer=1.0,
                                        weight_decay=self.weight_decay).detach()
        m = len(deleted)
        return (self.n * self.training_hessian_ - removed) / (self.n - m)

    def _filter(self, eigenvalues: Tensor) -> Tensor:
        return 1.0 / eigenvalues

    def _cholesky_shift(self) -> float | None:
        return 0.0

    def _method_bound(self, m: int, assumptions: Assumptions, gap: float) -> Bound | None:
        return newton_step_bound(n=self.n, m=m, assumptions=assumptions, optimality_gap=gap,
                                 precision=self.precision_)


class DampedNewton(_DenseNewton):
    """Damped Newton: θ* − (H_R + τI)⁻¹ g. ``damping`` τ ≥ 0 is fixed by hand (the method's weakness)."""

    name = "damped-newton"

    def __init__(self, model: nn.Module, *, damping: float = 1e-3, **kwargs: Any) -> None:
        self.damping = check_nonnegative("damping", damping)
        super().__init__(model, **kwargs)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "damping": self.damping}

    def _filter(self, eigenvalues: Tensor) -> Tensor:
        return 1.0 / (eigenvalues + self.damping)

    def _cholesky_shift(self) -> float | None:
        return self.damping

    def _method_bound(self, m: int, assumptions: Assumptions, gap: float) -> Bound | None:
        return damped_newton_bound(n=self.n, m=m, assumptions=assumptions, damping=self.damping,
                                   optimality_gap=gap, precision=self.precision_)


class _CutoffNewton(_DenseNewton):
    def __init__(self, model: nn.Module, *, rtol: float | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        eps = torch.finfo(self.fm.dtype).eps
        self.rtol = self.fm.dim * eps if rtol is None else check_positive("rtol", rtol)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "rtol": self.rtol}

    def _kept(self, eigenvalues: Tensor) -> Tensor:
        return eigenvalues.abs() > self.rtol * eigenvalues.abs().max()


class PinvNewton(_CutoffNewton):
    """Pseudo-inverse Newton: θ* − H_R⁺ g (drops only eigenvalues below ``rtol``·max|λ|)."""

    name = "pinv-newton"

    def _filter(self, eigenvalues: Tensor) -> Tensor:
        kept = self._kept(eigenvalues)
        return torch.where(kept, 1.0 / torch.where(kept, eigenvalues, 1.0), 0.0)


class AbsEigNewton(_CutoffNewton):
    """Absolute-eigenvalue Newton: θ* − Q|Λ|⁻¹Qᵀ g (fixes the sign of negative curvature, not its size)."""

    name = "abs-newton"

    def _filter(self, eigenvalues: Tensor) -> Tensor:
        kept = self._kept(eigenvalues)
        return torch.where(kept, 1.0 / torch.where(kept, eigenvalues.abs(), 1.0), 0.0)


class InfluenceJackknife(PostHocUnlearner):
    """Infinitesimal jackknife (influence functions): θ* + (1/n) H_S⁻¹ Σ_{u∈U} ∇ℓ_u(θ*).

    Uses the full-data Hessian at θ* (computed once, at fit time) and no re-weighting of the remaining samples,
    the first-order approximation of Koh & Liang (2017) and Giordano et al. (2019).
    """

    name = "influence"

    def __init__(self, model: nn.Module, *, max_dense_dim: int = DEFAULT_MAX_DENSE_DIM, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.max_dense_dim = _check_dense(self, max_dense_dim)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "max_dense_dim": self.max_dense_dim}

    def _fit_method(self) -> None:
        self.training_hessian_ = _training_hessian(self)

    def _unlearn(self, deleted: list[int], keep: Tensor, generator: torch.Generator | None) -> tuple[Tensor, dict[str, Any], tuple[str, ...]]:
        del keep, generator
        Xu, yu = self._rows(deleted)
        grads = self.fm.per_sample_grads(self.theta_star, Xu, yu, weight_decay=self.weight_decay).sum(dim=0)
        try:
            step = torch.linalg.solve(self.training_hessian_, grads) / self.n
        except RuntimeError as exc:  # torch.linalg.LinAlgError subclasses RuntimeError
            raise UnlearningError(f"influence: the training Hessian is singular ({exc})") from exc
        return self.theta_star + step, {}, ()


for _cls in (NewtonStep, DampedNewton, PinvNewton, AbsEigNewton, InfluenceJackknife):
    register_unlearner(_cls.name, _cls)
