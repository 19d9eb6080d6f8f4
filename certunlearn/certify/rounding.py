"""Floating-point error terms of the certificates (docs/theory.md §9).

Every Δ that backs a release includes a proven bound on what rounding can add to it, for the dtypes
actually used: the model's arithmetic (fp64, fp32, TF32 matrix products on GPUs), and the storage of
the HF-OCU statistics (fp32, bf16). The bounds follow the standard model of floating-point arithmetic
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002):

* (F1) ``fl(a ∘ b) = (a ∘ b)(1 + δ) + η`` with ``|δ| ≤ u`` for ``∘ ∈ {+, −, ×, ÷}`` and ``√``; ``|η|``
  at most the dtype's smallest normal number, and only on underflow;
* (F2) inner products and sums of k terms, in any order, with or without fused multiply-add, and
  every conventional matrix product built from them (BLAS, any blocking):
  ``|fl(xᵀy) − xᵀy| ≤ γ_k |x|ᵀ|y|`` with ``γ_k = k u / (1 − k u)`` (Higham, Lemma 3.1 and §3.5);
* (F3) ``exp`` and ``log`` are correct to within 4 ulps, a relative error ≤ 8u (:data:`ELEMENTARY_ERROR`;
  an assumption on the math library, stated in every certificate that relies on it).

Each bound is first a sum of first-order terms (one unit roundoff per operation, times the size of
what it rounds); the whole sum is then multiplied by :data:`MARGIN` = 2, which covers every
higher-order term as long as each first-order relative error stays below :data:`FIRST_ORDER_LIMIT`
(docs/theory.md, Lemma 16). Where that check fails the term is ``inf`` and the bound is unusable at
this precision (the release is then uncertified, never certified with an unproven number).

Example:
    >>> p = Precision(compute="float32")
    >>> p.u == 2.0 ** -24, round(gamma(10, p.u) / p.u, 6)
    (True, 10.000006)
    >>> m = SoftmaxErrorModel(features=4, classes=3, feature_norm=1.0, radius=10.0, weight_decay=0.1)
    >>> 0 < m.batch_gradient(p, rows=32, normalizer=32) < 1e-4
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from certunlearn.validation import check_choice, check_int, check_nonnegative, check_positive

__all__ = [
    "ELEMENTARY_ERROR",
    "FIRST_ORDER_LIMIT",
    "MARGIN",
    "SMALLEST_NORMAL",
    "UNIT_ROUNDOFF",
    "DeclaredErrorModel",
    "ErrorModel",
    "Precision",
    "SoftmaxErrorModel",
    "cholesky_backward_error",
    "HFOCURoundingPlan",
    "gamma",
    "hfocu_rounding",
    "newton_rounding",
    "sgd_trajectory_error",
]

UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "tf32": 2.0**-11,  # NVIDIA TensorFloat-32: 10 explicit mantissa bits
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}
"""Unit roundoff u = 2^-p of each dtype (round to nearest, p bits of precision)."""

SMALLEST_NORMAL: dict[str, float] = {
    "float64": 2.0**-1022,
    "float32": 2.0**-126,
    "tf32": 2.0**-126,
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
}
"""Smallest positive normal number: the largest absolute error of one underflowing operation."""

ELEMENTARY_ERROR = 8.0
"""(F3): exp and log are assumed correct to 4 ulps, a relative error of at most 8u."""

MARGIN = 2.0
"""Every first-order total is multiplied by this (docs/theory.md, Lemma 16)."""

FIRST_ORDER_LIMIT = 1e-2
"""Largest first-order relative error for which MARGIN covers the higher-order terms."""


def gamma(k: int | float, u: float) -> float:
    """Higham's γ_k = k u / (1 − k u): the relative error of a k-term product or sum; inf if k u ≥ 1.

    Example:
        >>> gamma(0, 1e-3), round(gamma(2, 0.25), 6)
        (0.0, 1.0)
    """
    ku = float(k) * float(u)
    if ku >= 1.0:
        return math.inf
    return ku / (1.0 - ku)


def _finite_or_inf(value: float, *relative: float) -> float:
    """``value`` when every first-order relative error is within :data:`FIRST_ORDER_LIMIT`, else inf."""
    if any(not math.isfinite(r) or r > FIRST_ORDER_LIMIT for r in relative) or not math.isfinite(value):
        return math.inf
    return value


@dataclass(frozen=True, slots=True)
class Precision:
    """The dtypes a computation used.

    Attributes:
        compute: dtype of the arithmetic (``float64``, ``float32``, ``float16``, ``bfloat16``).
        storage: dtype the HF-OCU statistics were stored in (None: the compute dtype). Storage coarser
            than the arithmetic rounds every stored row at every step.
        matmul: ``tf32`` when float32 matrix products run in TensorFloat-32 (CUDA with
            ``torch.backends.cuda.matmul.allow_tf32``); None otherwise.

    Example:
        >>> Precision(compute="float32", storage="bfloat16").u_storage == 2.0 ** -8
        True
        >>> Precision(compute="float32", storage="float64").u_storage   # widening is exact
        0.0
    """

    compute: str = "float64"
    storage: str | None = None
    matmul: str | None = None

    def __post_init__(self) -> None:
        choices = ("float64", "float32", "float16", "bfloat16")
        check_choice("compute", self.compute, choices)
        if self.storage is not None:
            check_choice("storage", self.storage, choices)
        if self.matmul is not None:
            check_choice("matmul", self.matmul, ("tf32",))

    @property
    def u(self) -> float:
        """Unit roundoff of the arithmetic."""
        return UNIT_ROUNDOFF[self.compute]

    @property
    def u_matmul(self) -> float:
        """Unit roundoff of matrix products (TF32 rounds their inputs: counted as an extra operation)."""
        return max(self.u, UNIT_ROUNDOFF[self.matmul]) if self.matmul else self.u

    @property
    def u_storage(self) -> float:
        """Rounding of one stored statistic: 0 when storage is at least as precise as the arithmetic."""
        if self.storage is None:
            return 0.0
        return UNIT_ROUNDOFF[self.storage] if UNIT_ROUNDOFF[self.storage] > self.u else 0.0

    @property
    def tiny(self) -> float:
        """Smallest normal number of the arithmetic."""
        return SMALLEST_NORMAL[self.compute]

    def describe(self) -> str:
        """One line for the certificate's assumptions."""
        text = f"{self.compute} arithmetic (u = {self.u:.3g})"
        if self.matmul:
            text += f", {self.matmul} matrix products (u = {self.u_matmul:.3g})"
        if self.storage and self.storage != self.compute:
            text += f", statistics stored in {self.storage}"
        return text


