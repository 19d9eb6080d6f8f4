"""The recorded batch schedule: which sample ids form each minibatch, and each step's learning rate.

The schedule is what makes the coupled retrain (and therefore the certificate) well defined: the
retrain replays exactly these batches with the deleted ids removed.

Example:
    >>> from certunlearn.train.config import SGDConfig
    >>> sched = Schedule.build(n_samples=5, config=SGDConfig(epochs=1, batch_size=2, lr=0.5, seed=0))
    >>> [len(s.ids) for s in sched.steps]
    [2, 2, 1]
    >>> Schedule.from_json(sched.to_json()) == sched
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from certunlearn.errors import InputError, SampleIdError
from certunlearn.train.config import SGDConfig
from certunlearn.validation import check_int

__all__ = ["SCHEDULE_SCHEMA_VERSION", "Schedule", "ScheduleIndex", "Step", "epoch_batches"]

SCHEDULE_SCHEMA_VERSION = 1


def epoch_batches(*, n_samples: int, config: SGDConfig) -> Iterator[tuple[Tensor, tuple[float, ...]]]:
    """The seeded batch order of ``config``, one epoch at a time: the sampler of :meth:`Schedule.build`.

    One ``torch.Generator`` seeded with ``config.seed`` draws one ``randperm(n_samples)`` per epoch.
    Epoch e yields ``(order, lrs)``: the permutation (int64 ``[n]``), whose consecutive slices of
    ``config.batch_size`` ids are the epoch's batches (the last one may be smaller), and the step
    sizes of those ``S = ⌈n / batch_size⌉`` batches, ``η_t = config.lr_at(t)`` for ``t = eS … eS+S−1``
    (t counts steps from the start of training). :mod:`certunlearn.train.many` draws each model's
    batches from it, an epoch at a time, instead of recording a :class:`Schedule`.

    Example:
        >>> cfg = SGDConfig(epochs=2, batch_size=2, lr=1.0, lr_decay=0.5, seed=0)
        >>> [lrs for _, lrs in epoch_batches(n_samples=3, config=cfg)]
        [(1.0, 0.5), (0.25, 0.125)]
        >>> orders = [order.tolist() for order, _ in epoch_batches(n_samples=3, config=cfg)]
        >>> [ids for step in Schedule.build(n_samples=3, config=cfg).steps for ids in step.ids] == sum(orders, [])
        True
    """
    n_samples = check_int("n_samples", n_samples, minimum=1)
    per_epoch = -(-n_samples // config.batch_size)

    def epochs() -> Iterator[tuple[Tensor, tuple[float, ...]]]:
        generator = torch.Generator().manual_seed(config.seed)
        for epoch in range(config.epochs):
            order = torch.randperm(n_samples, generator=generator)
            first = epoch * per_epoch
            yield order, tuple(config.lr_at(first + s) for s in range(per_epoch))

    return epochs()


@dataclass(frozen=True, slots=True)
class Step:
    """One SGD step: the sample ids of its minibatch and its step size."""

    ids: tuple[int, ...]
    lr: float

    def __post_init__(self) -> None:
        if not self.ids:
            raise InputError("a schedule step must contain at least one sample id")
        if len(set(self.ids)) != len(self.ids):
            raise InputError(f"a schedule step repeats a sample id: {list(self.ids)}")
        if not (isinstance(self.lr, float) and math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"a schedule step needs a finite lr > 0, got {self.lr!r}")


@dataclass(frozen=True, slots=True)
class Schedule:
    """The ordered steps of a training run over ``n_samples`` samples (ids 0..n-1)."""

    n_samples: int
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        check_int("n_samples", self.n_samples, minimum=1)
        for t, step in enumerate(self.steps):
            bad = [i for i in step.ids if not 0 <= i < self.n_samples]
            if bad:
                raise InputError(f"schedule step {t} has ids outside 0..{self.n_samples - 1}: {bad[:5]}")

    @classmethod
    def build(cls, *, n_samples: int, config: SGDConfig) -> Schedule:
        """Draw the schedule of ``config``: one seeded permutation per epoch, cut into batches."""
        n_samples = check_int("n_samples", n_samples, minimum=1)
        size = config.batch_size
        steps: list[Step] = []
        for order, lrs in epoch_batches(n_samples=n_samples, config=config):
            perm = order.tolist()
            steps.extend(Step(tuple(perm[s * size : (s + 1) * size]), lr) for s, lr in enumerate(lrs))
        return cls(n_samples, tuple(steps))

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def lrs(self) -> np.ndarray:
        """Step sizes η_t as a float64 array ``[T]``."""
        return np.array([s.lr for s in self.steps], dtype=np.float64)

    @property
    def batch_sizes(self) -> np.ndarray:
        """Batch sizes |B_t| as an int64 array ``[T]``."""
        return np.array([len(s.ids) for s in self.steps], dtype=np.int64)

    def epoch_lengths(self) -> list[int]:
        """Lengths of consecutive runs of steps in which no sample id occurs twice (greedy).

        For a schedule built by :meth:`build` these are the epochs. Whatever the schedule, a deleted
        id counts at most once in each run, which is what worst-case bounds over placements need.

        Example:
            >>> from certunlearn.train.config import SGDConfig
            >>> s = Schedule.build(n_samples=5, config=SGDConfig(epochs=3, batch_size=2, lr=1.0))
            >>> s.epoch_lengths()
            [3, 3, 3]
        """
        lengths: list[int] = []
        seen: set[int] = set()
        run = 0
        for step in self.steps:
            if seen.intersection(step.ids):
                lengths.append(run)
                seen, run = set(), 0
            seen.update(step.ids)
            run += 1
        if run:
            lengths.append(run)
        return lengths

    def deletion_counts(self, ids: Iterable[int]) -> np.ndarray:
        """m_t = |U ∩ B_t| for every step, as an int64 array ``[T]``.

        Example:
            >>> from certunlearn.train.config import SGDConfig
            >>> s = Schedule.build(n_samples=4, config=SGDConfig(epochs=2, batch_size=4, lr=1.0))
            >>> s.deletion_counts([0, 3]).tolist()
            [2, 2]
        """
        wanted = np.zeros(self.n_samples, dtype=bool)
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.n_samples]
        if bad:
            raise SampleIdError(f"unknown sample ids {bad[:5]}: ids are 0..{self.n_samples - 1}")
        wanted[ids] = True
        return np.array([int(wanted[list(s.ids)].sum()) for s in self.steps], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """``{"schema_version", "n_samples", "steps": [{"ids": [...], "lr": ...}, ...]}``."""
        return {
            "schema_version": SCHEDULE_SCHEMA_VERSION,
            "n_samples": self.n_samples,
            "steps": [{"ids": list(s.ids), "lr": s.lr} for s in self.steps],
        }

    def to_json(self) -> str:
        """The schedule as JSON text (floats written with full precision)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes | dict[str, Any]) -> Schedule:
        """Rebuild a schedule from :meth:`to_json` text or :meth:`to_dict` output, validating it."""
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InputError(f"schedule is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError("schedule JSON must be an object")
        version = data.get("schema_version", SCHEDULE_SCHEMA_VERSION)
        if version != SCHEDULE_SCHEMA_VERSION:
            raise InputError(f"unsupported schedule schema_version {version!r}")
        unknown = sorted(set(data) - {"schema_version", "n_samples", "steps"})
        if unknown:
            raise InputError(f"unknown schedule keys: {unknown}")
        try:
            steps = tuple(
                Step(tuple(_json_int("ids", i) for i in s["ids"]), _json_number("lr", s["lr"]))
                for s in data["steps"]
            )
            n = data.get("n_samples")
            if n is None:
                n = 1 + max((max(s.ids) for s in steps), default=0)
            return cls(_json_int("n_samples", n), steps)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed schedule: {exc!r}") from exc


def _json_int(key: str, value: object) -> int:
    """JSON integers only: 1.0, "1" and true are refused rather than silently coerced."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"malformed schedule: {key} must be JSON integers, got {value!r}")
    return int(value)


def _json_number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"malformed schedule: {key} must be a JSON number, got {value!r}")
    return float(value)


class ScheduleIndex:
    """Where every sample id occurs in a schedule, for O(occurrences of U) lookups of m_t.

    Example:
        >>> from certunlearn.train.config import SGDConfig
        >>> s = Schedule.build(n_samples=6, config=SGDConfig(epochs=3, batch_size=4, lr=1.0))
        >>> idx = ScheduleIndex(s)
        >>> bool((idx.deletion_counts([1, 4]) == s.deletion_counts([1, 4])).all())
        True
    """

    def __init__(self, schedule: Schedule) -> None:
        self.n_samples = schedule.n_samples
        self.n_steps = len(schedule.steps)
        self.lrs = schedule.lrs  # the schedule's arrays, built once (bounds read them on every request)
        self.batch_sizes = schedule.batch_sizes
        self.lrs.flags.writeable = self.batch_sizes.flags.writeable = False
        ids = np.fromiter((i for s in schedule.steps for i in s.ids), dtype=np.int64)
        steps = np.repeat(np.arange(self.n_steps, dtype=np.int64), self.batch_sizes)
        order = np.argsort(ids, kind="stable")
        self._steps_by_id = steps[order]
        self._offsets = np.concatenate(
            [[0], np.cumsum(np.bincount(ids, minlength=self.n_samples))]
        ).astype(np.int64)

    def steps_of(self, sample_id: int) -> np.ndarray:
        """The steps (sorted) whose batch contains ``sample_id``."""
        return self._steps_by_id[self._offsets[sample_id] : self._offsets[sample_id + 1]]

    def deletion_counts(self, ids: Iterable[int]) -> np.ndarray:
        """m_t = |U ∩ B_t| for every step, int64 ``[T]`` (ids must be valid and distinct)."""
        ids = np.asarray(list(ids), dtype=np.int64)
        if ids.size == 0:
            return np.zeros(self.n_steps, dtype=np.int64)
        if ids.min() < 0 or ids.max() >= self.n_samples:
            raise SampleIdError(f"unknown sample ids: ids are 0..{self.n_samples - 1}")
        occ = np.concatenate([self.steps_of(int(i)) for i in ids])
        return np.bincount(occ, minlength=self.n_steps).astype(np.int64)
