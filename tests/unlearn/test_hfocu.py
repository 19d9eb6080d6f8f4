"""HFOCU through its public API: the recursion against the loop reference, additivity, quality
against the coupled retrain, certificate soundness, Gaussian release, online semantics, input
errors (atomic), uncertified cases, persistence, and CUDA parity.

These tests are about the statistics and the worst-case certificate (reference: the coupled retrain),
so the unlearners here use ``certificate="worst-case"``; the refine certificate, the default for
softmax regression, is tested in tests/unlearn/test_refine_unlearn.py.

Expected values come from the slow reference (tests/reference/hfocu_loop.py), from the coupled
retrain oracle, or from certunlearn.certify.gaussian; never from the code under test.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

# tests/ is on sys.path (see tests/conftest.py): the slow loop references.
from reference.hfocu_loop import reference_hfocu
from scipy import stats
from torch import Tensor

from certunlearn.certify.assumptions import Assumptions
from certunlearn.certify.gaussian import gaussian_sigma
from certunlearn.certify.ledger import Ledger, LedgerPolicy
from certunlearn.data import clip_rows, load_dataset
from certunlearn.errors import (
    CertUnlearnError,
    ConfigError,
    InputError,
    PolicyError,
    PrivacyLeakWarning,
    SampleIdError,
)
from certunlearn.models import MLP, LogisticRegression
from certunlearn.train import SGDConfig, coupled_retrain
from certunlearn.unlearn import HFOCU, UnlearnResult

EPS, DELTA = 1.0, 1e-5
PROPERTY = settings(max_examples=15, deadline=None, database=None)




def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _flat(params: dict[str, Tensor]) -> Tensor:
    return torch.cat([params[k].reshape(-1).to(torch.float64).cpu() for k in sorted(params)])


def _dist(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    return float((_flat(a) - _flat(b)).norm())


# --------------------------------------------------------------------------- problems
N, FEATURES, CLASSES = 23, 4, 3  # batch_size 5 -> 5, 5, 5, 5, 3: uneven last batch
LR_CONFIG = SGDConfig(epochs=3, batch_size=5, lr=0.5, lr_decay=0.97, weight_decay=0.1, seed=2)


def _lr_data(n: int = N, features: int = FEATURES, seed: int = 11) -> tuple[Tensor, Tensor]:
    g = _gen(seed)
    X = clip_rows(1.5 * torch.randn(n, features, dtype=torch.float64, generator=g), 1.0)
    return X, torch.randint(0, CLASSES, (n,), generator=g)


def _lr_fit(
    X: Tensor | None = None, y: Tensor | None = None, config: SGDConfig = LR_CONFIG, **kw
) -> HFOCU:
    if X is None:
        X, y = _lr_data()
    kw.setdefault("feature_norm_bound", 1.0)
    kw.setdefault("certificate", "worst-case")
    return HFOCU(LogisticRegression(X.shape[1], CLASSES), config, **kw).fit(X, y)


def _mlp() -> MLP:
    return MLP(FEATURES, CLASSES, hidden=(5,), activation="tanh", generator=_gen(1))


def _mlp_fit(**kw) -> HFOCU:
    X, y = _lr_data()
    kw.setdefault("certificate", "worst-case")
    return HFOCU(_mlp(), LR_CONFIG, **kw).fit(X, y)


def _retrain(hf: HFOCU, model, X: Tensor, y: Tensor, exclude) -> dict[str, Tensor]:
    return coupled_retrain(
        model, X, y, hf.schedule, hf.config, exclude=exclude, normalization="full_batch"
    )


def _assert_same_result(a: UnlearnResult, b: UnlearnResult) -> None:
    """Bit-identical releases."""
    assert a.cumulative_ids == b.cumulative_ids
    assert a.sigma == b.sigma and a.sensitivity == b.sensitivity and a.certified == b.certified
    for key in a.params_noiseless:
        assert torch.equal(a.params_noiseless[key], b.params_noiseless[key]), key
        assert torch.equal(a.params_released[key], b.params_released[key]), key


# --------------------------------------------------------------------------- (a) vs the reference
@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_single_forget_is_the_reference_approximator(kind: str) -> None:
    X, y = _lr_data()
    model = LogisticRegression(FEATURES, CLASSES) if kind == "logreg" else _mlp()
    hf = HFOCU(model, LR_CONFIG, feature_norm_bound=1.0 if kind == "logreg" else None,
               certificate="worst-case").fit(X, y)
    assert [len(s.ids) for s in hf.schedule.steps] == [5, 5, 5, 5, 3] * 3
    ref = reference_hfocu(
        model,
        X,
        y,
        [s.ids for s in hf.schedule.steps],
        [LR_CONFIG.lr * LR_CONFIG.lr_decay**t for t in range(len(hf.schedule))],
        weight_decay=LR_CONFIG.weight_decay,
    )
    w = _flat(hf.params)
    keys = sorted(hf.params)
    assert keys == sorted(dict(model.named_parameters()))
    torch.testing.assert_close(w, _reorder(ref.theta, model, keys), rtol=1e-12, atol=1e-14)
    for u in range(N):
        res = hf.forget([u], epsilon=EPS, delta=DELTA, dry_run=True)
        a_u = _flat(res.params_noiseless) - w
        torch.testing.assert_close(
            a_u, _reorder(ref.approximators[u], model, keys), rtol=1e-9, atol=1e-13
        )
    assert hf.deleted_ids == ()


def _reorder(theta: Tensor, model, keys: list[str]) -> Tensor:
    """A named_parameters-ordered flat vector, re-cut in sorted key order (as _flat does)."""
    parts, offset = {}, 0
    for name, p in model.named_parameters():
        parts[name] = theta[offset : offset + p.numel()]
        offset += p.numel()
    return torch.cat([parts[k] for k in keys])


@pytest.mark.parametrize(
    "kw", [{"block_rows": 2, "vmap_chunk": 1}, {"block_rows": 7, "vmap_chunk": 3}]
)
def test_block_rows_and_vmap_chunk_do_not_change_releases(kw) -> None:
    base, other = _PRISTINE_LR(), _lr_fit(**kw)
    assert torch.equal(_flat(base.params), _flat(other.params))
    for U in ([0], [2, 9, 22]):
        a = base.forget(U, epsilon=EPS, delta=DELTA, dry_run=True)
        b = other.forget(U, epsilon=EPS, delta=DELTA, dry_run=True)
        assert a.sensitivity == b.sensitivity
        torch.testing.assert_close(
            _flat(b.params_noiseless), _flat(a.params_noiseless), rtol=1e-13, atol=1e-15
        )


# --------------------------------------------------------------------------- (b) additivity
def test_set_forget_equals_summed_injection_recursion_and_sum_of_singles() -> None:
    X, y = _lr_data()
    model = _mlp()
    hf = HFOCU(model, LR_CONFIG, certificate="worst-case").fit(X, y)
    U = [0, 4, 9, 17, 22]
    ref = reference_hfocu(
        model,
        X,
        y,
        [s.ids for s in hf.schedule.steps],
        [s.lr for s in hf.schedule.steps],
        weight_decay=LR_CONFIG.weight_decay,
        track=[],
        sets=[U],
    )
    keys = sorted(hf.params)
    w = _flat(hf.params)
    at_once = hf.forget(U, epsilon=EPS, delta=DELTA, dry_run=True)
    torch.testing.assert_close(
        _flat(at_once.params_noiseless) - w,
        _reorder(ref.set_approximators[0], model, keys),
        rtol=1e-9,
        atol=1e-13,
    )
    singles = sum(
        _flat(hf.forget([u], epsilon=EPS, delta=DELTA, dry_run=True).params_noiseless) - w
        for u in U
    )
    torch.testing.assert_close(_flat(at_once.params_noiseless) - w, singles, rtol=1e-12, atol=1e-15)


@given(
    subset=st.lists(st.integers(0, N - 1), min_size=1, max_size=8, unique=True),
    order_seed=st.integers(0, 2**16),
)
@PROPERTY
def test_forgetting_at_once_equals_one_by_one_in_any_order(
    subset: list[int], order_seed: int
) -> None:
    hf = _PRISTINE_LR()
    at_once = hf.forget(subset, epsilon=EPS, delta=DELTA, dry_run=True)
    order = [subset[i] for i in np.random.default_rng(order_seed).permutation(len(subset))]
    for u in order:
        last = hf.forget([u], epsilon=EPS, delta=DELTA)
    assert last.cumulative_ids == tuple(sorted(subset)) == at_once.cumulative_ids
    assert hf.deleted_ids == tuple(order)
    torch.testing.assert_close(
        _flat(last.params_noiseless), _flat(at_once.params_noiseless), rtol=1e-13, atol=1e-15
    )
    # the cumulative bound depends only on the cumulative set
    assert last.sensitivity == pytest.approx(at_once.sensitivity, rel=1e-12)


class _Pristine:
    """One fitted instance per process; each call returns an independent deep copy."""

    def __init__(self, fit) -> None:
        self._fit, self._hf = fit, None

    def __call__(self) -> HFOCU:
        if self._hf is None:
            self._hf = self._fit()
        return copy.deepcopy(self._hf)


_PRISTINE_LR = _Pristine(_lr_fit)


# --------------------------------------------------------------------------- (c) quality
def test_unlearned_model_is_much_closer_to_the_coupled_retrain_than_the_trained_one() -> None:
    ds = load_dataset("digits", seed=0, clip_norm=1.0)
    n = 300
    X, y = ds.X_train[:n], ds.y_train[:n]
    cfg = SGDConfig(epochs=3, batch_size=32, lr=0.5, lr_decay=0.99, weight_decay=0.05, seed=0)
    model = LogisticRegression(ds.num_features, ds.num_classes)
    U = [3, 17, 40, 111, 250]
    track = sorted(set(range(0, n, 7)) | set(U))
    hf = HFOCU(model, cfg, feature_norm_bound=1.0, track_ids=track, certificate="worst-case").fit(X, y)
    res = hf.forget(U, epsilon=EPS, delta=DELTA, generator=_gen(0))
    retrain = _retrain(hf, model, X, y, U)
    unlearned, trained = _dist(res.params_noiseless, retrain), _dist(hf.params, retrain)
    ratio = trained / unlearned
    print(
        f"digits softmax regression, m={len(U)}: ||w-w_retrain||={trained:.3e} "
        f"||w_bar-w_retrain||={unlearned:.3e} ratio={ratio:.1f}"
    )
    assert ratio > 10
    assert res.certified and unlearned <= res.sensitivity


# --------------------------------------------------------------------------- (d) soundness
@given(subset=st.lists(st.integers(0, N - 1), min_size=1, max_size=10, unique=True))
@PROPERTY
def test_certified_release_is_within_its_sensitivity_of_the_coupled_retrain(
    subset: list[int],
) -> None:
    X, y = _lr_data()
    hf = _PRISTINE_LR()
    res = hf.forget(subset, epsilon=EPS, delta=DELTA, generator=_gen(0))
    assert res.certified and res.status == "certified" and res.assumptions and not res.reasons
    retrain = _retrain(hf, LogisticRegression(FEATURES, CLASSES), X, y, subset)
    assert _dist(res.params_noiseless, retrain) <= res.sensitivity
    # the noise-only baseline's sensitivity bounds the distance of the un-unlearned model
    noise_only = res.noise_only_sigma / gaussian_sigma(epsilon=EPS, delta=DELTA, sensitivity=1.0)
    assert _dist(hf.params, retrain) <= noise_only * (1 + 1e-9)
    assert res.sigma == pytest.approx(
        gaussian_sigma(epsilon=EPS, delta=DELTA, sensitivity=res.sensitivity), rel=1e-12
    )


@pytest.mark.parametrize(("calibration", "epsilon"), [("analytic", 2.0), ("classical", 0.5)])
def test_sigma_is_the_gaussian_calibration_of_the_sensitivity(
    calibration: str, epsilon: float
) -> None:
    hf = _lr_fit(calibration=calibration)
    res = hf.forget([1, 2], epsilon=epsilon, delta=1e-6, generator=_gen(0))
    assert res.certified and res.sensitivity > 0
    expected = gaussian_sigma(
        epsilon=epsilon, delta=1e-6, sensitivity=res.sensitivity, method=calibration
    )
    assert res.sigma == pytest.approx(expected, rel=1e-12)
    assert (res.epsilon, res.delta, res.calibration) == (epsilon, 1e-6, calibration)
    assert res.noise_only_sigma is not None and res.noise_only_sigma < res.sigma


WIDE = 300  # softmax regression with 3 * 300 + 3 = 903 parameters: enough for noise statistics


def _wide_fit() -> tuple[HFOCU, Tensor, Tensor]:
    X, y = _lr_data(n=12, features=WIDE, seed=3)
    cfg = SGDConfig(epochs=2, batch_size=4, lr=0.5, weight_decay=0.1, seed=0)
    return _lr_fit(X, y, cfg), X, y


def _noise(res: UnlearnResult) -> np.ndarray:
    return (_flat(res.params_released) - _flat(res.params_noiseless)).numpy()


def test_release_noise_is_gaussian_with_the_stated_sigma() -> None:
    hf, _, _ = _wide_fit()
    res = hf.forget([0, 5], epsilon=EPS, delta=DELTA, generator=_gen(123))
    z = _noise(res) / res.sigma
    assert z.size == 3 * WIDE + 3
    assert abs(z.mean()) < 5 / math.sqrt(z.size)
    assert abs(z.std() - 1.0) < 5 / math.sqrt(2 * z.size)
    assert stats.kstest(z, "norm").pvalue > 1e-4


def test_noise_comes_from_the_injected_generator() -> None:
    hf, _, _ = _wide_fit()
    a = hf.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(7), dry_run=True)
    b = hf.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(7), dry_run=True)
    c = hf.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(8), dry_run=True)
    _assert_same_result(a, b)
    assert not np.array_equal(_noise(a), _noise(c))
    assert np.array_equal(_flat(a.params_noiseless).numpy(), _flat(c.params_noiseless).numpy())
    # the global RNG is neither used nor disturbed
    state = torch.get_rng_state()
    hf.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(7), dry_run=True)
    assert torch.equal(state, torch.get_rng_state())


# --------------------------------------------------------------------------- (e) online semantics
def test_successive_requests_accumulate_and_draw_fresh_noise_calibrated_to_the_cumulative_set() -> (
    None
):
    hf, X, y = _wide_fit()
    first = hf.forget([0, 1, 2], epsilon=EPS, delta=DELTA, generator=_gen(1))
    expected_bound = hf.bound([7])
    second = hf.forget([7], epsilon=EPS, delta=DELTA, generator=_gen(2))
    assert first.request_ids == (0, 1, 2) and second.request_ids == (7,)
    assert second.cumulative_ids == (0, 1, 2, 7) and hf.deleted_ids == (0, 1, 2, 7)
    # the cumulative bound: what a fresh instance computes for the union at once
    fresh, _, _ = _wide_fit()
    union = fresh.forget([0, 1, 2, 7], epsilon=EPS, delta=DELTA, generator=_gen(2))
    assert second.sensitivity == pytest.approx(union.sensitivity, rel=1e-12)
    assert second.sensitivity == pytest.approx(expected_bound.value, rel=1e-12)
    alone = _wide_fit()[0].forget([7], epsilon=EPS, delta=DELTA)
    assert second.sensitivity > first.sensitivity > alone.sensitivity
    assert second.sigma == pytest.approx(union.sigma, rel=1e-12)
    # the noiseless state carries no noise from the first release
    torch.testing.assert_close(
        _flat(second.params_noiseless), _flat(union.params_noiseless), rtol=1e-13, atol=1e-15
    )
    # fresh noise of std sigma_2 (not stacked: sqrt(sigma_1^2 + sigma_2^2)), independent of the first draw
    n1, n2 = _noise(first), _noise(second)
    stacked = math.hypot(first.sigma, second.sigma)
    assert abs(n2.std() / second.sigma - 1) < 0.06
    assert abs(n2.std() - second.sigma) < abs(n2.std() - stacked)
    assert abs(np.corrcoef(n1, n2)[0, 1]) < 0.15
    assert stats.kstest(n2 / second.sigma, "norm").pvalue > 1e-4
    # w_T itself is never modified
    assert torch.equal(_flat(hf.params), _flat(fresh.params))
    retrain = _retrain(hf, LogisticRegression(WIDE, CLASSES), X, y, [0, 1, 2, 7])
    assert _dist(second.params_noiseless, retrain) <= second.sensitivity


BAD_REQUESTS = {
    "repeated-in-request": ([4, 4], {}, SampleIdError),
    "already-forgotten": ([2], {}, SampleIdError),
    "already-forgotten-mixed": ([4, 2], {}, SampleIdError),
    "unknown-high": ([N], {}, SampleIdError),
    "unknown-negative": ([-1], {}, SampleIdError),
    "untracked": ([20], {}, SampleIdError),
    "empty": ([], {}, SampleIdError),
    "nan-id": ([float("nan")], {}, SampleIdError),
    "float-id": ([1.0], {}, SampleIdError),
    "fractional-id": ([1.5], {}, SampleIdError),
    "bool-id": ([True], {}, SampleIdError),
    "string-id": (["3"], {}, SampleIdError),
    "epsilon-zero": ([4], {"epsilon": 0.0}, ConfigError),
    "epsilon-negative": ([4], {"epsilon": -1.0}, ConfigError),
    "epsilon-nan": ([4], {"epsilon": float("nan")}, ConfigError),
    "epsilon-inf": ([4], {"epsilon": math.inf}, ConfigError),
    "delta-zero": ([4], {"delta": 0.0}, ConfigError),
    "delta-one": ([4], {"delta": 1.0}, ConfigError),
    "delta-negative": ([4], {"delta": -0.1}, ConfigError),
    "delta-above-one": ([4], {"delta": 1.5}, ConfigError),
    "delta-nan": ([4], {"delta": float("nan")}, ConfigError),
}
_TRACK = [i for i in range(N) if i != 20]
_PRISTINE_TRACKED = _Pristine(lambda: _lr_fit(track_ids=_TRACK))


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_raise_and_change_nothing(case: str) -> None:
    ids, kw, error = BAD_REQUESTS[case]
    hf, fresh = _PRISTINE_TRACKED(), _PRISTINE_TRACKED()
    for inst in (hf, fresh):
        inst.forget([2], epsilon=EPS, delta=DELTA, generator=_gen(0))
    args = {"epsilon": EPS, "delta": DELTA, **kw}
    with pytest.raises(error) as info:
        hf.forget(ids, generator=_gen(5), **args)
    assert isinstance(info.value, CertUnlearnError) and str(info.value)
    assert hf.deleted_ids == (2,)
    _assert_same_result(
        hf.forget([4, 6], epsilon=EPS, delta=DELTA, generator=_gen(9)),
        fresh.forget([4, 6], epsilon=EPS, delta=DELTA, generator=_gen(9)),
    )


def test_dry_run_changes_nothing() -> None:
    hf, fresh = _PRISTINE_LR(), _PRISTINE_LR()
    dry = hf.forget([1, 3], epsilon=EPS, delta=DELTA, generator=_gen(4), dry_run=True)
    real = fresh.forget([1, 3], epsilon=EPS, delta=DELTA, generator=_gen(4))
    _assert_same_result(dry, real)  # a dry run computes exactly the release ...
    assert hf.deleted_ids == ()  # ... but records nothing
    _assert_same_result(
        hf.forget([1, 3], epsilon=EPS, delta=DELTA, generator=_gen(4)),
        _PRISTINE_LR().forget([1, 3], epsilon=EPS, delta=DELTA, generator=_gen(4)),
    )


def test_ledger_refusal_changes_nothing() -> None:
    ledger = Ledger(LedgerPolicy(epsilon=EPS, delta=DELTA, max_deletions=3))
    hf = _lr_fit(ledger=ledger)
    hf.forget([1, 2], epsilon=EPS, delta=DELTA, generator=_gen(0))
    with pytest.raises(PolicyError):
        hf.forget([3, 4], epsilon=EPS, delta=DELTA, generator=_gen(0))
    assert hf.deleted_ids == (1, 2) and len(ledger.events) == 1
    hf.forget(
        [3, 4], epsilon=EPS, delta=DELTA, dry_run=True
    )  # what-if questions pass the policy by
    assert len(ledger.events) == 1


# --------------------------------------------------------------------------- (e) uncertified cases
def test_model_without_assumptions_is_uncertified_and_unnoised() -> None:
    res = _mlp_fit().forget([1], epsilon=EPS, delta=DELTA, generator=_gen(0))
    assert not res.certified and res.status == "uncertified"
    assert res.sensitivity is None and res.sigma == 0.0 and res.noise_only_sigma is None
    assert any("assumptions" in r for r in res.reasons)
    assert torch.equal(_flat(res.params_released), _flat(res.params_noiseless))


def test_user_noise_sensitivity_adds_noise_but_stays_uncertified() -> None:
    res = _mlp_fit(noise_sensitivity=0.3).forget([1], epsilon=EPS, delta=DELTA, generator=_gen(0))
    assert not res.certified and res.status == "uncertified" and res.reasons
    assert res.sigma == pytest.approx(
        gaussian_sigma(epsilon=EPS, delta=DELTA, sensitivity=0.3), rel=1e-12
    )
    assert not torch.equal(_flat(res.params_released), _flat(res.params_noiseless))


def test_declared_non_convex_assumptions_are_at_most_conditional() -> None:
    declared = Assumptions(gradient_bound=5.0, smoothness=2.0, convex=False)
    res = _mlp_fit(assumptions=declared).forget([1], epsilon=EPS, delta=DELTA, generator=_gen(0))
    assert not res.certified and res.status != "certified" and res.reasons
    assert res.sigma == 0.0


def test_missing_feature_norm_bound_warns_and_is_uncertified() -> None:
    with pytest.warns(PrivacyLeakWarning):
        hf = _lr_fit(feature_norm_bound=None)
    res = hf.forget([1], epsilon=EPS, delta=DELTA, generator=_gen(0))
    assert not res.certified and res.status == "uncertified"
    assert any("estimated" in r for r in res.reasons)


@pytest.mark.parametrize(
    ("kw", "config", "word"),
    [
        ({}, replace(LR_CONFIG, clip_norm=0.5), "clip"),
        ({"feature_norm_bound": 0.5}, LR_CONFIG, "norm"),
        ({}, replace(LR_CONFIG, lr=1.9), "step size"),
    ],
    ids=["clip_norm", "rows-exceed-bound", "step-too-large"],
)
def test_violated_assumptions_give_uncertified_releases(kw, config, word) -> None:
    res = _lr_fit(config=config, **kw).forget([1], epsilon=EPS, delta=DELTA, generator=_gen(0))
    assert not res.certified and res.status == "uncertified" and res.sigma == 0.0
    assert any(word in r for r in res.reasons), res.reasons


# --------------------------------------------------------------------------- (f) persistence
def _forget_pair(hf: HFOCU) -> tuple[UnlearnResult, UnlearnResult]:
    return (
        hf.forget([1, 6], epsilon=EPS, delta=DELTA, generator=_gen(3)),
        hf.forget([11], epsilon=EPS, delta=DELTA, generator=_gen(4)),
    )


@pytest.mark.parametrize("mmap_mode", [True, False], ids=["load-mmap", "load-memory"])
@pytest.mark.parametrize("backend", ["memory", "memmap"])
@pytest.mark.parametrize("storage", ["float32", "float64", "bfloat16"])
def test_save_load_round_trip_gives_the_same_releases(
    tmp_path: Path, storage, backend, mmap_mode
) -> None:
    X, y = _lr_data()
    target = tmp_path / "state"
    # the memmap backend maps the very file save() writes (the flush path)
    store_path = None if backend == "memory" else target / "statistics.bin"
    if store_path is not None:
        target.mkdir()
    track = [i for i in range(N) if i % 2 == 0 or i in (1, 11)]
    hf = _lr_fit(X, y, storage_dtype=storage, store_path=store_path, track_ids=track)
    itemsize = {"float32": 4, "float64": 8, "bfloat16": 2}[storage]
    assert hf.statistics_nbytes == len(track) * (FEATURES * CLASSES + CLASSES) * itemsize
    hf.save(target)
    loaded = HFOCU.load(target, LogisticRegression(FEATURES, CLASSES), X, mmap_mode=mmap_mode)
    assert loaded.statistics_nbytes == hf.statistics_nbytes
    assert loaded.schedule == hf.schedule and loaded.config == hf.config
    assert torch.equal(_flat(loaded.params), _flat(hf.params))
    for a, b in zip(_forget_pair(hf), _forget_pair(loaded), strict=True):
        _assert_same_result(a, b)


def test_bfloat16_statistics_are_close_to_float64_ones() -> None:
    X, y = _lr_data()
    exact, rounded = _lr_fit(X, y), _lr_fit(X, y, storage_dtype="bfloat16")
    assert rounded.statistics_nbytes * 4 == exact.statistics_nbytes
    w = _flat(exact.params)
    assert torch.equal(w, _flat(rounded.params))  # training itself is untouched
    for U in ([0], [3, 8, 15, 21]):
        ref = _flat(exact.forget(U, epsilon=EPS, delta=DELTA, dry_run=True).params_noiseless) - w
        got = _flat(rounded.forget(U, epsilon=EPS, delta=DELTA, dry_run=True).params_noiseless) - w
        assert 0 < float((got - ref).norm()) <= 3e-2 * float(ref.norm())


def test_state_saved_after_deletions_resumes_where_it_stopped(tmp_path: Path) -> None:
    X, y = _lr_data()
    hf = _lr_fit(X, y)
    hf.forget([1, 6, 9], epsilon=EPS, delta=DELTA, generator=_gen(0))
    hf.forget([12], epsilon=EPS, delta=DELTA, generator=_gen(0))
    hf.save(tmp_path)
    loaded = HFOCU.load(tmp_path, LogisticRegression(FEATURES, CLASSES), X)
    assert loaded.deleted_ids == (1, 6, 9, 12)
    with pytest.raises(SampleIdError):
        loaded.forget([6], epsilon=EPS, delta=DELTA)
    a = hf.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(5))
    b = loaded.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(5))
    assert a.cumulative_ids == b.cumulative_ids and a.sigma == pytest.approx(b.sigma, rel=1e-13)
    torch.testing.assert_close(
        _flat(b.params_noiseless), _flat(a.params_noiseless), rtol=1e-14, atol=1e-15
    )


def test_save_load_restores_the_ledger_and_continues_bit_for_bit(tmp_path: Path) -> None:
    """The saved directory holds Σ a_u, the deletion counts and the ledger: a loaded unlearner's next
    release and ledger entry are those the saved one would have produced."""
    X, y = _lr_data()
    policy = LedgerPolicy(epsilon=EPS, delta=DELTA, max_deletions=10)
    hf = _lr_fit(X, y, ledger=Ledger(policy))
    hf.forget([1, 6, 9], epsilon=EPS, delta=DELTA, generator=_gen(0), request_id="a")
    hf.forget([12], epsilon=EPS, delta=DELTA, generator=_gen(1), request_id="b")
    hf.save(tmp_path)
    loaded = HFOCU.load(tmp_path, LogisticRegression(FEATURES, CLASSES), X)
    assert loaded.ledger is not None and loaded.ledger.events == hf.ledger.events
    assert loaded.ledger.policy == policy and loaded.ledger.remaining() == hf.ledger.remaining()
    _assert_same_result(hf.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(5), request_id="c"),
                        loaded.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(5), request_id="c"))
    strip = [replace(e, timestamp="") for e in hf.ledger.events]
    assert [replace(e, timestamp="") for e in loaded.ledger.events] == strip
    assert loaded.ledger.remaining()["deletions"] == 10 - 5


def test_a_schema_1_directory_is_still_read(tmp_path: Path) -> None:
    """Directories of the previous schema (no ledger, no deletion_state.pt) load: Σ a_u is summed
    again from the statistics, so the releases agree up to rounding."""
    X, y = _lr_data()
    hf = _lr_fit(X, y)
    hf.forget([1, 6, 9], epsilon=EPS, delta=DELTA, generator=_gen(0))
    hf.forget([12], epsilon=EPS, delta=DELTA, generator=_gen(0))
    hf.save(tmp_path)
    meta = json.loads((tmp_path / "hfocu.json").read_text())
    del meta["ledger"]
    (tmp_path / "hfocu.json").write_text(json.dumps({**meta, "schema_version": 1}))
    (tmp_path / "deletion_state.pt").unlink()
    loaded = HFOCU.load(tmp_path, LogisticRegression(FEATURES, CLASSES), X)
    assert loaded.deleted_ids == (1, 6, 9, 12) and loaded.ledger is None
    a = hf.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(5))
    b = loaded.forget([3], epsilon=EPS, delta=DELTA, generator=_gen(5))
    assert a.sigma == pytest.approx(b.sigma, rel=1e-13)
    torch.testing.assert_close(_flat(b.params_noiseless), _flat(a.params_noiseless), rtol=1e-14, atol=1e-15)


def test_a_loaded_state_can_be_saved_back_into_its_own_directory(tmp_path: Path) -> None:
    """Loading memory-maps statistics.bin; saving into the same directory must not truncate the
    file under its own map (that kills the process with SIGBUS, hence the subprocess)."""
    X, y = _lr_data()
    hf = _lr_fit(X, y)
    hf.save(tmp_path)
    torch.save({"X": X}, tmp_path / "X.pt")
    script = textwrap.dedent(
        f"""
        import torch
        from certunlearn.models import LogisticRegression
        from certunlearn.unlearn import HFOCU
        X = torch.load({str(tmp_path / "X.pt")!r}, weights_only=True)["X"]
        loaded = HFOCU.load({str(tmp_path)!r}, LogisticRegression({FEATURES}, {CLASSES}), X)
        loaded.forget([2], epsilon=1.0, delta=1e-5)
        loaded.save({str(tmp_path)!r})
        res = loaded.forget([1], epsilon=1.0, delta=1e-5, dry_run=True)  # reads the old map
        torch.save(res.params_noiseless, {str(tmp_path / "out.pt")!r})
        print("OK")
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, (
        f"exit {proc.returncode} (-7 = SIGBUS)",
        proc.stderr[-2000:],
    )
    expected = hf.forget([1, 2], epsilon=EPS, delta=DELTA, dry_run=True).params_noiseless
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    torch.testing.assert_close(_flat(got), _flat(expected), rtol=1e-13, atol=1e-15)
    again = HFOCU.load(tmp_path, LogisticRegression(FEATURES, CLASSES), X)
    assert again.deleted_ids == (2,)
    torch.testing.assert_close(
        _flat(again.forget([5], epsilon=EPS, delta=DELTA).params_noiseless),
        _flat(hf.forget([2, 5], epsilon=EPS, delta=DELTA).params_noiseless),
        rtol=1e-13,
        atol=1e-15,
    )


