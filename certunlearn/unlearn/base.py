"""The Unlearner interface, its result type and the method registry.

Example:
    >>> "hfocu" in UNLEARNERS or True  # methods register themselves on import of certunlearn.unlearn
    True
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from certunlearn.errors import ConfigError
from certunlearn.validation import register

__all__ = [
    "CERTIFICATES",
    "REFERENCES",
    "UNLEARNERS",
    "UnlearnResult",
    "Unlearner",
    "feature_bound_problem",
    "gaussian_noise_like",
    "tensor_digest",
    "get_unlearner",
    "register_unlearner",
]


CERTIFICATES = ("refine", "worst-case")
"""``refine``: a measured bound against the exact retrain, released under a public budget
(docs/theory.md §10); ``worst-case``: an a priori bound computed from public constants, no data pass."""

REFERENCES = ("erm", "coupled-sgd", "none")
"""What a certificate compares the release with: ``erm`` the exact minimiser of the remaining-data
objective, ``coupled-sgd`` the coupled retrain on the recorded schedule, ``none`` no certificate."""


@dataclass(frozen=True, slots=True)
class UnlearnResult:
    """What one deletion request produced.

    Attributes:
        method: Registered name of the method.
        request_ids: The ids forgotten by this request.
        cumulative_ids: Every id forgotten so far (this request included), sorted.
        params_noiseless: w̄, keyed like ``model.state_dict()``; private, never release it.
        params_released: w̄ + N(0, σ²I) (equal to ``params_noiseless`` when σ = 0).
        sigma: Noise standard deviation σ actually added (0.0 when none).
        sensitivity: Δ the noise is calibrated to; ``None`` when no bound applies.
        certified: True only when Δ comes from a bound whose assumptions hold (then
            ‖params_noiseless − reference‖ ≤ Δ and the release is (ε, δ)-certified).
        status: ``certified``, ``conditional`` or ``uncertified``.
        assumptions: Statements the certificate relies on.
        reasons: Why the release is not certified (empty when it is).
        epsilon: ε of the release (None if no noise was calibrated).
        delta: δ of the release.
        calibration: Calibration method of σ (``analytic`` / ``classical``) or ``none``.
        noise_only_sigma: σ a release of the *un-unlearned* model would need under the same
            assumptions (what unlearning is compared with), when defined.
        elapsed_s: Wall time of the unlearning step, noise included.
        extras: Method-specific figures (step norms, acceptance ratios ...).
        reference: ``erm`` (the exact minimiser of the remaining-data objective
            F_R = (1/|R|) Σ_{i∈R} [loss_i + (λ/2)‖θ‖²]), ``coupled-sgd`` (the full-batch-normalised
            coupled retrain) or ``none``: what ``sensitivity`` measures the distance to.
        certificate: ``refine`` (measured bound under a public budget) or ``worst-case``.
        sensitivity_budget: The public budget Δ_b σ is calibrated to (``refine``; then
            ``sensitivity`` equals it).
        measured_bound: The data-dependent bound on ‖params_noiseless − reference‖ (``refine``); a
            private diagnostic like ``params_noiseless``, ≤ the budget when certified.
    """

    method: str
    request_ids: tuple[int, ...]
    cumulative_ids: tuple[int, ...]
    params_noiseless: dict[str, Tensor]
    params_released: dict[str, Tensor]
    sigma: float
    sensitivity: float | None
    certified: bool
    status: str
    assumptions: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    epsilon: float | None = None
    delta: float | None = None
    calibration: str = "none"
    noise_only_sigma: float | None = None
    elapsed_s: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    reference: str = "none"
    certificate: str = "worst-case"
    sensitivity_budget: float | None = None
    measured_bound: float | None = None

    def __post_init__(self) -> None:
        if self.sigma < 0 or not math.isfinite(self.sigma):
            raise ConfigError(f"sigma must be finite and >= 0, got {self.sigma!r}")
        if self.certified and (self.sensitivity is None or self.status != "certified"):
            raise ConfigError("a certified result needs a sensitivity and status 'certified'")
        if self.certified and not (self.sigma > 0 and self.reference != "none"):
            raise ConfigError("a certified release needs sigma > 0 and a reference")
        if self.reference not in REFERENCES or self.certificate not in CERTIFICATES:
            raise ConfigError(f"reference must be one of {list(REFERENCES)} and certificate one of "
                              f"{list(CERTIFICATES)}, got {self.reference!r}, {self.certificate!r}")
        if self.certified and self.certificate == "refine" and not (
                self.measured_bound is not None and self.sensitivity_budget is not None
                and self.measured_bound <= self.sensitivity_budget == self.sensitivity):
            raise ConfigError("a refine certificate needs measured_bound <= sensitivity_budget = sensitivity")
        if set(self.params_noiseless) != set(self.params_released):
            raise ConfigError("noiseless and released parameters must have the same keys")

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no tensors)."""
        return {
            "method": self.method,
            "request_ids": list(self.request_ids),
            "cumulative_deletions": len(self.cumulative_ids),
            "sigma": self.sigma,
            "sensitivity": self.sensitivity,
            "certified": self.certified,
            "status": self.status,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "calibration": self.calibration,
            "noise_only_sigma": self.noise_only_sigma,
            "reference": self.reference,
            "certificate": self.certificate,
            "sensitivity_budget": self.sensitivity_budget,
            "measured_bound": self.measured_bound,
            "assumptions": list(self.assumptions),
            "reasons": list(self.reasons),
            "elapsed_s": self.elapsed_s,
            **{k: v for k, v in self.extras.items() if isinstance(v, (int, float, str, bool))},
        }


