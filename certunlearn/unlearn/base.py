"""The Unlearner interface, its result type and the method registry.

Example:
    >>> import certunlearn.unlearn  # the methods register themselves when the package is imported
    >>> {"hfocu", "curenewton", "coupled-retrain"} <= set(UNLEARNERS)
    True
"""

from __future__ import annotations

import abc
import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import torch
from torch import Tensor, nn

from certunlearn.certify.assumptions import Bound
from certunlearn.certify.ledger import Ledger
from certunlearn.errors import ConfigError, InputError, SampleIdError
from certunlearn.progress import ProgressFn
from certunlearn.serialize import plain
from certunlearn.train.sgd import check_sample_ids
from certunlearn.unlearn.noise import NOISE_SOURCES
from certunlearn.validation import check_open_unit, check_positive, register

__all__ = [
    "CERTIFICATES",
    "REFERENCES",
    "STATE_FORMAT",
    "STATE_SCHEMA_VERSION",
    "UNLEARNERS",
    "UnlearnResult",
    "Unlearner",
    "feature_bound_problem",
    "get_unlearner",
    "module_with_weights",
    "register_unlearner",
    "state_header",
    "state_tensor",
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
        noise_source: ``secure`` (OS CSPRNG, the default), ``seeded`` (a caller's generator:
            reproducible noise, **not private**) or ``none`` (σ = 0);
            :mod:`certunlearn.unlearn.noise`.
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
    noise_source: str = "none"

    def __post_init__(self) -> None:
        if self.noise_source not in NOISE_SOURCES or (self.noise_source == "none") != (self.sigma == 0.0):
            raise ConfigError(f"noise_source must be one of {list(NOISE_SOURCES)} ('none' exactly when "
                              f"sigma = 0), got {self.noise_source!r} with sigma {self.sigma!r}")
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
            "noise_source": self.noise_source,
            "private_noise": self.noise_source != "seeded",
            "assumptions": list(self.assumptions),
            "reasons": list(self.reasons),
            "elapsed_s": self.elapsed_s,
            **{k: v for k, v in self.extras.items() if isinstance(v, (int, float, str, bool))},
        }