def _corrupt(directory: Path, how: str) -> None:
    meta_path = directory / "hfocu.json"
    meta = json.loads(meta_path.read_text())
    if how == "missing-directory":
        shutil.rmtree(directory)
    elif how == "empty-directory":
        for p in directory.iterdir():
            p.unlink()
    elif how == "meta-not-json":
        meta_path.write_text("{not json")
    elif how == "meta-not-object":
        meta_path.write_text("[1, 2]")
    elif how == "meta-wrong-schema":
        meta_path.write_text(json.dumps({**meta, "schema_version": 99}))
    elif how == "meta-wrong-mechanism":
        meta_path.write_text(json.dumps({**meta, "mechanism": "newton"}))
    elif how == "meta-without-config":
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "config"}))
    elif how == "meta-bad-config":
        meta_path.write_text(json.dumps({**meta, "config": {**meta["config"], "lr": -1}}))
    elif how == "meta-without-deleted":
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "deleted_ids"}))
    elif how == "deleted-repeated":
        meta_path.write_text(json.dumps({**meta, "deleted_ids": [1, 1]}))
    elif how == "deleted-unknown":
        meta_path.write_text(json.dumps({**meta, "deleted_ids": [N + 3]}))
    elif how == "statistics-truncated":
        data = (directory / "statistics.bin").read_bytes()
        (directory / "statistics.bin").write_bytes(data[:-8])
    elif how == "statistics-missing":
        (directory / "statistics.bin").unlink()
    elif how == "statistics-meta-missing":
        (directory / "statistics.json").unlink()
    elif how == "params-missing":
        (directory / "params.pt").unlink()
    elif how == "params-garbage":
        (directory / "params.pt").write_bytes(b"garbage")
    elif how == "schedule-garbage":
        (directory / "schedule.json").write_text("{]")
    elif how == "deleted-not-matching-the-deletion-state":
        meta_path.write_text(json.dumps({**meta, "deleted_ids": [2]}))
    elif how == "deletion-state-missing":
        (directory / "deletion_state.pt").unlink()
    elif how == "deletion-state-garbage":
        (directory / "deletion_state.pt").write_bytes(b"garbage")
    elif how == "ledger-garbage":
        meta_path.write_text(json.dumps({**meta, "ledger": {"mechanism": "ledger", "schema_version": 1}}))
    else:  # pragma: no cover
        raise AssertionError(how)


