"""CureNewton: cubic-regularised Newton steps on the remaining-data loss (Bui et al., arXiv 2406.14507).

From the trained θ*, each iteration takes the global minimiser d of the cubic model of the
remaining-data objective F_R,

    m(d) = gᵀd + ½ dᵀHd + (M/6)‖d‖³,      g = ∇F_R(θ),  H = ∇²F_R(θ),

which exists and is bounded even when H is singular or indefinite (where Newton, pseudo-inverse and
|eig| Newton explode). A step is **accepted only if the retained loss does not rise above the model's
prediction**, F_R(θ + d) − F_R(θ) ≤ m(d) ≤ 0; otherwise M doubles and the step is recomputed from
the same factorisation (adaptive M; after an accepted step M halves, as ARC does after a very
successful step). With M ≥ the Hessian-Lipschitz constant the cubic model majorises F_R, so such a
step is always accepted.

g and the HVPs come from all remaining data, or from a seeded minibatch per iteration
(``batch_size``, the stochastic variant for large data; the acceptance test always uses all remaining
data). The subproblem is solved exactly (dense H) or by Lanczos (HVPs only).

Certificates: by refinement (the default for softmax regression with weight decay: the output is the
start of Newton steps on F_R until the measured distance to its minimiser is within the public budget,
docs/theory.md §10), or worst case: only for strongly convex objectives with public constants, a
declared optimality gap, full-batch g and H, and the exact solver, whose steps are then taken by a
Cholesky solve at the solver's multiplier (docs/theory.md, Theorem 15 and Lemma 22); otherwise the
result is uncertified (and may still carry user-chosen noise).

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> X = torch.randn(60, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> X = X / X.norm(dim=1, keepdim=True); y = (X[:, 0] > 0).long()
    >>> res = CureNewton(LogisticRegression(4, 2), weight_decay=0.1, iterations=3).fit(X, y).forget([0, 1])
    >>> res.extras["retained_loss"] <= res.extras["retained_loss_before"]
    True
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from certunlearn.autodiff.cubic import CubicCache, CubicStep, cubic_model, solve_cubic
from certunlearn.certify.assumptions import Assumptions, Bound
from certunlearn.certify.cubic_newton_bounds import cubic_newton_bound
from certunlearn.unlearn.base import register_unlearner
from certunlearn.unlearn.posthoc import PostHocUnlearner
from certunlearn.validation import check_choice, check_int, check_nonnegative, check_positive

__all__ = ["CureNewton"]

_GROWTH = 2.0
_EXACT_MAX_DIM = 2000
_SLACK_CAP = 1e-9  # largest rise of the retained loss an accepted step may show (public: the bound uses it)


def _cholesky_step(step: CubicStep, g: Tensor, H: Tensor, hvp: Any, M: float) -> tuple[CubicStep, str | None]:
    """The certified step: d = −(H + αI)⁻¹g by a Cholesky solve at the solver's α (a bounded backward
    error, docs/theory.md Lemma 22), and the check α ≤ (M/2)‖d‖ that the bound's cap on α relies on."""
    eye = torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    factor, info = torch.linalg.cholesky_ex(0.5 * (H + H.T) + step.alpha * eye)
    if int(info) != 0:
        return step, "H + alpha I is not numerically positive definite: the step's rounding is unbounded"
    d = -torch.cholesky_solve(g.unsqueeze(1), factor).squeeze(1)
    problem = None
    if step.alpha > 0.5 * M * float(d.norm()) * (1 + 1e-6) + 1e-300:
        problem = "the cubic multiplier exceeds (M/2)||d||: the secular equation was not solved"
    return replace(step, step=d, model_decrease=-cubic_model(g, hvp, M, d), hvp_count=step.hvp_count + 1), problem


