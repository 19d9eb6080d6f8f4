"""Audit plans: declarative TOML files under ``audits/`` that ``certunlearn audit PLAN.toml`` runs.

Every plan has ``schema_version = 1``, a ``name``, the ``claim`` it tests and a ``kind``:

* ``hfocu`` — train softmax regression with HF-OCU on an embedded dataset, forget a request, certify,
  audit the release (MIA-L, MIA-U) against the coupled retrain and write the compliance report
  (``certunlearn demo`` runs ``audits/digits_logreg_hfocu.toml``'s settings);
* ``deployed`` — audit a model a user already deployed: an architecture, its ``state_dict`` and
  member / non-member (and optionally forget) data files, with optional before/after weights of an
  unlearning for MIA-U, against the ε the provider claims;
* ``benchmark`` — a reproduction run by a script of the repository's ``benchmarks/`` (``runner``),
  e.g. the published HF-OCU wine row.

``hfocu`` and ``deployed`` plans are validated strictly: an unknown key is refused with its name.
A ``benchmark`` plan's sections go unchecked to its runner script, which validates them. Paths
inside a plan are relative to the plan file.

Example:
    >>> plan = parse_plan({"schema_version": 1, "name": "p", "claim": "c", "kind": "hfocu",
    ...                    "training": {"epochs": 1}}, base=".")
    >>> plan.kind, plan.training["epochs"], plan.request["epsilon"]
    ('hfocu', 1, 1.0)
    >>> parse_plan({"schema_version": 1, "name": "p", "claim": "c", "kind": "hfocu", "trainig": {}}, base=".")
    Traceback (most recent call last):
    ...
    certunlearn.errors.InputError: plan: unknown key 'trainig' (allowed: audit, claim, data, kind, name, policy, request, schema_version, training)
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certunlearn.errors import InputError

__all__ = ["PLAN_ATTACKS", "PLAN_KINDS", "AuditPlan", "load_plan", "parse_plan"]

PLAN_SCHEMA_VERSION = 1

PLAN_ATTACKS = ("loss", "lira-online", "lira-offline")
"""MIA-L attacks of an ``hfocu`` or ``deployed`` plan without ``[audit] attacks``: LOSS and LiRA, no RMIA
(``certunlearn audit mia-l`` and ``MIALJob`` add RMIA: :data:`certunlearn.audit.attacks.DEFAULT_ATTACKS`)."""

_HFOCU_SECTIONS: dict[str, dict[str, Any]] = {
    "data": {"dataset": "digits", "clip_norm": 1.0, "seed": 0},
    "training": {"epochs": 20, "batch_size": 64, "lr": 1.0, "lr_decay": 0.999, "weight_decay": 1e-3, "seed": 0,
                 "track_fraction": 1.0},
    "request": {"forget_fraction": 0.01, "request_id": "request-1", "epsilon": 1.0, "delta": 1e-5,
                "certificate": "refine", "sensitivity_budget": None},
    "audit": {"attacks": list(PLAN_ATTACKS), "shadows": 8, "mia_u": True,
              "sweep_epsilons": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0], "alpha": 0.05},
}
_DEPLOYED_SECTIONS: dict[str, dict[str, Any]] = {
    "model": {"name": None, "weights": None, "args": {}},
    "data": {"members": None, "non_members": None, "forget": None, "shadow_data": None},
    "claimed": {"method": "unknown", "epsilon": None, "delta": None, "certified": False},
    "unlearning": {"original": None, "unlearned": None},
    "audit": {"attacks": list(PLAN_ATTACKS), "shadows": 16, "shadow_epochs": 20,
              "shadow_batch_size": 64, "shadow_lr": 0.1, "shadow_weight_decay": 0.0, "alpha": 0.05,
              "delta": 1e-5, "seed": 0},
}
_PATH_KEYS = {("model", "weights"), ("data", "members"), ("data", "non_members"), ("data", "forget"),
              ("data", "shadow_data"), ("unlearning", "original"), ("unlearning", "unlearned")}
_REQUIRED = {("model", "name"), ("model", "weights"), ("data", "members"), ("data", "non_members")}

PLAN_KINDS: dict[str, dict[str, dict[str, Any]]] = {
    "hfocu": _HFOCU_SECTIONS,
    "deployed": _DEPLOYED_SECTIONS,
    "benchmark": {},
}
"""Registry of plan kinds: name -> {section: {key: default}} (``None`` = no default)."""


@dataclass(frozen=True, slots=True)
class AuditPlan:
    """A validated plan: its identity, kind, the sections with defaults filled in, and the policy."""

    name: str
    claim: str
    kind: str
    sections: dict[str, dict[str, Any]]
    policy: dict[str, Any] = field(default_factory=dict)
    runner: str | None = None
    base: str = "."
    raw: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __getattr__(self, name: str) -> Any:  # plan.training, plan.request ... for the kind's sections
        try:
            return object.__getattribute__(self, "sections")[name]
        except KeyError:
            raise AttributeError(name) from None


def _unknown(where: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    for key in given:
        if key not in allowed:
            raise InputError(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")


def parse_plan(data: Mapping[str, Any], *, base: str | Path) -> AuditPlan:
    """Validate a plan mapping (as read from TOML) and fill in the kind's defaults.

    Args:
        data: The TOML document.
        base: Directory that relative paths in the plan are resolved against.

    Returns:
        The :class:`AuditPlan`.

    Raises:
        InputError: Unknown key (named), missing required key, wrong schema version or kind.
    """
    if not isinstance(data, Mapping):
        raise InputError("plan: a TOML document (table) is required")
    version = data.get("schema_version")
    if version != PLAN_SCHEMA_VERSION:
        raise InputError(f"plan: schema_version must be {PLAN_SCHEMA_VERSION}, got {version!r}")
    kind = data.get("kind")
    if kind not in PLAN_KINDS:
        raise InputError(f"plan: kind must be one of {sorted(PLAN_KINDS)}, got {kind!r}")
    for key in ("name", "claim"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise InputError(f"plan: {key!r} must be a non-empty string")
    base = Path(base)
    if kind == "benchmark":
        runner = data.get("runner")
        if not isinstance(runner, str):
            raise InputError("plan: a benchmark plan needs runner = 'benchmarks/<script>.py'")
        return AuditPlan(str(data["name"]), str(data["claim"]), kind, {}, {}, runner, str(base), dict(data))
    layout = PLAN_KINDS[kind]
    _unknown("plan", data, {"schema_version", "name", "claim", "kind", "policy", *layout})
    sections: dict[str, dict[str, Any]] = {}
    for section, defaults in layout.items():
        given = data.get(section, {})
        if not isinstance(given, Mapping):
            raise InputError(f"plan: [{section}] must be a table")
        _unknown(f"plan [{section}]", given, set(defaults))
        merged = {**defaults, **given}
        for key, value in merged.items():
            if value is None and (section, key) in _REQUIRED:
                raise InputError(f"plan [{section}]: {key!r} is required")
            if (section, key) in _PATH_KEYS and value is not None:
                if not isinstance(value, str):
                    raise InputError(f"plan [{section}]: {key!r} must be a path string")
                merged[key] = str((base / value).resolve()) if not Path(value).is_absolute() else value
        sections[section] = merged
    policy = data.get("policy", {})
    if not isinstance(policy, Mapping):
        raise InputError("plan: [policy] must be a table")
    return AuditPlan(str(data["name"]), str(data["claim"]), kind, sections, dict(policy), None, str(base),
                     dict(data))


def load_plan(path: str | Path) -> AuditPlan:
    """Read and validate a plan file (``tomllib``; paths inside are relative to the file)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not a readable TOML plan ({exc})") from exc
    plan = parse_plan(data, base=path.parent)
    return AuditPlan(plan.name, plan.claim, plan.kind, plan.sections, plan.policy, plan.runner, plan.base,
                     plan.raw, str(path))
