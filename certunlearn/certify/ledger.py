"""The deletion ledger: every certified release recorded, the policy enforced, the budget left.

A :class:`Ledger` holds a :class:`LedgerPolicy` (per-release ε and δ, and limits on cumulative
deletions, on the sensitivity Δ and on the number of releases before a retrain is required) and an
append-only list of :class:`LedgerEvent` records. ``check`` refuses a request that would break the
policy *before* anything is released; ``record`` appends the event; ``remaining`` says what is left.
Deleted ids are kept only as a SHA-256 digest. Pure Python: no torch.

Example:
    >>> ledger = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5, max_deletions=10))
    >>> ledger.check(count=4, sensitivity=0.2)
    >>> _ = ledger.record(LedgerEvent.create(request_id="r1", ids=[3, 5, 8, 13], cumulative_count=4,
    ...     method="hfocu", sensitivity=0.2, sigma=0.75, epsilon=1.0, delta=1e-5, certified=True))
    >>> ledger.remaining()["deletions"]
    6
    >>> ledger.check(count=7, sensitivity=0.3)
    Traceback (most recent call last):
    ...
    certunlearn.errors.PolicyError: request refused: 11 cumulative deletions would exceed max_deletions=10; retrain the model
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from certunlearn.digest import ids_digest
from certunlearn.errors import ConfigError, InputError, PolicyError
from certunlearn.validation import check_int, check_open_unit, check_positive

__all__ = ["LEDGER_SCHEMA_VERSION", "Ledger", "LedgerEvent", "LedgerPolicy"]

LEDGER_SCHEMA_VERSION = 1
_NOISE_SOURCES = ("secure", "seeded", "none")  # certunlearn.unlearn.noise.NOISE_SOURCES (torch-free here)


@dataclass(frozen=True, slots=True)
class LedgerPolicy:
    """What a deployment allows.

    Attributes:
        epsilon: ε of every release (> 0).
        delta: δ of every release, in (0, 1).
        max_deletions: Cumulative deletions after which the model must be retrained (None: no cap).
        max_sensitivity: Largest Δ a release may be calibrated to (None: no cap).
        max_releases: Number of releases allowed (None: no cap). Releases compose: publishing k
            releases of one model is at most (kε, kδ) by basic composition.
        require_certified: Refuse to record uncertified releases.
    """

    epsilon: float
    delta: float
    max_deletions: int | None = None
    max_sensitivity: float | None = None
    max_releases: int | None = None
    require_certified: bool = True

    def __post_init__(self) -> None:
        check_positive("epsilon", self.epsilon)
        check_open_unit("delta", self.delta)
        if self.max_deletions is not None:
            check_int("max_deletions", self.max_deletions, minimum=1)
        if self.max_sensitivity is not None:
            check_positive("max_sensitivity", self.max_sensitivity)
        if self.max_releases is not None:
            check_int("max_releases", self.max_releases, minimum=1)


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One release: who asked, what was deleted (as a digest), how it was certified.

    ``noise_source`` is ``secure`` (OS CSPRNG), ``seeded`` (reproducible noise: not private) or
    ``none`` (σ = 0).
    """

    request_id: str
    ids_digest: str
    count: int
    cumulative_count: int
    method: str
    sensitivity: float | None
    sigma: float
    epsilon: float | None
    delta: float | None
    certified: bool
    model_before: str = ""
    model_after: str = ""
    timestamp: str = ""
    noise_source: str = "secure"

    def __post_init__(self) -> None:
        if not self.request_id:
            raise ConfigError("request_id must be a non-empty string")
        if self.noise_source not in _NOISE_SOURCES:
            raise ConfigError(f"noise_source must be one of {list(_NOISE_SOURCES)}, got {self.noise_source!r}")
        check_int("count", self.count, minimum=1)
        check_int("cumulative_count", self.cumulative_count, minimum=self.count)
        if self.sigma < 0:
            raise ConfigError(f"sigma must be >= 0, got {self.sigma!r}")

    @classmethod
    def create(cls, *, request_id: str, ids: Iterable[int], **fields: Any) -> LedgerEvent:
        """Build an event from raw ids (digested here) with the current UTC time."""
        ids = list(ids)
        fields.setdefault("timestamp", datetime.now(UTC).isoformat(timespec="seconds"))
        return cls(request_id=request_id, ids_digest=ids_digest(ids), count=len(ids), **fields)


