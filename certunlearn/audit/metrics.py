r"""Attack metrics from membership scores: ROC, AUC, TPR@FPR and their intervals (docs/auditing.md).

Members are the positive class and **a higher score means "more likely member"**; a threshold τ
declares every example with ``score >= τ`` a member (scikit-learn's convention). The ROC keeps one
point per distinct score (ties move together, exactly as ``sklearn.metrics.roc_curve`` with
``drop_intermediate=False``), starting at ``(0, 0)`` with threshold ``+inf``.

* **AUC** — trapezoidal area under that ROC (= P[s_in > s_out] + ½ P[s_in = s_out]); its band is a
  stratified **bootstrap percentile interval, an estimate and not a guarantee**.
* **Balanced accuracy** ``max_τ 1 − (FPR_τ + FNR_τ)/2`` and **advantage** (Yeom et al. 2018)
  ``max_τ |TPR_τ − FPR_τ|``.
* **TPR@FPR = x** — the TPR at the *last ROC point with fpr <= x* (:data:`TPR_CONVENTION`; other
  code uses ``fpr < x`` or interpolates on the convex hull). It needs about 10/x non-members to mean
  anything; each operating point carries two-sided Clopper–Pearson intervals and one-sided upper
  bounds ``Beta⁻¹(1 − α; k + 1, n − k)`` for both of its rates — the guarantee-grade numbers.

Example:
    >>> result = attack_metrics([3.0, 2.0, 2.0, 0.5], [2.0, 1.0, 0.0, -1.0], n_bootstrap=0)
    >>> result.auc, result.advantage
    (0.8125, 0.5)
    >>> result.tpr_at[0.01]
    0.25
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import betaincinv

from certunlearn.errors import ConfigError, InputError
from certunlearn.report.entries import AttackEntry, OperatingPointEntry, score_histogram, thin_roc
from certunlearn.validation import (
    check_choice,
    check_int,
    check_open_unit,
    check_real,
    check_real_array,
)

if TYPE_CHECKING:
    from certunlearn.audit.epsilon import EpsilonBound

__all__ = [
    "AUC_CI_METHOD",
    "CLOPPER_PEARSON_SIDES",
    "TPR_CONVENTION",
    "AttackMetrics",
    "OperatingPoint",
    "RocCurve",
    "attack_metrics",
    "clopper_pearson",
    "log_roc_curve",
    "roc_curve",
]

TPR_CONVENTION = "TPR at the last ROC point with fpr <= x"
"""How TPR@FPR=x is read off the empirical ROC (printed with every result)."""

AUC_CI_METHOD = "stratified bootstrap percentile interval (an estimate, not a guarantee)"
"""How ``AttackMetrics.auc_ci`` is computed."""

CLOPPER_PEARSON_SIDES = ("lower", "two", "upper")
"""Allowed ``side`` values of :func:`clopper_pearson`."""

_MIN_NONMEMBERS_PER_FPR = 10.0  # TPR@x needs about 10/x non-members (docs/auditing.md, "Conventions")
_BOOTSTRAP_BLOCK_ELEMENTS = 2_000_000  # resamples are drawn in blocks of at most this many draws


def _check_scores(name: str, scores: object) -> np.ndarray:
    """Return ``scores`` as a non-empty finite 1-D float64 array, or raise InputError."""
    return check_real_array(name, scores, ndim=1, non_empty=True)


def readonly_copy(array: object, dtype: type | None = None) -> np.ndarray:
    """A read-only copy of ``array`` (optionally cast), for arrays held by frozen results.

    Example:
        >>> readonly_copy([1, 2], np.float64).flags.writeable
        False
    """
    out = np.array(array, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


def _on_unique(
    function: Callable[[np.ndarray, int, float], np.ndarray],
) -> Callable[..., np.ndarray]:
    """Evaluate a vectorised bound once per distinct count (ROC counts repeat a lot)."""

    def wrapper(k: np.ndarray, n: int, level: float) -> np.ndarray:
        k = np.asarray(k, dtype=np.float64)
        if k.size <= 64:
            return function(k, n, level)
        unique, inverse = np.unique(k, return_inverse=True)
        return function(unique, n, level)[inverse].reshape(k.shape)

    return wrapper


@_on_unique
def _cp_upper(k: np.ndarray, n: int, level: float) -> np.ndarray:
    """One-sided upper Clopper–Pearson bound at error ``level``: Beta⁻¹(1 − level; k + 1, n − k)."""
    k = np.asarray(k, dtype=np.float64)
    full = k >= n
    safe_k = np.where(full, n - 1.0, k)
    value = betaincinv(safe_k + 1.0, n - safe_k, 1.0 - level)
    return np.where(full, 1.0, value)


@_on_unique
def _cp_lower(k: np.ndarray, n: int, level: float) -> np.ndarray:
    """One-sided lower Clopper–Pearson bound at error ``level``: Beta⁻¹(level; k, n − k + 1)."""
    k = np.asarray(k, dtype=np.float64)
    empty = k <= 0
    safe_k = np.where(empty, 1.0, k)
    value = betaincinv(safe_k, n - safe_k + 1.0, level)
    return np.where(empty, 0.0, value)


def clopper_pearson(
    k: int | Sequence[int] | np.ndarray,
    n: int,
    *,
    alpha: float = 0.05,
    side: str = "two",
) -> tuple[Any, Any]:
    """Exact (Clopper–Pearson) confidence interval for a binomial proportion k/n.

    * ``side="two"``: ``[Beta⁻¹(α/2; k, n−k+1), Beta⁻¹(1−α/2; k+1, n−k)]`` (level 1 − α);
    * ``side="upper"``: ``[0, Beta⁻¹(1−α; k+1, n−k)]`` — the one-sided upper bound used for every
      guarantee in this package;
    * ``side="lower"``: ``[Beta⁻¹(α; k, n−k+1), 1]``.

    The lower end is 0 when k = 0 and the upper end is 1 when k = n.

    Args:
        k: Number of successes (an int or an integer array), ``0 <= k <= n``.
        n: Number of trials (>= 1).
        alpha: Error probability, in (0, 1).
        side: ``"two"``, ``"upper"`` or ``"lower"``.

    Returns:
        ``(lower, upper)``: floats for a scalar ``k``, arrays shaped like ``k`` otherwise.

    Raises:
        ConfigError: ``n`` < 1, ``alpha`` outside (0, 1), unknown ``side``.
        InputError: ``k`` not integer-valued or outside ``[0, n]``.

    Example:
        >>> lo, hi = clopper_pearson(0, 100, alpha=0.05, side="upper")
        >>> lo, round(hi, 4)
        (0.0, 0.0295)
        >>> tuple(round(v, 4) for v in clopper_pearson(5, 10, alpha=0.05))
        (0.1871, 0.8129)
    """
    n = check_int("n", n, minimum=1)
    alpha = check_open_unit("alpha", alpha)
    side = check_choice("side", side, CLOPPER_PEARSON_SIDES)
    k_array = np.asarray(k)
    if k_array.dtype == np.bool_ or not (
        np.issubdtype(k_array.dtype, np.integer) or np.issubdtype(k_array.dtype, np.floating)
    ):
        raise InputError(f"k must be an integer count, got {k!r}")
    if np.any(k_array != np.round(k_array)) or np.any(k_array < 0) or np.any(k_array > n):
        raise InputError(f"k must be integer counts in [0, {n}], got {k!r}")
    level = alpha / 2.0 if side == "two" else alpha
    lower = _cp_lower(k_array, n, level) if side != "upper" else np.zeros(k_array.shape)
    upper = _cp_upper(k_array, n, level) if side != "lower" else np.ones(k_array.shape)
    if k_array.ndim == 0:
        return float(lower), float(upper)
    return lower, upper


@dataclass(frozen=True, slots=True)
class RocCurve:
    """An empirical ROC: one point per distinct threshold, in decreasing threshold order.

    Attributes:
        thresholds: ``[P]`` decreasing; ``thresholds[0] = +inf`` (nobody is declared a member).
        fpr: ``[P]`` false-positive rates ``false_positives / n_out`` (non-decreasing).
        tpr: ``[P]`` true-positive rates ``true_positives / n_in`` (non-decreasing).
        true_positives: ``[P]`` members with ``score >= threshold``.
        false_positives: ``[P]`` non-members with ``score >= threshold``.
        n_in: Number of members (positives).
        n_out: Number of non-members (negatives).
    """

    thresholds: np.ndarray
    fpr: np.ndarray
    tpr: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    n_in: int
    n_out: int

    def __post_init__(self) -> None:
        n_in = check_int("n_in", self.n_in, minimum=1)
        n_out = check_int("n_out", self.n_out, minimum=1)
        arrays = {
            "thresholds": np.asarray(self.thresholds, dtype=np.float64),
            "fpr": np.asarray(self.fpr, dtype=np.float64),
            "tpr": np.asarray(self.tpr, dtype=np.float64),
            "true_positives": np.asarray(self.true_positives, dtype=np.int64),
            "false_positives": np.asarray(self.false_positives, dtype=np.int64),
        }
        size = arrays["thresholds"].shape
        for name, array in arrays.items():
            if array.ndim != 1 or array.shape != size or array.size == 0:
                raise InputError(
                    f"RocCurve.{name} must be a non-empty 1-D array of the thresholds' shape "
                    f"{size}, got {array.shape}"
                )
        if np.any(np.diff(arrays["fpr"]) < 0) or np.any(np.diff(arrays["tpr"]) < 0):
            raise InputError("RocCurve rates must be non-decreasing")
        if np.any(np.diff(arrays["thresholds"]) >= 0):
            raise InputError("RocCurve thresholds must be strictly decreasing")
        tp, fp = arrays["true_positives"], arrays["false_positives"]
        if tp.min() < 0 or tp.max() > n_in or fp.min() < 0 or fp.max() > n_out:
            raise InputError("RocCurve counts must lie in [0, n_in] and [0, n_out]")
        for name, array in arrays.items():
            object.__setattr__(self, name, readonly_copy(array))
        object.__setattr__(self, "n_in", n_in)
        object.__setattr__(self, "n_out", n_out)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (``+inf`` threshold written as the string ``"inf"``).

        Example:
            >>> roc_curve([1.0], [0.0]).as_dict()["tpr"]
            [0.0, 1.0, 1.0]
        """
        return {
            "thresholds": ["inf" if math.isinf(t) else float(t) for t in self.thresholds.tolist()],
            "fpr": self.fpr.tolist(),
            "tpr": self.tpr.tolist(),
            "true_positives": self.true_positives.tolist(),
            "false_positives": self.false_positives.tolist(),
            "n_in": self.n_in,
            "n_out": self.n_out,
        }


