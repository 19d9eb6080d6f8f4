"""Deletion capacity: how many deletions a model absorbs before it must be retrained.

Sekhari et al. (NeurIPS 2021) define the deletion capacity as the largest m for which the released
model's expected excess risk stays below a tolerance. certunlearn computes it from proven bounds only:
for the release w̄ + ν with ‖w̄ − w*‖ ≤ Δ(m) (w* the retrained model) and ν ~ N(0, σ(m)² I_d), if the
remaining-data objective F is β-smooth and ‖∇F(w*)‖ ≤ g (g = 0 when w* is a minimiser; the gradient
bound G for a model retrained by a fixed number of SGD steps), then with x = w̄ + ν − w*,

    E[F(w* + x)] − F(w*) ≤ E[⟨∇F(w*), x⟩ + (β/2)‖x‖²] ≤ g Δ(m) + (β/2) (Δ(m)² + d σ(m)²),

because E[ν] = 0 and E‖ν‖² = d σ²; σ(m) is the Gaussian calibration of Δ(m). The capacity is the largest m ≤ m_max whose
right-hand side is ≤ the tolerance. For HF-OCU, :func:`hfocu_worst_case_sensitivity` gives a Δ(m) that
holds wherever the m ids fall in the schedule (docs/theory.md §3.4), as a capacity must be announced
before requests arrive.

Example:
    >>> # Δ(m) = 0.01 m, σ(m) = 3.7306 Δ(m), g = 0: risk = ½ (1e-4 + 1.3917e-3) m² ≤ 0.01 ⇔ m ≤ 3
    >>> cap = deletion_capacity(sensitivity=lambda m: 0.01 * m, epsilon=1.0, delta=1e-5, dim=1,
    ...                         smoothness=1.0, tolerance=0.01, m_max=100)
    >>> cap.capacity
    3
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from certunlearn.certify.assumptions import Assumptions
from certunlearn.certify.gaussian import gaussian_sigma
from certunlearn.certify.hfocu_bounds import _as_array, _common_violations, _suffix_products
from certunlearn.certify.rounding import Precision, hfocu_rounding
from certunlearn.errors import ConfigError
from certunlearn.validation import check_int, check_nonnegative, check_positive

__all__ = ["CapacityResult", "deletion_capacity", "hfocu_worst_case_sensitivity"]


@dataclass(frozen=True, slots=True)
class CapacityResult:
    """The capacity and the curve it was read from.

    Attributes:
        capacity: Largest m meeting the tolerance (0 if even m = 1 fails).
        tolerance: The excess-risk tolerance.
        m: Deletion counts evaluated.
        sensitivity: Δ(m) for each.
        sigma: σ(m) for each.
        excess_risk_bound: g Δ + (β/2)(Δ² + dσ²) for each.
        assumptions: What the figures rely on.
    """

    capacity: int
    tolerance: float
    m: tuple[int, ...]
    sensitivity: tuple[float, ...]
    sigma: tuple[float, ...]
    excess_risk_bound: tuple[float, ...]
    assumptions: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "capacity": self.capacity,
            "tolerance": self.tolerance,
            "curve": [
                {"m": m, "sensitivity": s, "sigma": g, "excess_risk_bound": e}
                for m, s, g, e in zip(
                    self.m, self.sensitivity, self.sigma, self.excess_risk_bound, strict=True
                )
            ],
            "assumptions": list(self.assumptions),
        }


def deletion_capacity(
    *,
    sensitivity: Callable[[int], float],
    epsilon: float,
    delta: float,
    dim: int,
    smoothness: float,
    tolerance: float = 0.01,
    m_max: int = 1000,
    calibration: str = "analytic",
    reference_gradient: float = 0.0,
) -> CapacityResult:
    """Largest m with g Δ(m) + (β/2)(Δ(m)² + d σ(m)²) ≤ tolerance (Sekhari et al.'s definition).

    Args:
        sensitivity: m ↦ Δ(m), a proven bound valid for every deletion set of size m
            (non-decreasing in m).
        epsilon: ε of each release.
        delta: δ of each release.
        dim: Number of parameters d.
        smoothness: β of the remaining-data objective.
        tolerance: Excess-risk tolerance (Sekhari et al. use 0.01).
        m_max: Largest m examined.
        calibration: ``analytic`` or ``classical``.
        reference_gradient: g ≥ ‖∇F(w*)‖ at the retrained reference (0 for an exact minimiser).

    Returns:
        :class:`CapacityResult` (the curve stops at the first m that fails).
    """
    check_positive("epsilon", epsilon)
    dim = check_int("dim", dim, minimum=1)
    beta = check_positive("smoothness", smoothness)
    tol = check_positive("tolerance", tolerance)
    m_max = check_int("m_max", m_max, minimum=1)
    g = check_nonnegative("reference_gradient", reference_gradient)
    ms, deltas, sigmas, risks = [], [], [], []
    capacity = 0
    previous = 0.0
    for m in range(1, m_max + 1):
        value = float(sensitivity(m))
        if not math.isfinite(value) or value < 0:
            break
        if value < previous:
            raise ConfigError(f"sensitivity(m) must be non-decreasing; it fell at m={m}")
        previous = value
        sigma = (
            gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=value, method=calibration)
            if value > 0 else 0.0  # Δ = 0: the release equals the reference, no noise needed
        )
        risk = g * value + 0.5 * beta * (value * value + dim * sigma * sigma)
        ms.append(m)
        deltas.append(value)
        sigmas.append(sigma)
        risks.append(risk)
        if risk > tol:
            break
        capacity = m
    statements = (
        f"remaining-data objective is beta={beta:g}-smooth; its gradient at the retrained model is <= {g:g}",
        f"Delta(m) is a proven bound for every deletion set of size m; (epsilon, delta) = ({epsilon:g}, {delta:g})",
        "expected excess risk of the release over the retrained model <= g Delta + (beta/2)(Delta^2 + d sigma^2)",
    )
    return CapacityResult(capacity, tol, tuple(ms), tuple(deltas), tuple(sigmas), tuple(risks), statements)


def hfocu_worst_case_sensitivity(
    *,
    lrs: np.ndarray,
    batch_sizes: np.ndarray,
    epoch_lengths: list[int],
    assumptions: Assumptions,
    order: str = "first",
    projection_radius: float | None = None,
    precision: Precision | None = None,
) -> Callable[[int], float]:
    """Δ̄(m) for HF-OCU, valid wherever the m deleted ids fall (docs/theory.md §3.4 and §8).

    ``order="first"``: Δ̄(m) = 2 S̄(m) with ``S̄(m) = m Σ_epochs max_{t∈epoch} κ_t``,
    ``κ_t = (η_t G/|B_t|) Π_{s>t} c̄_s`` and ``c̄_s = 1 − η_s λ (1 − min(m, |B_s|)/|B_s|)``: every id
    occurs at most once per epoch (an "epoch" is a run of steps without a repeated id).

    ``order="second"``: min(Ē(m), 2 S̄(m)), where Ē(m) bounds Theorem 12's E for every placement:
    with D̄_t = m Σ_epochs max_{r∈epoch, r<t} (η_r G/|B_r|) Π_{s=r+1}^{t−1} c̄_s ≥ D_t and
    P_t = Π_{s>t} (1 − η_s λ),
    ``Ē(m) = Σ_t η_t min((M/2) D̄_t², (β−λ) D̄_t) P_t + m Σ_epochs max_{t∈epoch} η_t β D̄_t P_t/|B_t|``.
    Needs the Hessian-Lipschitz constant M and no projection.

    Convex losses with η_t ≤ 2/(λ+β) only. With ``precision`` (and an error model in the
    assumptions) Δ̄(m) adds the floating-point term of docs/theory.md, Theorem 21, evaluated with
    m_t = min(m, |B_t|) at every step, which dominates every placement (each term is non-decreasing
    in the counts).

    Example:
        >>> a = Assumptions(gradient_bound=1.0, smoothness=1.0)
        >>> f = hfocu_worst_case_sensitivity(lrs=np.full(4, 0.5), batch_sizes=np.full(4, 2),
        ...                                  epoch_lengths=[2, 2], assumptions=a)
        >>> f(1)   # λ = 0: 2 · m · E · η G/|B| = 2 · 1 · 2 · 0.25
        1.0
    """
    lrs = _as_array("lrs", lrs, np.float64)
    sizes = _as_array("batch_sizes", batch_sizes, np.float64)
    if sum(epoch_lengths) != lrs.size or lrs.size != sizes.size or lrs.size == 0:
        raise ConfigError("epoch_lengths must add up to the number of steps (at least one)")
    if np.any(lrs <= 0) or np.any(sizes < 1):
        raise ConfigError("need lrs > 0 and batch_sizes >= 1")
    if order not in ("first", "second"):
        raise ConfigError(f"order must be 'first' or 'second', got {order!r}")
    if not assumptions.convex:
        raise ConfigError("the worst-case HF-OCU sensitivity is proven for convex losses only")
    violations = _common_violations(lrs, assumptions, None)  # the per-request bounds' own checks
    if violations:
        raise ConfigError("no proven worst case: " + "; ".join(violations))
    lam, beta, G = assumptions.strong_convexity, assumptions.smoothness, assumptions.gradient_bound
    if order == "second" and (assumptions.hessian_lipschitz is None or projection_radius is not None):
        raise ConfigError("the second-order worst case needs a Hessian-Lipschitz constant and no projection")
    bounds = np.cumsum([0, *epoch_lengths])
    epoch_of = np.repeat(np.arange(len(epoch_lengths)), epoch_lengths)
    injection = lrs * G / sizes
    tail = _suffix_products(np.maximum(1.0 - lrs * lam, np.finfo(float).tiny))  # Π_{s>t} ρ_s, m-independent

    def first_order(m: int, c_bar: np.ndarray) -> float:
        kappa = injection * _suffix_products(np.maximum(c_bar, np.finfo(float).tiny))
        per_epoch = [kappa[a:b].max() for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
        return 2.0 * m * float(np.sum(per_epoch))

    def second_order(m: int, c_bar: np.ndarray) -> float:
        M = float(assumptions.hessian_lipschitz)  # type: ignore[arg-type]
        d_bar = np.empty_like(lrs)
        finished = running = 0.0  # Σ of decayed maxima of finished epochs; running max of this one
        c_list, injection_list = c_bar.tolist(), injection.tolist()
        for t in range(lrs.size):
            if t > 0 and epoch_of[t] != epoch_of[t - 1]:
                finished, running = finished + running, 0.0
            d_bar[t] = m * (finished + running)
            finished *= c_list[t]
            running = max(running * c_list[t], injection_list[t])
        remainder = np.minimum(0.5 * M * d_bar**2, (beta - lam) * d_bar)  # Lemma 11
        quadratic = float(np.sum(lrs * remainder * tail))
        linear = lrs * beta * d_bar * tail / sizes
        per_epoch = [linear[a:b].max() for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
        return quadratic + m * float(np.sum(per_epoch))

    if precision is not None and assumptions.error_model is None:
        raise ConfigError("a floating-point worst case needs a rounding model (Assumptions.error_model)")

    def rounding(m: int) -> tuple[float, float]:
        if precision is None:
            return 0.0, 0.0
        terms = hfocu_rounding(
            lrs=lrs, batch_sizes=sizes, deletion_counts=np.minimum(m, sizes), precision=precision,
            model=assumptions.error_model, gradient_bound=G, smoothness=beta, strong_convexity=lam,  # type: ignore[arg-type]
            dim=getattr(assumptions.error_model, "dim", 1), hessian_lipschitz=assumptions.hessian_lipschitz,
            projection=projection_radius is not None)
        return terms.first_order(), terms.second_order()

    def sensitivity(m: int) -> float:
        c_bar = 1.0 - lrs * lam * (1.0 - np.minimum(m, sizes) / sizes)
        r1, r2 = rounding(m)
        first = first_order(m, c_bar) + r1
        return first if order == "first" else min(first, second_order(m, c_bar) + r2)

    return sensitivity
