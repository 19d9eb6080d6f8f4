"""The hand-written chain R-operator against torch.func's dense Hessian and vmap(grad) (fp64 CPU).

The references are independent of the code under test: ``torch.func.hessian`` of the objective and
``vmap(grad)`` per-sample gradients of a FunctionalModel built with ``structured=False``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from certunlearn.autodiff.chain import ChainNetwork
from certunlearn.autodiff.functional import FunctionalModel, ParamLayout
from certunlearn.models import MLP, DigitsCNN, LogisticRegression

ACTS = ["tanh", "relu", "gelu", "softplus"]


def _pair(model: nn.Module, loss: str) -> tuple[FunctionalModel, FunctionalModel]:
    fast, slow = FunctionalModel(model, loss=loss), FunctionalModel(model, loss=loss, structured=False)
    assert fast.chain is not None and slow.chain is None
    return fast, slow


def _targets(loss: str, n: int, classes: int, g: torch.Generator) -> torch.Tensor:
    if loss == "cross_entropy":
        return torch.randint(0, classes, (n,), generator=g)
    return torch.randn(n, classes, dtype=torch.float64, generator=g)


def _random_problem(hidden: list[int], activation: str, loss: str, n: int, seed: int):
    """A random 4-input, 3-output chain (logistic regression when ``hidden`` is empty), its fast and
    generic functional models, and n rows of data; the generator goes on to draw the rest."""
    g = torch.Generator().manual_seed(seed)
    model = (LogisticRegression(4, 3) if not hidden
             else MLP(4, 3, hidden=tuple(hidden), activation=activation, generator=g))
    fast, slow = _pair(model, loss)
    X = torch.randn(n, 4, dtype=torch.float64, generator=g)
    return g, fast, slow, X, _targets(loss, n, 3, g)


@settings(max_examples=40, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
    activation=st.sampled_from(ACTS),
    loss=st.sampled_from(["cross_entropy", "mse"]),
    n=st.integers(1, 7),
    k=st.integers(1, 5),
    chunk=st.sampled_from([None, 1, 2, 3]),
    weight_decay=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_batch_hvp_and_gradients_equal_torch_func(hidden, activation, loss, n, k, chunk, weight_decay, seed) -> None:
    g, fast, slow, X, y = _random_problem(hidden, activation, loss, n, seed)
    theta = fast.theta0 + 0.5 * torch.randn(fast.dim, dtype=torch.float64, generator=g)
    V = torch.randn(k, fast.dim, dtype=torch.float64, generator=g)
    H = slow.dense_hessian(theta, X, y, normalizer=n + 1.5, weight_decay=weight_decay)
    got = fast.batch_hvp(theta, X, y, V, normalizer=n + 1.5, weight_decay=weight_decay, chunk_size=chunk)
    torch.testing.assert_close(got, V @ H, atol=1e-11, rtol=1e-9)
    one = fast.hvp_fn(theta, X, y, normalizer=n + 1.5, weight_decay=weight_decay)(V[0])
    torch.testing.assert_close(one, H @ V[0], atol=1e-11, rtol=1e-9)
    torch.testing.assert_close(
        fast.per_sample_grads(theta, X, y, weight_decay=weight_decay),
        slow.per_sample_grads(theta, X, y, weight_decay=weight_decay), atol=1e-12, rtol=1e-10,
    )
    torch.testing.assert_close(fast.outputs(theta, X), slow.outputs(theta, X), atol=1e-13, rtol=1e-12)
    torch.testing.assert_close(
        fast.objective_grad(theta, X, y, normalizer=n + 1.5, weight_decay=weight_decay),
        slow.objective_grad(theta, X, y, normalizer=n + 1.5, weight_decay=weight_decay), atol=1e-12, rtol=1e-10,
    )


def test_relu_hessian_where_no_preactivation_is_zero() -> None:
    """ReLU's second derivative is zero almost everywhere: the Hessian is the Gauss–Newton part plus
    the bilinear W1–W2 cross terms, which the R-backward pass must keep."""
    g = torch.Generator().manual_seed(3)
    fast, slow = _pair(MLP(5, 4, hidden=(8, 6), activation="relu", generator=g), "cross_entropy")
    X, y = torch.randn(9, 5, dtype=torch.float64, generator=g), torch.randint(0, 4, (9,), generator=g)
    H = slow.dense_hessian(fast.theta0, X, y, normalizer=9.0, weight_decay=0.0)
    got = fast.batch_hvp(fast.theta0, X, y, torch.eye(fast.dim, dtype=torch.float64), normalizer=9.0,
                         weight_decay=0.0)
    torch.testing.assert_close(got, H, atol=1e-12, rtol=1e-10)


def test_float32_agrees_with_float64_reference() -> None:
    g = torch.Generator().manual_seed(4)
    model64 = MLP(6, 3, hidden=(16,), activation="tanh", generator=g)
    model32 = MLP(6, 3, hidden=(16,), activation="tanh", dtype=torch.float32)
    model32.load_state_dict({k: v.float() for k, v in model64.state_dict().items()})
    fast32, slow64 = FunctionalModel(model32), FunctionalModel(model64, structured=False)
    X, y = torch.randn(20, 6, dtype=torch.float64, generator=g), torch.randint(0, 3, (20,), generator=g)
    V = torch.randn(7, fast32.dim, dtype=torch.float64, generator=g)
    expected = slow64.batch_hvp(slow64.theta0, X, y, V, normalizer=20.0, weight_decay=0.01)
    got = fast32.batch_hvp(fast32.theta0, X.float(), y, V.float(), normalizer=20.0, weight_decay=0.01)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-4)
    one = fast32.hvp_fn(fast32.theta0, X.float(), y, normalizer=20.0, weight_decay=0.01)(V[3].float())
    assert one.dtype == torch.float32  # the single-tangent path
    torch.testing.assert_close(one.double(), expected[3], atol=1e-5, rtol=1e-4)


def test_sequential_with_and_without_bias_is_recognised() -> None:
    g = torch.Generator().manual_seed(5)
    net = nn.Sequential(nn.Linear(3, 4, bias=False, dtype=torch.float64), nn.Sigmoid(),
                        nn.Sequential(nn.Linear(4, 2, dtype=torch.float64)))
    fast, slow = _pair(net, "cross_entropy")
    assert [layer.activation for layer in fast.chain.layers] == ["sigmoid", None]
    assert fast.chain.layers[0].bias is None
    X, y = torch.randn(5, 3, dtype=torch.float64, generator=g), torch.randint(0, 2, (5,), generator=g)
    V = torch.randn(3, fast.dim, dtype=torch.float64, generator=g)
    H = slow.dense_hessian(fast.theta0, X, y, normalizer=5.0, weight_decay=0.1)
    torch.testing.assert_close(fast.batch_hvp(fast.theta0, X, y, V, normalizer=5.0, weight_decay=0.1), V @ H)


class _Doubled(MLP):
    """Same parameters as an MLP, a different forward: must not be taken for a chain."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


