"""One error tree for the whole library.

Every error raised on bad input subclasses :class:`CertUnlearnError` and either ``ValueError``
(the caller passed something wrong) or ``RuntimeError`` (a computation could not be completed).
The CLI maps :class:`CertUnlearnError` subclasses of ``ValueError`` to exit code 2.

Example:
    >>> issubclass(ConfigError, ValueError)
    True
"""

from __future__ import annotations


class CertUnlearnError(Exception):
    """Base class of every error certunlearn raises on purpose."""


class ConfigError(CertUnlearnError, ValueError):
    """A configuration value is out of its allowed range or of the wrong type."""


class InputError(CertUnlearnError, ValueError):
    """Input data is malformed: wrong shapes, NaN or infinite values, unreadable files."""


class SampleIdError(InputError):
    """A sample id is unknown, untracked, repeated, or was already forgotten."""


class StateError(InputError):
    """A state directory (certunlearn.service) is corrupt, truncated, foreign or from a newer version."""


class AssumptionError(CertUnlearnError, ValueError):
    """A bound's assumption does not hold for the given setting."""


class CalibrationError(CertUnlearnError, RuntimeError):
    """A numerical calibration failed to find a safe value."""


class UnlearningError(CertUnlearnError, RuntimeError):
    """An unlearning step could not produce a usable model (for example non-finite parameters)."""


class RefinementRefused(UnlearningError):
    """Refinement could not bring the measured bound within the public budget: nothing is released."""


class PolicyError(CertUnlearnError, RuntimeError):
    """A request would exceed the privacy policy (budget, deletion capacity)."""


class PrivacyLeakWarning(UserWarning):
    """A quantity that should be public was estimated from private data."""
