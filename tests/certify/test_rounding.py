"""Tests of the floating-point error bounds of the certificates (certunlearn.certify.rounding).

Every certified Δ includes an a-priori bound on what rounding can add to it. These tests check those
bounds against *independent measurements*, never against numbers the module itself produces:

* pinned values: the unit roundoffs against ``numpy.finfo`` / ``torch.finfo`` and against the
  rounding of ``1 + u`` on the hardware; Higham's γ_k (Higham, *Accuracy and Stability of Numerical
  Algorithms*, 2nd ed., SIAM 2002, §3.1 and Lemma 3.1) by hand and against exact rational
  arithmetic; the :class:`Precision` semantics and validation errors;
* :class:`SoftmaxErrorModel` against the actual rounding of the library's float32 softmax-regression
  gradient, Hessian-vector product, per-sample gradient and objective
  (:class:`~certunlearn.autodiff.functional.FunctionalModel`, hand-written chain code), measured
  against a closed-form float64 implementation written here (fp64's own error, ~1e-16 relative, is
  negligible against fp32's ~6e-8), and the float64 computation against mpmath at 50 digits;
  random problems plus adversarial ones (logits at the radius, an underflowing and a subnormal class
  probability, one row with a larger normaliser as in the coupled retrain, 512 coherent rows);
* :func:`sgd_trajectory_error` against the distance between float32 and float64 runs of
  :func:`~certunlearn.train.sgd.run_schedule`, at every step, with and without projection;
* the float32 HF-OCU worst-case certificate (``certificate="worst-case"``) against float32 and
  float64 coupled retrains, with float32 and bfloat16 statistics, no allowance; the one-epoch
  last-batch deletion, whose exact-arithmetic Δ is 0, must still get Δ > 0 and σ > 0;
* :func:`cholesky_backward_error` against the normwise backward error ‖b − A x̂‖₂/‖x̂‖₂ of float32
  Cholesky solves, which by Rigal and Gaches (J. ACM 14, 1967) is the smallest ‖ΔA‖₂ with
  (A + ΔA) x̂ = b;
* :func:`newton_rounding` with :func:`perturbed_step_error` against a float32 Newton step measured
  against the float64 minimiser;
* hypothesis properties: monotonicity of every bound in the radius, the feature norm, the rows and
  the deletion counts, float32 above float64, and ``inf`` past :data:`FIRST_ORDER_LIMIT`.

Measured ratios bound / error are collected; ``test_ratio_summary`` prints their minimum and median
(run with ``-s``) and puts them in its messages. Only ratio ≥ 1 is asserted (soundness), never
tightness. A failure here is a bug in a bound, never a reason to loosen a check.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from functools import cache

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.certify.assumptions import softmax_regression_assumptions
from certunlearn.certify.hfocu_bounds import second_order_sgd_bound
from certunlearn.certify.rounding import (
    FIRST_ORDER_LIMIT,
    SMALLEST_NORMAL,
    UNIT_ROUNDOFF,
    NewtonRounding,
    Precision,
    SoftmaxErrorModel,
    cholesky_backward_error,
    gamma,
    hfocu_rounding,
    newton_rounding,
    perturbed_step_error,
    sgd_trajectory_error,
)
from certunlearn.data import clip_rows
from certunlearn.errors import ConfigError
from certunlearn.models import LogisticRegression
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule
from certunlearn.train.sgd import StepInfo, coupled_retrain, run_schedule
from certunlearn.unlearn import HFOCU

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, database=None)
FP64, FP32 = Precision("float64"), Precision("float32")
U32, U64 = 2.0**-24, 2.0**-53


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """A softmax regression's parameters as one float64 vector (weight row-major, then bias)."""
    return torch.cat([state[k].reshape(-1) for k in ("linear.weight", "linear.bias")]).double()


def _stats(values: list[float]) -> str:
    arr = np.asarray(values, dtype=np.float64)
    return f"n={arr.size} min={arr.min():.3g} median={np.median(arr):.3g} max={arr.max():.3g}"


# ---------------------------------------------------------------------------------------------
# 1. Pinned values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["float64", "float32", "float16"])
def test_unit_roundoff_is_half_machine_epsilon(name: str) -> None:
    """u = ε/2 for round to nearest (Higham 2002, §2.1), ε from numpy; and the smallest normal."""
    info = np.finfo(np.dtype(name))
    assert UNIT_ROUNDOFF[name] == float(info.eps) / 2.0
    assert SMALLEST_NORMAL[name] == float(info.smallest_normal)


@pytest.mark.parametrize("name", ["float64", "float32", "float16", "bfloat16"])
def test_unit_roundoff_rounds_one_plus_u_on_the_hardware(name: str) -> None:
    """fl(1 + u) = 1 (a tie, rounded to even) while fl(1 + 1.5u) = 1 + 2u: u is exactly half the gap
    after 1 in torch's arithmetic of that dtype."""
    dtype = getattr(torch, name)
    u = UNIT_ROUNDOFF[name]
    one = torch.ones((), dtype=dtype)
    assert float(one + torch.tensor(u, dtype=dtype)) == 1.0
    assert float(one + torch.tensor(1.5 * u, dtype=dtype)) == 1.0 + 2.0 * u
    assert float(torch.finfo(dtype).eps) == 2.0 * u


def test_bfloat16_and_tf32_pinned() -> None:
    """bfloat16 keeps 8 bits of precision (7 stored), u = 2^-8 (torch.finfo: eps = 2^-7, smallest
    normal 2^-126, float32's exponent range). TF32 (NVIDIA A100 Tensor Core GPU Architecture
    whitepaper, 2020: "TF32 ... 10-bit mantissa", float32's 8-bit exponent) has float16's precision:
    u = 2^-11, smallest normal 2^-126."""
    info = torch.finfo(torch.bfloat16)
    assert UNIT_ROUNDOFF["bfloat16"] == 2.0**-8 == float(info.eps) / 2
    assert SMALLEST_NORMAL["bfloat16"] == 2.0**-126 == float(info.smallest_normal)
    assert UNIT_ROUNDOFF["tf32"] == 2.0**-11 == float(np.finfo(np.float16).eps) / 2
    assert SMALLEST_NORMAL["tf32"] == 2.0**-126 == float(np.finfo(np.float32).smallest_normal)


def test_gamma_pinned_by_hand() -> None:
    """γ_k = ku/(1 − ku) (Higham 2002, §3.1), inf once ku ≥ 1."""
    for u in (U64, U32, 2.0**-8, 0.25):
        assert gamma(0, u) == 0.0
    assert gamma(1, 0.5) == 1.0  # 0.5 / 0.5
    assert gamma(2, 0.25) == 1.0
    assert gamma(3, 0.25) == 3.0  # 0.75 / 0.25
    assert gamma(1, 0.125) == pytest.approx(1 / 7, rel=1e-15)
    assert gamma(10, U32) == pytest.approx(10 * U32 / (1 - 10 * U32), rel=1e-15)
    assert gamma(4, 0.25) == math.inf  # ku = 1
    assert gamma(5, 0.25) == math.inf
    assert gamma(2**24, U32) == math.inf
    assert math.isfinite(gamma(2**24 - 1, U32)) and gamma(2**24 - 1, U32) > 1e6
    assert gamma(2**53 - 1, U64) > 1e15


@given(st.integers(0, 10**7), st.integers(0, 10**7), st.sampled_from([U64, U32, 2.0**-11, 2.0**-8]))
@PROPERTY_SETTINGS
def test_gamma_monotone_and_at_least_ku(k1: int, k2: int, u: float) -> None:
    """γ_k is non-decreasing in k and in u, and γ_k ≥ ku."""
    lo, hi = sorted((k1, k2))
    assert gamma(lo, u) <= gamma(hi, u)
    assert gamma(hi, u / 2) <= gamma(hi, u)
    assert gamma(hi, u) >= hi * u or gamma(hi, u) == math.inf