@runtime_checkable
class ErrorModel(Protocol):
    """A priori bounds on the rounding of a model's gradients, HVPs and objective (absolute values).

    Each method bounds, for every parameter vector with ‖w‖ ≤ ``radius`` and every admissible data
    set, the distance between the computed and the exact quantity of the minibatch objective
    ``(1/normalizer) Σ_{i∈B} ℓ_i`` over ``rows`` samples (weight decay inside each ℓ_i).
    """

    radius: float

    def batch_gradient(self, p: Precision, rows: int, normalizer: float) -> float:
        """‖fl(∇F_B) − ∇F_B‖."""

    def sample_gradient(self, p: Precision) -> float:
        """‖fl(∇ℓ_i) − ∇ℓ_i‖ for one sample."""

    def hvp(self, p: Precision, rows: int, normalizer: float) -> float:
        """c with ‖fl(∇²F_B v) − ∇²F_B v‖ ≤ c ‖v‖."""

    def objective(self, p: Precision, rows: int, normalizer: float) -> float:
        """|fl(F_B) − F_B|."""

    def describe(self) -> str:
        """Where the model's constants come from."""


@dataclass(frozen=True, slots=True)
class SoftmaxErrorModel:
    """Rounding of softmax regression (cross-entropy, weight decay on all parameters), as computed.

    The computation is the library's (:mod:`certunlearn.autodiff.chain`): logits ``Θx̃`` (one inner
    product of length p+1 per class), softmax by the max-shifted formula, output gradient p − e_y,
    one matrix product over the batch for the gradient, and the R-operator ``p ⊙ (u − ⟨p, u⟩)`` for
    Hessian-vector products. Bounds from docs/theory.md, Lemmas 17–19.

    Attributes:
        features: p, the number of input features.
        classes: K.
        feature_norm: X ≥ ‖x‖ for every row.
        radius: R ≥ ‖w‖ for every parameter vector the bounds are used at.
        weight_decay: λ.

    Example:
        >>> m = SoftmaxErrorModel(features=64, classes=10, feature_norm=1.0, radius=20.0, weight_decay=0.1)
        >>> m.hvp(Precision("float64"), rows=128, normalizer=128) < 1e-11
        True
    """

    features: int
    classes: int
    feature_norm: float
    radius: float
    weight_decay: float

    def __post_init__(self) -> None:
        check_int("features", self.features, minimum=1)
        check_int("classes", self.classes, minimum=2)
        check_positive("feature_norm", self.feature_norm)
        check_positive("radius", self.radius)
        check_nonnegative("weight_decay", self.weight_decay)

    @property
    def dim(self) -> int:
        """Number of parameters K(p + 1)."""
        return self.classes * (self.features + 1)

    def _x(self) -> float:
        return math.sqrt(self.feature_norm**2 + 1.0)  # ‖x̃‖ = ‖[x; 1]‖

    def _probabilities(self, p: Precision) -> tuple[float, float, float]:
        """(‖δz‖ per row, ‖p̂ − p‖ per row, largest first-order relative error)."""
        x, r, k = self._x(), self.radius, self.classes
        e_z = gamma(self.features + 1, p.u_matmul) * x * r  # (F2), ‖Θ‖_F ≤ R
        spread = 2.0 * x * r  # z_max − z_k ≤ 2 max|z| ≤ 2 X̃ R
        theta = 2.0 * (p.u * spread + ELEMENTARY_ERROR * p.u) + gamma(k + 1, p.u)
        e_p = 0.5 * e_z + theta + math.sqrt(k) * p.tiny  # softmax is ½-Lipschitz (Lemma 9)
        return e_z, e_p, max(e_z, theta, e_p)

    def probability_error(self, p: Precision) -> float:
        """‖p̂ − p‖ per row: the computed probabilities against the exact ones (Lemma 17)."""
        _, e_p, rel = self._probabilities(p)
        return _finite_or_inf(e_p, rel)

    def sample_gradient(self, p: Precision) -> float:
        """Per-sample gradient λθ + (p − e_y) x̃ᵀ (Lemma 18)."""
        x, lam, r = self._x(), self.weight_decay, self.radius
        _, e_p, rel = self._probabilities(p)
        e_out = e_p + p.u
        value = e_out * x + 2.0 * p.u * (math.sqrt(2.0) * x + lam * r)
        return _finite_or_inf(MARGIN * value, rel)

    def batch_gradient(self, p: Precision, rows: int, normalizer: float) -> float:
        """(1/ν)(λ k θ + Ĝᵀ X̃) over k = ``rows`` samples, ν = ``normalizer`` (Lemma 18)."""
        k = max(int(rows), 0)
        if k == 0:
            return 0.0
        x, lam, r = self._x(), self.weight_decay, self.radius
        _, e_p, rel = self._probabilities(p)
        e_out = e_p + p.u
        g_mm = gamma(k, p.u_matmul)
        per_row = g_mm * (math.sqrt(2.0) + e_out) * x + e_out * x + 5.0 * p.u * (math.sqrt(2.0) * x + lam * r)
        return _finite_or_inf(MARGIN * (k / normalizer) * per_row, rel, g_mm)

    def hvp(self, p: Precision, rows: int, normalizer: float) -> float:
        """R-operator of the minibatch objective, per unit ‖v‖ (Lemma 19)."""
        k = max(int(rows), 0)
        x, lam = self._x(), self.weight_decay
        ridge = lam * k / normalizer
        if k == 0:
            return MARGIN * 3.0 * p.u * ridge
        _, e_p, rel = self._probabilities(p)
        g_in, g_k, g_mm = gamma(self.features + 1, p.u_matmul), gamma(self.classes + 2, p.u), gamma(k, p.u_matmul)
        e_s = x * (3.01 * e_p + 0.5 * g_in + 2.0 * g_k)  # ‖ŝ_i − J u_i‖ per unit ‖v‖
        per_row = g_mm * (0.5 * x + e_s) * x + e_s * x + 2.0 * p.u * 0.5 * x * x
        value = (k / normalizer) * per_row + 3.0 * p.u * ridge
        return _finite_or_inf(MARGIN * value, rel, g_in, g_k, g_mm, e_s / x)

    def objective(self, p: Precision, rows: int, normalizer: float) -> float:
        """Mean cross-entropy plus (λ/2)‖θ‖² over k rows (Lemma 18, last part)."""
        k = max(int(rows), 0)
        x, lam, r, K = self._x(), self.weight_decay, self.radius, self.classes
        e_z, _, rel = self._probabilities(p)
        spread = 2.0 * x * r
        loss_max = spread + math.log(K)  # |CE| ≤ z_max − z_y + log K
        e_loss = 2.0 * e_z + 1.01 * (gamma(K, p.u) + p.u * spread + (ELEMENTARY_ERROR + 1) * p.u) \
            + ELEMENTARY_ERROR * p.u * math.log(K) + 2.0 * p.u * loss_max
        g_k = gamma(k, p.u)
        ridge = 0.5 * lam * r * r
        value = (k / normalizer) * (e_loss + g_k * loss_max + (gamma(self.dim, p.u) + 4.0 * p.u) * ridge
                                    + 2.0 * p.u * (loss_max + ridge))
        return _finite_or_inf(MARGIN * value, rel, g_k)

    def describe(self) -> str:
        """One line for the certificate's assumptions."""
        return (f"rounding of softmax regression (p={self.features}, K={self.classes}, X={self.feature_norm:g}, "
                f"||w|| <= {self.radius:.6g}): docs/theory.md §9; exp/log within 4 ulps")


