r"""Empirical ε lower bounds from membership scores: Clopper–Pearson, GDP-μ and the one-run audit.

**Hypothesis-testing bound.** Any test of "z in" against "z out" on an (ε, δ)-DP mechanism obeys
``FPR + e^ε FNR >= 1 − δ`` and ``FNR + e^ε FPR >= 1 − δ`` (Kairouz, Oh & Viswanath, ICML 2015;
used for auditing by Jagielski, Ullman & Oprea, NeurIPS 2020, and Nasr et al., IEEE S&P 2021),
hence::

    ε_lb = max{ ln((1 − δ − FNR_ub) / FPR_ub),  ln((1 − δ − FPR_ub) / FNR_ub) }

where a threshold τ declares ``score >= τ`` a member and ``FPR_ub``, ``FNR_ub`` are **one-sided
Clopper–Pearson upper bounds**. The bound holds with probability >= 1 − α when every bound is
taken at level ``α / (2 · n_thresholds)`` (Bonferroni over both rates and every threshold tried).
Jagielski et al.'s reference code ignores δ and takes the best threshold without correction: not
reproduced here.

**Conservative readings (stated so they can be checked).**

1. ``alpha`` is the error of the whole bound, so a single threshold uses one-sided 1 − α/2 bounds
   on each rate. Computed with one-sided 95% bounds on each rate — ``alpha = 0.10`` here — a
   perfect attack's caps are 3.49, 5.81, 8.11, 10.42 at n = 100, 1 000, 10 000, 100 000 per class
   (δ = 1e-5) and the worked example below (n = 1000, 1 FP, 500 FN: FPR_ub 0.0047, FNR_ub 0.526)
   gives 4.61; at ``alpha = 0.05`` the same cases give 3.28, 5.60, 7.90, 10.21 and 4.43 (all
   pinned in ``tests/audit/test_epsilon.py``).
2. Thresholds read off the scores (``"all"``, ``"hull"``, an int) are chosen *from the data*, so
   Bonferroni over only the thresholds kept would not be valid. The correction therefore counts
   ``max(thresholds tried, max(n_in, n_out))`` thresholds: for n Bernoulli draws a one-sided
   Clopper–Pearson bound can fail at only n count values, and because both the empirical and the
   true rates are monotone in τ, a union over those n events makes the bound hold **uniformly over
   every τ ∈ ℝ** — whichever threshold the data picked. Thresholds fixed in advance (an array, e.g.
   chosen on a held-out split) are corrected by their number only.
3. GDP: each threshold is tested in both directions (``score >= τ`` and ``score < τ`` declare a
   member), each with its own Clopper–Pearson bounds, so four one-sided bounds per threshold at
   ``α / (4 · n_thresholds)``.

**cap** is the largest ε the same audit could have shown at its sample sizes (perfect separation,
0 FP and 0 FN, same correction): an audit can only refute claims below the cap (about ln n).

**GDP-μ** (Nasr et al. 2023): ``μ_lb = Φ⁻¹(1 − FPR_ub) − Φ⁻¹(FNR_ub)``, maximised over thresholds and
both directions, converted to ε at δ with the exact Gaussian trade-off
(:func:`certunlearn.certify.gaussian.gaussian_epsilon`). Never the |μ| shortcut (null scores give
ε ≈ 3.5 with it; jax_privacy PR #270).

**One run** (Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS
2023): :func:`one_run_epsilon`.

The NeurIPS 2023 unlearning challenge's per-example ε and score (point estimates, no intervals)
are in :mod:`certunlearn.audit.unlearning_challenge`.

Example:
    >>> bound = epsilon_from_counts(fp=1, fn=500, n_out=1000, n_in=1000, delta=1e-5, alpha=0.10)
    >>> round(bound.fpr_ub, 4), round(bound.fnr_ub, 3), round(bound.epsilon, 2)
    (0.0047, 0.526, 4.61)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, ndtri
from scipy.stats import binom

from certunlearn.audit.metrics import _check_scores, _cp_lower, _cp_upper, roc_curve
from certunlearn.certify.gaussian import gaussian_epsilon, log_delta_for_mu
from certunlearn.errors import ConfigError
from certunlearn.report.entries import BoundEntry
from certunlearn.validation import check_int, check_open_unit, check_real

__all__ = [
    "CP_DIRECTIONS",
    "EPSILON_METHODS",
    "GDP_DIRECTIONS",
    "THRESHOLD_MODES",
    "EpsilonBound",
    "epsilon_from_counts",
    "epsilon_lower_bound",
    "gdp_mu_lower_bound",
    "one_run_epsilon",
]

CP_DIRECTIONS = {
    "in-out": "P_in(S) <= e^eps P_out(S) + delta: eps >= ln((1 - delta - FNR_ub) / FPR_ub)",
    "out-in": "P_out(S^c) <= e^eps P_in(S^c) + delta: eps >= ln((1 - delta - FPR_ub) / FNR_ub)",
}
"""Directions of the Clopper–Pearson bound (S = {score >= threshold} is the member region)."""

GDP_DIRECTIONS = {
    "higher-member": "score >= threshold declares a member",
    "lower-member": "score < threshold declares a member (the reversed test, its own bounds)",
}
"""Directions of the GDP bound."""

EPSILON_METHODS = ("clopper-pearson", "gdp")
"""Values of ``EpsilonBound.method``."""

THRESHOLD_MODES = ("all", "hull", "grid", "fixed")
"""Values of ``EpsilonBound.threshold_mode`` (``"grid"``: an int; ``"fixed"``: given thresholds)."""

_MAX_NUDGES = 100_000


@dataclass(frozen=True, slots=True)
class EpsilonBound:
    """An empirical lower bound on ε, with the numbers needed to check and report it.

    Attributes:
        epsilon: The lower bound (>= 0), valid with probability >= 1 − alpha.
        cap: Largest ε this audit could have shown at its sample sizes and correction (0 FP, 0 FN).
        threshold: The maximising threshold (``score >= threshold`` ⇒ member; for GDP direction
            ``"lower-member"``, ``score < threshold``); None when computed from counts.
        fpr_ub: One-sided Clopper–Pearson upper bound on the FPR of the maximising test.
        fnr_ub: One-sided Clopper–Pearson upper bound on its FNR.
        direction: Which inequality or test gave the maximum (:data:`CP_DIRECTIONS` or
            :data:`GDP_DIRECTIONS`).
        n_in: Number of members (positives).
        n_out: Number of non-members (negatives).
        method: ``"clopper-pearson"`` or ``"gdp"``.
        delta: The δ of the bound.
        alpha: Overall error probability.
        n_thresholds: Thresholds counted by the Bonferroni correction.
        threshold_mode: ``"all"``, ``"hull"``, ``"grid"`` or ``"fixed"``.
        mu: GDP lower bound μ_lb (method ``"gdp"`` only, else None).
    """

    epsilon: float
    cap: float
    threshold: float | None
    fpr_ub: float
    fnr_ub: float
    direction: str
    n_in: int
    n_out: int
    method: str
    delta: float
    alpha: float
    n_thresholds: int
    threshold_mode: str = "fixed"
    mu: float | None = None

    def __post_init__(self) -> None:
        epsilon = check_real("epsilon", self.epsilon)
        cap = check_real("cap", self.cap)
        if epsilon < 0:
            raise ConfigError(f"epsilon must be >= 0, got {self.epsilon!r}")
        if cap < epsilon * (1.0 - 1e-12):
            raise ConfigError(f"cap {cap!r} must be >= epsilon {epsilon!r}")
        if self.method not in EPSILON_METHODS:
            raise ConfigError(
                f"method must be one of {sorted(EPSILON_METHODS)}, got {self.method!r}"
            )
        directions = CP_DIRECTIONS if self.method == "clopper-pearson" else GDP_DIRECTIONS
        if self.direction not in directions:
            raise ConfigError(
                f"direction must be one of {sorted(directions)} for method {self.method!r}, "
                f"got {self.direction!r}"
            )
        for name in ("fpr_ub", "fnr_ub"):
            value = check_real(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        if self.threshold is not None and (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, (int, float))
            or math.isnan(self.threshold)
        ):
            raise ConfigError(
                f"threshold must be a real number (±inf allowed) or None, got {self.threshold!r}"
            )
        check_int("n_in", self.n_in, minimum=1)
        check_int("n_out", self.n_out, minimum=1)
        check_int("n_thresholds", self.n_thresholds, minimum=1)
        if not 0.0 <= check_real("delta", self.delta) < 1.0:
            raise ConfigError(f"delta must be in [0, 1), got {self.delta!r}")
        check_open_unit("alpha", self.alpha)
        if self.threshold_mode not in THRESHOLD_MODES:
            raise ConfigError(
                f"threshold_mode must be one of {sorted(THRESHOLD_MODES)}, got {self.threshold_mode!r}"
            )
        if (self.mu is None) != (self.method == "clopper-pearson"):
            raise ConfigError("mu must be given for method 'gdp' and only for it")
        if self.mu is not None and check_real("mu", self.mu) < 0:
            raise ConfigError(f"mu must be >= 0, got {self.mu!r}")

    def refutes(self, claimed_epsilon: float) -> bool:
        """Whether this audit refutes a claimed ε (at confidence 1 − alpha): ``epsilon > claimed``.

        Example:
            >>> epsilon_from_counts(fp=0, fn=0, n_out=1000, n_in=1000).refutes(1.0)
            True
        """
        return self.epsilon > check_real("claimed_epsilon", claimed_epsilon)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (an infinite threshold is written as ``"inf"``).

        Example:
            >>> sorted(epsilon_from_counts(fp=0, fn=0, n_out=10, n_in=10).as_dict())[:3]
            ['alpha', 'cap', 'delta']
        """
        threshold: float | str | None = self.threshold
        if threshold is not None and math.isinf(threshold):
            threshold = "inf" if threshold > 0 else "-inf"
        return {
            "epsilon": self.epsilon,
            "cap": self.cap,
            "threshold": threshold,
            "fpr_ub": self.fpr_ub,
            "fnr_ub": self.fnr_ub,
            "direction": self.direction,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "method": self.method,
            "delta": self.delta,
            "alpha": self.alpha,
            "n_thresholds": self.n_thresholds,
            "threshold_mode": self.threshold_mode,
            "mu": self.mu,
        }

    def report_entry(self, *, source: str | None = None, correction: str | None = None) -> BoundEntry:
        """This bound as an empirical bound of a compliance report (:class:`~certunlearn.report.entries.BoundEntry`).

        Args:
            source: Where it comes from (None: the report names it by position, ``empirical[i]``).
            correction: The multiple-testing correction behind it, if any.

        Example:
            >>> entry = epsilon_from_counts(fp=0, fn=0, n_out=10, n_in=10).report_entry(source="audit")
            >>> entry.source, entry.method, entry.n_members, entry.epsilon_lb == entry.cap
            ('audit', 'clopper-pearson', 10, True)
        """
        return BoundEntry(source=source, method=self.method, epsilon_lb=self.epsilon, cap=self.cap,
                          alpha=self.alpha, delta=self.delta, n_members=self.n_in, n_non_members=self.n_out,
                          correction=correction, mu=self.mu)


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------