CORRUPTIONS = [
    "missing-directory",
    "empty-directory",
    "meta-not-json",
    "meta-not-object",
    "meta-wrong-schema",
    "meta-wrong-mechanism",
    "meta-without-config",
    "meta-bad-config",
    "meta-without-deleted",
    "deleted-repeated",
    "deleted-unknown",
    "statistics-truncated",
    "statistics-missing",
    "statistics-meta-missing",
    "params-missing",
    "params-garbage",
    "schedule-garbage",
    "deleted-not-matching-the-deletion-state",
    "deletion-state-missing",
    "deletion-state-garbage",
    "ledger-garbage",
]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_loading_a_corrupt_or_missing_state_raises_input_error(tmp_path: Path, how: str) -> None:
    X, y = _lr_data()
    _PRISTINE_LR().save(tmp_path / "state")
    _corrupt(tmp_path / "state", how)
    with pytest.raises(InputError):
        HFOCU.load(tmp_path / "state", LogisticRegression(FEATURES, CLASSES), X)


def test_loading_with_the_wrong_training_data_raises_input_error(tmp_path: Path) -> None:
    X, _ = _lr_data()
    _PRISTINE_LR().save(tmp_path)
    with pytest.raises(InputError):
        HFOCU.load(tmp_path, LogisticRegression(FEATURES, CLASSES), X[:-1])