@dataclass(frozen=True, slots=True)
class DeclaredErrorModel:
    """Rounding bounds declared by the user for a model the library has no error analysis for.

    Each constant c is in units of the unit roundoff: the bound is c·u (batch quantities scaled by
    rows/normalizer). Declaring them is an assumption like the others in
    :class:`~certunlearn.certify.assumptions.Assumptions`, stated in every certificate.

    Attributes:
        radius: R ≥ ‖w‖ wherever the bounds are used.
        gradient_constant: c_g: a per-sample gradient is computed within c_g·u.
        hvp_constant: c_H: a per-sample Hessian-vector product within c_H·u·‖v‖.
        objective_constant: c_F: a per-sample loss within c_F·u.

    Example:
        >>> m = DeclaredErrorModel(radius=5.0, gradient_constant=100.0, hvp_constant=100.0,
        ...                        objective_constant=100.0)
        >>> m.batch_gradient(Precision("float64"), rows=10, normalizer=10) == 100 * 2.0 ** -53
        True
        >>> m.hvp(Precision("float64"), rows=10, normalizer=10) == 100 * 2.0 ** -53
        True
    """

    radius: float
    gradient_constant: float
    hvp_constant: float
    objective_constant: float

    def __post_init__(self) -> None:
        check_positive("radius", self.radius)
        for name in ("gradient_constant", "hvp_constant", "objective_constant"):
            check_nonnegative(name, getattr(self, name))

    def batch_gradient(self, p: Precision, rows: int, normalizer: float) -> float:
        """c_g·u·rows/normalizer."""
        return self.gradient_constant * p.u_matmul * max(rows, 0) / normalizer

    def sample_gradient(self, p: Precision) -> float:
        """c_g·u."""
        return self.gradient_constant * p.u_matmul

    def hvp(self, p: Precision, rows: int, normalizer: float) -> float:
        """c_H·u·max(rows, 1)/normalizer."""
        return self.hvp_constant * p.u_matmul * max(rows, 1) / normalizer

    def objective(self, p: Precision, rows: int, normalizer: float) -> float:
        """c_F·u·rows/normalizer."""
        return self.objective_constant * p.u * max(rows, 0) / normalizer

    def describe(self) -> str:
        """One line for the certificate's assumptions."""
        return (f"declared rounding constants: gradient {self.gradient_constant:g}u, HVP {self.hvp_constant:g}u, "
                f"objective {self.objective_constant:g}u for ||w|| <= {self.radius:g}")


