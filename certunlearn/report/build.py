r"""Results → a compliance-report dict (schema version 1), validated, with a digest for signing.

:func:`build_report` takes what the pipeline produced — the deletion request, the model's lineage,
the certificate (an :class:`~certunlearn.unlearn.base.UnlearnResult` or its ``summary()``), utility
figures, optional MIA-L / MIA-U results (result objects with ``as_dict()`` or plain dicts) and extra
empirical ε bounds — and returns a plain dict that

* never holds raw data: forgotten ids appear only as a SHA-256 digest and a count, parameters and
  data only as digests, configs only as a hash;
* holds only finite numbers: NaN and ±inf become ``null`` and each is listed in ``sanitised``;
* carries its verdict under the given :class:`~certunlearn.report.policy.Policy`, the policy itself,
  limitations, a glossary, and ``report_digest`` (SHA-256 of the canonical JSON, see
  :func:`~certunlearn.report.schema.report_digest`);
* is validated against the shipped schema before it is returned.

Top-level keys: ``schema_version``, ``kind``, ``request``, ``lineage``, ``certificate``,
``utility``, ``mia_l``, ``mia_u``, ``empirical_privacy``, ``policy``, ``verdict``, ``limitations``,
``glossary``, ``sanitised``, ``report_digest``.

Example:
    >>> report = build_report(
    ...     request={"request_id": "req-1", "ids": [4, 8, 15], "reported_at": "2025-01-01T00:00:00+00:00"},
    ...     lineage={"seeds": {"noise": 0}},
    ...     certificate={"method": "hfocu", "status": "certified", "certified": True, "sensitivity": 0.01,
    ...                  "epsilon": 1.0, "delta": 1e-5, "sigma": 0.037, "calibration": "analytic"},
    ...     utility={"released": {"test": 0.95, "retain": 0.97}, "retrained": {"test": 0.95, "retain": 0.97}},
    ...     policy=None)
    >>> report["verdict"]["status"], report["request"]["forget_set"]["count"]
    ('PASS', 3)
    >>> "15" in str(report["request"])  # the ids themselves are not in the report
    False
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np

from certunlearn._version import __version__
from certunlearn.errors import ConfigError
from certunlearn.report.policy import Policy, compare_with_reference, verdict
from certunlearn.report.schema import (
    SCHEMA_VERSION,
    ReportValidationError,
    first_error,
    load_schema,
    report_digest,
)
from certunlearn.serialize import plain

__all__ = [
    "GLOSSARY",
    "LIMITATIONS",
    "REPORT_KIND",
    "array_digest",
    "build_report",
    "config_digest",
    "example_report",
    "sanitise",
]

REPORT_KIND = "certunlearn.compliance_report"
"""Value of the ``kind`` field."""

CERTIFICATE_STATUSES = ("certified", "conditional", "heuristic", "uncertified")

IDS_DIGEST_METHOD = (
    "SHA-256 of the sorted integer ids joined by commas (certunlearn.certify.ledger.ids_digest); "
    "for non-integer ids, of the sorted ids as text joined by newlines"
)
PARAMS_DIGEST_METHOD = (
    "SHA-256 of the float64 bytes of the parameters, tensors flattened and concatenated in sorted "
    "key order (one tensor: certunlearn.unlearn.base.tensor_digest)"
)
CONFIG_DIGEST_METHOD = "SHA-256 of the configuration as JSON with sorted keys and compact separators"

MAX_ROC_POINTS = 256
HISTOGRAM_BINS = 30

LIMITATIONS: tuple[str, ...] = (
    "Only the certificate is a guarantee: it states that the released model is (epsilon, delta)-"
    "indistinguishable from retraining without the forgotten records, provided its assumptions hold.",
    "A membership-inference audit can only show non-compliance (a significant attack) or the absence of "
    "detected leakage up to the audit's power; it never proves deletion. Attack results are lower bounds "
    "on leakage: a stronger attack, more shadow models or more queries may find more.",
    "An empirical epsilon lower bound can refute a claimed epsilon only up to the audit's cap (about ln of "
    "the number of audited examples); claims above the cap cannot be tested by this audit.",
    "Intervals on the AUC are bootstrap estimates, not guarantees; the Clopper-Pearson bounds on TPR/FPR and "
    "the epsilon lower bounds hold with the stated confidence.",
    "A dishonest provider can game verification by auditing a different model than the one deployed "
    "(Zhang et al., ICML 2024, 'Verification of Machine Unlearning is Fragile'); the parameter digests "
    "tie this report to specific weights.",
    "Raw scores, ids and data are not embedded; the report holds digests, summary curves and histograms.",
    "Legal references (GDPR Art. 17, 12(3), 5(2), 35; EDPB Opinion 28/2024) are context, not legal advice.",
)
"""Standard limitations written into every report."""

GLOSSARY: Mapping[str, str] = {
    "epsilon (ε)": "Privacy loss of the certificate: a smaller epsilon means the released model is harder "
                   "to tell apart from a model retrained without the forgotten records.",
    "delta (δ)": "Small probability with which the epsilon guarantee may fail.",
    "sensitivity (Δ)": "Proven bound on the distance between the unlearned model and retraining; the noise "
                       "is calibrated to it.",
    "sigma (σ)": "Standard deviation of the Gaussian noise added to the released parameters.",
    "certified / conditional / heuristic / uncertified": "Status of the bound: certified when its assumptions "
        "are proven for this model; conditional when they are assumed; heuristic when estimated; "
        "uncertified when no bound applies.",
    "retrained reference": "A model trained without the forgotten records: what perfect unlearning looks like.",
    "MIA-L": "Membership inference on the released model: can an attacker tell forgotten records from "
             "records never used in training?",
    "MIA-U": "Membership inference against the unlearning: comparing the model before and after deletion "
             "to tell deleted records from others (Chen et al., CCS 2021).",
    "AUC": "Area under the ROC curve of an attack: 0.5 is guessing, 1.0 is perfect separation.",
    "TPR / FPR": "True-positive rate (forgotten records correctly flagged) and false-positive rate (other "
                 "records wrongly flagged).",
    "TPR@FPR=x": "Fraction of forgotten records an attack finds while flagging at most a fraction x of others.",
    "empirical epsilon lower bound": "Smallest epsilon consistent with the attack's error rates at the stated "
                                     "confidence; above the claimed epsilon it refutes the certificate.",
    "cap": "Largest epsilon lower bound the audit could have produced at its sample sizes.",
    "Clopper-Pearson": "Exact binomial confidence bound used for TPR/FPR and epsilon lower bounds.",
    "Benjamini-Hochberg": "Correction of p-values for testing several attacks at once.",
    "DegCount / DegRate": "How often / how much an MIA-U feature beats the original model alone; above 0.5 / 0 "
                          "the unlearning leaks more than the original model.",
}
"""Plain-language glossary written into every report."""


# ---------------------------------------------------------------------------------------------
# Digests and sanitising
# ---------------------------------------------------------------------------------------------

_HEX64 = frozenset("0123456789abcdef")


def _hex_or_none(name: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) != 64 or not set(value.lower()) <= _HEX64:
            raise ConfigError(f"{name} must be a SHA-256 hex digest (64 hex characters), got {value!r}")
        return value.lower()
    return array_digest(value)


def _as_numpy(value: object) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()  # type: ignore[union-attr]
        if hasattr(value, "double") and getattr(value, "is_floating_point", lambda: False)():
            value = value.double()
        value = value.numpy()  # type: ignore[union-attr]
    return np.asarray(value)


def array_digest(value: object) -> str:
    """SHA-256 of parameters or data: one array/tensor, or a mapping of them in sorted key order.

    Every array is flattened and cast to float64 before hashing (the digest does not depend on the
    storage precision), so one tensor gives the same digest as
    :func:`certunlearn.unlearn.base.tensor_digest`.

    Args:
        value: A numpy array, a torch tensor (not imported here), a nested list of numbers, or a
            mapping of such (a state dict).

    Returns:
        The hex digest.

    Raises:
        ConfigError: Empty mapping or non-numeric arrays.

    Example:
        >>> array_digest({"b": [1.0], "a": [0.0, 2.0]}) == array_digest(np.array([0.0, 2.0, 1.0]))
        True
    """
    if isinstance(value, Mapping):
        if not value:
            raise ConfigError("cannot digest an empty mapping of arrays")
        parts = [_as_numpy(value[key]).reshape(-1) for key in sorted(value)]
    else:
        parts = [_as_numpy(value).reshape(-1)]
    for part in parts:
        if part.dtype.kind not in "fiub":
            raise ConfigError(f"cannot digest an array of dtype {part.dtype}")
    array = np.concatenate([part.astype(np.float64) for part in parts])
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def config_digest(config: object) -> str:
    """SHA-256 of a configuration as canonical JSON (sorted keys; unknown objects as ``str``).

    Args:
        config: A JSON-like mapping (tuples, numpy scalars and other objects are converted).

    Returns:
        The hex digest.

    Example:
        >>> config_digest({"lr": 0.5, "epochs": 2}) == config_digest({"epochs": 2, "lr": 0.5})
        True
    """
    text = json.dumps(plain(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sanitise(value: Any, *, path: str = "$") -> tuple[Any, list[dict[str, str]]]:
    """Replace NaN and ±inf by ``None`` and say where: ``(clean copy, [{"path", "value"}])``.

    Args:
        value: A JSON-like value (numpy arrays and scalars are converted to Python first).
        path: JSON path of ``value`` (for the notes).

    Returns:
        The cleaned copy and one note per replaced number.

    Example:
        >>> sanitise({"a": [1.0, float("nan")], "b": float("inf")})
        ({'a': [1.0, None], 'b': None}, [{'path': '$.a[1]', 'value': 'nan'}, {'path': '$.b', 'value': 'inf'}])
    """
    notes: list[dict[str, str]] = []

    def walk(item: Any, where: str) -> Any:
        if isinstance(item, Mapping):
            return {k: walk(v, f"{where}.{k}" if str(k).isidentifier() else f"{where}[{json.dumps(str(k))}]")
                    for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(item)]
        if isinstance(item, float) and not math.isfinite(item):
            notes.append({"path": where, "value": repr(item)})
            return None
        return item

    return walk(plain(value), path), notes


# ---------------------------------------------------------------------------------------------
# Small input helpers
# ---------------------------------------------------------------------------------------------


def _mapping(name: str, value: object) -> dict[str, Any]:
    if value is None:
        return {}
    for method in ("summary", "as_dict"):
        if not isinstance(value, Mapping) and callable(getattr(value, method, None)):
            value = getattr(value, method)()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping (or an object with summary()/as_dict()), "
                          f"got {type(value).__name__}")
    return dict(value)


def _reject_unknown(name: str, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = sorted(allowed)
    for key in given:
        if key not in allowed:
            raise ConfigError(f"unknown {name} key {key!r}; allowed keys: {', '.join(allowed)}")


def _opt_float(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(f"{name} must be a number or None, got {value!r}")
    return float(value)


def _opt_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer or None, got {value!r}")
    return int(value)


def _opt_str(name: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string or None, got {value!r}")
    return value


def _strings(name: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    return [str(v) for v in value]


def _version_of(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------

_REQUEST_KEYS = ("request_id", "ids", "ids_sha256", "count", "subject_id", "ground", "scope",
                 "records_sha256", "received_at", "executed_at", "reported_at")


def _request_section(request: object) -> dict[str, Any]:
    raw = _mapping("request", request)
    _reject_unknown("request", raw, _REQUEST_KEYS)
    request_id = raw.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise ConfigError(f"request_id must be a non-empty string, got {request_id!r}")
    if "ids" in raw:
        if "ids_sha256" in raw or "count" in raw:
            raise ConfigError("give either ids, or ids_sha256 and count, not both")
        ids = list(raw["ids"])
        if not ids:
            raise ConfigError("ids must not be empty")
        if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
            from certunlearn.certify.ledger import ids_digest  # here: it pulls in SciPy

            digest = ids_digest(int(i) for i in ids)
        else:
            digest = hashlib.sha256("\n".join(sorted(str(i) for i in ids)).encode("utf-8")).hexdigest()
        count = len(ids)
    else:
        digest = _hex_or_none("ids_sha256", raw.get("ids_sha256"))
        count = _opt_int("count", raw.get("count"))
        if digest is None or count is None or count < 1:
            raise ConfigError("give ids, or ids_sha256 with a count >= 1")
    reported = raw.get("reported_at") or datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "request_id": request_id,
        "subject_id": _opt_str("subject_id", raw.get("subject_id")),
        "ground": _opt_str("ground", raw.get("ground")),
        "scope": _opt_str("scope", raw.get("scope")),
        "received_at": _opt_str("received_at", raw.get("received_at")),
        "executed_at": _opt_str("executed_at", raw.get("executed_at")),
        "reported_at": _opt_str("reported_at", reported),
        "forget_set": {
            "count": count,
            "ids_sha256": digest,
            "ids_digest_method": IDS_DIGEST_METHOD,
            "records_sha256": _hex_or_none("records_sha256", raw.get("records_sha256")),
        },
    }


_LINEAGE_KEYS = ("original_params", "released_params", "data_manifest", "config", "seeds", "device",
                 "commit", "model", "dataset", "retrain_reference", "versions")


def _lineage_section(lineage: object) -> dict[str, Any]:
    raw = _mapping("lineage", lineage)
    _reject_unknown("lineage", raw, _LINEAGE_KEYS)
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
        "original_params_sha256": _hex_or_none("original_params", raw.get("original_params")),
        "released_params_sha256": _hex_or_none("released_params", raw.get("released_params")),
        "params_digest_method": PARAMS_DIGEST_METHOD,
        "data_manifest_sha256": _hex_or_none("data_manifest", raw.get("data_manifest")),
        "config_sha256": (None if config is None else
                          _hex_or_none("config", config) if isinstance(config, str) else config_digest(config)),
        "config_digest_method": CONFIG_DIGEST_METHOD,
        "versions": versions,
        "device": None if device is None else str(device),
        "seeds": {str(k): _opt_int(f"seeds[{k!r}]", v) for k, v in seeds.items()},
        "commit": _opt_str("commit", raw.get("commit")),
        "model": _opt_str("model", raw.get("model")),
        "dataset": _opt_str("dataset", raw.get("dataset")),
        "retrain_reference": retrain,
    }


_LEDGER_FIELDS = ("request_id", "ids_digest", "count", "cumulative_count", "method", "sensitivity", "sigma",
                  "epsilon", "delta", "certified", "model_before", "model_after", "timestamp")


def _ledger_events(ledger: object) -> list[dict[str, Any]] | None:
    if ledger is None:
        return None
    if callable(getattr(ledger, "state_dict", None)):
        ledger = ledger.state_dict()  # type: ignore[union-attr]
    if isinstance(ledger, Mapping):
        ledger = ledger.get("events", [])
    events = []
    for raw in ledger:  # type: ignore[union-attr]
        event = _mapping("ledger event", raw)
        events.append({key: event.get(key) for key in _LEDGER_FIELDS})
    return events


_CERTIFICATE_KEYS = ("method", "status", "certified", "sensitivity", "assumptions", "reasons", "epsilon",
                     "delta", "sigma", "calibration", "noise_only_sigma", "cumulative_deletions",
                     "request_ids", "request_deletions", "elapsed_s", "accountant", "adjacency",
                     "noise_seed", "composition", "ledger", "sensitivity_kind", "reference", "certificate",
                     "sensitivity_budget", "measured_bound")
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
            out[key] = _opt_int(key, value) or 0
        elif key in ("path", "bound_kind", "preconditioner"):
            out[key] = _opt_str(key, value)
        else:
            out[key] = _opt_float(key, value)
    out["seconds"] = out["seconds"] or 0.0
    if out["path"] not in ("refined", "retrained", "refused"):
        raise ConfigError(f"refinement path must be refined, retrained or refused, got {out['path']!r}")
    return out


def _certificate_section(certificate: object, request_count: int) -> dict[str, Any]:
    raw = _mapping("certificate", certificate)
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
    sensitivity = _opt_float("sensitivity", raw.get("sensitivity"))
    epsilon, delta = _opt_float("epsilon", raw.get("epsilon")), _opt_float("delta", raw.get("delta"))
    sigma = _opt_float("sigma", raw.get("sigma"))
    sigma = 0.0 if sigma is None else sigma
    if certified and (sensitivity is None or epsilon is None or delta is None):
        raise ConfigError("a certified release needs its sensitivity, epsilon and delta")
    request_ids = raw.get("request_ids")
    request_deletions = _opt_int("request_deletions", raw.get("request_deletions"))
    if request_deletions is None:
        request_deletions = len(list(request_ids)) if request_ids is not None else request_count
    cumulative = _opt_int("cumulative_deletions", raw.get("cumulative_deletions"))
    cumulative = request_deletions if cumulative is None else cumulative
    reasons = _strings("reasons", raw.get("reasons"))
    calibration = str(raw.get("calibration") or "none")
    reference = str(raw.get("reference") or ("coupled-sgd" if method == "hfocu" else "none"))
    if reference not in ("erm", "coupled-sgd", "none"):
        raise ConfigError(f"certificate reference must be erm, coupled-sgd or none, got {reference!r}")
    kind = _opt_str("certificate", raw.get("certificate"))
    if kind not in (None, "refine", "worst-case"):
        raise ConfigError(f"certificate kind must be refine or worst-case, got {kind!r}")
    budget = _opt_float("sensitivity_budget", raw.get("sensitivity_budget"))
    measured = _opt_float("measured_bound", raw.get("measured_bound"))
    if certified and kind == "refine" and (budget is None or measured is None or measured > budget):
        raise ConfigError("a certified refine release needs its budget and a measured bound within it")
    target = _REFERENCE_NAMES.get(reference, "retraining")
    if certified and kind == "refine":
        summary = (f"certified: the noiseless part of the release was measured within {measured:.3g} of {target} "
                   f"without the {cumulative} deleted record(s), inside the public budget {budget:.4g}; Gaussian noise "
                   f"sigma={sigma:.4g} calibrated to that budget ({calibration} calibration) makes the release "
                   f"({epsilon:g}, {delta:g})-indistinguishable from that retrain")
    elif certified:
        summary = (f"certified: the {method} update is within sensitivity {sensitivity:.4g} of {target} "
                   f"without the {cumulative} deleted record(s) under the stated assumptions, and Gaussian noise "
                   f"sigma={sigma:.4g} ({calibration} calibration) makes the release "
                   f"({epsilon:g}, {delta:g})-indistinguishable from that retrain")
    else:
        why = "; ".join(reasons) if reasons else "no proven bound applies"
        summary = f"{status}: {why}"
    return {
        "method": method,
        "status": status,
        "certified": certified,
        "summary": summary,
        "sensitivity": sensitivity,
        "sensitivity_kind": _opt_str("sensitivity_kind", raw.get("sensitivity_kind")),
        "assumptions": _strings("assumptions", raw.get("assumptions")),
        "reasons": reasons,
        "epsilon": epsilon,
        "delta": delta,
        "sigma": sigma,
        "noise_multiplier": (sigma / sensitivity) if sensitivity else None,
        "calibration": calibration,
        "accountant": _opt_str("accountant", raw.get("accountant")),
        "adjacency": str(raw.get("adjacency") or "add/remove (S vs S without the deleted records)"),
        "noise_only_sigma": _opt_float("noise_only_sigma", raw.get("noise_only_sigma")),
        "request_deletions": request_deletions,
        "cumulative_deletions": cumulative,
        "composition": str(raw.get("composition") or "each release adds fresh noise calibrated to the "
                           "cumulative deleted set; noise is not stacked release after release"),
        "noise_seed": _opt_int("noise_seed", raw.get("noise_seed")),
        "elapsed_seconds": _opt_float("elapsed_s", raw.get("elapsed_s")),
        "extras": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sorted(extras.items())},
        "ledger": _ledger_events(raw.get("ledger")),
        "reference": reference,
        "certificate_kind": kind,
        "sensitivity_budget": budget,
        "measured_bound": measured,
        "refinement": _refinement(raw),
    }


_UTILITY_KEYS = ("released", "retrained", "original", "trained", "unlearned_noiseless", "noiseless",
                 "privacy_utility_curve")
_SPLITS = ("retain", "test", "forget")


def _model_utility(name: str, value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    raw = _mapping(name, value)
    allowed = [*_SPLITS, *(f"{s}_accuracy" for s in _SPLITS), *(f"{s}_loss" for s in _SPLITS)]
    _reject_unknown(f"utility[{name!r}]", raw, allowed)
    out: dict[str, Any] = {}
    for split in _SPLITS:
        if split in raw and f"{split}_accuracy" in raw:
            raise ConfigError(f"utility[{name!r}] gives both {split!r} and {split + '_accuracy'!r}")
        out[f"{split}_accuracy"] = _opt_float(f"{split}_accuracy", raw.get(f"{split}_accuracy", raw.get(split)))
    for split in _SPLITS:
        out[f"{split}_loss"] = _opt_float(f"{split}_loss", raw.get(f"{split}_loss"))
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if b == 0.0:
        return math.nan if a == 0.0 else math.inf
    return a / b


def _utility_section(utility: object) -> dict[str, Any]:
    raw = _mapping("utility", utility)
    _reject_unknown("utility", raw, _UTILITY_KEYS)
    if raw.get("released") is None:
        raise ConfigError("utility needs the released model's figures under 'released'")
    if "trained" in raw and "original" in raw:
        raise ConfigError("utility gives both 'trained' and 'original'")
    models = {
        "released": _model_utility("released", raw["released"]),
        "retrained": _model_utility("retrained", raw.get("retrained")),
        "original": _model_utility("original", raw.get("original", raw.get("trained"))),
        "noiseless": _model_utility("noiseless", raw.get("noiseless", raw.get("unlearned_noiseless"))),
    }
    released, retrained = models["released"], models["retrained"] or {}
    ratios = {f"{s}_accuracy_ratio": _ratio(released[f"{s}_accuracy"], retrained.get(f"{s}_accuracy"))  # type: ignore[index]
              for s in _SPLITS}
    curve = raw.get("privacy_utility_curve")
    points = None
    if curve is not None:
        points = []
        for i, point in enumerate(curve):
            p = _mapping(f"privacy_utility_curve[{i}]", point)
            _reject_unknown("privacy_utility_curve point", p, ("sigma", "epsilon", "test_accuracy", "retain_accuracy"))
            points.append({key: _opt_float(key, p.get(key))
                           for key in ("sigma", "epsilon", "test_accuracy", "retain_accuracy")})
    return {"models": models, "ratios": ratios, "ratio_definition": "released / retrained (RA_U/RA_R, TA_U/TA_R)",
            "privacy_utility_curve": points}


# ----- attack sections -----------------------------------------------------------------------


def _downsample_roc(fpr: Sequence[float], tpr: Sequence[float]) -> dict[str, list[float]] | None:
    f = np.asarray(fpr, dtype=np.float64).reshape(-1)
    t = np.asarray(tpr, dtype=np.float64).reshape(-1)
    if f.size == 0 or f.size != t.size:
        return None
    if f.size > MAX_ROC_POINTS:
        grid = np.concatenate([np.logspace(-6, 0, MAX_ROC_POINTS - 56), np.linspace(0, 1, 51)])
        index = np.unique(np.clip(np.searchsorted(f, grid, side="right") - 1, 0, f.size - 1))
        index = np.unique(np.concatenate([[0, f.size - 1], index]))
        f, t = f[index], t[index]
    return {"fpr": f.tolist(), "tpr": t.tolist()}


def _histogram(scores_in: object, scores_out: object) -> dict[str, list[float]] | None:
    if scores_in is None or scores_out is None:
        return None
    a = np.asarray(scores_in, dtype=np.float64).reshape(-1)
    b = np.asarray(scores_out, dtype=np.float64).reshape(-1)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return None
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=HISTOGRAM_BINS)
    return {
        "edges": edges.tolist(),
        "members": np.histogram(a, bins=edges)[0].astype(int).tolist(),
        "non_members": np.histogram(b, bins=edges)[0].astype(int).tolist(),
    }


def _as_dict_rich(value: object) -> Any:
    as_dict = getattr(value, "as_dict", None)
    if isinstance(value, Mapping) or not callable(as_dict):
        return value
    for kwargs in ({"include_roc": True, "include_scores": True}, {"include_roc": True}, {}):
        try:
            return as_dict(**kwargs)
        except TypeError:
            continue
    return as_dict()


def _pair(value: object) -> list[float] | None:
    if value is None:
        return None
    values = list(value)  # type: ignore[call-overload]
    if len(values) != 2:
        raise ConfigError(f"an interval must have two ends, got {value!r}")
    return [float(values[0]), float(values[1])]


def _tpr_at(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    raw = metrics.get("tpr_at") or {}
    return {str(k): _opt_float(f"tpr_at[{k!r}]", v) for k, v in dict(raw).items()}


def _operating_points(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for point in metrics.get("operating_points") or []:
        p = _mapping("operating point", point)
        out.append({
            "target_fpr": _opt_float("target_fpr", p.get("target_fpr")),
            "fpr": _opt_float("fpr", p.get("fpr")),
            "tpr": _opt_float("tpr", p.get("tpr")),
            "tpr_ci": _pair(p.get("tpr_ci")),
            "tpr_upper": _opt_float("tpr_upper", p.get("tpr_upper")),
            "fpr_upper": _opt_float("fpr_upper", p.get("fpr_upper")),
            "enough_non_members": p.get("enough_non_members") if isinstance(p.get("enough_non_members"), bool) else None,
        })
    return out


def _metrics_of(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """``raw["metrics"]`` (an AttackMetrics or its dict) when present, else ``raw`` itself (flat form)."""
    metrics = raw.get("metrics")
    if metrics is None:
        return raw
    return _mapping("attack metrics", _as_dict_rich(metrics))


def _attack_core(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Fields shared by an attack and its reference, from a flat dict or {'metrics': ..., 'epsilon': ...}."""
    metrics = _metrics_of(raw)
    roc = metrics.get("roc") or raw.get("roc")
    roc = _as_dict_rich(roc) if roc is not None else None
    auc_ci = _pair(metrics.get("auc_ci"))
    alpha = _opt_float("alpha", metrics.get("alpha"))
    return {
        "auc": _opt_float("auc", metrics.get("auc", raw.get("auc"))),
        "auc_ci": auc_ci,
        "auc_ci_level": (1.0 - alpha) if (auc_ci is not None and alpha is not None) else None,
        "n_members": _opt_int("n_members", metrics.get("n_in", metrics.get("n_members", raw.get("n_members")))),
        "n_non_members": _opt_int("n_non_members",
                                  metrics.get("n_out", metrics.get("n_non_members", raw.get("n_non_members")))),
        "roc": None if not isinstance(roc, Mapping) else _downsample_roc(roc.get("fpr", []), roc.get("tpr", [])),
        "score_histogram": _histogram(raw.get("scores_in"), raw.get("scores_out")),
    }


