"""Statistics behind the verdict: the AUC's standard error and multiple-testing correction.

Example:
    >>> round(hanley_mcneil_se(auc=0.5, n_members=100, n_non_members=100), 4)
    0.0409
    >>> benjamini_hochberg([0.01, 0.04, 0.03])
    [0.03, 0.04, 0.04]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from certunlearn.errors import ConfigError
from certunlearn.validation import check_int, check_real

__all__ = ["benjamini_hochberg", "hanley_mcneil_se"]


def hanley_mcneil_se(*, auc: float, n_members: int, n_non_members: int) -> float:
    """Standard error of an empirical AUC (Hanley & McNeil, Radiology 1982).

    ``SE² = [A(1−A) + (n₁−1)(Q₁−A²) + (n₀−1)(Q₂−A²)] / (n₁n₀)`` with ``Q₁ = A/(2−A)`` and
    ``Q₂ = 2A²/(1+A)``.

    Args:
        auc: The AUC, in [0, 1].
        n_members: Number of members (positives), >= 1.
        n_non_members: Number of non-members (negatives), >= 1.

    Returns:
        The standard error.

    Example:
        >>> round(hanley_mcneil_se(auc=0.5, n_members=100, n_non_members=100), 4)
        0.0409
    """
    a = check_real("auc", auc)
    if not 0.0 <= a <= 1.0:
        raise ConfigError(f"auc must be in [0, 1], got {auc!r}")
    n1 = check_int("n_members", n_members, minimum=1)
    n0 = check_int("n_non_members", n_non_members, minimum=1)
    q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
    variance = (a * (1.0 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    return math.sqrt(max(variance, 0.0))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (step-up, capped at 1), in the input order.

    Args:
        p_values: Raw p-values of the tests in one family.

    Returns:
        Adjusted p-values; reject where adjusted p < α (controls the false-discovery rate at α).

    Example:
        >>> benjamini_hochberg([0.01, 0.04, 0.03])
        [0.03, 0.04, 0.04]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        index = order[rank - 1]
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = min(1.0, running)
    return [round(p, 15) for p in adjusted]