# ---------------------------------------------------------------------------- trajectories


def sgd_trajectory_error(
    *,
    lrs: np.ndarray,
    batch_sizes: np.ndarray,
    precision: Precision,
    model: ErrorModel,
    gradient_bound: float,
    dim: int,
    projection: bool = False,
) -> np.ndarray:
    """E_t ≥ ‖ŵ_t − w_t‖ for t = 0..T: computed vs exact SGD (docs/theory.md, Lemma 20).

    The exact step maps are non-expansive (convex per-sample losses, η_t ≤ 2/(λ+β)), so the errors of
    the steps add up: ``E_{t+1} = E_t + e_t`` with ``e_t = 2[u(R + 2η_t G) + η_t ε_g(|B_t|) (+ the
    projection's (γ_d + 4u) R)]``. The same bound holds for the coupled retrain (fewer rows per batch,
    same normaliser): both runs are within E_T of their exact counterparts.

    Example:
        >>> m = SoftmaxErrorModel(features=2, classes=2, feature_norm=1.0, radius=10.0, weight_decay=0.1)
        >>> e = sgd_trajectory_error(lrs=np.full(3, 0.5), batch_sizes=np.full(3, 4), gradient_bound=4.0,
        ...                          precision=Precision("float64"), model=m, dim=6)
        >>> float(e[0]), bool(0 < e[1] < e[2] < e[3] < 1e-12)
        (0.0, True)
    """
    u = precision.u
    lrs = np.asarray(lrs, dtype=np.float64)
    sizes = np.asarray(batch_sizes, dtype=np.float64)
    eps_g = _per_size(sizes, lambda b: model.batch_gradient(precision, b, float(b)))
    if not np.all(np.isfinite(eps_g)):
        return np.full(lrs.size + 1, math.inf)
    radius = model.radius
    step = MARGIN * (u * (radius + 2.0 * lrs * gradient_bound)) + lrs * eps_g
    if projection:
        step = step + MARGIN * (gamma(dim, u) + 4.0 * u) * radius
    return np.concatenate([[0.0], np.cumsum(step)])


