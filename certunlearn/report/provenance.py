"""The request, lineage and certificate sections of a compliance report (sections 1–3).

:func:`request_section`, :func:`lineage_section` and :func:`certificate_section` turn what the
caller gives :func:`~certunlearn.report.build.build_report` into the report's JSON for them: ids,
parameters, data and configs only as digests (:mod:`certunlearn.digest`), unknown keys refused,
numbers checked, the certificate's summary sentence written from its figures.

Example:
    >>> request_section({"request_id": "r-1", "ids_sha256": "0" * 64, "count": 2,
    ...                  "reported_at": "2025-01-01"})["forget_set"]["count"]
    2
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np

from certunlearn._version import __version__
from certunlearn.digest import (
    CONFIG_DIGEST_METHOD,
    IDS_DIGEST_METHOD,
    PARAMS_DIGEST_METHOD,
    config_digest,
    ids_digest,
)
from certunlearn.errors import ConfigError
from certunlearn.report.fields import (
    as_mapping,
    hex_or_none,
    opt_float,
    opt_int,
    opt_str,
    reject_unknown,
    strings,
)

__all__ = ["CERTIFICATE_STATUSES", "certificate_section", "lineage_section", "request_section"]

CERTIFICATE_STATUSES = ("certified", "conditional", "heuristic", "uncertified")
"""The statuses a certificate may have (from strongest to none)."""


def _version_of(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


_REQUEST_KEYS = ("request_id", "ids", "ids_sha256", "count", "subject_id", "ground", "scope",
                 "records_sha256", "received_at", "executed_at", "reported_at")


def request_section(request: object) -> dict[str, Any]:
    """Section 1, the deletion request: the ids only as a digest and a count.

    Args:
        request: ``request_id`` and either ``ids`` or ``ids_sha256`` + ``count``; optional
            ``subject_id``, ``ground``, ``scope``, ``records_sha256`` and the three timestamps.

    Example:
        >>> section = request_section({"request_id": "r", "ids": [2, 1], "reported_at": "2025-01-01"})
        >>> section["forget_set"]["count"], "ids" in section
        (2, False)
    """
    raw = as_mapping("request", request)
    reject_unknown("request", raw, _REQUEST_KEYS)
    request_id = raw.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise ConfigError(f"request_id must be a non-empty string, got {request_id!r}")
    if "ids" in raw:
        if "ids_sha256" in raw or "count" in raw:
            raise ConfigError("give either ids, or ids_sha256 and count, not both")
        ids = list(raw["ids"])
        if not ids:
            raise ConfigError("ids must not be empty")
        digest = ids_digest(ids)
        count = len(ids)
    else:
        digest = hex_or_none("ids_sha256", raw.get("ids_sha256"))
        count = opt_int("count", raw.get("count"))
        if digest is None or count is None or count < 1:
            raise ConfigError("give ids, or ids_sha256 with a count >= 1")
    reported = raw.get("reported_at") or datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "request_id": request_id,
        "subject_id": opt_str("subject_id", raw.get("subject_id")),
        "ground": opt_str("ground", raw.get("ground")),
        "scope": opt_str("scope", raw.get("scope")),
        "received_at": opt_str("received_at", raw.get("received_at")),
        "executed_at": opt_str("executed_at", raw.get("executed_at")),
        "reported_at": opt_str("reported_at", reported),
        "forget_set": {
            "count": count,
            "ids_sha256": digest,
            "ids_digest_method": IDS_DIGEST_METHOD,
            "records_sha256": hex_or_none("records_sha256", raw.get("records_sha256")),
        },
    }


_LINEAGE_KEYS = ("original_params", "released_params", "data_manifest", "config", "seeds", "device",
                 "commit", "model", "dataset", "retrain_reference", "versions")


def lineage_section(lineage: object) -> dict[str, Any]:
    """Section 2, the model lineage: digests of parameters, data and config, versions, seeds.

    Example:
        >>> section = lineage_section({"seeds": 3, "config": {"lr": 0.1}})
        >>> section["seeds"], len(section["config_sha256"]), section["versions"]["certunlearn"] is not None
        ({'seed': 3}, 64, True)
    """
    raw = as_mapping("lineage", lineage)
    reject_unknown("lineage", raw, _LINEAGE_KEYS)
    seeds = raw.get("seeds") or {}
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = {"seed": seeds}
    if not isinstance(seeds, Mapping):
        raise ConfigError(f"seeds must be a mapping of name to integer, got {seeds!r}")
    config = raw.get("config")
    versions = {
        "certunlearn": __version__,
        "torch": _version_of("torch"),
        "opacus": _version_of("opacus"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    extra_versions = raw.get("versions") or {}
    if not isinstance(extra_versions, Mapping):
        raise ConfigError(f"versions must be a mapping of package to version, got {extra_versions!r}")
    versions.update({str(k): (None if v is None else str(v)) for k, v in extra_versions.items()})
    retrain = raw.get("retrain_reference")
    if retrain is not None and not isinstance(retrain, bool):
        raise ConfigError(f"retrain_reference must be true, false or None, got {retrain!r}")
    device = raw.get("device")
    return {
        "original_params_sha256": hex_or_none("original_params", raw.get("original_params")),
        "released_params_sha256": hex_or_none("released_params", raw.get("released_params")),
        "params_digest_method": PARAMS_DIGEST_METHOD,
        "data_manifest_sha256": hex_or_none("data_manifest", raw.get("data_manifest")),
        "config_sha256": (None if config is None else
                          hex_or_none("config", config) if isinstance(config, str) else config_digest(config)),
        "config_digest_method": CONFIG_DIGEST_METHOD,
        "versions": versions,
        "device": None if device is None else str(device),
        "seeds": {str(k): opt_int(f"seeds[{k!r}]", v) for k, v in seeds.items()},
        "commit": opt_str("commit", raw.get("commit")),
        "model": opt_str("model", raw.get("model")),
        "dataset": opt_str("dataset", raw.get("dataset")),
        "retrain_reference": retrain,
    }


_NOISE_SOURCES = ("secure", "seeded", "none")


def _noise_source(raw: Mapping[str, Any], sigma: float) -> str | None:
    """``secure`` / ``seeded`` / ``none`` as the result says (``seeded`` when a noise seed is given), else None."""
    source = raw.get("noise_source")
    if source is None and raw.get("noise_seed") is not None:
        source = "seeded"
    if source is None:
        return None
    if source not in _NOISE_SOURCES:
        raise ConfigError(f"noise_source must be one of {list(_NOISE_SOURCES)}, got {source!r}")
    if (source == "none") != (sigma == 0.0):
        raise ConfigError(f"noise_source {source!r} contradicts sigma {sigma!r} ('none' exactly when sigma = 0)")
    return source


_LEDGER_FIELDS = ("request_id", "ids_digest", "count", "cumulative_count", "method", "sensitivity", "sigma",
                  "epsilon", "delta", "certified", "model_before", "model_after", "timestamp", "noise_source")


def _ledger_events(ledger: object) -> list[dict[str, Any]] | None:
    if ledger is None:
        return None
    if callable(getattr(ledger, "state_dict", None)):
        ledger = ledger.state_dict()  # type: ignore[union-attr]
    if isinstance(ledger, Mapping):
        ledger = ledger.get("events", [])
    events = []
    for raw in ledger:  # type: ignore[union-attr]
        event = as_mapping("ledger event", raw)
        events.append({key: event.get(key) for key in _LEDGER_FIELDS})
    return events


_CERTIFICATE_KEYS = ("method", "status", "certified", "sensitivity", "assumptions", "reasons", "epsilon",
                     "delta", "sigma", "calibration", "noise_only_sigma", "cumulative_deletions",
                     "request_ids", "request_deletions", "elapsed_s", "accountant", "adjacency",
                     "noise_seed", "composition", "ledger", "sensitivity_kind", "reference", "certificate",
                     "sensitivity_budget", "measured_bound", "noise_source", "private_noise")
_REFINEMENT_KEYS = ("path", "steps", "hvps", "passes", "seconds", "start_bound", "rounding", "bound_kind",
                    "preconditioner")
_REFERENCE_NAMES = {"erm": "the exact retrain (the minimiser of the regularised risk on the remaining records)",
                    "coupled-sgd": "the coupled retrain (the recorded schedule replayed without them)"}


def _refinement(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``refine_*`` figures of a result as the report's refinement record (None without them)."""
    if not any(f"refine_{k}" in raw for k in _REFINEMENT_KEYS):
        return None
    out: dict[str, Any] = {}
    for key in _REFINEMENT_KEYS:
        value = raw.get(f"refine_{key}")
        if key in ("steps", "hvps", "passes"):
            out[key] = opt_int(key, value) or 0
        elif key in ("path", "bound_kind", "preconditioner"):
            out[key] = opt_str(key, value)
        else:
            out[key] = opt_float(key, value)
    out["seconds"] = out["seconds"] or 0.0
    if out["path"] not in ("refined", "retrained", "refused"):
        raise ConfigError(f"refinement path must be refined, retrained or refused, got {out['path']!r}")
    return out


