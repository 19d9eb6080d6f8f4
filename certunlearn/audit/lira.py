r"""LiRA, the likelihood-ratio membership attack (Carlini et al., "Membership Inference Attacks From
First Principles", IEEE S&P 2022), on the logit-scaled confidence of a target and its shadow models.

The statistic is ``φ = log p_y − log Σ_{i≠y} p_i`` (:func:`~certunlearn.audit.signals.lira_logit`)
of the target and of N shadow models, each IN or OUT for every example. Per example (and per
augmented query k when logits carry a K axis) ``μ_in``/``μ_out`` are **medians** over the IN/OUT
shadows; ``σ_in``/``σ_out`` are per-example standard deviations (``ddof=1``) or, in the *fixed*
variants, one global value per population: the pooled within-example deviation
``σ² = Σ_{x,k} Σ_j (φ_j − mean_{x,k})² / Σ_{x,k} (n_x − 1)`` taken over IN shadows for ``σ_in`` and
over OUT shadows for ``σ_out``. The authors' code (tensorflow/privacy,
``research/mi_lira_2021/plot.py``, ``generate_ours`` with ``fix_variance=True``) uses ``np.std`` of
all values, which also counts the spread between examples, and computes the global OUT value from
the IN data (``std_out = np.std(dat_in)``); neither is reproduced. Scores, higher = member:

- online: ``mean_k [log N(φ_k; μ_in, σ_in²) − log N(φ_k; μ_out, σ_out²)]``;
- offline, one-sided (the paper's form): ``mean_k log Φ((φ_k − μ_out)/σ_out)`` — the paper's
  ``Φ(·)`` in the log domain, so strong members do not all tie at Φ = 1 (same ROC otherwise). The
  authors' code scores offline with the two-sided OUT log-density instead; that is not offered.

Pure numpy/scipy: nothing here imports torch. :data:`~certunlearn.audit.attacks.ATTACKS` holds the
four variants as ``lira-online``, ``lira-offline``, ``lira-online-fixed``, ``lira-offline-fixed``.

Example:
    >>> rng = np.random.default_rng(0)
    >>> member = np.tile([[True], [False]], (4, 100))             # 8 shadows, 100 examples
    >>> shift = np.where(member, 1.0, 0.0) + rng.normal(0, 0.3, (8, 100))
    >>> shadows = np.stack([shift, np.zeros((8, 100))], axis=-1)    # φ = shift for label 0
    >>> target = np.stack([np.r_[np.ones(50), np.zeros(50)], np.zeros(100)], axis=-1)
    >>> s = lira(target, np.zeros(100, np.int64), shadows, member, variant="online-fixed")
    >>> bool(s[:50].mean() > 0 > s[50:].mean())
    True
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr

from certunlearn.audit.attack_checks import _labels, _membership, _per_example, _per_model
from certunlearn.audit.signals import lira_logit
from certunlearn.errors import InputError
from certunlearn.validation import check_choice, check_positive

__all__ = ["DEFAULT_MIN_STD", "LIRA_VARIANTS", "lira"]

LIRA_VARIANTS = ("online", "offline", "online-fixed", "offline-fixed")
"""Allowed ``variant`` values of :func:`lira`."""

DEFAULT_MIN_STD = 1e-6
"""Default floor of LiRA's σ: identical shadow outputs (saturated φ) stay finite."""


def _phi(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA logit of ``[..., n, K, C]`` outputs -> ``[..., n, K]``."""
    shape = outputs.shape
    n, queries, classes = shape[-3], shape[-2], shape[-1]
    flat_labels = np.tile(np.repeat(labels, queries), outputs.size // (n * queries * classes))
    return lira_logit(logits=outputs.reshape(-1, classes), labels=flat_labels).reshape(shape[:-1])


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
    min_std: float = DEFAULT_MIN_STD,
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