class _Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(3, 2, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) ** 2


def _frozen() -> nn.Module:
    net = MLP(3, 2, hidden=(4,))
    net.net[0].weight.requires_grad_(False)
    return net


@pytest.mark.parametrize(("make", "loss"), [
    (lambda: DigitsCNN(10), "cross_entropy"),
    (lambda: _Doubled(3, 2, hidden=(4,)), "cross_entropy"),
    (_Wrapper, "cross_entropy"),
    (lambda: nn.Sequential(nn.Linear(3, 4, dtype=torch.float64), nn.GELU(approximate="tanh"),
                           nn.Linear(4, 2, dtype=torch.float64)), "cross_entropy"),
    (lambda: nn.Sequential(nn.Linear(3, 4, dtype=torch.float64), nn.Tanh()), "cross_entropy"),
    (lambda: nn.Sequential(nn.Linear(3, 4, dtype=torch.float64), nn.Tanh(), nn.Tanh(),
                           nn.Linear(4, 2, dtype=torch.float64)), "cross_entropy"),
    (lambda: nn.Sequential(nn.Linear(3, 4, dtype=torch.float64), nn.BatchNorm1d(4, dtype=torch.float64),
                           nn.Linear(4, 2, dtype=torch.float64)), "cross_entropy"),
    (_frozen, "cross_entropy"),
])
def test_anything_else_falls_back_to_torch_func(make, loss) -> None:
    module = make()
    assert ChainNetwork.detect(module, ParamLayout.of(module), loss) is None


def test_unsupported_loss_falls_back() -> None:
    from certunlearn.autodiff.functional import LOSSES, register_loss

    register_loss("abs_test_only", lambda out, y: (out[:, 0] - y).abs(), force=True)
    try:
        fm = FunctionalModel(LogisticRegression(3, 2), loss="abs_test_only")
        assert fm.chain is None
    finally:
        LOSSES.pop("abs_test_only")


