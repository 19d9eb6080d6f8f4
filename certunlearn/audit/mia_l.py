r"""Membership inference on a released model (MIA-L, REFERENCE §4.3): LOSS, LiRA, RMIA.

Every attack returns **membership scores, higher = more likely member** (REFERENCE §4.1), one per
audited example; :func:`run_mia_l` turns them into :class:`~certunlearn.audit.metrics.AttackMetrics`
and empirical ε lower bounds.

* **LOSS** (Yeom et al., CSF 2018): ``s = −L = log p_y``. Yeom's own threshold is the mean training
  loss; the ROC sweeps every threshold.
* **LiRA** (Carlini et al., S&P 2022) on the logit-scaled confidence
  ``φ = log p_y − log Σ_{i≠y} p_i`` of the target and of N shadow models, each IN or OUT for
  every example. Per example (and per augmented query k when logits carry a K axis)
  ``μ_in``/``μ_out`` are **medians** over the IN/OUT shadows; ``σ_in``/``σ_out`` are per-example
  standard deviations (``ddof=1``) or, in the *fixed* variants, one global value per population:
  the pooled within-example deviation
  ``σ² = Σ_{x,k} Σ_j (φ_j − mean_{x,k})² / Σ_{x,k} (n_x − 1)`` taken over IN shadows for ``σ_in``
  and over OUT shadows for ``σ_out``. (The official code uses ``np.std`` of all values, which also
  counts the spread between examples, and computes the global OUT value from IN data — REFERENCE
  calls that a bug; neither is reproduced.) Scores:

  - online: ``mean_k [log N(φ_k; μ_in, σ_in²) − log N(φ_k; μ_out, σ_out²)]``;
  - offline, one-sided (paper form): ``mean_k log Φ((φ_k − μ_out)/σ_out)`` — the paper's
    ``Φ(·)`` in the log domain, so strong members do not all tie at Φ = 1 (same ROC otherwise).

* **RMIA** (Zarifzadeh, Liu & Shokri, ICML 2024): with ``Pr(x|θ)`` the target's true-label
  probability (averaged over augmentations), ``LR(x, z) = [Pr(x|θ)/Pr(x)] / [Pr(z|θ)/Pr(z)]`` and
  ``Score(x) = Pr_z[LR(x, z) >= γ]`` over population samples z. Online ``Pr(x) = ½(P_IN(x) +
  P_OUT(x))`` over the reference models; offline ``Pr(x) = ((1 + a)/2)·P_OUT(x) + (1 − a)/2`` with
  ``a ∈ {0, 0.1, …, 1}`` tuned (:func:`tune_rmia_a`) by attacking each reference model with the
  others and keeping the ``a`` of highest mean AUC. For a fixed population the score is a
  monotone step function of ``Pr(x|θ)/Pr(x)`` (computed by one sort, O((n + m) log m)).

:data:`ATTACKS` is the registry used by :func:`run_mia_l`; :func:`register_attack` adds to it.

Example:
    >>> rng = np.random.default_rng(0)
    >>> labels = np.zeros(200, dtype=np.int64)
    >>> phi = np.r_[rng.normal(2, 1, 100), rng.normal(0, 1, 100)]  # members, then non-members
    >>> logits = np.stack([phi, np.zeros(200)], axis=1)           # φ = z_0 − z_1 for label 0
    >>> scores = loss_attack(logits, labels)
    >>> round(attack_metrics(scores[:100], scores[100:], n_bootstrap=0).auc, 2)
    0.95
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from scipy.special import log_ndtr
from scipy.special import softmax as _softmax
from torch import Tensor, nn

from certunlearn.audit.epsilon import EpsilonBound, epsilon_lower_bound
from certunlearn.audit.metrics import AttackMetrics, attack_metrics, readonly_copy
from certunlearn.audit.shadows import (
    ShadowSet,
    ShadowSpec,
    _as_features,
    _as_labels,
    data_digest,
    row_digests,
    train_shadows,
)
from certunlearn.audit.signals import confidence, lira_logit, membership_scores
from certunlearn.errors import ConfigError, InputError
from certunlearn.progress import ProgressFn
from certunlearn.serialize import plain
from certunlearn.validation import (
    check_choice,
    check_int,
    check_positive,
    check_real,
    check_real_array,
    register,
)

__all__ = [
    "ATTACKS",
    "DEFAULT_ATTACKS",
    "LIRA_VARIANTS",
    "RMIA_A_GRID",
    "Attack",
    "AttackInputs",
    "MIAResult",
    "lira",
    "loss_attack",
    "register_attack",
    "rmia",
    "run_mia_l",
    "tune_rmia_a",
]

LIRA_VARIANTS = ("online", "offline", "online-fixed", "offline-fixed")
"""Allowed ``variant`` values of :func:`lira`."""

RMIA_A_GRID = tuple(round(0.1 * i, 1) for i in range(11))
"""Candidate offline ``a`` values of :func:`tune_rmia_a`: 0, 0.1, …, 1."""

DEFAULT_ATTACKS = ("loss", "lira-online", "lira-offline", "rmia")
"""Attacks :func:`run_mia_l` runs unless told otherwise."""

_DEFAULT_MIN_STD = 1e-6  # floor of LiRA's σ: identical shadow outputs (saturated φ) stay finite


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _real_array(name: str, values: object) -> np.ndarray:
    return check_real_array(name, values)


def _labels(labels: object) -> np.ndarray:
    if isinstance(labels, Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"labels must be an integer array, got dtype {array.dtype}")
    if array.ndim != 1 or array.size == 0:
        raise InputError(f"labels must have shape [n] with n >= 1, got {array.shape}")
    return array.astype(np.int64)


def _per_example(name: str, values: object, n: int) -> np.ndarray:
    """``[n, C]`` or ``[n, K, C]`` outputs -> ``[n, K, C]``."""
    array = _real_array(name, values)
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3 or array.shape[0] != n or array.shape[1] == 0:
        raise InputError(f"{name} must have shape [{n}, C] or [{n}, K, C], got {np.shape(values)}")
    return array


def _per_model(name: str, values: object, n: int, queries: int) -> np.ndarray:
    """``[N, n, C]`` or ``[N, n, K, C]`` outputs -> ``[N, n, K, C]`` (the target's K and C)."""
    array = _real_array(name, values)
    if array.ndim == 3:
        array = array[:, :, None, :]
    if array.ndim != 4 or array.shape[0] == 0 or array.shape[1] != n or array.shape[2] != queries:
        raise InputError(
            f"{name} must have shape [models, {n}, C]"
            + (f" or [models, {n}, {queries}, C]" if queries > 1 else "")
            + f", got {np.shape(values)}"
        )
    return array


def _membership(name: str, values: object, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype != np.bool_:
        if not np.issubdtype(array.dtype, np.integer) or not np.isin(array, (0, 1)).all():
            raise InputError(f"{name} must be a bool (or 0/1) array, got dtype {array.dtype}")
        array = array.astype(bool)
    if array.shape != shape:
        raise InputError(f"{name} must have shape {list(shape)}, got {list(array.shape)}")
    return array


def _phi(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA logit of ``[..., n, K, C]`` outputs -> ``[..., n, K]``."""
    shape = outputs.shape
    n, queries, classes = shape[-3], shape[-2], shape[-1]
    flat_labels = np.tile(np.repeat(labels, queries), outputs.size // (n * queries * classes))
    return lira_logit(logits=outputs.reshape(-1, classes), labels=flat_labels).reshape(shape[:-1])


def _true_probability(name: str, outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean over queries of p_y for ``[..., n, K, C]`` probabilities -> ``[..., n]``."""
    shape = outputs.shape
    n, queries, classes = shape[-3], shape[-2], shape[-1]
    flat_labels = np.tile(np.repeat(labels, queries), outputs.size // (n * queries * classes))
    try:
        p = confidence(probabilities=outputs.reshape(-1, classes), labels=flat_labels)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from exc
    return p.reshape(shape[:-1]).mean(axis=-1)


# ---------------------------------------------------------------------------------------------
# LOSS
# ---------------------------------------------------------------------------------------------


def loss_attack(target_logits: object, labels: object) -> np.ndarray:
    """LOSS attack (Yeom et al., CSF 2018): score ``−L = log p_y`` (mean over queries).

    For an ε-DP learner the attack's advantage ``TPR − FPR`` is at most ``e^ε − 1``; Yeom's own
    threshold is the mean training loss, :func:`run_mia_l` sweeps all of them.

    Args:
        target_logits: The model's logits ``[n, C]`` (or ``[n, K, C]`` for K augmented queries).
        labels: Integer labels ``[n]``.

    Returns:
        ``[n]`` float64 scores, higher = member.

    Raises:
        InputError: Bad shapes, NaN/inf logits, labels out of range.

    Example:
        >>> loss_attack(np.array([[3.0, 0.0], [0.0, 3.0]]), np.array([0, 0])).round(4)
        array([-0.0486, -3.0486])
    """
    y = _labels(labels)
    outputs = _per_example("target_logits", target_logits, y.size)
    classes = outputs.shape[-1]
    scores = membership_scores(
        "loss", logits=outputs.reshape(-1, classes), labels=np.repeat(y, outputs.shape[1])
    )
    return scores.reshape(y.size, -1).mean(axis=1)


# ---------------------------------------------------------------------------------------------
# LiRA
# ---------------------------------------------------------------------------------------------


def _pooled_std(values: np.ndarray, mask: np.ndarray, what: str) -> float:
    """Pooled within-example std of ``values [N, n, K]`` over the shadows where ``mask [N, n]``."""
    counts = mask.sum(axis=0)  # [n]
    dof = float(np.sum(np.maximum(counts - 1, 0))) * values.shape[2]
    if dof <= 0:
        raise InputError(f"fixed-variance LiRA needs some example with >= 2 {what} shadows")
    masked = np.where(mask[:, :, None], values, np.nan)
    mean = np.nanmean(masked, axis=0)
    squares = np.where(mask[:, :, None], (values - mean[None]) ** 2, 0.0)
    return math.sqrt(float(squares.sum()) / dof)


def _lira_statistics(
    phi: np.ndarray, membership: np.ndarray, *, online: bool, fixed: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | float | None, np.ndarray | float]:
    """(μ_in, μ_out, σ_in, σ_out) from shadow φ ``[N, n, K]``; μ ``[n, K]``, σ ``[n, K]``/float."""
    n_in = membership.sum(axis=0)
    n_out = membership.shape[0] - n_in
    need = 1 if fixed else 2
    for what, counts, used in (("IN", n_in, online), ("OUT", n_out, True)):
        if used and counts.min() < need:
            bad = np.flatnonzero(counts < need)
            raise InputError(
                f"LiRA ({'fixed' if fixed else 'per-example'} variance) needs "
                f">= {need} {what} shadows "
                f"per example; {bad.size} examples have fewer (e.g. example {int(bad[0])} has "
                f"{int(counts[bad[0]])})"
            )
    out_values = np.where(~membership[:, :, None], phi, np.nan)
    mu_out = np.nanmedian(out_values, axis=0)
    mu_in = sigma_in = None
    if online:
        in_values = np.where(membership[:, :, None], phi, np.nan)
        mu_in = np.nanmedian(in_values, axis=0)
    if fixed:
        sigma_out: np.ndarray | float = _pooled_std(phi, ~membership, "OUT")
        if online:
            sigma_in = _pooled_std(phi, membership, "IN")
    else:
        sigma_out = np.nanstd(out_values, axis=0, ddof=1)
        if online:
            sigma_in = np.nanstd(in_values, axis=0, ddof=1)
    return mu_in, mu_out, sigma_in, sigma_out


def lira(
    target_logits: object,
    labels: object,
    shadow_logits: object,
    membership: object,
    *,
    variant: str = "online",
    min_std: float = _DEFAULT_MIN_STD,
) -> np.ndarray:
    """LiRA membership scores (Carlini et al., S&P 2022), higher = member.

    See the module docstring for the statistics: medians over IN/OUT shadows, per-example or
    pooled ("fixed") standard deviations, online log-likelihood ratio or offline one-sided
    ``log Φ((φ − μ_out)/σ_out)``.

    Args:
        target_logits: Target model logits ``[n, C]`` or ``[n, K, C]`` (K augmented queries).
        labels: Integer labels ``[n]``.
        shadow_logits: Shadow logits on the same examples, ``[N, n, C]`` or ``[N, n, K, C]``.
        membership: ``[N, n]`` bool: shadow k trained on example j.
        variant: One of :data:`LIRA_VARIANTS`.
        min_std: Floor of every σ (> 0), so identical shadow outputs stay finite.

    Returns:
        ``[n]`` float64 scores.

    Raises:
        InputError: Bad shapes or dtypes, NaN/inf, or too few IN/OUT shadows per example (>= 2
            each for per-example variances, >= 1 for fixed; offline needs OUT only).
        ConfigError: Unknown ``variant`` or bad ``min_std``.

    Example:
        >>> labels = np.zeros(2, dtype=np.int64)
        >>> target = np.array([[2.0, 0.0], [0.0, 0.0]])                 # φ = 2 and 0
        >>> shadows = np.array([[[2.1, 0], [2.1, 0]], [[1.9, 0], [1.9, 0]],   # IN for both
        ...                     [[0.1, 0], [0.1, 0]], [[-0.1, 0], [-0.1, 0]]]) # OUT for both
        >>> member = np.array([[True, True], [True, True], [False, False], [False, False]])
        >>> s = lira(target, labels, shadows, member, variant="online")
        >>> bool(s[0] > 0 > s[1])
        True
    """
    variant = check_choice("variant", variant, LIRA_VARIANTS)
    min_std = check_positive("min_std", min_std)
    y = _labels(labels)
    target = _per_example("target_logits", target_logits, y.size)
    shadows = _per_model("shadow_logits", shadow_logits, y.size, target.shape[1])
    if shadows.shape[-1] != target.shape[-1]:
        raise InputError(
            f"shadow_logits have {shadows.shape[-1]} classes, target_logits {target.shape[-1]}"
        )
    member = _membership("membership", membership, (shadows.shape[0], y.size))
    online = variant.startswith("online")
    fixed = variant.endswith("fixed")
    phi_target = _phi(target, y)  # [n, K]
    phi_shadow = _phi(shadows, y)  # [N, n, K]
    mu_in, mu_out, sigma_in, sigma_out = _lira_statistics(
        phi_shadow, member, online=online, fixed=fixed
    )
    sigma_out = np.maximum(sigma_out, min_std)
    z_out = (phi_target - mu_out) / sigma_out
    if not online:
        return log_ndtr(z_out).mean(axis=1)
    sigma_in = np.maximum(sigma_in, min_std)
    z_in = (phi_target - mu_in) / sigma_in
    log_ratio = -0.5 * z_in**2 - np.log(sigma_in) + 0.5 * z_out**2 + np.log(sigma_out)
    return np.asarray(log_ratio, dtype=np.float64).mean(axis=1)


# ---------------------------------------------------------------------------------------------
# RMIA
# ---------------------------------------------------------------------------------------------


def _marginal(
    p: np.ndarray, member: np.ndarray, *, online: bool, a: float, strict: bool, what: str
) -> np.ndarray:
    """Pr(x) over reference models from true-label probabilities ``p [R, n]`` and membership."""
    n_in = member.sum(axis=0)
    n_out = member.shape[0] - n_in
    p_out = np.where(member, 0.0, p).sum(axis=0) / np.maximum(n_out, 1)
    if online:
        p_in = np.where(member, p, 0.0).sum(axis=0) / np.maximum(n_in, 1)
        both = (n_in > 0) & (n_out > 0)
        if strict and not both.all():
            bad = int(np.flatnonzero(~both)[0])
            raise InputError(
                f"online RMIA needs IN and OUT reference models for every {what}; "
                f"{int((~both).sum())} have not (e.g. index {bad})"
            )
        return np.where(both, 0.5 * (p_in + p_out), p.mean(axis=0))
    if n_out.min() == 0:
        bad = int(np.flatnonzero(n_out == 0)[0])
        raise InputError(
            f"offline RMIA needs an OUT reference model for every {what}; index {bad} has none"
        )
    return 0.5 * (1.0 + a) * p_out + 0.5 * (1.0 - a)


def _rmia_scores(
    p_x: np.ndarray, pr_x: np.ndarray, p_z: np.ndarray, pr_z: np.ndarray, gamma: float
) -> np.ndarray:
    """Score(x) = #{z : ratio_z <= ratio_x / γ} / m, ratios in the log domain."""
    floor = 1e-300
    ratio_x = np.log(p_x) - np.log(np.maximum(pr_x, floor))
    ratio_z = np.sort(np.log(p_z) - np.log(np.maximum(pr_z, floor)))
    return np.searchsorted(ratio_z, ratio_x - math.log(gamma), side="right") / ratio_z.size


def _check_gamma(gamma: object) -> float:
    value = check_real("gamma", gamma)
    if value < 1.0:
        raise ConfigError(f"gamma must be >= 1, got {gamma!r}")
    return value


def _check_a(a: object) -> float:
    value = check_real("a", a)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"a must be in [0, 1], got {a!r}")
    return value


@dataclass(frozen=True, slots=True)
class _RmiaData:
    labels: np.ndarray
    p_x: np.ndarray  # [n] target
    ref_x: np.ndarray  # [R, n]
    member_x: np.ndarray  # [R, n]
    p_z: np.ndarray | None  # [m] target (None when tuning)
    ref_z: np.ndarray  # [R, m]
    member_z: np.ndarray  # [R, m]


def _rmia_inputs(
    target_probs: object | None,
    labels: object,
    reference_probs: object,
    reference_membership: object,
    population_probs: object | None,
    population_labels: object,
    population_reference_probs: object,
    population_reference_membership: object | None,
) -> _RmiaData:
    y = _labels(labels)
    references = _real_array("reference_probs", reference_probs)
    if references.ndim == 3:
        references = references[:, :, None, :]
    if references.ndim != 4 or references.shape[0] == 0 or references.shape[1] != y.size:
        raise InputError(
            f"reference_probs must have shape [R, {y.size}, C] or [R, {y.size}, K, C], "
            f"got {np.shape(reference_probs)}"
        )
    n_refs, _, queries, classes = references.shape
    p_x = None
    if target_probs is not None:
        target = _per_example("target_probs", target_probs, y.size)
        if target.shape[1:] != (queries, classes):
            raise InputError(
                f"target_probs [n, K, C] = {target.shape} does not match "
                f"reference_probs {references.shape}"
            )
        p_x = _true_probability("target_probs", target, y)
    ref_x = _true_probability("reference_probs", references, y)
    member_x = _membership("reference_membership", reference_membership, (n_refs, y.size))
    z_labels = _labels(population_labels)
    m = z_labels.size
    ref_pop = _real_array("population_reference_probs", population_reference_probs)
    if ref_pop.ndim == 3:
        ref_pop = ref_pop[:, :, None, :]
    if ref_pop.shape != (n_refs, m, queries, classes):
        raise InputError(
            f"population_reference_probs must have shape [{n_refs}, {m}, C] "
            f"(or with K = {queries}), "
            f"got {np.shape(population_reference_probs)}"
        )
    ref_z = _true_probability("population_reference_probs", ref_pop, z_labels)
    p_z = None
    if population_probs is not None:
        pop = _per_example("population_probs", population_probs, m)
        if pop.shape[1:] != (queries, classes):
            raise InputError(
                f"population_probs [m, K, C] = {pop.shape} does not match "
                f"reference_probs {references.shape}"
            )
        p_z = _true_probability("population_probs", pop, z_labels)
    if population_reference_membership is None:
        member_z = np.zeros((n_refs, m), dtype=bool)
    else:
        member_z = _membership(
            "population_reference_membership", population_reference_membership, (n_refs, m)
        )
    return _RmiaData(y, p_x, ref_x, member_x, p_z, ref_z, member_z)


def _tune_a(data: _RmiaData, gamma: float, grid: Sequence[float]) -> float:
    n_refs = data.ref_x.shape[0]
    if n_refs < 2:
        raise ConfigError(
            "tuning a needs >= 2 reference models (one attacked with the others); pass a="
        )
    candidates_p = np.concatenate([data.ref_x, data.ref_z], axis=1)  # [R, n + m]
    candidates_member = np.concatenate([data.member_x, data.member_z], axis=1)
    aucs: list[list[float]] = [[] for _ in grid]
    for r in range(n_refs):
        others = np.arange(n_refs) != r
        usable = (~candidates_member[others]).any(axis=0)
        pop_usable = (~data.member_z[others]).any(axis=0)
        labels_r = candidates_member[r, usable]
        if not pop_usable.any() or labels_r.all() or not labels_r.any():
            continue
        ref_c, member_c = candidates_p[others][:, usable], candidates_member[others][:, usable]
        ref_z, member_z = data.ref_z[others][:, pop_usable], data.member_z[others][:, pop_usable]
        for i, a in enumerate(grid):
            pr_c = _marginal(ref_c, member_c, online=False, a=a, strict=True, what="candidate")
            pr_z = _marginal(
                ref_z, member_z, online=False, a=a, strict=True, what="population sample"
            )
            scores = _rmia_scores(
                candidates_p[r, usable], pr_c, data.ref_z[r, pop_usable], pr_z, gamma
            )
            aucs[i].append(
                attack_metrics(scores[labels_r], scores[~labels_r], fprs=(), n_bootstrap=0).auc
            )
    if not aucs[0]:
        raise ConfigError(
            "cannot tune a: no reference model has both IN and OUT examples that the other "
            "references were not trained on; pass a= explicitly"
        )
    means = [float(np.mean(v)) for v in aucs]
    return float(grid[int(np.argmax(means))])


def tune_rmia_a(
    labels: object,
    reference_probs: object,
    reference_membership: object,
    population_labels: object,
    population_reference_probs: object,
    population_reference_membership: object | None = None,
    *,
    gamma: float = 1.0,
    grid: Sequence[float] = RMIA_A_GRID,
) -> float:
    """Offline RMIA's ``a``: the grid value with the highest mean AUC attacking each reference.

    For each reference model r in turn, r plays the target and the others the references: every
    example (audited and population) for which r's membership is known and some other reference is
    OUT is scored with the offline RMIA of the candidate ``a``; the AUC against r's membership is
    averaged over r. (Zarifzadeh et al. and ML Privacy Meter attack one reference model; averaging
    over all of them is steadier with few references.) Ties go to the smaller ``a``.

    Args:
        labels: Integer labels ``[n]`` of the audited examples.
        reference_probs: ``[R, n, C]`` (or ``[R, n, K, C]``) softmax outputs of the references.
        reference_membership: ``[R, n]`` bool.
        population_labels: ``[m]`` labels of the population samples z.
        population_reference_probs: ``[R, m, C]`` (or with K) reference outputs on z.
        population_reference_membership: ``[R, m]`` bool (None: z is OUT for every reference).
        gamma: RMIA's γ >= 1.
        grid: Candidate values in [0, 1].

    Returns:
        The chosen ``a``.

    Raises:
        ConfigError: Fewer than 2 references, or no reference with both IN and OUT examples.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> member = rng.random((4, 300)) < 0.5
        >>> p_true = np.where(member, 0.9, 0.6) + rng.uniform(-0.05, 0.05, (4, 300))
        >>> probs = np.stack([p_true, 1 - p_true], axis=-1)
        >>> a = tune_rmia_a(np.zeros(300, np.int64), probs, member, np.zeros(300, np.int64)[:50],
        ...                 probs[:, :50], member[:, :50])
        >>> a in RMIA_A_GRID
        True
    """
    gamma = _check_gamma(gamma)
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or len(grid) == 0:
        raise ConfigError(f"grid must be a non-empty sequence of numbers in [0, 1], got {grid!r}")
    values = [_check_a(a) for a in grid]
    data = _rmia_inputs(
        None,
        labels,
        reference_probs,
        reference_membership,
        None,
        population_labels,
        population_reference_probs,
        population_reference_membership,
    )
    return _tune_a(data, gamma, values)


def rmia(
    target_probs: object,
    labels: object,
    reference_probs: object,
    reference_membership: object,
    population_probs: object,
    population_labels: object,
    *,
    population_reference_probs: object,
    population_reference_membership: object | None = None,
    gamma: float = 1.0,
    a: float | None = None,
    online: bool = True,
) -> np.ndarray:
    """RMIA membership scores (Zarifzadeh, Liu & Shokri, ICML 2024), higher = member.

    ``Score(x) = (1/m) #{z : LR(x, z) >= γ}`` with ``LR(x, z) = [Pr(x|θ)/Pr(x)] / [Pr(z|θ)/Pr(z)]``,
    Pr(·|θ) the true-label probability (mean over augmented queries). Online, ``Pr(x) = ½(P_IN(x) +
    P_OUT(x))`` (every audited x needs IN and OUT references; a population sample without both
    uses the mean over all references). Offline, ``Pr(·) = ((1 + a)/2) P_OUT(·) + (1 − a)/2`` over
    the references that are OUT for the point (at least one needed); ``a=None`` tunes it with
    :func:`tune_rmia_a`.

    Args:
        target_probs: Target softmax outputs ``[n, C]`` (or ``[n, K, C]``).
        labels: Integer labels ``[n]``.
        reference_probs: ``[R, n, C]`` (or with K) reference-model outputs on the audited examples.
        reference_membership: ``[R, n]`` bool.
        population_probs: Target outputs on the population samples z, ``[m, C]`` (or with K).
        population_labels: ``[m]`` labels of z.
        population_reference_probs: ``[R, m, C]`` (or with K) reference outputs on z.
        population_reference_membership: ``[R, m]`` bool (None: z is OUT for every reference).
        gamma: γ >= 1.
        a: Offline coefficient in [0, 1] (None: tuned); must be None online.
        online: Use IN and OUT references (True) or the offline approximation.

    Returns:
        ``[n]`` float64 scores in [0, 1].

    Raises:
        InputError: Bad shapes, NaN, rows not summing to 1, missing IN/OUT references.
        ConfigError: ``gamma < 1``, ``a`` outside [0, 1] or given online, tuning impossible.

    Example:
        >>> p = lambda v: np.stack([np.asarray(v, float), 1 - np.asarray(v, float)], axis=-1)
        >>> refs = p([[0.9, 0.5], [0.6, 0.5]])           # 2 references on 2 examples
        >>> member = np.array([[True, True], [False, False]])
        >>> z_refs, y0 = p([[0.7, 0.7, 0.7], [0.7, 0.7, 0.7]]), np.zeros(3, np.int64)
        >>> rmia(p([0.95, 0.5]), np.zeros(2, np.int64), refs, member, p([0.7, 0.6, 0.8]), y0,
        ...      population_reference_probs=z_refs).round(3).tolist()
        [1.0, 0.667]
    """
    gamma = _check_gamma(gamma)
    if not isinstance(online, bool):
        raise ConfigError(f"online must be a bool, got {online!r}")
    if online and a is not None:
        raise ConfigError(
            "a is the offline approximation's coefficient: pass a=None with online=True"
        )
    data = _rmia_inputs(
        target_probs,
        labels,
        reference_probs,
        reference_membership,
        population_probs,
        population_labels,
        population_reference_probs,
        population_reference_membership,
    )
    if online:
        a_value = 0.0
    else:
        a_value = _tune_a(data, gamma, RMIA_A_GRID) if a is None else _check_a(a)
    return _rmia_from(data, gamma, a_value, online)


def _rmia_from(data: _RmiaData, gamma: float, a_value: float, online: bool) -> np.ndarray:
    """RMIA scores from validated inputs (:func:`rmia` after its checks and the choice of ``a``)."""
    pr_x = _marginal(
        data.ref_x, data.member_x, online=online, a=a_value, strict=True, what="audited example"
    )
    pr_z = _marginal(
        data.ref_z, data.member_z, online=online, a=a_value, strict=False, what="population sample"
    )
    return _rmia_scores(data.p_x, pr_x, data.p_z, pr_z, gamma)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttackInputs:
    """What :func:`run_mia_l` hands every attack (numpy float64 logits; labels int64).

    Attributes:
        target_logits: Target logits on the audited examples ``[n, C]`` (members first).
        labels: ``[n]`` labels.
        shadow_logits: Shadow logits on the audited examples ``[N, n, C]``, or None.
        membership: ``[N, n]`` bool, or None.
        population_logits: Target logits on the population samples ``[m, C]``, or None.
        population_labels: ``[m]`` labels, or None.
        population_shadow_logits: Shadow logits on the population ``[N, m, C]``, or None.
        population_membership: ``[N, m]`` bool, or None.
        options: Attack options (``gamma``, ``a``, ``min_std``).
    """

    target_logits: np.ndarray
    labels: np.ndarray
    shadow_logits: np.ndarray | None = None
    membership: np.ndarray | None = None
    population_logits: np.ndarray | None = None
    population_labels: np.ndarray | None = None
    population_shadow_logits: np.ndarray | None = None
    population_membership: np.ndarray | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


AttackOutput = np.ndarray | tuple[np.ndarray, Mapping[str, Any]]
AttackFn = Callable[[AttackInputs], AttackOutput]
"""``f(inputs) -> scores [n]`` or ``(scores, details)``; scores higher = member."""


@dataclass(frozen=True, slots=True)
class Attack:
    """A registered attack.

    Attributes:
        fn: The attack function (:data:`AttackFn`).
        needs_shadows: Whether it reads shadow outputs.
        needs_population: Whether it reads population samples.
        description: One line for reports.
    """

    fn: AttackFn
    needs_shadows: bool = False
    needs_population: bool = False
    description: str = ""


def _need(value: np.ndarray | None, what: str, attack: str) -> np.ndarray:
    if value is None:
        raise InputError(f"attack {attack!r} needs {what}")
    return value


def _lira_attack(variant: str) -> AttackFn:
    def run(inputs: AttackInputs) -> AttackOutput:
        scores = lira(
            inputs.target_logits,
            inputs.labels,
            _need(inputs.shadow_logits, "shadow outputs", f"lira-{variant}"),
            _need(inputs.membership, "shadow membership", f"lira-{variant}"),
            variant=variant,
            min_std=inputs.options.get("min_std", _DEFAULT_MIN_STD),
        )
        return scores, {"variant": variant}

    return run


def _rmia_attack(online: bool) -> AttackFn:
    def run(inputs: AttackInputs) -> AttackOutput:
        name = "rmia" if online else "rmia-offline"
        shadows = _softmax(_need(inputs.shadow_logits, "shadow outputs", name), axis=-1)
        population = _softmax(_need(inputs.population_logits, "population samples", name), axis=-1)
        population_shadows = _softmax(
            _need(inputs.population_shadow_logits, "shadow outputs on the population", name),
            axis=-1,
        )
        membership = _need(inputs.membership, "shadow membership", name)
        gamma = inputs.options.get("gamma", 1.0)
        details: dict[str, Any] = {
            "online": online,
            "gamma": gamma,
            "population": int(population.shape[0]),
        }
        # validated and reduced once, for tuning a (offline) and for the scores
        data = _rmia_inputs(
            _softmax(inputs.target_logits, axis=-1), inputs.labels, shadows, membership, population,
            inputs.population_labels, population_shadows, inputs.population_membership,
        )
        a = 0.0
        if not online:
            a = inputs.options.get("a")
            details["a_tuned"] = a is None
            a = _tune_a(data, _check_gamma(gamma), RMIA_A_GRID) if a is None else _check_a(a)
            details["a"] = a
        return _rmia_from(data, _check_gamma(gamma), a, online), details

    return run


def _loss(inputs: AttackInputs) -> AttackOutput:
    return loss_attack(inputs.target_logits, inputs.labels)


ATTACKS: dict[str, Attack] = {
    "loss": Attack(_loss, description="LOSS threshold (Yeom et al. 2018): score = -loss"),
    **{
        f"lira-{variant}": Attack(
            _lira_attack(variant),
            needs_shadows=True,
            description=f"LiRA {variant} (Carlini et al. 2022)",
        )
        for variant in LIRA_VARIANTS
    },
    "rmia": Attack(
        _rmia_attack(True),
        needs_shadows=True,
        needs_population=True,
        description="RMIA online (Zarifzadeh et al. 2024)",
    ),
    "rmia-offline": Attack(
        _rmia_attack(False),
        needs_shadows=True,
        needs_population=True,
        description="RMIA offline, a tuned on the references (Zarifzadeh et al. 2024)",
    ),
}
"""Registry of MIA-L attacks used by :func:`run_mia_l`: name -> :class:`Attack`."""


def register_attack(
    name: str,
    fn: AttackFn,
    *,
    needs_shadows: bool = False,
    needs_population: bool = False,
    description: str = "",
    force: bool = False,
) -> None:
    """Register an attack ``f(AttackInputs) -> scores [n]`` (higher = member) under ``name``.

    Args:
        name: Registry key.
        fn: The attack; may also return ``(scores, details)`` with a JSON-friendly dict.
        needs_shadows: It reads ``shadow_logits``/``membership``.
        needs_population: It reads the population fields.
        description: One line for reports.
        force: Replace an existing entry instead of raising.

    Raises:
        ConfigError: ``name`` is taken and ``force`` is False, or ``fn`` is not callable.

    Example:
        >>> register_attack("loss", _loss)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: attack 'loss' is already registered; pass force=True to replace it
    """
    if not callable(fn):
        raise ConfigError(f"attack {name!r} must be callable, got {type(fn).__name__}")
    register("attack", ATTACKS, name, Attack(fn, bool(needs_shadows), bool(needs_population), str(description)), force=force)


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MIAResult:
    """Outcome of :func:`run_mia_l`: metrics and an ε lower bound per attack.

    The ε bounds are taken at ``alpha / len(attacks)`` each (Bonferroni over attacks), so
    :attr:`epsilon_lower_bound` — the largest of them — holds with probability >= 1 − alpha.
    AUCs and TPRs are point estimates; :attr:`best_attack` (highest AUC) is chosen after the fact.

    Attributes:
        metrics: ``{attack: AttackMetrics}`` (in the order run).
        epsilon: ``{attack: EpsilonBound}`` at level ``alpha / len(attacks)``.
        scores_in: ``{attack: [n_members] scores}`` (read-only).
        scores_out: ``{attack: [n_non_members] scores}`` (read-only).
        details: ``{attack: {...}}`` — e.g. the LiRA variant, RMIA's tuned ``a``.
        n_shadows: Shadow models used (0 when none).
        n_population: Population samples used by RMIA (0 when none).
        alpha: Overall error level of the ε bounds.
        delta: δ of the ε bounds.
        notes: Caveats found while running (e.g. where the population came from).
    """

    metrics: Mapping[str, AttackMetrics]
    epsilon: Mapping[str, EpsilonBound]
    scores_in: Mapping[str, np.ndarray]
    scores_out: Mapping[str, np.ndarray]
    details: Mapping[str, Mapping[str, Any]]
    n_shadows: int
    n_population: int
    alpha: float
    delta: float
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = list(self.metrics)
        if not names:
            raise ConfigError("an MIAResult needs at least one attack")
        for label, mapping in (
            ("epsilon", self.epsilon),
            ("scores_in", self.scores_in),
            ("scores_out", self.scores_out),
            ("details", self.details),
        ):
            if list(mapping) != names:
                raise ConfigError(
                    f"{label} must have the same attacks as metrics: {names}, got {list(mapping)}"
                )
        check_int("n_shadows", self.n_shadows, minimum=0)
        check_int("n_population", self.n_population, minimum=0)
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "epsilon", MappingProxyType(dict(self.epsilon)))
        object.__setattr__(
            self,
            "scores_in",
            MappingProxyType({k: readonly_copy(v, np.float64) for k, v in self.scores_in.items()}),
        )
        object.__setattr__(
            self,
            "scores_out",
            MappingProxyType({k: readonly_copy(v, np.float64) for k, v in self.scores_out.items()}),
        )
        object.__setattr__(
            self,
            "details",
            MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.details.items()}),
        )
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def attacks(self) -> tuple[str, ...]:
        """Names of the attacks run, in order."""
        return tuple(self.metrics)

    @property
    def best_attack(self) -> str:
        """The attack with the highest AUC (the first one on ties)."""
        return max(self.metrics, key=lambda name: self.metrics[name].auc)

    @property
    def auc(self) -> float:
        """AUC of :attr:`best_attack`."""
        return self.metrics[self.best_attack].auc

    @property
    def tpr_at(self) -> Mapping[float, float]:
        """``{x: TPR@FPR=x}`` of :attr:`best_attack` (convention ``fpr <= x``)."""
        return self.metrics[self.best_attack].tpr_at

    @property
    def epsilon_lower_bound(self) -> float:
        """Largest ε lower bound over the attacks, valid with probability >= 1 − alpha."""
        return max(bound.epsilon for bound in self.epsilon.values())

    def as_dict(self, *, include_roc: bool = False, include_scores: bool = False) -> dict[str, Any]:
        """JSON-friendly copy.

        Args:
            include_roc: Also write every attack's ROC.
            include_scores: Also write the raw scores.

        Example:
            >>> import json
            >>> rng = np.random.default_rng(0)
            >>> logits = rng.normal(size=(40, 3))
            >>> zeros = np.zeros(20, dtype=np.int64)
            >>> result = run_mia_l(lambda X: torch.as_tensor(logits), logits[:20], zeros,
            ...                    logits[20:], zeros, attacks=("loss",))
            >>> sorted(json.loads(json.dumps(result.as_dict())))[:4]
            ['alpha', 'attacks', 'auc', 'best_attack']
        """
        attacks: dict[str, Any] = {}
        for name in self.metrics:
            entry: dict[str, Any] = {
                "metrics": self.metrics[name].as_dict(include_roc=include_roc),
                "epsilon": self.epsilon[name].as_dict(),
                "details": plain(dict(self.details[name])),
                "description": ATTACKS[name].description if name in ATTACKS else "",
            }
            if include_scores:
                entry["scores_in"] = self.scores_in[name].tolist()
                entry["scores_out"] = self.scores_out[name].tolist()
            attacks[name] = entry
        best = self.best_attack
        return {
            "attacks": attacks,
            "best_attack": best,
            "auc": self.auc,
            "tpr_at": {repr(x): tpr for x, tpr in self.tpr_at.items()},
            "tpr_convention": self.metrics[best].tpr_convention,
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "epsilon_correction": (
                f"Bonferroni over {len(self.metrics)} attacks (alpha / {len(self.metrics)} each)"
            ),
            "n_members": self.metrics[best].n_in,
            "n_non_members": self.metrics[best].n_out,
            "n_shadows": self.n_shadows,
            "n_population": self.n_population,
            "alpha": self.alpha,
            "delta": self.delta,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------
# Running attacks on a model
# ---------------------------------------------------------------------------------------------


def _target_outputs(target: object, X: Tensor, batch_size: int | None) -> np.ndarray:
    """Logits ``[m, C]`` of an nn.Module (eval mode, no grad, mode restored) or a callable."""
    step = X.shape[0] if batch_size is None else batch_size
    if isinstance(target, nn.Module):
        reference = next(itertools.chain(target.parameters(), target.buffers()), None)
        device = X.device if reference is None else reference.device
        dtype = X.dtype
        if reference is not None and reference.dtype.is_floating_point:
            dtype = reference.dtype
        was_training = target.training
        target.eval()
        try:
            with torch.no_grad():
                parts = [
                    target(X[i : i + step].to(device=device, dtype=dtype))
                    for i in range(0, X.shape[0], step)
                ]
        finally:
            target.train(was_training)
    elif callable(target):
        with torch.no_grad():
            parts = [target(X[i : i + step]) for i in range(0, X.shape[0], step)]
    else:
        raise ConfigError(
            f"target must be an nn.Module or a callable X -> logits, got {type(target).__name__}"
        )
    arrays = []
    for part in parts:
        if isinstance(part, Tensor):
            part = part.detach().cpu().numpy()
        arrays.append(np.asarray(part))
    out = np.concatenate(arrays, axis=0) if arrays else np.empty((0, 0))
    if out.ndim != 2 or out.shape[0] != X.shape[0]:
        raise InputError(f"the target must return logits [{X.shape[0]}, C], got shape {out.shape}")
    try:
        return _real_array("target outputs", out)
    except InputError as exc:
        raise InputError(f"the target returned unusable logits: {exc}") from exc


def _audit_rows(name: str, X: object, y: object) -> tuple[Tensor, Tensor]:
    features = _as_features(X, name=f"X_{name}")
    labels = _as_labels(y, features.shape[0], name=f"y_{name}")
    return features, labels


def _check_attacks(attacks: object) -> tuple[str, ...]:
    if isinstance(attacks, str) or not isinstance(attacks, Sequence) or len(attacks) == 0:
        raise ConfigError(
            f"attacks must be a non-empty sequence of names from {sorted(ATTACKS)}, got {attacks!r}"
        )
    names = tuple(attacks)
    for name in names:
        if name not in ATTACKS:
            raise ConfigError(f"attacks must be among {sorted(ATTACKS)}, got {name!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"attacks must not repeat a name, got {list(names)}")
    return names


def run_mia_l(
    target: nn.Module | Callable[[Tensor], object],
    X_members: object,
    y_members: object,
    X_non_members: object,
    y_non_members: object,
    *,
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    shadows: ShadowSet | None = None,
    shadow_X: object = None,
    shadow_y: object = None,
    shadow_spec: ShadowSpec | None = None,
    population_X: object = None,
    population_y: object = None,
    cache_dir: str | None = None,
    device: torch.device | str | None = None,
    delta: float = 1e-5,
    alpha: float = 0.05,
    fprs: Sequence[float] = (0.01, 0.001),
    n_bootstrap: int = 0,
    rng: np.random.Generator | None = None,
    gamma: float = 1.0,
    a: float | None = None,
    min_std: float = _DEFAULT_MIN_STD,
    batch_size: int | None = None,
    progress: ProgressFn | None = None,
) -> MIAResult:
    """Run membership-inference attacks on a model and bound ε from them (MIA-L).

    The audited examples are the members (positives) followed by the non-members. Attacks that
    need shadow models use ``shadows``, or train them with ``shadow_spec`` on ``shadow_X``
    (default: the audited examples themselves — the LiRA setup, where each example is IN for half
    of the shadows). Audited rows are found among the shadow data by content (row digests): a row
    the shadows never saw is OUT for all of them, which online LiRA/RMIA refuse. RMIA's population
    z is ``population_X`` or else the shadow-data rows that are not audited; when there are none it
    falls back to the audited rows themselves (noted in the result).

    Args:
        target: An ``nn.Module`` (run in eval mode without gradients on its own device and dtype;
            its mode is restored) or any callable taking a ``[b, ...]`` tensor and returning
            logits ``[b, C]`` (tensor or array) — e.g. a deployed model behind an API.
        X_members: Training rows of the target ``[n_in, ...]``; ``y_members`` their labels.
        X_non_members: Rows it was not trained on; ``y_non_members`` their labels.
        attacks: Keys of :data:`ATTACKS`.
        shadows: Trained shadow models (:func:`train_shadows`).
        shadow_X: The shadows' training pool (to train them, to check ``shadows`` against, and as
            the default population); ``shadow_y`` its labels.
        shadow_spec: How to train shadows when ``shadows`` is None.
        population_X: Population samples for RMIA; ``population_y`` their labels.
        cache_dir: Shadow cache directory (see :func:`train_shadows`).
        device: Where to train shadows (None: the data's device).
        delta: δ of the ε lower bounds.
        alpha: Overall error of the ε bounds (Bonferroni over attacks) and of the metric intervals.
        fprs: FPRs x for TPR@FPR=x.
        n_bootstrap: Bootstrap resamples of each AUC band (0: none).
        rng: Randomness of the bootstrap.
        gamma: RMIA's γ >= 1.
        a: Offline RMIA's coefficient (None: tuned on the shadows).
        min_std: Floor of LiRA's σ.
        batch_size: Rows per forward pass of the target and the shadows (None: all).
        progress: Progress callback for shadow training.

    Returns:
        :class:`MIAResult`.

    Raises:
        InputError: Bad shapes/NaN, shadows that do not match ``shadow_X``, too few IN/OUT shadows.
        ConfigError: Unknown attacks, shadows needed but neither ``shadows`` nor ``shadow_spec``.

    Example:
        >>> from certunlearn.train import SGDConfig
        >>> gen = torch.Generator().manual_seed(0)
        >>> X = torch.randn(60, 5, dtype=torch.float64, generator=gen)
        >>> y = (X[:, 0] + 0.5 * torch.randn(60, dtype=torch.float64, generator=gen) > 0).long()
        >>> spec = ShadowSpec(model="logreg", n_shadows=4,
        ...                   training=SGDConfig(epochs=20, batch_size=10, lr=0.5, seed=1))
        >>> def deployed(rows):  # any callable X -> logits
        ...     return rows[:, :2] * torch.tensor([1.0, 0.0], dtype=rows.dtype)
        >>> result = run_mia_l(deployed, X[:30], y[:30], X[30:], y[30:], shadow_spec=spec,
        ...                    attacks=("loss", "lira-online-fixed", "lira-offline-fixed"))
        >>> result.attacks, 0.0 <= result.auc <= 1.0
        (('loss', 'lira-online-fixed', 'lira-offline-fixed'), True)
    """
    names = _check_attacks(attacks)
    if batch_size is not None:
        check_int("batch_size", batch_size, minimum=1)
    X_in, y_in = _audit_rows("members", X_members, y_members)
    X_out, y_out = _audit_rows("non_members", X_non_members, y_non_members)
    if X_in.shape[1:] != X_out.shape[1:]:
        raise InputError(
            f"X_members rows {tuple(X_in.shape[1:])} and "
            f"X_non_members rows {tuple(X_out.shape[1:])} differ"
        )
    X_audit = torch.cat([X_in, X_out.to(device=X_in.device, dtype=X_in.dtype)])
    y_audit = torch.cat([y_in, y_out.to(y_in.device)])
    labels = y_audit.cpu().numpy()
    n_in = int(X_in.shape[0])
    target_logits = _target_outputs(target, X_audit, batch_size)
    if target_logits.shape[1] <= labels.max():
        raise InputError(
            f"the target returned {target_logits.shape[1]} classes "
            f"but a label is {int(labels.max())}"
        )

    notes: list[str] = []
    need_shadows = any(ATTACKS[n].needs_shadows for n in names)
    need_population = any(ATTACKS[n].needs_population for n in names)
    pool: tuple[Tensor, Tensor] | None = None
    if shadow_X is not None or shadow_y is not None:
        if shadow_X is None or shadow_y is None:
            raise InputError("shadow_X and shadow_y must be given together")
        pool = _audit_rows("shadow", shadow_X, shadow_y)
    given_shadows = shadows is not None
    if shadows is not None and shadow_spec is not None:
        raise ConfigError("pass shadows= (trained) or shadow_spec= (to train), not both")
    if shadows is not None and not isinstance(shadows, ShadowSet):
        raise ConfigError(f"shadows must be a ShadowSet, got {type(shadows).__name__}")
    if need_shadows and shadows is None:
        if shadow_spec is None:
            needing = [n for n in names if ATTACKS[n].needs_shadows]
            raise ConfigError(
                f"attacks {needing} need shadow models: pass shadows= or shadow_spec="
            )
        if pool is None:
            pool = (X_audit, y_audit)
            notes.append(
                "shadows trained on the audited examples (each IN for pkeep of the shadows)"
            )
        shadows = train_shadows(
            shadow_spec, pool[0], pool[1], cache_dir=cache_dir, progress=progress, device=device
        )
    if given_shadows and pool is not None and data_digest(*pool) != shadows.data_digest:
        raise InputError(
            "shadow_X/shadow_y are not the data these shadows were trained on (digest differs)"
        )

    inputs: dict[str, Any] = {"target_logits": target_logits, "labels": labels}
    n_population = 0
    if need_shadows and shadows is not None:
        shadow_logits = shadows.logits(X_audit, batch_size=batch_size).cpu().numpy()
        if shadow_logits.shape[-1] != target_logits.shape[1]:
            raise InputError(
                f"the shadows have {shadow_logits.shape[-1]} classes, "
                f"the target {target_logits.shape[1]}"
            )
        inputs["shadow_logits"] = shadow_logits
        inputs["membership"] = shadows.membership_for(X_audit, y_audit)
        unseen = int((inputs["membership"].sum(axis=0) == 0).sum())
        if unseen:
            notes.append(
                f"{unseen} audited examples are not in the shadows' data (OUT for every shadow)"
            )
        if need_population:
            if population_X is not None or population_y is not None:
                if population_X is None or population_y is None:
                    raise InputError("population_X and population_y must be given together")
                pop_X, pop_y = _audit_rows("population", population_X, population_y)
                source = "population_X"
            else:
                pop_X, pop_y, source = (
                    X_audit,
                    y_audit,
                    "audited examples (no other population given)",
                )
                if pool is not None:
                    audited = {d.tobytes() for d in row_digests(X_audit, y_audit)}
                    keep = [
                        # the pool is the shadows' data (trained here, or its digest checked above)
                        i for i, d in enumerate(shadows.row_digests) if d.tobytes() not in audited
                    ]
                    if keep:
                        index = torch.as_tensor(keep, dtype=torch.int64, device=pool[0].device)
                        pop_X, pop_y, source = (
                            pool[0][index],
                            pool[1][index],
                            "shadow data outside the audit",
                        )
            notes.append(f"RMIA population: {source} ({int(pop_X.shape[0])} samples)")
            n_population = int(pop_X.shape[0])
            inputs["population_logits"] = _target_outputs(target, pop_X, batch_size)
            inputs["population_labels"] = pop_y.cpu().numpy()
            inputs["population_shadow_logits"] = (
                shadows.logits(pop_X, batch_size=batch_size).cpu().numpy()
            )
            inputs["population_membership"] = shadows.membership_for(pop_X, pop_y)
    bundle = AttackInputs(
        **inputs,
        options={
            "gamma": _check_gamma(gamma),
            "a": None if a is None else _check_a(a),
            "min_std": check_positive("min_std", min_std),
        },
    )

    metrics: dict[str, AttackMetrics] = {}
    bounds: dict[str, EpsilonBound] = {}
    scores_in: dict[str, np.ndarray] = {}
    scores_out: dict[str, np.ndarray] = {}
    details: dict[str, Mapping[str, Any]] = {}
    for name in names:
        output = ATTACKS[name].fn(bundle)
        scores, extra = output if isinstance(output, tuple) else (output, {})
        scores = _real_array(f"scores of attack {name!r}", scores)
        if scores.shape != (labels.size,):
            raise InputError(
                f"attack {name!r} returned shape {scores.shape}, expected ({labels.size},)"
            )
        scores_in[name], scores_out[name] = scores[:n_in], scores[n_in:]
        metrics[name] = attack_metrics(
            scores[:n_in], scores[n_in:], alpha=alpha, fprs=fprs, n_bootstrap=n_bootstrap, rng=rng
        )
        bounds[name] = epsilon_lower_bound(
            scores[:n_in], scores[n_in:], delta=delta, alpha=alpha / len(names)
        )
        details[name] = dict(extra)
    return MIAResult(
        metrics=metrics,
        epsilon=bounds,
        scores_in=scores_in,
        scores_out=scores_out,
        details=details,
        n_shadows=0 if shadows is None or not need_shadows else shadows.n_shadows,
        n_population=n_population,
        alpha=alpha,
        delta=delta,
        notes=tuple(notes),
    )