class Ledger:
    """Append-only record of releases under a policy."""

    def __init__(self, policy: LedgerPolicy) -> None:
        if not isinstance(policy, LedgerPolicy):
            raise ConfigError(f"policy must be a LedgerPolicy, got {type(policy).__name__}")
        self.policy = policy
        self._events: list[LedgerEvent] = []

    @property
    def events(self) -> tuple[LedgerEvent, ...]:
        """Recorded events, oldest first."""
        return tuple(self._events)

    @property
    def cumulative_deletions(self) -> int:
        """Deletions recorded so far."""
        return self._events[-1].cumulative_count if self._events else 0

    def check(
        self,
        *,
        count: int,
        sensitivity: float | None,
        certified: bool = True,
        epsilon: float | None = None,
        delta: float | None = None,
    ) -> None:
        """Raise :class:`PolicyError` if releasing ``count`` more deletions would break the policy."""
        p = self.policy
        total = self.cumulative_deletions + count
        problems = []
        if p.max_deletions is not None and total > p.max_deletions:
            problems.append(f"{total} cumulative deletions would exceed max_deletions={p.max_deletions}")
        if p.max_releases is not None and len(self._events) + 1 > p.max_releases:
            problems.append(f"release {len(self._events) + 1} would exceed max_releases={p.max_releases}")
        if p.max_sensitivity is not None and sensitivity is not None and sensitivity > p.max_sensitivity:
            problems.append(f"sensitivity {sensitivity:.6g} would exceed max_sensitivity={p.max_sensitivity:g}")
        if p.require_certified and not certified:
            problems.append("the release is not certified and the policy requires certified releases")
        if epsilon is not None and epsilon > p.epsilon:
            problems.append(f"epsilon {epsilon:g} is above the policy's {p.epsilon:g}")
        if delta is not None and delta > p.delta:
            problems.append(f"delta {delta:g} is above the policy's {p.delta:g}")
        if problems:
            raise PolicyError("request refused: " + "; ".join(problems) + "; retrain the model")

    def record(self, event: LedgerEvent) -> LedgerEvent:
        """Append ``event`` after checking it against the policy and the previous events."""
        if event.cumulative_count != self.cumulative_deletions + event.count:
            raise ConfigError(
                f"event cumulative_count {event.cumulative_count} does not follow the ledger "
                f"({self.cumulative_deletions} + {event.count})"
            )
        if any(e.request_id == event.request_id for e in self._events):
            raise ConfigError(f"request_id {event.request_id!r} is already recorded")
        self.check(
            count=event.count, sensitivity=event.sensitivity, certified=event.certified,
            epsilon=event.epsilon, delta=event.delta,
        )
        self._events.append(event)
        return event

    def remaining(self) -> dict[str, Any]:
        """What the policy still allows: deletions, releases, and the composed (ε, δ) spent so far."""
        p = self.policy
        spent = [e for e in self._events if e.sigma > 0]
        return {
            "deletions": None if p.max_deletions is None else p.max_deletions - self.cumulative_deletions,
            "releases": None if p.max_releases is None else p.max_releases - len(self._events),
            "releases_so_far": len(self._events),
            "composed_epsilon_if_all_published": sum(e.epsilon or 0.0 for e in spent),
            "composed_delta_if_all_published": sum(e.delta or 0.0 for e in spent),
        }

    def state_dict(self) -> dict[str, Any]:
        """Versioned, JSON-serialisable state (policy and events); inverse: :meth:`load_state_dict`."""
        return {
            "schema_version": LEDGER_SCHEMA_VERSION,
            "mechanism": "ledger",
            "policy": asdict(self.policy),
            "events": [asdict(e) for e in self._events],
        }

    def load_state_dict(self, state: dict[str, Any]) -> Ledger:
        """Replace this ledger's policy and events by those of ``state`` (from :meth:`state_dict`).

        The whole state is validated first (keys, types, every event re-checked in order against the
        policy and the events before it); on any error this ledger is left unchanged.

        Raises:
            InputError: Not a ledger state, another schema version, unknown or missing keys, or an
                event that is malformed or does not follow the ones before it.

        Example:
            >>> led = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5))
            >>> _ = led.record(LedgerEvent.create(request_id="r1", ids=[4], cumulative_count=1, method="hfocu",
            ...     sensitivity=0.1, sigma=0.5, epsilon=1.0, delta=1e-5, certified=True))
            >>> other = Ledger(LedgerPolicy(epsilon=2.0, delta=1e-6)).load_state_dict(led.state_dict())
            >>> other.policy.epsilon, [e.request_id for e in other.events]
            (1.0, ['r1'])
        """
        parsed = _parse_state(state)
        self.policy, self._events = parsed.policy, list(parsed.events)
        return self

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Ledger:
        """A new ledger from :meth:`state_dict`'s output, validated as :meth:`load_state_dict` does.

        Example:
            >>> import json
            >>> led = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5))
            >>> Ledger.from_state_dict(json.loads(json.dumps(led.state_dict()))).policy.epsilon
            1.0
        """
        return _parse_state(state)


_STATE_KEYS = frozenset({"schema_version", "mechanism", "policy", "events"})


def _parse_state(state: object) -> Ledger:
    """Validate a ledger state and build the ledger it describes (InputError naming what is wrong)."""
    if not isinstance(state, dict) or state.get("mechanism") != "ledger":
        raise InputError("not a ledger state (a dict with mechanism 'ledger' is expected)")
    if state.get("schema_version") != LEDGER_SCHEMA_VERSION:
        raise InputError(f"unsupported ledger schema_version {state.get('schema_version')!r} "
                         f"(this version reads {LEDGER_SCHEMA_VERSION})")
    unknown, missing = sorted(set(state) - _STATE_KEYS), sorted(_STATE_KEYS - set(state))
    if unknown or missing:
        raise InputError(f"malformed ledger state: unknown keys {unknown}, missing keys {missing}")
    policy, events = state["policy"], state["events"]
    if not isinstance(policy, dict) or not isinstance(events, list):
        raise InputError("malformed ledger state: 'policy' must be a dict and 'events' a list")
    try:
        ledger = Ledger(LedgerPolicy(**policy))
    except (TypeError, ConfigError) as exc:
        raise InputError(f"malformed ledger policy: {exc}") from exc
    for k, raw in enumerate(events):
        if not isinstance(raw, dict):
            raise InputError(f"malformed ledger event {k}: a dict is expected, got {type(raw).__name__}")
        try:
            ledger.record(LedgerEvent(**raw))
        except (TypeError, ConfigError, PolicyError) as exc:
            raise InputError(f"ledger event {k} ({raw.get('request_id')!r}) is invalid: {exc}") from exc
    return ledger