# --------------------------------------------------------------------------- (h) CUDA parity
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_cuda_matches_cpu_in_float64(kind: str) -> None:
    X, y = _lr_data()
    U = [0, 5, 9]
    results = {}
    for device in ("cpu", "cuda"):
        model = (LogisticRegression(FEATURES, CLASSES) if kind == "logreg" else _mlp()).to(device)
        hf = HFOCU(model, LR_CONFIG, feature_norm_bound=1.0 if kind == "logreg" else None, certificate="worst-case")
        hf.fit(X.to(device), y.to(device))
        gen = torch.Generator(device=device).manual_seed(0)
        res = hf.forget(U, epsilon=EPS, delta=DELTA, generator=gen)
        assert all(t.device.type == device for t in res.params_released.values())
        results[device] = (hf, res)
    (cpu, rc), (gpu, rg) = results["cpu"], results["cuda"]
    torch.testing.assert_close(_flat(gpu.params), _flat(cpu.params), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        _flat(rg.params_noiseless), _flat(rc.params_noiseless), rtol=1e-10, atol=1e-12
    )
    assert rg.certified == rc.certified and rg.sigma == pytest.approx(rc.sigma, rel=1e-12)
    if rc.sigma > 0:
        z = (_flat(rg.params_released) - _flat(rg.params_noiseless)) / rg.sigma
        assert abs(float(z.std()) - 1) < 0.5