@dataclass(frozen=True, slots=True)
class HFOCURounding:
    """The floating-point terms of an HF-OCU certificate (docs/theory.md, Theorem 21).

    Attributes:
        trajectory: E_T, computed vs exact training endpoint (and the same for the computed retrain).
        recorder: Accumulated rounding of the deleted rows' statistics (arithmetic and storage).
        summation: Σ_u a_u and w_T + Σ_u a_u.
        drift: The computed trajectory may leave the ball of radius R by E_t, so the injected gradients
            may exceed G by λE_t.
        coupling: Second-order bound only: the statistics are recorded on the computed trajectory,
            the theorem speaks of the exact one.
    """

    trajectory: float
    recorder: float
    summation: float
    drift: float
    coupling: float

    def first_order(self) -> float:
        """Term added to 2S: release and reference trajectories, recorder, summation, drift."""
        return 2.0 * self.trajectory + self.recorder + self.summation + self.drift

    def second_order(self) -> float:
        """Term added to the second-order bound."""
        return self.first_order() + self.coupling


def hfocu_rounding(
    *,
    lrs: np.ndarray,
    batch_sizes: np.ndarray,
    deletion_counts: np.ndarray,
    precision: Precision,
    model: ErrorModel,
    gradient_bound: float,
    smoothness: float,
    strong_convexity: float,
    dim: int,
    hessian_lipschitz: float | None = None,
    projection: bool = False,
    trajectory: np.ndarray | None = None,
) -> HFOCURounding:
    """All floating-point terms of an HF-OCU deletion of the ids counted in ``deletion_counts``.

    Args:
        lrs: η_t ``[T]``.
        batch_sizes: |B_t| ``[T]``.
        deletion_counts: m_t = |U ∩ B_t| ``[T]``.
        precision: dtypes of the arithmetic and of the stored statistics.
        model: Rounding bounds of the model's gradients and HVPs.
        gradient_bound: G.
        smoothness: β.
        strong_convexity: λ.
        dim: d.
        hessian_lipschitz: M (the coupling term of the second-order bound; 0 without it).
        projection: Whether training projects onto a ball.
        trajectory: :func:`sgd_trajectory_error` of this schedule, if already computed.

    Returns:
        :class:`HFOCURounding`.

    Example:
        >>> m = SoftmaxErrorModel(features=2, classes=2, feature_norm=1.0, radius=10.0, weight_decay=0.1)
        >>> r = hfocu_rounding(lrs=np.full(3, 0.5), batch_sizes=np.full(3, 4), deletion_counts=np.array([0, 0, 1]),
        ...                    precision=Precision("float32"), model=m, gradient_bound=4.0, smoothness=1.1,
        ...                    strong_convexity=0.1, dim=6)
        >>> r.first_order() > 0     # an id seen only in the last step: exact in theory, not in float32
        True
    """
    plan = HFOCURoundingPlan(
        lrs=lrs, batch_sizes=batch_sizes, precision=precision, model=model, gradient_bound=gradient_bound,
        smoothness=smoothness, strong_convexity=strong_convexity, dim=dim, hessian_lipschitz=hessian_lipschitz,
        projection=projection, trajectory=trajectory)
    return plan.terms(deletion_counts)


