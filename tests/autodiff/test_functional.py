"""Tests of certunlearn.autodiff.functional against slow references (fp64 CPU).

References: per-sample ``torch.autograd.grad`` loops on a copy of the module, double-backward HVP
loops, and a hand-written softmax-regression Hessian. Mismatches are aggregated per parameter.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from certunlearn.autodiff.functional import FunctionalModel, ParamLayout
from certunlearn.errors import ConfigError, InputError
from certunlearn.models import MLP, LogisticRegression

ATOL, RTOL = 1e-12, 1e-10


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(n: int = 6, features: int = 4, classes: int = 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = _gen(seed)
    return torch.randn(n, features, dtype=torch.float64, generator=g), torch.randint(
        0, classes, (n,), generator=g
    )


def _models() -> dict[str, nn.Module]:
    return {
        "logreg": LogisticRegression(4, 3),
        "mlp_tanh": MLP(4, 3, hidden=(5,), generator=_gen(1)),
        "mlp_softplus": MLP(4, 3, hidden=(3, 3), activation="softplus", generator=_gen(2)),
    }


def _theta(fm: FunctionalModel, seed: int = 7) -> Tensor:
    """A random point (not θ0: LogisticRegression starts at zero)."""
    return 0.5 * torch.randn(fm.dim, dtype=torch.float64, generator=_gen(seed))


def _module_at(model: nn.Module, theta: Tensor) -> tuple[nn.Module, list[nn.Parameter]]:
    """A copy of ``model`` whose parameters are leaf tensors equal to ``theta`` (layout order)."""
    module = copy.deepcopy(model).eval()
    params = list(module.parameters())
    torch.nn.utils.vector_to_parameters(theta.detach().clone(), params)
    return module, params


def _flat(grads: tuple[Tensor, ...]) -> Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def _assert_close_per_parameter(actual: Tensor, expected: Tensor, layout: ParamLayout) -> None:
    """Compare flat ``[..., d]`` tensors parameter by parameter, reporting every mismatch at once."""
    failures = []
    offset = 0
    for name, numel in zip(layout.names, layout.numels, strict=True):
        a, e = actual[..., offset : offset + numel], expected[..., offset : offset + numel]
        try:
            torch.testing.assert_close(a, e, atol=ATOL, rtol=RTOL)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
        offset += numel
    assert not failures, "\n".join(failures)


def _reference_per_sample_grads(
    model: nn.Module, theta: Tensor, X: Tensor, y: Tensor, wd: float
) -> Tensor:
    module, params = _module_at(model, theta)
    rows = []
    for i in range(X.shape[0]):
        loss = F.cross_entropy(module(X[i : i + 1]), y[i : i + 1])
        loss = loss + 0.5 * wd * sum((p**2).sum() for p in params)
        rows.append(_flat(torch.autograd.grad(loss, params)))
    return torch.stack(rows)


def _reference_objective(
    module: nn.Module,
    params: list[nn.Parameter],
    X: Tensor,
    y: Tensor,
    normalizer: float,
    wd: float,
) -> Tensor:
    data = F.cross_entropy(module(X), y, reduction="sum")
    return (data + X.shape[0] * 0.5 * wd * sum((p**2).sum() for p in params)) / normalizer


def _reference_hvps(
    model: nn.Module, theta: Tensor, X: Tensor, y: Tensor, V: Tensor, normalizer: float, wd: float
) -> Tensor:
    """Double backward, one tangent at a time."""
    module, params = _module_at(model, theta)
    objective = _reference_objective(module, params, X, y, normalizer, wd)
    g = _flat(torch.autograd.grad(objective, params, create_graph=True))
    rows = []
    for v in V:
        rows.append(_flat(torch.autograd.grad(g @ v, params, retain_graph=True)))
    return torch.stack(rows)


def _hand_hessian_softmax_regression(
    theta: Tensor, X: Tensor, y: Tensor, classes: int, normalizer: float, wd: float
) -> Tensor:
    """(1/N) Σ_i J_iᵀ (diag p_i − p_i p_iᵀ) J_i + (|B| λ/N) I, layout [W row-major, b]."""
    del y  # the softmax Hessian does not depend on the label
    n, features = X.shape
    d = classes * features + classes
    W = theta[: classes * features].reshape(classes, features)
    b = theta[classes * features :]
    H = torch.zeros(d, d, dtype=torch.float64)
    for i in range(n):
        p = torch.softmax(W @ X[i] + b, dim=0)
        J = torch.zeros(classes, d, dtype=torch.float64)
        for c in range(classes):
            for f in range(features):
                J[c, c * features + f] = X[i, f]
            J[c, classes * features + c] = 1.0
        H += J.T @ (torch.diag(p) - torch.outer(p, p)) @ J
    return H / normalizer + (n * wd / normalizer) * torch.eye(d, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# Per-sample gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("structured", [True, False], ids=["chain", "torch_func"])
@pytest.mark.parametrize("name", sorted(_models()))
@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_per_sample_grads_equal_autograd_loop(name: str, weight_decay: float, structured: bool) -> None:
    model = _models()[name]
    fm = FunctionalModel(model, structured=structured)
    assert (fm.chain is not None) == structured  # every model here is a chain of dense layers
    X, y = _data()
    theta = _theta(fm)
    expected = _reference_per_sample_grads(model, theta, X, y, weight_decay)
    actual = fm.per_sample_grads(theta, X, y, weight_decay=weight_decay)
    assert actual.shape == (X.shape[0], fm.dim)
    _assert_close_per_parameter(actual, expected, fm.layout)
    chunked = fm.per_sample_grads(theta, X, y, weight_decay=weight_decay, chunk_size=4)
    _assert_close_per_parameter(chunked, expected, fm.layout)


def test_per_sample_grads_of_empty_batch() -> None:
    fm = FunctionalModel(LogisticRegression(4, 3))
    X, y = _data(n=0)
    out = fm.per_sample_grads(fm.theta0, X, y, weight_decay=0.1)
    assert out.shape == (0, fm.dim)


def test_mse_per_sample_grads_by_hand() -> None:
    """ℓ = ½ Σ_c (z_c − y)² for z = W x + b: ∂ℓ/∂W = (z − y) xᵀ, ∂ℓ/∂b = z − y."""
    fm = FunctionalModel(LogisticRegression(4, 2), loss="mse")
    X, _ = _data()
    y = torch.linspace(-1, 1, X.shape[0], dtype=torch.float64)
    theta = _theta(fm)
    W, b = theta[:8].reshape(2, 4), theta[8:]
    expected = []
    for i in range(X.shape[0]):
        r = W @ X[i] + b - y[i]
        expected.append(torch.cat([torch.outer(r, X[i]).reshape(-1), r]) + 0.2 * theta)
    _assert_close_per_parameter(
        fm.per_sample_grads(theta, X, y, weight_decay=0.2), torch.stack(expected), fm.layout
    )


# ---------------------------------------------------------------------------------------------
# Objective
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_models()))
def test_objective_and_its_weight_decay_term(name: str) -> None:
    model = _models()[name]
    fm = FunctionalModel(model)
    X, y = _data(n=5)
    theta = _theta(fm)
    normalizer, wd = 8.0, 0.25
    module, params = _module_at(model, theta)
    data_term = F.cross_entropy(module(X), y, reduction="sum").detach()
    plain = fm.objective(theta, X, y, normalizer=normalizer, weight_decay=0.0)
    regularised = fm.objective(theta, X, y, normalizer=normalizer, weight_decay=wd)
    torch.testing.assert_close(plain, data_term / normalizer, atol=ATOL, rtol=RTOL)
    # Each of the |B| = 5 per-sample losses carries (λ/2)‖θ‖², divided by the normaliser.
    expected_reg = 5 * 0.5 * wd * float((theta**2).sum()) / normalizer
    torch.testing.assert_close(
        regularised - plain, torch.tensor(expected_reg, dtype=torch.float64), atol=ATOL, rtol=RTOL
    )


@pytest.mark.parametrize("name", sorted(_models()))
def test_objective_grad_is_normalised_sum_of_per_sample_grads(name: str) -> None:
    model = _models()[name]
    fm = FunctionalModel(model)
    X, y = _data(n=5)
    theta = _theta(fm)
    module, params = _module_at(model, theta)
    expected = _flat(
        torch.autograd.grad(_reference_objective(module, params, X, y, 8.0, 0.3), params)
    )
    actual = fm.objective_grad(theta, X, y, normalizer=8.0, weight_decay=0.3)
    _assert_close_per_parameter(actual, expected, fm.layout)
    summed = fm.per_sample_grads(theta, X, y, weight_decay=0.3).sum(dim=0) / 8.0
    _assert_close_per_parameter(actual, summed, fm.layout)
    empty = fm.objective_grad(theta, X[:0], y[:0], normalizer=8.0, weight_decay=0.3)
    assert torch.equal(empty, torch.zeros_like(theta))


# ---------------------------------------------------------------------------------------------
# Hessian-vector products
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("structured", [True, False], ids=["chain", "torch_func"])
@pytest.mark.parametrize("name", sorted(_models()))
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_batch_hvp_equals_dense_hessian_and_double_backward(name: str, weight_decay: float, structured: bool) -> None:
    model = _models()[name]
    fm = FunctionalModel(model, structured=structured)
    assert (fm.chain is not None) == structured
    X, y = _data(n=5, seed=3)
    theta = _theta(fm, seed=4)
    V = torch.randn(4, fm.dim, dtype=torch.float64, generator=_gen(5))
    normalizer = 6.0
    H = fm.dense_hessian(theta, X, y, normalizer=normalizer, weight_decay=weight_decay)
    assert H.shape == (fm.dim, fm.dim)
    torch.testing.assert_close(H, H.T, atol=ATOL, rtol=RTOL)
    actual = fm.batch_hvp(theta, X, y, V, normalizer=normalizer, weight_decay=weight_decay)
    assert actual.shape == V.shape
    _assert_close_per_parameter(actual, V @ H.T, fm.layout)
    expected = _reference_hvps(model, theta, X, y, V, normalizer, weight_decay)
    _assert_close_per_parameter(actual, expected, fm.layout)
    chunked = fm.batch_hvp(
        theta, X, y, V, normalizer=normalizer, weight_decay=weight_decay, chunk_size=3
    )
    _assert_close_per_parameter(chunked, expected, fm.layout)
    single = fm.hvp_fn(theta, X, y, normalizer=normalizer, weight_decay=weight_decay)(V[1])
    _assert_close_per_parameter(single, expected[1], fm.layout)


@pytest.mark.parametrize("weight_decay", [0.0, 0.2])
def test_dense_hessian_of_softmax_regression_by_hand(weight_decay: float) -> None:
    fm = FunctionalModel(LogisticRegression(4, 3))
    X, y = _data(n=6, seed=8)
    theta = _theta(fm, seed=9)
    expected = _hand_hessian_softmax_regression(theta, X, y, 3, 4.0, weight_decay)
    actual = fm.dense_hessian(theta, X, y, normalizer=4.0, weight_decay=weight_decay)
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL)


def test_batch_hvp_with_no_tangents() -> None:
    fm = FunctionalModel(LogisticRegression(4, 3))
    X, y = _data()
    out = fm.batch_hvp(
        fm.theta0,
        X,
        y,
        torch.zeros(0, fm.dim, dtype=torch.float64),
        normalizer=1.0,
        weight_decay=0.0,
    )
    assert out.shape == (0, fm.dim)


# ---------------------------------------------------------------------------------------------
# The module is never mutated
# ---------------------------------------------------------------------------------------------


class _Net(nn.Module):
    """Dropout and batch norm: the layers whose state or randomness depends on the training flag."""

    def __init__(self) -> None:
        super().__init__()
        g = _gen(0)
        self.fc1 = nn.Linear(4, 6, dtype=torch.float64)
        self.bn = nn.BatchNorm1d(6, dtype=torch.float64)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(6, 3, dtype=torch.float64)
        with torch.no_grad():
            for p in (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias):
                p.copy_(torch.randn(p.shape, dtype=torch.float64, generator=g))
            self.bn.running_mean.copy_(torch.randn(6, dtype=torch.float64, generator=g))
            self.bn.running_var.copy_(torch.rand(6, dtype=torch.float64, generator=g) + 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(torch.tanh(self.bn(self.fc1(x)))))


def test_functional_model_never_mutates_the_module() -> None:
    model = _Net().train()
    state_before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params_before = [(name, id(p), p.requires_grad) for name, p in model.named_parameters()]
    flags_before = [(name, m.training) for name, m in model.named_modules()]

    fm = FunctionalModel(model)
    X, y = _data(n=5)
    theta = fm.theta0 + 0.1
    V = torch.ones(2, fm.dim, dtype=torch.float64)
    fm.outputs(theta, X)
    fm.per_sample_grads(
        theta, X, y, weight_decay=0.1
    )  # vmap randomness="error": dropout must be off
    fm.objective_grad(theta, X, y, normalizer=5.0, weight_decay=0.1)
    fm.batch_hvp(theta, X, y, V, normalizer=5.0, weight_decay=0.1)
    fm.dense_hessian(theta, X, y, normalizer=5.0, weight_decay=0.1)
    fm.state_dict(theta)["fc1.weight"].add_(1.0)
    fm.theta0.add_(1.0)  # theta0 is a copy

    assert [(name, m.training) for name, m in model.named_modules()] == flags_before
    assert [(name, id(p), p.requires_grad) for name, p in model.named_parameters()] == params_before
    assert all(p.grad is None for p in model.parameters())
    state_after = model.state_dict()
    assert state_after.keys() == state_before.keys()
    for key, value in state_before.items():
        assert torch.equal(state_after[key], value), key


def test_functional_model_evaluates_in_eval_mode() -> None:
    model = _Net().train()
    fm = FunctionalModel(model)
    X, _ = _data(n=5)
    out = fm.outputs(fm.theta0, X)
    assert torch.equal(out, fm.outputs(fm.theta0, X))  # no dropout noise
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        torch.testing.assert_close(out, reference(X), atol=ATOL, rtol=RTOL)
    # The internal copy's buffers (batch-norm running statistics) do not move either.
    torch.testing.assert_close(fm.module.bn.running_mean, model.bn.running_mean, atol=0.0, rtol=0.0)


def test_state_dict_round_trip_into_the_module() -> None:
    model = MLP(4, 3, hidden=(5,), generator=_gen(1))
    fm = FunctionalModel(model)
    theta = _theta(fm)
    target = MLP(4, 3, hidden=(5,), generator=_gen(2))
    target.load_state_dict(fm.state_dict(theta))
    assert torch.equal(torch.nn.utils.parameters_to_vector(target.parameters()), theta)
    X, _ = _data()
    with torch.no_grad():
        torch.testing.assert_close(target(X), fm.outputs(theta, X), atol=ATOL, rtol=RTOL)


# ---------------------------------------------------------------------------------------------
# ParamLayout and validation
# ---------------------------------------------------------------------------------------------


def test_param_layout_round_trip_and_errors() -> None:
    model = MLP(4, 3, hidden=(5,), generator=_gen(1))
    layout = ParamLayout.of(model)
    assert layout.dim == 4 * 5 + 5 + 5 * 3 + 3
    params = dict(model.named_parameters())
    flat = layout.flatten(params)
    assert torch.equal(flat, torch.nn.utils.parameters_to_vector(model.parameters()))
    unflat = layout.unflatten(flat)
    assert all(torch.equal(unflat[k], params[k]) for k in layout.names)
    with pytest.raises(InputError):
        layout.unflatten(flat[:-1])
    with pytest.raises(InputError, match="net.2.bias"):
        layout.flatten({k: v for k, v in params.items() if k != "net.2.bias"})


def test_functional_model_validation() -> None:
    with pytest.raises(ConfigError, match="hinge"):
        FunctionalModel(LogisticRegression(2, 2), loss="hinge")
    with pytest.raises(ConfigError, match="no trainable parameters"):
        FunctionalModel(nn.Tanh())
