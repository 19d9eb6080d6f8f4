"""HF-OCU error bounds: the coupled-trajectory bound (first order) and the second-order bound.

Both bound ‖w̄ − w^{-U}_T‖ for HF-OCU's w̄ = w_T + Σ_u a^u_T against the coupled retrain on the same
schedule, as pure functions of the schedule's step sizes and batch sizes, the positions of the
deleted ids in it (m_t = |U ∩ B_t|), and the declared constants of an
:class:`~certunlearn.certify.assumptions.Assumptions` object (docs/theory.md §3, §9). When an
assumption fails the returned :class:`~certunlearn.certify.assumptions.Bound` says which and why and
has ``status="uncertified"``; its value is then never used for noise.

Example:
    >>> import numpy as np
    >>> from certunlearn.certify.assumptions import softmax_regression_assumptions
    >>> a = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.1)
    >>> b = coupled_sgd_bound(lrs=np.full(4, 0.1), batch_sizes=np.full(4, 10),
    ...                       deletion_counts=np.array([1, 0, 1, 0]), assumptions=a)
    >>> b.status, round(b.value, 4), round(b.noise_only_value, 4)
    ('certified', 0.1569, 0.0785)
"""

from __future__ import annotations

import math

import numpy as np

from certunlearn.certify.assumptions import (
    _EXACT,
    Assumptions,
    Bound,
    _rounding_problem,
    _rounding_statement,
    _unbounded_rounding,
)
from certunlearn.certify.rounding import HFOCURounding, Precision, hfocu_rounding
from certunlearn.errors import ConfigError

__all__ = ["coupled_sgd_bound", "second_order_sgd_bound"]


def _as_array(name: str, values: object, dtype: type) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be finite")
    return arr


def _suffix_products(factors: np.ndarray) -> np.ndarray:
    """Π_{s>t} factors_s for every t (1 for the last), in the log domain (factors > 0)."""
    log_f = np.log(factors)
    return np.exp(np.concatenate([np.cumsum(log_f[::-1])[::-1][1:], [0.0]]))


def _propagated_sum(injections: np.ndarray, factors: np.ndarray) -> float:
    """S = Σ_t injections_t · Π_{s>t} factors_s."""
    if injections.size == 0:
        return 0.0
    return float(np.sum(injections * _suffix_products(factors)))


