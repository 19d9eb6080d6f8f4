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

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from certunlearn.errors import ConfigError, InputError, PolicyError
from certunlearn.validation import check_int, check_open_unit, check_positive

__all__ = ["LEDGER_SCHEMA_VERSION", "Ledger", "LedgerEvent", "LedgerPolicy", "ids_digest"]

LEDGER_SCHEMA_VERSION = 1


def ids_digest(ids: Iterable[int]) -> str:
    """SHA-256 of the sorted ids (canonical text), so a ledger never stores raw ids.

    Example:
        >>> ids_digest([2, 1]) == ids_digest([1, 2])
        True
    """
    canonical = ",".join(str(int(i)) for i in sorted(int(i) for i in ids))
    return hashlib.sha256(canonical.encode()).hexdigest()


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
    """One release: who asked, what was deleted (as a digest), how it was certified."""

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

    def __post_init__(self) -> None:
        if not self.request_id:
            raise ConfigError("request_id must be a non-empty string")
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
        """Versioned, JSON-serialisable state."""
        return {
            "schema_version": LEDGER_SCHEMA_VERSION,
            "mechanism": "ledger",
            "policy": asdict(self.policy),
            "events": [asdict(e) for e in self._events],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Ledger:
        """Inverse of :meth:`state_dict`; re-validates every event in order.

        Example:
            >>> import json
            >>> led = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5))
            >>> Ledger.from_state_dict(json.loads(json.dumps(led.state_dict()))).policy.epsilon
            1.0
        """
        if not isinstance(state, dict) or state.get("mechanism") != "ledger":
            raise InputError("not a ledger state")
        if state.get("schema_version") != LEDGER_SCHEMA_VERSION:
            raise InputError(f"unsupported ledger schema_version {state.get('schema_version')!r}")
        try:
            ledger = cls(LedgerPolicy(**state["policy"]))
            for raw in state["events"]:
                ledger.record(LedgerEvent(**raw))
        except (KeyError, TypeError) as exc:
            raise InputError(f"malformed ledger state: {exc!r}") from exc
        return ledger
