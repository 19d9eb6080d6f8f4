"""The constants an unlearning error bound relies on, and the result every bound returns.

A bound Δ ≥ ‖w̄ − w^{-U}_T‖ is a pure function of public quantities and of declared constants
collected in an :class:`Assumptions` object (gradient bound G, smoothness β, strong convexity λ,
Hessian-Lipschitz M, and the rounding model of the model's arithmetic). Every bound returns a
:class:`Bound`: the value, its status (``certified`` / ``conditional`` / ``uncertified``), the
statements it relies on and, when an assumption fails, which and why. The bounds themselves live
beside this module, one family each: :mod:`certunlearn.certify.hfocu_bounds` (HF-OCU, coupled SGD),
:mod:`certunlearn.certify.newton_bounds` (Newton step, damped Newton, gradient residual) and
:mod:`certunlearn.certify.cubic_newton_bounds` (CureNewton). Proofs: docs/theory.md.

Example:
    >>> a = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.1)
    >>> a.strong_convexity, a.source
    (0.1, 'derived')
    >>> Bound("coupled-sgd", 0.5, "certified", a.describe()).certified
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from certunlearn.certify.rounding import ErrorModel, Precision, SoftmaxErrorModel
from certunlearn.errors import AssumptionError, ConfigError
from certunlearn.validation import check_choice, check_nonnegative, check_positive

__all__ = [
    "ASSUMPTION_SOURCES",
    "BOUND_STATUSES",
    "Assumptions",
    "Bound",
    "softmax_regression_assumptions",
]

ASSUMPTION_SOURCES = ("declared", "derived", "estimated")
"""declared: given by the user; derived: proved from public constants; estimated: measured on data."""

BOUND_STATUSES = ("certified", "conditional", "uncertified")


@dataclass(frozen=True, slots=True)
class Assumptions:
    """Constants a bound relies on. Each must hold for every sample and every iterate.

    Attributes:
        gradient_bound: G ≥ ‖∇ℓ(w; z)‖ for every per-sample loss (weight decay included) on the
            region both trajectories visit.
        smoothness: β ≥ ‖∇²ℓ(w; z)‖ (per-sample smoothness, weight decay included).
        strong_convexity: λ ≤ smallest Hessian eigenvalue of every ℓ(·; z) (0 if merely convex).
        convex: Whether every per-sample loss is convex. Non-convex bounds are only conditional.
        hessian_lipschitz: M, the Lipschitz constant of the Hessian, where a bound needs it.
        source: ``declared``, ``derived`` (from public constants) or ``estimated`` (from private
            data; never certified).
        notes: Human-readable statements of where the constants come from.
        error_model: A priori bounds on the rounding of the model's gradients and HVPs
            (:mod:`certunlearn.certify.rounding`); every certificate computed in floating point
            needs one (derived for softmax regression, declared otherwise).
    """

    gradient_bound: float
    smoothness: float
    strong_convexity: float = 0.0
    convex: bool = True
    hessian_lipschitz: float | None = None
    source: str = "declared"
    notes: tuple[str, ...] = field(default_factory=tuple)
    error_model: ErrorModel | None = None

    def __post_init__(self) -> None:
        check_positive("gradient_bound", self.gradient_bound)
        check_positive("smoothness", self.smoothness)
        check_nonnegative("strong_convexity", self.strong_convexity)
        if self.strong_convexity > self.smoothness:
            raise ConfigError(
                f"strong_convexity ({self.strong_convexity}) cannot exceed smoothness ({self.smoothness})"
            )
        if not self.convex and self.strong_convexity > 0:
            raise ConfigError("a non-convex loss cannot declare strong_convexity > 0")
        if self.hessian_lipschitz is not None:
            check_nonnegative("hessian_lipschitz", self.hessian_lipschitz)
        check_choice("source", self.source, ASSUMPTION_SOURCES)

    def describe(self) -> tuple[str, ...]:
        """Plain statements of every assumption, for results and reports."""
        kind = "convex" if self.convex else "non-convex"
        lines = [
            f"per-sample loss is {kind}"
            + (f" and {self.strong_convexity:g}-strongly convex" if self.strong_convexity else ""),
            f"per-sample gradient norm <= G = {self.gradient_bound:.6g} along both trajectories",
            f"per-sample Hessian norm <= beta = {self.smoothness:.6g}",
        ]
        if self.hessian_lipschitz is not None:
            lines.append(f"Hessian is M = {self.hessian_lipschitz:.6g}-Lipschitz")
        lines.append(f"constants {self.source}")
        if self.error_model is not None:
            lines.append(self.error_model.describe())
        return tuple(lines) + self.notes


@dataclass(frozen=True, slots=True)
class Bound:
    """A Δ bound together with its validity.

    Attributes:
        name: Which bound.
        value: Δ (``inf`` when no finite bound applies).
        status: ``certified`` (assumptions derived/declared and checked), ``conditional`` (valid only
            if declared constants that cannot be checked hold, e.g. non-convex smoothness), or
            ``uncertified`` (an assumption fails; never use for noise).
        assumptions: Statements the value relies on.
        violations: Why the bound does not apply (empty when it does).
        noise_only_value: Sensitivity of releasing the *un-unlearned* model plus noise under the
            same assumptions (the baseline a certificate should beat), if defined.
        rounding: The floating-point term included in ``value`` (docs/theory.md §9); None when the
            bound was computed for exact arithmetic, which never backs a release.
    """

    name: str
    value: float
    status: str
    assumptions: tuple[str, ...]
    violations: tuple[str, ...] = ()
    noise_only_value: float | None = None
    rounding: float | None = None

    def __post_init__(self) -> None:
        check_choice("status", self.status, BOUND_STATUSES)
        if self.status == "certified" and (self.violations or not math.isfinite(self.value)):
            raise ConfigError("a certified bound must be finite and have no violations")
        if self.rounding is not None and (self.rounding < 0 or (self.status == "certified" and self.rounding <= 0)):
            raise ConfigError(f"a floating-point term must be > 0, got {self.rounding!r}")

    @property
    def certified(self) -> bool:
        """True only when the bound may back a certificate."""
        return self.status == "certified"


def softmax_regression_assumptions(
    *,
    feature_norm_bound: float,
    weight_decay: float,
    projection_radius: float | None = None,
    init_norm: float = 0.0,
    source: str = "derived",
    features: int | None = None,
    classes: int | None = None,
) -> Assumptions:
    """Constants G, β, λ for softmax regression with cross-entropy and weight decay (docs/theory.md).

    For logits ``W x + b`` and ‖x‖ ≤ X: ‖∇ CE‖ ≤ √2·√(X²+1) =: G_CE and ‖∇² CE‖ ≤ (X²+1)/2. Iterates of
    SGD (and of the full-batch-normalised retrain) stay in ‖w‖ ≤ R with R the projection radius, or
    R = max(‖w_0‖, G_CE/λ) when λ > 0 and η_t λ ≤ 1. Then G = G_CE + λR, β = (X²+1)/2 + λ, and λ is
    the strong-convexity constant. The Hessian is M-Lipschitz with M = (X²+1)^{3/2}/√2 (the third
    derivative of log-sum-exp is a third central moment of the softmax distribution, at most
    √2 · ½ on unit directions).

    Args:
        feature_norm_bound: Public bound X on every row's L2 norm (e.g. the clipping norm).
        weight_decay: λ ≥ 0.
        projection_radius: R if training projects onto ‖w‖ ≤ R.
        init_norm: ‖w_0‖ (0 for the zero initialisation of ``LogisticRegression``).
        source: ``derived`` when X is public, ``estimated`` when it was measured on the data.
        features: p, the number of input features; with ``classes``, adds the rounding model
            (:class:`~certunlearn.certify.rounding.SoftmaxErrorModel`, on the ball of radius 1.01 R)
            that floating-point certificates need.
        classes: K.

    Raises:
        AssumptionError: λ = 0 without projection (the iterates are then unbounded a priori).

    Example:
        >>> a = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.01)
        >>> round(a.gradient_bound, 4), round(a.smoothness, 4), round(a.hessian_lipschitz, 4)
        (4.0, 1.01, 2.0)
    """
    x = check_positive("feature_norm_bound", feature_norm_bound)
    lam = check_nonnegative("weight_decay", weight_decay)
    init_norm = check_nonnegative("init_norm", init_norm)
    g_ce = math.sqrt(2.0) * math.sqrt(x * x + 1.0)
    beta = (x * x + 1.0) / 2.0 + lam
    hessian_lipschitz = (x * x + 1.0) ** 1.5 / math.sqrt(2.0)  # ‖∇³ logsumexp‖ ≤ 1/√2, times ‖[x;1]‖³
    if projection_radius is not None:
        radius = check_positive("projection_radius", projection_radius)
        how = f"projection onto ||w|| <= {radius:g}"
    elif lam > 0:
        radius = max(init_norm, g_ce / lam)
        how = f"weight decay keeps ||w|| <= max(||w_0||, G_CE/lambda) = {radius:.6g} (needs lr*lambda <= 1)"
    else:
        raise AssumptionError(
            "softmax regression without weight decay and without projection has no a-priori bound "
            "on the iterates, so no gradient bound G: set weight_decay > 0 or projection_radius"
        )
    notes = (
        f"softmax regression with cross-entropy, rows clipped to ||x|| <= {x:g}",
        how,
    )
    error_model = None
    if features is not None and classes is not None:
        error_model = SoftmaxErrorModel(features=features, classes=classes, feature_norm=x,
                                        radius=1.01 * radius, weight_decay=lam)
    return Assumptions(
        gradient_bound=g_ce + lam * radius,
        smoothness=beta,
        strong_convexity=lam,
        convex=True,
        hessian_lipschitz=hessian_lipschitz,
        source=source,
        notes=notes,
        error_model=error_model,
    )


_EXACT = "exact arithmetic only: no floating-point term (never backs a release; pass precision=)"


def _rounding_problem(assumptions: Assumptions, precision: Precision | None) -> str | None:
    """Why no floating-point term can be computed, or None."""
    if precision is not None and assumptions.error_model is None:
        return ("no rounding model for this model's arithmetic: declare Assumptions(error_model=...) "
                "(certify.rounding.DeclaredErrorModel)")
    return None


def _rounding_statement(precision: Precision | None, term: float | None) -> str:
    if precision is None or term is None:
        return _EXACT
    return f"floating point: {precision.describe()}; rounding term {term:.3g} included (docs/theory.md §9)"


def _unbounded_rounding(precision: Precision) -> str:
    return (f"the rounding of {precision.describe()} cannot be bounded for these constants (a first-order "
            "error above 1e-2): compute in float64 or use the refine certificate")