def _check_schedule_arrays(
    lrs: np.ndarray, batch_sizes: np.ndarray, deletion_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lrs = _as_array("lrs", lrs, np.float64)
    sizes = _as_array("batch_sizes", batch_sizes, np.float64)
    counts = _as_array("deletion_counts", deletion_counts, np.float64)
    if not lrs.shape == sizes.shape == counts.shape:
        raise ConfigError("lrs, batch_sizes and deletion_counts must have the same length")
    if np.any(lrs <= 0) or np.any(sizes < 1) or np.any(counts < 0) or np.any(counts > sizes):
        raise ConfigError("need lrs > 0, batch_sizes >= 1 and 0 <= deletion_counts <= batch_sizes")
    return lrs, sizes, counts


def _common_violations(
    lrs: np.ndarray, assumptions: Assumptions, clip_norm: float | None
) -> list[str]:
    violations: list[str] = []
    if clip_norm is not None:
        violations.append(
            f"training clips the batch gradient (clip_norm={clip_norm:g}); the coupled argument "
            "does not cover clipping"
        )
    if assumptions.source == "estimated":
        violations.append("constants were estimated from the private training data")
    if assumptions.convex:
        lam, beta = assumptions.strong_convexity, assumptions.smoothness
        limit = 2.0 / (lam + beta)
        worst = float(lrs.max()) if lrs.size else 0.0
        if worst > limit:
            violations.append(
                f"step size {worst:.6g} exceeds 2/(lambda+beta) = {limit:.6g} "
                f"(lambda={lam:g}, beta={beta:g}): the SGD map is not a contraction"
            )
    return violations


def _first_order_path(
    lrs: np.ndarray, sizes: np.ndarray, counts: np.ndarray, assumptions: Assumptions
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step injections η_t m_t G/|B_t| and factors c_t of the first-order recursion."""
    G, beta, lam = assumptions.gradient_bound, assumptions.smoothness, assumptions.strong_convexity
    if assumptions.convex:
        factors = np.maximum(1.0 - lrs * lam * (1.0 - counts / sizes), np.finfo(float).tiny)
    else:
        factors = 1.0 + lrs * beta
    return lrs * counts * G / sizes, factors


_SCOPE = (
    "no gradient clipping; projection (if any) onto a convex set",
    "reference: coupled retrain on the same schedule, full-batch normalisation",
)


def _hfocu_rounding_terms(
    lrs: np.ndarray, sizes: np.ndarray, counts: np.ndarray, assumptions: Assumptions,
    precision: Precision | None, projection: bool, trajectory: np.ndarray | None,
    terms: HFOCURounding | None = None,
) -> tuple[float | None, float | None, float, str | None]:
    """(first-order term, second-order term, noise-only term, problem) of the rounding; None when exact."""
    if precision is None:
        return None, None, 0.0, None
    problem = _rounding_problem(assumptions, precision)
    if problem is not None:
        return None, None, 0.0, problem
    terms = terms or hfocu_rounding(
        lrs=lrs, batch_sizes=sizes, deletion_counts=counts, precision=precision,
        model=assumptions.error_model, gradient_bound=assumptions.gradient_bound,  # type: ignore[arg-type]
        smoothness=assumptions.smoothness, strong_convexity=assumptions.strong_convexity,
        dim=getattr(assumptions.error_model, "dim", 1), hessian_lipschitz=assumptions.hessian_lipschitz,
        projection=projection, trajectory=trajectory,
    )
    first, second = terms.first_order(), terms.second_order()
    if not math.isfinite(first):
        return None, None, 0.0, _unbounded_rounding(precision)
    return first, second, 2.0 * terms.trajectory, None


def coupled_sgd_bound(
    *,
    lrs: np.ndarray,
    batch_sizes: np.ndarray,
    deletion_counts: np.ndarray,
    assumptions: Assumptions,
    clip_norm: float | None = None,
    precision: Precision | None = None,
    projection: bool = False,
    trajectory_error: np.ndarray | None = None,
    rounding_terms: HFOCURounding | None = None,
) -> Bound:
    """The first-order coupled-trajectory bound for HF-OCU: Δ = 2S + rounding (docs/theory.md, Theorems 6, 21).

    ``S = Σ_t (η_t m_t G/|B_t|) Π_{s>t} c_s`` bounds both ‖w_T − w^{-U}_T‖ (full-batch-normalised
    coupled retrain) and ‖a^U_T‖, so ‖w̄ − w^{-U}_T‖ ≤ 2S in exact arithmetic. Contraction factors:
    c_s = 1 − η_s λ (1 − m_s/|B_s|) for convex losses with η_s ≤ 2/(λ+β); 1 + η_s β for non-convex
    losses (``conditional``). Clipping is outside the argument (``uncertified``).

    With ``precision`` the value adds the floating-point term of Theorem 21 (training and recorder
    arithmetic, statistics storage, the final sums, and the rounding of a retrain computed in the same
    dtype), so the bound holds for the computed release against the exact coupled retrain and against
    its computation; without it the bound is for exact arithmetic and never backs a release.

    Args:
        lrs: η_t for every step ``[T]``.
        batch_sizes: |B_t| ``[T]``.
        deletion_counts: m_t = |U ∩ B_t| ``[T]``.
        assumptions: Declared or derived constants (with an error model for ``precision``).
        clip_norm: The training clip norm, if any.
        precision: The dtypes used (:class:`~certunlearn.certify.rounding.Precision`).
        projection: Whether training projects onto a ball (adds the projection's rounding).
        trajectory_error: Precomputed :func:`~certunlearn.certify.rounding.sgd_trajectory_error`.
        rounding_terms: Precomputed :func:`~certunlearn.certify.rounding.hfocu_rounding` of these
            counts (a request computes it once for both HF-OCU bounds).

    Returns:
        A :class:`Bound`; ``noise_only_value`` is S (plus one trajectory's rounding), the sensitivity
        of releasing w_T + noise.

    Example:
        >>> a = Assumptions(gradient_bound=1.0, smoothness=1.0)
        >>> coupled_sgd_bound(lrs=np.ones(2), batch_sizes=np.array([2, 2]),
        ...                   deletion_counts=np.array([1, 1]), assumptions=a).value
        2.0
    """
    lrs, sizes, counts = _check_schedule_arrays(lrs, batch_sizes, deletion_counts)
    violations = _common_violations(lrs, assumptions, clip_norm)
    injections, factors = _first_order_path(lrs, sizes, counts, assumptions)
    s = _propagated_sum(injections, factors)
    statements = assumptions.describe() + _SCOPE
    rounding, _, alone, problem = _hfocu_rounding_terms(lrs, sizes, counts, assumptions, precision, projection,
                                                        trajectory_error, rounding_terms)
    if problem is not None and assumptions.convex:
        violations.append(problem)
    statements += (_rounding_statement(precision, rounding),)
    extra = rounding or 0.0
    if violations:
        status, value = "uncertified", math.inf
    elif not assumptions.convex:
        status, value = "conditional", 2.0 * s + extra
        beta, G = assumptions.smoothness, assumptions.gradient_bound
        statements += (f"non-convex: factors 1 + lr*beta, valid only if beta={beta:g} and G={G:g} hold",)
    else:
        status, value = "certified", 2.0 * s + extra
    return Bound(
        name="coupled-sgd",
        value=value,
        status=status,
        assumptions=statements,
        violations=tuple(violations),
        noise_only_value=(s + alone) if not violations else None,
        rounding=None if violations else rounding,
    )


def second_order_sgd_bound(
    *,
    lrs: np.ndarray,
    batch_sizes: np.ndarray,
    deletion_counts: np.ndarray,
    assumptions: Assumptions,
    clip_norm: float | None = None,
    projection_radius: float | None = None,
    precision: Precision | None = None,
    trajectory_error: np.ndarray | None = None,
    rounding_terms: HFOCURounding | None = None,
) -> Bound:
    """Second-order bound on the HF-OCU error ‖w̄ − w^{-U}_T‖ (docs/theory.md, Theorems 12, 21).

    With D_t the first-order bound on ‖w^{-U}_t − w_t‖ (D_0 = 0, D_{t+1} = c_t D_t + η_t m_t G/|B_t|),
    the approximation error e_t = (w^{-U}_t − w_t) − a^U_t obeys
    ``‖e_{t+1}‖ ≤ (1 − η_t λ) ‖e_t‖ + η_t [ m_t β D_t/|B_t| + (1 − m_t/|B_t|) min((M/2) D_t², (β − λ) D_t) ]``,
    so the error is O(D²) + O(m β D/|B|) instead of O(D); the value is non-decreasing in the counts. The returned value is
    min(this bound, 2S), each with its floating-point term when ``precision`` is given (Theorem 21):
    both are proven, so their minimum is too.

    Needs convex per-sample losses with a declared Hessian-Lipschitz constant M, step sizes
    η_t ≤ 2/(λ+β), no clipping and no projection (the projection's kink breaks the Taylor step).

    Example:
        >>> from certunlearn.certify.assumptions import softmax_regression_assumptions
        >>> a = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.1)
        >>> lrs, sizes = np.full(200, 0.5), np.full(200, 100)
        >>> counts = np.zeros(200, dtype=int); counts[::10] = 1      # one id, once per "epoch"
        >>> first = coupled_sgd_bound(lrs=lrs, batch_sizes=sizes, deletion_counts=counts, assumptions=a)
        >>> second = second_order_sgd_bound(lrs=lrs, batch_sizes=sizes, deletion_counts=counts, assumptions=a)
        >>> second.certified, second.value < first.noise_only_value < first.value
        (True, True)
    """
    lrs, sizes, counts = _check_schedule_arrays(lrs, batch_sizes, deletion_counts)
    violations = _common_violations(lrs, assumptions, clip_norm)
    if not assumptions.convex:
        violations.append("the second-order bound needs convex per-sample losses")
    if assumptions.hessian_lipschitz is None:
        violations.append("the second-order bound needs a Hessian-Lipschitz constant M")
    if projection_radius is not None:
        violations.append("the second-order bound does not cover projection")
    statements = assumptions.describe() + _SCOPE
    first_rounding = second_rounding = None
    alone = 0.0
    if not violations:
        first_rounding, second_rounding, alone, problem = _hfocu_rounding_terms(
            lrs, sizes, counts, assumptions, precision, False, trajectory_error, rounding_terms)
        if problem is not None:
            violations.append(problem)
    if violations:
        return Bound("second-order-sgd", math.inf, "uncertified", statements + (_EXACT,), tuple(violations), None)
    injections, factors = _first_order_path(lrs, sizes, counts, assumptions)
    # D_t for t = 0..T-1 (before step t): D_0 = 0, D_{t+1} = c_t D_t + injection_t
    # (on Python floats: indexing numpy scalars one by one was the largest cost of a forget request)
    d_list, factor_list, injection_list = [0.0], factors.tolist(), injections.tolist()
    for t in range(1, lrs.size):
        d_list.append(factor_list[t - 1] * d_list[-1] + injection_list[t - 1])
    d = np.array(d_list, dtype=np.float64)
    s = _propagated_sum(injections, factors)  # the same 2S bits as coupled_sgd_bound
    beta, lam, M = assumptions.smoothness, assumptions.strong_convexity, float(assumptions.hessian_lipschitz)
    frac = counts / sizes
    remainder = np.minimum(0.5 * M * d * d, (beta - lam) * d)  # Lemma 11: both bound ‖r_i‖
    forcing = lrs * (frac * beta * d + (1.0 - frac) * remainder)
    rho = np.maximum(1.0 - lrs * lam, np.finfo(float).tiny)
    second = _propagated_sum(forcing, rho) + (second_rounding or 0.0)
    first = 2.0 * s + (first_rounding or 0.0)
    value = min(second, first)
    which = "second-order term" if second <= first else "first-order 2S (smaller here)"
    rounding = second_rounding if second <= first else first_rounding
    return Bound(
        name="second-order-sgd",
        value=value,
        status="certified",
        assumptions=statements + (_rounding_statement(precision, rounding),
                                  f"Delta = min(second-order bound, 2S); the minimum was the {which}"),
        violations=(),
        noise_only_value=s + alone,
        rounding=rounding,
    )
