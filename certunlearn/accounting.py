r"""Privacy accounting of composed releases: several noisy models published from one state.

Every certified release is a Gaussian mechanism: the private, noiseless parameters w̄ plus
N(0, σ²I), where w̄ is within Δ of the retrained parameters. Its **noise multiplier** is z = σ/Δ.
Publishing k releases of the same state tells an observer more than any one of them, so the
guarantee of the set is the *composition* of the k mechanisms. Each release is a full-batch
mechanism (no subsampling: sample rate q = 1, one step), and the composition is accounted by one of
:data:`COMPOSITION_METHODS`:

* ``"rdp"`` (default): Rényi DP. At q = 1 a release has RDP ε(α) = α/(2z²) at every order α
  (Mironov, CSF 2017, Prop. 7); RDP adds up over releases (ibid., Prop. 1) and is converted to
  (ε, δ) by Balle et al. (AISTATS 2020, Thm. 21), with opacus's ``compute_rdp`` and
  ``get_privacy_spent`` over :data:`RDP_ORDERS`. A valid upper bound, 2 to 26 per cent above exact.
* ``"prv"``: opacus's PRV accountant (Gopi, Lee & Wutschitz, NeurIPS 2021), which discretises the
  privacy-loss distributions and convolves them; at q = 1 its PRV is the exact Gaussian privacy
  loss N(1/(2z²), 1/z²), and mixed multipliers are supported. It returns an upper bound with an
  additive ε error of about 0.01. Refused (``ConfigError``) where its grid would be too large.
* ``"analytic"``: exact. Full-batch Gaussian mechanisms compose like one Gaussian mechanism with
  μ = √(Σ 1/z_i²) (Dong, Roth & Su, JRSS-B 2022, Cor. 3.3), whose ε at δ is computed exactly by
  :func:`certunlearn.certify.gaussian.gaussian_epsilon` (Balle & Wang, ICML 2018, Thm. 8).
* ``"basic"``: the conservative fallback (Dwork & Roth 2014, Thm. 3.16): Σε_i and Σδ_i of the
  releases' own (ε_i, δ_i); a release that does not state them is given δ_i = δ/k and its exact ε_i.

Every result also carries the basic sum (``basic_epsilon``, ``basic_delta``), labelled as such.
A release without noise (σ = 0), with an unknown Δ or with reproducible (seeded) noise makes the
composition undefined: the result says so (``epsilon is None``) instead of returning a number.

This module imports opacus (hence torch), so it sits outside the torch-free ``certify`` package.

Example:
    >>> releases = [GaussianRelease(sigma=0.75, sensitivity=0.2)] * 4     # z = 3.75 each
    >>> rdp = compose_releases(releases, delta=1e-5)
    >>> exact = compose_releases(releases, delta=1e-5, method="analytic")
    >>> round(exact.epsilon, 3), round(rdp.epsilon, 3), round(rdp.basic_epsilon, 3)
    (2.142, 2.327, 4.329)
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from opacus.accountants import PRVAccountant
from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV, compute_safe_domain_size
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

from certunlearn.certify.gaussian import gaussian_delta, gaussian_epsilon
from certunlearn.errors import CalibrationError, ConfigError
from certunlearn.validation import (
    check_choice,
    check_int,
    check_open_unit,
    check_positive,
    check_real,
)

__all__ = [
    "COMPOSITION_METHODS",
    "NOISE_SOURCES",
    "RDP_ORDERS",
    "ComposedPrivacy",
    "GaussianRelease",
    "compose_releases",
]

NOISE_SOURCES = ("secure", "seeded", "none")
"""Where a release's noise came from (as in the ledger): only ``secure`` noise is private."""

RDP_ORDERS: tuple[float, ...] = tuple(float(a) for a in 1.0 + np.geomspace(1e-3, 1e6, 1801))
"""RDP orders α: α − 1 on a geometric grid from 1e-3 to 1e6, 200 points a decade. At q = 1 the
optimal order is about 1 + z_eff·√(2 log(1/δ)) (z_eff = (Σ 1/z_i²)^(-1/2)), inside this grid for every
z_eff and δ of practical use,
and the grid costs at most ~2e-5 of relative ε against the continuous optimum."""