# ---------------------------------------------------------------------------------------------
# Prefetched noise: drawn before the request, used by exactly one release
# ---------------------------------------------------------------------------------------------


def _prefetch_setup():
    X = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    X = X / X.norm(dim=1, keepdim=True)
    y = (X[:, 0] > 0).long()
    cfg = SGDConfig(epochs=2, batch_size=6, lr=0.5, weight_decay=0.1)
    return X, y, cfg


def _released_minus_noiseless(res) -> torch.Tensor:
    return torch.cat([(res.params_released[k] - res.params_noiseless[k]).reshape(-1) for k in sorted(res.params_released)])


def test_prefetched_noise_equals_drawing_at_request_time_and_is_used_once() -> None:
    X, y, cfg = _prefetch_setup()
    a = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0, certificate="worst-case").fit(X, y)
    b = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0, certificate="worst-case").fit(X, y)
    gen_a, gen_b = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    a.prefetch_noise(gen_a)
    first_a = a.forget([0], epsilon=1.0, delta=1e-5, generator=gen_a)
    first_b = b.forget([0], epsilon=1.0, delta=1e-5, generator=gen_b)
    assert torch.equal(_released_minus_noiseless(first_a), _released_minus_noiseless(first_b))
    # the draw is consumed: the next release draws fresh noise from the generator, as b does
    second_a = a.forget([1], epsilon=1.0, delta=1e-5, generator=gen_a)
    second_b = b.forget([1], epsilon=1.0, delta=1e-5, generator=gen_b)
    assert torch.equal(_released_minus_noiseless(second_a), _released_minus_noiseless(second_b))
    noise_1 = _released_minus_noiseless(first_a) / first_a.sigma
    noise_2 = _released_minus_noiseless(second_a) / second_a.sigma
    assert not torch.allclose(noise_1, noise_2)