def roc_curve(scores_in: object, scores_out: object) -> RocCurve:
    """Empirical ROC of membership scores, members = positives, ``score >= τ`` ⇒ member.

    Identical (thresholds, fpr, tpr) to ``sklearn.metrics.roc_curve(y, s,
    drop_intermediate=False)`` with ``y = 1`` for members: one point per distinct score value (tied
    members and non-members cross the threshold together), preceded by ``(0, 0)`` at ``+inf``.

    Args:
        scores_in: Scores of members ``[n_in]`` (finite).
        scores_out: Scores of non-members ``[n_out]`` (finite).

    Returns:
        The :class:`RocCurve`.

    Raises:
        InputError: Empty, non-1-D or non-finite scores.

    Example:
        >>> roc = roc_curve([2.0, 1.0], [1.0, 0.0])
        >>> roc.thresholds.tolist(), roc.fpr.tolist(), roc.tpr.tolist()
        ([inf, 2.0, 1.0, 0.0], [0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    members = _check_scores("scores_in", scores_in)
    non_members = _check_scores("scores_out", scores_out)
    scores = np.concatenate([members, non_members])
    is_member = np.concatenate(
        [np.ones(members.size, np.int64), np.zeros(non_members.size, np.int64)]
    )
    order = np.argsort(-scores, kind="mergesort")
    scores, is_member = scores[order], is_member[order]
    last_of_value = np.flatnonzero(np.diff(scores)) if scores.size > 1 else np.array([], np.int64)
    ends = np.concatenate([last_of_value, [scores.size - 1]])
    true_positives = np.cumsum(is_member)[ends]
    false_positives = ends + 1 - true_positives
    true_positives = np.concatenate([[0], true_positives])
    false_positives = np.concatenate([[0], false_positives])
    return RocCurve(
        thresholds=np.concatenate([[np.inf], scores[ends]]),
        fpr=false_positives / non_members.size,
        tpr=true_positives / members.size,
        true_positives=true_positives,
        false_positives=false_positives,
        n_in=members.size,
        n_out=non_members.size,
    )


def log_roc_curve(roc: RocCurve, *, floor: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """ROC rates clipped to ``[floor, 1]`` for a log-log plot (axes 1e-5 … 1, as in Carlini et al., S&P 2022).

    Args:
        roc: The curve from :func:`roc_curve`.
        floor: Smallest plotted rate, in (0, 1).

    Returns:
        ``(fpr, tpr)`` float64 arrays with zeros raised to ``floor``.

    Example:
        >>> fpr, tpr = log_roc_curve(roc_curve([2.0, 1.0], [1.0, 0.0]))
        >>> fpr.tolist()
        [1e-05, 1e-05, 0.5, 1.0]
    """
    if not isinstance(roc, RocCurve):
        raise InputError(f"roc must be a RocCurve, got {type(roc).__name__}")
    floor = check_open_unit("floor", floor)
    return np.clip(roc.fpr, floor, 1.0), np.clip(roc.tpr, floor, 1.0)


def _auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def _bootstrap_auc(
    members: np.ndarray,
    non_members: np.ndarray,
    *,
    n_bootstrap: int,
    alpha: float,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Percentile interval of the AUC over stratified resamples (members and non-members apart).

    Each resample's AUC is Σ_i w_i [#(out < x_i) + ½ #(out = x_i)] / (n_in n_out) with multinomial
    weights w on the members and resampled non-member counts read off a cumulative sum over the
    sorted non-member scores: O(n) per resample, exact with ties.
    """
    n_in, n_out = members.size, non_members.size
    sorted_out = np.sort(non_members)
    below = np.searchsorted(sorted_out, members, side="left")
    at_or_below = np.searchsorted(sorted_out, members, side="right")
    block = max(1, _BOOTSTRAP_BLOCK_ELEMENTS // (n_in + n_out))
    values = np.empty(n_bootstrap)
    done = 0
    while done < n_bootstrap:
        size = min(block, n_bootstrap - done)
        offsets = np.arange(size)[:, None]
        draws_out = rng.integers(0, n_out, size=(size, n_out)) + offsets * n_out
        counts_out = np.bincount(draws_out.ravel(), minlength=size * n_out).reshape(size, n_out)
        cumulative = np.concatenate(
            [np.zeros((size, 1), np.int64), np.cumsum(counts_out, axis=1)], axis=1
        )
        draws_in = rng.integers(0, n_in, size=(size, n_in)) + offsets * n_in
        weights_in = np.bincount(draws_in.ravel(), minlength=size * n_in).reshape(size, n_in)
        wins = cumulative[:, below] + 0.5 * (cumulative[:, at_or_below] - cumulative[:, below])
        values[done : done + size] = np.sum(weights_in * wins, axis=1) / (n_in * n_out)
        done += size
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The ROC point used for TPR@FPR = ``target_fpr`` (convention :data:`TPR_CONVENTION`).

    Attributes:
        target_fpr: The requested x.
        threshold: Threshold of the chosen point (``+inf`` for the origin).
        fpr: Achieved FPR (<= target_fpr).
        tpr: TPR at that point — the reported TPR@FPR.
        true_positives: Members at or above the threshold.
        false_positives: Non-members at or above the threshold.
        tpr_ci: Two-sided Clopper–Pearson interval of the TPR at level 1 − alpha.
        tpr_upper: One-sided Clopper–Pearson upper bound of the TPR at level 1 − alpha.
        fpr_ci: Two-sided Clopper–Pearson interval of the FPR.
        fpr_upper: One-sided Clopper–Pearson upper bound of the FPR.
        enough_non_members: Whether there are at least 10/x non-members (otherwise the point is
            mostly noise; at x = 0 never true).
    """

    target_fpr: float
    threshold: float
    fpr: float
    tpr: float
    true_positives: int
    false_positives: int
    tpr_ci: tuple[float, float]
    tpr_upper: float
    fpr_ci: tuple[float, float]
    fpr_upper: float
    enough_non_members: bool

    def __post_init__(self) -> None:
        for name in ("target_fpr", "fpr", "tpr", "tpr_upper", "fpr_upper"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        if self.fpr > self.target_fpr:
            raise ConfigError(f"fpr {self.fpr!r} must be <= target_fpr {self.target_fpr!r}")
        for name in ("tpr_ci", "fpr_ci"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high <= 1.0:
                raise ConfigError(f"{name} must satisfy 0 <= low <= high <= 1, got {(low, high)!r}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy.

        Example:
            >>> attack_metrics([1.0], [0.0], n_bootstrap=0).operating_points[0.01].as_dict()["tpr"]
            1.0
        """
        return {
            "target_fpr": self.target_fpr,
            "threshold": "inf" if math.isinf(self.threshold) else self.threshold,
            "fpr": self.fpr,
            "tpr": self.tpr,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "tpr_ci": list(self.tpr_ci),
            "tpr_upper": self.tpr_upper,
            "fpr_ci": list(self.fpr_ci),
            "fpr_upper": self.fpr_upper,
            "enough_non_members": self.enough_non_members,
        }


@dataclass(frozen=True, slots=True)
class AttackMetrics:
    """Metrics of one membership-inference attack (higher score = member).

    Attributes:
        auc: Area under the ROC (ties count ½).
        auc_ci: Bootstrap percentile interval ``(alpha/2, 1 − alpha/2)`` of the AUC, or None when
            ``n_bootstrap = 0``. An estimate, not a guarantee (:data:`AUC_CI_METHOD`).
        balanced_accuracy: ``max_τ 1 − (FPR + FNR)/2``.
        advantage: ``max_τ |TPR − FPR|`` (Yeom et al. 2018).
        tpr_at: ``{x: TPR@FPR=x}`` under :data:`TPR_CONVENTION`.
        operating_points: ``{x: OperatingPoint}`` with the Clopper–Pearson intervals.
        n_in: Number of members.
        n_out: Number of non-members.
        alpha: Error level of every interval.
        n_bootstrap: Resamples behind ``auc_ci``.
        roc: The full :class:`RocCurve`.
        tpr_convention: How ``tpr_at`` was read off the ROC.
        auc_ci_method: How ``auc_ci`` was computed.
    """

    auc: float
    auc_ci: tuple[float, float] | None
    balanced_accuracy: float
    advantage: float
    tpr_at: Mapping[float, float]
    operating_points: Mapping[float, OperatingPoint]
    n_in: int
    n_out: int
    alpha: float
    n_bootstrap: int
    roc: RocCurve
    tpr_convention: str = TPR_CONVENTION
    auc_ci_method: str = field(default=AUC_CI_METHOD)

    def __post_init__(self) -> None:
        for name in ("auc", "balanced_accuracy", "advantage"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        if self.auc_ci is not None and not 0.0 <= self.auc_ci[0] <= self.auc_ci[1] <= 1.0:
            raise ConfigError(f"auc_ci must satisfy 0 <= low <= high <= 1, got {self.auc_ci!r}")
        check_int("n_in", self.n_in, minimum=1)
        check_int("n_out", self.n_out, minimum=1)
        check_int("n_bootstrap", self.n_bootstrap, minimum=0)
        check_open_unit("alpha", self.alpha)
        if set(self.tpr_at) != set(self.operating_points):
            raise ConfigError("tpr_at and operating_points must have the same FPR keys")
        object.__setattr__(self, "tpr_at", MappingProxyType(dict(self.tpr_at)))
        object.__setattr__(self, "operating_points", MappingProxyType(dict(self.operating_points)))

    def as_dict(self, *, include_roc: bool = True) -> dict[str, Any]:
        """JSON-friendly copy; FPR keys become strings of the fraction (``"0.01"``, not a percent).

        Args:
            include_roc: Also write the full ROC (one point per distinct score).

        Example:
            >>> metrics = attack_metrics([2.0, 1.0], [1.0, 0.0], n_bootstrap=0)
            >>> sorted(metrics.as_dict(include_roc=False)["tpr_at"])
            ['0.001', '0.01']
        """
        out: dict[str, Any] = {
            "auc": self.auc,
            "auc_ci": None if self.auc_ci is None else list(self.auc_ci),
            "auc_ci_method": self.auc_ci_method,
            "balanced_accuracy": self.balanced_accuracy,
            "advantage": self.advantage,
            "tpr_at": {repr(x): tpr for x, tpr in self.tpr_at.items()},
            "tpr_convention": self.tpr_convention,
            "operating_points": [point.as_dict() for point in self.operating_points.values()],
            "n_in": self.n_in,
            "n_out": self.n_out,
            "alpha": self.alpha,
            "n_bootstrap": self.n_bootstrap,
        }
        if include_roc:
            out["roc"] = self.roc.as_dict()
        return out

    def report_entry(
        self,
        *,
        name: str,
        description: str = "",
        epsilon: EpsilonBound | None = None,
        scores_in: object = None,
        scores_out: object = None,
        include_roc: bool = True,
        deg_count: float | None = None,
        deg_rate: float | None = None,
    ) -> AttackEntry:
        """These metrics as one attack of a compliance report (:class:`~certunlearn.report.entries.AttackEntry`).

        Args:
            name: The attack's name in the report.
            description: What the attack does.
            epsilon: Its :class:`~certunlearn.audit.epsilon.EpsilonBound` (the entry's
                ``epsilon_lb`` / ``epsilon_cap``), or None.
            scores_in: The members' scores, for the report's histogram (never stored), or None.
            scores_out: The non-members' scores, likewise.
            include_roc: Put the ROC (thinned to 256 points) in the entry.
            deg_count: MIA-U DegCount, when the attack has one.
            deg_rate: MIA-U DegRate, likewise.

        Example:
            >>> metrics = attack_metrics([2.0, 1.0], [1.0, 0.0], n_bootstrap=0)
            >>> entry = metrics.report_entry(name="loss", scores_in=[2.0, 1.0], scores_out=[1.0, 0.0])
            >>> entry.auc, entry.n_members, sorted(entry.tpr_at), sum(entry.score_histogram["members"])
            (0.875, 2, ['0.001', '0.01'], 2)
        """
        return AttackEntry(
            name=name,
            description=description,
            auc=self.auc,
            auc_ci=self.auc_ci,
            auc_ci_level=None if self.auc_ci is None else 1.0 - self.alpha,
            n_members=self.n_in,
            n_non_members=self.n_out,
            roc=thin_roc(self.roc.fpr, self.roc.tpr) if include_roc else None,
            score_histogram=score_histogram(scores_in, scores_out),
            auc_ci_method=self.auc_ci_method,
            balanced_accuracy=self.balanced_accuracy,
            advantage=self.advantage,
            tpr_at={repr(x): tpr for x, tpr in self.tpr_at.items()},
            operating_points=tuple(
                OperatingPointEntry(target_fpr=p.target_fpr, fpr=p.fpr, tpr=p.tpr, tpr_ci=p.tpr_ci,
                                    tpr_upper=p.tpr_upper, fpr_upper=p.fpr_upper,
                                    enough_non_members=bool(p.enough_non_members))
                for p in self.operating_points.values()
            ),
            epsilon_lb=None if epsilon is None else epsilon.epsilon,
            epsilon_cap=None if epsilon is None else epsilon.cap,
            deg_count=deg_count,
            deg_rate=deg_rate,
        )


def _operating_point(roc: RocCurve, target: float, alpha: float) -> OperatingPoint:
    index = int(np.searchsorted(roc.fpr, target, side="right")) - 1  # last point with fpr <= x
    tp, fp = int(roc.true_positives[index]), int(roc.false_positives[index])
    return OperatingPoint(
        target_fpr=target,
        threshold=float(roc.thresholds[index]),
        fpr=float(roc.fpr[index]),
        tpr=float(roc.tpr[index]),
        true_positives=tp,
        false_positives=fp,
        tpr_ci=clopper_pearson(tp, roc.n_in, alpha=alpha, side="two"),
        tpr_upper=clopper_pearson(tp, roc.n_in, alpha=alpha, side="upper")[1],
        fpr_ci=clopper_pearson(fp, roc.n_out, alpha=alpha, side="two"),
        fpr_upper=clopper_pearson(fp, roc.n_out, alpha=alpha, side="upper")[1],
        enough_non_members=bool(target > 0 and roc.n_out >= _MIN_NONMEMBERS_PER_FPR / target),
    )


def attack_metrics(
    scores_in: object,
    scores_out: object,
    *,
    alpha: float = 0.05,
    fprs: Sequence[float] = (0.01, 0.001),
    n_bootstrap: int = 1000,
    rng: np.random.Generator | None = None,
) -> AttackMetrics:
    """AUC (with a bootstrap band), balanced accuracy, advantage and TPR@FPR of an attack.

    Args:
        scores_in: Membership scores of members ``[n_in]`` (higher = member).
        scores_out: Membership scores of non-members ``[n_out]``.
        alpha: Error level of the Clopper–Pearson intervals and of the bootstrap band, in (0, 1).
        fprs: Target FPRs x in [0, 1] for TPR@FPR=x (fractions: 0.01 is 1%).
        n_bootstrap: Stratified bootstrap resamples for ``auc_ci`` (0 skips the band).
        rng: Source of the resampling randomness; None draws fresh OS entropy (not reproducible —
            pass a seeded generator for reports).

    Returns:
        :class:`AttackMetrics`.

    Raises:
        InputError: Empty, non-1-D or non-finite scores.
        ConfigError: ``alpha``, ``fprs`` or ``n_bootstrap`` out of range.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> m = attack_metrics(rng.normal(1, 1, 300), rng.normal(0, 1, 300), rng=rng, n_bootstrap=200)
        >>> m.auc_ci[0] < m.auc < m.auc_ci[1]
        True
        >>> m.tpr_convention
        'TPR at the last ROC point with fpr <= x'
    """
    members = _check_scores("scores_in", scores_in)
    non_members = _check_scores("scores_out", scores_out)
    alpha = check_open_unit("alpha", alpha)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0)
    if isinstance(fprs, (str, bytes)) or not isinstance(fprs, Sequence):
        raise ConfigError(f"fprs must be a sequence of numbers in [0, 1], got {fprs!r}")
    targets = []
    for value in fprs:
        target = check_real("fprs", value)
        if not 0.0 <= target <= 1.0:
            raise ConfigError(f"every entry of fprs must be in [0, 1], got {value!r}")
        targets.append(target)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")

    roc = roc_curve(members, non_members)
    auc = min(1.0, max(0.0, _auc(roc.fpr, roc.tpr)))
    auc_ci = None
    if n_bootstrap > 0:
        generator = rng if rng is not None else np.random.default_rng()
        auc_ci = _bootstrap_auc(
            members, non_members, n_bootstrap=n_bootstrap, alpha=alpha, rng=generator
        )
    gap = roc.tpr - roc.fpr
    points = {target: _operating_point(roc, target, alpha) for target in targets}
    return AttackMetrics(
        auc=auc,
        auc_ci=auc_ci,
        balanced_accuracy=float(np.max(0.5 + gap / 2.0)),
        advantage=float(np.max(np.abs(gap))),
        tpr_at={target: point.tpr for target, point in points.items()},
        operating_points=points,
        n_in=roc.n_in,
        n_out=roc.n_out,
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        roc=roc,
    )
