"""The pieces every trainer shares: the step rule ``sgd_step`` and the sampler ``epoch_batches``.

``train_sgd`` / ``coupled_retrain`` (through ``run_schedule``) and the many-models trainer must take
their steps with :func:`certunlearn.train.sgd.sgd_step` and their batches from
:func:`certunlearn.train.schedule.epoch_batches`; these tests check the rule against its formula,
under ``vmap``, and that both trainers really call it.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import certunlearn.train.many as many_module
import certunlearn.train.sgd as sgd_module
from certunlearn.models import LogisticRegression
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule, epoch_batches
from certunlearn.train.sgd import sgd_step, train_sgd


def _config(**changes) -> SGDConfig:
    return SGDConfig(**{"epochs": 1, "batch_size": 1, "lr": 1.0, **changes})


@pytest.mark.parametrize(
    "changes, expected_v, expected_w",
    [
        ({}, [-3.0, -4.0], [-3.0, -4.0]),
        ({"clip_norm": 1.0}, [-0.6, -0.8], [-0.6, -0.8]),  # ‖g‖ = 5 clipped to 1
        ({"clip_norm": 10.0}, [-3.0, -4.0], [-3.0, -4.0]),  # below the clip norm: unchanged
        ({"projection_radius": 2.5}, [-3.0, -4.0], [-1.5, -2.0]),  # ‖v‖ = 5 projected to 2.5
        ({"clip_norm": 1.0, "projection_radius": 0.5}, [-0.6, -0.8], [-0.3, -0.4]),
    ],
)
def test_sgd_step_is_the_documented_rule(changes, expected_v, expected_w):
    theta = torch.zeros(2, dtype=torch.float64)
    g = torch.tensor([3.0, 4.0], dtype=torch.float64)
    v, w = sgd_step(theta, g, lr=1.0, config=_config(**changes))
    torch.testing.assert_close(v.tolist(), expected_v, atol=1e-15, rtol=0)
    torch.testing.assert_close(w.tolist(), expected_w, atol=1e-15, rtol=0)


def test_sgd_step_under_vmap_equals_one_model_at_a_time():
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(5, 7, dtype=torch.float64, generator=gen)
    grads = torch.randn(5, 7, dtype=torch.float64, generator=gen)
    lrs = torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    config = _config(clip_norm=1.5, projection_radius=2.0)
    batched = torch.func.vmap(lambda t, g, lr: sgd_step(t, g, lr=lr, config=config)[1])(theta, grads, lrs)
    for k in range(5):
        alone = sgd_step(theta[k], grads[k], lr=float(lrs[k]), config=config)[1]
        torch.testing.assert_close(batched[k], alone, atol=1e-15, rtol=0)


def test_both_trainers_step_with_sgd_step(monkeypatch):
    X = torch.randn(10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = (X[:, 0] > 0).long()
    config = SGDConfig(epochs=2, batch_size=4, lr=0.5, clip_norm=1.0)
    calls = {"sgd": 0, "many": 0}

    def counting(name):
        def step(*args, **kwargs):
            calls[name] += 1
            return sgd_step(*args, **kwargs)

        return step

    monkeypatch.setattr(sgd_module, "sgd_step", counting("sgd"))
    monkeypatch.setattr(many_module, "sgd_step", counting("many"))
    result = train_sgd(LogisticRegression(3, 2), X, y, config)
    assert calls["sgd"] == len(result.schedule) == 6
    many_module.train_many_vectorized(
        [LogisticRegression(3, 2)] * 2, X, y, rows=[torch.arange(10), torch.arange(5)], config=config,
        seeds=[0, 1],
    )
    assert calls["many"] == 3 + 3  # one vmapped call per aligned step: 3 steps in each epoch


@settings(max_examples=60, deadline=None, database=None)
@given(
    n=st.integers(1, 40),
    batch_size=st.integers(1, 50),
    epochs=st.integers(1, 4),
    seed=st.integers(0, 2**40),
    decay=st.sampled_from([1.0, 0.9]),
)
def test_epoch_batches_are_the_schedule(n, batch_size, epochs, seed, decay):
    config = SGDConfig(epochs=epochs, batch_size=batch_size, lr=0.3, lr_decay=decay, seed=seed)
    schedule = Schedule.build(n_samples=n, config=config)
    steps = iter(schedule.steps)
    count = 0
    for order, lrs in epoch_batches(n_samples=n, config=config):
        assert sorted(order.tolist()) == list(range(n)) and order.dtype == torch.int64
        for s, lr in enumerate(lrs):
            step = next(steps)
            assert step.ids == tuple(order[s * batch_size : (s + 1) * batch_size].tolist())
            assert step.lr == lr
        count += 1
    assert count == epochs and next(steps, None) is None