def _check_delta(delta: object, *, allow_zero: bool) -> float:
    value = check_real("delta", delta)
    if not (0.0 <= value < 1.0 if allow_zero else 0.0 < value < 1.0):
        allowed = "[0, 1)" if allow_zero else "(0, 1)"
        raise ConfigError(f"delta must be in {allowed}, got {delta!r}")
    return value


def _cp_epsilons(
    fpr_ub: np.ndarray, fnr_ub: np.ndarray, delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """(in-out, out-in) ε candidates; −inf where the numerator is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        in_out = np.where(
            1.0 - delta - fnr_ub > 0, np.log(1.0 - delta - fnr_ub) - np.log(fpr_ub), -np.inf
        )
        out_in = np.where(
            1.0 - delta - fpr_ub > 0, np.log(1.0 - delta - fpr_ub) - np.log(fnr_ub), -np.inf
        )
    return in_out, out_in


def _cp_bound_at_counts(
    fp: np.ndarray, fn: np.ndarray, n_out: int, n_in: int, delta: float, level: float
) -> tuple[float, int, str, float, float]:
    """Best (ε, index, direction, fpr_ub, fnr_ub) over candidate counts at per-bound ``level``."""
    fpr_ub = _cp_upper(fp, n_out, level)
    fnr_ub = _cp_upper(fn, n_in, level)
    in_out, out_in = _cp_epsilons(fpr_ub, fnr_ub, delta)
    i_in_out, i_out_in = int(np.argmax(in_out)), int(np.argmax(out_in))
    if in_out[i_in_out] >= out_in[i_out_in]:
        best, index, direction = in_out[i_in_out], i_in_out, "in-out"
    else:
        best, index, direction = out_in[i_out_in], i_out_in, "out-in"
    return max(0.0, float(best)), index, direction, float(fpr_ub[index]), float(fnr_ub[index])


def _upper_hull(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """Indices of the ROC points on its upper convex hull (monotone chain; input sorted by fpr)."""
    hull: list[int] = []
    for index in range(fpr.size):
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            cross = (fpr[a] - fpr[o]) * (tpr[index] - tpr[o]) - (tpr[a] - tpr[o]) * (
                fpr[index] - fpr[o]
            )
            if cross >= 0:  # a is not strictly above the chord o → index
                hull.pop()
            else:
                break
        hull.append(index)
    return np.asarray(hull, dtype=np.int64)


def _candidate_counts(
    members: np.ndarray, non_members: np.ndarray, thresholds: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, str]:
    """(threshold values, false positives, false negatives, Bonferroni count, mode)."""
    n_in, n_out = members.size, non_members.size
    data_floor = max(n_in, n_out)  # uniform-over-τ correction for data-chosen thresholds
    if isinstance(thresholds, str):
        if thresholds not in ("all", "hull"):
            raise ConfigError(
                f"thresholds must be 'all', 'hull', a positive int or an array of thresholds, got {thresholds!r}"
            )
        roc = roc_curve(members, non_members)
        keep = np.arange(roc.thresholds.size)
        if thresholds == "hull":
            keep = _upper_hull(roc.fpr, roc.tpr)
        return (
            roc.thresholds[keep],
            roc.false_positives[keep],
            roc.n_in - roc.true_positives[keep],
            max(keep.size, data_floor),
            thresholds,
        )
    if isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool):
        count = check_int("thresholds", thresholds, minimum=1)
        roc = roc_curve(members, non_members)
        keep = np.unique(np.round(np.linspace(0, roc.thresholds.size - 1, count)).astype(np.int64))
        return (
            roc.thresholds[keep],
            roc.false_positives[keep],
            roc.n_in - roc.true_positives[keep],
            max(count, data_floor),
            "grid",
        )
    values = np.asarray(thresholds)
    if values.dtype == np.bool_ or not (
        np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)
    ):
        raise ConfigError(
            f"thresholds must be 'all', 'hull', a positive int or an array of thresholds, got {thresholds!r}"
        )
    values = np.unique(values.astype(np.float64).ravel())
    if values.size == 0 or np.any(np.isnan(values)):
        raise ConfigError("an explicit thresholds array must be non-empty and free of NaN")
    fp = non_members.size - np.searchsorted(np.sort(non_members), values, side="left")
    fn = np.searchsorted(np.sort(members), values, side="left")
    return values, fp, fn, values.size, "fixed"


# ---------------------------------------------------------------------------------------------
# Clopper–Pearson ε lower bound
# ---------------------------------------------------------------------------------------------


def epsilon_from_counts(
    *,
    fp: int,
    fn: int,
    n_out: int,
    n_in: int,
    delta: float = 1e-5,
    alpha: float = 0.05,
    n_thresholds: int = 1,
) -> EpsilonBound:
    """ε lower bound of one test from its error counts (threshold fixed before seeing the data).

    ``ε_lb = max{ln((1 − δ − FNR_ub)/FPR_ub), ln((1 − δ − FPR_ub)/FNR_ub)}`` with one-sided
    Clopper–Pearson upper bounds at level ``alpha / (2 · n_thresholds)`` each; ``cap`` is the same
    with ``fp = fn = 0``. The caps and the worked example computed with one-sided 95% bounds per
    rate are reproduced at ``alpha = 0.10`` (see the module docstring).

    Args:
        fp: Non-members declared members (false positives), ``0 <= fp <= n_out``.
        fn: Members declared non-members (false negatives), ``0 <= fn <= n_in``.
        n_out: Number of non-members tested (>= 1).
        n_in: Number of members tested (>= 1).
        delta: δ of the claim being tested, in [0, 1).
        alpha: Overall error probability, in (0, 1).
        n_thresholds: Number of thresholds this test is one of (Bonferroni), >= 1.

    Returns:
        :class:`EpsilonBound` with ``threshold=None`` and ``method="clopper-pearson"``.

    Raises:
        ConfigError: Out-of-range arguments.

    Example:
        >>> round(epsilon_from_counts(fp=0, fn=0, n_out=100, n_in=100, alpha=0.10).epsilon, 2)
        3.49
        >>> round(epsilon_from_counts(fp=0, fn=0, n_out=100, n_in=100, alpha=0.05).epsilon, 2)
        3.28
    """
    n_out = check_int("n_out", n_out, minimum=1)
    n_in = check_int("n_in", n_in, minimum=1)
    fp = check_int("fp", fp, minimum=0)
    fn = check_int("fn", fn, minimum=0)
    if fp > n_out:
        raise ConfigError(f"fp must be <= n_out={n_out}, got {fp}")
    if fn > n_in:
        raise ConfigError(f"fn must be <= n_in={n_in}, got {fn}")
    delta = _check_delta(delta, allow_zero=True)
    alpha = check_open_unit("alpha", alpha)
    n_thresholds = check_int("n_thresholds", n_thresholds, minimum=1)
    level = alpha / (2.0 * n_thresholds)
    epsilon, _, direction, fpr_ub, fnr_ub = _cp_bound_at_counts(
        np.array([fp]), np.array([fn]), n_out, n_in, delta, level
    )
    cap = _cp_bound_at_counts(np.array([0]), np.array([0]), n_out, n_in, delta, level)[0]
    return EpsilonBound(
        epsilon=epsilon,
        cap=cap,
        threshold=None,
        fpr_ub=fpr_ub,
        fnr_ub=fnr_ub,
        direction=direction,
        n_in=n_in,
        n_out=n_out,
        method="clopper-pearson",
        delta=delta,
        alpha=alpha,
        n_thresholds=n_thresholds,
        threshold_mode="fixed",
    )


def _threshold_counts(scores_in: object, scores_out: object, thresholds: object) -> tuple[Any, ...]:
    """Checked scores → (thresholds, FP and FN counts, n_thresholds for the correction, mode, n_in, n_out)."""
    members = _check_scores("scores_in", scores_in)
    non_members = _check_scores("scores_out", scores_out)
    values, fp, fn, n_thresholds, mode = _candidate_counts(members, non_members, thresholds)
    return values, fp, fn, n_thresholds, mode, members.size, non_members.size


def epsilon_lower_bound(
    scores_in: object,
    scores_out: object,
    *,
    delta: float = 1e-5,
    alpha: float = 0.05,
    thresholds: str | int | Sequence[float] | np.ndarray = "all",
) -> EpsilonBound:
    """Empirical ε lower bound from membership scores (Clopper–Pearson + Bonferroni), both directions.

    Every candidate threshold τ declares ``score >= τ`` a member; FPR and FNR get one-sided
    Clopper–Pearson upper bounds at ``alpha / (2 · n_thresholds)``; the bound is the largest
    ``max{ln((1−δ−FNR_ub)/FPR_ub), ln((1−δ−FPR_ub)/FNR_ub)}`` over candidates, floored at 0.
    Only the convention's test (``score >= τ`` declares a member) is evaluated, under both
    inequalities of the hypothesis-testing bound: an attack whose members score *lower* gives 0
    here — negate its scores (:func:`gdp_mu_lower_bound` tries both tests).

    Args:
        scores_in: Membership scores of members ``[n_in]`` (higher = member).
        scores_out: Membership scores of non-members ``[n_out]``.
        delta: δ of the claim, in [0, 1).
        alpha: Overall error probability, in (0, 1).
        thresholds: ``"all"`` (every distinct score), ``"hull"`` (vertices of the ROC's upper
            convex hull), an int K (K thresholds evenly spaced along the ROC) — all three chosen
            from the data and corrected for ``max(K, n_in, n_out)`` thresholds, see the module
            docstring — or an array of thresholds **fixed before seeing these scores** (corrected
            for their number only).

    Returns:
        :class:`EpsilonBound` (``method="clopper-pearson"``).

    Raises:
        InputError: Empty, non-1-D or non-finite scores.
        ConfigError: Out-of-range ``delta``/``alpha``/``thresholds``.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> bound = epsilon_lower_bound(rng.normal(4, 1, 1000), rng.normal(0, 1, 1000), delta=1e-5)
        >>> round(bound.epsilon, 2), round(bound.cap, 2), bound.direction
        (4.16, 4.48, 'in-out')
    """
    delta = _check_delta(delta, allow_zero=True)
    alpha = check_open_unit("alpha", alpha)
    values, fp, fn, n_thresholds, mode, n_in, n_out = _threshold_counts(scores_in, scores_out, thresholds)
    level = alpha / (2.0 * n_thresholds)
    epsilon, index, direction, fpr_ub, fnr_ub = _cp_bound_at_counts(
        fp, fn, n_out, n_in, delta, level
    )
    cap = _cp_bound_at_counts(np.array([0]), np.array([0]), n_out, n_in, delta, level)[0]
    return EpsilonBound(
        epsilon=epsilon,
        cap=cap,
        threshold=float(values[index]),
        fpr_ub=fpr_ub,
        fnr_ub=fnr_ub,
        direction=direction,
        n_in=n_in,
        n_out=n_out,
        method="clopper-pearson",
        delta=delta,
        alpha=alpha,
        n_thresholds=n_thresholds,
        threshold_mode=mode,
    )


# ---------------------------------------------------------------------------------------------
# GDP-μ lower bound
# ---------------------------------------------------------------------------------------------


def _epsilon_from_mu(mu: float, delta: float) -> float:
    """ε of μ-GDP at δ, rounded *down* (a lower bound must not exceed the exact root)."""
    if mu <= 0.0:
        return 0.0
    epsilon = gaussian_epsilon(sigma=1.0, delta=delta, sensitivity=mu)  # safe side: >= root
    log_delta = math.log(delta)
    for _ in range(_MAX_NUDGES):
        if epsilon <= 0.0 or log_delta_for_mu(mu=mu, epsilon=epsilon) > log_delta:
            break
        epsilon = math.nextafter(epsilon, 0.0) * (1.0 - 1e-15)
    return max(0.0, epsilon)


def _gdp_mus(
    fp: np.ndarray, fn: np.ndarray, n_out: int, n_in: int, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """μ candidates of both tests and the (FPR_ub, FNR_ub) pairs behind them."""
    fpr_ub, fnr_ub = _cp_upper(fp, n_out, level), _cp_upper(fn, n_in, level)
    fpr_lb, fnr_lb = _cp_lower(fp, n_out, level), _cp_lower(fn, n_in, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        forward = -ndtri(fpr_ub) - ndtri(fnr_ub)  # Φ⁻¹(1 − FPR_ub) − Φ⁻¹(FNR_ub)
        # reversed test: FPR' = 1 − FPR, FNR' = 1 − FNR, so FPR'_ub = 1 − FPR_lb, FNR'_ub = 1 − FNR_lb
        reverse = ndtri(fpr_lb) + ndtri(fnr_lb)  # Φ⁻¹(FPR_lb) − Φ⁻¹(1 − FNR_lb)
    forward = np.nan_to_num(forward, nan=-np.inf)
    reverse = np.nan_to_num(reverse, nan=-np.inf)
    return forward, reverse, fpr_ub, fnr_ub, 1.0 - fpr_lb, 1.0 - fnr_lb


def gdp_mu_lower_bound(
    scores_in: object,
    scores_out: object,
    *,
    delta: float = 1e-5,
    alpha: float = 0.05,
    thresholds: str | int | Sequence[float] | np.ndarray = "all",
) -> EpsilonBound:
    """GDP-μ lower bound (Nasr et al. 2023, arXiv 2302.07956) converted to ε at δ.

    For each threshold and each direction of the test (``score >= τ`` or ``score < τ`` declares a
    member), ``μ = Φ⁻¹(1 − FPR_ub) − Φ⁻¹(FNR_ub)`` with that test's own one-sided Clopper–Pearson
    upper bounds at ``alpha / (4 · n_thresholds)`` (two rates × two directions); ``μ_lb`` is the
    maximum (floored at 0) and ``ε`` solves ``δ = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)`` via
    :func:`certunlearn.certify.gaussian.gaussian_epsilon`, rounded down. The bound assumes the
    mechanism's trade-off curve is Gaussian (as for DP-SGD); it is tighter than
    :func:`epsilon_lower_bound` for such mechanisms but not a distribution-free guarantee.

    Args:
        scores_in: Membership scores of members ``[n_in]``.
        scores_out: Membership scores of non-members ``[n_out]``.
        delta: δ at which ε is reported, in (0, 1).
        alpha: Overall error probability, in (0, 1).
        thresholds: As for :func:`epsilon_lower_bound`.

    Returns:
        :class:`EpsilonBound` with ``method="gdp"`` and ``mu``; ``cap`` and its μ are those of a
        perfect attack under the same correction.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> bound = gdp_mu_lower_bound(rng.normal(4, 1, 1000), rng.normal(0, 1, 1000), delta=1e-5)
        >>> round(bound.mu, 2), round(bound.epsilon, 2), bound.direction
        (3.27, 18.65, 'higher-member')
    """
    delta = _check_delta(delta, allow_zero=False)
    alpha = check_open_unit("alpha", alpha)
    values, fp, fn, n_thresholds, mode, n_in, n_out = _threshold_counts(scores_in, scores_out, thresholds)
    level = alpha / (4.0 * n_thresholds)
    forward, reverse, fpr_ub, fnr_ub, rev_fpr_ub, rev_fnr_ub = _gdp_mus(fp, fn, n_out, n_in, level)
    i_forward, i_reverse = int(np.argmax(forward)), int(np.argmax(reverse))
    if forward[i_forward] >= reverse[i_reverse]:
        mu, index, direction = forward[i_forward], i_forward, "higher-member"
        best_fpr_ub, best_fnr_ub = fpr_ub[index], fnr_ub[index]
    else:
        mu, index, direction = reverse[i_reverse], i_reverse, "lower-member"
        best_fpr_ub, best_fnr_ub = rev_fpr_ub[index], rev_fnr_ub[index]
    mu = max(0.0, float(mu))
    cap_mu = float(_gdp_mus(np.array([0]), np.array([0]), n_out, n_in, level)[0][0])
    return EpsilonBound(
        epsilon=_epsilon_from_mu(mu, delta),
        cap=_epsilon_from_mu(max(cap_mu, mu), delta),
        threshold=float(values[index]),
        fpr_ub=float(best_fpr_ub),
        fnr_ub=float(best_fnr_ub),
        direction=direction,
        n_in=n_in,
        n_out=n_out,
        method="gdp",
        delta=delta,
        alpha=alpha,
        n_thresholds=n_thresholds,
        threshold_mode=mode,
        mu=mu,
    )


# ---------------------------------------------------------------------------------------------
# One-run audit (Steinke, Nasr, Jagielski, NeurIPS 2023)
# ---------------------------------------------------------------------------------------------


def _one_run_p_value(epsilon: float, m: int, r: int, v: int, delta: float) -> float:
    """p(ε, δ) = P[Bin(r,q) >= v] + 2mδ · max_{i=1..v} P[v−i <= Bin(r,q) < v]/i, q = e^ε/(1+e^ε)."""
    q = float(expit(epsilon))
    tail = float(binom.sf(v - 1, r, q))
    if delta == 0.0 or v == 0:
        return min(1.0, tail)
    i = np.arange(1, v + 1)
    window = binom.sf(v - i - 1, r, q) - tail
    return min(1.0, tail + 2.0 * m * delta * float(np.max(window / i)))


def one_run_epsilon(*, m: int, r: int, v: int, delta: float = 0.0, p0: float = 0.05) -> float:
    """ε lower bound of a one-run audit (Steinke, Nasr & Jagielski, NeurIPS 2023).

    ``m`` canaries are each included with probability ½; the auditor makes ``r`` guesses of which
    were included and ``v`` are correct. With ``q = e^ε/(1 + e^ε)``::

        p(ε, δ) = P[Bin(r, q) >= v] + 2mδ · max_{i=1..v} P[v − i <= Bin(r, q) < v] / i

    and the bound is the largest ε with ``p(ε, δ) < p0`` (p is increasing in ε; the returned value
    is on the side where ``p < p0`` holds). Taking the best of several guess sets is itself a
    multiple comparison: correct ``p0`` for it.

    Args:
        m: Number of canaries (>= 1).
        r: Number of guesses, ``0 <= r <= m``.
        v: Number of correct guesses, ``0 <= v <= r``.
        delta: δ of the claim, in [0, 1).
        p0: Significance level, in (0, 1).

    Returns:
        ε_lb >= 0 (0 when even ε = 0 cannot be rejected).

    Example:
        >>> round(one_run_epsilon(m=1000, r=100, v=100), 2)
        3.49
        >>> round(one_run_epsilon(m=1000, r=100, v=100, delta=1e-5), 2)
        3.47
    """
    m = check_int("m", m, minimum=1)
    r = check_int("r", r, minimum=0)
    v = check_int("v", v, minimum=0)
    if r > m:
        raise ConfigError(f"r must be <= m={m}, got {r}")
    if v > r:
        raise ConfigError(f"v must be <= r={r}, got {v}")
    delta = _check_delta(delta, allow_zero=True)
    p0 = check_open_unit("p0", p0)
    if r == 0 or _one_run_p_value(0.0, m, r, v, delta) >= p0:
        return 0.0

    def excess(epsilon: float) -> float:
        return _one_run_p_value(epsilon, m, r, v, delta) - p0

    low, high = 0.0, 1.0
    while excess(high) < 0:
        low, high = high, 2.0 * high
        if high > 1e4:
            raise ConfigError(f"one-run bound exceeds 1e4 for m={m}, r={r}, v={v}, delta={delta}")
    for _ in range(200):  # bisection keeping excess(low) < 0 <= excess(high)
        mid = 0.5 * (low + high)
        if mid in (low, high):
            break
        if excess(mid) < 0:
            low = mid
        else:
            high = mid
    return low
