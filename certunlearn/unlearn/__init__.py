"""Unlearning methods behind one interface, plus the per-sample statistics store.

Example:
    >>> from certunlearn.unlearn import UNLEARNERS
    >>> "hfocu" in UNLEARNERS
    True
"""

from certunlearn.unlearn.base import (
    UNLEARNERS,
    Unlearner,
    UnlearnResult,
    get_unlearner,
    register_unlearner,
)
from certunlearn.unlearn.hfocu import HFOCU
from certunlearn.unlearn.store import StatisticsStore

__all__ = [
    "HFOCU",
    "UNLEARNERS",
    "StatisticsStore",
    "UnlearnResult",
    "Unlearner",
    "get_unlearner",
    "register_unlearner",
]