def _epsilon_of(raw: Mapping[str, Any]) -> tuple[float | None, float | None]:
    eps = raw.get("epsilon")
    eps = _as_dict_rich(eps)
    if isinstance(eps, Mapping):
        return _opt_float("epsilon", eps.get("epsilon")), _opt_float("cap", eps.get("cap"))
    return _opt_float("epsilon_lb", raw.get("epsilon_lb", eps)), _opt_float("epsilon_cap", raw.get("epsilon_cap"))


def _attack_entry(name: str, value: object, reference: object | None) -> dict[str, Any]:
    raw = _mapping(f"attack {name!r}", _as_dict_rich(value))
    metrics = _metrics_of(raw)
    epsilon_lb, epsilon_cap = _epsilon_of(raw)
    entry = {
        "name": name,
        "description": _opt_str("description", raw.get("description")) or "",
        **_attack_core(raw),
        "auc_ci_method": _opt_str("auc_ci_method", metrics.get("auc_ci_method")),
        "balanced_accuracy": _opt_float("balanced_accuracy", metrics.get("balanced_accuracy")),
        "advantage": _opt_float("advantage", metrics.get("advantage")),
        "tpr_at": _tpr_at(metrics),
        "operating_points": _operating_points(metrics),
        "epsilon_lb": epsilon_lb,
        "epsilon_cap": epsilon_cap,
        "deg_count": _opt_float("deg_count", raw.get("deg_count")),
        "deg_rate": _opt_float("deg_rate", raw.get("deg_rate")),
        "reference": None,
        "comparison": None,
    }
    if reference is not None:
        entry["reference"] = _attack_core(_mapping(f"reference of {name!r}", _as_dict_rich(reference)))
    return entry