class Unlearner(abc.ABC):
    """Base class: ``fit(...) -> self`` then ``forget(ids, ...) -> UnlearnResult``.

    Fitted state carries a trailing underscore; ``__init__`` only stores arguments.
    """

    name: ClassVar[str] = "base"

    @abc.abstractmethod
    def forget(self, ids: Any, **kwargs: Any) -> UnlearnResult:
        """Forget ``ids``; see subclasses."""


UNLEARNERS: dict[str, type[Unlearner]] = {}
"""Registry of unlearning methods: name -> class."""


def register_unlearner(name: str, cls: type[Unlearner], *, force: bool = False) -> None:
    """Register an unlearning method class under ``name`` (refuses to overwrite unless ``force``)."""
    register("unlearner", UNLEARNERS, name, cls, force=force)


def get_unlearner(name: str) -> type[Unlearner]:
    """Look up a method class by name; the error lists the registered names."""
    try:
        return UNLEARNERS[name]
    except KeyError:
        raise ConfigError(f"unknown unlearning method {name!r}: use one of {sorted(UNLEARNERS)}") from None


def gaussian_noise_like(theta: Tensor, sigma: float, generator: torch.Generator | None) -> Tensor:
    """N(0, σ² I) shaped like ``theta`` on its device, from the injected generator."""
    if sigma == 0.0:
        return torch.zeros_like(theta)
    noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype, device=theta.device)
    return noise.mul_(sigma)


def feature_bound_problem(X: Tensor, bound: float) -> str | None:
    """Why the rows of ``X`` break the public feature-norm bound, or None when they respect it.

    Rows clipped to norm X in float32 can come out at X·(1 + 1e-7); rows up to X·(1 + 4·machine-ε)
    of X's dtype are accepted (docs/theory.md §5.5) and the constants are derived from X itself.

    Example:
        >>> feature_bound_problem(torch.ones(2, 1, dtype=torch.float32) * 1.0000001, 1.0) is None
        True
        >>> feature_bound_problem(torch.full((1, 1), 2.0), 1.0)
        'a training row has norm 2 > feature_norm_bound 1'
    """
    measured = float(X.flatten(1).norm(dim=1).max())
    if measured > bound * (1.0 + 4.0 * torch.finfo(X.dtype).eps):
        return f"a training row has norm {measured:.6g} > feature_norm_bound {bound:g}"
    return None


def tensor_digest(theta: Tensor) -> str:
    """SHA-256 of a tensor's float64 bytes on the CPU (model lineage in ledgers and reports).

    Example:
        >>> tensor_digest(torch.zeros(2)) == tensor_digest(torch.zeros(2, dtype=torch.float64))
        True
    """
    import hashlib

    data = theta.detach().to(device="cpu", dtype=torch.float64).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()
