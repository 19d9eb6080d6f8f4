"""Tests of seeded model building (certunlearn.train.factory)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from certunlearn.errors import ConfigError, InputError
from certunlearn.models import MODELS
from certunlearn.train.factory import (
    build_seeded_model,
    check_model_kwargs,
    check_model_name,
    resolve_model_kwargs,
)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_seeded_build_is_reproducible_and_leaves_global_state_alone():
    kwargs = {"in_features": 4, "num_classes": 3, "hidden": [6]}
    torch_state = torch.random.get_rng_state()
    a = build_seeded_model("mlp", kwargs, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    b = build_seeded_model("certunlearn.models:MLP", kwargs, generator=torch.Generator().manual_seed(3),
                           dtype=torch.float64)
    c = build_seeded_model("mlp", kwargs, generator=torch.Generator().manual_seed(4), dtype=torch.float32)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(torch.equal(p, q) for p, q in zip(_params(a), _params(b), strict=True))
    assert not torch.equal(_params(a)[0], _params(c)[0].double())
    assert not a.training and all(p.dtype == torch.float32 for p in c.parameters())


def test_kwargs_are_filled_from_the_data_only_where_accepted(monkeypatch):
    X, y = torch.zeros(5, 7), torch.tensor([0, 2, 1, 0, 4])
    assert resolve_model_kwargs("logreg", {}, X, y) == {"in_features": 7, "num_classes": 5}
    assert resolve_model_kwargs("logreg", {"num_classes": 9}, X, y)["num_classes"] == 9
    assert "in_features" not in resolve_model_kwargs("logreg", {}, X.reshape(5, 7, 1), y)
    monkeypatch.setitem(MODELS, "fixed", lambda *, generator=None, dtype=None: nn.Linear(7, 2))
    assert resolve_model_kwargs("fixed", {}, X, y) == {}
    with pytest.raises(InputError, match="at least 2 classes"):
        resolve_model_kwargs("logreg", {}, X, torch.zeros(5, dtype=torch.int64))
    monkeypatch.setitem(MODELS, "unseeded", lambda in_features, num_classes: nn.Linear(in_features, 2))
    with pytest.raises(ConfigError, match="generator= keyword"):
        resolve_model_kwargs("unseeded", {}, X, y)


def test_bad_factories_and_arguments_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match="cannot build model 'mlp'"):
        build_seeded_model("mlp", {"width": 3}, generator=torch.Generator(), dtype=torch.float64)
    monkeypatch.setitem(MODELS, "not-a-module", lambda *, generator=None: np.zeros(2))
    with pytest.raises(ConfigError, match="not an nn.Module"):
        build_seeded_model("not-a-module", {}, generator=torch.Generator(), dtype=torch.float64)


@pytest.mark.parametrize(
    "model, message",
    [("nope", "unknown model"), ("pkg:", "package.module:factory"), ("", "registered name"), (3, "registered")],
)
def test_model_names_are_checked(model, message):
    with pytest.raises(ConfigError, match=message):
        check_model_name(model)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ([("hidden", 3)], "must be a mapping"),
        ({1: 2}, "keys must be strings"),
        ({"generator": 1}, "must not set \\['generator'\\]"),
        ({"hidden": {1, 2}}, "JSON-serialisable"),
        ({"x": float("inf")}, "JSON-serialisable"),
    ],
)
def test_model_kwargs_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        check_model_kwargs(kwargs)
    assert check_model_kwargs({"hidden": (4, 2)}) == {"hidden": (4, 2)}
