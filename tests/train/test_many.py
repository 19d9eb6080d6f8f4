"""Tests of the many-models trainer (certunlearn.train.many).

The vectorised path against the sequential one (which is ``train_sgd`` per model, bit for bit) and
against the slow loop reference (tests/reference/sgd_loop.py) in fp64 for several SGD recipes; the
models' own buffers; the vmap failure; progress; validation; evaluation of a stacked state; and the
layering rule (train/ never imports audit/).
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
import torch

# tests/ is on sys.path (see tests/conftest.py): the slow loop reference.
from reference.sgd_loop import reference_sgd
from torch import nn

import certunlearn.train
from certunlearn.errors import ConfigError, InputError
from certunlearn.models import MLP, LogisticRegression
from certunlearn.train.config import SGDConfig
from certunlearn.train.many import (
    NotVectorizableError,
    stacked_outputs,
    train_many_sequential,
    train_many_vectorized,
    unstacked_model,
)
from certunlearn.train.schedule import Schedule
from certunlearn.train.sgd import train_sgd

RECIPES = {
    "plain": {},
    "decay-wd-ragged": {"batch_size": 5, "lr_decay": 0.97, "weight_decay": 0.01},
    "clip-project": {"clip_norm": 0.05, "projection_radius": 2.0},
    "full-batch": {"batch_size": 64, "epochs": 2},
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def data():
    X = torch.randn(41, 4, dtype=torch.float64, generator=_gen(3))
    y = torch.randint(0, 3, (41,), generator=_gen(4))
    # ragged row sets of different sizes, overlapping, in no particular order
    rows = [torch.randperm(41, generator=_gen(10 + k))[: 13 + 4 * k] for k in range(4)]
    return X, y, rows


def _config(**changes) -> SGDConfig:
    return SGDConfig(**{"epochs": 3, "batch_size": 8, "lr": 0.3, "seed": 0, **changes})


def _models(kind: str, n: int = 4) -> list[nn.Module]:
    if kind == "logreg":
        return [LogisticRegression(4, 3, generator=_gen(k)) for k in range(n)]
    return [MLP(4, 3, hidden=(5,), generator=_gen(k)) for k in range(n)]


def _assert_close(a: dict, b: dict, atol: float) -> None:
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
@pytest.mark.parametrize("recipe", list(RECIPES), ids=list(RECIPES))
def test_vectorized_equals_sequential(data, kind, recipe):
    X, y, rows = data
    config, seeds = _config(**RECIPES[recipe]), [7, 8, 9, 10]
    models = _models(kind)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    fast = train_many_vectorized(models, X, y, rows=rows, config=config, seeds=seeds)
    slow = train_many_sequential(models, X, y, rows=rows, config=config, seeds=seeds)
    _assert_close(fast, slow, atol=1e-12)
    assert all(v.shape[0] == 4 for v in fast.values())
    for model, state in zip(models, before, strict=True):  # the initial models are never modified
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_sequential_is_train_sgd_bit_for_bit(data):
    X, y, rows = data
    config = _config(batch_size=5, weight_decay=0.01)
    models = _models("mlp", 3)
    stacked = train_many_sequential(models, X, y, rows=rows[:3], config=config, seeds=[4, 5, 6])
    for k, (model, r) in enumerate(zip(models, rows, strict=False)):
        alone = train_sgd(model, X[r], y[r], replace(config, seed=4 + k)).params
        assert all(torch.equal(stacked[key][k], value) for key, value in alone.items())


@pytest.mark.parametrize("recipe", list(RECIPES), ids=list(RECIPES))
def test_vectorized_matches_the_loop_reference(data, recipe):
    """Model k follows the reference SGD on the batches of the schedule train_sgd would record."""
    X, y, rows = data
    config, seeds = _config(**RECIPES[recipe]), [1, 2, 3, 4]
    models = _models("logreg")
    state = train_many_vectorized(models, X, y, rows=rows, config=config, seeds=seeds)
    for k, (model, r) in enumerate(zip(models, rows, strict=True)):
        schedule = Schedule.build(n_samples=r.numel(), config=replace(config, seed=seeds[k]))
        run = reference_sgd(
            model.linear.weight.tolist(), model.linear.bias.tolist(), X[r].tolist(), y[r].tolist(),
            [list(step.ids) for step in schedule.steps], schedule.lrs.tolist(),
            weight_decay=config.weight_decay, clip_norm=config.clip_norm,
            projection_radius=config.projection_radius,
        )
        torch.testing.assert_close(state["linear.weight"][k].tolist(), run.W, atol=1e-12, rtol=0)
        torch.testing.assert_close(state["linear.bias"][k].tolist(), run.b, atol=1e-12, rtol=0)


def test_chunks_and_float32(data):
    X, y, rows = data
    config, seeds = _config(batch_size=6, weight_decay=0.1), [0, 1, 2, 3]
    models = _models("mlp")
    whole = train_many_vectorized(models, X, y, rows=rows, config=config, seeds=seeds)
    chunked = train_many_vectorized(models, X, y, rows=rows, config=config, seeds=seeds, chunk_size=3)
    _assert_close(chunked, whole, atol=1e-12)
    single = [m.to(torch.float32) for m in _models("mlp")]
    state = train_many_vectorized(single, X, y, rows=rows, config=config, seeds=seeds)
    assert all(v.dtype == torch.float32 for v in state.values())
    _assert_close({k: v.double() for k, v in state.items()}, whole, atol=1e-4)


class _Scaled(nn.Module):
    """A linear model whose logits are multiplied by a buffer of its own (different per model)."""

    def __init__(self, scale: float, seed: int) -> None:
        super().__init__()
        self.inner = LogisticRegression(4, 3, generator=_gen(seed))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))

    def forward(self, x):
        return self.inner(x) * self.scale


def test_each_model_keeps_its_own_buffers(data):
    X, y, rows = data
    models = [_Scaled(0.5 + k, k) for k in range(4)]
    config, seeds = _config(), [3, 4, 5, 6]
    fast = train_many_vectorized(models, X, y, rows=rows, config=config, seeds=seeds)
    assert fast["scale"].tolist() == [0.5, 1.5, 2.5, 3.5]
    _assert_close(fast, train_many_sequential(models, X, y, rows=rows, config=config, seeds=seeds), 1e-12)


class _ItemModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = LogisticRegression(4, 3)

    def forward(self, x):
        return self.inner(x) * (1.0 if x.abs().max().item() >= 0 else 2.0)


def test_a_model_vmap_cannot_run_raises_at_the_first_step(data):
    X, y, rows = data
    seen = []
    with pytest.raises(NotVectorizableError):
        train_many_vectorized([_ItemModel(), _ItemModel()], X, y, rows=rows[:2], config=_config(),
                              seeds=[0, 1], progress=lambda *a: seen.append(a))
    assert seen == []  # nothing was trained
    state = train_many_sequential([_ItemModel(), _ItemModel()], X, y, rows=rows[:2], config=_config(),
                                  seeds=[0, 1])
    assert state["inner.linear.weight"].shape == (2, 3, 4)


@pytest.mark.parametrize("vectorize", [True, False])
def test_progress_in_model_epochs(data, vectorize):
    X, y, rows = data
    seen = []
    train = train_many_vectorized if vectorize else train_many_sequential
    train(_models("logreg"), X, y, rows=rows, config=_config(), seeds=[0, 1, 2, 3],
          progress=lambda *a: seen.append(a), label="shadows")
    expected = [(4 * (e + 1), 12, "shadows") for e in range(3)] if vectorize else [
        (3 * (k + 1), 12, "shadows") for k in range(4)
    ]
    assert seen == expected


def test_inputs_are_validated(data):
    X, y, rows = data
    config = _config()
    models = _models("logreg", 2)
    cases = [
        ({"rows": rows[:1], "seeds": [0, 1]}, InputError, "one row set and one seed per model"),
        ({"rows": rows[:2], "seeds": [0]}, InputError, "one row set and one seed per model"),
        ({"rows": [rows[0], torch.tensor([], dtype=torch.int64)], "seeds": [0, 1]}, InputError,
         "non-empty 1-D"),
        ({"rows": [rows[0], torch.tensor([0.5])], "seeds": [0, 1]}, InputError, "non-empty 1-D"),
        ({"rows": [rows[0], torch.tensor([41])], "seeds": [0, 1]}, InputError, "outside 0..40"),
        ({"rows": rows[:2], "seeds": [0, -1]}, ConfigError, "seeds\\[1\\]"),
    ]
    for train in (train_many_vectorized, train_many_sequential):
        for arguments, error, message in cases:
            with pytest.raises(error, match=message):
                train(models, X, y, config=config, **arguments)
        with pytest.raises(InputError, match="at least one model"):
            train([], X, y, rows=[], config=config, seeds=[])
    with pytest.raises(InputError, match="one architecture"):
        train_many_vectorized([models[0], _models("mlp", 1)[0]], X, y, rows=rows[:2], config=config,
                              seeds=[0, 1])
    with pytest.raises(ConfigError, match="chunk_size"):
        train_many_vectorized(models, X, y, rows=rows[:2], config=config, seeds=[0, 1], chunk_size=0)


def test_stacked_outputs_and_unstacked_model(data):
    X, y, rows = data
    models = _models("mlp")
    state = train_many_vectorized(models, X, y, rows=rows, config=_config(), seeds=[0, 1, 2, 3])
    out = stacked_outputs(models[0], state, X)
    assert out.shape == (4, 41, 3) and not out.requires_grad
    torch.testing.assert_close(stacked_outputs(models[0], state, X, batch_size=7, chunk_size=3), out,
                               atol=1e-12, rtol=0)
    for k in range(4):
        module = unstacked_model(models[0], state, k)
        assert not module.training
        with torch.no_grad():
            torch.testing.assert_close(module(X), out[k], atol=1e-12, rtol=0)


def test_train_never_imports_audit():
    """Layering: audit/ sits above train/, so nothing in certunlearn/train/ may import it."""
    for path in Path(certunlearn.train.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.startswith("certunlearn.audit") for n in names), (path.name, names)