@given(st.integers(1, 120), st.sampled_from([24, 11, 8, 4]))
@PROPERTY_SETTINGS
def test_gamma_bounds_products_of_roundings_exactly(k: int, bits: int) -> None:
    """Higham 2002, Lemma 3.1: |Π_{i≤k}(1 + δ_i)^{±1} − 1| ≤ γ_k for |δ_i| ≤ u, ku < 1. The extreme
    products (1 + u)^k, (1 − u)^k and (1 − u)^{−k} are checked in exact rational arithmetic."""
    u = Fraction(1, 2**bits)
    if k * u >= 1:
        assert gamma(k, float(u)) == math.inf
        return
    g = Fraction(gamma(k, float(u)))  # γ_k as a float; exact γ_k = ku/(1 − ku)
    exact = k * u / (1 - k * u)
    assert abs(g - exact) <= exact * Fraction(1, 2**50)
    for worst in ((1 + u) ** k - 1, 1 - (1 - u) ** k, (1 - u) ** -k - 1):
        assert worst <= exact
        assert float(worst) <= g * (1 + Fraction(1, 2**50))


@pytest.mark.parametrize("seed", range(4))
def test_gamma_bounds_float32_sums(seed: int) -> None:
    """(F2) measured: |fl(Σ x_i) − Σ x_i| ≤ γ_k Σ|x_i| for torch's float32 sum and inner product
    (any order), the exact value by math.fsum over the float32 inputs."""
    gen = torch.Generator().manual_seed(seed)
    for k in (2, 17, 1000, 100_000):
        x = torch.randn(k, generator=gen) * torch.logspace(-3, 3, k)
        y = torch.randn(k, generator=gen)
        xs, ys = x.double().tolist(), y.double().tolist()
        exact_sum = math.fsum(xs)
        assert abs(float(x.sum()) - exact_sum) <= gamma(k, U32) * math.fsum(abs(v) for v in xs)
        exact_dot = math.fsum(a * b for a, b in zip(xs, ys, strict=True))  # products exact in fp64
        bound = gamma(k, U32) * math.fsum(abs(a * b) for a, b in zip(xs, ys, strict=True))
        assert abs(float(x @ y) - exact_dot) <= bound


def test_precision_semantics() -> None:
    """u, u_matmul (TF32 products: the larger of the two roundoffs), u_storage (0 when storage is at
    least as precise as the arithmetic) and tiny, against the pinned roundoffs."""
    assert Precision() == FP64 and FP64.u == U64 and FP64.u_matmul == U64 and FP64.u_storage == 0.0
    assert FP32.u == FP32.u_matmul == U32 and FP32.tiny == 2.0**-126 and FP64.tiny == 2.0**-1022
    assert Precision("float32", matmul="tf32").u_matmul == 2.0**-11
    assert Precision("float32", matmul="tf32").u == U32  # only the products are coarser
    assert Precision("float64", matmul="tf32").u_matmul == 2.0**-11
    assert Precision("float16", matmul="tf32").u_matmul == 2.0**-11
    assert Precision("float32", storage="bfloat16").u_storage == 2.0**-8
    assert Precision("float32", storage="float16").u_storage == 2.0**-11
    assert Precision("float64", storage="float32").u_storage == U32
    for storage in (None, "float32", "float64"):  # as precise or more: storing is exact
        assert Precision("float32", storage=storage).u_storage == 0.0
    assert Precision("float64", storage="float64").u_storage == 0.0
    assert Precision("bfloat16").u == 2.0**-8 and Precision("float16").tiny == 2.0**-14
    text = Precision("float32", storage="bfloat16", matmul="tf32").describe()
    assert "float32" in text and "bfloat16" in text and "tf32" in text


@pytest.mark.parametrize("kwargs", [
    {"compute": "float8"}, {"compute": "tf32"}, {"compute": None}, {"compute": "fp32"},
    {"storage": "int8"}, {"storage": "tf32"}, {"matmul": "float32"}, {"matmul": "bf16"},
])
def test_precision_validation(kwargs: dict) -> None:
    """Unknown dtypes are refused with a ConfigError (a ValueError); TF32 is only a matmul mode."""
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ConfigError):
        Precision(**kwargs)
    with pytest.raises(ValueError):
        Precision(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"features": 0}, {"features": 2.5}, {"features": True}, {"classes": 1}, {"feature_norm": 0.0},
    {"feature_norm": math.inf}, {"radius": -1.0}, {"radius": math.nan}, {"weight_decay": -0.1},
])
def test_softmax_error_model_validation(kwargs: dict) -> None:
    base = dict(features=3, classes=2, feature_norm=1.0, radius=1.0, weight_decay=0.1)
    with pytest.raises(ConfigError):
        SoftmaxErrorModel(**{**base, **kwargs})


def test_cholesky_backward_error_validation_and_limits() -> None:
    for bad in (0, -3, 2.5):
        with pytest.raises(ConfigError):
            cholesky_backward_error(bad, 1.0, U32)
    assert cholesky_backward_error(4, 0.0, U32) == 0.0
    assert cholesky_backward_error(1000, 1.0, 2.0**-8) == math.inf  # d γ_{d+1} ≥ 1: unproven
    assert cholesky_backward_error(10_000, 1.0, U32) == math.inf
    # ‖ΔA‖ ≥ the rounding of the factorisation itself: at least γ_{3d+1} d ‖A‖ (Higham, Thm 10.4)
    assert cholesky_backward_error(10, 3.0, U64) >= gamma(31, U64) * 10 * 3.0


def test_perturbed_step_error_pinned_by_hand() -> None:
    """(★) of Theorem 15 without rounding: ((M/2)h² + αh)/(λ + α); with backward errors ‖E‖, ‖e‖ and
    an addition error a: (((M/2)h + ‖E‖ + α)h + ‖e‖)/(λ + α − ‖E‖) + a; inf once ‖E‖ ≥ λ/2."""
    assert perturbed_step_error(h=1.0, alpha=0.0, lipschitz=2.0, strong_convexity=1.0, rounding=None) == 1.0
    # h = 2, α = 1, M = 1, λ = 3: (½·1·2 + 1)·2/(3 + 1) = 1; α = 0, M = 3: (1.5·2)·2/3 = 2
    assert perturbed_step_error(h=2.0, alpha=1.0, lipschitz=1.0, strong_convexity=3.0, rounding=None) == 1.0
    assert perturbed_step_error(h=2.0, alpha=0.0, lipschitz=3.0, strong_convexity=3.0, rounding=None) == 2.0
    r = NewtonRounding(gradient=0.5, hessian=1.0, addition=0.25, objective=0.0)
    # ((0.5·2 + 1 + 1)·2 + 0.5)/(3 + 1 − 1) + 0.25 = 6.5/3 + 0.25
    got = perturbed_step_error(h=2.0, alpha=1.0, lipschitz=1.0, strong_convexity=3.0, rounding=r)
    assert got == pytest.approx(6.5 / 3 + 0.25, rel=1e-15)
    r_big = NewtonRounding(gradient=0.0, hessian=1.5, addition=0.0, objective=0.0)
    assert perturbed_step_error(h=1.0, alpha=0.0, lipschitz=1.0, strong_convexity=3.0, rounding=r_big) == math.inf


# ---------------------------------------------------------------------------------------------
# 2. SoftmaxErrorModel against measured rounding
# ---------------------------------------------------------------------------------------------


def reference_fp64(theta: np.ndarray, X: np.ndarray, y: np.ndarray, classes: int, lam: float,
                   normalizer: float, tangents: list[np.ndarray]) -> dict[str, object]:
    """Softmax regression in float64 from the closed forms (docs/theory.md §4.2), written here.

    Θ = [W b] with θ = (vec W row-major, b); z = W x + b; P = softmax(z); for k rows and ν:
    ∇F = ((P − Y)ᵀ[X 1] + λkΘ)/ν,  F = (Σ_i [lse(z_i) − z_{i,y_i}] + (λk/2)‖θ‖²)/ν,
    ∇²F V = (Sᵀ[X 1] + λkV)/ν with s_i = p_i ⊙ (u_i − ⟨p_i, u_i⟩), u_i = V_W x_i + V_b,
    ∇ℓ_i = (p_i − e_{y_i}) x̃_iᵀ + λθ.
    """
    n, p = X.shape
    W, b = theta[: classes * p].reshape(classes, p), theta[classes * p:]
    Z = X @ W.T + b
    shifted = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(shifted)
    S = E.sum(axis=1, keepdims=True)
    P = E / S
    Y = np.zeros((n, classes))
    Y[np.arange(n), y] = 1.0
    G = P - Y
    grad = np.concatenate([(G.T @ X + lam * n * W).ravel(), G.sum(axis=0) + lam * n * b]) / normalizer
    ce = np.log(S[:, 0]) - shifted[np.arange(n), y]
    objective = (ce.sum() + 0.5 * lam * n * float(theta @ theta)) / normalizer
    per_sample = np.concatenate([(G[:, :, None] * X[:, None, :]).reshape(n, -1), G], axis=1) + lam * theta
    hvps = []
    for v in tangents:
        VW, vb = v[: classes * p].reshape(classes, p), v[classes * p:]
        U = X @ VW.T + vb
        Sd = P * (U - (P * U).sum(axis=1, keepdims=True))
        hvps.append(np.concatenate([(Sd.T @ X + lam * n * VW).ravel(), Sd.sum(axis=0) + lam * n * vb]) / normalizer)
    return {"grad": grad, "objective": float(objective), "per_sample": per_sample, "hvp": hvps, "P": P}


