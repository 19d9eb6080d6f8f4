r"""Calibrating the Gaussian mechanism: σ ↔ ε ↔ δ for an L2 sensitivity Δ.

Adding :math:`\mathcal N(0, \sigma^2 I)` to a function whose L2 sensitivity is Δ is (ε, δ)-DP
**if and only if**, with μ = Δ/σ (Balle & Wang, ICML 2018, Thm. 8; Dong, Roth & Su, Cor. 2.13)::

    δ  ≥  Φ(−ε/μ + μ/2) − e^ε · Φ(−ε/μ − μ/2)

The right-hand side is evaluated in the log domain (``scipy.special.log_ndtr`` and ``expm1``) so that
ε up to thousands and δ down to 1e-300 neither overflow nor cancel. For small μ the two Φ terms are
nearly equal, so their log ratio is integrated directly (Gauss–Legendre over the inverse Mills ratio)
instead of being formed as a difference of two large logarithms. Every calibration is solved by
bracketing and Brent's method and then **post-checked**: the returned σ (or ε) is moved to the safe
side until the exact inequality holds, so a returned value is never less private than asked.

The classical bound σ = Δ√(2 ln(1.25/δ))/ε (Dwork & Roth 2014, Thm. A.1) is offered for
comparison; it is only proven for ε < 1 and is refused above.

Example:
    >>> round(gaussian_sigma(epsilon=1.0, delta=1e-5), 4)
    3.7306
    >>> sigma = gaussian_sigma(epsilon=2.0, delta=1e-6, sensitivity=0.1)
    >>> gaussian_epsilon(sigma=sigma, delta=1e-6, sensitivity=0.1) <= 2.0 + 1e-9
    True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_ndtr

from certunlearn.errors import CalibrationError, ConfigError
from certunlearn.validation import check_choice, check_open_unit, check_positive

__all__ = [
    "CALIBRATION_METHODS",
    "gaussian_delta",
    "gaussian_epsilon",
    "gaussian_sigma",
    "log_delta_for_mu",
]

_LOG_FLOOR = -1e6  # stands for log(0) inside root finding; far below any representable δ
_MAX_BRACKET_STEPS = 200
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(24)
_QUADRATURE_MAX_WIDTH = 8.0  # wider than this, log Φ(a) − log Φ(b) has no damaging cancellation
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _log_phi_ratio(center: float, width: float) -> float:
    """Return log Φ(c + w/2) − log Φ(c − w/2), accurate to a few ulps even when w is tiny.

    The difference of two close logarithms loses ``|log Φ(a)| / (log Φ(a) − log Φ(b))`` ulps, which
    reaches 1e-8 relative for ε ≈ 1e-6. Writing it as the integral of the inverse Mills ratio
    φ(t)/Φ(t) (smooth and positive) over an interval of the exact width w, and integrating with
    composite Gauss–Legendre, avoids the cancellation (forming a − b from a and b would not).
    """
    if width > _QUADRATURE_MAX_WIDTH:
        return float(log_ndtr(center + width / 2.0)) - float(log_ndtr(center - width / 2.0))
    panels = max(1, math.ceil(width))
    panel_half = width / (2.0 * panels)
    offsets = (2.0 * np.arange(panels) + 1.0 - panels) * panel_half  # panel centres relative to c
    points = center + (offsets[:, None] + panel_half * _GL_NODES[None, :])
    mills = np.exp(-0.5 * points**2 - _LOG_SQRT_2PI - log_ndtr(points))
    return float(panel_half * np.sum(_GL_WEIGHTS[None, :] * mills))


def log_delta_for_mu(*, mu: float, epsilon: float) -> float:
    """Return log δ(μ, ε) of the Gaussian mechanism with μ = Δ/σ, exactly and without overflow.

    Args:
        mu: Sensitivity over noise scale, Δ/σ (> 0).
        epsilon: Privacy parameter ε (>= 0).

    Returns:
        ``log(Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2))``; ``-inf`` where δ underflows to zero in
        double precision.

    Example:
        >>> round(math.exp(log_delta_for_mu(mu=1 / 3.7306, epsilon=1.0)), 7)
        1e-05
    """
    center = -epsilon / mu
    log_phi_a = float(log_ndtr(center + mu / 2.0))
    z = epsilon - _log_phi_ratio(center, mu)  # log of e^ε Φ(b) / Φ(a), < 0 in exact arithmetic
    if not z < 0.0:
        return -math.inf
    return log_phi_a + math.log(-math.expm1(z))


def _log_delta_clamped(mu: float, epsilon: float) -> float:
    value = log_delta_for_mu(mu=mu, epsilon=epsilon)
    return max(value, _LOG_FLOOR)


def gaussian_delta(*, sigma: float, epsilon: float, sensitivity: float = 1.0) -> float:
    """Return the exact δ of the Gaussian mechanism with noise σ at privacy level ε.

    Args:
        sigma: Standard deviation of the Gaussian noise (> 0).
        epsilon: ε (>= 0).
        sensitivity: L2 sensitivity Δ (> 0).

    Returns:
        The smallest δ for which N(0, σ²I) is (ε, δ)-DP at sensitivity Δ.

    Example:
        >>> f"{gaussian_delta(sigma=3.7306, epsilon=1.0):.2e}"
        '1.00e-05'
    """
    sigma = check_positive("sigma", sigma)
    sensitivity = check_positive("sensitivity", sensitivity)
    epsilon = _check_epsilon_nonnegative(epsilon)
    return math.exp(log_delta_for_mu(mu=sensitivity / sigma, epsilon=epsilon))


def _check_epsilon_nonnegative(epsilon: float) -> float:
    if isinstance(epsilon, bool):
        raise ConfigError(f"epsilon must be a real number, got {epsilon!r}")
    try:
        value = float(epsilon)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"epsilon must be a real number, got {epsilon!r}") from exc
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"epsilon must be finite and >= 0, got {epsilon!r}")
    return value


def _bracket(func: Callable[[float], float], start: float, step: float) -> tuple[float, float]:
    """Find lo < hi (in the variable of ``func``, increasing) with func(lo) <= 0 < func(hi)."""
    lo = hi = start
    if func(start) > 0:
        for _ in range(_MAX_BRACKET_STEPS):
            lo -= step
            if func(lo) <= 0:
                return lo, lo + step
        raise CalibrationError("could not bracket the calibration root from below")
    for _ in range(_MAX_BRACKET_STEPS):
        hi += step
        if func(hi) > 0:
            return hi - step, hi
    raise CalibrationError("could not bracket the calibration root from above")


@functools.lru_cache(maxsize=256)
def _analytic_unit_sigma(epsilon: float, delta: float) -> float:
    """σ for Δ = 1 by root-finding in log μ (~0.2 ms); not post-checked (it may sit a few ulps on
    the unsafe side), so callers pass Δ·σ₁ through :func:`_make_safe_sigma`.

    Cached: it depends on (ε, δ) alone, which an online deletion service keeps fixed while Δ grows
    with every request.
    """
    log_target = math.log(delta)

    def excess(log_mu: float) -> float:  # increasing in log μ
        return _log_delta_clamped(math.exp(log_mu), epsilon) - log_target

    lo, hi = _bracket(excess, 0.0, 1.0)
    root = brentq(excess, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    return 1.0 / math.exp(root)  # may sit a few ulps on the unsafe side: _make_safe_sigma fixes it


def _satisfies(mu: float, epsilon: float, delta: float) -> bool:
    """The post-check: δ(μ, ε) ≤ δ both in the log domain and as the float gaussian_delta returns."""
    log_value = log_delta_for_mu(mu=mu, epsilon=epsilon)
    return log_value <= math.log(delta) and math.exp(log_value) <= delta


def _make_safe_sigma(sigma: float, epsilon: float, delta: float, sensitivity: float) -> float:
    """Nudge σ upwards until the exact (ε, δ) inequality holds for the value actually returned."""
    for _ in range(10_000):
        if _satisfies(sensitivity / sigma, epsilon, delta):
            return sigma
        sigma = math.nextafter(sigma, math.inf) * (1.0 + 1e-15)
    raise CalibrationError(
        f"post-check failed: no safe sigma found near {sigma!r} for epsilon={epsilon}, delta={delta}"
    )


def _sigma_analytic(epsilon: float, delta: float, sensitivity: float) -> float:
    unit = _analytic_unit_sigma(epsilon, delta)
    return _make_safe_sigma(unit * sensitivity, epsilon, delta, sensitivity)


def _sigma_classical(epsilon: float, delta: float, sensitivity: float) -> float:
    if epsilon >= 1.0:
        raise ConfigError(
            f"the classical Gaussian mechanism is only proven for epsilon < 1 (Dwork & Roth 2014, "
            f"Thm. A.1), got epsilon={epsilon!r}; above 1 it can add too little noise. "
            "Use method='analytic' (exact for every epsilon)."
        )
    return sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon


CALIBRATION_METHODS: dict[str, Callable[[float, float, float], float]] = {
    "analytic": _sigma_analytic,
    "classical": _sigma_classical,
}
"""Registry of σ calibrations: name -> f(epsilon, delta, sensitivity)."""


def gaussian_sigma(
    *, epsilon: float, delta: float, sensitivity: float = 1.0, method: str = "analytic"
) -> float:
    """Return the noise σ that makes the Gaussian mechanism (ε, δ)-DP at L2 sensitivity Δ.

    Args:
        epsilon: Target ε (> 0).
        delta: Target δ, in (0, 1).
        sensitivity: L2 sensitivity Δ of the released quantity (> 0), e.g. an unlearning error bound.
        method: ``"analytic"`` (exact, Balle & Wang 2018; smallest valid σ) or ``"classical"``
            (Dwork & Roth; only for ε < 1, always larger).

    Returns:
        σ such that N(0, σ²I) added to a Δ-sensitive quantity is (ε, δ)-DP. For ``"analytic"``
        the exact inequality is post-checked on the returned float.

    Raises:
        ConfigError: ε ≤ 0, δ ∉ (0, 1), Δ ≤ 0, non-finite input, unknown method, or classical
            with ε ≥ 1.

    Example:
        >>> round(gaussian_sigma(epsilon=0.5, delta=1e-5), 4)
        7.0318
        >>> round(gaussian_sigma(epsilon=0.5, delta=1e-5, method="classical"), 3)
        9.69
    """
    epsilon = check_positive("epsilon", epsilon)
    delta = check_open_unit("delta", delta)
    sensitivity = check_positive("sensitivity", sensitivity)
    method = check_choice("method", method, CALIBRATION_METHODS)
    return CALIBRATION_METHODS[method](epsilon, delta, sensitivity)


def gaussian_epsilon(*, sigma: float, delta: float, sensitivity: float = 1.0) -> float:
    """Return the smallest ε for which noise σ gives (ε, δ)-DP at sensitivity Δ (exact inverse).

    Args:
        sigma: Noise standard deviation (> 0).
        delta: δ in (0, 1).
        sensitivity: L2 sensitivity Δ (> 0).

    Returns:
        ε ≥ 0, on the safe (larger) side of the root; 0.0 when even ε = 0 satisfies δ.

    Example:
        >>> round(gaussian_epsilon(sigma=3.7306, delta=1e-5), 4)
        1.0
    """
    sigma = check_positive("sigma", sigma)
    delta = check_open_unit("delta", delta)
    sensitivity = check_positive("sensitivity", sensitivity)
    mu = sensitivity / sigma
    log_target = math.log(delta)

    def excess(epsilon: float) -> float:  # decreasing in ε
        return _log_delta_clamped(mu, epsilon) - log_target

    if excess(0.0) <= 0:
        return 0.0
    hi = 1.0
    for _ in range(_MAX_BRACKET_STEPS):
        if excess(hi) <= 0:
            break
        hi *= 2.0
    else:
        raise CalibrationError(f"epsilon for sigma={sigma!r}, delta={delta!r} exceeds 2**200")
    root = brentq(excess, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    while not _satisfies(mu, root, delta):
        root = math.nextafter(root, math.inf) * (1.0 + 1e-15)
    return root
