"""Error bounds of the Newton family on the remaining-data ERM objective: one Newton step, the damped
Newton step, and Guo et al.'s gradient residual.

The stored model approximately minimises the training objective; deleting U by a (damped) Newton
step on the remaining-data objective lands within Δ of its exact minimiser when the objective is
λ-strongly convex with an M-Lipschitz Hessian (docs/theory.md §7, §9.4). The shared set-up
(ĝ, the statements, the violations) and the floating-point terms of a computed step are here too;
the cubic-regularised step (CureNewton) reuses them in :mod:`certunlearn.certify.cubic_newton_bounds`.

Example:
    >>> a = Assumptions(gradient_bound=1.0, smoothness=2.0, strong_convexity=0.5, hessian_lipschitz=1.0)
    >>> newton_step_bound(n=100, m=1, assumptions=a).certified
    True
    >>> newton_step_bound(n=100, m=1, assumptions=Assumptions(gradient_bound=1.0, smoothness=2.0)).violations[0]
    'the Newton-step bound needs a strongly convex objective (lambda > 0)'
"""

from __future__ import annotations

import math
from dataclasses import replace

from certunlearn.certify.assumptions import (
    _EXACT,
    Assumptions,
    Bound,
    _rounding_problem,
    _rounding_statement,
    _unbounded_rounding,
)
from certunlearn.certify.rounding import (
    NewtonRounding,
    Precision,
    newton_rounding,
    perturbed_step_error,
)
from certunlearn.errors import ConfigError
from certunlearn.validation import check_nonnegative, check_positive

__all__ = ["damped_newton_bound", "gradient_residual_bound", "newton_step_bound"]


_FORMULA = 1.0 + 2.0**-48  # the bound formulas themselves are evaluated in float64 (a few dozen operations)


def _newton_family_setup(
    name: str, n: int, m: int, assumptions: Assumptions, optimality_gap: float, precision: Precision | None,
) -> tuple[float, tuple[str, ...], list[str]]:
    """ĝ = (mG + n·gap)/(n − m), the statements, and the violations shared by the Newton family."""
    n = int(n)
    m = int(m)
    if n < 2 or not 1 <= m < n:
        raise ConfigError(f"need n >= 2 and 1 <= m < n, got n={n}, m={m}")
    gap = check_nonnegative("optimality_gap", optimality_gap)
    violations: list[str] = []
    if not assumptions.convex or assumptions.strong_convexity <= 0:
        violations.append(f"the {name} bound needs a strongly convex objective (lambda > 0)")
    if assumptions.hessian_lipschitz is None:
        violations.append(f"the {name} bound needs a Hessian-Lipschitz constant M")
    if assumptions.source == "estimated":
        violations.append("constants were estimated from the private training data")
    problem = _rounding_problem(assumptions, precision)
    if problem is not None:
        violations.append(problem)
    statements = assumptions.describe() + (
        f"stored model minimises the training objective up to gradient norm {gap:g}",
        "reference: the exact minimiser of the remaining-data objective",
    )
    return (m * assumptions.gradient_bound + n * gap) / (n - m), statements, violations


def _step_rounding(
    n: int, m: int, assumptions: Assumptions, precision: Precision | None, step_bound: float,
    damping: float, stored_hessian: bool, radius: float | None = None,
) -> NewtonRounding | None:
    if precision is None:
        return None
    model = assumptions.error_model
    if radius is not None and radius > model.radius:  # type: ignore[union-attr]
        model = replace(model, radius=radius)  # type: ignore[type-var]
    return newton_rounding(n=n, m=m, dim=getattr(model, "dim", 1), precision=precision, model=model,  # type: ignore[arg-type]
                           smoothness=assumptions.smoothness + damping, step_bound=step_bound,
                           damping=damping, stored_hessian=stored_hessian)