def _as_f32(a: np.ndarray) -> np.ndarray:
    """The float32 values of ``a``, held exactly in float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _rows_at_most(X: np.ndarray, bound: float, *, at_bound: bool = False) -> np.ndarray:
    """Rows clipped (or, ``at_bound``, scaled) to norm ≤ ``bound`` *after* the float32 cast."""
    norms = np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-300)
    target = bound * (1 - 1e-6)
    X = _as_f32(X * (target / norms if at_bound else np.minimum(1.0, target / norms)))
    assert (np.linalg.norm(X, axis=1) <= bound).all()
    return X


def _vector_at_most(v: np.ndarray, radius: float) -> np.ndarray:
    v = _as_f32(v * (radius * (1 - 1e-6) / np.linalg.norm(v)))
    assert np.linalg.norm(v) <= radius
    return v


class SoftmaxCase:
    """One softmax-regression evaluation problem: float32 values (held in float64) and the model."""

    def __init__(self, name: str, X: np.ndarray, y: np.ndarray, theta: np.ndarray, classes: int,
                 feature_norm: float, radius: float, lam: float, normalizer: float) -> None:
        self.name, self.X, self.y, self.theta, self.classes = name, X, y, theta, classes
        self.feature_norm, self.radius, self.lam, self.normalizer = feature_norm, radius, lam, normalizer
        self.features = X.shape[1]
        assert (np.linalg.norm(X, axis=1) <= feature_norm).all() and np.linalg.norm(theta) <= radius

    @property
    def model(self) -> SoftmaxErrorModel:
        return SoftmaxErrorModel(features=self.features, classes=self.classes, feature_norm=self.feature_norm,
                                 radius=self.radius, weight_decay=self.lam)

    def __repr__(self) -> str:
        return (f"SoftmaxCase({self.name}: p={self.features}, K={self.classes}, rows={len(self.y)}, "
                f"nu={self.normalizer:g}, X={self.feature_norm:.3g}, R={self.radius:.3g}, lam={self.lam:.3g})")


def _aligned_theta(direction: np.ndarray, signs: list[float], radius: float, rng: np.random.Generator,
                   noise: float = 1e-3) -> np.ndarray:
    """W rows s_k · a · direction (+ a little noise), bias 0, scaled to ‖θ‖ just under ``radius``:
    the logits are then ±a‖x‖ for rows along ``direction``, the largest spread the ball allows."""
    p = direction.size
    W = np.array(signs)[:, None] * direction[None, :] + noise * rng.standard_normal((len(signs), p))
    return _vector_at_most(np.concatenate([W.ravel(), np.zeros(len(signs))]), radius)


def random_case(k: int) -> SoftmaxCase:
    rng = np.random.default_rng(1000 + k)
    p, K = int(rng.integers(2, 65)), int(rng.integers(2, 11))
    rows = int(np.exp(rng.uniform(0, np.log(512)))) if k % 4 else 512
    feature_norm, radius = float(rng.uniform(0.3, 4.0)), float(np.exp(rng.uniform(np.log(0.5), np.log(40))))
    lam = float(rng.uniform(0.01, 0.5))
    normalizer = float(rows) if k % 3 else float(rows + int(rng.integers(1, 200)))  # coupled: rows < ν
    X = _rows_at_most(rng.standard_normal((rows, p)) * 1.5 * feature_norm / math.sqrt(p), feature_norm)
    theta = _vector_at_most(rng.standard_normal(K * (p + 1)), radius * float(rng.uniform(0.2, 1.0)))
    return SoftmaxCase(f"random {k}", X, rng.integers(0, K, rows), theta, K, feature_norm, radius, lam, normalizer)


def adversarial_case(name: str) -> SoftmaxCase:
    rng = np.random.default_rng(ADVERSARIAL.index(name))
    if name == "large logits at the radius":  # p ≈ 0.5 for two tied classes at logit ±aX, rows at X
        p, K, X_bound, R, rows = 8, 4, 3.0, 20.0, 64
        e = np.eye(p)[0]
        X = _rows_at_most(np.sign(rng.standard_normal((rows, 1))) * e + 0.05 * rng.standard_normal((rows, p)),
                          X_bound, at_bound=True)
        theta = _aligned_theta(e, [1, 1, -1, -1], R, rng)
        return SoftmaxCase(name, X, rng.integers(0, K, rows), theta, K, X_bound, R, 0.1, rows)
    if name in ("underflowing probability", "subnormal probability"):
        # logits ±a‖x‖ with spread 2a‖x‖ ≈ 141 (e^-141 underflows to 0 in float32) or ≈ 95
        # (e^-95 ≈ 5e-42 is subnormal); the label is often the vanishing class (CE ≈ the spread)
        p, K, X_bound, rows = 4, 3, 2.0, 48
        spread = 141.0 if name.startswith("underflow") else 95.0
        R = spread / (2 * X_bound) * math.sqrt(2) * 1.0001
        e = np.eye(p)[0]
        X = _rows_at_most(e + 1e-3 * rng.standard_normal((rows, p)), X_bound, at_bound=True)
        theta = _aligned_theta(e, [1, -1, 0], R, rng, noise=0.0)
        y = np.arange(rows) % K
        return SoftmaxCase(name, X, y, theta, K, X_bound, R, 0.05, rows)
    if name in ("one row, normaliser 64", "three rows, normaliser 50"):  # coupled retrain: rows < ν
        rows, nu = (1, 64.0) if name.startswith("one") else (3, 50.0)
        p, K, X_bound, R = 16, 5, 2.0, 15.0
        X = _rows_at_most(rng.standard_normal((rows, p)), X_bound, at_bound=True)
        theta = _vector_at_most(rng.standard_normal(K * (p + 1)), R)
        return SoftmaxCase(name, X, rng.integers(0, K, rows), theta, K, X_bound, R, 0.3, nu)
    if name == "one feature, 512 rows, normaliser 602":  # γ_k dominates: the tightest found by search
        p, K, X_bound, R, rows = 1, 6, 4.75, 0.26, 512
        X = _rows_at_most(rng.standard_normal((rows, p)), X_bound, at_bound=True)
        theta = _vector_at_most(rng.standard_normal(K * (p + 1)), R)
        return SoftmaxCase(name, X, np.zeros(rows, dtype=np.int64), theta, K, X_bound, R, 0.24, 602.0)
    if name == "one feature, 9 classes at radius 197":  # logits ±300: the objective's worst found
        p, K, X_bound, R, rows = 1, 9, 2.25, 197.0, 7
        e = np.ones(1)
        X = _rows_at_most(np.ones((rows, 1)), X_bound, at_bound=True)
        theta = _aligned_theta(e, [1, 1, -1, 0, 0, 0, 0, 0, 0], R, rng, noise=1e-2)
        return SoftmaxCase(name, X, np.arange(rows) % K, theta, K, X_bound, R, 0.39, 8.0)
    if name == "512 coherent rows":  # every row's gradient points the same way: the sums add up
        p, K, X_bound, R, rows = 32, 6, 1.5, 10.0, 512
        d = rng.standard_normal(p)
        X = _rows_at_most(d + 0.01 * rng.standard_normal((rows, p)), X_bound, at_bound=True)
        theta = _vector_at_most(rng.standard_normal(K * (p + 1)), R)
        return SoftmaxCase(name, X, np.zeros(rows, dtype=np.int64), theta, K, X_bound, R, 0.2, rows)
    raise KeyError(name)


ADVERSARIAL = ("large logits at the radius", "underflowing probability", "subnormal probability",
               "one row, normaliser 64", "three rows, normaliser 50", "512 coherent rows",
               "one feature, 512 rows, normaliser 602", "one feature, 9 classes at radius 197")
N_RANDOM = 16


def _case(key: str) -> SoftmaxCase:
    return random_case(int(key.split()[-1])) if key.startswith("random") else adversarial_case(key)


def _tangents(case: SoftmaxCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Random directions, θ's own direction and one concentrated on one class's weights."""
    d = case.theta.size
    one_class = np.zeros(d)
    one_class[: case.features] = rng.standard_normal(case.features)
    return [_as_f32(v) for v in (rng.standard_normal(d), rng.standard_normal(d), case.theta, one_class)]