PRV_EPS_ERROR = 0.01
"""Additive ε error allowed to the PRV accountant (opacus's default); its δ error is δ/1000."""

_PRV_MAX_POINTS = 2**24  # largest PRV grid (points) accepted: a few arrays of 128 MiB
_PRV_MAX_WORK = 10_000_000  # distinct multipliers × grid points: each distinct one is one convolution
_ULP = 2.0**-52


@dataclass(frozen=True, slots=True)
class GaussianRelease:
    """One published model: noise σ added to parameters of L2 sensitivity Δ.

    Attributes:
        sigma: Noise standard deviation σ (>= 0; 0 means a noiseless, uncertified release).
        sensitivity: Δ (> 0), or None where it is unknown (an uncertified release).
        epsilon: The release's own ε, where it was certified for a stated (ε, δ) (with ``delta``).
        delta: The release's own δ, in (0, 1) (with ``epsilon``).
        noise_source: ``secure``, ``seeded`` (reproducible noise: not private) or ``none``.
        label: A name for messages (the ledger's request id).

    Example:
        >>> GaussianRelease(sigma=0.75, sensitivity=0.2).noise_multiplier
        3.75
    """

    sigma: float
    sensitivity: float | None
    epsilon: float | None = None
    delta: float | None = None
    noise_source: str = "secure"
    label: str = ""

    def __post_init__(self) -> None:
        sigma = check_real("sigma", self.sigma)
        if sigma < 0:
            raise ConfigError(f"sigma must be >= 0 (0: no noise), got {self.sigma!r}")
        if self.sensitivity is not None:
            check_positive("sensitivity", self.sensitivity)
        if (self.epsilon is None) != (self.delta is None):
            raise ConfigError(f"give a release's epsilon and delta together or not at all, got "
                              f"epsilon={self.epsilon!r}, delta={self.delta!r}")
        if self.epsilon is not None:
            if check_real("epsilon", self.epsilon) < 0:
                raise ConfigError(f"epsilon must be >= 0, got {self.epsilon!r}")
            check_open_unit("delta", self.delta)
        check_choice("noise_source", self.noise_source, NOISE_SOURCES)
        if not isinstance(self.label, str):
            raise ConfigError(f"label must be a string, got {self.label!r}")

    @property
    def private(self) -> bool:
        """Whether the release is a Gaussian mechanism at all: σ > 0, Δ known, secure noise."""
        return self.sigma > 0 and self.sensitivity is not None and self.noise_source == "secure"

    @property
    def noise_multiplier(self) -> float | None:
        """z = σ/Δ (None for a release that is not :attr:`private`)."""
        return self.sigma / self.sensitivity if self.private else None

    @classmethod
    def from_event(cls, event: Any) -> GaussianRelease:
        """Read a release from a ledger event or a mapping with the same names.

        Uses ``sigma``, ``sensitivity`` and, where present, ``epsilon``, ``delta``, ``noise_source``
        and ``request_id`` (as the label).

        Example:
            >>> GaussianRelease.from_event({"sigma": 0.5, "sensitivity": 0.1, "request_id": "r1"}).label
            'r1'
        """
        def get(name: str, default: Any = None) -> Any:
            if isinstance(event, Mapping):
                return event.get(name, default)
            return getattr(event, name, default)

        if get("sigma") is None:
            raise ConfigError(f"a release needs a sigma; {type(event).__name__} {event!r} has none")
        return cls(sigma=get("sigma"), sensitivity=get("sensitivity"), epsilon=get("epsilon"),
                   delta=get("delta"), noise_source=get("noise_source", "secure") or "secure",
                   label=str(get("request_id", "") or get("label", "") or ""))