def _finish(name: str, exact: float, value: float, rounding: NewtonRounding | None, precision: Precision | None,
            statements: tuple[str, ...], noise_only: float) -> Bound:
    """A certified Newton-family bound: ``value`` (with rounding when computed) or the exact one."""
    if rounding is None:
        return Bound(name, exact, "certified", statements + (_EXACT,), (), noise_only)
    if not math.isfinite(value):
        return Bound(name, math.inf, "uncertified", statements, (_unbounded_rounding(precision),), None)  # type: ignore[arg-type]
    term = max(value - exact, rounding.addition)
    value = (exact + term) * _FORMULA
    return Bound(name, value, "certified", statements + (_rounding_statement(precision, term),), (),
                 noise_only, term)


def newton_step_bound(
    *,
    n: int,
    m: int,
    assumptions: Assumptions,
    optimality_gap: float = 0.0,
    precision: Precision | None = None,
) -> Bound:
    """Error of one Newton step on the remaining-data ERM objective (Sekhari et al., NeurIPS 2021).

    The stored model ŵ (approximately) minimises F_S = (1/n) Σ_i ℓ_i with ‖∇F_S(ŵ)‖ ≤ ``optimality_gap``.
    Deleting U (|U| = m) by w̄ = ŵ − Ĥ⁻¹ ∇F_{S\\U}(ŵ), Ĥ = ∇²F_{S\\U}(ŵ), is one Newton step on the
    λ-strongly convex, M-Hessian-Lipschitz F_{S\\U}, whose gradient at ŵ has norm
    ‖g‖ ≤ ĝ = (m G + n·gap)/(n − m). Then (docs/theory.md, Theorem 14)::

        ‖w̄ − argmin F_{S\\U}‖ ≤ min( M ĝ² / (2 λ³), 2 ĝ/λ )

    (the second term: the step and the distance of ŵ are each at most ĝ/λ). With gap = 0 and
    m ≤ n/2 the first term is at most Sekhari et al.'s γ = 2 M m² L² / (λ³ n²). With ``precision``
    both terms include the backward errors of the computed step (Lemma 22: gradient and Hessian
    evaluation, the stored-Hessian update, the Cholesky solve, the final addition).

    Example:
        >>> a = Assumptions(gradient_bound=1.0, smoothness=2.0, strong_convexity=0.5, hessian_lipschitz=1.0)
        >>> round(newton_step_bound(n=100, m=1, assumptions=a).value, 8)   # 1·(1/99)²/(2·0.125)
        0.00040812
    """
    g, statements, violations = _newton_family_setup("Newton-step", n, m, assumptions, optimality_gap, precision)
    if violations:
        return Bound("newton-step", math.inf, "uncertified", statements, tuple(violations), None)
    lam, M = assumptions.strong_convexity, float(assumptions.hessian_lipschitz)  # type: ignore[arg-type]
    exact = min(M * g * g / (2.0 * lam**3), 2.0 * g / lam)
    r = _step_rounding(n, m, assumptions, precision, g / lam, 0.0, True)
    value = exact
    if r is not None:
        second = (g + r.gradient) / (lam - r.hessian) + g / lam + r.addition if r.hessian < lam else math.inf
        value = min(perturbed_step_error(h=g / lam, alpha=0.0, lipschitz=M, strong_convexity=lam, rounding=r),
                    second)
    return _finish("newton-step", exact, value, r, precision, statements, g / lam)


