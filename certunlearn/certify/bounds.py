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
from dataclasses import dataclass, field

import numpy as np

from certunlearn.errors import AssumptionError, ConfigError
from certunlearn.validation import check_choice, check_nonnegative, check_positive

__all__ = [
    "ASSUMPTION_SOURCES",
    "BOUND_STATUSES",
    "Assumptions",
    "Bound",
    "coupled_sgd_bound",
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
    """

    gradient_bound: float
    smoothness: float
    strong_convexity: float = 0.0
    convex: bool = True
    hessian_lipschitz: float | None = None
    source: str = "declared"
    notes: tuple[str, ...] = field(default_factory=tuple)

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
    """

    name: str
    value: float
    status: str
    assumptions: tuple[str, ...]
    violations: tuple[str, ...] = ()
    noise_only_value: float | None = None

    def __post_init__(self) -> None:
        check_choice("status", self.status, BOUND_STATUSES)
        if self.status == "certified" and (self.violations or not math.isfinite(self.value)):
            raise ConfigError("a certified bound must be finite and have no violations")

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
) -> Assumptions:
    """Constants G, β, λ for softmax regression with cross-entropy and weight decay (docs/theory.md).

    For logits ``W x + b`` and ‖x‖ ≤ X: ‖∇ CE‖ ≤ √2·√(X²+1) =: G_CE and ‖∇² CE‖ ≤ (X²+1)/2. Iterates of
    SGD (and of the full-batch-normalised retrain) stay in ‖w‖ ≤ R with R the projection radius, or
    R = max(‖w_0‖, G_CE/λ) when λ > 0 and η_t λ ≤ 1. Then G = G_CE + λR, β = (X²+1)/2 + λ, and λ is
    the strong-convexity constant.

    Args:
        feature_norm_bound: Public bound X on every row's L2 norm (e.g. the clipping norm).
        weight_decay: λ ≥ 0.
        projection_radius: R if training projects onto ‖w‖ ≤ R.
        init_norm: ‖w_0‖ (0 for the zero initialisation of ``LogisticRegression``).
        source: ``derived`` when X is public, ``estimated`` when it was measured on the data.

    Raises:
        AssumptionError: λ = 0 without projection (the iterates are then unbounded a priori).

    Example:
        >>> a = softmax_regression_assumptions(feature_norm_bound=1.0, weight_decay=0.01)
        >>> round(a.gradient_bound, 4), round(a.smoothness, 4)
        (4.0, 1.01)
    """
    x = check_positive("feature_norm_bound", feature_norm_bound)
    lam = check_nonnegative("weight_decay", weight_decay)
    init_norm = check_nonnegative("init_norm", init_norm)
    g_ce = math.sqrt(2.0) * math.sqrt(x * x + 1.0)
    beta = (x * x + 1.0) / 2.0 + lam
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
    return Assumptions(
        gradient_bound=g_ce + lam * radius,
        smoothness=beta,
        strong_convexity=lam,
        convex=True,
        source=source,
        notes=notes,
    )


def _as_array(name: str, values: object, dtype: type) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be finite")
    return arr


def _propagated_sum(injections: np.ndarray, factors: np.ndarray) -> float:
    """S = Σ_t injections_t · Π_{s>t} factors_s, computed in the log domain (factors > 0)."""
    if injections.size == 0:
        return 0.0
    log_f = np.log(factors)
    suffix = np.concatenate([np.cumsum(log_f[::-1])[::-1][1:], [0.0]])  # Σ_{s>t} log f_s
    return float(np.sum(injections * np.exp(suffix)))


def coupled_sgd_bound(
    *,
    lrs: np.ndarray,
    batch_sizes: np.ndarray,
    deletion_counts: np.ndarray,
    assumptions: Assumptions,
    clip_norm: float | None = None,
) -> Bound:
    """The coupled-trajectory bound for HF-OCU: Δ = 2S (docs/theory.md, Theorem 1).

    ``S = Σ_t (η_t m_t G/|B_t|) Π_{s>t} c_s`` bounds both ‖w_T − w^{-U}_T‖ (full-batch-normalised
    coupled retrain) and ‖a^U_T‖, so ‖w̄ − w^{-U}_T‖ ≤ 2S. Contraction factors:
    c_s = 1 − η_s λ (1 − m_s/|B_s|) for convex losses with η_s ≤ 2/(λ+β); 1 + η_s β for non-convex
    losses (``conditional``). Clipping is outside the argument (``uncertified``).

    Args:
        lrs: η_t for every step ``[T]``.
        batch_sizes: |B_t| ``[T]``.
        deletion_counts: m_t = |U ∩ B_t| ``[T]``.
        assumptions: Declared or derived constants.
        clip_norm: The training clip norm, if any.

    Returns:
        A :class:`Bound`; ``noise_only_value`` is S, the sensitivity of releasing w_T + noise.

    Example:
        >>> a = Assumptions(gradient_bound=1.0, smoothness=1.0)
        >>> coupled_sgd_bound(lrs=np.ones(2), batch_sizes=np.array([2, 2]),
        ...                   deletion_counts=np.array([1, 1]), assumptions=a).value
        2.0
    """
    lrs = _as_array("lrs", lrs, np.float64)
    sizes = _as_array("batch_sizes", batch_sizes, np.float64)
    counts = _as_array("deletion_counts", deletion_counts, np.float64)
    if not lrs.shape == sizes.shape == counts.shape:
        raise ConfigError("lrs, batch_sizes and deletion_counts must have the same length")
    if np.any(lrs <= 0) or np.any(sizes < 1) or np.any(counts < 0) or np.any(counts > sizes):
        raise ConfigError("need lrs > 0, batch_sizes >= 1 and 0 <= deletion_counts <= batch_sizes")
    G, beta, lam = assumptions.gradient_bound, assumptions.smoothness, assumptions.strong_convexity
    violations: list[str] = []
    if clip_norm is not None:
        violations.append(
            f"training clips the batch gradient (clip_norm={clip_norm:g}); the coupled argument "
            "does not cover clipping"
        )
    if assumptions.source == "estimated":
        violations.append("constants were estimated from the private training data")
    if assumptions.convex:
        limit = 2.0 / (lam + beta)
        worst = float(lrs.max()) if lrs.size else 0.0
        if worst > limit:
            violations.append(
                f"step size {worst:.6g} exceeds 2/(lambda+beta) = {limit:.6g} "
                f"(lambda={lam:g}, beta={beta:g}): the SGD map is not a contraction"
            )
        factors = 1.0 - lrs * lam * (1.0 - counts / sizes)
        factors = np.maximum(factors, np.finfo(float).tiny)
    else:
        factors = 1.0 + lrs * beta
    injections = lrs * counts * G / sizes
    s = _propagated_sum(injections, factors)
    statements = assumptions.describe() + (
        "no gradient clipping; projection (if any) onto a convex set",
        "reference: coupled retrain on the same schedule, full-batch normalisation",
    )
    if violations:
        status, value = "uncertified", math.inf
    elif not assumptions.convex:
        status, value = "conditional", 2.0 * s
        statements += (f"non-convex: factors 1 + lr*beta, valid only if beta={beta:g} and G={G:g} hold",)
    else:
        status, value = "certified", 2.0 * s
    return Bound(
        name="coupled-sgd",
        value=value,
        status=status,
        assumptions=statements,
        violations=tuple(violations),
        noise_only_value=s if not violations else None,
    )
