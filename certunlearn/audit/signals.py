r"""Per-example membership signals from a classifier's outputs (docs/auditing.md, "Signals and metrics").

Every function takes integer ``labels [n]`` and exactly one of ``logits [n, C]`` or
``probabilities [n, C]`` (C >= 2), works in float64, and returns a float64 array ``[n]``:

* :func:`loss` — cross-entropy ``L = −log p_y``;
* :func:`confidence` — ``p_y``;
* :func:`lira_logit` — the LiRA statistic ``φ = log p_y − log Σ_{i≠y} p_i`` (Carlini et al., S&P 2022);
* :func:`modified_entropy` — ``Mentr = −(1 − p_y) log p_y − Σ_{i≠y} p_i log(1 − p_i)``
  (Song & Mittal, USENIX Security 2021).

From logits every logarithm is formed in the log domain (log-sum-exp after subtracting the row
maximum), so nothing cancels: with ``g = z_y − LSE_{i≠y}(z)``, ``log p_y = −log(1 + e^{−g})`` and
``log Σ_{i≠y} p_i = −log(1 + e^{g})`` — ``1 − p_y`` is never formed. As in Carlini et al.'s code, every probability that enters a logarithm is
**floored at 1e-45** (:data:`PROBABILITY_FLOOR`), for both input kinds, so all signals stay finite:
``L ∈ [0, 103.6]`` and ``φ ∈ [−103.6, 103.6]`` (saturation needs a logit gap above ~103).

:data:`SIGNALS` maps a name to a function returning a **membership score, higher = more likely
member** (the one convention of the package): ``loss`` → −L, ``confidence`` → p_y,
``lira_logit`` → φ, ``mentr`` → −Mentr.

Example:
    >>> logits = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    >>> labels = np.array([0, 0])
    >>> np.round(loss(logits=logits, labels=labels), 4)
    array([0.036, 4.036])
    >>> np.round(membership_scores("loss", logits=logits, labels=labels), 4)
    array([-0.036, -4.036])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from certunlearn.errors import ConfigError, InputError
from certunlearn.validation import check_real_array, register

__all__ = [
    "PROBABILITY_FLOOR",
    "SIGNALS",
    "confidence",
    "lira_logit",
    "loss",
    "membership_scores",
    "modified_entropy",
    "register_signal",
]

PROBABILITY_FLOOR = 1e-45
"""Smallest probability that enters a logarithm (Carlini et al.'s LiRA code uses the same)."""

_LOG_FLOOR = math.log(PROBABILITY_FLOOR)
_PROBABILITY_SUM_TOLERANCE = 1e-3  # rows of ``probabilities`` must sum to 1 within this

SignalFunction = Callable[..., np.ndarray]
"""``f(*, labels, logits=None, probabilities=None) -> scores [n]``, higher = member."""


@dataclass(frozen=True, slots=True)
class _LogTerms:
    """log-domain pieces shared by the signals, each floored at log(1e-45)."""

    p: np.ndarray  # [n, C] p_i (not floored)
    log_p: np.ndarray  # [n, C] log p_i
    log_p_true: np.ndarray  # [n] log p_y
    log_p_rest: np.ndarray  # [n] log Σ_{i≠y} p_i
    log_one_minus_p: np.ndarray  # [n, C] log(1 − p_i), exact also for the largest p_i
    true_mask: np.ndarray  # [n, C] bool, True at column y


def _check_labels(labels: object, n: int, num_classes: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"labels must be an integer array, got dtype {array.dtype}")
    if array.shape != (n,):
        raise InputError(f"labels must have shape ({n},) to match the outputs, got {array.shape}")
    if n and (array.min() < 0 or array.max() >= num_classes):
        bad = array[(array < 0) | (array >= num_classes)]
        raise InputError(
            f"labels must be in [0, {num_classes - 1}] for {num_classes} classes, got {bad[:5].tolist()}"
        )
    return array.astype(np.int64)


def _check_outputs(name: str, values: object) -> np.ndarray:
    return check_real_array(name, values, ndim=2, min_columns=2)


def _check_probabilities(name: str, values: object, *, hint: str = "") -> np.ndarray:
    """``[n, C]`` probabilities: in [0, 1], rows summing to 1 within the tolerance (shared with features)."""
    p = _check_outputs(name, values)
    if np.any(p < 0.0) or np.any(p > 1.0):
        raise InputError(f"{name} must lie in [0, 1]")
    if p.shape[0]:
        sums = p.sum(axis=1)
        worst = int(np.argmax(np.abs(sums - 1.0)))
        if abs(sums[worst] - 1.0) > _PROBABILITY_SUM_TOLERANCE:
            raise InputError(
                f"each row of {name} must sum to 1 (tolerance {_PROBABILITY_SUM_TOLERANCE}), "
                f"got a row summing to {float(sums[worst])!r}{hint}"
            )
    return p


def _log_terms(*, labels: object, logits: object, probabilities: object) -> _LogTerms:
    if (logits is None) == (probabilities is None):
        raise InputError("pass exactly one of logits= or probabilities=")
    if logits is not None:
        z = _check_outputs("logits", logits)
        y = _check_labels(labels, z.shape[0], z.shape[1])
        rows = np.arange(z.shape[0])
        true_mask = np.zeros(z.shape, dtype=bool)
        true_mask[rows, y] = True
        log_p = z - logsumexp(z, axis=1)[:, None]
        # With g = z_c − LSE_{i≠c}(z): log p_c = −log(1 + e^{−g}) and log(1 − p_c) = −log(1 + e^{g}),
        # both accurate to a few ulps even when p_c is within 1e-300 of 1 (no 1 − p_c is formed).
        true_gap = z[rows, y] - logsumexp(np.where(true_mask, -np.inf, z), axis=1)
        log_p_rest = -np.logaddexp(0.0, true_gap)
        log_p[rows, y] = -np.logaddexp(0.0, -true_gap)
        top = np.argmax(z, axis=1)
        top_mask = np.zeros(z.shape, dtype=bool)
        top_mask[rows, top] = True
        top_gap = z[rows, top] - logsumexp(np.where(top_mask, -np.inf, z), axis=1)
        log_one_minus_top = -np.logaddexp(0.0, top_gap)
        log_p[rows, top] = -np.logaddexp(0.0, -top_gap)
        p = np.exp(log_p)
    else:
        p = _check_probabilities("probabilities", probabilities, hint="; pass logits= for unnormalised scores")
        y = _check_labels(labels, p.shape[0], p.shape[1])
        rows = np.arange(p.shape[0])
        true_mask = np.zeros(p.shape, dtype=bool)
        true_mask[rows, y] = True
        with np.errstate(divide="ignore"):
            log_p = np.log(np.maximum(p, PROBABILITY_FLOOR))
            log_p_rest = np.log(np.where(true_mask, 0.0, p).sum(axis=1))
            top = np.argmax(p, axis=1)
            top_mask = np.zeros(p.shape, dtype=bool)
            top_mask[rows, top] = True
            log_one_minus_top = np.log(np.where(top_mask, 0.0, p).sum(axis=1))
    log_p = np.maximum(log_p, _LOG_FLOOR)
    rows = np.arange(log_p.shape[0])
    with np.errstate(divide="ignore"):
        # log1p(−p_i) is accurate for p_i <= 1/2; only the largest p_i can exceed 1/2, and that
        # column is replaced by the exact log of the sum of the other probabilities.
        log_one_minus_p = np.log1p(-p)
    log_one_minus_p[rows, top] = log_one_minus_top
    return _LogTerms(
        p=p,
        log_p=log_p,
        log_p_true=np.maximum(log_p[rows, y], _LOG_FLOOR),
        log_p_rest=np.maximum(log_p_rest, _LOG_FLOOR),
        log_one_minus_p=np.maximum(log_one_minus_p, _LOG_FLOOR),
        true_mask=true_mask,
    )


def loss(*, labels: object, logits: object = None, probabilities: object = None) -> np.ndarray:
    """Cross-entropy loss ``L = −log p_y`` per example (lower for members).

    Args:
        labels: Integer class labels ``[n]`` in ``[0, C)``.
        logits: Unnormalised outputs ``[n, C]`` (give this or ``probabilities``).
        probabilities: Softmax outputs ``[n, C]``, rows summing to 1.

    Returns:
        ``[n]`` float64, in ``[0, −log 1e-45 ≈ 103.6]``.

    Raises:
        InputError: Bad shapes or dtypes, NaN/inf values, labels out of range, both or neither
            of ``logits``/``probabilities``.

    Example:
        >>> loss(probabilities=np.array([[0.5, 0.5], [0.9, 0.1]]), labels=np.array([1, 0])).round(4)
        array([0.6931, 0.1054])
    """
    terms = _log_terms(labels=labels, logits=logits, probabilities=probabilities)
    return -terms.log_p_true


def confidence(
    *, labels: object, logits: object = None, probabilities: object = None
) -> np.ndarray:
    """Probability of the true label ``p_y`` per example (higher for members).

    Args:
        labels: Integer class labels ``[n]``.
        logits: Unnormalised outputs ``[n, C]`` (give this or ``probabilities``).
        probabilities: Softmax outputs ``[n, C]``.

    Returns:
        ``[n]`` float64 in ``[1e-45, 1]``; ``confidence == exp(−loss)`` exactly.

    Example:
        >>> confidence(logits=np.array([[0.0, 0.0]]), labels=np.array([1]))
        array([0.5])
    """
    terms = _log_terms(labels=labels, logits=logits, probabilities=probabilities)
    return np.exp(terms.log_p_true)


def lira_logit(
    *, labels: object, logits: object = None, probabilities: object = None
) -> np.ndarray:
    """LiRA's logit-scaled confidence ``φ = log p_y − log Σ_{i≠y} p_i`` (Carlini et al., S&P 2022).

    From logits this is ``z_y − LSE_{i≠y}(z)``, computed without forming ``1 − p_y``; from
    probabilities the sum runs over the other classes. Both logarithms are floored at log(1e-45),
    as in the official code, so ``φ ∈ [−103.6, 103.6]`` and is always finite.

    Args:
        labels: Integer class labels ``[n]``.
        logits: Unnormalised outputs ``[n, C]`` (give this or ``probabilities``).
        probabilities: Softmax outputs ``[n, C]``.

    Returns:
        ``[n]`` float64, higher for members.

    Example:
        >>> lira_logit(logits=np.array([[2.0, 0.0, 0.0]]), labels=np.array([0])).round(4)
        array([1.3069])
        >>> round(float(lira_logit(logits=np.array([[1e6, 0.0]]), labels=np.array([0]))[0]), 4)
        103.6163
    """
    terms = _log_terms(labels=labels, logits=logits, probabilities=probabilities)
    return terms.log_p_true - terms.log_p_rest


def modified_entropy(
    *, labels: object, logits: object = None, probabilities: object = None
) -> np.ndarray:
    """Modified prediction entropy (Song & Mittal, USENIX Security 2021), lower for members.

    ``Mentr = −(1 − p_y) log p_y − Σ_{i≠y} p_i log(1 − p_i)``, with ``1 − p_y`` and the
    ``1 − p_i`` of the largest wrong-class probability formed as sums of the other probabilities
    (no cancellation) and logarithms floored at log(1e-45).

    Args:
        labels: Integer class labels ``[n]``.
        logits: Unnormalised outputs ``[n, C]`` (give this or ``probabilities``).
        probabilities: Softmax outputs ``[n, C]``.

    Returns:
        ``[n]`` float64, >= 0; 0 for a one-hot correct prediction, large for a confident wrong one.

    Example:
        >>> p = np.array([[0.8, 0.2], [0.2, 0.8]])
        >>> modified_entropy(probabilities=p, labels=np.array([0, 0])).round(4)
        array([0.0893, 2.5751])
    """
    terms = _log_terms(labels=labels, logits=logits, probabilities=probabilities)
    p_rest = np.exp(terms.log_p_rest)
    p_wrong = np.where(terms.true_mask, 0.0, terms.p)
    value = -p_rest * terms.log_p_true - np.sum(p_wrong * terms.log_one_minus_p, axis=1)
    return np.maximum(value, 0.0)


def _negative_loss(
    *, labels: object, logits: object = None, probabilities: object = None
) -> np.ndarray:
    return -loss(labels=labels, logits=logits, probabilities=probabilities)


def _negative_modified_entropy(
    *, labels: object, logits: object = None, probabilities: object = None
) -> np.ndarray:
    return -modified_entropy(labels=labels, logits=logits, probabilities=probabilities)


SIGNALS: dict[str, SignalFunction] = {
    "confidence": confidence,
    "lira_logit": lira_logit,
    "loss": _negative_loss,
    "mentr": _negative_modified_entropy,
}
"""Registry of membership scores (higher = member): name -> f(*, labels, logits, probabilities)."""


def register_signal(name: str, fn: SignalFunction, *, force: bool = False) -> None:
    """Register a membership score ``f(*, labels, logits=None, probabilities=None) -> [n]``.

    The function must return **higher = more likely member** scores.

    Args:
        name: Registry key.
        fn: The signal function.
        force: Replace an existing entry instead of raising.

    Raises:
        ConfigError: ``name`` is taken and ``force`` is False.

    Example:
        >>> register_signal("loss", _negative_loss)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: signal 'loss' is already registered; pass force=True to replace it
    """
    register("signal", SIGNALS, name, fn, force=force)


def membership_scores(
    signal: str, *, labels: object, logits: object = None, probabilities: object = None
) -> np.ndarray:
    """Membership scores (higher = member) of the registered ``signal``.

    Args:
        signal: A key of :data:`SIGNALS` (``"loss"``, ``"confidence"``, ``"lira_logit"``, ``"mentr"``).
        labels: Integer class labels ``[n]``.
        logits: Unnormalised outputs ``[n, C]`` (give this or ``probabilities``).
        probabilities: Softmax outputs ``[n, C]``.

    Returns:
        ``[n]`` float64 scores.

    Raises:
        ConfigError: Unknown signal (the message lists the registered ones).

    Example:
        >>> membership_scores("mentr", probabilities=np.array([[0.8, 0.2]]), labels=np.array([0])).round(4)
        array([-0.0893])
    """
    if signal not in SIGNALS:
        raise ConfigError(f"signal must be one of {sorted(SIGNALS)}, got {signal!r}")
    return SIGNALS[signal](labels=labels, logits=logits, probabilities=probabilities)