def test_generic_path_for_a_non_chain_model_equals_dense_hessian() -> None:
    """A CNN is not a chain: batch_hvp, hvp_fn and objective_grad take the torch.func path."""
    g = torch.Generator().manual_seed(6)
    fm = FunctionalModel(DigitsCNN(3, channels=2, generator=g))
    assert fm.chain is None
    X, y = torch.randn(4, 64, dtype=torch.float64, generator=g), torch.randint(0, 3, (4,), generator=g)
    V = torch.randn(3, fm.dim, dtype=torch.float64, generator=g)
    H = torch.func.hessian(lambda t: fm.objective(t, X, y, normalizer=5.0, weight_decay=0.1))(fm.theta0)
    torch.testing.assert_close(fm.batch_hvp(fm.theta0, X, y, V, normalizer=5.0, weight_decay=0.1, chunk_size=2), V @ H)
    torch.testing.assert_close(fm.hvp_fn(fm.theta0, X, y, normalizer=5.0, weight_decay=0.1)(V[2]), H @ V[2])
    # dense_hessian is torch.func.hessian itself here: check it against the vjp path instead
    eye = torch.eye(fm.dim, dtype=torch.float64)
    torch.testing.assert_close(fm.dense_hessian(fm.theta0, X, y, normalizer=5.0, weight_decay=0.1),
                               fm.batch_hvp(fm.theta0, X, y, eye, normalizer=5.0, weight_decay=0.1))


def test_cpu_scratch_space_is_reused_and_can_be_dropped() -> None:
    g = torch.Generator().manual_seed(7)
    fm = FunctionalModel(MLP(5, 3, hidden=(6,), generator=g))
    X, y = torch.randn(8, 5, dtype=torch.float64, generator=g), torch.randint(0, 3, (8,), generator=g)
    V = torch.randn(4, fm.dim, dtype=torch.float64, generator=g)
    first = fm.batch_hvp(fm.theta0, X, y, V, normalizer=8.0, weight_decay=0.1)
    kept = {k: t.data_ptr() for k, t in fm.chain._workspace.items()}
    assert kept
    second = fm.batch_hvp(fm.theta0, X, y, V[:2], normalizer=8.0, weight_decay=0.1)  # smaller: same memory
    assert {k: t.data_ptr() for k, t in fm.chain._workspace.items()} == kept
    torch.testing.assert_close(second, first[:2])  # the result never aliases the scratch space
    fm.chain.clear_workspace()
    assert not fm.chain._workspace
    torch.testing.assert_close(fm.batch_hvp(fm.theta0, X, y, V, normalizer=8.0, weight_decay=0.1), first)


