"""Unlearning error bounds Δ ≥ ‖w̄ − w^{-U}_T‖, each with the assumptions it needs, checked.

Every bound is a pure function of public quantities: the schedule's step sizes and batch sizes, the
positions of the deleted ids in it (m_t = |U ∩ B_t|), and declared constants collected in an
:class:`Assumptions` object. When an assumption fails the returned :class:`Bound` says which and why
and has ``status="uncertified"``; its value is then never used for noise. Proofs: docs/theory.md.

Example:
    >>> import numpy as np
    >>> a = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.1)
    >>> b = coupled_sgd_bound(lrs=np.full(4, 0.1), batch_sizes=np.full(4, 10),
    ...                       deletion_counts=np.array([1, 0, 1, 0]), assumptions=a)
    >>> b.status, round(b.value, 4), round(b.noise_only_value, 4)
    ('certified', 0.1569, 0.0785)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from certunlearn.certify.rounding import (
    ErrorModel,
    HFOCURounding,
    NewtonRounding,
    Precision,
    SoftmaxErrorModel,
    hfocu_rounding,
    newton_rounding,
    perturbed_step_error,
)
from certunlearn.errors import AssumptionError, ConfigError
from certunlearn.validation import check_choice, check_nonnegative, check_positive

__all__ = [
    "ASSUMPTION_SOURCES",
    "BOUND_STATUSES",
    "Assumptions",
    "Bound",
    "coupled_sgd_bound",
    "cubic_newton_bound",
    "damped_newton_bound",
    "gradient_residual_bound",
    "newton_step_bound",
    "second_order_sgd_bound",
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