class CureNewton(PostHocUnlearner):
    """Cubic-regularised Newton unlearning of an already trained model.

    Args:
        model: The trained model (θ* = its parameters); never modified.
        cubic_reg: Initial cubic regularisation M (> 0).
        adaptive: Double M after a rejected step; halve it after an accepted one.
        iterations: Maximum number of accepted steps.
        solver: ``exact`` (dense Hessian), ``lanczos`` (HVPs only) or ``auto`` (exact up to
            2000 parameters).
        max_krylov_dim: Largest Krylov dimension of the Lanczos solver.
        krylov_tol: Relative tolerance on the model decrease that stops Lanczos.
        batch_size: If set, g and H are estimated on a fresh minibatch of the remaining data at every
            iteration (stochastic variant; never certified).
        seed: Seed of those minibatches (their own generator, never the release noise's).
        max_trials: Rejected steps allowed in total before giving up.
        grad_tol: Stop when ‖∇F_R(θ)‖ ≤ this.
        **kwargs: :class:`~certunlearn.unlearn.posthoc.PostHocUnlearner` options (``weight_decay``,
            ``loss``, ``assumptions``, ``feature_norm_bound``, ``optimality_gap``,
            ``noise_sensitivity``, ``calibration``, ``ledger``).

    ``fit(X, y)`` attaches the training features and targets (ids = rows).
    """

    name = "curenewton"

    def __init__(
        self,
        model: nn.Module,
        *,
        cubic_reg: float = 1.0,
        adaptive: bool = True,
        iterations: int = 1,
        solver: str = "auto",
        max_krylov_dim: int = 50,
        krylov_tol: float = 1e-8,
        batch_size: int | None = None,
        max_trials: int = 40,
        grad_tol: float = 0.0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        self.cubic_reg = check_positive("cubic_reg", cubic_reg)
        self.adaptive = bool(adaptive)
        self.iterations = check_int("iterations", iterations, minimum=1)
        self.solver = check_choice("solver", solver, ("auto", "exact", "lanczos"))
        self.max_krylov_dim = check_int("max_krylov_dim", max_krylov_dim, minimum=1)
        self.krylov_tol = check_positive("krylov_tol", krylov_tol)
        self.batch_size = None if batch_size is None else check_int("batch_size", batch_size, minimum=1)
        self.max_trials = check_int("max_trials", max_trials, minimum=0)
        self.grad_tol = check_nonnegative("grad_tol", grad_tol)
        self.seed = check_int("seed", seed, minimum=0)
        super().__init__(model, **kwargs)
        self.method_ = (
            ("exact" if self.fm.dim <= _EXACT_MAX_DIM else "lanczos") if self.solver == "auto" else self.solver
        )

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "cubic_reg": self.cubic_reg, "adaptive": self.adaptive,
                "iterations": self.iterations, "solver": self.solver, "max_krylov_dim": self.max_krylov_dim,
                "krylov_tol": self.krylov_tol, "batch_size": self.batch_size, "max_trials": self.max_trials,
                "grad_tol": self.grad_tol, "seed": self.seed}

    # ------------------------------------------------------------------ certificate
    def _hessian_lipschitz(self) -> float | None:
        a = self.assumptions_
        return None if a is None else a.hessian_lipschitz

    def max_cubic_reg(self) -> float:
        """M̄, the largest M any accepted step can use (public): max(M₀, 2·M_H) when adaptive."""
        lipschitz = self._hessian_lipschitz()
        if self.adaptive and lipschitz is not None:
            return max(self.cubic_reg, _GROWTH * lipschitz)
        return self.cubic_reg

    def _certifying(self) -> bool:
        return (self.assumptions_ is not None and self._hessian_lipschitz() is not None
                and self.batch_size is None and self.method_ == "exact")

    def _method_bound(self, m: int, assumptions: Assumptions, gap: float) -> Bound | None:
        return cubic_newton_bound(n=self.n, m=m, assumptions=assumptions, cubic_reg=self.max_cubic_reg(),
                                  iterations=self.iterations, optimality_gap=gap, acceptance_slack=_SLACK_CAP,
                                  precision=self.precision_)

    # ------------------------------------------------------------------ the steps
    def _estimates(self, theta: Tensor, keep: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Any, Tensor | None]:
        """g, v ↦ Hv and the dense H (exact solver only), on the remaining rows or a minibatch of them."""
        X, y, count = self._remaining(keep)
        if self.batch_size is not None and self.batch_size < count:
            pick = torch.randperm(count, generator=generator, device="cpu")[: self.batch_size]
            pick = pick.to(X.device)
            X, y, count = X[pick], y[pick], pick.numel()
        if self.method_ == "exact":
            H = self.fm.dense_hessian(theta, X, y, normalizer=count, weight_decay=self.weight_decay).detach()
            g = self.fm.objective_grad(theta, X, y, normalizer=count, weight_decay=self.weight_decay).detach()
            return g, H.__matmul__, H
        g, hvp = self.fm.grad_and_hvp_fn(theta, X, y, normalizer=count, weight_decay=self.weight_decay)
        return g, hvp, None

    def _unlearn(self, deleted: list[int], keep: Tensor, generator: torch.Generator | None) -> tuple[Tensor, dict[str, Any], tuple[str, ...]]:
        del deleted, generator  # minibatches come from their own seeded generator, not the noise's
        order = torch.Generator().manual_seed(self.seed)
        certifying = self._certifying()
        lipschitz = self._hessian_lipschitz()
        theta = self.theta_star.clone()
        M = self.cubic_reg
        loss_before = float(self.objective(theta, keep))
        accepted = trials = hvps = 0
        history: list[dict[str, float | bool]] = []
        uncertain: set[str] = set()
        stop = False
        f0 = loss_before
        for _ in range(self.iterations):
            g, hvp, H = self._estimates(theta, keep, order)
            if float(g.norm()) <= self.grad_tol:
                break
            cache = CubicCache()  # same g and H for every trial at this iterate: factorise once
            while True:
                step = solve_cubic(g, hvp, M, method=self.method_, hessian=H, cache=cache,
                                   max_krylov_dim=self.max_krylov_dim, tol=self.krylov_tol)
                if certifying and H is not None and self.certificate_ == "worst-case":
                    step, problem = _cholesky_step(step, g, H, hvp, M)
                    if problem:
                        uncertain.add(problem)
                hvps += step.hvp_count
                trials += 1
                predicted = -step.model_decrease  # m(d) ≤ 0
                f_trial = float(self.objective(theta + step.step, keep))
                actual = f_trial - f0
                slack = min(1e-12 * max(1.0, abs(f0)), _SLACK_CAP)
                majorised = certifying and lipschitz is not None and M >= lipschitz
                ok = actual <= predicted + slack or (majorised and actual <= slack)
                history.append({"cubic_reg": M, "predicted_change": predicted, "actual_change": actual,
                                "accepted": ok, "step_norm": float(step.step.norm()),
                                "alpha": step.alpha})
                if ok:
                    theta, f0 = theta + step.step, f_trial
                    accepted += 1
                    # accepted means actual ≤ predicted (ρ ≥ 1), a "very successful" step in ARC's terms
                    # (Cartis, Gould & Toint 2011): try a weaker regularisation next
                    if self.adaptive:
                        M = M / _GROWTH
                    break
                if not self.adaptive or trials - accepted >= self.max_trials:
                    stop = True
                    break
                M *= _GROWTH
            if stop:
                break
        reasons: list[str] = []
        if self.batch_size is not None:
            reasons.append("stochastic (minibatch) gradient and Hessian estimates")
        if self.method_ != "exact":
            reasons.append("the Lanczos solution of the cubic subproblem is approximate")
        if accepted == 0:
            reasons.append("no cubic step was accepted: the model is returned unchanged")
        reasons.extend(sorted(uncertain))
        largest = max((float(h["cubic_reg"]) for h in history if h["accepted"]), default=0.0)
        if certifying and largest > self.max_cubic_reg() * (1 + 1e-12):
            reasons.append("the adaptive M exceeded the public cap of the bound")
        extras: dict[str, Any] = {
            "solver": self.method_, "accepted_steps": accepted, "trials": trials, "hvp_count": hvps,
            "final_cubic_reg": M, "retained_loss_before": loss_before, "history": history,
        }
        return theta, extras, tuple(reasons)


register_unlearner(CureNewton.name, CureNewton)
