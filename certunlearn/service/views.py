"""Read-only views of a state built from its ledger: the status dict and a request's compliance report.

Both are functions of the ledger rows (and, for the report, of the released file and the training
rows), so they say the same thing in every process. Composition across published releases is
accounted by :func:`certunlearn.accounting.compose_releases` — opacus's RDP accountant, and the exact
composition of full-batch Gaussian releases beside it — with the basic sum of ε and δ kept as the
conservative fallback, labelled as such (:func:`composed_view`).

Example:
    >>> from certunlearn.certify.ledger import LedgerPolicy
    >>> budget_view(LedgerPolicy(epsilon=1.0, delta=1e-5, max_releases=10),
    ...             {"releases": 3, "cumulative_deletions": 7, "epsilon_sum": 3.0, "delta_sum": 3e-5})["releases_left"]
    7
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certunlearn.certify.ledger import LedgerEvent, LedgerPolicy
from certunlearn.service.ledger_db import ReleaseRow, RequestRow
from certunlearn.service.state import IntegrityReport, StateFile

if TYPE_CHECKING:
    from torch import Tensor

    from certunlearn.data import Dataset
    from certunlearn.report.policy import Policy
    from certunlearn.service.loading import PostHocServed
    from certunlearn.unlearn.hfocu import HFOCU

__all__ = ["COMPOSITION", "budget_view", "composed_view", "ledger_events", "request_report", "status"]

COMPOSITION = ("basic composition: the sum of epsilon and of delta over the published releases, a conservative "
               "upper bound (each release draws fresh noise calibrated to the cumulative deleted set; publishing "
               "k of them is at most (sum epsilon, sum delta)-indistinguishable)")
"""How the composed (ε, δ) of a state is accounted."""


def budget_view(policy: LedgerPolicy | None, totals: Mapping[str, Any]) -> dict[str, Any]:
    """The policy, what it leaves after ``totals`` (see :meth:`LedgerDB.totals
    <certunlearn.service.ledger_db.LedgerDB.totals>`), and the composed (ε, δ) so far."""

    def left(limit: int | None, used: int) -> int | None:
        return None if limit is None else limit - used

    return {
        "policy": None if policy is None else asdict(policy),
        "releases_left": left(None if policy is None else policy.max_releases, totals["releases"]),
        "deletions_left": left(None if policy is None else policy.max_deletions, totals["cumulative_deletions"]),
        "composed_epsilon": totals["epsilon_sum"],
        "composed_delta": totals["delta_sum"],
        "composition": COMPOSITION,
    }


def composed_view(releases: Sequence[ReleaseRow], policy: LedgerPolicy | None) -> dict[str, Any] | None:
    """The (ε, δ) of all published releases together, by a real accountant; None before the first.

    δ is the policy's when it has one, else the basic sum of the releases' δ (so the accounted ε is
    comparable with the basic sum). ``epsilon`` is opacus's RDP bound, ``exact_epsilon`` the exact
    composition of full-batch Gaussian mechanisms (μ adds in quadrature); both are None, with the reason
    in ``note``, when a release is seeded, noiseless or has no Δ. ``basic_epsilon`` / ``basic_delta``
    are the conservative fallback.

    Example:
        >>> from certunlearn.service.ledger_db import ReleaseRow
        >>> row = ReleaseRow(request_id="r", seq=1, epsilon=1.0, delta=1e-5, sensitivity=0.2, sigma=0.75,
        ...                  certified=True, certificate="refine", reference="erm", measured_bound=0.1,
        ...                  model_before="a", model_after="b", noise_source="secure", noise_seed=None,
        ...                  released_file="b.pt", summary="{}")
        >>> view = composed_view([row] * 4, None)
        >>> view["method"], view["delta"], view["basic_epsilon"]        # delta: the basic sum 4e-5
        ('rdp', 4e-05, 4.0)
        >>> view["exact_epsilon"] < view["epsilon"] < view["basic_epsilon"]  # exact <= RDP < basic sum
        True
    """
    from certunlearn.accounting import compose_releases

    noisy = [r for r in releases if r.sigma > 0]
    if not releases:
        return None
    events = [{"sigma": r.sigma, "sensitivity": r.sensitivity, "epsilon": r.epsilon, "delta": r.delta,
               "noise_source": r.noise_source, "request_id": r.request_id} for r in noisy]
    basic_delta = sum(r.delta or 0.0 for r in noisy)
    delta = policy.delta if policy is not None else basic_delta
    if not events or not 0.0 < delta < 1.0:
        return {"method": "rdp", "epsilon": None, "exact_epsilon": None, "delta": None, "releases": len(releases),
                "basic_epsilon": sum(r.epsilon or 0.0 for r in noisy), "basic_delta": basic_delta,
                "note": "no noisy release to compose" if not events else f"delta {delta!r} is not in (0, 1)"}
    rdp = compose_releases(events, delta=delta, method="rdp")
    exact = compose_releases(events, delta=delta, method="analytic")
    return {**rdp.as_dict(), "releases": len(releases), "exact_epsilon": exact.epsilon,
            "accountant": "opacus RDP (Mironov 2017; Balle et al. 2020 conversion); exact: Gaussian DP composition "
                          "(Dong, Roth & Su 2022)"}


def status(root: Path, state: StateFile, totals: Mapping[str, Any], report: IntegrityReport,
           last: ReleaseRow | None, executed_at: str | None,
           releases: Sequence[ReleaseRow] = ()) -> dict[str, Any]:
    """The dict of :meth:`DeletionService.status <certunlearn.service.deletion_service.DeletionService.status>`."""
    budget = budget_view(state.policy, totals)
    budget["composed"] = composed_view(releases, state.policy)
    tracked_left = state.tracked - totals["cumulative_deletions"]
    limits = {"tracked ids not yet deleted": tracked_left}
    if budget["deletions_left"] is not None:
        limits["the policy's max_deletions"] = budget["deletions_left"]
    limited_by = min(limits, key=lambda k: limits[k])
    return {
        "state": str(root),
        "state_id": state.state_id,
        "kind": "hfocu",
        "ledger": getattr(state, "ledger_url", None) or "ledger.sqlite",
        "model": state.model.to_dict(),
        "data": state.data.to_dict(),
        "certificate": dict(state.certificate),
        "request_defaults": None if state.request_defaults is None else dict(state.request_defaults),
        "n_samples": state.n_samples,
        "tracked": state.tracked,
        "releases": totals["releases"],
        "cumulative_deletions": totals["cumulative_deletions"],
        "seeded_releases": totals["seeded_releases"],
        "integrity": "ok" if report.ok else list(report.problems),
        "removed_orphans": list(report.removed_orphans),
        "last_release": None if last is None else {
            "seq": last.seq, "request_id": last.request_id, "model_after": last.model_after,
            "executed_at": executed_at, "noise_source": last.noise_source},
        "budget": budget,
        "deletion_capacity": {
            "left": max(0, limits[limited_by]), "limited_by": limited_by, "tracked_left": tracked_left,
            "policy_deletions_left": budget["deletions_left"],
            "note": "ids that can still be deleted from this state; the proven excess-risk capacity of the "
                    "certificate is computed by `certunlearn capacity`"},
    }


def ledger_events(history: Sequence[tuple[RequestRow, ReleaseRow, list[int]]]) -> list[dict[str, Any]]:
    """The ledger rows as :class:`~certunlearn.certify.ledger.LedgerEvent` dicts (the report's ledger)."""
    events, cumulative = [], 0
    for request, release, ids in history:
        cumulative += len(ids)
        events.append(asdict(LedgerEvent(
            request_id=request.request_id, ids_digest=request.ids_digest, count=request.count,
            cumulative_count=cumulative, method="hfocu", sensitivity=release.sensitivity, sigma=release.sigma,
            epsilon=release.epsilon, delta=release.delta, certified=release.certified,
            model_before=release.model_before, model_after=release.model_after, timestamp=request.executed_at,
            noise_source=release.noise_source)))
    return events


def _composition_text(composed: Mapping[str, Any] | None) -> str:
    if composed is None or composed.get("epsilon") is None:
        note = "" if composed is None else f" ({composed.get('note')})"
        return COMPOSITION + note
    return (f"the {composed['releases']} release(s) published so far compose to epsilon={composed['epsilon']:.4g} "
            f"(RDP; exact Gaussian composition {composed['exact_epsilon']:.4g}) at delta={composed['delta']:.3g}; "
            f"the conservative basic sum is epsilon={composed['basic_epsilon']:.4g}, "
            f"delta={composed['basic_delta']:.3g}. Each release draws fresh noise calibrated to the cumulative "
            "deleted set; noise is not stacked")


def _accuracies(hf: HFOCU | PostHocServed, dataset: Dataset, params: Mapping[str, Tensor], deleted: Sequence[int],
                forget: Sequence[int]) -> dict[str, float]:
    """Accuracy of the released parameters on the rows kept, this request's rows and the held-out split."""
    import torch

    if hf.fm_.loss_name != "cross_entropy":
        return {}

    def accuracy(X: Tensor, y: Tensor) -> float:
        predicted = hf.outputs(params, X).argmax(dim=1).cpu()
        return float((predicted == y.cpu()).double().mean())

    X, y = dataset.X_train, dataset.y_train
    keep = torch.ones(X.shape[0], dtype=torch.bool)
    keep[list(deleted)] = False
    out = {"retain": accuracy(X[keep], y[keep]), "forget": accuracy(X[list(forget)], y[list(forget)])}
    if dataset.X_test.shape[0]:
        out["test"] = accuracy(dataset.X_test, dataset.y_test)
    return out


def request_report(state: StateFile, hf: HFOCU | PostHocServed, dataset: Dataset, request: RequestRow, release: ReleaseRow,
                   history: Sequence[tuple[RequestRow, ReleaseRow, list[int]]], params: Mapping[str, Tensor],
                   policy: Policy | Mapping[str, Any] | None) -> dict[str, Any]:
    """The compliance report of one request (``history``: the ledger up to and including it)."""
    from certunlearn.report.build import build_report

    deleted = [i for _, _, ids in history for i in ids]
    composed = composed_view([r for _, r, _ in history], state.policy)
    certificate = {**release.summary_dict(), "ledger": ledger_events(history), "composition": _composition_text(composed)}
    if composed is not None and composed.get("epsilon") is not None:
        certificate["accountant"] = composed["accountant"]
    seeds = {"schedule": int(state.sgd.get("seed", 0))}
    if release.noise_seed is not None:
        certificate["noise_seed"] = release.noise_seed
        seeds["noise"] = release.noise_seed
    lineage = {
        "original_params": state.trained_params, "released_params": release.model_after,
        "data_manifest": state.data.data_digest,
        "config": {"sgd": dict(state.sgd), "certificate": dict(state.certificate), "model": state.model.to_dict(),
                   "data": state.data.to_dict()},
        "seeds": seeds, "device": str(hf.fm_.device), "model": state.model.name, "dataset": state.data.source,
        "retrain_reference": False,
    }
    return build_report(
        request={"request_id": request.request_id, "ids_sha256": request.ids_digest, "count": request.count,
                 "received_at": request.received_at, "executed_at": request.executed_at},
        lineage=lineage, certificate=certificate,
        utility={"released": _accuracies(hf, dataset, params, deleted, history[-1][2])}, policy=policy)
