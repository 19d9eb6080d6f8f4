"""Turning a noiseless unlearned model and a bound into a release: σ, noise, result, ledger entry.

Every unlearner ends a request the same way, so the rules live here once:

* a bound whose status is ``certified`` and that includes its floating-point term calibrates σ for the
  requested (ε, δ); the σ that a release of the *un-unlearned* model would need (the bound's
  ``noise_only_value``) is reported beside it. For the refine certificate the bound's value is the
  public budget, so σ never depends on the data (docs/theory.md, Theorem 24);
* otherwise the release is uncertified; it still gets noise if the user chose a ``noise_sensitivity``;
* the ledger (if any) is checked before anything is released and written after; a dry run changes
  nothing.

Example:
    >>> import torch
    >>> from certunlearn.certify.assumptions import Bound
    >>> b = Bound("demo", 0.5, "certified", ("stated",), (), 0.25, rounding=1e-12)
    >>> r = make_release(method="demo", request=[1], previous=(), noiseless=torch.zeros(3), bound=b,
    ...                  problems=(), epsilon=1.0, delta=1e-5, state=lambda t: {"w": t}, reference="erm")
    >>> r.certified, round(r.sigma / r.noise_only_sigma, 6)
    (True, 2.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from certunlearn.certify.assumptions import Bound
from certunlearn.certify.gaussian import gaussian_sigma
from certunlearn.certify.ledger import Ledger, LedgerEvent
from certunlearn.digest import array_digest
from certunlearn.errors import ConfigError
from certunlearn.unlearn.base import UnlearnResult
from certunlearn.unlearn.noise import gaussian_noise_like, noise_source

__all__ = ["make_release"]


def make_release(
    *,
    method: str,
    request: Sequence[int],
    previous: Sequence[int],
    noiseless: Tensor,
    bound: Bound | None,
    problems: tuple[str, ...],
    epsilon: float | None,
    delta: float | None,
    state: Callable[[Tensor], dict[str, Tensor]],
    noise_sensitivity: float | None = None,
    calibration: str = "analytic",
    generator: Any = None,
    ledger: Ledger | None = None,
    dry_run: bool = False,
    request_id: str | None = None,
    model_before: Tensor | None = None,
    extras: dict[str, Any] | None = None,
    started: float | None = None,
    standard_noise: Tensor | None = None,
    standard_noise_source: str = "secure",
    reference: str = "none",
    certificate: str = "worst-case",
    sensitivity_budget: float | None = None,
    measured_bound: float | None = None,
) -> UnlearnResult:
    """Calibrate, add noise, check and record: the common end of every ``forget``.

    Args:
        method: Registered method name.
        request: Ids forgotten by this request (validated by the caller).
        previous: Ids forgotten before.
        noiseless: Flat noiseless parameters θ̄ (private).
        bound: The Δ bound for the cumulative set, or None when no assumptions are available.
        problems: Why no bound applies (used when ``bound`` is None).
        epsilon: ε of the release; None for a noiseless, uncertified release.
        delta: δ of the release (with ``epsilon``).
        state: Maps a flat vector to the state dict of the result.
        noise_sensitivity: User-chosen Δ for noise when no certified bound applies (uncertified).
        calibration: ``analytic`` or ``classical``.
        generator: None for noise from the OS CSPRNG; a generator: reproducible, not private (:mod:`certunlearn.unlearn.noise`).
        ledger: Optional budget ledger, checked before and written after the release.
        dry_run: Compute the result only; no ledger entry.
        request_id: Ledger identifier of the request.
        model_before: Flat parameters of the previous release's noiseless model (for the ledger hash).
        extras: Method-specific figures.
        started: ``time.perf_counter()`` at the start of the request (for ``elapsed_s``).
        standard_noise: A N(0, I) draw made in advance (same shape as ``noiseless``); the release
            then adds σ times it instead of drawing now. It must never be used for two releases.
        standard_noise_source: Where ``standard_noise`` came from (``secure`` or ``seeded``).
        reference: What the certificate compares with (``erm``, ``coupled-sgd``).
        certificate: ``refine`` or ``worst-case``.
        sensitivity_budget: The public budget (refine: the bound's value).
        measured_bound: The measured, data-dependent bound (refine; a private diagnostic).

    Returns:
        The :class:`UnlearnResult`.
    """
    started = time.perf_counter() if started is None else started
    extras = dict(extras or {})
    noisy = epsilon is not None and delta is not None
    bound, status, assumptions, reasons = _judge(bound, problems, noisy, extras)
    certified = bool(bound is not None and bound.certified and noisy)
    sensitivity, noise_only_sigma = _sensitivity(bound if certified else None, noise_sensitivity if noisy else None,
                                                 epsilon, delta, calibration)
    if ledger is not None and not dry_run:
        ledger.check(count=len(request), sensitivity=sensitivity, certified=certified, epsilon=epsilon, delta=delta)
    sigma = 0.0  # Δ = 0: identical to the reference, no noise needed
    if sensitivity is not None and sensitivity > 0:
        sigma = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=sensitivity, method=calibration)  # type: ignore[arg-type]
    released, source = _add_noise(noiseless, sigma, generator, standard_noise, standard_noise_source)
    result = UnlearnResult(
        method=method,
        request_ids=tuple(request),
        cumulative_ids=tuple(sorted((*previous, *request))),
        params_noiseless=state(noiseless),
        params_released=state(released),
        sigma=sigma,
        sensitivity=sensitivity,
        certified=certified,
        status=status if sensitivity is not None else "uncertified",
        assumptions=assumptions,
        reasons=reasons,
        epsilon=epsilon if (sigma > 0 or certified) else None,
        delta=delta if (sigma > 0 or certified) else None,
        calibration=calibration if sigma > 0 else "none",
        noise_only_sigma=noise_only_sigma,
        elapsed_s=time.perf_counter() - started,
        extras=extras,
        reference=reference,
        certificate=certificate,
        sensitivity_budget=sensitivity_budget,
        measured_bound=measured_bound,
        noise_source=source,
    )
    if ledger is not None and not dry_run:
        _record(ledger, request_id, result, before=noiseless if model_before is None else model_before,
                after=released)
    return result


def _record(ledger: Ledger, request_id: str | None, result: UnlearnResult, *, before: Tensor, after: Tensor) -> None:
    """Append the ledger event of ``result`` (digests of the model before and of the release)."""
    ledger.record(LedgerEvent.create(
        request_id=request_id or f"request-{len(ledger.events) + 1}",
        ids=result.request_ids, cumulative_count=len(result.cumulative_ids), method=result.method,
        sensitivity=result.sensitivity, sigma=result.sigma, epsilon=result.epsilon, delta=result.delta,
        certified=result.certified, model_before=array_digest(before), model_after=array_digest(after),
        noise_source=result.noise_source,
    ))


def _judge(bound: Bound | None, problems: tuple[str, ...], noisy: bool,
           extras: dict[str, Any]) -> tuple[Bound | None, str, tuple[str, ...], tuple[str, ...]]:
    """(bound, status, assumptions, reasons): a bound without a floating-point term is demoted to
    uncertified, and a certified bound without (ε, δ) gives a noiseless, uncertified release."""
    reasons: tuple[str, ...] = problems
    assumptions: tuple[str, ...] = ()
    status = "uncertified"
    if bound is not None:
        status, assumptions, reasons = bound.status, bound.assumptions, bound.violations
        extras["bound"] = bound.name
        if bound.status == "conditional":
            reasons = ("the bound holds only if the declared non-convex constants hold",)
        if bound.certified and bound.rounding is None:  # a bound for exact arithmetic never backs a release
            bound = Bound(bound.name, bound.value, "uncertified", bound.assumptions, (
                "the bound was computed for exact arithmetic: no floating-point term",), None)
            status, reasons = "uncertified", bound.violations
    if bound is not None and bound.certified and not noisy:
        extras["bound_value"] = bound.value
        status, reasons = "uncertified", ("no (epsilon, delta) requested: noiseless release",)
    return bound, status, assumptions, reasons


def _sensitivity(certified: Bound | None, chosen: float | None, epsilon: float | None, delta: float | None,
                 calibration: str) -> tuple[float | None, float | None]:
    """(Δ the noise is calibrated to, σ of a noise-only release): the certified bound's value, else
    the user-chosen Δ (uncertified), else none."""
    if certified is None:
        return chosen, None
    noise_only = None
    if certified.noise_only_value:
        noise_only = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=certified.noise_only_value,  # type: ignore[arg-type]
                                    method=calibration)
    return certified.value, noise_only


def _add_noise(noiseless: Tensor, sigma: float, generator: Any, standard_noise: Tensor | None,
               standard_noise_source: str) -> tuple[Tensor, str]:
    """(noiseless + σ·z, where z came from): a prefetched standard draw when given, else a fresh one."""
    if standard_noise is not None and sigma > 0:
        if standard_noise.shape != noiseless.shape:
            raise ConfigError(f"standard_noise has shape {tuple(standard_noise.shape)}, expected "
                              f"{tuple(noiseless.shape)}")
        return noiseless + sigma * standard_noise, standard_noise_source
    released = noiseless + gaussian_noise_like(noiseless, sigma, generator)
    return released, noise_source(generator, sigma) if sigma > 0 else "none"
