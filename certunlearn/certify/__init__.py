"""Pure numpy/scipy certification maths: noise calibration, error bounds, capacity, ledger.

Nothing in this subpackage imports torch.
"""

from certunlearn.certify.gaussian import (
    CALIBRATION_METHODS,
    gaussian_delta,
    gaussian_epsilon,
    gaussian_sigma,
)

__all__ = ["CALIBRATION_METHODS", "gaussian_delta", "gaussian_epsilon", "gaussian_sigma"]
