r"""RMIA, the relative membership attack (Zarifzadeh, Liu & Shokri, "Low-Cost High-Power Membership
Inference Attacks", ICML 2024), from a target's and its reference models' true-label probabilities.

With ``Pr(x|θ)`` the target's true-label probability (averaged over augmented queries),
``LR(x, z) = [Pr(x|θ)/Pr(x)] / [Pr(z|θ)/Pr(z)]`` and ``Score(x) = Pr_z[LR(x, z) >= γ]`` over
population samples z, higher = member. Online ``Pr(x) = ½(P_IN(x) + P_OUT(x))`` over the reference
models; offline ``Pr(x) = ((1 + a)/2)·P_OUT(x) + (1 − a)/2`` with ``a ∈ {0, 0.1, …, 1}``
(:data:`RMIA_A_GRID`) tuned (:func:`tune_rmia_a`) by attacking each reference model with the others
and keeping the ``a`` of highest mean AUC. For a fixed population the score is a monotone step
function of ``Pr(x|θ)/Pr(x)`` (computed by one sort, O((n + m) log m)).

Pure numpy/scipy: nothing here imports torch. :data:`~certunlearn.audit.attacks.ATTACKS` holds
``rmia`` (online) and ``rmia-offline``.

Example:
    >>> p = lambda v: np.stack([np.asarray(v, float), 1 - np.asarray(v, float)], axis=-1)
    >>> member = np.array([[True, False], [False, True]])         # 2 references, 2 examples
    >>> refs = p([[0.9, 0.6], [0.6, 0.9]])
    >>> z_refs, y0 = p([[0.7, 0.7], [0.7, 0.7]]), np.zeros(2, np.int64)
    >>> rmia(p([0.95, 0.6]), np.zeros(2, np.int64), refs, member, p([0.7, 0.7]), y0,
    ...      population_reference_probs=z_refs).tolist()
    [1.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from certunlearn.audit.attack_checks import _labels, _membership, _per_example, _real_array
from certunlearn.audit.metrics import attack_metrics
from certunlearn.audit.signals import confidence
from certunlearn.errors import ConfigError, InputError
from certunlearn.validation import check_real

__all__ = ["RMIA_A_GRID", "rmia", "tune_rmia_a"]

RMIA_A_GRID = tuple(round(0.1 * i, 1) for i in range(11))
"""Candidate offline ``a`` values of :func:`tune_rmia_a`: 0, 0.1, …, 1."""


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