@settings(max_examples=40, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 5), min_size=0, max_size=2),
    activation=st.sampled_from(ACTS),
    loss=st.sampled_from(["cross_entropy", "mse"]),
    n=st.integers(1, 8),
    k=st.integers(1, 4),
    weight_decay=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_row_mask_equals_the_selected_rows(hidden, activation, loss, n, k, weight_decay, seed) -> None:
    """Masked rows (exact zero weights on all of X) give the objective of X[mask]: gradient, the
    one-vector HVP and the block HVP, with the weight decay counted once per kept row."""
    g, fast, slow, X, y = _random_problem(hidden, activation, loss, n, seed)
    mask = torch.rand(n, generator=g) < 0.6
    theta = fast.theta0 + 0.5 * torch.randn(fast.dim, dtype=torch.float64, generator=g)
    V = torch.randn(k, fast.dim, dtype=torch.float64, generator=g)
    norm = 2.5
    H = slow.dense_hessian(theta, X[mask], y[mask], normalizer=norm, weight_decay=weight_decay)
    want_g = slow.objective_grad(theta, X[mask], y[mask], normalizer=norm, weight_decay=weight_decay)
    grad, hvp = fast.grad_and_hvp_fn(theta, X, y, normalizer=norm, weight_decay=weight_decay, row_mask=mask)
    torch.testing.assert_close(grad, want_g, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(hvp(V[0]), H @ V[0], atol=1e-11, rtol=1e-9)
    value = fast.objective(theta, X, y, normalizer=norm, weight_decay=weight_decay, row_mask=mask)
    kept = [i for i in range(n) if bool(mask[i])]  # the objective as written, row by row
    want_v = sum((float(slow.sample_losses(theta, X[i:i + 1], y[i:i + 1])[0])
                  + 0.5 * weight_decay * float(theta.pow(2).sum())) for i in kept) / norm
    assert float(value) == pytest.approx(want_v, rel=1e-12, abs=1e-14)
    if bool(mask.any()):
        grad2, block = fast.chain.grad_and_hvp_operator(theta, X, y, normalizer=norm, weight_decay=weight_decay,
                                                        row_mask=mask)
        torch.testing.assert_close(grad2, want_g, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(block(V), V @ H, atol=1e-11, rtol=1e-9)
    # the generic path selects the rows
    g_slow, hvp_slow = slow.grad_and_hvp_fn(theta, X, y, normalizer=norm, weight_decay=weight_decay, row_mask=mask)
    torch.testing.assert_close(g_slow, want_g, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(hvp_slow(V[0]), H @ V[0], atol=1e-11, rtol=1e-9)


def test_excluded_rows_do_not_change_the_masked_result_at_all() -> None:
    """The rows the mask excludes enter only through exact zeros: any values there, same bits."""
    g = torch.Generator().manual_seed(3)
    fm = FunctionalModel(LogisticRegression(6, 4))
    X, y = torch.randn(40, 6, dtype=torch.float64, generator=g), torch.randint(0, 4, (40,), generator=g)
    mask = torch.ones(40, dtype=torch.bool)
    mask[[3, 17, 29]] = False
    v = torch.randn(fm.dim, dtype=torch.float64, generator=g)
    g1, h1 = fm.grad_and_hvp_fn(fm.theta0, X, y, normalizer=37.0, weight_decay=0.1, row_mask=mask)
    X2, y2 = X.clone(), y.clone()
    X2[~mask] = 1e3 * torch.randn(3, 6, dtype=torch.float64, generator=g)
    y2[~mask] = (y[~mask] + 1) % 4
    g2, h2 = fm.grad_and_hvp_fn(fm.theta0, X2, y2, normalizer=37.0, weight_decay=0.1, row_mask=mask)
    assert torch.equal(g1, g2) and torch.equal(h1(v), h2(v))


def test_transposed_data_is_kept_across_a_small_evaluation_and_refreshed_on_change() -> None:
    g = torch.Generator().manual_seed(5)
    fm = FunctionalModel(LogisticRegression(5, 3))
    X = torch.randn(30, 5, dtype=torch.float64, generator=g)
    chain = fm.chain
    first = chain._input_transposed(X)
    chain._input_transposed(X[:4].clone())  # the deleted rows of a request, say
    assert chain._input_transposed(X) is first  # still cached: two entries
    chain._input_transposed(X[:3].clone())
    chain._input_transposed(X[:2].clone())  # two newer tensors evict it
    assert chain._input_transposed(X) is not first
    X.mul_(2.0)  # an in-place change is seen through the version counter
    again = chain._input_transposed(X)
    torch.testing.assert_close(again, X.T)


def test_large_inputs_take_the_transposed_gradient_product() -> None:
    """From 2²⁰ input elements the shared pass takes the gradient's GEMM on the transposed data: the
    same gradient as the plain product (to rounding), masked or not."""
    from certunlearn.autodiff import chain as chain_module

    g = torch.Generator().manual_seed(11)
    n, p = 20_000, 53
    assert n * p >= chain_module._TRANSPOSED_GEMM_MIN
    fm = FunctionalModel(LogisticRegression(p, 4))
    X, y = torch.randn(n, p, dtype=torch.float64, generator=g), torch.randint(0, 4, (n,), generator=g)
    theta = 0.1 * torch.randn(fm.dim, dtype=torch.float64, generator=g)
    mask = torch.rand(n, generator=g) < 0.9
    plain = fm.objective_grad(theta, X, y, normalizer=float(n), weight_decay=0.01)
    shared, _ = fm.grad_and_hvp_fn(theta, X, y, normalizer=float(n), weight_decay=0.01)
    torch.testing.assert_close(shared, plain, atol=1e-14, rtol=1e-11)
    masked, _ = fm.grad_and_hvp_fn(theta, X, y, normalizer=float(n), weight_decay=0.01, row_mask=mask)
    want = fm.objective_grad(theta, X[mask], y[mask], normalizer=float(n), weight_decay=0.01)
    torch.testing.assert_close(masked, want, atol=1e-14, rtol=1e-11)