def _per_size(sizes: np.ndarray, fn: Any) -> np.ndarray:
    """fn(batch size) for every step, evaluated once per distinct size."""
    unique, inverse = np.unique(sizes, return_inverse=True)
    return np.array([fn(int(b)) for b in unique], dtype=np.float64)[inverse]


def _adjoint(weights: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """ψ with Σ_{t=0}^{T} w_t A_t = Σ_{t<T} inj_t ψ_{t+1} for A_0 = 0, A_{t+1} = f_t A_t + inj_t (ψ_{t+1} returned)."""
    psi = [0.0] * len(factors)
    acc = float(weights[-1])
    w, f = weights.tolist(), factors.tolist()
    for t in range(len(f) - 1, -1, -1):  # ψ_{t+1}; then ψ_t = w_t + f_t ψ_{t+1}
        psi[t] = acc
        acc = w[t] + f[t] * acc
    return np.array(psi)


class HFOCURoundingPlan:
    """The request-independent part of :func:`hfocu_rounding` for one schedule, computed once.

    Every term of Theorem 21 is linear in the deletion counts m_t: through A_t (a linear recursion
    in the injections η_t m_t G/|B_t| with request-independent factors 1 − η_tλ) and directly. The plan
    keeps, for each term, the adjoint weights that turn the counts into the term by one dot product,
    so a request costs O(T) array work and no loop over the steps (``HFOCU`` builds one per fit).

    Example:
        >>> m = SoftmaxErrorModel(features=2, classes=2, feature_norm=1.0, radius=10.0, weight_decay=0.1)
        >>> plan = HFOCURoundingPlan(lrs=np.full(3, 0.5), batch_sizes=np.full(3, 4), precision=Precision("float32"),
        ...                          model=m, gradient_bound=4.0, smoothness=1.1, strong_convexity=0.1, dim=6)
        >>> plan.terms(np.array([0, 0, 1])).first_order() > 0
        True
    """

    def __init__(
        self,
        *,
        lrs: np.ndarray,
        batch_sizes: np.ndarray,
        precision: Precision,
        model: ErrorModel,
        gradient_bound: float,
        smoothness: float,
        strong_convexity: float,
        dim: int,
        hessian_lipschitz: float | None = None,
        projection: bool = False,
        trajectory: np.ndarray | None = None,
    ) -> None:
        u, u_s = precision.u, precision.u_storage
        lrs = np.asarray(lrs, dtype=np.float64)
        sizes = np.asarray(batch_sizes, dtype=np.float64)
        G, beta, lam = float(gradient_bound), float(smoothness), float(strong_convexity)
        if trajectory is None:
            trajectory = sgd_trajectory_error(lrs=lrs, batch_sizes=sizes, precision=precision, model=model,
                                              gradient_bound=G, dim=dim, projection=projection)
        self.u, self.radius, self.trajectory = u, model.radius, trajectory
        hvp = _per_size(sizes, lambda b: model.hvp(precision, b, float(b)))
        sample = model.sample_gradient(precision)
        self.unbounded = not (np.all(np.isfinite(trajectory)) and np.all(np.isfinite(hvp)) and math.isfinite(sample)
                              and trajectory[-1] <= 0.005 * model.radius)  # iterates stay in the model's ball
        if self.unbounded:
            return
        T = lrs.size
        factors = np.maximum(1.0 - lrs * lam, 0.0)  # ‖I − η_t H_t‖ ≤ 1 − η_t λ (Lemma 4)
        self.injection = lrs * G / sizes  # injection per deleted id at step t
        e_t = trajectory[:-1]
        # weights of A_0..A_T in the recorder term (before-step and after-step parts) and in the coupling
        after = u + u_s + ((gamma(dim, u) + 4.0 * u) if projection else 0.0)
        w_rec = np.zeros(T + 1)
        w_rec[:-1] += 2.0 * u * lrs * beta + lrs * hvp
        w_rec[1:] += after
        self.rec_adjoint = MARGIN * _adjoint(w_rec, factors)
        self.rec_direct = MARGIN * (2.0 * u * lrs * G / sizes + lrs * (sample + u * G) / sizes)  # per deleted id
        final = np.zeros(T + 1)
        final[-1] = 1.0
        self.final_adjoint = _adjoint(final, factors)
        self.drift = lrs * lam * e_t / sizes
        self.coupling_adjoint = None
        if hessian_lipschitz is not None:
            w_coup = np.zeros(T + 1)
            w_coup[:-1] = lrs * e_t * float(hessian_lipschitz)
            self.coupling_adjoint = _adjoint(w_coup, factors)
            self.coupling_direct = lrs * e_t * beta / sizes

    def terms(self, deletion_counts: np.ndarray) -> HFOCURounding:
        """The floating-point terms of a deletion with counts m_t."""
        if self.unbounded:
            return HFOCURounding(math.inf, math.inf, math.inf, math.inf, math.inf)
        counts = np.asarray(deletion_counts, dtype=np.float64)
        injections = self.injection * counts
        recorder = float(injections @ self.rec_adjoint + counts @ self.rec_direct)
        a_final = float(injections @ self.final_adjoint)
        u = self.u
        m = int(round(float(counts.sum())))
        summation = MARGIN * (gamma(max(m, 1), u) * a_final + u * (self.radius + 2.0 * a_final) + u * a_final)
        drift = float(counts @ self.drift)
        coupling = 0.0
        if self.coupling_adjoint is not None:
            coupling = float(injections @ self.coupling_adjoint + counts @ self.coupling_direct)
        values = (float(self.trajectory[-1]), recorder, summation, drift, coupling)
        if not all(math.isfinite(v) for v in values):
            return HFOCURounding(math.inf, math.inf, math.inf, math.inf, math.inf)
        return HFOCURounding(*values)


# ---------------------------------------------------------------------------- linear algebra


def cholesky_backward_error(dim: int, norm: float, u: float) -> float:
    """‖ΔA‖₂ with (A + ΔA) x̂ = b for a Cholesky solve of an SPD A with ‖A‖₂ ≤ ``norm``.

    Higham 2002, Theorem 10.4 (factorisation and the two triangular solves, |ΔA| ≤ γ_{3d+1}|R̂ᵀ||R̂|)
    with ‖|R̂ᵀ||R̂|‖₂ ≤ d(1 − dγ_{d+1})⁻¹‖A‖₂ (Higham, Lemma 10.5), times :data:`MARGIN`.

    Example:
        >>> 0 < cholesky_backward_error(10, 1.0, 2.0 ** -53) < 1e-12
        True
    """
    d = check_int("dim", dim, minimum=1)
    denom = 1.0 - d * gamma(d + 1, u)
    if denom <= 0.5:
        return math.inf
    return MARGIN * gamma(3 * d + 1, u) * d * norm / denom


@dataclass(frozen=True, slots=True)
class NewtonRounding:
    """Backward errors of one computed Newton-type step (docs/theory.md, Lemma 22).

    The computed step d̂ solves (Ĥ + αI + E) d̂ = −(g + e) exactly and the computed model is within
    ``addition`` of θ + d̂.

    Attributes:
        gradient: ‖e‖ (gradient evaluation on the remaining rows).
        hessian: ‖E‖ (Hessian evaluation, combination, symmetrisation, the Cholesky solve).
        addition: rounding of θ + d̂.
        objective: |fl(F_R) − F_R| (for acceptance tests of several steps).
    """

    gradient: float
    hessian: float
    addition: float
    objective: float


def newton_rounding(
    *,
    n: int,
    m: int,
    dim: int,
    precision: Precision,
    model: ErrorModel,
    smoothness: float,
    step_bound: float,
    damping: float = 0.0,
    stored_hessian: bool = False,
) -> NewtonRounding:
    """Backward errors of a Newton-family step on the remaining rows (docs/theory.md, Lemma 22).

    Args:
        n: Training rows.
        m: Deleted rows.
        dim: d.
        precision: The arithmetic.
        model: Rounding bounds of the model (its radius bounds ‖θ*‖).
        smoothness: β ≥ ‖Ĥ‖.
        step_bound: A bound on ‖d‖ (e.g. ĝ/λ).
        damping: The largest α + τ added to the diagonal.
        stored_hessian: Ĥ = (n H_S − Σ_U H_u)/(n − m) from a stored training Hessian (NewtonStep)
            rather than the remaining rows' Hessian.

    Example:
        >>> mdl = SoftmaxErrorModel(features=2, classes=2, feature_norm=1.0, radius=10.0, weight_decay=0.1)
        >>> r = newton_rounding(n=100, m=2, dim=6, precision=Precision("float64"), model=mdl,
        ...                     smoothness=1.1, step_bound=1.0)
        >>> 0 < r.gradient < 1e-12 and 0 < r.hessian < 1e-12
        True
    """
    u, root_d, beta = precision.u, math.sqrt(dim), float(smoothness)
    k = n - m
    if stored_hessian:
        columns = (n * model.hvp(precision, n, n) + model.hvp(precision, m, 1.0)) / k
        combine = gamma(3, u) * root_d * beta * (n + m) / k
    else:
        columns, combine = model.hvp(precision, k, k), 0.0
    hessian = (root_d * columns + MARGIN * (combine + 2.0 * u * root_d * beta + u * (beta + damping))
               + cholesky_backward_error(dim, beta + damping, u))
    gradient = model.batch_gradient(precision, k, k)
    addition = MARGIN * u * (model.radius + 2.0 * float(step_bound))
    return NewtonRounding(gradient, hessian, addition, model.objective(precision, k, k))


def perturbed_step_error(*, h: float, alpha: float, lipschitz: float, strong_convexity: float,
                         rounding: NewtonRounding | None) -> float:
    """((M/2)‖h‖ + ‖E‖ + α)‖h‖ + ‖e‖) / (λ + α − ‖E‖) + addition: Lemma 22's bound on ‖θ + d̂ − w*‖.

    With ``rounding=None`` this is the exact-arithmetic (★) of Theorem 15.

    Example:
        >>> perturbed_step_error(h=1.0, alpha=0.0, lipschitz=2.0, strong_convexity=1.0, rounding=None)
        1.0
    """
    e_h = e_g = add = 0.0
    if rounding is not None:
        e_h, e_g, add = rounding.hessian, rounding.gradient, rounding.addition
    denom = strong_convexity + alpha - e_h
    if not math.isfinite(e_h) or e_h >= 0.5 * strong_convexity or denom <= 0:
        return math.inf
    return ((0.5 * lipschitz * h + e_h + alpha) * h + e_g) / denom + add
