"""Choosing a release's certificate and turning a refinement into one: the rules every unlearner shares.

* ``certificate=None`` means ``refine`` wherever its assumptions hold (softmax regression with
  weight decay > 0, or declared constants), else ``worst-case``; asking for ``refine`` where it cannot
  apply is an error.
* The budget Δ_b of a refine release: the request's ``sensitivity_budget``, else the unlearner's,
  else :func:`~certunlearn.certify.refine.default_sensitivity_budget` from public numbers (ε, δ, d,
  the public smoothness β). Without a public β there is no default: the caller must give one.
* :func:`refine_bound` states what a refinement proved as a :class:`~certunlearn.certify.assumptions.Bound`
  whose value is the budget (σ is calibrated to it, never to the measured bound).

Example:
    >>> resolve_certificate(None, None), resolve_certificate(None, "no constants")
    ('refine', 'worst-case')
    >>> import torch
    >>> precision_of(torch.float32, torch.device("cpu")).compute
    'float32'
"""

from __future__ import annotations

import math

import torch

from certunlearn.certify.assumptions import Assumptions, Bound
from certunlearn.certify.refine import (
    DEFAULT_RISK_TOLERANCE,
    budget_floor,
    check_budget,
    default_sensitivity_budget,
)
from certunlearn.certify.rounding import Precision
from certunlearn.errors import ConfigError, RefinementRefused
from certunlearn.unlearn.base import CERTIFICATES
from certunlearn.unlearn.refine import ErmObjective, RefineOptions, RefineOutcome, Refiner
from certunlearn.validation import check_choice, check_positive

__all__ = [
    "BOUND_REFERENCES",
    "NoPublicBudget",
    "RefineCertifier",
    "precision_of",
    "refine_bound",
    "refine_extras",
    "resolve_budget",
    "resolve_certificate",
]

BOUND_REFERENCES = {
    "coupled-sgd": "coupled-sgd",
    "second-order-sgd": "coupled-sgd",
    "newton-step": "erm",
    "damped-newton": "erm",
    "cubic-newton": "erm",
    "gradient-residual": "erm",
    "refine-erm": "erm",
}
"""The reference each bound speaks about."""

_DTYPE_NAMES = {torch.float64: "float64", torch.float32: "float32", torch.float16: "float16",
                torch.bfloat16: "bfloat16"}