@dataclass(frozen=True, slots=True)
class ComposedPrivacy:
    """The (ε, δ) of a set of published releases taken together.

    Attributes:
        method: The accountant (a key of :data:`COMPOSITION_METHODS`).
        epsilon: Composed ε at ``delta``; None where the composition is undefined (see ``note``).
        delta: The composed δ (the target δ; for ``basic``, Σδ_i).
        releases: Number of releases composed.
        basic_epsilon: Σε_i, the conservative fallback (None where undefined).
        basic_delta: Σδ_i of the fallback (None where undefined).
        note: What was computed, how, and why a value is missing.
    """

    method: str
    epsilon: float | None
    delta: float
    releases: int
    basic_epsilon: float | None
    basic_delta: float | None
    note: str

    def __post_init__(self) -> None:
        check_choice("method", self.method, COMPOSITION_METHODS)
        check_positive("delta", self.delta)
        check_int("releases", self.releases, minimum=1)
        for name in ("epsilon", "basic_epsilon"):
            value = getattr(self, name)
            if value is not None and check_real(name, value) < 0:
                raise ConfigError(f"{name} must be >= 0, got {value!r}")
        if self.basic_delta is not None:
            check_positive("basic_delta", self.basic_delta)
        if self.epsilon is None and not self.note:
            raise ConfigError("an undefined composition must say why in its note")

    @property
    def defined(self) -> bool:
        """Whether the composition has a finite ε (every release a secure Gaussian mechanism)."""
        return self.epsilon is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, plus ``defined``.

        Example:
            >>> sorted(compose_releases([GaussianRelease(sigma=1.0, sensitivity=1.0)],
            ...                         delta=1e-5).as_dict())  # doctest: +NORMALIZE_WHITESPACE
            ['basic_delta', 'basic_epsilon', 'defined', 'delta', 'epsilon', 'method', 'note',
             'releases']
        """
        return {**asdict(self), "defined": self.defined}


def _safe_multiplier(release: GaussianRelease) -> float:
    """z = σ/Δ moved one ulp down, so that the rounding of the division is on the safe side."""
    return math.nextafter(release.sigma / release.sensitivity, 0.0)


def _check_declared(index: int, release: GaussianRelease) -> None:
    """Refuse a release whose stated (ε, δ) its own σ/Δ does not achieve (the sum would understate)."""
    achieved = gaussian_delta(sigma=release.sigma, epsilon=release.epsilon,
                              sensitivity=release.sensitivity)
    if achieved > release.delta * (1.0 + 1e-9):
        raise ConfigError(
            f"release {index} ({release.label or 'unlabelled'}) states (epsilon, delta) = "
            f"({release.epsilon:g}, {release.delta:g}), but sigma/sensitivity = "
            f"{release.sigma / release.sensitivity:.6g} only gives delta = {achieved:.3g} at that epsilon"
        )


def _basic_sum(releases: tuple[GaussianRelease, ...], delta: float) -> tuple[float, float]:
    """Σε_i, Σδ_i: stated values where a release has them, else δ_i = δ/k and its exact ε_i."""
    share = delta / len(releases)
    exact = {z: gaussian_epsilon(sigma=z, delta=share)
             for z in {_safe_multiplier(r) for r in releases if r.epsilon is None}}
    epsilons = [r.epsilon if r.epsilon is not None else exact[_safe_multiplier(r)] for r in releases]
    deltas = [r.delta if r.delta is not None else share for r in releases]
    return math.fsum(epsilons), math.fsum(deltas)


def _counted(releases: tuple[GaussianRelease, ...]) -> list[tuple[float, int]]:
    """(multiplier, count) of the distinct multipliers, smallest (least private) first."""
    return sorted(Counter(_safe_multiplier(r) for r in releases).items())


def _compose_rdp(releases: tuple[GaussianRelease, ...], delta: float) -> tuple[float, str]:
    orders = np.asarray(RDP_ORDERS)
    rdp = np.zeros_like(orders)
    for z, count in _counted(releases):
        rdp += compute_rdp(q=1.0, noise_multiplier=z, steps=count, orders=orders)
    with warnings.catch_warnings():  # opacus warns when the best order is an end of the grid: said below
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        epsilon, order = get_privacy_spent(orders=orders, rdp=rdp, delta=delta)
    note = (f"Renyi DP at q = 1 summed over releases (Mironov 2017), converted by Balle et al. 2020 "
            f"Thm. 21 (opacus get_privacy_spent) at the best order alpha = {float(order):.4g}")
    if float(order) in (RDP_ORDERS[0], RDP_ORDERS[-1]):
        note += "; the best order is at the end of the grid: the bound is valid but may be loose"
    return max(float(epsilon), 0.0), note


def _prv_grid_points(counted: list[tuple[float, int]], delta_error: float) -> float:
    """Points of the grid opacus's PRV accountant will build (its PRVAccountant._get_domain)."""
    prvs = [PoissonSubsampledGaussianPRV(1.0, z) for z, _ in counted]
    counts = [count for _, count in counted]
    half_width = compute_safe_domain_size(prvs=prvs, max_self_compositions=counts,
                                          eps_error=PRV_EPS_ERROR, delta_error=delta_error)
    mesh = PRV_EPS_ERROR / math.sqrt(sum(counts) * math.log(12.0 / delta_error) / 2.0)
    return 2.0 * half_width / mesh