@cache
def fp32_measurement(key: str) -> dict[str, tuple[float, float]]:
    """{quantity: (measured error, bound)} of the library's float32 computation of one case."""
    case = _case(key)
    tangents = _tangents(case, np.random.default_rng(7))
    fm = FunctionalModel(LogisticRegression(case.features, case.classes, dtype=torch.float32))
    assert fm.chain is not None  # the hand-written chain code is what the error model describes
    X, theta = torch.tensor(case.X, dtype=torch.float32), torch.tensor(case.theta, dtype=torch.float32)
    y = torch.tensor(case.y, dtype=torch.int64)
    kw = dict(normalizer=case.normalizer, weight_decay=case.lam)
    grad = fm.objective_grad(theta, X, y, **kw)
    grad2, hvp = fm.grad_and_hvp_fn(theta, X, y, **kw)
    hvps = [hvp(torch.tensor(v, dtype=torch.float32)) for v in tangents]
    V = torch.tensor(np.stack(tangents), dtype=torch.float32)
    block = fm.batch_hvp(theta, X, y, V, **kw)  # the recorder's and dense_hessian's path (K > 1 tangents)
    objective = fm.objective(theta, X, y, **kw)
    per_sample = fm.per_sample_grads(theta, X, y, weight_decay=case.lam)
    assert grad.dtype == hvps[0].dtype == block.dtype == objective.dtype == per_sample.dtype == torch.float32
    ref = reference_fp64(case.theta, case.X, case.y, case.classes, case.lam, case.normalizer, tangents)
    m, rows, nu = case.model, len(case.y), case.normalizer

    def err(computed: torch.Tensor, exact: np.ndarray) -> float:
        return float(np.linalg.norm(computed.detach().double().numpy() - exact))

    hvp_err = max(err(h, r) / float(np.linalg.norm(v)) for h, r, v in zip(hvps, ref["hvp"], tangents, strict=True))
    block_err = max(err(h, r) / float(np.linalg.norm(v)) for h, r, v in zip(block, ref["hvp"], tangents, strict=True))
    per_sample_err = float(np.linalg.norm(per_sample.detach().double().numpy() - ref["per_sample"], axis=1).max())
    out = {
        "gradient": (err(grad, ref["grad"]), m.batch_gradient(FP32, rows, nu)),
        "gradient (grad_and_hvp_fn)": (err(grad2, ref["grad"]), m.batch_gradient(FP32, rows, nu)),
        "hvp per unit |v|": (hvp_err, m.hvp(FP32, rows, nu)),
        "batch_hvp per unit |v|": (block_err, m.hvp(FP32, rows, nu)),
        "per-sample gradient": (per_sample_err, m.sample_gradient(FP32)),
        "objective": (abs(float(objective) - ref["objective"]), m.objective(FP32, rows, nu)),
    }
    if key in ("underflowing probability", "subnormal probability"):  # the case is what it claims
        p32 = torch.softmax(fm.outputs(theta, X), dim=1)[:, 1].double().numpy()
        p64 = ref["P"][:, 1]
        tiny = float(torch.finfo(torch.float32).tiny)
        assert (p64 > 0).all() and (p64 < tiny).all()
        if key.startswith("underflow"):
            assert (p32 == 0).all()
        else:
            assert (p32 > 0).all() and (p32 < tiny).all()
    return out


FP32_KEYS = [f"random {k}" for k in range(N_RANDOM)] + list(ADVERSARIAL)


@pytest.mark.parametrize("key", FP32_KEYS)
def test_softmax_error_model_dominates_float32_rounding(key: str) -> None:
    """Every SoftmaxErrorModel bound is ≥ the measured float32 rounding of the library's chain code
    (absolute errors against the float64 closed forms of the same float32 inputs)."""
    measured = fp32_measurement(key)
    case = _case(key)
    for quantity, (error, bound) in measured.items():
        assert math.isfinite(bound) and bound > 0, (case, quantity, bound)
        assert error <= bound, f"{case}: {quantity} error {error:.3g} > bound {bound:.3g}"
    assert measured["gradient"][0] > 0  # rounding really happened: the check is not vacuous


# -------------------------------------------------------------------- float64 against mpmath


def mp_reference(theta: np.ndarray, X: np.ndarray, y: np.ndarray, classes: int, lam: float,
                 normalizer: float, v: np.ndarray) -> dict[str, list]:
    """Gradient, objective, per-sample gradients and one HVP at 50 digits from the float64 inputs."""
    with mpmath.workdps(50):
        n, p = X.shape
        mpf = mpmath.mpf
        th = [mpf(float(t)) for t in theta]
        vv = [mpf(float(t)) for t in v]
        lam_, nu = mpf(lam), mpf(normalizer)
        d = classes * (p + 1)
        grad = [lam_ * n * t for t in th]
        hv = [lam_ * n * t for t in vv]
        per_sample, total = [], mpf(0)
        for i in range(n):
            xt = [mpf(float(a)) for a in X[i]] + [mpf(1)]

            def logits(w: list, xt: list = xt) -> list:
                return [sum(w[k * p + j] * xt[j] for j in range(p)) + w[classes * p + k] for k in range(classes)]

            z, u = logits(th), logits(vv)
            lse = mpmath.log(sum(mpmath.exp(zk) for zk in z))
            prob = [mpmath.exp(zk - lse) for zk in z]
            total += lse - z[int(y[i])]
            g = [prob[k] - (1 if k == int(y[i]) else 0) for k in range(classes)]
            mean = sum(pk * uk for pk, uk in zip(prob, u, strict=True))
            s = [prob[k] * (u[k] - mean) for k in range(classes)]
            row = [mpf(0)] * d
            for k in range(classes):
                for j in range(p + 1):
                    idx = k * p + j if j < p else classes * p + k
                    row[idx] = g[k] * xt[j]
                    grad[idx] += g[k] * xt[j]
                    hv[idx] += s[k] * xt[j]
            per_sample.append([r + lam_ * t for r, t in zip(row, th, strict=True)])
        objective = (total + lam_ * n * sum(t * t for t in th) / 2) / nu
        return {"grad": [g / nu for g in grad], "hvp": [h / nu for h in hv], "objective": objective,
                "per_sample": per_sample}


def _mp_error(computed: torch.Tensor, exact: list) -> float:
    with mpmath.workdps(50):
        return float(mpmath.sqrt(sum((mpmath.mpf(float(c)) - e) ** 2
                                     for c, e in zip(computed.tolist(), exact, strict=True))))


MP_CASES = {  # (p, K, rows, normaliser, X, R at which θ sits, λ)
    "2 classes, 3 rows": (2, 2, 3, 3.0, 1.0, 3.0, 0.1),
    "3 classes, 4 rows, normaliser 10": (2, 3, 4, 10.0, 2.0, 8.0, 0.3),
    "3 classes, logits ±60 at the radius": (2, 3, 3, 3.0, 3.0, 30.0, 0.05),
    "1 row, normaliser 5": (2, 2, 1, 5.0, 1.5, 5.0, 0.2),
}


