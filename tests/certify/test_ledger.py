"""Ledger: policy refusal changes nothing, state round trip, digests instead of raw ids."""

from __future__ import annotations

import io
import json

import pytest
import torch

from certunlearn.certify.ledger import Ledger, LedgerEvent, LedgerPolicy
from certunlearn.digest import ids_digest
from certunlearn.errors import ConfigError, InputError, PolicyError


def _event(request_id: str, ids: list[int], cumulative: int, **kw) -> LedgerEvent:
    fields = dict(method="hfocu", sensitivity=0.1, sigma=0.4, epsilon=1.0, delta=1e-5, certified=True)
    fields.update(kw)
    return LedgerEvent.create(request_id=request_id, ids=ids, cumulative_count=cumulative, **fields)


def test_digest_is_order_free_and_hides_ids() -> None:
    assert ids_digest([5, 1, 9]) == ids_digest([9, 5, 1])
    assert ids_digest([5, 1, 9]) != ids_digest([5, 1, 8])
    event = _event("r", [123456], 1)
    assert "123456" not in json.dumps(event.ids_digest)


def test_remaining_counts_down_and_refuses_over_cap() -> None:
    ledger = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5, max_deletions=5, max_releases=2))
    ledger.record(_event("a", [1, 2], 2))
    assert ledger.remaining()["deletions"] == 3
    assert ledger.remaining()["releases"] == 1
    with pytest.raises(PolicyError, match="max_deletions=5"):
        ledger.record(_event("b", [3, 4, 5, 6], 6))
    assert len(ledger.events) == 1  # refusal changed nothing
    ledger.record(_event("b", [3], 3))
    with pytest.raises(PolicyError, match="max_releases=2"):
        ledger.check(count=1, sensitivity=0.1)


@pytest.mark.parametrize(
    ("policy_kw", "event_kw", "match"),
    [
        (dict(max_sensitivity=0.05), {}, "max_sensitivity"),
        ({}, dict(certified=False), "not certified"),
        ({}, dict(epsilon=2.0), "epsilon 2"),
        ({}, dict(delta=1e-3), "delta 0.001"),
    ],
)
def test_policy_limits(policy_kw: dict, event_kw: dict, match: str) -> None:
    ledger = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5, **policy_kw))
    with pytest.raises(PolicyError, match=match):
        ledger.record(_event("a", [1], 1, **event_kw))
    assert ledger.events == ()


def test_inconsistent_events_are_refused() -> None:
    ledger = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5))
    with pytest.raises(ConfigError, match="does not follow"):
        ledger.record(_event("a", [1, 2], 5))
    ledger.record(_event("a", [1, 2], 2))
    with pytest.raises(ConfigError, match="already recorded"):
        ledger.record(_event("a", [3], 3))


def test_state_dict_round_trip_through_json() -> None:
    ledger = Ledger(LedgerPolicy(epsilon=0.5, delta=1e-6, max_deletions=10))
    ledger.record(_event("a", [1, 2], 2, epsilon=0.5, delta=1e-6))
    ledger.record(_event("b", [7], 3, epsilon=0.5, delta=1e-6))
    again = Ledger.from_state_dict(json.loads(json.dumps(ledger.state_dict())))
    assert again.events == ledger.events
    assert again.policy == ledger.policy
    assert again.remaining() == ledger.remaining()


def test_load_state_dict_replaces_in_place_and_survives_weights_only_torch_load() -> None:
    ledger = Ledger(LedgerPolicy(epsilon=0.5, delta=1e-6, max_deletions=10))
    ledger.record(_event("a", [1, 2], 2, epsilon=0.5, delta=1e-6))
    buffer = io.BytesIO()
    torch.save(ledger.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    target = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5))
    target.record(_event("other", [9], 1))
    assert target.load_state_dict(state) is target
    assert target.events == ledger.events and target.policy == ledger.policy
    target.record(_event("b", [7], 3, epsilon=0.5, delta=1e-6))  # continues after the restored events
    assert target.cumulative_deletions == 3 and len(ledger.events) == 1


def _valid_state() -> dict:
    ledger = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5, max_deletions=3))
    ledger.record(_event("a", [1, 2], 2))
    return ledger.state_dict()


def _with_event(**fields) -> dict:
    state = _valid_state()
    state["events"] = [{**state["events"][0], **fields}]
    return state


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({"mechanism": "other", "schema_version": 1}, "not a ledger state"),
        ({"mechanism": "ledger", "schema_version": 99}, "schema_version 99"),
        ({"mechanism": "ledger", "schema_version": 1, "policy": {"epsilon": 1.0}, "events": []}, "policy"),
        ({**_valid_state(), "extra": 1}, r"unknown keys \['extra'\]"),
        ({k: v for k, v in _valid_state().items() if k != "events"}, r"missing keys \['events'\]"),
        ({**_valid_state(), "events": {}}, "'events' a list"),
        ({**_valid_state(), "events": ["not an event"]}, "event 0"),
        (_with_event(surprise=True), "event 0"),
        (_with_event(count=5, cumulative_count=5), "event 0 .*max_deletions=3"),
        (_with_event(cumulative_count=7), "event 0 .*does not follow"),
        (_with_event(noise_source="dice"), "event 0 .*noise_source"),
    ],
)
def test_bad_state_is_rejected_with_an_input_error_and_changes_nothing(state: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        Ledger.from_state_dict(state)
    target = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5))
    target.record(_event("kept", [4], 1))
    before = (target.policy, target.events)
    with pytest.raises(InputError):
        target.load_state_dict(state)
    assert (target.policy, target.events) == before


@pytest.mark.parametrize(
    "kw", [dict(epsilon=0.0, delta=1e-5), dict(epsilon=1.0, delta=1.0), dict(epsilon=1.0, delta=1e-5, max_deletions=0)]
)
def test_policy_validation(kw: dict) -> None:
    with pytest.raises(ConfigError):
        LedgerPolicy(**kw)


def test_hfocu_uses_the_ledger_and_refusal_changes_nothing() -> None:
    from certunlearn.models import LogisticRegression
    from certunlearn.train import SGDConfig
    from certunlearn.unlearn import HFOCU

    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, dtype=torch.float64, generator=g)
    X = X / X.norm(dim=1, keepdim=True).clamp(min=1)
    y = (X[:, 0] > 0).long()
    ledger = Ledger(LedgerPolicy(epsilon=1.0, delta=1e-5, max_deletions=3))
    hf = HFOCU(
        LogisticRegression(3, 2), SGDConfig(epochs=2, batch_size=8, lr=0.5, weight_decay=0.05),
        feature_norm_bound=1.0, ledger=ledger,
    ).fit(X, y)
    res = hf.forget([1, 2], epsilon=1.0, delta=1e-5, request_id="subject-17")
    assert ledger.events[0].request_id == "subject-17"
    assert ledger.events[0].sensitivity == res.sensitivity
    assert ledger.events[0].sigma == res.sigma
    with pytest.raises(PolicyError):
        hf.forget([3, 4], epsilon=1.0, delta=1e-5)
    assert hf.deleted_ids == (1, 2)
    assert len(ledger.events) == 1
    hf.forget([3], epsilon=1.0, delta=1e-5)
    assert ledger.remaining()["deletions"] == 0
