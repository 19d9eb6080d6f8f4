"""Certify by refinement: Newton steps on the remaining-data objective until a measured bound meets the budget.

The reference is the **exact retrain** w*_R = argmin F_R,

    F_R(θ) = (1/|R|) Σ_{i∈R} [loss(f_θ(x_i), y_i) + (λ/2)‖θ‖²],      R = the remaining rows,

a deterministic function of the remaining data, hence a model that never saw the deleted rows. From
any start (an unlearner's output, a stored ERM anchor, the trained model) :class:`Refiner` takes
Newton-CG steps on F_R (Hessian-vector products only, preconditioned) and after every step measures
the bound of docs/theory.md, Theorem 23, in float64 with every rounding error bounded
(:mod:`certunlearn.certify.rounding`). It stops at the first iterate whose measured bound is within
the public budget Δ_b; that iterate, in the model's dtype, is the candidate the release adds noise to
(σ from Δ_b, never from the bound: Theorem 24). When the steps run out it restarts from the fallback
start (an exact retrain from the trained model); if that also fails it refuses, and nothing is
released.

Which models: softmax regression (:class:`~certunlearn.models.LogisticRegression`, cross-entropy,
weight decay λ > 0: F_R is λ-strongly convex, its Hessian Lipschitz constant and rounding are proved
in docs/theory.md §4 and §9), or any model with declared :class:`~certunlearn.certify.assumptions.Assumptions`
(convex, λ > 0, M, and a declared error model).

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> X = torch.randn(80, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> y = (X[:, 0] > 0).long()
    >>> obj, why = ErmObjective.build(LogisticRegression(3, 2), X, y, weight_decay=0.1)
    >>> refiner = Refiner(obj, reference=torch.zeros(8, dtype=torch.float64))
    >>> keep = torch.ones(80, dtype=torch.bool); keep[:4] = False
    >>> out = refiner.refine(torch.zeros(8, dtype=torch.float64), keep, budget=1e-6)
    >>> out.met, out.path, out.bound.value <= 1e-6
    (True, 'refined', True)
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.autodiff.pcg import (
    Preconditioner,
    cholesky_preconditioner,
    conjugate_gradients,
    diagonal_preconditioner,
)
from certunlearn.certify.assumptions import Assumptions
from certunlearn.certify.refine import ErmBound, erm_distance_bound
from certunlearn.certify.rounding import MARGIN, ErrorModel, Precision, SoftmaxErrorModel, gamma
from certunlearn.errors import UnlearningError
from certunlearn.models import LogisticRegression
from certunlearn.validation import check_choice, check_int, check_positive

__all__ = ["PRECONDITIONERS", "ErmObjective", "RefineOptions", "RefineOutcome", "Refiner"]

PRECONDITIONERS = ("auto", "cholesky", "jacobi", "none")
_U64 = 2.0**-53
_FP64 = Precision("float64")


@dataclass(frozen=True, slots=True)
class RefineOptions:
    """How hard refinement tries before it falls back or refuses.

    Attributes:
        max_steps: Newton steps from the start before the fallback.
        max_cg: Conjugate-gradient iterations per step.
        preconditioner: ``auto`` (a Cholesky factor of the reference point's Hessian up to
            ``max_dense_dim`` parameters, else its diagonal for softmax regression), ``cholesky``,
            ``jacobi`` or ``none``.
        max_dense_dim: Largest d for the dense preconditioner.
        fallback: Restart from the trained model when the steps run out (an exact retrain).
        start: HF-OCU only: ``anchor`` (one Newton step from the training ERM, stored at fit time;
            measured closer than the statistics' update, docs/theory.md §10) or ``update`` (w_T + Σ a_u).
        polish: When the first certified iterate's bound is loose (the gradient bound, or more than
            twice the Newton step's length), take one more Newton step and release that iterate if it
            is certified too: a tighter bound and a candidate closer to the exact retrain for a few more
            data passes (σ does not change: it follows the budget).
    """

    max_steps: int = 20
    max_cg: int = 250
    preconditioner: str = "auto"
    max_dense_dim: int = 4096
    fallback: bool = True
    start: str = "anchor"
    polish: bool = True

    def __post_init__(self) -> None:
        check_int("max_steps", self.max_steps, minimum=1)
        check_int("max_cg", self.max_cg, minimum=1)
        check_choice("preconditioner", self.preconditioner, PRECONDITIONERS)
        check_int("max_dense_dim", self.max_dense_dim, minimum=1)
        check_choice("start", self.start, ("anchor", "update"))


@dataclass(frozen=True, slots=True)
class RefineOutcome:
    """What refinement produced. Everything but ``theta`` and ``met`` is a private diagnostic.

    Attributes:
        theta: The candidate (model dtype): the last iterate measured.
        bound: Its measured bound on ‖theta − argmin F_R‖ (Theorem 23).
        met: Whether ``bound.value`` ≤ the budget.
        path: ``refined`` (met from the start), ``retrained`` (met after the fallback) or ``refused``.
        steps: Newton steps taken (both paths).
        hvps: Hessian-vector products.
        passes: Passes over the remaining rows (gradients, HVPs, objective values).
        seconds: Wall time.
        start_bound: Measured bound at the start.
        rounding: The floating-point part of the measured bound (docs/theory.md §9).
    """

    theta: Tensor
    bound: ErmBound
    met: bool
    path: str
    steps: int
    hvps: int
    passes: int
    seconds: float
    start_bound: float
    rounding: float

    def summary(self) -> dict[str, float | int | str | bool]:
        """JSON-friendly diagnostics (no tensors)."""
        return {"measured_bound": self.bound.value, "bound_kind": self.bound.kind, "path": self.path,
                "steps": self.steps, "hvps": self.hvps, "passes": self.passes, "seconds": self.seconds,
                "start_bound": self.start_bound, "rounding": self.rounding, "met": self.met}


@dataclass(frozen=True, slots=True)
class _Rows:
    """The remaining rows: ``X, y`` restricted by ``mask`` (None: every row of ``X``)."""

    keep: Tensor
    X: Tensor
    y: Tensor
    mask: Tensor | None
    count: int
    feature_norm: float
    lipschitz: float
    tilde: Tensor | None


class ErmObjective:
    """F_R evaluated in float64 with proven bounds on its rounding; build it with :meth:`build`."""

    def __init__(self, fm: FunctionalModel, X: Tensor, y: Tensor, *, strong_convexity: float,
                 weight_decay: float, declared: Assumptions | None) -> None:
        self.fm = fm
        self.X, self.y = X, y
        self.n = int(X.shape[0])
        self.strong_convexity = strong_convexity
        self.weight_decay = weight_decay
        self.declared = declared
        self._cache: _Rows | None = None
        if declared is None:
            norms = torch.linalg.vector_norm(X.flatten(1), dim=1)
            self._tilde = torch.sqrt(norms * norms + 1.0)  # ‖[x; 1]‖ per row
            self.features = int(X.flatten(1).shape[1])
            self.classes = int(fm.layout.shapes[0][0])

    @classmethod
    def build(cls, model: nn.Module, X: Tensor, y: Tensor, *, weight_decay: float, loss: str = "cross_entropy",
              assumptions: Assumptions | None = None) -> tuple[ErmObjective | None, str | None]:
        """The objective for ``model`` on ``(X, y)``, or (None, why the refine certificate does not apply).

        Softmax regression needs no declared constants (λ is the weight decay; M and the rounding are
        measured on the rows, which only ever meets a public budget). Other models need declared
        assumptions: convex, λ > 0, M, and an error model.
        """
        softmax = type(model) is LogisticRegression and loss == "cross_entropy"
        if softmax and weight_decay <= 0:
            return None, "the refine certificate needs weight_decay > 0 (a strongly convex objective)"
        declared = None
        if not softmax:
            a = assumptions
            if a is None:
                return None, ("the refine certificate is derived for LogisticRegression with cross-entropy; for "
                              "other models declare Assumptions(strong_convexity=..., hessian_lipschitz=..., "
                              "error_model=...)")
            missing = [name for name, ok in (("convex", a.convex), ("strong_convexity > 0", a.strong_convexity > 0),
                                             ("hessian_lipschitz", a.hessian_lipschitz is not None),
                                             ("error_model", a.error_model is not None)) if not ok]
            if missing:
                return None, "the refine certificate needs declared " + ", ".join(missing)
            declared = a
        module = copy.deepcopy(model).to(torch.float64)
        fm = FunctionalModel(module, loss=loss)
        X64 = X.to(device=fm.device, dtype=torch.float64)
        lam = weight_decay if declared is None else declared.strong_convexity
        return cls(fm, X64, y.to(fm.device), strong_convexity=float(lam), weight_decay=float(weight_decay),
                   declared=declared), None

    @property
    def dim(self) -> int:
        """d."""
        return self.fm.dim

    def rows(self, keep: Tensor | None) -> _Rows:
        """The remaining rows (all rows for ``keep=None``), cached for the last mask."""
        cached = self._cache
        if cached is not None and (cached.keep is keep or (keep is not None and torch.equal(cached.keep, keep))):
            return cached
        everything = keep is None or bool(keep.all())
        if keep is None:
            keep = torch.ones(self.n, dtype=torch.bool, device=self.X.device)
        if everything:
            X, y, mask = self.X, self.y, None
        elif self.fm.chain is not None:  # all rows, the deleted ones weighted by exact zeros (no copy of X)
            X, y, mask = self.X, self.y, keep
        else:
            X, y, mask = self.X[keep], self.y[keep], None
        count = int(keep.sum())
        if count == 0:
            raise UnlearningError("no remaining rows: the exact retrain is undefined")
        if self.declared is None:
            tilde = self._tilde[keep]
            feature_norm = float(torch.sqrt((tilde.max() ** 2 - 1.0).clamp(min=0.0))) * (1 + 1e-12) + 1e-300
            # Lemma 13, averaged over the rows: ‖∇³ lse‖ ≤ 1/√2 times ‖x̃‖³ (the global constant)
            lipschitz = float(tilde.pow(3).mean()) / math.sqrt(2.0) * (1 + 1e-12)
        else:
            feature_norm, lipschitz = 0.0, float(self.declared.hessian_lipschitz)  # type: ignore[arg-type]
            tilde = None
        self._cache = _Rows(keep, X, y, mask, count, feature_norm, lipschitz, tilde)
        return self._cache

    def local_lipschitz(self, theta: Tensor, rows: _Rows, radius: float) -> float:
        """A Lipschitz constant of ∇²F_R on the ball of ``radius`` around ``theta`` (docs/theory.md, Lemma 25).

        For softmax regression, with s_i = 1 − max_c p_c(x_i) at θ and t_i = ‖x̃_i‖·radius (the largest
        change of row i's logits on the ball), every point of the ball has 1 − max_c p_c ≤ s_i + 2t_i
        and ‖∇³ lse‖ ≤ min(1/√2, 2√2(1 − max_c p_c)), so the mean of ‖x̃_i‖³ min(1/√2, 2√2(s_i + 2t_i))
        is one. Confident predictions (small s_i) make it much smaller than the global constant, which
        widens the region where the Newton bound of Theorem 23 applies. Declared models: the declared M.
        """
        if self.declared is not None or rows.tilde is None:
            return rows.lipschitz
        e_p = self.error_model(theta, rows).probability_error(_FP64)  # type: ignore[attr-defined]
        if not math.isfinite(e_p):
            return rows.lipschitz
        with torch.no_grad():
            p = torch.softmax(self.fm.outputs(theta, rows.X), dim=1)
            if rows.mask is not None:
                p = p[rows.mask]
            # the computed p is within e_p of the exact one (Lemma 17), and 1 − p̂ rounds once
            s = (1.0 - p.max(dim=1).values).clamp(min=0.0) + (e_p + _U64)
            tilde = rows.tilde
            third = torch.minimum(torch.full_like(s, 1.0 / math.sqrt(2.0)),
                                  2.0 * math.sqrt(2.0) * (s + 2.0 * tilde * radius))
            local = float((tilde.pow(3) * third).mean()) * (1 + 1e-12)
        return min(local, rows.lipschitz)

    def error_model(self, theta: Tensor, rows: _Rows) -> ErrorModel:
        """Rounding bounds at ``theta``: measured norms for softmax regression, else the declared model."""
        if self.declared is not None:
            return self.declared.error_model  # type: ignore[return-value]
        radius = float(torch.linalg.vector_norm(theta)) * (1 + 1e-12) + 1e-300
        return SoftmaxErrorModel(features=self.features, classes=self.classes, feature_norm=rows.feature_norm,
                                 radius=radius, weight_decay=self.weight_decay)

    def value(self, theta: Tensor, rows: _Rows) -> float:
        """F_R(θ) (float64; used by the line search only)."""
        return float(self.fm.objective(theta, rows.X, rows.y, normalizer=rows.count, weight_decay=self.weight_decay,
                                       row_mask=rows.mask))

    def diagonal(self, theta: Tensor) -> Tensor | None:
        """The Hessian's diagonal over all rows (softmax regression only), for the Jacobi preconditioner."""
        if self.declared is not None:
            return None
        with torch.no_grad():
            p = torch.softmax(self.fm.outputs(theta, self.X), dim=1)
            w = p * (1 - p)  # [n, K]
            X = self.X.flatten(1)
            diag_w = (w.T @ (X * X)) / self.n + self.weight_decay
            diag_b = w.mean(dim=0) + self.weight_decay
        return torch.cat([diag_w.reshape(-1), diag_b])


@dataclass(frozen=True, slots=True)
class _Measurement:
    bound: ErmBound
    step: Tensor
    gradient: Tensor
    hvps: int
    rounding: float


class Refiner:
    """Newton-CG on F_R with a measured certificate after every step.

    Args:
        objective: The float64 objective (:meth:`ErmObjective.build`).
        reference: Point whose Hessian (over all rows) preconditions every solve: the trained model
            or the ERM anchor.
        options: :class:`RefineOptions`.
        dtype: dtype of the candidates (the model's); iterates are rounded to it after every step, so
            the certified point is exactly the one released.
    """

    def __init__(self, objective: ErmObjective, *, reference: Tensor, options: RefineOptions | None = None,
                 dtype: torch.dtype | None = None) -> None:
        self.objective = objective
        self.options = options or RefineOptions()
        self.reference = reference.detach().to(device=objective.X.device, dtype=torch.float64)
        self.dtype = dtype or reference.dtype
        self._preconditioner: Preconditioner | None = None
        self._preconditioner_kind: str | None = None
        self._dense: Tensor | None = None

    # ------------------------------------------------------------------ preconditioning
    @property
    def preconditioner_kind(self) -> str:
        """Which preconditioner is in use (built on first need)."""
        self._build_preconditioner()
        return self._preconditioner_kind or "none"

    def _build_preconditioner(self) -> Preconditioner | None:
        if self._preconditioner_kind is not None:
            return self._preconditioner
        choice, obj = self.options.preconditioner, self.objective
        if choice == "auto":
            choice = "cholesky" if obj.dim <= self.options.max_dense_dim else "jacobi"
        kind, apply = "none", None
        if choice == "cholesky":
            rows = obj.rows(None)
            H = obj.fm.dense_hessian(self.reference, rows.X, rows.y, normalizer=rows.count,
                                     weight_decay=obj.weight_decay).detach()
            apply = cholesky_preconditioner(H)
            kind = "cholesky" if apply is not None else "none"
            if apply is None:
                choice = "jacobi"
            else:
                self._dense = H  # the reference point's Hessian over all rows (Newton starts from it)
        if choice == "jacobi":
            diag = obj.diagonal(self.reference)
            if diag is not None:
                apply, kind = diagonal_preconditioner(diag), "jacobi"
        self._preconditioner, self._preconditioner_kind = apply, kind
        return apply

    def newton_start(self, anchor: Tensor, anchor_gradient: Tensor, deleted: Tensor, n_remaining: int) -> Tensor:
        """One exact Newton step on F_R from the anchor, with no pass over the remaining rows.

        With S all rows and U the deleted ones, at the anchor (the reference point of the dense
        preconditioner)

            ∇F_R = (n ∇F_S − Σ_{u∈U} ∇ℓ_u)/(n − m),      ∇²F_R v = (n H_S v − Σ_{u∈U} ∇²ℓ_u v)/(n − m):

        the stored ∇F_S and dense H_S, and the m deleted rows. The system ∇²F_R x = ∇F_R is solved by
        conjugate gradients preconditioned by H_S's Cholesky factor (a few iterations of d² work).
        A start, not a certificate: the measurement that follows certifies or refines it. Without a
        dense preconditioner the start is the anchor itself.
        """
        obj = self.objective
        apply = self._build_preconditioner()
        if apply is None or self._preconditioner_kind != "cholesky":
            return anchor.to(self.dtype)
        Xu, yu = obj.X[deleted], obj.y[deleted]
        m, n = int(deleted.numel()), obj.n
        removed_g, removed_hvp = obj.fm.grad_and_hvp_fn(anchor, Xu, yu, normalizer=1.0,
                                                        weight_decay=obj.weight_decay)
        gradient = (n * anchor_gradient - removed_g) / n_remaining
        dense = self._dense

        def hvp(v: Tensor) -> Tensor:
            return (n * (dense @ v) - (removed_hvp(v) if m else 0.0)) / n_remaining

        scale = float(gradient.norm())  # a start needs no more than a few correct digits
        solution = conjugate_gradients(hvp, gradient, preconditioner=apply, max_iter=self.options.max_cg,
                                       stop=lambda x, r: float(r.norm()) <= 1e-8 * scale)
        return (anchor - solution.x).to(self.dtype)

    # ------------------------------------------------------------------ one measurement
    def _evaluate(self, theta: Tensor, rows: _Rows) -> tuple[Tensor, Tensor, Any]:
        """(θ in float64, ∇F_R(θ), v ↦ ∇²F_R(θ)v): one pass over the remaining rows."""
        obj = self.objective
        t64 = theta.detach().to(device=obj.X.device, dtype=torch.float64)  # exact: widening
        g, hvp = obj.fm.grad_and_hvp_fn(t64, rows.X, rows.y, normalizer=rows.count, weight_decay=obj.weight_decay,
                                        row_mask=rows.mask)
        return t64, g, hvp

    def measure(self, theta: Tensor, keep: Tensor | None, budget: float,
                evaluated: tuple[Tensor, Tensor, Any] | None = None) -> _Measurement:
        """Gradient, a preconditioned Newton step x and Theorem 23's bound at ``theta`` (model dtype);
        ``evaluated`` reuses a pass already made at ``theta`` (:meth:`_evaluate`)."""
        obj = self.objective
        rows = obj.rows(keep)
        t64, g, hvp = evaluated if evaluated is not None else self._evaluate(theta, rows)
        lam = obj.strong_convexity
        g_norm = float(g.norm())

        forcing = min(0.1, math.sqrt(g_norm))  # inexact Newton (Eisenstat & Walker): superlinear steps

        def stop(x: Tensor, r: Tensor) -> bool:
            rn = float(r.norm())
            if rn > forcing * g_norm:
                return False
            xn = float(x.norm())
            return xn > 2.0 * budget or rn <= lam * max(0.2 * xn, 0.1 * budget)

        solution = conjugate_gradients(hvp, g, stop=stop, preconditioner=self._build_preconditioner(),
                                       max_iter=self.options.max_cg)
        x = solution.x
        hx = hvp(x)
        residual = hx - g
        model = obj.error_model(t64, rows)
        e_g = model.batch_gradient(_FP64, rows.count, rows.count)
        e_h = model.hvp(_FP64, rows.count, rows.count)
        inflate = 1.0 + gamma(obj.dim + 2, _U64)  # computed 2-norms
        x_ub = float(x.norm()) * inflate
        rounding_res = e_h * x_ub + e_g + MARGIN * _U64 * (float(hx.norm()) + g_norm) * inflate
        res_ub = float(residual.norm()) * inflate + rounding_res
        g_ub = g_norm * inflate + e_g
        bound = erm_distance_bound(step_norm=x_ub, residual_norm=res_ub, gradient_norm=g_ub,
                                   strong_convexity=lam, hessian_lipschitz=rows.lipschitz)
        if bound.kind == "gradient" or bound.condition > 0.5:
            # Theorem 23 needs M only on the ball of radius ρ ≤ 2r around θ: Lemma 25's local constant
            # (one more forward pass) can bring the Newton bound into reach, or tighten it
            local = obj.local_lipschitz(t64, rows, 2.0 * (x_ub + res_ub / lam))
            if local < rows.lipschitz:
                bound = min(bound, erm_distance_bound(step_norm=x_ub, residual_norm=res_ub, gradient_norm=g_ub,
                                                      strong_convexity=lam, hessian_lipschitz=local),
                            key=lambda b: b.value)
        rounding = rounding_res / lam + (inflate - 1.0) * (x_ub + float(residual.norm()) / lam) + 1e-300
        return _Measurement(bound, x, g, solution.iterations + 1, rounding)

    def _step(self, theta: Tensor, m: _Measurement, rows: _Rows) -> tuple[Tensor, int]:
        """θ − t x: the full Newton step inside the Newton bound's region, else Armijo backtracking."""
        obj = self.objective
        t64 = theta.to(device=obj.X.device, dtype=torch.float64)
        x = m.step
        slope = float(m.gradient @ x)
        if slope <= 0:  # not a descent direction (an inaccurate solve): fall back to the gradient
            x, slope = m.gradient / obj.fm.dim, float(m.gradient @ m.gradient) / obj.fm.dim
        if m.bound.kind == "newton" and m.bound.condition <= 0.25:
            return (t64 - x).to(self.dtype), 0
        f0, t, evaluations = obj.value(t64, rows), 1.0, 1
        while t > 1e-12:
            trial = t64 - t * x
            evaluations += 1
            if obj.value(trial, rows) <= f0 - 1e-4 * t * slope:
                return trial.to(self.dtype), evaluations
            t *= 0.5
        return (t64 - t * x).to(self.dtype), evaluations

    # ------------------------------------------------------------------ the loop
    def _probe(self, theta: Tensor, rows: _Rows, budget: float, steps_left: int
               ) -> tuple[Tensor, tuple[Tensor, Tensor, Any], int, float | None]:
        """Quasi-Newton steps θ ← θ − P⁻¹∇F_R(θ) with the dense preconditioner, one pass each, while
        they are long and shrink; returns (θ, its evaluation, steps taken, the first gradient bound).

        P is the reference point's Hessian over all rows, within a few percent of ∇²F_R near the
        solution, so each step gains about as much as a Newton step at a third of the passes. The
        measured certificate is only computed once the step is short enough to be certified
        (‖P⁻¹g‖ ≤ ¼ min(Δ_b, λ/(2M))) or the gradient bound ‖g‖/λ is within the budget; a step that
        does not halve the gradient ends the probing.
        """
        evaluated = self._evaluate(theta, rows)
        apply = self._build_preconditioner()
        if self._preconditioner_kind != "cholesky" or apply is None:
            return theta, evaluated, 0, None
        obj = self.objective
        region = obj.strong_convexity / (2.0 * rows.lipschitz) if rows.lipschitz > 0 else math.inf
        target = 0.25 * min(budget, region)
        steps, first = 0, None
        previous = math.inf
        while steps < steps_left:
            g = evaluated[1]
            g_norm = float(g.norm())
            first = g_norm / obj.strong_convexity if first is None else first
            x = apply(g)
            # stop when the gradient bound alone may certify, when the step is short enough for the
            # Newton bound, or when the steps stop paying (the gradient did not at least halve)
            if g_norm <= obj.strong_convexity * budget or float(x.norm()) <= target or g_norm >= 0.5 * previous:
                break
            nxt = (evaluated[0] - x).to(self.dtype)
            if torch.equal(nxt, theta):
                break
            theta, previous, steps = nxt, g_norm, steps + 1
            evaluated = self._evaluate(theta, rows)
        return theta, evaluated, steps, first

    def _run(self, theta: Tensor, keep: Tensor | None, budget: float, max_steps: int
             ) -> tuple[Tensor, _Measurement, int, int, int, float]:
        rows = self.objective.rows(keep)
        theta, evaluated, steps, first = self._probe(theta, rows, budget, max_steps)
        hvps, passes = 0, 1 + steps  # the probe's evaluations; its last one is the first measurement's
        met: tuple[Tensor, _Measurement] | None = None  # the first certified iterate, if polishing goes on
        while True:
            if evaluated is None:
                evaluated = self._evaluate(theta, rows)
                passes += 1
            m = self.measure(theta, keep, budget, evaluated)
            evaluated = None
            hvps, passes = hvps + m.hvps, passes + m.hvps
            first = m.bound.value if first is None else first
            if met is not None:  # after one polishing step: the later iterate if it is certified too
                return (theta, m, steps, hvps, passes, first) if m.bound.value <= budget else (*met, steps, hvps,
                                                                                               passes, first)
            if m.bound.value <= budget:
                # loose: more than twice the Newton step's length, which estimates the true distance
                loose = m.bound.kind == "gradient" or m.bound.value > 2.0 * float(m.step.norm())
                if not (self.options.polish and loose and steps < max_steps):
                    return theta, m, steps, hvps, passes, first
                met = (theta, m)
            elif steps >= max_steps:
                return theta, m, steps, hvps, passes, first
            nxt, evaluations = self._step(theta, m, rows)
            passes += evaluations
            steps += 1
            if torch.equal(nxt, theta):  # no representable progress (the dtype's floor)
                return (*met, steps, hvps, passes, first) if met is not None else (theta, m, steps, hvps, passes,
                                                                                   first)
            theta = nxt

    def refine(self, start: Tensor, keep: Tensor | None, budget: float, *,
               fallback_start: Tensor | None = None) -> RefineOutcome:
        """Refine ``start`` until the measured bound is ≤ ``budget`` (then fall back, then refuse)."""
        budget = check_positive("budget", budget)
        started = time.perf_counter()
        theta = start.detach().to(dtype=self.dtype)
        theta, m, steps, hvps, passes, first = self._run(theta, keep, budget, self.options.max_steps)
        path = "refined"
        if m.bound.value > budget and self.options.fallback and fallback_start is not None:
            theta, m, more, h2, p2, _ = self._run(fallback_start.detach().to(dtype=self.dtype), keep, budget,
                                                  3 * self.options.max_steps)
            steps, hvps, passes, path = steps + more, hvps + h2, passes + p2, "retrained"
        met = m.bound.value <= budget
        return RefineOutcome(theta=theta, bound=m.bound, met=met, path=path if met else "refused", steps=steps,
                             hvps=hvps, passes=passes, seconds=time.perf_counter() - started, start_bound=first,
                             rounding=m.rounding)

    def solve(self, start: Tensor, keep: Tensor | None = None, *, tolerance: float = 0.0,
              max_steps: int = 50) -> Tensor:
        """argmin F_R in float64 (all rows for ``keep=None``: the ERM anchor), to ``tolerance`` or the
        measured bound's floor; also the exact-retrain reference of audits and benchmarks."""
        theta = start.detach().to(dtype=torch.float64)
        floor = max(tolerance, 64 * _U64 * (1.0 + float(theta.norm())))
        saved, self.dtype = self.dtype, torch.float64
        try:
            theta, *_ = self._run(theta, keep, floor, max_steps)
        finally:
            self.dtype = saved
        return theta
