"""Tests of certunlearn.models: factories, injected generators, factory specs, weight loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from certunlearn.errors import ConfigError, InputError
from certunlearn.models import (
    MLP,
    MODELS,
    DigitsCNN,
    LogisticRegression,
    build_model,
    load_factory,
    load_state_dict,
    register_model,
)

FACTORY_KWARGS = {
    "mlp": {"in_features": 5, "num_classes": 3, "hidden": (7, 4)},
    "cnn": {"num_classes": 10, "channels": 2},
    "logreg": {"in_features": 5, "num_classes": 3},
}


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _build(name: str, seed: int, **extra: object) -> nn.Module:
    return build_model(
        name, generator=torch.Generator().manual_seed(seed), **FACTORY_KWARGS[name], **extra
    )


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_factories_are_reproducible_with_the_injected_generator(name: str) -> None:
    with torch.random.fork_rng():
        a = _params(_build(name, seed=11))
        torch.rand(1000)  # move the global generator: it must not matter
        b = _params(_build(name, seed=11))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    c = _params(_build(name, seed=12))
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", ["mlp", "cnn", "logreg"])
def test_factories_honour_dtype(name: str) -> None:
    default = _build(name, seed=0)
    single = _build(name, seed=0, dtype=torch.float32)
    assert all(p.dtype == torch.float64 for p in default.parameters())
    assert all(p.dtype == torch.float32 for p in single.parameters())


def test_mlp_init_is_uniform_within_fan_in_bound() -> None:
    model = MLP(16, 3, hidden=(9,), generator=torch.Generator().manual_seed(0))
    first, last = model.net[0].weight.detach(), model.net[-1].weight.detach()
    assert float(first.abs().max()) <= 1 / 16**0.5
    assert float(last.abs().max()) <= 1 / 9**0.5
    assert float(first.abs().max()) > 0.5 / 16**0.5  # really spread over the interval


def test_logistic_regression_starts_at_zero_and_ignores_the_generator() -> None:
    model = LogisticRegression(4, 3, generator=torch.Generator().manual_seed(3))
    assert all(torch.count_nonzero(p) == 0 for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == 4 * 3 + 3


def test_model_shapes() -> None:
    assert MLP(5, 3, hidden=(7, 4))(torch.zeros(2, 5, dtype=torch.float64)).shape == (2, 3)
    assert DigitsCNN(10, channels=2)(torch.zeros(3, 64, dtype=torch.float64)).shape == (3, 10)


@pytest.mark.parametrize(
    ("factory", "kwargs", "field"),
    [
        (MLP, {"in_features": 0, "num_classes": 3}, "in_features"),
        (MLP, {"in_features": 3, "num_classes": 1}, "num_classes"),
        (MLP, {"in_features": 3, "num_classes": 2, "hidden": (0,)}, "hidden"),
        (MLP, {"in_features": 3, "num_classes": 2, "activation": "sigmoidish"}, "activation"),
        (LogisticRegression, {"in_features": 2.5, "num_classes": 2}, "in_features"),
        (DigitsCNN, {"num_classes": 10, "in_features": 32}, "64"),
    ],
)
def test_factories_reject_bad_arguments(
    factory: type, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        factory(**kwargs)


def test_registry() -> None:
    assert {"logreg", "mlp", "cnn"} <= set(MODELS)
    with pytest.raises(ConfigError, match="'mlp'"):
        register_model("mlp", MLP)
    with pytest.raises(ConfigError, match="'resnet9000'"):
        build_model("resnet9000", in_features=3, num_classes=2)


# ---------------------------------------------------------------------------------------------
# "package.module:factory" specs
# ---------------------------------------------------------------------------------------------


def test_load_factory_resolves_a_spec() -> None:
    assert load_factory("certunlearn.models:MLP") is MLP
    assert load_factory("torch.nn:Linear") is nn.Linear
    model = build_model(
        "certunlearn.models:MLP",
        in_features=3,
        num_classes=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert isinstance(model, MLP)


@pytest.mark.parametrize(
    "spec",
    [
        "certunlearn.models",  # no colon
        ":MLP",  # no module
        "certunlearn.models:",  # no attribute
        "certunlearn.no_such_module_xyz:MLP",  # import fails
        "certunlearn.models:NoSuchFactory",  # attribute missing
        "certunlearn.models:MLP.no_such_attribute",  # nested attribute missing
        "certunlearn.models:__doc__",  # not callable
    ],
)
def test_load_factory_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        load_factory(spec)


def test_build_model_rejects_factory_returning_non_module() -> None:
    with pytest.raises(ConfigError, match="dict"):
        build_model("builtins:dict", in_features=3)


# ---------------------------------------------------------------------------------------------
# load_state_dict
# ---------------------------------------------------------------------------------------------


def test_load_state_dict_round_trip(tmp_path: Path) -> None:
    source = _build("mlp", seed=1)
    path = tmp_path / "w.pt"
    torch.save(source.state_dict(), path)
    target = _build("mlp", seed=2)
    assert not torch.equal(target.net[0].weight, source.net[0].weight)
    returned = load_state_dict(target, str(path))
    assert returned is target
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


@pytest.mark.parametrize("strict", [True, False])
def test_load_state_dict_shape_mismatch(tmp_path: Path, strict: bool) -> None:
    path = tmp_path / "w.pt"
    torch.save(MLP(5, 3, hidden=(8,)).state_dict(), path)
    with pytest.raises(InputError, match="do not fit"):
        load_state_dict(MLP(5, 3, hidden=(7,)), str(path), strict=strict)


def test_load_state_dict_missing_keys(tmp_path: Path) -> None:
    state = _build("mlp", seed=1).state_dict()
    del state["net.0.bias"]
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(InputError, match="net.0.bias"):
        load_state_dict(_build("mlp", seed=2), str(path))
    target = _build("mlp", seed=2)
    bias_before = target.net[0].bias.detach().clone()
    load_state_dict(target, str(path), strict=False)
    assert torch.equal(target.net[0].weight, state["net.0.weight"])
    assert torch.equal(target.net[0].bias, bias_before)


class _Payload:
    pass


@pytest.mark.parametrize("content", ["garbage", "tensor", "pickle"])
def test_load_state_dict_bad_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "w.pt"
    if content == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    else:
        torch.save({"net.0.weight": _Payload()}, path)  # weights_only must refuse to unpickle it
    with pytest.raises(InputError):
        load_state_dict(_build("mlp", seed=0), str(path))


def test_load_state_dict_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_state_dict(_build("mlp", seed=0), str(tmp_path / "absent.pt"))