def damped_newton_bound(
    *,
    n: int,
    m: int,
    assumptions: Assumptions,
    damping: float,
    optimality_gap: float = 0.0,
    precision: Precision | None = None,
) -> Bound:
    """Error of the damped Newton step w̄ = ŵ − (Ĥ + τI)⁻¹ g (docs/theory.md, Theorem 15).

    With ĝ as in :func:`newton_step_bound`, ‖w̄ − argmin F_{S\\U}‖ ≤ min((M ĝ/(2λ) + τ) ĝ / (λ (λ + τ)),
    ĝ/(λ + τ) + ĝ/λ): the Newton error plus a damping bias that vanishes as τ → 0 and tends to the
    noise-only ĝ/λ as τ → ∞. ``precision`` adds the rounding of the computed step (Lemma 22).

    Example:
        >>> a = Assumptions(gradient_bound=1.0, smoothness=2.0, strong_convexity=0.5, hessian_lipschitz=1.0)
        >>> b = damped_newton_bound(n=100, m=1, assumptions=a, damping=0.0)
        >>> round(b.value, 8) == round(newton_step_bound(n=100, m=1, assumptions=a).value, 8)
        True
    """
    tau = check_nonnegative("damping", damping)
    g, statements, violations = _newton_family_setup("damped-Newton", n, m, assumptions, optimality_gap, precision)
    if violations:
        return Bound("damped-newton", math.inf, "uncertified", statements, tuple(violations), None)
    lam, M = assumptions.strong_convexity, float(assumptions.hessian_lipschitz)  # type: ignore[arg-type]
    exact = min((M * g / (2.0 * lam) + tau) * g / (lam * (lam + tau)), g / (lam + tau) + g / lam)
    r = _step_rounding(n, m, assumptions, precision, g / lam, tau, False)
    value = exact
    if r is not None:
        second = (g + r.gradient) / (lam + tau - r.hessian) + g / lam + r.addition if r.hessian < lam else math.inf
        value = min(perturbed_step_error(h=g / lam, alpha=tau, lipschitz=M, strong_convexity=lam, rounding=r),
                    second)
    return _finish("damped-newton", exact, value, r, precision, statements + (f"damping tau = {tau:g}",), g / lam)


def gradient_residual_bound(
    *,
    n: int,
    feature_norm_bound: float,
    loss_derivative_bound: float,
    second_derivative_lipschitz: float,
    weight_decay: float,
    rounding: float | None = None,
) -> Bound:
    """Guo et al. (ICML 2020) worst-case gradient residual after removing one point by a Newton step.

    For linear models ℓ(wᵀx, y) with ‖x‖ ≤ 1 (rescaled by ``feature_norm_bound``), |ℓ'| ≤ C, ℓ''
    γ-Lipschitz, and objective Σ_i ℓ_i + (λn/2)‖w‖², the residual of the updated model w⁻ on the
    remaining n − 1 points is ‖∇L(w⁻; D')‖ ≤ 4 γ C² / (λ² (n − 1)) (Guo et al., Thm. 1). The remaining
    objective is λ(n − 1)-strongly convex, so ‖w⁻ − argmin L(·; D')‖ ≤ residual / (λ (n − 1)); that
    distance is ``value``. Feature norms X ≠ 1 scale C by X and γ by X³. ``rounding`` is the
    floating-point term of the computed step (e.g. from
    :func:`~certunlearn.certify.rounding.newton_rounding` and Lemma 22); without it the bound is for
    exact arithmetic and never backs a release.

    Example:
        >>> b = gradient_residual_bound(n=101, feature_norm_bound=1.0, loss_derivative_bound=1.0,
        ...                             second_derivative_lipschitz=0.25, weight_decay=0.1)
        >>> round(b.value, 6)   # 4·0.25·1/(0.01·100) / (0.1·100)
        0.1
    """
    n = int(n)
    if n < 2:
        raise ConfigError(f"need n >= 2, got {n}")
    x = check_positive("feature_norm_bound", feature_norm_bound)
    c = check_positive("loss_derivative_bound", loss_derivative_bound) * x
    gamma = check_nonnegative("second_derivative_lipschitz", second_derivative_lipschitz) * x**3
    lam = check_positive("weight_decay", weight_decay)
    residual = 4.0 * gamma * c * c / (lam * lam * (n - 1))
    statements = (
        f"linear model, ||x|| <= {x:g}, |loss'| <= {c / x:g}, loss'' {gamma / x**3:g}-Lipschitz",
        f"objective sum of losses + (lambda n/2)||w||^2 with lambda = {lam:g}; one point removed",
        f"gradient residual <= {residual:.6g} (Guo et al. 2020, Thm. 1)",
    )
    value = residual / (lam * (n - 1))
    if rounding is None:
        return Bound("gradient-residual", value, "certified", statements + (_EXACT,), (), None)
    term = check_positive("rounding", rounding)
    return Bound("gradient-residual", (value + term) * _FORMULA, "certified",
                 statements + (f"floating-point term {term:.3g} included (given by the caller)",), (), None, term)
