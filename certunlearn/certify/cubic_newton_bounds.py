"""Error bound of CureNewton: K cubic-regularised Newton steps on the remaining-data objective.

Each step solves (H + αI)d = −g with α = (M_c/2)‖d‖ and is accepted only if it does not raise the
remaining loss by more than a slack; the bound holds after any number 1..K of accepted steps
(docs/theory.md §7.2, §9.4). It shares the Newton family's set-up and floating-point terms
(:mod:`certunlearn.certify.newton_bounds`).

Example:
    >>> a = Assumptions(gradient_bound=1.0, smoothness=2.0, strong_convexity=0.5, hessian_lipschitz=1.0)
    >>> b = cubic_newton_bound(n=100, m=1, assumptions=a, cubic_reg=1.0)
    >>> b.name, b.certified
    ('cubic-newton', True)
"""

from __future__ import annotations

import math

from certunlearn.certify.assumptions import Assumptions, Bound
from certunlearn.certify.newton_bounds import _finish, _newton_family_setup, _step_rounding
from certunlearn.certify.rounding import NewtonRounding, Precision, perturbed_step_error
from certunlearn.errors import ConfigError
from certunlearn.validation import check_nonnegative, check_positive

__all__ = ["cubic_newton_bound"]


def _cubic_step(h: float, alpha_max: float, M: float, lam: float, r: NewtonRounding | None) -> float:
    """max over α ∈ [0, α_max] of Lemma 22's bound (a linear-fractional function of α: check both ends)."""
    if r is None:  # exact arithmetic, as in Theorem 15: 1/(λ + α) ≤ 1/λ
        return (0.5 * M * h + alpha_max) * h / lam
    return max(perturbed_step_error(h=h, alpha=0.0, lipschitz=M, strong_convexity=lam, rounding=r),
               perturbed_step_error(h=h, alpha=alpha_max, lipschitz=M, strong_convexity=lam, rounding=r))


def cubic_newton_bound(
    *,
    n: int,
    m: int,
    assumptions: Assumptions,
    cubic_reg: float,
    iterations: int = 1,
    optimality_gap: float = 0.0,
    acceptance_slack: float = 0.0,
    precision: Precision | None = None,
) -> Bound:
    """Error of K cubic-regularised Newton steps with regularisation ≤ ``cubic_reg`` (Theorem 15).

    Every step solves (H + αI)d = −g with α = (M_c/2)‖d‖, M_c ≤ ``cubic_reg``, and is accepted only if
    it does not increase the remaining loss by more than ``acceptance_slack``. With
    e₁ = min((M + M_c) ĝ²/(2λ³), 2ĝ/λ) and, for k ≥ 1, e_{k+1} = min((M/2 + M_c β/(2λ)) e_k²/λ, cap),
    cap = √((β e₁² + 2(K−1)·slack)/λ) (accepted steps decrease the λ-strongly convex, β-smooth loss up
    to the slack), Δ = max(e₁, …, e_K) bounds the distance to the remaining-data minimiser after any
    number 1..K of accepted steps (a data-dependent early stop cannot break it). At least one step must
    be accepted; the unlearner guarantees that by never rejecting a step with M_c ≥ M, where the cubic
    model majorises the loss. ``precision`` adds the rounding of every computed step and of the
    acceptance test (Lemma 22).

    Example:
        >>> from certunlearn.certify.newton_bounds import newton_step_bound
        >>> a = Assumptions(gradient_bound=1.0, smoothness=2.0, strong_convexity=0.5, hessian_lipschitz=1.0)
        >>> b = cubic_newton_bound(n=100, m=1, assumptions=a, cubic_reg=1.0)
        >>> round(b.value / newton_step_bound(n=100, m=1, assumptions=a).value, 10)   # (M + M_c)/M
        2.0
        >>> b3 = cubic_newton_bound(n=100, m=1, assumptions=a, cubic_reg=1.0, iterations=3)
        >>> b3.value <= 2.0 * b.value   # √(β/λ) = 2 caps every later iterate
        True
    """
    cubic_reg = check_positive("cubic_reg", cubic_reg)
    slack = check_nonnegative("acceptance_slack", acceptance_slack)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"iterations must be an integer >= 1, got {iterations!r}")
    g, statements, violations = _newton_family_setup("cubic-Newton", n, m, assumptions, optimality_gap, precision)
    if violations:
        return Bound("cubic-newton", math.inf, "uncertified", statements, tuple(violations), None)
    lam, M, beta = assumptions.strong_convexity, float(assumptions.hessian_lipschitz), assumptions.smoothness  # type: ignore[arg-type]

    def run(r_first: NewtonRounding | None, r_later: NewtonRounding | None) -> float:
        e_g = 0.0 if r_first is None else r_first.gradient
        e_h = 0.0 if r_first is None else r_first.hessian
        if e_h >= 0.5 * lam:
            return math.inf
        add = 0.0 if r_first is None else r_first.addition
        alpha = cubic_reg * (g + e_g) / (2.0 * (lam - e_h))
        first = min(_cubic_step(g / lam, alpha, M, lam, r_first), (g + e_g) / (lam - e_h) + g / lam + add)
        objective = 0.0 if r_later is None else r_later.objective
        cap = math.sqrt((beta * first * first + 2.0 * (iterations - 1) * (slack + 2.0 * objective)) / lam)
        e = worst = first
        for _ in range(iterations - 1):
            e_g2 = 0.0 if r_later is None else r_later.gradient
            e_h2 = 0.0 if r_later is None else r_later.hessian
            if r_later is None:
                step = (0.5 * M + 0.5 * cubic_reg * beta / lam) * e * e / lam
            else:
                step = _cubic_step(e, cubic_reg * (beta * e + e_g2) / (2.0 * (lam - e_h2)), M, lam, r_later)
            e = min(step, cap)
            worst = max(worst, e)
        return worst

    exact = run(None, None)
    r1 = _step_rounding(n, m, assumptions, precision, g / lam, cubic_reg * g / lam, False)  # α ≤ M_c ĝ/λ
    value = exact
    if r1 is not None:
        radius = assumptions.error_model.radius + 2.0 * exact  # type: ignore[union-attr]  # later iterates
        alpha_cap = cubic_reg * 2.0 * exact
        r_later = _step_rounding(n, m, assumptions, precision, exact, alpha_cap, False, radius=radius)
        value = run(r1, r_later)
    statements += (
        f"cubic regularisation of every step <= {cubic_reg:g}; at most {iterations} steps",
        f"every accepted step raises the remaining-data loss by at most {slack:.3g}",
    )
    return _finish("cubic-newton", exact, value, r1, precision, statements, g / lam)