class Unlearner(abc.ABC):
    """The one interface of every unlearning method (HF-OCU and the post-hoc family alike).

    Life cycle: ``__init__(model, ...)`` only takes the model and the options; ``fit(X, y)`` does the
    data work (HF-OCU trains and records its statistics; a post-hoc method attaches the data its
    trained model saw) and returns ``self``; then ``forget(ids, epsilon=, delta=)`` answers deletion
    requests, ``bound(ids)`` states the a priori Δ for forgetting ``ids`` next, and
    ``state_dict()`` / ``load_state_dict(state)`` save and restore a fitted unlearner exactly,
    ledger included. Fitted state carries a trailing underscore.

    Requests are validated here, once, for every method (:meth:`check_request`): ids are distinct
    integers in ``0..n-1``, not empty and not forgotten before; ε > 0 and δ ∈ (0, 1) come together
    (both None asks for a noiseless, uncertified release, where the method allows it).

    The state (:meth:`state_dict`) is a dict of tensors and JSON values, loadable with
    ``torch.load(..., weights_only=True)``; :func:`state_header` lists the keys every method's state
    shares.

    Example:
        >>> import certunlearn.unlearn, torch
        >>> from certunlearn.models import LogisticRegression
        >>> X = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> y = (X[:, 0] > 0).long()
        >>> un = get_unlearner("damped-newton")(LogisticRegression(3, 2), weight_decay=0.1).fit(X, y)
        >>> un.forget([0, 0])
        Traceback (most recent call last):
        ...
        certunlearn.errors.SampleIdError: repeated sample ids: [0]
        >>> fresh = get_unlearner("damped-newton")(LogisticRegression(3, 2), weight_decay=0.1)
        >>> fresh.load_state_dict(un.state_dict()).n_samples
        30
    """

    name: ClassVar[str] = "base"
    noiseless_releases: ClassVar[bool] = True
    """Whether ``forget`` without (ε, δ) gives a noiseless release (False: ε and δ are required)."""

    ledger: Ledger | None
    deleted_: tuple[int, ...]
    n_samples_: int

    # ------------------------------------------------------------------ the interface
    @abc.abstractmethod
    def fit(self, X: Tensor, y: Tensor, *, progress: ProgressFn | None = None) -> Self:
        """Do the data work on ``(X, y)`` (sample ids are the row indices) and return ``self``."""

    @abc.abstractmethod
    def forget(
        self,
        ids: Iterable[int],
        *,
        epsilon: float | None = None,
        delta: float | None = None,
        generator: torch.Generator | None = None,
        request_id: str | None = None,
        dry_run: bool = False,
        sensitivity_budget: float | None = None,
    ) -> UnlearnResult:
        """Forget ``ids`` on top of the earlier requests and release the result.

        Args:
            ids: Ids to forget now (validated by :meth:`check_request`).
            epsilon: ε of the release (> 0); None with ``delta`` None for a noiseless release where
                :attr:`noiseless_releases` allows it.
            delta: δ of the release, in (0, 1).
            generator: None for secure noise (OS CSPRNG); a generator for reproducible noise,
                labelled not private (:mod:`certunlearn.unlearn.noise`).
            request_id: Ledger identifier of the request.
            dry_run: Compute the release but change nothing (no state update, no ledger entry).
            sensitivity_budget: Public budget Δ_b of this release (refine certificate).

        Returns:
            :class:`UnlearnResult`; on any error nothing changes.
        """

    @abc.abstractmethod
    def bound(self, ids: Iterable[int]) -> Bound | None:
        """The a priori (worst-case) Δ bound for forgetting ``ids`` next: for the cumulative set of the
        ids forgotten so far plus ``ids`` (rounding included); None when no bound applies. ``ids``
        may be empty (the bound for the ids forgotten so far)."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore this fitted unlearner: tensors and JSON values."""

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> Self:
        """Restore the state of :meth:`state_dict` into this (fresh or fitted) unlearner; returns ``self``.

        The unlearner must have been constructed with the same options (checked) and a model of the
        same architecture (its weights are replaced by the saved ones). The next ``forget`` with the
        same generator gives the same release as the saved unlearner's would have.

        Raises:
            InputError: The state is for another method or version, is malformed, or was saved
                with other options.
        """

    def _options(self) -> dict[str, Any]:
        """The constructor options that decide what ``forget`` computes (JSON values), checked on load."""
        return {}

    # ------------------------------------------------------------------ shared logic
    def _check_fitted(self) -> None:
        if not hasattr(self, "deleted_"):
            raise ConfigError(f"{type(self).__name__} is not fitted: call fit(X, y) or load_state_dict(state) first")

    @property
    def deleted_ids(self) -> tuple[int, ...]:
        """Ids forgotten so far, in request order."""
        self._check_fitted()
        return self.deleted_

    @property
    def n_samples(self) -> int:
        """Number of training rows n (ids are 0..n-1)."""
        self._check_fitted()
        return self.n_samples_

    def check_ids(self, ids: Iterable[int], *, allow_empty: bool = False) -> list[int]:
        """``ids`` as a list of ints: distinct, known (0..n-1), not forgotten before, non-empty unless allowed.

        Raises:
            SampleIdError: Any id breaks these rules.
        """
        self._check_fitted()
        request = check_sample_ids(ids, self.n_samples_)
        if not request and not allow_empty:
            raise SampleIdError("no sample ids to forget")
        again = sorted(set(request) & set(self.deleted_))
        if again:
            raise SampleIdError(f"sample ids already forgotten: {again[:10]}")
        return request

    def check_request(
        self, ids: Iterable[int], *, epsilon: float | None, delta: float | None
    ) -> tuple[list[int], float | None, float | None]:
        """Validate a deletion request: (ids as ints, ε, δ); the checks of every ``forget``.

        Raises:
            ConfigError: ε and δ not given together, ε ≤ 0 or not finite, δ ∉ (0, 1), or no (ε, δ)
                for a method that never releases without noise.
            SampleIdError: See :meth:`check_ids`.
        """
        self._check_fitted()
        if (epsilon is None) != (delta is None):
            raise ConfigError("give epsilon and delta together (or neither, for a noiseless release)")
        if epsilon is None and not self.noiseless_releases:
            raise ConfigError(f"{self.name} releases always carry calibrated noise: give epsilon and delta")
        if epsilon is not None:
            epsilon = check_positive("epsilon", epsilon)
            delta = check_open_unit("delta", delta)
        return self.check_ids(ids), epsilon, delta

    # ------------------------------------------------------------------ state helpers
    def _state_header(self) -> dict[str, Any]:
        """The keys every method's state shares (see :func:`state_header`)."""
        return {
            "format": STATE_FORMAT,
            "schema_version": STATE_SCHEMA_VERSION,
            "method": self.name,
            "options": plain(self._options(), unknown=str),
            "deleted_ids": list(self.deleted_),
            "ledger": None if self.ledger is None else self.ledger.state_dict(),
        }

    def _check_state(self, state: object, keys: Iterable[str], *, check_options: bool = True) -> dict[str, Any]:
        """Validate the shared part of a state and its key set (``keys``: the method's own keys)."""
        if not isinstance(state, Mapping):
            raise InputError(f"an unlearner state must be a dict, got {type(state).__name__}")
        if state.get("format") != STATE_FORMAT or state.get("schema_version") != STATE_SCHEMA_VERSION:
            raise InputError(f"not a certunlearn unlearner state of schema {STATE_SCHEMA_VERSION} (format "
                             f"{state.get('format')!r}, schema_version {state.get('schema_version')!r})")
        if state.get("method") != self.name:
            raise InputError(f"the state is for method {state.get('method')!r}, not {self.name!r}")
        expected = set(state_header()) | set(keys)
        unknown, missing = sorted(set(state) - expected), sorted(expected - set(state))
        if unknown or missing:
            raise InputError(f"malformed {self.name} state: unknown keys {unknown}, missing keys {missing}")
        if check_options:
            mine = plain(self._options(), unknown=str)
            theirs = state["options"]
            if not isinstance(theirs, Mapping):
                raise InputError("the state's options must be a dict")
            differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k, _MISSING) != theirs.get(k, _MISSING))
            if differ:
                raise InputError(f"the state was saved by a {self.name} unlearner with other options {differ} "
                                 f"(saved {[theirs.get(k) for k in differ]}, here {[mine.get(k) for k in differ]}): "
                                 "construct it with the same options")
        if not isinstance(state["deleted_ids"], list):
            raise InputError("the state's deleted_ids must be a list")
        ledger = state["ledger"]
        if ledger is not None:
            Ledger.from_state_dict(ledger)  # validate now, restore after every other check
        return dict(state)

    def _restore_ledger(self, raw: dict[str, Any] | None) -> None:
        """Restore the state's ledger (in place into the unlearner's own, when it has one); a state
        saved without a ledger keeps the one given to the constructor."""
        if raw is None:
            return
        if self.ledger is None:
            self.ledger = Ledger.from_state_dict(raw)
        else:
            self.ledger.load_state_dict(raw)


