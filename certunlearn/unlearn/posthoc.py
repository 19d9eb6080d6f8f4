"""Unlearning an already trained model: the remaining-data objective and the common ``forget`` flow.

The Newton family, fine-tuning, gradient ascent and the retrain oracle all start from a trained model
θ* (the module's current parameters) and the data it was trained on, and target the **remaining-data
objective**

    F_R(θ) = (1/|R|) Σ_{i∈R} loss(f_θ(x_i), y_i) + (λ/2)‖θ‖²,      R = all ids minus the deleted ones.

The model and the options are given to the constructor, the training data to ``fit(X, y)`` (ids are
the row indices), as for every :class:`~certunlearn.unlearn.base.Unlearner`. The state
(``state_dict()``) holds the trained weights θ*, **the training data itself** (the unlearner keeps
it in memory, as every request reads the remaining rows), the ids deleted so far, the last noiseless
model and the ledger; ``load_state_dict`` redoes the fit-time work on the saved data (a training
Hessian, the refine factorisation), which is deterministic, so the restored unlearner releases
exactly what the saved one would.

Every request is computed from θ* for the **cumulative** deleted set (as for HF-OCU), so successive
requests never compound approximation errors, and each release draws fresh noise. Two certificates:

* ``certificate="refine"`` (the default for softmax regression with weight decay, or declared
  constants): any method's output is refined by Newton steps on F_R until its measured distance to
  argmin F_R is within the public budget (docs/theory.md §10). The method only supplies the start, so
  fine-tuning, gradient ascent or a stochastic CureNewton certify too; its own lack of a bound does
  not matter.
* ``certificate="worst-case"``: a bound of :mod:`certunlearn.certify` (hfocu_bounds, newton_bounds) whose assumptions hold
  (for softmax regression with a public feature bound and a declared optimality gap they are
  derived), rounding included; otherwise the result is uncertified and may still get user-chosen
  noise (``noise_sensitivity``).

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> from certunlearn.unlearn.newton import NewtonStep
    >>> X = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> y = (X[:, 0] > 0).long()
    >>> res = NewtonStep(LogisticRegression(3, 2), weight_decay=0.1).fit(X, y).forget([0, 5])
    >>> res.certified, sorted(res.params_noiseless)        # no (epsilon, delta): a noiseless release
    (False, ['linear.bias', 'linear.weight'])
    >>> un = NewtonStep(LogisticRegression(3, 2), weight_decay=0.1, sensitivity_budget=1e-3).fit(X, y)
    >>> r = un.forget([0, 5], epsilon=1.0, delta=1e-5)
    >>> r.certified, r.reference, r.certificate
    (True, 'erm', 'refine')
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any, Self

import numpy as np
import torch
from torch import Tensor, nn

from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.certify.assumptions import Assumptions, Bound, softmax_regression_assumptions
from certunlearn.certify.ledger import Ledger
from certunlearn.certify.refine import DEFAULT_RISK_TOLERANCE, check_budget
from certunlearn.errors import (
    AssumptionError,
    ConfigError,
    InputError,
    SampleIdError,
    UnlearningError,
)
from certunlearn.models import LogisticRegression
from certunlearn.progress import ProgressFn
from certunlearn.train.sgd import check_sample_ids, prepare_data
from certunlearn.unlearn.base import (
    CERTIFICATES,
    Unlearner,
    UnlearnResult,
    feature_bound_problem,
    module_with_weights,
    state_tensor,
)
from certunlearn.unlearn.certificate import (
    BOUND_REFERENCES,
    RefineCertifier,
    precision_of,
    refine_extras,
    resolve_certificate,
)
from certunlearn.unlearn.refine import ErmObjective, RefineOptions
from certunlearn.unlearn.release import make_release
from certunlearn.validation import check_choice, check_nonnegative, check_positive

__all__ = ["PostHocUnlearner"]


class PostHocUnlearner(Unlearner):
    """Base of the unlearners that start from a trained model (θ* = the module's parameters).

    Args:
        model: The trained model; never modified.
        weight_decay: λ of the objective the model was trained on.
        loss: Per-sample loss name (``cross_entropy`` or ``mse``).
        assumptions: Declared constants (λ, β, M, G) for a certificate.
        feature_norm_bound: Public bound on every row's norm; with a :class:`LogisticRegression`
            and cross-entropy the constants are then derived.
        optimality_gap: Public bound γ ≥ ‖∇F_S(θ*)‖ guaranteed by training; the measured value is
            checked against it. Without it no Newton-family bound applies.
        noise_sensitivity: User-chosen Δ for noise when no certified bound applies (uncertified).
        calibration: ``analytic`` or ``classical``.
        ledger: Optional budget ledger.
        certificate: ``refine``, ``worst-case``, or None (``refine`` wherever it applies).
        sensitivity_budget: Public budget Δ_b of refine releases (None: the default rule, which needs
            a public ``feature_norm_bound``).
        risk_tolerance: τ of the default budget rule.
        refine: :class:`~certunlearn.unlearn.refine.RefineOptions`.

    ``fit(X, y)`` then attaches the training features and targets (ids are the row indices 0..n-1).
    """

    name = "posthoc"

    def __init__(
        self,
        model: nn.Module,
        *,
        weight_decay: float = 0.0,
        loss: str = "cross_entropy",
        assumptions: Assumptions | None = None,
        feature_norm_bound: float | None = None,
        optimality_gap: float | None = None,
        noise_sensitivity: float | None = None,
        calibration: str = "analytic",
        ledger: Ledger | None = None,
        certificate: str | None = None,
        sensitivity_budget: float | None = None,
        risk_tolerance: float = DEFAULT_RISK_TOLERANCE,
        refine: RefineOptions | None = None,
    ) -> None:
        self.model = model
        self.weight_decay = check_nonnegative("weight_decay", weight_decay)
        self.fm = FunctionalModel(model, loss=loss)
        self.theta_star = self.fm.theta0.detach().clone()
        self.assumptions = assumptions
        self.feature_norm_bound = (
            None if feature_norm_bound is None else check_positive("feature_norm_bound", feature_norm_bound)
        )
        self.optimality_gap = (
            None if optimality_gap is None else check_nonnegative("optimality_gap", optimality_gap)
        )
        self.noise_sensitivity = (
            None if noise_sensitivity is None else check_positive("noise_sensitivity", noise_sensitivity)
        )
        self.calibration = check_choice("calibration", calibration, ("analytic", "classical"))
        self.ledger = ledger
        self.certificate = None if certificate is None else check_choice("certificate", certificate, CERTIFICATES)
        self.sensitivity_budget = None if sensitivity_budget is None else check_budget(sensitivity_budget, None)
        self.risk_tolerance = check_positive("risk_tolerance", risk_tolerance)
        if refine is not None and not isinstance(refine, RefineOptions):
            raise ConfigError(f"refine must be RefineOptions, got {type(refine).__name__}")
        self.refine = refine

    def _options(self) -> dict[str, Any]:
        return {
            "weight_decay": self.weight_decay, "loss": self.fm.loss_name,
            "feature_norm_bound": self.feature_norm_bound, "optimality_gap": self.optimality_gap,
            "noise_sensitivity": self.noise_sensitivity, "calibration": self.calibration,
            "certificate": self.certificate, "sensitivity_budget": self.sensitivity_budget,
            "risk_tolerance": self.risk_tolerance, "refine": None if self.refine is None else asdict(self.refine),
        }

    # ------------------------------------------------------------------ fitting and state
    def fit(self, X: Tensor, y: Tensor, *, progress: ProgressFn | None = None) -> Self:
        """Attach the training data of the trained model (ids = row indices) and do the fit-time work
        (constants, the refine factorisation, the method's own precomputation); nothing is trained.

        ``progress`` is accepted for the common interface (there is no loop to report on).
        """
        del progress
        X, y = prepare_data(self.fm, X, y)
        self._attach(self.fm, X, y)
        return self

    def _attach(self, fm: FunctionalModel, X: Tensor, y: Tensor) -> None:
        """Set every fitted attribute from the model ``fm`` and the prepared data; no request yet."""
        if X.shape[0] < 2:
            raise ConfigError("need at least two training rows")
        self.fm, self.X, self.y = fm, X, y
        self.n = self.n_samples_ = int(X.shape[0])
        self.theta_star = fm.theta0.detach().clone()
        self.deleted_: tuple[int, ...] = ()
        self.current_ = self.theta_star.clone()
        self._remaining_cache: tuple[Tensor, Tensor, Tensor, int] | None = None
        self._gap_measured: float | None = None
        self.assumptions_, self.assumption_problems_ = self._resolve_assumptions()
        self.precision_ = precision_of(fm.dtype, fm.device)
        objective, problem = ErmObjective.build(fm.module, X, y, weight_decay=self.weight_decay,
                                                loss=fm.loss_name, assumptions=self.assumptions)
        self.certificate_ = resolve_certificate(self.certificate, problem)
        self.certifier_: RefineCertifier | None = None
        if self.certificate_ == "refine" and objective is not None:
            self.certifier_ = RefineCertifier(
                objective, reference=self.theta_star, dtype=fm.dtype, options=self.refine,
                sensitivity_budget=self.sensitivity_budget, risk_tolerance=self.risk_tolerance,
                calibration=self.calibration)
        self._fit_method()

    def _fit_method(self) -> None:
        """The method's own fit-time work on the attached data (a training Hessian, a schedule ...)."""

    def state_dict(self) -> dict[str, Any]:
        """The trained weights θ* (parameters and buffers), the training data, the deleted ids, the
        current noiseless model and the ledger (tensors are copies, except the data's)."""
        self._check_fitted()
        return {
            **self._state_header(),
            "model": self.fm.state_dict(self.theta_star),
            "data": {"X": self.X, "y": self.y},
            "current": self.current_.detach().clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> Self:
        """Restore :meth:`state_dict`'s output (see :meth:`Unlearner.load_state_dict`).

        The saved weights replace the constructor model's; the fit-time work is redone on the saved
        data (deterministic), then the deleted ids, the current model and the ledger are restored.
        """
        state = self._check_state(state, ("model", "data", "current"))
        module = module_with_weights(self.fm.module, state["model"], what="model weights")
        fm = FunctionalModel(module, loss=self.fm.loss_name)
        data = state["data"]
        if not isinstance(data, Mapping) or set(data) != {"X", "y"}:
            raise InputError("the state's data must be a dict with the keys 'X' and 'y'")
        X, y = prepare_data(fm, state_tensor(data, "X"), state_tensor(data, "y"))  # type: ignore[arg-type]
        deleted = check_sample_ids(state["deleted_ids"], int(X.shape[0]), what="deleted ids in the state")
        current = state_tensor(state, "current", shape=(fm.dim,))
        before = dict(self.__dict__)
        try:
            self._attach(fm, X, y)
        except Exception:  # leave the unlearner as it was
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        self.deleted_ = tuple(deleted)
        self.current_ = current.detach().to(device=fm.device, dtype=fm.dtype, copy=True)  # type: ignore[union-attr]
        self._restore_ledger(state["ledger"])
        return self

    # ------------------------------------------------------------------ objective
    def keep_mask(self, deleted: Iterable[int]) -> Tensor:
        """Boolean mask of the remaining rows."""
        keep = torch.ones(self.n, dtype=torch.bool, device=self.X.device)
        idx = torch.as_tensor(list(deleted), dtype=torch.long, device=self.X.device)
        keep[idx] = False
        return keep

    def _remaining(self, keep: Tensor) -> tuple[Tensor, Tensor, int]:
        """(X, y, count) of the rows in ``keep``; the last mask's rows are kept, since an unlearner
        evaluates F_R many times with one mask (CureNewton: ratio tests, every iterate)."""
        cached = self._remaining_cache
        if cached is None or cached[0] is not keep:
            cached = (keep, self.X[keep], self.y[keep], int(keep.sum()))
            self._remaining_cache = cached
        return cached[1], cached[2], cached[3]

    def objective(self, theta: Tensor, keep: Tensor) -> Tensor:
        """F_R(θ): mean loss over the rows in ``keep`` plus (λ/2)‖θ‖²."""
        X, y, count = self._remaining(keep)
        return self.fm.objective(theta, X, y, normalizer=count, weight_decay=self.weight_decay)

    def gradient(self, theta: Tensor, keep: Tensor) -> Tensor:
        """∇F_R(θ)."""
        X, y, count = self._remaining(keep)
        return self.fm.objective_grad(theta, X, y, normalizer=count, weight_decay=self.weight_decay).detach()

    def hessian(self, theta: Tensor, keep: Tensor) -> Tensor:
        """Dense ∇²F_R(θ) ``[d, d]`` (small models only)."""
        X, y, count = self._remaining(keep)
        return self.fm.dense_hessian(theta, X, y, normalizer=count, weight_decay=self.weight_decay).detach()

    # ------------------------------------------------------------------ certificates
    def _resolve_assumptions(self) -> tuple[Assumptions | None, tuple[str, ...]]:
        if self.assumptions is not None:
            return self.assumptions, ()
        if not (isinstance(self.model, LogisticRegression) and self.fm.loss_name == "cross_entropy"):
            return None, ("no assumptions declared for this model (pass assumptions=Assumptions(...)); "
                          "constants are derived only for LogisticRegression with cross-entropy",)
        if self.feature_norm_bound is None:
            return None, ("feature_norm_bound not given: the constants cannot be derived from public numbers",)
        x = self.feature_norm_bound
        problem = feature_bound_problem(self.X, x)
        if problem is not None:
            return None, (problem,)
        if self.weight_decay <= 0:
            return None, ("weight_decay = 0: the objective is not strongly convex",)
        g_ce = math.sqrt(2.0) * math.sqrt(x * x + 1.0)
        gap = self.optimality_gap or 0.0
        try:  # ‖θ*‖ ≤ (G_CE + γ)/λ for a γ-stationary point (docs/theory.md §7.2)
            derived = softmax_regression_assumptions(
                feature_norm_bound=x, weight_decay=self.weight_decay,
                init_norm=(g_ce + gap) / self.weight_decay,
                features=int(self.X.flatten(1).shape[1]), classes=int(self.model.linear.out_features),
            )
        except AssumptionError as exc:
            return None, (str(exc),)
        return derived, ()

    def _gap_problems(self) -> tuple[str, ...]:
        if self.optimality_gap is None:
            return ("optimality_gap not declared: the Newton-family bounds need a public bound on "
                    "||grad F_S(theta*)|| guaranteed by training",)
        measured = self._trained_gradient_norm()
        model = None if self.assumptions_ is None else self.assumptions_.error_model
        rounding = 0.0 if model is None else model.batch_gradient(self.precision_, self.n, self.n)
        if measured + rounding > self.optimality_gap:  # the exact gradient norm is at most measured + rounding
            return (f"the trained model's gradient norm {measured:.3g} (+ rounding {rounding:.2g}) exceeds the "
                    f"declared optimality_gap {self.optimality_gap:g}",)
        return ()

    def _trained_gradient_norm(self) -> float:
        """‖∇F_S(θ*)‖ over all training rows, measured once (θ* and the data never change)."""
        if self._gap_measured is None:
            self._gap_measured = float(self.fm.objective_grad(
                self.theta_star, self.X, self.y, normalizer=self.n, weight_decay=self.weight_decay).norm())
        return self._gap_measured

    def bound(self, ids: Iterable[int]) -> Bound | None:
        """The worst-case Δ bound for forgetting ``ids`` next (the cumulative set: the ids forgotten so
        far plus ``ids``), rounding included; None when none applies (:meth:`worst_case_bound` says why).

        (The refine certificate is measured at ``forget`` time.)"""
        request = self.check_ids(ids, allow_empty=True)
        return self.worst_case_bound(len(self.deleted_) + len(request))[0]

    def worst_case_bound(self, m: int) -> tuple[Bound | None, tuple[str, ...]]:
        """The worst-case Δ bound for a cumulative deletion of ``m`` ids, or (None, why none applies)."""
        self._check_fitted()
        if self.assumptions_ is None:
            return None, self.assumption_problems_
        problems = self._gap_problems()
        if problems:
            return None, problems
        return self._method_bound(m, self.assumptions_, float(self.optimality_gap)), ()  # type: ignore[arg-type]

    def _method_bound(self, m: int, assumptions: Assumptions, gap: float) -> Bound | None:
        """Method-specific bound; the default is none (the method is not certified)."""
        del m, assumptions, gap
        return None

    # ------------------------------------------------------------------ forgetting
    @abc.abstractmethod
    def _unlearn(self, deleted: list[int], keep: Tensor, generator: torch.Generator | None) -> tuple[Tensor, dict[str, Any], tuple[str, ...]]:
        """Return (θ̄ from θ* for the cumulative deleted set, extras, reasons it is not certifiable)."""

    def forget(
        self,
        ids: Iterable[int],
        *,
        epsilon: float | None = None,
        delta: float | None = None,
        generator: torch.Generator | None = None,
        request_id: str | None = None,
        dry_run: bool = False,
        sensitivity_budget: float | None = None,
    ) -> UnlearnResult:
        """Forget ``ids`` (on top of earlier requests) and release the result.

        Args:
            ids: Ids to forget now (distinct, known, not forgotten before).
            epsilon: ε of a noisy release; None gives a noiseless, uncertified release.
            delta: δ of a noisy release, in (0, 1).
            generator: Source of noise (and of minibatches for stochastic methods).
            request_id: Ledger identifier.
            dry_run: Compute the release but change nothing.
            sensitivity_budget: Public budget Δ_b of this release (refine certificate).

        Returns:
            :class:`UnlearnResult`. On any error nothing changes.

        Raises:
            RefinementRefused: (refine) the measured bound stayed above the budget; nothing released.
        """
        request, epsilon, delta = self.check_request(ids, epsilon=epsilon, delta=delta)
        cumulative = sorted(self.deleted_ + tuple(request))
        if len(cumulative) >= self.n:
            raise SampleIdError("cannot forget every training sample")
        started = time.perf_counter()
        keep = self.keep_mask(cumulative)
        theta, extras, not_certifiable = self._unlearn(cumulative, keep, generator)
        if not bool(torch.isfinite(theta).all()):
            raise UnlearningError(f"{self.name} produced non-finite parameters; nothing was changed")
        extras.setdefault("step_norm", float((theta - self.theta_star).norm()))
        common: dict[str, Any] = dict(
            method=self.name, request=request, previous=self.deleted_, epsilon=epsilon, delta=delta,
            state=self.fm.state_dict, noise_sensitivity=self.noise_sensitivity, calibration=self.calibration,
            generator=generator, ledger=self.ledger, dry_run=dry_run, request_id=request_id,
            model_before=self.current_, started=started,
        )
        if self.certifier_ is not None and epsilon is not None:
            method_output = theta
            theta, bound, budget, outcome = self.certifier_.certify(
                theta, cumulative, epsilon=epsilon, delta=delta,  # type: ignore[arg-type]
                assumptions=None if self.assumption_problems_ else self.assumptions_,
                request_budget=sensitivity_budget, fallback_start=self.theta_star, unit_roundoff=self.precision_.u,
                not_public=self.assumption_problems_)
            extras.update(refine_extras(outcome, self.certifier_.refiner.preconditioner_kind))
            extras["method_output_distance"] = float((theta.to(method_output.dtype) - method_output).norm())
            extras["retained_loss"] = float(self.objective(theta, keep))
            result = make_release(**common, noiseless=theta, bound=bound, problems=(), extras=extras,
                                  reference="erm", certificate="refine", sensitivity_budget=budget,
                                  measured_bound=None if outcome is None else outcome.bound.value)
        else:
            bound, problems = self.worst_case_bound(len(cumulative))
            if not_certifiable and bound is not None and bound.status != "uncertified":
                bound = Bound(bound.name, math.inf, "uncertified", bound.assumptions,
                              bound.violations + not_certifiable, None)
            if bound is None and not_certifiable:
                problems = problems + not_certifiable
            if bound is None and not problems:
                problems = (f"{self.name} has no proven error bound",)
            extras["retained_loss"] = float(self.objective(theta, keep))
            reference = BOUND_REFERENCES.get(bound.name, "erm") if bound is not None else "erm"
            result = make_release(**common, noiseless=theta, bound=bound, problems=problems, extras=extras,
                                  reference=reference, certificate=self.certificate_)
        if not dry_run:
            self.deleted_ = self.deleted_ + tuple(request)
            self.current_ = theta
        return result

    def _rows(self, ids: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.X.device)
        return self.X[index], self.y[index]