def _attack_list(raw_attacks: object) -> list[tuple[str, Any]]:
    if raw_attacks is None:
        return []
    if isinstance(raw_attacks, Mapping):
        return [(str(name), value) for name, value in raw_attacks.items()]
    out = []
    for i, value in enumerate(raw_attacks):  # type: ignore[union-attr]
        item = _as_dict_rich(value)
        if isinstance(item, Mapping) and item.get("name"):
            name = str(item["name"])
        elif isinstance(item, Mapping) and item.get("feature"):
            parts = [item.get("defence"), item.get("feature"), item.get("classifier")]
            name = "/".join(str(p) for p in parts if p and p != "none")
        else:
            name = f"attack {i}"
        out.append((name, item))
    return out


_SECTION_META = {
    "mia_l": ("released model", "forget set (members) vs held-out records never trained on (non-members)"),
    "mia_u": ("original and unlearned models", "deleted records vs negatives (see negatives_definition)"),
}


def _attack_section(kind: str, value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    retrained = None
    if isinstance(value, Mapping) and "result" in value:
        # {"result": <result object or dict>, "retrained": <the same attacks on the retrained model>}
        _reject_unknown(kind, value, ("result", "retrained"))
        retrained, value = value.get("retrained"), value["result"]
    elif isinstance(value, Mapping):
        retrained = value.get("retrained")
    raw = _mapping(kind, _as_dict_rich(value))
    reference_by_name = {name: ref for name, ref in _attack_list(
        (_mapping(f"{kind} retrained", _as_dict_rich(retrained)).get("attacks")) if retrained is not None else None)}
    attacks = []
    for name, item in _attack_list(raw.get("attacks")):
        own_ref = item.get("reference") if isinstance(item, Mapping) and isinstance(item.get("reference"), Mapping) else None
        attacks.append(_attack_entry(name, item, own_ref if own_ref is not None else reference_by_name.get(name)))
    if not attacks:
        raise ConfigError(f"{kind} needs at least one attack under 'attacks'")
    headline_lb, headline_cap = None, None
    eps = _as_dict_rich(raw.get("epsilon"))
    if isinstance(eps, Mapping):  # MIA-U: the best attack's bound, corrected for the selection
        headline_lb, headline_cap = _opt_float("epsilon", eps.get("epsilon")), _opt_float("cap", eps.get("cap"))
    elif raw.get("epsilon_lower_bound") is not None:  # MIA-L: max over attacks, Bonferroni over attacks
        headline_lb = _opt_float("epsilon_lower_bound", raw.get("epsilon_lower_bound"))
        caps = [a["epsilon_cap"] for a in attacks if a["epsilon_cap"] is not None]
        headline_cap = max(caps) if caps else None
    target, comparison = _SECTION_META[kind]
    spec = raw.get("spec") if isinstance(raw.get("spec"), Mapping) else {}
    best = max((a for a in attacks if a["auc"] is not None), key=lambda a: a["auc"], default=None)
    return {
        # MIAUResult.as_dict() uses "target" for its target universe: only a string is a description.
        "target": raw["target"] if isinstance(raw.get("target"), str) and raw["target"] else target,
        "comparison": raw["comparison"] if isinstance(raw.get("comparison"), str) and raw["comparison"] else comparison,
        "attacks": attacks,
        "best_attack": None if best is None else best["name"],
        "n_shadows": _opt_int("n_shadows", raw.get("n_shadows", spec.get("n_shadow_originals"))),
        "n_population": _opt_int("n_population", raw.get("n_population")),
        "alpha": _opt_float("alpha", raw.get("alpha", spec.get("alpha"))),
        "delta": _opt_float("delta", raw.get("delta", spec.get("delta"))),
        "tpr_convention": _opt_str("tpr_convention", raw.get("tpr_convention"))
                          or "TPR at the last ROC point with fpr <= x",
        "unlearning": _opt_str("unlearning", raw.get("unlearning")),
        "negatives": _opt_str("negatives", raw.get("negatives")),
        "negatives_definition": _opt_str("negatives_definition", raw.get("negatives_definition")),
        "evaluation": _opt_str("evaluation", raw.get("evaluation")),
        "defences": _strings("defences", raw.get("defences", spec.get("defences"))),
        "epsilon_lb": headline_lb,
        "epsilon_cap": headline_cap,
        "epsilon_correction": _opt_str("epsilon_correction", raw.get("epsilon_correction")),
        "notes": _strings("notes", raw.get("notes")),
    }


# ----- empirical privacy -----------------------------------------------------------------------


def _bound_entry(source: str, value: object) -> dict[str, Any]:
    raw = _mapping(f"empirical bound {source!r}", _as_dict_rich(value))
    lb = raw.get("epsilon_lb", raw.get("epsilon"))
    return {
        "source": str(raw.get("source") or source),
        "method": _opt_str("method", raw.get("method")),
        "epsilon_lb": _opt_float("epsilon_lb", lb),
        "cap": _opt_float("cap", raw.get("cap")),
        "alpha": _opt_float("alpha", raw.get("alpha")),
        "delta": _opt_float("delta", raw.get("delta")),
        "n_members": _opt_int("n_members", raw.get("n_in", raw.get("n_members"))),
        "n_non_members": _opt_int("n_non_members", raw.get("n_out", raw.get("n_non_members"))),
        "correction": _opt_str("correction", raw.get("correction")),
        "mu": _opt_float("mu", raw.get("mu")),
    }


def _empirical_section(empirical: object, sections: Mapping[str, Any], certificate: Mapping[str, Any]) -> dict[str, Any]:
    bounds: list[dict[str, Any]] = []
    for kind in ("mia_l", "mia_u"):
        section = sections.get(kind)
        if section is not None and section["epsilon_lb"] is not None:
            bounds.append({
                "source": kind, "method": "clopper-pearson", "epsilon_lb": section["epsilon_lb"],
                "cap": section["epsilon_cap"], "alpha": section["alpha"], "delta": section["delta"],
                "n_members": section["attacks"][0]["n_members"],
                "n_non_members": section["attacks"][0]["n_non_members"],
                "correction": section["epsilon_correction"], "mu": None,
            })
    forgetting_quality = None
    if empirical is not None:
        if isinstance(empirical, Mapping) and ("bounds" in empirical or "forgetting_quality" in empirical):
            _reject_unknown("empirical", empirical, ("bounds", "forgetting_quality"))
            forgetting_quality = _opt_float("forgetting_quality", empirical.get("forgetting_quality"))
            extra = empirical.get("bounds") or []
        elif isinstance(empirical, Sequence) and not isinstance(empirical, (str, bytes)):
            extra = list(empirical)
        else:
            extra = [empirical]
        bounds.extend(_bound_entry(f"empirical[{i}]", b) for i, b in enumerate(extra))
    lbs = [b["epsilon_lb"] for b in bounds if b["epsilon_lb"] is not None]
    caps = [b["cap"] for b in bounds if b["cap"] is not None]
    return {
        "claimed_epsilon": certificate["epsilon"],
        "claimed_delta": certificate["delta"],
        "certified": certificate["certified"],
        "bounds": bounds,
        "max_epsilon_lb": max(lbs) if lbs else None,
        "max_cap": max(caps) if caps else None,
        "forgetting_quality": forgetting_quality,
        "interpretation": "An epsilon lower bound above the claimed epsilon refutes the certificate (FAIL). A "
                          "bound below it is consistent with the claim but proves nothing; the audit could "
                          "not have shown more than its cap.",
    }


def _dynamic_limitations(report: Mapping[str, Any]) -> list[str]:
    out = []
    if not (report["mia_l"] or report["mia_u"]):
        out.append("No membership-inference audit was run for this report: only the certificate speaks.")
    claimed, cap = report["empirical_privacy"]["claimed_epsilon"], report["empirical_privacy"]["max_cap"]
    if claimed is not None and cap is not None and cap <= claimed:
        out.append(f"The audit's cap (epsilon {cap:.3g}) does not exceed the claimed epsilon {claimed:.3g}: "
                   "this audit could not have refuted the certificate.")
    if report["utility"]["models"]["retrained"] is None:
        out.append("No retrained reference model: utility ratios and attack comparisons are not available.")
    if report["certificate"]["status"] != "certified":
        out.append("The release is not certified: without a certificate there is no guarantee, only the audit.")
    return out


# ---------------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------------


def build_report(
    *,
    request: Mapping[str, Any],
    lineage: Mapping[str, Any] | None,
    certificate: Any,
    utility: Mapping[str, Any],
    mia_l: Any = None,
    mia_u: Any = None,
    empirical: Any = None,
    policy: Policy | Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Assemble, judge, sanitise, digest and validate a compliance report.

    Args:
        request: ``request_id`` (str) and either ``ids`` (digested here, never stored) or
            ``ids_sha256`` + ``count``; optional ``subject_id`` (pseudonymous), ``ground`` (the Art. 17
            ground), ``scope``, ``records_sha256`` (digest of the forget set's record manifest) and
            timestamps ``received_at`` / ``executed_at`` / ``reported_at`` (default: now, UTC).
        lineage: Optional ``original_params`` / ``released_params`` (hex digest, tensor, array, or a
            state dict — hashed here), ``data_manifest`` (digest or arrays), ``config`` (mapping,
            hashed), ``seeds`` ({name: int}), ``device``, ``commit``, ``model``, ``dataset``,
            ``retrain_reference`` (bool), ``versions`` (extra package versions). certunlearn, torch,
            opacus, numpy and Python versions are filled in (torch is not imported).
        certificate: An :class:`~certunlearn.unlearn.base.UnlearnResult` or a mapping like its
            ``summary()``; optional ``adjacency``, ``accountant``, ``noise_seed``, ``composition``,
            ``ledger`` (a :class:`~certunlearn.certify.ledger.Ledger`, its state dict, or events).
            Raw ``request_ids`` are counted and dropped.
        utility: ``released`` (required), ``retrained``, ``original`` (or ``trained``) and
            ``noiseless`` (or ``unlearned_noiseless``) — each ``{retain, test, forget}`` accuracies
            (or ``*_accuracy``) and optional ``*_loss`` — and ``privacy_utility_curve``: a list of
            ``{sigma, epsilon, test_accuracy, retain_accuracy}`` from a σ sweep. ``run_demo``'s
            ``accuracy`` dict fits as is.
        mia_l: MIA-L result (an object with ``as_dict()`` or a dict with ``attacks``: {name: attack}
            or a list), optionally with ``retrained``: the same attacks run on the retrained model
            (matched by name). An attack is flat (``auc``, ``auc_ci``, ``n_members`` ...) or
            ``{"metrics": AttackMetrics.as_dict(), "epsilon": EpsilonBound.as_dict()}``; raw
            ``scores_in``/``scores_out`` become histograms, ROCs are thinned to 256 points.
        mia_u: MIA-U result, same forms (e.g. ``MIAUResult.as_dict()``).
        empirical: Extra ε lower bounds (an :class:`~certunlearn.audit.epsilon.EpsilonBound`, its
            dict, a list of them, or ``{"bounds": [...], "forgetting_quality": F}``). The MIA
            sections' headline bounds are added automatically.
        policy: A :class:`Policy`, a mapping of policy keys, or None (the documented defaults).

    Returns:
        The report dict (valid against the schema, with ``report_digest``).

    Raises:
        ConfigError: A malformed input (the message names the key).

    Example:
        >>> report = build_report(request={"request_id": "r", "ids": [1], "reported_at": "2025-01-01"},
        ...     lineage=None, certificate={"method": "retrain", "status": "uncertified"},
        ...     utility={"released": {"test": 0.9}}, policy={"require_certified": True})
        >>> report["verdict"]["status"], [r["rule"] for r in report["verdict"]["reasons"]]
        ('INVESTIGATE', ['uncertified'])
    """
    if policy is None:
        policy = Policy()
    elif isinstance(policy, Mapping):
        policy = Policy.from_mapping(policy)
    elif not isinstance(policy, Policy):
        raise ConfigError(f"policy must be a Policy, a mapping or None, got {type(policy).__name__}")
    request_section = _request_section(request)
    certificate_section = _certificate_section(certificate, request_section["forget_set"]["count"])
    sections = {"mia_l": _attack_section("mia_l", mia_l), "mia_u": _attack_section("mia_u", mia_u)}
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": REPORT_KIND,
        "request": request_section,
        "lineage": _lineage_section(lineage),
        "certificate": certificate_section,
        "utility": _utility_section(utility),
        **sections,
        "empirical_privacy": _empirical_section(empirical, sections, certificate_section),
        "policy": policy.as_dict(),
    }
    body, sanitised = sanitise(body)
    for (section, index), comparison in compare_with_reference(body, policy).items():
        body[section]["attacks"][index]["comparison"] = comparison
    body, more = sanitise(body)
    body["verdict"] = verdict(body, policy).as_dict()
    body["limitations"] = [*LIMITATIONS, *_dynamic_limitations(body)]
    body["glossary"] = dict(GLOSSARY)
    body["sanitised"] = sanitised + more
    body["report_digest"] = report_digest(body)
    problem = first_error(body, load_schema(SCHEMA_VERSION))
    if problem is not None:  # a bug in this module, not in the caller's input
        raise ReportValidationError(f"built report does not match its schema: {problem}")
    return body


def example_report(*, leak: float = 0.0, seed: int = 0, policy: Policy | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A complete synthetic report (for documentation, tests and trying the renderers).

    MIA-L scores are drawn from normal distributions: non-members N(0, 1), forget-set members of the
    retrained reference N(0.05, 1) and of the released model N(0.05 + ``leak``, 1). With ``leak = 0``
    the report passes; a large ``leak`` makes the attack beat the reference (FAIL). Nothing is
    trained: the model digests, accuracies and the σ sweep's accuracies are made up, the ε of the
    sweep is the exact Gaussian ε of each σ.

    Args:
        leak: Extra mean score of the released model's forget set.
        seed: Seed of the synthetic scores and bootstrap.
        policy: Policy to judge with (None: defaults).

    Example:
        >>> example_report()["verdict"]["status"], example_report(leak=1.5)["verdict"]["status"]
        ('PASS', 'FAIL')
    """
    from certunlearn.audit.epsilon import epsilon_lower_bound
    from certunlearn.audit.metrics import attack_metrics
    from certunlearn.certify.gaussian import gaussian_epsilon

    rng = np.random.default_rng(seed)
    n = 400
    held_out = rng.normal(0.0, 1.0, n)
    members_released = rng.normal(0.05 + leak, 1.0, n)
    members_retrained = rng.normal(0.05, 1.0, n)

    def attack(scores_in: np.ndarray, scores_out: np.ndarray) -> dict[str, Any]:
        return {
            "metrics": attack_metrics(scores_in, scores_out, n_bootstrap=200, rng=rng).as_dict(include_roc=True),
            "epsilon": epsilon_lower_bound(scores_in, scores_out, delta=1e-5, alpha=0.05).as_dict(),
            "scores_in": scores_in, "scores_out": scores_out,
            "description": "LOSS attack (Yeom et al. 2018): score = -loss",
        }

    released = attack(members_released, held_out)
    sensitivity, delta = 0.0094, 1e-5
    sigmas = [0.005, 0.01, 0.02, 0.035, 0.05, 0.1]
    curve = [{"sigma": s, "epsilon": gaussian_epsilon(sigma=s, delta=delta, sensitivity=sensitivity),
              "test_accuracy": round(0.955 - 0.4 * s, 4)} for s in sigmas]
    return build_report(
        request={"request_id": "demo-request-001", "ids": list(range(0, 140, 10)),
                 "subject_id": "subject-7f3a", "ground": "GDPR Art. 17(1)(b): consent withdrawn",
                 "scope": "synthetic example: softmax regression on digits",
                 "received_at": "2025-01-06T09:00:00+00:00", "executed_at": "2025-01-06T09:05:00+00:00",
                 "reported_at": "2025-01-06T09:10:00+00:00"},
        lineage={"original_params": np.linspace(0.0, 1.0, 650), "released_params": np.linspace(0.0, 1.01, 650),
                 "data_manifest": "0" * 64, "config": {"epochs": 2, "batch_size": 512, "lr": 0.5},
                 "seeds": {"split": seed, "noise": seed}, "device": "cpu", "model": "logreg",
                 "dataset": "digits (synthetic example)", "retrain_reference": True,
                 "versions": {"torch": "2.x", "opacus": "1.x"}},
        certificate={"method": "hfocu", "status": "certified", "certified": True, "sensitivity": sensitivity,
                     "epsilon": 1.0, "delta": delta, "sigma": 0.035, "calibration": "analytic",
                     "noise_only_sigma": 0.38, "cumulative_deletions": 14, "request_ids": list(range(14)),
                     "assumptions": ["loss convex and beta-smooth (softmax regression, rows clipped to norm 1)",
                                     "step size <= 2/beta", "no gradient clipping"],
                     "noise_seed": seed},
        utility={"released": {"retain": 0.968, "test": 0.941, "forget": 0.93},
                 "retrained": {"retain": 0.969, "test": 0.943, "forget": 0.93},
                 "original": {"retain": 0.969, "test": 0.943, "forget": 1.0},
                 "privacy_utility_curve": curve},
        mia_l={"attacks": {"loss": released}, "retrained": {"attacks": {"loss": attack(members_retrained, held_out)}},
               "n_shadows": 0, "alpha": 0.05, "delta": delta,
               "epsilon_lower_bound": released["epsilon"]["epsilon"], "epsilon_correction": "one attack"},
        policy=policy,
    )
