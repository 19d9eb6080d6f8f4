"""Tests of vectorised shadow-model training (certunlearn.audit.shadows).

Covered: the vectorised path against the sequential loop (which is ``train_sgd`` on each shadow's
rows) in fp64 for several SGD recipes (the trainers themselves: tests/train/test_many.py), the
balanced random-rank membership (exact column counts, hypothesis property), the on-disk cache (a
hit does not train — the trainers are replaced by functions that fail — and any configuration or
data change misses), the vmap fallback, evaluation of all shadows at once against each model
alone, and validation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from certunlearn.audit import shadows as shadows_module
from certunlearn.audit.shadows import (
    ShadowSet,
    ShadowSpec,
    balanced_membership,
    train_shadows,
)
from certunlearn.digest import data_digest, row_digests
from certunlearn.errors import ConfigError, InputError
from certunlearn.models import MLP, MODELS
from certunlearn.train import SGDConfig

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, database=None)




@pytest.fixture
def problem():
    generator = torch.Generator().manual_seed(7)
    X = torch.randn(37, 5, dtype=torch.float64, generator=generator)
    y = torch.randint(0, 3, (37,), generator=generator)
    return X, y


def mlp_spec(**training) -> ShadowSpec:
    recipe = {"epochs": 3, "batch_size": 8, "lr": 0.3, "seed": 11, **training}
    return ShadowSpec(model="mlp", model_kwargs={"hidden": [6]}, training=recipe, n_shadows=6)


def assert_same_state(a: ShadowSet, b: ShadowSet, *, atol: float = 1e-11) -> None:
    assert set(a.state) == set(b.state)
    for key in a.state:
        torch.testing.assert_close(a.state[key], b.state[key], atol=atol, rtol=0, msg=key)


# ---------------------------------------------------------------------------------------------
# ShadowSpec
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model": "nope"}, "unknown model"),
        ({"model": "pkg:"}, "package.module:factory"),
        ({"model": ""}, "registered name"),
        ({"n_shadows": 1}, "n_shadows must be >= 2"),
        ({"n_shadows": 5}, "pkeep \\* n_shadows must be an integer"),
        ({"pkeep": 0.0}, "pkeep must be in \\(0, 1\\)"),
        ({"pkeep": 1 / 16}, "integer in \\[1, 3\\]"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"model_kwargs": {"generator": 1}}, "must not set \\['generator'\\]"),
        ({"model_kwargs": {"hidden": {1, 2}}}, "JSON-serialisable"),
        ({"model_kwargs": {"x": float("nan")}}, "JSON-serialisable"),
        ({"model_kwargs": [("hidden", 3)]}, "must be a mapping"),
        ({"training": {"epochs": 1, "batch_size": 4, "lr": 1.0, "loss": "mse"}}, "cross_entropy"),
        (
            {"training": {"epochs": 1, "batch_size": 4, "lr": 1.0, "momentum": 0.9}},
            "unknown SGDConfig keys",
        ),
        ({"training": "sgd"}, "SGDConfig or a dict"),
    ],
)
def test_spec_rejects_bad_values(changes, message):
    fields = {"model": "mlp", "training": {"epochs": 1, "batch_size": 4, "lr": 1.0}, "n_shadows": 4}
    with pytest.raises(ConfigError, match=message):
        ShadowSpec(**{**fields, **changes})


def test_spec_round_trip_and_frozen():
    spec = ShadowSpec(
        model="mlp",
        model_kwargs={"hidden": (8, 4)},
        training=SGDConfig(epochs=2, batch_size=4, lr=0.1),
        n_shadows=8,
        pkeep=0.25,
    )
    data = spec.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["model_kwargs"] == {"hidden": [8, 4]}
    assert ShadowSpec.from_dict(data).to_dict() == data
    assert spec.n_in_per_example == 2
    with pytest.raises(AttributeError):
        spec.n_shadows = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.model_kwargs["hidden"] = 3  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# Balanced membership
# ---------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    st.sampled_from([(2, 0.5), (4, 0.5), (8, 0.25), (10, 0.3), (16, 0.5), (5, 0.6)]),
    st.integers(1, 60),
    st.integers(0, 2**31),
)
def test_every_example_is_in_exactly_pkeep_n_shadows(shape, n_samples, seed):
    n_shadows, pkeep = shape
    membership = balanced_membership(
        n_shadows=n_shadows, n_samples=n_samples, pkeep=pkeep, seed=seed
    )
    assert membership.shape == (n_shadows, n_samples) and membership.dtype == np.bool_
    assert (membership.sum(axis=0) == round(pkeep * n_shadows)).all()
    again = balanced_membership(n_shadows=n_shadows, n_samples=n_samples, pkeep=pkeep, seed=seed)
    assert (membership == again).all()


def test_membership_depends_on_the_seed_and_is_roughly_half_per_shadow():
    a = balanced_membership(n_shadows=16, n_samples=2000, seed=0)
    b = balanced_membership(n_shadows=16, n_samples=2000, seed=1)
    assert (a != b).any()
    rows = a.sum(axis=1)
    assert np.all(np.abs(rows - 1000) < 5 * np.sqrt(2000 * 0.25))  # binomial-like spread, 5 sigma
    # columns are independent draws: two shadows share an example w.p. (8/16)(7/15)
    overlap = (a[0] & a[1]).sum()
    assert abs(overlap - 2000 * 0.5 * 7 / 15) < 5 * np.sqrt(2000 * 0.25)


def test_trained_set_is_balanced(problem):
    X, y = problem
    shadows = train_shadows(mlp_spec(), X, y)
    assert (shadows.membership.sum(axis=0) == 3).all()
    assert not shadows.membership.flags.writeable


# ---------------------------------------------------------------------------------------------
# Vectorised = sequential (train_sgd per shadow), fp64
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "training",
    [
        {},
        {"batch_size": 5, "lr_decay": 0.97, "weight_decay": 0.01},
        {"clip_norm": 0.05, "projection_radius": 2.0},
        {"batch_size": 64, "epochs": 2},  # one batch per epoch, larger than every shadow's data
    ],
    ids=["plain", "decay-wd-ragged", "clip-project", "full-batch"],
)
def test_vectorized_equals_sequential_loop(problem, training):
    X, y = problem
    spec = mlp_spec(**training)
    fast = train_shadows(spec, X, y)
    slow = train_shadows(spec, X, y, vectorize=False)
    assert fast.vectorized is True and slow.vectorized is False
    assert (fast.membership == slow.membership).all()
    assert_same_state(fast, slow)
    # training moved every shadow away from its own initialisation, differently
    weights = fast.state["net.0.weight"]
    assert not torch.allclose(weights[0], weights[1])


def test_vectorized_logreg_and_chunks_equal_sequential(problem):
    X, y = problem
    spec = ShadowSpec(
        model="logreg",
        training={"epochs": 4, "batch_size": 6, "lr": 0.5, "weight_decay": 0.1, "seed": 3},
        n_shadows=4,
    )
    slow = train_shadows(spec, X, y, vectorize=False)
    assert_same_state(train_shadows(spec, X, y, chunk_size=3), slow)


def test_shadow_k_is_train_sgd_on_its_own_rows(problem):
    """The sequential path is train_sgd: rebuild shadow 2 by hand from its init and IN rows."""
    X, y = problem
    spec = mlp_spec()
    shadows = train_shadows(spec, X, y)
    k = 2
    init = MLP(
        5,
        3,
        hidden=(6,),
        generator=torch.Generator().manual_seed(
            shadows_module._derived_seed(spec.training.seed, shadows_module._PURPOSE_INIT, k)
        ),
    )
    config = shadows_module._shadow_config(spec, k)
    rows = torch.as_tensor(np.flatnonzero(shadows.membership[k]))
    from certunlearn.train import train_sgd

    expected = train_sgd(init, X[rows], y[rows], config).params
    for key, value in expected.items():
        torch.testing.assert_close(shadows.state[key][k], value, atol=1e-11, rtol=0)


def test_seed_changes_everything_and_nothing_global_is_touched(problem):
    X, y = problem
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()  # noqa: NPY002 - checking the legacy global is untouched
    a = train_shadows(mlp_spec(seed=1), X, y)
    b = train_shadows(mlp_spec(seed=2), X, y)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])  # noqa: NPY002
    assert (a.membership != b.membership).any()
    assert not torch.allclose(a.state["net.0.weight"], b.state["net.0.weight"])
    assert_same_state(a, train_shadows(mlp_spec(seed=1), X, y), atol=0.0)


class _ItemMLP(nn.Module):
    """An MLP whose forward calls ``.item()`` on the data: fine in a loop, impossible under vmap."""

    def __init__(self, in_features, num_classes, *, generator=None, dtype=torch.float64):
        super().__init__()
        self.inner = MLP(in_features, num_classes, hidden=(4,), generator=generator, dtype=dtype)

    def forward(self, x):
        scale = 1.0 if x.abs().max().item() >= 0 else 2.0
        return self.inner(x) * scale


def test_model_that_does_not_vectorise_falls_back_to_the_loop(problem, monkeypatch):
    monkeypatch.setitem(MODELS, "item-mlp", _ItemMLP)
    X, y = problem
    spec = ShadowSpec(
        model="item-mlp", training={"epochs": 2, "batch_size": 8, "lr": 0.3}, n_shadows=4
    )
    with pytest.warns(RuntimeWarning, match="does not vectorise"):
        fallback = train_shadows(spec, X, y)
    assert fallback.vectorized is False
    assert_same_state(fallback, train_shadows(spec, X, y, vectorize=False), atol=0.0)


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def _forbid_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(shadows_module, "_train_vectorized", fail)
    monkeypatch.setattr(shadows_module, "_train_sequential", fail)


def test_cache_hit_reuses_and_any_change_misses(problem, tmp_path, monkeypatch):
    X, y = problem
    spec = mlp_spec()
    first = train_shadows(spec, X, y, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("shadows-*.pt"))
    assert [f.name for f in files] == [f"shadows-{first.key}.pt"] and not first.from_cache
    mtime = files[0].stat().st_mtime_ns
    assert torch.load(files[0], weights_only=True)["key"] == first.key  # safe loader

    with monkeypatch.context() as patch:
        _forbid_training(patch)
        seen = []
        again = train_shadows(spec, X, y, cache_dir=tmp_path, progress=lambda *a: seen.append(a))
        assert again.from_cache and again.vectorized is None and again.key == first.key
        assert (again.membership == first.membership).all()
        assert_same_state(again, first, atol=0.0)
        # same values in float32 and from numpy hit the same entry: the data digest is canonical
        assert train_shadows(spec, X.numpy(), y.numpy(), cache_dir=tmp_path).from_cache
        assert seen == [(18, 18, "shadows")]
    assert files[0].stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob(".shadows-*"))  # no temporary files left

    changed_config = train_shadows(mlp_spec(lr=0.31), X, y, cache_dir=tmp_path)
    changed_model = train_shadows(
        ShadowSpec(model="mlp", model_kwargs={"hidden": [7]}, training=spec.training, n_shadows=6),
        X,
        y,
        cache_dir=tmp_path,
    )
    X2 = X.clone()
    X2[0, 0] += 1e-9
    changed_data = train_shadows(spec, X2, y, cache_dir=tmp_path)
    y2 = y.clone()
    y2[0] = (y2[0] + 1) % 3
    changed_labels = train_shadows(spec, X, y2, cache_dir=tmp_path)
    results = (changed_config, changed_model, changed_data, changed_labels)
    assert not any(r.from_cache for r in results)
    assert len({first.key, *(r.key for r in results)}) == 5
    assert len(list(tmp_path.glob("shadows-*.pt"))) == 5


def test_unreadable_or_inconsistent_cache_is_retrained(problem, tmp_path):
    X, y = problem
    spec = mlp_spec(epochs=1)
    first = train_shadows(spec, X, y, cache_dir=tmp_path)
    path = tmp_path / f"shadows-{first.key}.pt"
    path.write_bytes(b"not a torch file")
    with pytest.warns(RuntimeWarning, match="unreadable shadow cache"):
        retrained = train_shadows(spec, X, y, cache_dir=tmp_path)
    assert not retrained.from_cache
    assert train_shadows(spec, X, y, cache_dir=tmp_path).from_cache  # rewritten

    payload = torch.load(path, weights_only=True)
    payload["state"]["net.0.weight"] = payload["state"]["net.0.weight"][:, :2]
    torch.save(payload, path)
    with pytest.warns(RuntimeWarning, match="wrong shape"):
        assert not train_shadows(spec, X, y, cache_dir=tmp_path).from_cache


# ---------------------------------------------------------------------------------------------
# Evaluation, lookup, progress
# ---------------------------------------------------------------------------------------------


def test_logits_evaluate_every_shadow_like_its_own_module(problem):
    X, y = problem
    shadows = train_shadows(mlp_spec(), X, y)
    out = shadows.logits(X)
    assert out.shape == (6, 37, 3) and not out.requires_grad
    for k in range(6):
        with torch.no_grad():
            torch.testing.assert_close(out[k], shadows.model(k)(X), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        shadows.logits(X.numpy(), batch_size=10, chunk_size=4), out, atol=1e-12, rtol=0
    )
    with pytest.raises(ConfigError, match="k must be in"):
        shadows.model(6)


def test_membership_for_matches_rows_by_content(problem):
    X, y = problem
    shadows = train_shadows(mlp_spec(), X, y)
    order = torch.tensor([5, 0, 36])
    assert (
        shadows.membership_for(X[order], y[order]) == shadows.membership[:, order.numpy()]
    ).all()
    unseen = torch.full((1, 5), 99.0, dtype=torch.float64)
    assert not shadows.membership_for(unseen, torch.tensor([0])).any()
    assert shadows.locate(torch.cat([X[[4]], unseen]), torch.tensor([int(y[4]), 0])).tolist() == [
        4,
        -1,
    ]
    # a duplicated row is IN wherever either copy is
    Xd, yd = torch.cat([X, X[:1]]), torch.cat([y, y[:1]])
    dup = train_shadows(mlp_spec(), Xd, yd)
    expected = dup.membership[:, 0] | dup.membership[:, 37]
    assert (dup.membership_for(X[:1], y[:1])[:, 0] == expected).all()


def test_digests():
    X = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, 1.0]])
    d = row_digests(X, [0, 0, 1])
    assert (d[0] == d[1]).all() and not (d[0] == d[2]).all()
    assert data_digest(X, [0, 0, 1]) != data_digest(X, [0, 0, 2])
    assert data_digest(X[:2], [0, 0]) != data_digest(X[:2].reshape(1, 4), [0])


@pytest.mark.parametrize("vectorize", [True, False])
def test_progress_is_reported_in_model_epochs(problem, vectorize):
    X, y = problem
    seen = []
    train_shadows(mlp_spec(), X, y, vectorize=vectorize, progress=lambda *a: seen.append(a))
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and seen[-1] == (18, 18, "shadows")
    assert len(seen) == (3 if vectorize else 6)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def test_inputs_are_validated(problem, monkeypatch):
    X, y = problem
    spec = mlp_spec()
    bad = X.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        train_shadows(spec, bad, y)
    with pytest.raises(InputError, match="integer class labels"):
        train_shadows(spec, X, y.double() + 0.5)
    with pytest.raises(InputError, match="shape \\(37,\\)"):
        train_shadows(spec, X, y[:-1])
    with pytest.raises(InputError, match="shape \\[n, features"):
        train_shadows(spec, X[:, 0], y)
    with pytest.raises(InputError, match=">= 0"):
        train_shadows(spec, X, y - 1)
    with pytest.raises(InputError, match="no training rows"):
        train_shadows(spec, X[:1], y[:1])
    with pytest.raises(ConfigError, match="ShadowSpec"):
        train_shadows(spec.to_dict(), X, y)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="chunk_size"):
        train_shadows(spec, X, y, chunk_size=0)
    monkeypatch.setitem(
        MODELS, "no-generator", lambda in_features, num_classes: nn.Linear(in_features, num_classes)
    )
    with pytest.raises(ConfigError, match="generator= keyword"):
        train_shadows(ShadowSpec(model="no-generator", training=spec.training, n_shadows=2), X, y)
    with pytest.raises(ConfigError, match="cannot build model"):
        train_shadows(
            ShadowSpec(model="mlp", model_kwargs={"width": 3}, training=spec.training, n_shadows=2),
            X,
            y,
        )


def test_module_factory_string(problem):
    X, y = problem
    spec = ShadowSpec(
        model="certunlearn.models:MLP",
        model_kwargs={"hidden": [6]},
        training=mlp_spec().training,
        n_shadows=6,
    )
    assert_same_state(train_shadows(spec, X, y), train_shadows(mlp_spec(), X, y), atol=0.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(problem):
    X, y = problem
    spec = mlp_spec()
    gpu = train_shadows(spec, X.cuda(), y.cuda())
    assert gpu.device.type == "cuda"
    cpu = train_shadows(spec, X, y)
    for key in cpu.state:
        torch.testing.assert_close(gpu.state[key].cpu(), cpu.state[key], atol=1e-9, rtol=0)
    torch.testing.assert_close(gpu.logits(X).cpu(), cpu.logits(X), atol=1e-9, rtol=0)