def precision_of(dtype: torch.dtype, device: torch.device, storage: str | None = None) -> Precision:
    """The :class:`~certunlearn.certify.rounding.Precision` of arithmetic in ``dtype`` on ``device``.

    float32 matrix products on CUDA count as TF32 when PyTorch allows it
    (``torch.backends.cuda.matmul.allow_tf32`` or a float32 matmul precision other than ``highest``).
    """
    if dtype not in _DTYPE_NAMES:
        raise ConfigError(f"no rounding model for dtype {dtype}")
    matmul = None
    if device.type == "cuda" and dtype == torch.float32 and (
            torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest"):
        matmul = "tf32"
    return Precision(compute=_DTYPE_NAMES[dtype], storage=storage, matmul=matmul)


def resolve_certificate(requested: str | None, refine_problem: str | None) -> str:
    """``refine`` or ``worst-case`` for an unlearner; ``refine_problem`` says why refine cannot apply."""
    if requested is None:
        return "refine" if refine_problem is None else "worst-case"
    kind = check_choice("certificate", requested, CERTIFICATES)
    if kind == "refine" and refine_problem is not None:
        raise ConfigError(f"certificate='refine' is not available here: {refine_problem}")
    return kind


class NoPublicBudget(ConfigError):
    """No budget was given and the default rule has no public smoothness to work from."""


def resolve_budget(
    *,
    request_budget: float | None,
    unlearner_budget: float | None,
    epsilon: float,
    delta: float,
    dim: int,
    assumptions: Assumptions | None,
    calibration: str,
    risk_tolerance: float = DEFAULT_RISK_TOLERANCE,
    unit_roundoff: float | None = None,
) -> tuple[float, str]:
    """The public budget Δ_b of a refine release and the rule that picked it.

    Raises:
        NoPublicBudget: No budget was given and no public smoothness is known (constants estimated
            from the data, or violated, cannot set the noise).
        ConfigError: The budget is not positive, or below the dtype's floor.
    """
    floor = None
    if assumptions is not None and unit_roundoff is not None and assumptions.error_model is not None:
        floor = budget_floor(unit_roundoff=unit_roundoff, radius=assumptions.error_model.radius)
    if request_budget is not None:
        return check_budget(request_budget, floor), "given with the request"
    if unlearner_budget is not None:
        return check_budget(unlearner_budget, floor), "the unlearner's sensitivity_budget"
    if assumptions is None or assumptions.source == "estimated":
        raise NoPublicBudget(
            "no public sensitivity budget: pass sensitivity_budget= (a public number), or a public "
            "feature_norm_bound so the default rule can use the smoothness beta")
    budget = default_sensitivity_budget(epsilon=epsilon, delta=delta, dim=dim, smoothness=assumptions.smoothness,
                                        risk_tolerance=risk_tolerance, calibration=calibration)
    rule = (f"default rule: expected excess risk of the release <= {risk_tolerance:g} (beta={assumptions.smoothness:.4g}, "
            f"d={dim}): Delta_b = sqrt(2 tau / (beta (1 + d sigma_1^2)))")
    return check_budget(budget, floor), rule


def refine_bound(outcome: RefineOutcome, *, budget: float, rule: str, strong_convexity: float,
                 model_statements: tuple[str, ...]) -> Bound:
    """The certificate a refinement gives: value Δ_b when the measured bound met it, else uncertified."""
    b = outcome.bound
    statements = model_statements + (
        "reference: the exact retrain argmin F_R, F_R = (1/|R|) sum over the remaining rows of "
        "[loss + (lambda/2)||theta||^2] (a deterministic function of the remaining data)",
        f"F_R is {strong_convexity:g}-strongly convex with a Lipschitz Hessian (docs/theory.md, Theorem 23)",
        f"measured bound ||theta - argmin F_R|| <= {b.value:.4g} ({b.kind} bound), float64 evaluation with "
        f"its rounding ({outcome.rounding:.2g}) included (docs/theory.md §9); exp/log within 4 ulps",
        f"noise calibrated to the public budget Delta_b = {budget:.4g} ({rule}); the measured bound only "
        "decides whether to release (docs/theory.md, Theorem 24)",
        f"refinement path: {outcome.path} after {outcome.steps} Newton steps, {outcome.hvps} HVPs",
    )
    if not outcome.met:
        why = (f"refinement could not bring the measured bound ({b.value:.3g}) within the budget ({budget:.3g}) "
               f"after {outcome.steps} Newton steps and the fallback")
        return Bound("refine-erm", math.inf, "uncertified", statements, (why,), None)
    return Bound("refine-erm", budget, "certified", statements, (), None, rounding=outcome.rounding)


class RefineCertifier:
    """The refine certificate of one unlearner: its float64 objective, its refiner and its budget settings.

    Args:
        objective: From :meth:`~certunlearn.unlearn.refine.ErmObjective.build`.
        reference: The point whose Hessian preconditions the Newton solves (the trained model, or the
            ERM anchor).
        dtype: The model's dtype (candidates are rounded to it).
        options: :class:`~certunlearn.unlearn.refine.RefineOptions`.
        sensitivity_budget: The unlearner's public budget (None: the default rule per request).
        risk_tolerance: τ of the default rule.
        calibration: σ calibration.
    """

    def __init__(self, objective: ErmObjective, *, reference: torch.Tensor, dtype: torch.dtype,
                 options: RefineOptions | None = None, sensitivity_budget: float | None = None,
                 risk_tolerance: float = DEFAULT_RISK_TOLERANCE, calibration: str = "analytic") -> None:
        self.objective = objective
        self.options = options or RefineOptions()
        self.refiner = Refiner(objective, reference=reference, options=self.options, dtype=dtype)
        self.sensitivity_budget = None if sensitivity_budget is None else check_budget(sensitivity_budget, None)
        self.risk_tolerance = check_positive("risk_tolerance", risk_tolerance)
        self.calibration = calibration
        self.dtype = dtype

    def keep_mask(self, deleted: list[int]) -> torch.Tensor:
        """Boolean mask of the remaining rows."""
        keep = torch.ones(self.objective.n, dtype=torch.bool, device=self.objective.X.device)
        keep[torch.as_tensor(deleted, dtype=torch.long, device=keep.device)] = False
        return keep

    def certify(
        self,
        start: torch.Tensor,
        deleted: list[int],
        *,
        epsilon: float,
        delta: float,
        assumptions: Assumptions | None,
        request_budget: float | None,
        fallback_start: torch.Tensor | None,
        unit_roundoff: float,
        not_public: tuple[str, ...] = (),
    ) -> tuple[torch.Tensor, Bound, float | None, RefineOutcome | None]:
        """Refine ``start`` for the cumulative ``deleted`` set: (candidate, bound, budget, outcome).

        Without a public budget nothing is refined: ``start`` comes back with an uncertified bound
        that says why (budget and outcome None; ``not_public`` lists why the constants are not public).

        Raises:
            RefinementRefused: The measured bound stayed above the budget (nothing may be released).
        """
        try:
            budget, rule = resolve_budget(
                request_budget=request_budget, unlearner_budget=self.sensitivity_budget, epsilon=epsilon,
                delta=delta, dim=self.objective.dim, assumptions=assumptions, calibration=self.calibration,
                risk_tolerance=self.risk_tolerance, unit_roundoff=unit_roundoff)
        except NoPublicBudget as exc:  # say why the constants are not public, when they are not
            reasons = (str(exc),) + tuple(f"the default budget rule cannot be used: {p}" for p in not_public)
            return start, Bound("refine-erm", math.inf, "uncertified", (), reasons, None), None, None
        keep = self.keep_mask(deleted)
        outcome = self.refiner.refine(start, keep, budget, fallback_start=fallback_start)
        statements = () if assumptions is None else assumptions.describe()
        bound = refine_bound(outcome, budget=budget, rule=rule, strong_convexity=self.objective.strong_convexity,
                             model_statements=statements)
        if not outcome.met:
            raise RefinementRefused("refused: " + bound.violations[0] + "; nothing was released or changed "
                                    "(retrain from scratch, or raise the budget)")
        return outcome.theta, bound, budget, outcome


def refine_extras(outcome: RefineOutcome | None, preconditioner: str) -> dict[str, float | int | str | bool]:
    """The refinement's diagnostics as flat ``refine_*`` extras of a result (private, like the noiseless model)."""
    if outcome is None:
        return {}
    extras: dict[str, float | int | str | bool] = {f"refine_{k}": v for k, v in outcome.summary().items()}
    extras["refine_preconditioner"] = preconditioner
    return extras