def _compose_prv(releases: tuple[GaussianRelease, ...], delta: float) -> tuple[float, str]:
    counted = _counted(releases)
    accountant = PRVAccountant()
    for z, count in counted:
        for _ in range(count):  # consecutive equal steps are merged into one (z, 1.0, count) entry
            accountant.step(noise_multiplier=z, sample_rate=1.0)
    # at q = 1 opacus evaluates log(1 - q) = log(0) (harmless: -inf) and its RDP-based domain bound
    # may warn that its own order grid is short (harmless: the domain is then only wider)
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        points = _prv_grid_points(counted, delta / 1000.0)
        if points > _PRV_MAX_POINTS or points * len(counted) > _PRV_MAX_WORK:
            raise ConfigError(
                f"method='prv' refused: {len(releases)} releases with {len(counted)} distinct noise "
                f"multipliers need a PRV grid of {points:.3g} points (limit {_PRV_MAX_POINTS:.3g} points "
                f"and {_PRV_MAX_WORK:.3g} points x multipliers); use method='rdp' or 'analytic'"
            )
        try:
            epsilon = accountant.get_epsilon(delta, eps_error=PRV_EPS_ERROR)
        except ValueError as exc:  # delta too small for the grid's floating-point accuracy
            raise ConfigError(f"method='prv' refused at delta={delta:g}: {exc}") from exc
        except RuntimeError as exc:
            raise CalibrationError(f"opacus's PRV accountant failed: {exc}") from exc
    note = (f"PRV accountant (Gopi et al. 2021, opacus PRVAccountant) at q = 1: upper bound with "
            f"eps_error = {PRV_EPS_ERROR:g}, delta_error = delta/1000, {points:.3g} grid points")
    return max(float(epsilon), 0.0), note


def _compose_analytic(releases: tuple[GaussianRelease, ...], delta: float) -> tuple[float, str]:
    mu_squared = math.fsum(count / (z * z) for z, count in _counted(releases))
    mu = math.sqrt(mu_squared) * (1.0 + 16 * _ULP)  # rounding of 1/z², the sum and √ on the safe side
    epsilon = gaussian_epsilon(sigma=1.0 / mu, delta=delta)
    note = (f"exact: full-batch Gaussian releases compose to mu = sqrt(sum 1/z_i^2) = {mu:.6g} "
            f"(Dong, Roth & Su 2022, Cor. 3.3), epsilon exact at delta (Balle & Wang 2018)")
    return epsilon, note


def _compose_basic(releases: tuple[GaussianRelease, ...], delta: float) -> tuple[float, str]:
    epsilon, _ = _basic_sum(releases, delta)
    note = ("basic composition (Dwork & Roth 2014, Thm. 3.16): the sum of each release's own "
            "(epsilon_i, delta_i), the conservative fallback")
    return epsilon, note


COMPOSITION_METHODS: dict[str, Callable[[tuple[GaussianRelease, ...], float], tuple[float, str]]] = {
    "rdp": _compose_rdp,
    "prv": _compose_prv,
    "analytic": _compose_analytic,
    "basic": _compose_basic,
}
"""Registry of accountants: name -> f(releases, delta) -> (epsilon, note), all releases private."""


