"""A posteriori certificates against the exact retrain, and the public budget they are released under.

**The measured bound** (docs/theory.md, Theorem 23). Let F_R be λ-strongly convex with an M-Lipschitz
Hessian and w*_R its minimiser (the exact retrain on the remaining rows R). At any point w, with
g = ∇F_R(w), H = ∇²F_R(w) and any vector x (an approximate Newton step),

    r := ‖x‖ + ‖Hx − g‖/λ  ≥ ‖H⁻¹g‖,     and if  2Mr/λ ≤ 1:   ‖w − w*_R‖ ≤ 2r / (1 + √(1 − 2Mr/λ)) ≤ 2r,

and always ‖w − w*_R‖ ≤ ‖g‖/λ. The first bound is within a factor 1 + O(Mr/λ) of the Newton step
length, itself within that factor of the true distance: the certificate is tight once a Newton step
is short. :func:`erm_distance_bound` takes upper bounds on ‖x‖, ‖Hx − g‖ and ‖g‖ that already include
the floating-point error of computing them.

**The public budget** (Theorem 24). The bound is a function of the data, so it never sets the noise:
σ is calibrated to a budget Δ_b fixed by public numbers only, the measured bound is compared with
it, and the model is released only when bound ≤ Δ_b. :func:`default_sensitivity_budget` is the
documented rule that picks Δ_b when the caller gives none.

Example:
    >>> b = erm_distance_bound(step_norm=1e-4, residual_norm=1e-9, gradient_norm=1e-5,
    ...                        strong_convexity=0.01, hessian_lipschitz=2.0)
    >>> b.kind, 1e-4 < b.value < 1.05e-4
    ('newton', True)
    >>> round(default_sensitivity_budget(epsilon=1.0, delta=1e-5, dim=650, smoothness=1.001), 6)
    0.001486
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from certunlearn.certify.gaussian import gaussian_sigma
from certunlearn.errors import ConfigError
from certunlearn.validation import check_int, check_nonnegative, check_open_unit, check_positive

__all__ = [
    "DEFAULT_RISK_TOLERANCE",
    "ErmBound",
    "budget_floor",
    "check_budget",
    "default_sensitivity_budget",
    "erm_distance_bound",
]

DEFAULT_RISK_TOLERANCE = 0.01
"""Excess-risk tolerance of the default budget rule (Sekhari et al.'s deletion-capacity constant)."""

_FORMULA = 1.0 + 2.0**-48  # the formula below is evaluated in float64: a few operations
_BELOW = 1.0 - 1e-6  # the default budget sits just under the tolerance, so that σ's post-check (which may
#                      round σ up) and float64 evaluation of the risk bound still give a risk ≤ τ


@dataclass(frozen=True, slots=True)
class ErmBound:
    """A measured bound on ‖w − argmin F_R‖.

    Attributes:
        value: The bound.
        kind: ``newton`` (Theorem 23's Newton-step bound) or ``gradient`` (‖g‖/λ, when the Newton
            bound's condition 2Mr/λ ≤ 1 fails or it is larger).
        newton_radius: r, the upper bound on ‖H⁻¹g‖.
        condition: 2Mr/λ (≤ 1 for the Newton bound to apply).
    """

    value: float
    kind: str
    newton_radius: float
    condition: float


def erm_distance_bound(
    *,
    step_norm: float,
    residual_norm: float,
    gradient_norm: float,
    strong_convexity: float,
    hessian_lipschitz: float,
) -> ErmBound:
    """Theorem 23: ‖w − w*_R‖ from a Newton step x at w (inputs are upper bounds, rounding included).

    Args:
        step_norm: ≥ ‖x‖.
        residual_norm: ≥ ‖∇²F_R(w) x − ∇F_R(w)‖.
        gradient_norm: ≥ ‖∇F_R(w)‖.
        strong_convexity: λ > 0, a lower bound on the Hessian's spectrum everywhere.
        hessian_lipschitz: M ≥ 0, the Hessian's Lipschitz constant on the whole space.

    Returns:
        :class:`ErmBound`, the smaller of the two valid bounds.

    Example:
        >>> erm_distance_bound(step_norm=1.0, residual_norm=0.0, gradient_norm=3.0,
        ...                    strong_convexity=1.0, hessian_lipschitz=10.0).kind   # 2Mr/λ = 20 > 1
        'gradient'
    """
    lam = check_positive("strong_convexity", strong_convexity)
    M = check_nonnegative("hessian_lipschitz", hessian_lipschitz)
    x = check_nonnegative("step_norm", step_norm)
    res = check_nonnegative("residual_norm", residual_norm)
    g = check_nonnegative("gradient_norm", gradient_norm)
    r = x + res / lam
    condition = 2.0 * M * r / lam
    by_gradient = g / lam * _FORMULA
    if condition <= 1.0:
        newton = 2.0 * r / (1.0 + math.sqrt(1.0 - condition)) * _FORMULA
        if newton <= by_gradient:
            return ErmBound(newton, "newton", r, condition)
    return ErmBound(by_gradient, "gradient", r, condition)


def default_sensitivity_budget(
    *,
    epsilon: float,
    delta: float,
    dim: int,
    smoothness: float,
    risk_tolerance: float = DEFAULT_RISK_TOLERANCE,
    calibration: str = "analytic",
) -> float:
    """The budget rule: the largest Δ_b whose release provably costs ≤ ``risk_tolerance`` in risk.

    A release w + N(0, σ²I) with ‖w − w*_R‖ ≤ Δ_b and σ = σ(ε, δ, Δ_b) has expected excess risk
    E F_R(w + ν) − F_R(w*_R) ≤ (β/2)(Δ_b² + d σ²) (docs/theory.md §8, with ∇F_R(w*_R) = 0). Setting that
    equal to τ gives Δ_b = √(2τ / (β (1 + d σ₁²))), σ₁ = σ(ε, δ, 1). Every input is public (ε, δ, the
    number of parameters d, the smoothness β from the public feature bound, τ), so the noise never
    depends on the data. The rule ties the noise to a utility guarantee; ε then only decides how
    close to the exact retrain the candidate must be before it may be released.

    Args:
        epsilon: ε of the release.
        delta: δ of the release.
        dim: d.
        smoothness: β of the remaining-data objective (public).
        risk_tolerance: τ, in units of the loss (nats for cross-entropy).
        calibration: ``analytic`` or ``classical``.

    Example:
        >>> b = default_sensitivity_budget(epsilon=1.0, delta=1e-5, dim=10, smoothness=1.0)
        >>> s = 3.7306 * b                                   # σ₁(1, 1e-5) ≈ 3.7306
        >>> round(0.5 * 1.0 * (b * b + 10 * s * s), 4)       # = τ
        0.01
    """
    check_positive("epsilon", epsilon)
    check_open_unit("delta", delta)
    d = check_int("dim", dim, minimum=1)
    beta = check_positive("smoothness", smoothness)
    tau = check_positive("risk_tolerance", risk_tolerance)
    unit = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=1.0, method=calibration)
    return math.sqrt(2.0 * tau / (beta * (1.0 + d * unit * unit))) * _BELOW  # a hair below τ: see _BELOW


def budget_floor(*, unit_roundoff: float, radius: float) -> float:
    """The smallest budget a model stored in a dtype with this unit roundoff can be certified at.

    The nearest representable point to w*_R can be u·‖w*_R‖ ≤ u·R away; a Newton step cannot be
    measured more finely. Budgets below 8·u·R are refused before any data is touched (a public
    decision), so that a refusal after refinement signals a numerical failure, not the data.

    Example:
        >>> budget_floor(unit_roundoff=2.0 ** -24, radius=10.0) < 1e-5
        True
    """
    return 8.0 * check_positive("unit_roundoff", unit_roundoff) * check_positive("radius", radius)


def check_budget(budget: float, floor: float | None) -> float:
    """Validate a sensitivity budget (finite, > 0, above the floor when one is known)."""
    value = check_positive("sensitivity_budget", budget)
    if floor is not None and value < floor:
        raise ConfigError(
            f"sensitivity_budget {value:.3g} is below {floor:.3g}, the finest distance this model's dtype can "
            "resolve (8 u R): raise the budget or use float64 parameters"
        )
    return value
