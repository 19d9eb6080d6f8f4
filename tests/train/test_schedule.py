"""Tests of certunlearn.train.schedule: building, JSON round trip and validation, deletion counts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certunlearn.errors import InputError, SampleIdError
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule, ScheduleIndex, Step

PROPERTY_SETTINGS = settings(max_examples=50, deadline=None, database=None)


def _config(**overrides: object) -> SGDConfig:
    base: dict[str, object] = {"epochs": 3, "batch_size": 4, "lr": 0.5, "lr_decay": 0.9, "seed": 7}
    return SGDConfig(**{**base, **overrides})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "batch_size"), [(13, 4), (12, 4), (3, 5), (1, 1)])
def test_build_structure(n: int, batch_size: int) -> None:
    cfg = _config(batch_size=batch_size)
    sched = Schedule.build(n_samples=n, config=cfg)
    per_epoch = math.ceil(n / batch_size)
    assert len(sched) == cfg.epochs * per_epoch
    expected_sizes = [min(batch_size, n - k * batch_size) for k in range(per_epoch)] * cfg.epochs
    assert sched.batch_sizes.tolist() == expected_sizes
    for epoch in range(cfg.epochs):
        steps = sched.steps[epoch * per_epoch : (epoch + 1) * per_epoch]
        ids = [i for s in steps for i in s.ids]
        assert sorted(ids) == list(range(n)), "each epoch is a permutation of the ids"
    assert all(type(i) is int for s in sched.steps for i in s.ids)


def test_build_step_sizes_decay_geometrically() -> None:
    cfg = _config(lr=0.5, lr_decay=0.9)
    sched = Schedule.build(n_samples=13, config=cfg)
    expected = np.array([0.5 * 0.9**t for t in range(len(sched))])
    np.testing.assert_allclose(sched.lrs, expected, rtol=1e-15, atol=0.0)
    assert sched.lrs.dtype == np.float64
    flat = Schedule.build(n_samples=13, config=_config(lr_decay=1.0))
    assert set(flat.lrs.tolist()) == {0.5}


def test_build_is_deterministic_and_seed_dependent() -> None:
    a = Schedule.build(n_samples=20, config=_config(seed=3))
    assert a == Schedule.build(n_samples=20, config=_config(seed=3))
    b = Schedule.build(n_samples=20, config=_config(seed=4))
    assert [s.ids for s in a.steps] != [s.ids for s in b.steps]
    # Epochs are reshuffled, not repeated.
    first, second = a.steps[:5], a.steps[5:10]
    assert [s.ids for s in first] != [s.ids for s in second]


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    sched = Schedule.build(n_samples=13, config=_config(lr=0.1, lr_decay=0.97))
    text = sched.to_json()
    again = Schedule.from_json(text)
    assert again == sched
    assert again.lrs.tolist() == sched.lrs.tolist()  # floats survive bit for bit
    assert Schedule.from_json(text.encode()) == sched
    assert Schedule.from_json(sched.to_dict()) == sched
    payload = json.loads(text)
    assert payload["schema_version"] == 1 and payload["n_samples"] == 13
    assert payload["steps"][0] == {"ids": list(sched.steps[0].ids), "lr": 0.1}


def _valid() -> dict[str, object]:
    return {
        "schema_version": 1,
        "n_samples": 5,
        "steps": [{"ids": [0, 1], "lr": 0.5}, {"ids": [4], "lr": 0.25}],
    }


def test_valid_document_parses() -> None:
    sched = Schedule.from_json(json.dumps(_valid()))
    assert sched.n_samples == 5
    assert [s.ids for s in sched.steps] == [(0, 1), (4,)]
    assert sched.lrs.tolist() == [0.5, 0.25]


def _malformed() -> list[tuple[str, object]]:
    def with_steps(*steps: object, **extra: object) -> str:
        return json.dumps({**_valid(), "steps": list(steps), **extra})

    return [
        ("not_json", "{steps: [}"),
        ("truncated", json.dumps(_valid())[:-3]),
        ("array", "[1, 2, 3]"),
        ("string", '"schedule"'),
        ("unknown_key", json.dumps({**_valid(), "momentum": 0.9})),
        ("wrong_version", json.dumps({**_valid(), "schema_version": 2})),
        ("no_steps", json.dumps({"schema_version": 1, "n_samples": 5})),
        ("steps_not_list", json.dumps({**_valid(), "steps": 3})),
        ("step_without_ids", with_steps({"lr": 0.5})),
        ("step_without_lr", with_steps({"ids": [0]})),
        ("repeated_id", with_steps({"ids": [0, 1, 0], "lr": 0.5})),
        ("id_too_large", with_steps({"ids": [0, 5], "lr": 0.5})),
        ("negative_id", with_steps({"ids": [-1, 2], "lr": 0.5})),
        ("empty_step", with_steps({"ids": [], "lr": 0.5})),
        ("zero_lr", with_steps({"ids": [0], "lr": 0.0})),
        ("negative_lr", with_steps({"ids": [0], "lr": -0.1})),
        ("nan_lr", with_steps({"ids": [0], "lr": float("nan")})),
        ("infinite_lr", with_steps({"ids": [0], "lr": float("inf")})),
        ("ids_not_numbers", with_steps({"ids": ["a"], "lr": 0.5})),
        ("zero_samples", json.dumps({**_valid(), "n_samples": 0})),
    ]


@pytest.mark.parametrize(("case", "document"), _malformed(), ids=[c for c, _ in _malformed()])
def test_from_json_rejects_malformed_documents(case: str, document: object) -> None:
    with pytest.raises(InputError):
        Schedule.from_json(document)  # type: ignore[arg-type]


def test_from_json_names_unknown_keys() -> None:
    with pytest.raises(InputError, match="momentum"):
        Schedule.from_json(json.dumps({**_valid(), "momentum": 0.9}))


@pytest.mark.parametrize(
    "document",
    [
        {**_valid(), "steps": [{"ids": [0.5, 1.7], "lr": 0.5}]},  # would truncate to (0, 1)
        {**_valid(), "steps": [{"ids": ["2"], "lr": 0.5}]},  # a string is not an id
        {**_valid(), "n_samples": 5.9},  # would truncate to 5
    ],
    ids=["fractional_ids", "string_ids", "fractional_n_samples"],
)
def test_from_json_rejects_non_integer_ids(document: dict[str, object]) -> None:
    """The schedule defines the coupled retrain behind a certificate: ids are never coerced."""
    with pytest.raises(InputError):
        Schedule.from_json(json.dumps(document))


def test_step_and_schedule_constructors_validate() -> None:
    with pytest.raises(InputError):
        Step((1, 1), 0.5)
    with pytest.raises(InputError):
        Step((), 0.5)
    with pytest.raises(InputError):
        Step((0,), 1)  # type: ignore[arg-type]  # an int lr is refused: JSON writes floats
    with pytest.raises(InputError, match="outside"):
        Schedule(3, (Step((0, 3), 0.5),))


# ---------------------------------------------------------------------------------------------
# Deletion counts
# ---------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=st.data())
def test_deletion_counts_equal_brute_force(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=30), label="n")
    cfg = SGDConfig(
        epochs=data.draw(st.integers(min_value=1, max_value=3), label="epochs"),
        batch_size=data.draw(st.integers(min_value=1, max_value=12), label="batch_size"),
        lr=0.1,
        seed=data.draw(st.integers(min_value=0, max_value=2**31), label="seed"),
    )
    sched = Schedule.build(n_samples=n, config=cfg)
    deleted = data.draw(st.lists(st.integers(min_value=0, max_value=n - 1), max_size=n), label="U")
    counts = sched.deletion_counts(deleted)
    expected = []
    for step in sched.steps:
        count = 0
        for i in step.ids:
            if i in set(deleted):
                count += 1
        expected.append(count)
    assert counts.dtype == np.int64
    assert counts.tolist() == expected
    # The indexed lookup (distinct ids only) agrees with the same brute force.
    distinct = sorted(set(deleted))
    assert ScheduleIndex(sched).deletion_counts(distinct).tolist() == expected
    # Every deleted id sits in exactly one batch per epoch.
    assert int(counts.sum()) == cfg.epochs * len(set(deleted))


def test_deletion_counts_of_nothing_and_of_everything() -> None:
    sched = Schedule.build(n_samples=13, config=_config())
    assert sched.deletion_counts([]).tolist() == [0] * len(sched)
    assert sched.deletion_counts(range(13)).tolist() == sched.batch_sizes.tolist()


@pytest.mark.parametrize("bad", [[13], [-1], [0, 99]])
def test_deletion_counts_reject_unknown_ids(bad: list[int]) -> None:
    sched = Schedule.build(n_samples=13, config=_config())
    with pytest.raises(SampleIdError):
        sched.deletion_counts(bad)