@cache
def fp64_measurement(name: str) -> dict[str, tuple[float, float]]:
    p, K, rows, nu, X_bound, R, lam = MP_CASES[name]
    rng = np.random.default_rng(len(name))
    X = rng.standard_normal((rows, p))
    X = X * (X_bound * (1 - 1e-12) / np.linalg.norm(X, axis=1, keepdims=True))
    assert (np.linalg.norm(X, axis=1) <= X_bound).all()
    if "radius" in name:  # W rows ±a x̂ for x̂ the first row's direction
        direction = X[0] / np.linalg.norm(X[0])
        W = np.array([1.0, -1.0, 0.0])[:, None] * direction[None, :]
        theta = np.concatenate([W.ravel(), np.zeros(K)])
    else:
        theta = rng.standard_normal(K * (p + 1))
    theta = theta * (R * (1 - 1e-12) / np.linalg.norm(theta))
    assert np.linalg.norm(theta) <= R
    y = rng.integers(0, K, rows)
    v = rng.standard_normal(theta.size)
    fm = FunctionalModel(LogisticRegression(p, K, dtype=torch.float64))
    Xt, tt, yt = torch.tensor(X), torch.tensor(theta), torch.tensor(y)
    kw = dict(normalizer=nu, weight_decay=lam)
    grad, hvp = fm.grad_and_hvp_fn(tt, Xt, yt, **kw)
    ref = mp_reference(theta, X, y, K, lam, nu, v)
    model = SoftmaxErrorModel(features=p, classes=K, feature_norm=X_bound, radius=R, weight_decay=lam)
    per_sample = fm.per_sample_grads(tt, Xt, yt, weight_decay=lam)
    with mpmath.workdps(50):
        objective_err = float(abs(mpmath.mpf(float(fm.objective(tt, Xt, yt, **kw))) - ref["objective"]))
    return {
        "gradient": (_mp_error(fm.objective_grad(tt, Xt, yt, **kw), ref["grad"]), model.batch_gradient(FP64, rows, nu)),
        "gradient (grad_and_hvp_fn)": (_mp_error(grad, ref["grad"]), model.batch_gradient(FP64, rows, nu)),
        "hvp per unit |v|": (_mp_error(hvp(torch.tensor(v)), ref["hvp"]) / float(np.linalg.norm(v)),
                             model.hvp(FP64, rows, nu)),
        "per-sample gradient": (max(_mp_error(per_sample[i], ref["per_sample"][i]) for i in range(rows)),
                                model.sample_gradient(FP64)),
        "objective": (objective_err, model.objective(FP64, rows, nu)),
    }


@pytest.mark.parametrize("name", list(MP_CASES))
def test_softmax_error_model_dominates_float64_rounding(name: str) -> None:
    """The float64 bounds dominate the library's float64 rounding, measured against mpmath (50 digits)."""
    for quantity, (error, bound) in fp64_measurement(name).items():
        assert math.isfinite(bound) and 0 < bound < 1e-9, (name, quantity, bound)
        assert error <= bound, f"{name}: {quantity} error {error:.3g} > bound {bound:.3g}"