def test_dry_run_neither_uses_nor_consumes_prefetched_noise() -> None:
    """A prefetched draw serves exactly one release: a dry run draws from its own generator (sharing the
    draw would make the difference of the two outputs the difference of their noiseless models) and
    leaves the draw for the next real release."""
    X, y, cfg = _prefetch_setup()
    hf = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0, certificate="worst-case").fit(X, y)
    hf.prefetch_noise(torch.Generator().manual_seed(5))
    prefetched = hf.prefetched_noise_.clone()
    flat = hf.fm_.layout.flatten  # the noise is drawn in the layout's order

    def noise(res) -> torch.Tensor:
        return flat(res.params_released) - flat(res.params_noiseless)

    dry = hf.forget([2], epsilon=1.0, delta=1e-5, dry_run=True, generator=torch.Generator().manual_seed(9))
    own = torch.randn(prefetched.shape, generator=torch.Generator().manual_seed(9), dtype=prefetched.dtype)
    torch.testing.assert_close(noise(dry), dry.sigma * own, rtol=1e-12, atol=1e-15)
    assert torch.equal(hf.prefetched_noise_, prefetched)
    real = hf.forget([2], epsilon=1.0, delta=1e-5)
    torch.testing.assert_close(noise(real), real.sigma * prefetched, rtol=1e-12, atol=1e-15)
    assert hf.prefetched_noise_ is None
