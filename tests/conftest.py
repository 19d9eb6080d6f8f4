"""Shared fixtures for the certunlearn test suite.

``tests/`` has no ``__init__.py``, so pytest (rootdir mode, ``prepend`` import mode) puts this
directory on ``sys.path`` when it loads this conftest; the slow references are then importable from
every test module as ``from reference.sgd_loop import ...``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import pytest
import torch


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """One intra-op torch thread inside the block (restored after).

    The suite's problems are tiny: on a shared 2-core machine two threads made them 10-30x slower
    (thread oversubscription), so every test runs with one (``_one_torch_thread`` below).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with single_torch_thread():
        yield


class TinyProblem(NamedTuple):
    """A tiny fp64 classification problem: ``X [n, num_features]``, int64 labels ``y [n]``."""

    X: torch.Tensor
    y: torch.Tensor
    num_classes: int

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.X.shape[1])


@pytest.fixture
def tiny_problem() -> TinyProblem:
    """13 samples, 3 features, 3 classes, fp64, drawn from a seeded local generator."""
    generator = torch.Generator().manual_seed(1234)
    X = torch.randn(13, 3, dtype=torch.float64, generator=generator)
    y = torch.randint(0, 3, (13,), generator=generator)
    return TinyProblem(X, y, 3)