def _certificate_summary(*, method: str, status: str, certified: bool, kind: str | None, reference: str,
                         sensitivity: float | None, epsilon: float | None, delta: float | None, sigma: float,
                         calibration: str, cumulative: int, budget: float | None, measured: float | None,
                         reasons: list[str]) -> str:
    """The certificate in one sentence (what the release is indistinguishable from, and why)."""
    target = _REFERENCE_NAMES.get(reference, "retraining")
    if certified and kind == "refine":
        return (f"certified: the noiseless part of the release was measured within {measured:.3g} of {target} "
                f"without the {cumulative} deleted record(s), inside the public budget {budget:.4g}; Gaussian noise "
                f"sigma={sigma:.4g} calibrated to that budget ({calibration} calibration) makes the release "
                f"({epsilon:g}, {delta:g})-indistinguishable from that retrain")
    if certified:
        return (f"certified: the {method} update is within sensitivity {sensitivity:.4g} of {target} "
                f"without the {cumulative} deleted record(s) under the stated assumptions, and Gaussian noise "
                f"sigma={sigma:.4g} ({calibration} calibration) makes the release "
                f"({epsilon:g}, {delta:g})-indistinguishable from that retrain")
    why = "; ".join(reasons) if reasons else "no proven bound applies"
    return f"{status}: {why}"


