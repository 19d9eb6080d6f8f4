"""A small model zoo and bring-your-own models via ``"package.module:factory"`` strings.

All factories take an injected ``generator`` for initialisation (the library never seeds
globally) and a ``dtype``.

Example:
    >>> model = build_model("logreg", in_features=4, num_classes=3)
    >>> sum(p.numel() for p in model.parameters())
    15
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from certunlearn.errors import ConfigError, InputError
from certunlearn.validation import check_choice, check_int, register

__all__ = [
    "MODELS",
    "MLP",
    "DigitsCNN",
    "LogisticRegression",
    "build_model",
    "load_factory",
    "load_state_dict",
    "register_model",
]


def _uniform_(tensor: torch.Tensor, bound: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        tensor.copy_(
            torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) * 2 * bound - bound
        )


def _init_linear(layer: nn.Linear | nn.Conv2d, generator: torch.Generator | None) -> None:
    fan_in = layer.weight[0].numel()
    bound = 1.0 / math.sqrt(fan_in)
    _uniform_(layer.weight, bound, generator)
    if layer.bias is not None:
        _uniform_(layer.bias, bound, generator)


class LogisticRegression(nn.Module):
    """Multinomial logistic (softmax) regression: logits = W x + b, initialised at zero.

    With cross-entropy and weight decay λ > 0 the training loss is λ-strongly convex and smooth,
    which is what the certified bounds for softmax regression assume.

    Example:
        >>> LogisticRegression(3, 2, dtype=torch.float64)(torch.zeros(1, 3, dtype=torch.float64))
        tensor([[0., 0.]], dtype=torch.float64, grad_fn=<AddmmBackward0>)
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        del generator  # zero initialisation: deterministic and convex-friendly
        self.linear = nn.Linear(
            check_int("in_features", in_features, minimum=1),
            check_int("num_classes", num_classes, minimum=2),
            dtype=dtype,
        )
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``[batch, num_classes]``."""
        return self.linear(x)

    def as_chain(self) -> nn.Module:
        """The dense chain this model computes (its forward is exactly ``self.linear``).

        :mod:`certunlearn.autodiff.chain` reads this to take its hand-written fast path; only a class
        that defines ``as_chain`` itself is taken (a subclass with another ``forward`` is not).
        """
        return self.linear


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


class MLP(nn.Module):
    """Fully connected network ``in -> hidden... -> num_classes``.

    Example:
        >>> MLP(13, 3, hidden=(64,), generator=torch.Generator().manual_seed(0)).net[0].out_features
        64
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden: tuple[int, ...] = (64,),
        activation: str = "tanh",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        check_choice("activation", activation, _ACTIVATIONS)
        sizes = [check_int("in_features", in_features, minimum=1)]
        sizes += [check_int("hidden", h, minimum=1) for h in hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b, dtype=dtype), _ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], check_int("num_classes", num_classes, minimum=2), dtype=dtype))
        self.net = nn.Sequential(*layers)
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                _init_linear(layer, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``[batch, num_classes]``."""
        return self.net(x)

    def as_chain(self) -> nn.Module:
        """The dense chain this model computes (its forward is exactly ``self.net``)."""
        return self.net


class DigitsCNN(nn.Module):
    """A small CNN for 8×8 single-channel images given as flat 64-vectors (scikit-learn digits).

    Example:
        >>> DigitsCNN(10, generator=torch.Generator().manual_seed(0))(torch.zeros(2, 64, dtype=torch.float64)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        in_features: int = 64,
        channels: int = 8,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if in_features != 64:
            raise ConfigError(f"DigitsCNN expects 64 features (8x8 images), got {in_features}")
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding=1, dtype=dtype)
        self.act = nn.Tanh()
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(channels * 16, check_int("num_classes", num_classes, minimum=2), dtype=dtype)
        _init_linear(self.conv, generator)
        _init_linear(self.head, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for flat ``[batch, 64]`` inputs."""
        h = self.pool(self.act(self.conv(x.reshape(-1, 1, 8, 8))))
        return self.head(h.flatten(1))


MODELS: dict[str, Callable[..., nn.Module]] = {}
"""Registry of model factories: name -> factory(in_features=, num_classes=, generator=, dtype=, ...)."""


def register_model(name: str, factory: Callable[..., nn.Module], *, force: bool = False) -> None:
    """Register a model factory under ``name``; refuses to overwrite unless ``force``.

    Example:
        >>> register_model("logreg", LogisticRegression)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: model 'logreg' is already registered; pass force=True to replace it
    """
    register("model", MODELS, name, factory, force=force)


register_model("logreg", LogisticRegression)
register_model("mlp", MLP)
register_model("cnn", DigitsCNN)


def load_factory(spec: str) -> Callable[..., nn.Module]:
    """Resolve ``"package.module:factory"`` to a callable that builds an ``nn.Module``.

    Example:
        >>> load_factory("certunlearn.models:MLP") is MLP
        True
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"model factory must look like 'package.module:factory', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for factory {spec!r}: {exc}") from exc
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ConfigError(f"{spec!r} is not callable")
    return factory  # type: ignore[return-value]


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model (``logreg``, ``mlp``, ``cnn``) or a ``"module:factory"`` one.

    Example:
        >>> build_model("mlp", in_features=4, num_classes=2, hidden=(8,)).net[-1].out_features
        2
    """
    factory = MODELS.get(name) if ":" not in name else load_factory(name)
    if factory is None:
        raise ConfigError(f"unknown model {name!r}: use one of {sorted(MODELS)} or 'module:factory'")
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"factory {name!r} returned {type(model).__name__}, not an nn.Module")
    return model


def load_state_dict(model: nn.Module, path: str, *, strict: bool = True) -> nn.Module:
    """Load weights from ``path`` into ``model`` safely (``weights_only=True``).

    Example:
        >>> import tempfile, os
        >>> m = build_model("logreg", in_features=2, num_classes=2)
        >>> f = os.path.join(tempfile.mkdtemp(), "w.pt"); torch.save(m.state_dict(), f)
        >>> load_state_dict(build_model("logreg", in_features=2, num_classes=2), f).linear.weight.shape
        torch.Size([2, 2])
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except Exception as exc:
        raise InputError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state_dict, got {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not fit the model: {exc}") from exc
    return model