def test_reference_agrees_with_library_in_float64() -> None:
    """The test's own float64 reference is the library's function (same layout, same objective):
    otherwise the float32 comparisons would measure a mismatch, not rounding."""
    case = random_case(1)
    v = np.random.default_rng(0).standard_normal(case.theta.size)
    ref = reference_fp64(case.theta, case.X, case.y, case.classes, case.lam, case.normalizer, [v])
    fm = FunctionalModel(LogisticRegression(case.features, case.classes, dtype=torch.float64))
    X, th, y = torch.tensor(case.X), torch.tensor(case.theta), torch.tensor(case.y)
    kw = dict(normalizer=case.normalizer, weight_decay=case.lam)
    g, hvp = fm.grad_and_hvp_fn(th, X, y, **kw)
    np.testing.assert_allclose(g.numpy(), ref["grad"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hvp(torch.tensor(v)).numpy(), ref["hvp"][0], rtol=1e-10, atol=1e-12)
    assert float(fm.objective(th, X, y, **kw)) == pytest.approx(ref["objective"], rel=1e-12)
    np.testing.assert_allclose(fm.per_sample_grads(th, X, y, weight_decay=case.lam).numpy(),
                               ref["per_sample"], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# 3. sgd_trajectory_error against float32 vs float64 training
# ---------------------------------------------------------------------------------------------


class _Iterates:
    """Observer keeping every w_t (float64 copy) and the norm of every pre-projection point."""

    def __init__(self) -> None:
        self.thetas: list[torch.Tensor] = []
        self.pre_norms: list[float] = []

    def on_step(self, info: StepInfo) -> None:
        self.thetas.append(info.theta.detach().double().clone())
        self.pre_norms.append(float(info.pre_projection.double().norm()))


def trajectory_problem(k: int) -> tuple[SGDConfig, torch.Tensor, torch.Tensor, int, int, float]:
    rng = np.random.default_rng(300 + k)
    n, p, K = int(rng.integers(10, 61)), int(rng.integers(2, 17)), int(rng.integers(2, 6))
    X_bound = float(rng.uniform(0.3, 3.0))
    lam = float(np.exp(rng.uniform(np.log(0.05), np.log(0.5))))
    beta = (X_bound**2 + 1) / 2 + lam
    lr = (1.0 if k % 3 == 0 else float(rng.uniform(0.3, 1.0))) * 2.0 / (lam + beta)  # the limit itself too
    epochs = int(rng.integers(1, 4))
    batch = int(rng.integers(max(1, math.ceil(n * epochs / 60)), n + 1))
    projection = float(rng.uniform(0.05, 0.3)) if k % 2 else None  # small: the projection is active
    cfg = SGDConfig(epochs=epochs, batch_size=batch, lr=lr, lr_decay=1.0 if k % 4 < 2 else 0.98,
                    weight_decay=lam, projection_radius=projection, seed=k)
    gen = torch.Generator().manual_seed(k)
    X = clip_rows(2.0 * X_bound / math.sqrt(p) * torch.randn(n, p, generator=gen), X_bound)  # float32
    return cfg, X, torch.randint(0, K, (n,), generator=gen), p, K, X_bound


N_TRAJECTORIES = 10


@cache
def trajectory_measurement(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(‖ŵ32_t − ŵ64_t‖, E32_t, E64_t) for t = 0..T."""
    cfg, X, y, p, K, X_bound = trajectory_problem(k)
    schedule = Schedule.build(n_samples=X.shape[0], config=cfg)
    a = softmax_regression_assumptions(feature_norm_bound=X_bound, weight_decay=cfg.weight_decay,
                                       projection_radius=cfg.projection_radius, features=p, classes=K)
    runs = {}
    for dtype in (torch.float32, torch.float64):
        fm = FunctionalModel(LogisticRegression(p, K, dtype=dtype))
        obs = _Iterates()
        last = run_schedule(fm, X.to(dtype), y, schedule, cfg, observers=[obs])
        runs[dtype] = (torch.stack(obs.thetas + [last.double()]), obs.pre_norms)
    if cfg.projection_radius is not None:  # the projection really acted
        assert max(runs[torch.float64][1]) > cfg.projection_radius * 1.01
    assert float(runs[torch.float64][0].norm(dim=1).max()) <= a.error_model.radius
    diff = (runs[torch.float32][0] - runs[torch.float64][0]).norm(dim=1).numpy()
    errors = [sgd_trajectory_error(lrs=schedule.lrs, batch_sizes=schedule.batch_sizes, precision=prec,
                                   model=a.error_model, gradient_bound=a.gradient_bound, dim=a.error_model.dim,
                                   projection=cfg.projection_radius is not None) for prec in (FP32, FP64)]
    return diff, errors[0], errors[1]


@pytest.mark.parametrize("k", range(N_TRAJECTORIES))
def test_sgd_trajectory_error_dominates_float32_training(k: int) -> None:
    """‖ŵ32_t − ŵ64_t‖ ≤ E32_t + E64_t at every step (both runs against the exact iterate w_t; the
    float64 run's own E64 is ~1e-9 of E32), for float32 rows clipped with clip_rows, η up to
    2/(λ + β), with and without projection."""
    diff, e32, e64 = trajectory_measurement(k)
    cfg = trajectory_problem(k)[0]
    assert diff.shape == e32.shape == e64.shape and e32[0] == 0.0 and diff[0] == 0.0
    assert np.all(np.diff(e32) > 0) and np.all(e64 < 1e-6 * np.maximum(e32, 1e-300) + 1e-300)
    bad = np.nonzero(diff > e32 + e64)[0]
    assert bad.size == 0, f"{cfg}: steps {bad.tolist()} measured {diff[bad]} > bound {(e32 + e64)[bad]}"
    assert diff[-1] > 0  # float32 rounding really moved the iterate


# ---------------------------------------------------------------------------------------------
# 4. The float32 HF-OCU worst-case certificate against float32 and float64 retrains
# ---------------------------------------------------------------------------------------------


F32, F64 = torch.float32, torch.float64
HFOCU_CASES = [  # (placement, epochs, storage, projection, model dtype)
    ("last", 1, None, None, F32),
    ("last", 1, None, None, F32),
    ("last", 1, "bfloat16", None, F32),
    ("last", 1, None, 0.3, F32),
    ("last", 3, "bfloat16", None, F32),  # the last batch of the last epoch: seen in earlier epochs too
    ("first", 2, None, None, F32),
    ("first", 1, "bfloat16", None, F32),
    ("random", 3, None, None, F32),
    ("random", 2, "bfloat16", None, F32),
    ("random", 2, "bfloat16", 0.4, F32),
    ("random", 1, None, None, F32),
    ("last", 1, "bfloat16", None, F64),  # bf16 statistics of a float64 model: u_s = 2^-8 against 2^-53
    ("random", 2, "bfloat16", None, F64),
]


@cache
def hfocu_outcome(k: int) -> dict[str, object]:
    placement, epochs, storage, projection, model_dtype = HFOCU_CASES[k]
    rng = np.random.default_rng(500 + k)
    n, p, K = int(rng.integers(12, 61)), int(rng.integers(2, 9)), int(rng.integers(2, 5))
    X_bound = float(rng.uniform(0.5, 3.0))
    lam = float(np.exp(rng.uniform(np.log(0.05), np.log(0.5))))
    beta = (X_bound**2 + 1) / 2 + lam
    lr = float(rng.uniform(0.5, 1.0)) * 2.0 / (lam + beta)
    batch = int(rng.integers(max(2, math.ceil(n * epochs / 60)), max(3, n // 2) + 1))
    cfg = SGDConfig(epochs=epochs, batch_size=batch, lr=lr, weight_decay=lam, projection_radius=projection, seed=k)
    gen = torch.Generator().manual_seed(500 + k)
    X = clip_rows(2.0 * X_bound / math.sqrt(p) * torch.randn(n, p, generator=gen).to(model_dtype), X_bound)
    y = torch.randint(0, K, (n,), generator=gen)
    hf = HFOCU(LogisticRegression(p, K, dtype=model_dtype), cfg, feature_norm_bound=X_bound,
               certificate="worst-case", storage_dtype=storage).fit(X, y)
    steps = hf.schedule.steps
    assert len(steps) <= 60
    m = int(rng.integers(1, 4))
    if placement == "random":
        ids = sorted(int(i) for i in rng.choice(n, size=m, replace=False))
    else:
        ids = sorted(steps[-1 if placement == "last" else 0].ids[:m])
    res = hf.forget(ids, epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(k))
    w_bar = _flat(res.params_noiseless)
    retrains = {}
    # a float32 model's Δ covers the exact retrain (float64 stands in: its error is ~1e-9 of float32's)
    # and the float32 retrain; a float64 model's covers the float64 retrain, not a float32 one
    for dtype in (torch.float32, torch.float64) if model_dtype == torch.float32 else (torch.float64,):
        state = coupled_retrain(LogisticRegression(p, K, dtype=dtype), X.to(dtype), y, hf.schedule, cfg,
                                exclude=ids, normalization="full_batch")
        retrains[str(dtype)] = float((w_bar - _flat(state)).norm())
    exact = second_order_sgd_bound(lrs=hf.schedule.lrs, batch_sizes=hf.schedule.batch_sizes,
                                   deletion_counts=hf.schedule.deletion_counts(ids), assumptions=hf.assumptions_,
                                   projection_radius=projection)
    return {"res": res, "distances": retrains, "exact_second_order": exact, "case": (HFOCU_CASES[k], cfg, ids),
            "dtype": res.params_noiseless["linear.weight"].dtype}


@pytest.mark.parametrize("k", range(len(HFOCU_CASES)))
def test_hfocu_float32_worst_case_certificate_is_never_beaten(k: int) -> None:
    """‖params_noiseless − retrain‖ ≤ Δ = sensitivity against float32 and float64 coupled retrains
    (full-batch normalisation), for a float32 HF-OCU with float32 or bfloat16 statistics (and two
    float64 ones with bfloat16 statistics); no allowance: rounding is inside Δ."""
    o = hfocu_outcome(k)
    res, case = o["res"], o["case"]
    assert o["dtype"] == case[0][4]
    assert res.certified and res.status == "certified" and res.reference == "coupled-sgd", (case, res.reasons)
    assert res.sensitivity > 0 and res.sigma > 0
    for dtype, distance in o["distances"].items():
        assert distance <= res.sensitivity, f"{case}: {dtype} retrain at {distance:.3g} > Δ {res.sensitivity:.3g}"


@pytest.mark.parametrize("k", [k for k, c in enumerate(HFOCU_CASES) if c[:2] == ("last", 1) and c[3] is None])
def test_hfocu_float32_zero_exact_delta_keeps_positive_noise(k: int) -> None:
    """Ids only in the last batch of a one-epoch run: Δ = 0 in exact arithmetic (second-order bound),
    yet float32 w̄ differs from the retrain; the certified Δ (the rounding term) and σ stay > 0."""
    o = hfocu_outcome(k)
    exact, res = o["exact_second_order"], o["res"]
    assert exact.certified and exact.value == 0.0
    assert res.sensitivity > 0 and res.sigma > 0
    assert 0 < max(o["distances"].values()) <= res.sensitivity


# ---------------------------------------------------------------------------------------------
# 5. Cholesky solves: backward error (Rigal and Gaches)
# ---------------------------------------------------------------------------------------------


CHOLESKY_CASES = [(d, c) for d in (1, 2, 7, 33, 64) for c in (1.0, 1e2, 1e4)]


@cache
def cholesky_measurement(d: int, cond: float, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    rng = np.random.default_rng(d * 7 + int(math.log10(cond)))
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eigs = np.geomspace(1.0, 1.0 / cond, d) * float(rng.uniform(0.1, 10.0))
    A = torch.tensor((Q * eigs) @ Q.T, dtype=dtype)
    A = 0.5 * (A + A.T)  # symmetric in the working dtype
    b = torch.tensor(rng.standard_normal((d, 1)) * 10 ** rng.uniform(-2, 2), dtype=dtype)
    x = torch.cholesky_solve(b, torch.linalg.cholesky(A))
    Ad, bd, xd = A.double().numpy(), b.double().numpy(), x.double().numpy()
    backward = float(np.linalg.norm(bd - Ad @ xd) / np.linalg.norm(xd))  # min ‖ΔA‖₂: (A + ΔA)x̂ = b
    name = "float32" if dtype == torch.float32 else "float64"
    return backward, cholesky_backward_error(d, float(np.linalg.norm(Ad, 2)), UNIT_ROUNDOFF[name])


@pytest.mark.parametrize(("d", "cond"), CHOLESKY_CASES)
def test_cholesky_backward_error_dominates_float32_solves(d: int, cond: float) -> None:
    """The Rigal–Gaches normwise backward error ‖b − A x̂‖₂/‖x̂‖₂ (the smallest ‖ΔA‖₂ with
    (A + ΔA)x̂ = b) of a float32 torch.linalg.cholesky + torch.cholesky_solve, residual computed in
    float64, is ≤ cholesky_backward_error(d, ‖A‖₂, u)."""
    backward, bound = cholesky_measurement(d, cond)
    assert math.isfinite(bound) and backward <= bound, (d, cond, backward, bound)


def test_cholesky_backward_error_dominates_float64_solves() -> None:
    for d in (3, 40):
        backward, bound = cholesky_measurement(d, 1e4, torch.float64)
        assert backward <= bound, (d, backward, bound)


# ---------------------------------------------------------------------------------------------
# 6. A float32 Newton step against the float64 minimiser (newton_rounding, Lemma 22)
# ---------------------------------------------------------------------------------------------


def _newton_minimiser(X: np.ndarray, y: np.ndarray, K: int, lam: float) -> np.ndarray:
    """argmin of (1/n) Σ [CE_i + (λ/2)‖θ‖²] in float64 by Newton's method on the closed forms."""
    n, p = X.shape
    d = K * (p + 1)
    theta = np.zeros(d)
    for _ in range(50):
        ref = reference_fp64(theta, X, y, K, lam, float(n), list(np.eye(d)))
        H = np.stack(ref["hvp"], axis=1)
        theta = theta - np.linalg.solve(0.5 * (H + H.T), ref["grad"])
        if np.linalg.norm(ref["grad"]) < 1e-14:
            break
    return theta


NEWTON_CASES = [("training argmin", False), ("training argmin", True), ("near the argmin", False),
                ("near the argmin", True)]


@cache
def newton_measurement(start: str, stored: bool) -> tuple[float, float, float]:
    """(‖computed float32 step − w*‖, Lemma 22's bound with rounding, the same without rounding)."""
    rng = np.random.default_rng(11)
    n, p, K, X_bound, lam, m = 40, 3, 3, 1.5, 0.1, 3
    X = _rows_at_most(rng.standard_normal((n, p)), X_bound)
    y = rng.integers(0, K, n)
    keep = np.ones(n, dtype=bool)
    keep[:m] = False
    w_R = _newton_minimiser(X[keep], y[keep], K, lam)
    if start == "training argmin":
        theta = _as_f32(_newton_minimiser(X, y, K, lam))
    else:  # h tiny: the exact-arithmetic term (M/2)h²/λ is far below the rounding
        theta = _as_f32(w_R + 1e-5 * rng.standard_normal(w_R.size))
    a = softmax_regression_assumptions(feature_norm_bound=X_bound, weight_decay=lam, features=p, classes=K)
    fm = FunctionalModel(LogisticRegression(p, K, dtype=torch.float32))
    f32 = dict(dtype=torch.float32)
    th, Xt, yt = torch.tensor(theta, **f32), torch.tensor(X, **f32), torch.tensor(y)
    k = n - m
    g = fm.objective_grad(th, Xt[keep], yt[keep], normalizer=k, weight_decay=lam)
    if stored:
        H_S = fm.dense_hessian(th, Xt, yt, normalizer=n, weight_decay=lam)
        removed = fm.dense_hessian(th, Xt[~keep], yt[~keep], normalizer=1.0, weight_decay=lam)
        H = (n * H_S - removed) / k
    else:
        H = fm.dense_hessian(th, Xt[keep], yt[keep], normalizer=k, weight_decay=lam)
    H = 0.5 * (H + H.T)
    step = -torch.cholesky_solve(g.unsqueeze(1), torch.linalg.cholesky(H)).squeeze(1)
    new = (th + step).double().numpy()
    assert th.dtype == step.dtype == torch.float32
    measured = float(np.linalg.norm(new - w_R))
    exact_g = reference_fp64(theta, X[keep], y[keep], K, lam, float(k), [])["grad"]
    rounding = newton_rounding(n=n, m=m, dim=K * (p + 1), precision=FP32, model=a.error_model,
                               smoothness=a.smoothness, step_bound=1.1 * float(np.linalg.norm(exact_g)) / lam,
                               stored_hessian=stored)
    h = float(np.linalg.norm(theta - w_R))
    bound = perturbed_step_error(h=h, alpha=0.0, lipschitz=a.hessian_lipschitz, strong_convexity=lam,
                                 rounding=rounding)
    exact_only = perturbed_step_error(h=h, alpha=0.0, lipschitz=a.hessian_lipschitz, strong_convexity=lam,
                                      rounding=None)
    return measured, bound, exact_only


@pytest.mark.parametrize(("start", "stored"), NEWTON_CASES)
def test_newton_rounding_dominates_a_float32_newton_step(start: str, stored: bool) -> None:
    """A float32 Newton step on the remaining rows (dense chain Hessian, symmetrised, Cholesky solve;
    with ``stored`` the NewtonStep combination (n H_S − Σ_U H_u)/(n − m)) lands within
    perturbed_step_error(h = ‖θ − w*‖, newton_rounding(...)) of the float64 minimiser w* of F_R."""
    measured, bound, exact_only = newton_measurement(start, stored)
    assert math.isfinite(bound) and measured <= bound, (start, stored, measured, bound, exact_only)
    if start == "near the argmin":  # the check is about rounding: it is above the exact-arithmetic bound
        assert measured > exact_only


# ---------------------------------------------------------------------------------------------
# 7. Hypothesis properties
# ---------------------------------------------------------------------------------------------


@st.composite
def error_models(draw: st.DrawFn, *, max_radius: float = 1e4) -> SoftmaxErrorModel:
    return SoftmaxErrorModel(features=draw(st.integers(1, 200)), classes=draw(st.integers(2, 50)),
                             feature_norm=draw(st.floats(1e-3, 100.0)), radius=draw(st.floats(1e-3, max_radius)),
                             weight_decay=draw(st.floats(0.0, 10.0)))


def _all_bounds(m: SoftmaxErrorModel, prec: Precision, rows: int, normalizer: float) -> tuple[float, ...]:
    return (m.batch_gradient(prec, rows, normalizer), m.hvp(prec, rows, normalizer),
            m.objective(prec, rows, normalizer), m.sample_gradient(prec))


PRECISIONS = st.sampled_from([FP64, FP32, Precision("float32", matmul="tf32"), Precision("float16")])


@given(error_models(), st.floats(1.0, 100.0), st.floats(1.0, 100.0), st.integers(1, 10**6),
       st.integers(1, 10**6), st.integers(0, 10**6), PRECISIONS)
@PROPERTY_SETTINGS
def test_error_model_non_decreasing(m: SoftmaxErrorModel, radius_factor: float, norm_factor: float,
                                    rows_a: int, rows_b: int, extra: int, prec: Precision) -> None:
    """Every bound is non-decreasing in the radius, the feature norm and the rows (fixed normaliser,
    rows ≤ normaliser as in training and the coupled retrain): a bound for a larger set of inputs
    covers a smaller one."""
    lo, hi = sorted((rows_a, rows_b))
    nu = float(hi + extra)
    base = _all_bounds(m, prec, lo, nu)
    for bigger in (replace(m, radius=m.radius * radius_factor), replace(m, feature_norm=m.feature_norm * norm_factor)):
        for a, b in zip(base, _all_bounds(bigger, prec, lo, nu), strict=True):
            assert a <= b, (m, bigger, prec, lo, nu)
    for a, b in zip(base[:3], _all_bounds(m, prec, hi, nu)[:3], strict=True):
        assert a <= b, (m, prec, lo, hi, nu)


@given(error_models(), st.integers(1, 10**6), st.integers(0, 10**6))
@PROPERTY_SETTINGS
def test_error_model_coarser_arithmetic_is_larger(m: SoftmaxErrorModel, rows: int, extra: int) -> None:
    """float32 > float64 (strictly, wherever the float64 bound is finite), TF32 products ≥ float32,
    float16 ≥ float32."""
    nu = float(rows + extra)
    b64, b32 = _all_bounds(m, FP64, rows, nu), _all_bounds(m, FP32, rows, nu)
    tf32, f16 = (_all_bounds(m, Precision("float32", matmul="tf32"), rows, nu),
                 _all_bounds(m, Precision("float16"), rows, nu))
    for lo, hi, t, h in zip(b64, b32, tf32, f16, strict=True):
        assert lo < hi or (lo == hi == math.inf), (m, rows, nu, lo, hi)
        assert 0 < lo
        assert hi <= t and hi <= h


@given(error_models(max_radius=1e3), st.floats(1.0001, 100.0), st.integers(1, 10**4), PRECISIONS)
@PROPERTY_SETTINGS
def test_error_model_inf_past_the_first_order_limit(m: SoftmaxErrorModel, factor: float, rows: int,
                                                    prec: Precision) -> None:
    """Once a first-order relative error passes FIRST_ORDER_LIMIT the bounds are inf (unproven, never
    a number): the logits' error γ_{p+1}(u_mm)·√(X²+1)·R (Higham (F2), the relative error of every
    exp(z_k)) past it makes all four inf; a batch sum's γ_k(u) past it makes the batch bounds inf;
    bfloat16 arithmetic (exp alone: 8u = 1/32) is always inf."""
    x_tilde = math.sqrt(m.feature_norm**2 + 1)
    radius = factor * FIRST_ORDER_LIMIT / (gamma(m.features + 1, prec.u_matmul) * x_tilde)
    wide = replace(m, radius=radius)
    assert all(b == math.inf for b in _all_bounds(wide, prec, rows, float(rows)))
    many = int(FIRST_ORDER_LIMIT / prec.u * factor) + 1  # γ_many ≥ many·u > limit
    if many < 10**15:
        assert all(b == math.inf for b in _all_bounds(m, prec, many, float(many))[:3])
    assert all(b == math.inf for b in _all_bounds(m, Precision("bfloat16"), rows, float(rows)))


@given(st.integers(1, 100), st.integers(2, 100), st.floats(0.01, 10.0), st.floats(0.0, 1.0),
       st.floats(0.0, 1.0), st.integers(1, 10**4), st.integers(0, 10**4))
@PROPERTY_SETTINGS
def test_error_model_finite_at_working_scales(p: int, K: int, feature_norm: float, radius_frac: float,
                                              lam: float, rows: int, extra: int) -> None:
    """The bounds are usable (finite) where the library works: float32 with ‖x̃‖·R ≤ 10 and float64
    with ‖x̃‖·R ≤ 10⁴, up to 10⁴ rows (so an inf is never produced spuriously)."""
    x_tilde = math.sqrt(feature_norm**2 + 1)
    for prec, scale in ((FP32, 10.0), (FP64, 1e4)):
        m = SoftmaxErrorModel(features=p, classes=K, feature_norm=feature_norm,
                              radius=max(radius_frac * scale / x_tilde, 1e-6), weight_decay=lam)
        for b in _all_bounds(m, prec, rows, float(rows + extra)):
            assert 0 < b < math.inf, (m, prec, rows, b)


@st.composite
def hfocu_schedules(draw: st.DrawFn) -> dict:
    T = draw(st.integers(1, 30))
    sizes = np.array(draw(st.lists(st.integers(1, 64), min_size=T, max_size=T)))
    counts = np.array([draw(st.integers(0, int(s))) for s in sizes])
    extra = np.array([draw(st.integers(0, int(s - c))) for s, c in zip(sizes, counts, strict=True)])
    X, lam = draw(st.floats(0.3, 3.0)), draw(st.floats(0.01, 0.5))
    beta = (X * X + 1) / 2 + lam
    lrs = np.array(draw(st.lists(st.floats(1e-3, 1.0), min_size=T, max_size=T))) * 2 / (lam + beta)
    p, K = draw(st.integers(1, 30)), draw(st.integers(2, 10))
    projection = draw(st.booleans())
    prec = draw(st.sampled_from([FP64, FP32, Precision("float32", storage="bfloat16"),
                                 Precision("float64", storage="bfloat16")]))
    return dict(sizes=sizes, counts=counts, extra=extra, X=X, lam=lam, lrs=lrs, p=p, K=K,
                projection=projection, prec=prec)


def _hfocu_terms(s: dict, counts: np.ndarray, prec: Precision | None = None):
    radius = 0.5 if s["projection"] else None
    a = softmax_regression_assumptions(feature_norm_bound=s["X"], weight_decay=s["lam"], projection_radius=radius,
                                       features=s["p"], classes=s["K"])
    return hfocu_rounding(lrs=s["lrs"], batch_sizes=s["sizes"], deletion_counts=counts,
                          precision=prec or s["prec"], model=a.error_model, gradient_bound=a.gradient_bound,
                          smoothness=a.smoothness, strong_convexity=a.strong_convexity, dim=a.error_model.dim,
                          hessian_lipschitz=a.hessian_lipschitz, projection=s["projection"])


@given(hfocu_schedules())
@PROPERTY_SETTINGS
def test_hfocu_rounding_monotone_in_counts_and_positive(s: dict) -> None:
    """first_order is non-decreasing in the deletion counts m_t (more deleted rows, more recorded
    rounding) and > 0 for any T ≥ 1, even with no deletion in exact Δ terms (both trajectories round);
    second_order ≥ first_order; bfloat16 statistics never lower it."""
    small, large = _hfocu_terms(s, s["counts"]), _hfocu_terms(s, s["counts"] + s["extra"])
    zero = _hfocu_terms(s, np.zeros_like(s["counts"]))
    assert 0 < zero.first_order() <= small.first_order() <= large.first_order()
    assert small.second_order() >= small.first_order()
    for term in ("trajectory", "recorder", "summation", "drift"):
        assert getattr(small, term) <= getattr(large, term)
    coarse = _hfocu_terms(s, s["counts"], Precision(s["prec"].compute, storage="bfloat16"))
    assert coarse.first_order() >= small.first_order()


@given(hfocu_schedules())
@PROPERTY_SETTINGS
def test_sgd_trajectory_error_grows_along_the_run(s: dict) -> None:
    """E_0 = 0, E_t strictly increasing (every step rounds), projection adds its rounding, float32 > float64."""
    a = softmax_regression_assumptions(feature_norm_bound=s["X"], weight_decay=s["lam"], features=s["p"],
                                       classes=s["K"])
    kw = dict(lrs=s["lrs"], batch_sizes=s["sizes"], model=a.error_model, gradient_bound=a.gradient_bound,
              dim=a.error_model.dim)
    e32, e64 = sgd_trajectory_error(precision=FP32, **kw), sgd_trajectory_error(precision=FP64, **kw)
    proj = sgd_trajectory_error(precision=FP32, projection=True, **kw)
    assert e32.shape == (s["sizes"].size + 1,) and e32[0] == 0.0
    assert np.all(np.diff(e32) > 0) and np.all(e32[1:] > e64[1:]) and np.all(proj[1:] > e32[1:])


@given(st.integers(1, 500), st.integers(1, 500), st.floats(0.0, 1e3), st.floats(1.0, 10.0),
       st.sampled_from([U64, U32, 2.0**-11]))
@PROPERTY_SETTINGS
def test_cholesky_backward_error_monotone(d1: int, d2: int, norm: float, factor: float, u: float) -> None:
    lo, hi = sorted((d1, d2))
    assert cholesky_backward_error(lo, norm, u) <= cholesky_backward_error(hi, norm, u)
    assert cholesky_backward_error(lo, norm, u) <= cholesky_backward_error(lo, norm * factor, u)
    assert cholesky_backward_error(lo, norm, u) <= cholesky_backward_error(lo, norm, min(2 * u, 2.0**-8))


# ---------------------------------------------------------------------------------------------
# Summary of the measured ratios
# ---------------------------------------------------------------------------------------------


def test_ratio_summary() -> None:
    """bound / measured ≥ 1 everywhere (soundness); min and median are reported so a reader sees how
    loose the bounds are. Tightness is not asserted."""
    groups: dict[str, list[float]] = {}

    def add(group: str, error: float, bound: float) -> None:
        if error > 0:
            groups.setdefault(group, []).append(bound / error)

    for key in FP32_KEYS:
        for quantity, (error, bound) in fp32_measurement(key).items():
            add(f"float32 {quantity}", error, bound)
    for name in MP_CASES:
        for quantity, (error, bound) in fp64_measurement(name).items():
            add(f"float64 {quantity} (mpmath)", error, bound)
    for k in range(N_TRAJECTORIES):
        diff, e32, e64 = trajectory_measurement(k)
        for t in range(1, diff.size):
            add("sgd_trajectory_error E_t", float(diff[t]), float(e32[t] + e64[t]))
    for k in range(len(HFOCU_CASES)):
        o = hfocu_outcome(k)
        kind = "rounding only (exact Δ = 0)" if o["exact_second_order"].value == 0.0 else "total"
        for distance in o["distances"].values():
            add(f"HF-OCU {str(o['dtype'])[6:]} Δ, {kind}", distance, o["res"].sensitivity)
    for d, cond in CHOLESKY_CASES:
        add("cholesky backward error", *cholesky_measurement(d, cond))
    for start, stored in NEWTON_CASES:
        measured, bound, _ = newton_measurement(start, stored)
        add(f"float32 Newton step ({start})", measured, bound)
    summary = "bound / measured error:\n" + "\n".join(f"  {g:45s} {_stats(v)}" for g, v in groups.items())
    print("\n" + summary)
    assert all(min(v) >= 1.0 for v in groups.values()), summary
    assert len(groups) >= 14, summary
