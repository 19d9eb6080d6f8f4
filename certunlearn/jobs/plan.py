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
    >>> plan.kind, plan.training.epochs, plan.request.epsilon
    ('hfocu', 1, 1.0)
    >>> parse_plan({"schema_version": 1, "name": "p", "claim": "c", "kind": "hfocu", "trainig": {}}, base=".")
    Traceback (most recent call last):
    ...
    certunlearn.errors.InputError: plan: unknown key 'trainig' (allowed: audit, claim, data, kind, name, policy, request, schema_version, training)
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from certunlearn.errors import InputError

__all__ = ["PLAN_ATTACKS", "PLAN_KINDS", "AuditPlan", "load_plan", "parse_plan"]

PLAN_SCHEMA_VERSION = 1

PLAN_ATTACKS = ("loss", "lira-online", "lira-offline")
"""MIA-L attacks of an ``hfocu`` or ``deployed`` plan without ``[audit] attacks``: LOSS and LiRA, no RMIA
(``certunlearn audit mia-l`` and ``MIALJob`` add RMIA: :data:`certunlearn.audit.attacks.DEFAULT_ATTACKS`)."""

# --- typed sections: each default is defined here, once -------------------------------------------


def _number(section: str, key: str, value: object, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise InputError(f"plan [{section}]: {key!r} must be {'an integer' if integer else 'a number'}, got {value!r}")
    return value


def _string(section: str, key: str, value: object, *, optional: bool = False) -> None:
    if (value is None and optional) or (isinstance(value, str) and value):
        return
    raise InputError(f"plan [{section}]: {key!r} must be a non-empty string, got {value!r}")


def _check_numbers(section: str, obj: object, integers: tuple[str, ...], numbers: tuple[str, ...]) -> None:
    for key in integers:
        _number(section, key, getattr(obj, key), integer=True)
    for key in numbers:
        value = getattr(obj, key)
        if value is not None:
            _number(section, key, value)


def _names(section: str, key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InputError(f"plan [{section}]: {key!r} must be a list of names, got {value!r}")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class HFOCUData:
    """``[data]`` of an ``hfocu`` plan: an embedded dataset, rows clipped to a public norm."""

    dataset: str = "digits"
    clip_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _string("data", "dataset", self.dataset)
        _check_numbers("data", self, ("seed",), ("clip_norm",))


@dataclass(frozen=True, slots=True)
class HFOCUTraining:
    """``[training]`` of an ``hfocu`` plan: SGD with HF-OCU statistics for a share of the ids."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1.0
    lr_decay: float = 0.999
    weight_decay: float = 1e-3
    seed: int = 0
    track_fraction: float = 1.0

    def __post_init__(self) -> None:
        _check_numbers("training", self, ("epochs", "batch_size", "seed"),
                       ("lr", "lr_decay", "weight_decay", "track_fraction"))


@dataclass(frozen=True, slots=True)
class HFOCURequest:
    """``[request]`` of an ``hfocu`` plan: a seeded share of the training ids asks to be forgotten."""

    forget_fraction: float = 0.01
    request_id: str = "request-1"
    epsilon: float = 1.0
    delta: float = 1e-5
    certificate: str = "refine"
    sensitivity_budget: float | None = None

    def __post_init__(self) -> None:
        _check_numbers("request", self, (), ("forget_fraction", "epsilon", "delta", "sensitivity_budget"))
        _string("request", "request_id", self.request_id)
        _string("request", "certificate", self.certificate)


@dataclass(frozen=True, slots=True)
class HFOCUAudit:
    """``[audit]`` of an ``hfocu`` plan: MIA-L attacks, shadows, MIA-U, the ε sweep of the utility curve."""

    attacks: tuple[str, ...] = PLAN_ATTACKS
    shadows: int = 8
    mia_u: bool = True
    sweep_epsilons: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    alpha: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "attacks", _names("audit", "attacks", self.attacks))
        _check_numbers("audit", self, ("shadows",), ("alpha",))
        if not isinstance(self.mia_u, bool):
            raise InputError(f"plan [audit]: 'mia_u' must be true or false, got {self.mia_u!r}")
        if isinstance(self.sweep_epsilons, str) or not isinstance(self.sweep_epsilons, (list, tuple)):
            raise InputError(f"plan [audit]: 'sweep_epsilons' must be a list of numbers, got {self.sweep_epsilons!r}")
        object.__setattr__(self, "sweep_epsilons",
                           tuple(float(_number("audit", "sweep_epsilons", e)) for e in self.sweep_epsilons))


@dataclass(frozen=True, slots=True)
class DeployedModel:
    """``[model]`` of a ``deployed`` plan: a registered name or ``module:factory``, its weights file."""

    name: str
    weights: str
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _string("model", "name", self.name)
        _string("model", "weights", self.weights)
        if not isinstance(self.args, Mapping):
            raise InputError(f"plan [model]: 'args' must be a table, got {self.args!r}")
        object.__setattr__(self, "args", dict(self.args))


@dataclass(frozen=True, slots=True)
class DeployedData:
    """``[data]`` of a ``deployed`` plan: member / non-member (and optional forget, shadow) files."""

    members: str
    non_members: str
    forget: str | None = None
    shadow_data: str | None = None

    def __post_init__(self) -> None:
        for key in ("members", "non_members", "forget", "shadow_data"):
            _string("data", key, getattr(self, key), optional=key in ("forget", "shadow_data"))


@dataclass(frozen=True, slots=True)
class DeployedClaim:
    """``[claimed]`` of a ``deployed`` plan: what the provider says about the release."""

    method: str = "unknown"
    epsilon: float | None = None
    delta: float | None = None
    certified: bool = False

    def __post_init__(self) -> None:
        _string("claimed", "method", self.method)
        _check_numbers("claimed", self, (), ("epsilon", "delta"))
        if not isinstance(self.certified, bool):
            raise InputError(f"plan [claimed]: 'certified' must be true or false, got {self.certified!r}")


@dataclass(frozen=True, slots=True)
class DeployedUnlearning:
    """``[unlearning]`` of a ``deployed`` plan: optional weights before and after an unlearning (MIA-U)."""

    original: str | None = None
    unlearned: str | None = None

    def __post_init__(self) -> None:
        _string("unlearning", "original", self.original, optional=True)
        _string("unlearning", "unlearned", self.unlearned, optional=True)


@dataclass(frozen=True, slots=True)
class DeployedAudit:
    """``[audit]`` of a ``deployed`` plan: MIA-L attacks and their shadow models."""

    attacks: tuple[str, ...] = PLAN_ATTACKS
    shadows: int = 16
    shadow_epochs: int = 20
    shadow_batch_size: int = 64
    shadow_lr: float = 0.1
    shadow_weight_decay: float = 0.0
    alpha: float = 0.05
    delta: float = 1e-5
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "attacks", _names("audit", "attacks", self.attacks))
        _check_numbers("audit", self, ("shadows", "shadow_epochs", "shadow_batch_size", "seed"),
                       ("shadow_lr", "shadow_weight_decay", "alpha", "delta"))


PLAN_KINDS: dict[str, dict[str, type]] = {
    "hfocu": {"data": HFOCUData, "training": HFOCUTraining, "request": HFOCURequest, "audit": HFOCUAudit},
    "deployed": {"model": DeployedModel, "data": DeployedData, "claimed": DeployedClaim,
                 "unlearning": DeployedUnlearning, "audit": DeployedAudit},
    "benchmark": {},
}
"""Registry of plan kinds: name -> {section: its frozen dataclass (fields, defaults, checks)}."""

_PATH_KEYS = {("model", "weights"), ("data", "members"), ("data", "non_members"), ("data", "forget"),
              ("data", "shadow_data"), ("unlearning", "original"), ("unlearning", "unlearned")}


@dataclass(frozen=True, slots=True)
class AuditPlan:
    """A validated plan: its identity, kind, the sections with defaults filled in, and the policy."""

    name: str
    claim: str
    kind: str
    sections: dict[str, Any]
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


def _section(section: str, cls: type, given: object, base: Path) -> Any:
    """One section's dataclass from its TOML table: unknown and missing keys named, paths resolved."""
    if not isinstance(given, Mapping):
        raise InputError(f"plan: [{section}] must be a table")
    known = {f.name: f for f in fields(cls)}
    _unknown(f"plan [{section}]", given, set(known))
    missing = [k for k, f in known.items() if k not in given and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise InputError(f"plan [{section}]: {missing[0]!r} is required")
    values = dict(given)
    for key, value in values.items():
        if (section, key) in _PATH_KEYS and value is not None:
            if not isinstance(value, str):
                raise InputError(f"plan [{section}]: {key!r} must be a path string")
            values[key] = str((base / value).resolve()) if not Path(value).is_absolute() else value
    return cls(**values)


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
    sections = {section: _section(section, cls, data.get(section, {}), base) for section, cls in layout.items()}
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