STATE_FORMAT = "certunlearn-unlearner"
STATE_SCHEMA_VERSION = 1
_MISSING = object()


def state_header() -> tuple[str, ...]:
    """The keys every unlearner state holds, besides the method's own.

    ``format`` and ``schema_version`` (what this is), ``method`` (the registered name), ``options``
    (the constructor options that decide what ``forget`` computes, checked on load), ``deleted_ids``
    (in request order) and ``ledger`` (:meth:`~certunlearn.certify.ledger.Ledger.state_dict`, or None).

    Example:
        >>> state_header()
        ('format', 'schema_version', 'method', 'options', 'deleted_ids', 'ledger')
    """
    return ("format", "schema_version", "method", "options", "deleted_ids", "ledger")


def state_tensor(state: Mapping[str, Any], key: str, *, shape: tuple[int, ...] | None = None,
                 optional: bool = False) -> Tensor | None:
    """``state[key]`` checked to be a tensor (of ``shape`` when given; None allowed if ``optional``).

    Example:
        >>> state_tensor({"w": torch.zeros(3)}, "w", shape=(3,)).shape
        torch.Size([3])
        >>> state_tensor({"w": [0.0]}, "w")
        Traceback (most recent call last):
        ...
        certunlearn.errors.InputError: the state's 'w' must be a tensor, got list
    """
    value = state.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, Tensor):
        raise InputError(f"the state's {key!r} must be a tensor, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise InputError(f"the state's {key!r} has shape {list(value.shape)}, expected {list(shape)}")
    return value


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


def module_with_weights(template: nn.Module, weights: object, *, what: str = "weights") -> nn.Module:
    """A deep copy of ``template`` holding ``weights`` (a state dict of tensors), loaded strictly.

    Raises:
        InputError: ``weights`` is not a dict of tensors or does not fit ``template``'s architecture.

    Example:
        >>> module_with_weights(torch.nn.Linear(2, 1), {"weight": torch.ones(1, 2), "bias": torch.zeros(1)}).weight
        Parameter containing:
        tensor([[1., 1.]], requires_grad=True)
    """
    if not isinstance(weights, Mapping) or not all(isinstance(v, Tensor) for v in weights.values()):
        raise InputError(f"the state's {what} must be a dict of tensors")
    module = copy.deepcopy(template)
    try:
        module.load_state_dict(dict(weights), strict=True)
    except (RuntimeError, KeyError) as exc:
        raise InputError(f"the state's {what} do not fit this model's architecture: {exc}") from exc
    return module


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