def _as_releases(releases: Iterable[Any]) -> tuple[GaussianRelease, ...]:
    if isinstance(releases, (str, bytes, Mapping, GaussianRelease)) or not isinstance(releases, Iterable):
        raise ConfigError(f"releases must be a list of releases, got {type(releases).__name__}")
    out = tuple(r if isinstance(r, GaussianRelease) else GaussianRelease.from_event(r) for r in releases)
    if not out:
        raise ConfigError("releases is empty: there is nothing to compose")
    return out


def _why_undefined(releases: tuple[GaussianRelease, ...]) -> str:
    reasons = []
    for index, r in enumerate(releases):
        name = f"release {index}" + (f" ({r.label})" if r.label else "")
        if r.private:
            continue
        if r.sigma == 0:
            reasons.append(f"{name} has no noise (sigma = 0)")
        elif r.sensitivity is None:
            reasons.append(f"{name} has no known sensitivity")
        else:
            reasons.append(f"{name} has reproducible noise (noise_source={r.noise_source!r})")
    return ("undefined: " + "; ".join(reasons)
            + ": such a release is not a Gaussian mechanism, so no (epsilon, delta) covers the set")


def compose_releases(releases: Iterable[Any], *, delta: float, method: str = "rdp") -> ComposedPrivacy:
    """Return the (ε, δ) of publishing all ``releases`` of one state, accounted by ``method``.

    Each release is a full-batch Gaussian mechanism (sample rate q = 1, one step) with noise
    multiplier z_i = σ_i/Δ_i, all on the same data (the cumulative deleted set). The order of the
    releases does not matter.

    Args:
        releases: :class:`GaussianRelease` objects, ledger events or mappings with ``sigma`` and
            ``sensitivity`` (and optionally ``epsilon``, ``delta``, ``noise_source``, ``request_id``).
        delta: The composed δ, in (0, 1); the basic sum gives δ/k to a release that states no δ.
        method: A key of :data:`COMPOSITION_METHODS`: ``"rdp"``, ``"prv"``, ``"analytic"``, ``"basic"``.

    Returns:
        A :class:`ComposedPrivacy` with the composed ε at ``delta`` and the labelled basic sum. If a
        release has σ = 0, an unknown Δ or seeded noise, ``epsilon`` and the basic sum are None and
        the note names the releases.

    Raises:
        ConfigError: Empty or malformed releases, σ < 0, Δ <= 0, δ ∉ (0, 1), an unknown method, a
            release whose stated (ε, δ) its σ/Δ does not achieve, or ``"prv"`` where its grid is too
            large or δ too small for it.

    Example:
        >>> result = compose_releases([{"sigma": 2.0, "sensitivity": 1.0}] * 9, delta=1e-5)
        >>> result.method, round(result.epsilon, 3), round(result.basic_epsilon, 3)
        ('rdp', 7.588, 20.185)
        >>> compose_releases([{"sigma": 0.0, "sensitivity": None, "request_id": "r2"}], delta=1e-5).note
        'undefined: release 0 (r2) has no noise (sigma = 0): such a release is not a Gaussian mechanism, so no (epsilon, delta) covers the set'
    """
    delta = check_open_unit("delta", delta)
    method = check_choice("method", method, COMPOSITION_METHODS)
    items = _as_releases(releases)
    if not all(r.private for r in items):
        return ComposedPrivacy(method=method, epsilon=None, delta=delta, releases=len(items),
                               basic_epsilon=None, basic_delta=None, note=_why_undefined(items))
    for index, release in enumerate(items):
        if release.epsilon is not None:
            _check_declared(index, release)
    basic_epsilon, basic_delta = _basic_sum(items, delta)
    epsilon, note = COMPOSITION_METHODS[method](items, delta)
    if method == "basic":
        delta = basic_delta
        if basic_delta >= 1.0:
            note += f"; the summed delta {basic_delta:g} is >= 1: the bound is vacuous"
    return ComposedPrivacy(method=method, epsilon=epsilon, delta=delta, releases=len(items),
                           basic_epsilon=basic_epsilon, basic_delta=basic_delta, note=note)