def certificate_section(certificate: object, request_count: int) -> dict[str, Any]:
    """Section 3, the certificate: what is guaranteed, under which assumptions, with which noise.

    Args:
        certificate: An ``UnlearnResult`` (its ``summary()``) or a mapping like it.
        request_count: Records in the request (the default of ``request_deletions``).

    Example:
        >>> section = certificate_section({"method": "hfocu", "status": "certified", "sensitivity": 0.01,
        ...     "epsilon": 1.0, "delta": 1e-5, "sigma": 0.04}, 3)
        >>> section["certified"], section["reference"], round(section["noise_multiplier"], 3)
        (True, 'coupled-sgd', 4.0)
    """
    raw = as_mapping("certificate", certificate)
    extras = {k: v for k, v in raw.items() if k not in _CERTIFICATE_KEYS and not k.startswith("refine_")}
    for key, value in extras.items():
        if value is not None and not isinstance(value, (bool, int, float, str, np.number)):
            raise ConfigError(f"unknown certificate key {key!r} with a non-scalar value; allowed keys: "
                              f"{', '.join(sorted(_CERTIFICATE_KEYS))} (other keys must be scalars)")
    method = raw.get("method")
    if not isinstance(method, str) or not method:
        raise ConfigError(f"certificate method must be a non-empty string, got {method!r}")
    status = raw.get("status", "certified" if raw.get("certified") else "uncertified")
    if status not in CERTIFICATE_STATUSES:
        raise ConfigError(f"certificate status must be one of {list(CERTIFICATE_STATUSES)}, got {status!r}")
    certified = raw.get("certified", status == "certified")
    if certified != (status == "certified"):
        raise ConfigError(f"certified={certified!r} contradicts status {status!r}")
    sensitivity = opt_float("sensitivity", raw.get("sensitivity"))
    epsilon, delta = opt_float("epsilon", raw.get("epsilon")), opt_float("delta", raw.get("delta"))
    sigma = opt_float("sigma", raw.get("sigma"))
    sigma = 0.0 if sigma is None else sigma
    if certified and (sensitivity is None or epsilon is None or delta is None):
        raise ConfigError("a certified release needs its sensitivity, epsilon and delta")
    request_ids = raw.get("request_ids")
    request_deletions = opt_int("request_deletions", raw.get("request_deletions"))
    if request_deletions is None:
        request_deletions = len(list(request_ids)) if request_ids is not None else request_count
    cumulative = opt_int("cumulative_deletions", raw.get("cumulative_deletions"))
    cumulative = request_deletions if cumulative is None else cumulative
    reasons = strings("reasons", raw.get("reasons"))
    calibration = str(raw.get("calibration") or "none")
    reference = str(raw.get("reference") or ("coupled-sgd" if method == "hfocu" else "none"))
    if reference not in ("erm", "coupled-sgd", "none"):
        raise ConfigError(f"certificate reference must be erm, coupled-sgd or none, got {reference!r}")
    kind = opt_str("certificate", raw.get("certificate"))
    if kind not in (None, "refine", "worst-case"):
        raise ConfigError(f"certificate kind must be refine or worst-case, got {kind!r}")
    budget = opt_float("sensitivity_budget", raw.get("sensitivity_budget"))
    measured = opt_float("measured_bound", raw.get("measured_bound"))
    if certified and kind == "refine" and (budget is None or measured is None or measured > budget):
        raise ConfigError("a certified refine release needs its budget and a measured bound within it")
    noise_source = _noise_source(raw, sigma)
    summary = _certificate_summary(method=method, status=status, certified=certified, kind=kind,
                                   reference=reference, sensitivity=sensitivity, epsilon=epsilon, delta=delta,
                                   sigma=sigma, calibration=calibration, cumulative=cumulative, budget=budget,
                                   measured=measured, reasons=reasons)
    return {
        "method": method,
        "status": status,
        "certified": certified,
        "summary": summary,
        "sensitivity": sensitivity,
        "sensitivity_kind": opt_str("sensitivity_kind", raw.get("sensitivity_kind")),
        "assumptions": strings("assumptions", raw.get("assumptions")),
        "reasons": reasons,
        "epsilon": epsilon,
        "delta": delta,
        "sigma": sigma,
        "noise_multiplier": (sigma / sensitivity) if sensitivity else None,
        "calibration": calibration,
        "accountant": opt_str("accountant", raw.get("accountant")),
        "adjacency": str(raw.get("adjacency") or "add/remove (S vs S without the deleted records)"),
        "noise_only_sigma": opt_float("noise_only_sigma", raw.get("noise_only_sigma")),
        "request_deletions": request_deletions,
        "cumulative_deletions": cumulative,
        "composition": str(raw.get("composition") or "each release adds fresh noise calibrated to the "
                           "cumulative deleted set; noise is not stacked release after release"),
        "noise_seed": opt_int("noise_seed", raw.get("noise_seed")),
        "elapsed_seconds": opt_float("elapsed_s", raw.get("elapsed_s")),
        "extras": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sorted(extras.items())},
        "ledger": _ledger_events(raw.get("ledger")),
        "reference": reference,
        "certificate_kind": kind,
        "sensitivity_budget": budget,
        "measured_bound": measured,
        "refinement": _refinement(raw),
        "noise_source": noise_source,
    }
