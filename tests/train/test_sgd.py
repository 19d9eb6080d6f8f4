"""Tests of certunlearn.train.sgd and SGDConfig against the loop reference (tests/reference/sgd_loop.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch

# tests/ is on sys.path (see tests/conftest.py): the slow loop reference.
from reference.sgd_loop import ReferenceRun, reference_sgd, sample_gradient, sample_loss
from torch import Tensor

from certunlearn.errors import ConfigError, InputError, SampleIdError
from certunlearn.models import MLP, LogisticRegression
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule
from certunlearn.train.sgd import check_sample_ids, coupled_retrain, train_sgd

ATOL, RTOL = 1e-12, 1e-10
NORMALIZATIONS = ["full_batch", "remaining"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logreg(
    features: int, classes: int, *, seed: int = 5, scale: float = 0.3
) -> LogisticRegression:
    """Softmax regression started away from zero, so that every reference check sees w_0 ≠ 0."""
    model = LogisticRegression(features, classes)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, dtype=torch.float64, generator=_gen(seed)))
    return model


def _assert_params_close(actual: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    """assert_close per parameter, reporting every mismatching parameter at once."""
    assert actual.keys() == expected.keys()
    failures = []
    for key in expected:
        try:
            torch.testing.assert_close(actual[key], expected[key], atol=ATOL, rtol=RTOL)
        except AssertionError as exc:
            failures.append(f"{key}: {exc}")
    assert not failures, "\n".join(failures)


def _assert_params_equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    assert not unequal, f"not bit-identical: {unequal}"


def _run_reference(
    model: LogisticRegression,
    X: Tensor,
    y: Tensor,
    schedule: Schedule,
    cfg: SGDConfig,
    *,
    exclude: Sequence[int] = (),
    normalization: str = "full_batch",
) -> tuple[dict[str, Tensor], ReferenceRun]:
    W0 = model.linear.weight.detach().tolist()
    b0 = model.linear.bias.detach().tolist()
    batches = [list(s.ids) for s in schedule.steps]
    lrs = [cfg.lr * cfg.lr_decay**t for t in range(len(batches))]  # η_t = η_0 γ^t, independently
    targets = y.tolist()
    run = reference_sgd(
        W0,
        b0,
        X.tolist(),
        targets,
        batches,
        lrs,
        loss=cfg.loss,
        weight_decay=cfg.weight_decay,
        clip_norm=cfg.clip_norm,
        projection_radius=cfg.projection_radius,
        exclude=list(exclude),
        normalization=normalization,
    )
    params = {
        "linear.weight": torch.tensor(run.W, dtype=torch.float64),
        "linear.bias": torch.tensor(run.b, dtype=torch.float64),
    }
    return params, run


CONFIGS = {
    "plain": {},
    "weight_decay": {"weight_decay": 0.1},
    "lr_decay": {"lr_decay": 0.9},
    "clipping": {"clip_norm": 0.05},
    "projection": {"projection_radius": 0.4},
    "everything": {
        "weight_decay": 0.05,
        "lr_decay": 0.95,
        "clip_norm": 0.2,
        "projection_radius": 0.6,
    },
}


def _config(name: str, **extra: object) -> SGDConfig:
    base: dict[str, object] = {"epochs": 3, "batch_size": 4, "lr": 0.5, "seed": 1}
    return SGDConfig(**{**base, **CONFIGS[name], **extra})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The reference itself
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_reference_gradient_matches_finite_differences(loss: str) -> None:
    """The hand-written gradient of the reference is checked against central differences."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 2)).tolist()
    b = rng.normal(size=3).tolist()
    x = rng.normal(size=2).tolist()
    y = 1 if loss == "cross_entropy" else 0.7
    dW, db = sample_gradient(W, b, x, y, loss=loss, weight_decay=0.3)
    h = 1e-6

    def f(W_: list[list[float]], b_: list[float]) -> float:
        return sample_loss(W_, b_, x, y, loss=loss, weight_decay=0.3)

    for c in range(3):
        for j in range(2):
            up = [row[:] for row in W]
            down = [row[:] for row in W]
            up[c][j] += h
            down[c][j] -= h
            assert (f(up, b) - f(down, b)) / (2 * h) == pytest.approx(dW[c][j], abs=1e-8)
        up_b, down_b = b[:], b[:]
        up_b[c] += h
        down_b[c] -= h
        assert (f(W, up_b) - f(W, down_b)) / (2 * h) == pytest.approx(db[c], abs=1e-8)


# ---------------------------------------------------------------------------------------------
# train_sgd against the reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_train_sgd_matches_loop_reference(tiny_problem, name: str) -> None:
    X, y, classes = tiny_problem
    model = _logreg(X.shape[1], classes)
    cfg = _config(name)
    result = train_sgd(model, X, y, cfg)
    expected, run = _run_reference(model, X, y, result.schedule, cfg)
    _assert_params_close(result.params, expected)
    torch.testing.assert_close(
        result.theta, torch.tensor(run.flat(), dtype=torch.float64), atol=ATOL, rtol=RTOL
    )
    # The feature under test must actually have been exercised.
    if cfg.clip_norm is not None:
        assert run.clipped_steps > 0
    if cfg.projection_radius is not None:
        assert run.projected_steps > 0


def test_train_sgd_mse_matches_loop_reference(tiny_problem) -> None:
    X, _, _ = tiny_problem
    targets = torch.linspace(-1.0, 1.0, X.shape[0], dtype=torch.float64)
    model = _logreg(X.shape[1], 2)
    cfg = SGDConfig(epochs=2, batch_size=5, lr=0.1, weight_decay=0.01, loss="mse", seed=3)
    result = train_sgd(model, X, targets, cfg)
    expected, _ = _run_reference(model, X, targets, result.schedule, cfg)
    _assert_params_close(result.params, expected)


def test_train_sgd_does_not_modify_the_model(tiny_problem) -> None:
    X, y, classes = tiny_problem
    model = _logreg(X.shape[1], classes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_sgd(model, X, y, _config("everything"))
    _assert_params_equal(model.state_dict(), before)


# ---------------------------------------------------------------------------------------------
# coupled_retrain against the reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("name", ["plain", "weight_decay", "everything"])
def test_coupled_retrain_matches_loop_reference(
    tiny_problem, name: str, normalization: str
) -> None:
    X, y, classes = tiny_problem
    model = _logreg(X.shape[1], classes)
    cfg = _config(name)
    schedule = train_sgd(model, X, y, cfg).schedule
    exclude = [0, 3, 5, 11]
    retrained = coupled_retrain(
        model, X, y, schedule, cfg, exclude=exclude, normalization=normalization
    )
    expected, _ = _run_reference(
        model, X, y, schedule, cfg, exclude=exclude, normalization=normalization
    )
    _assert_params_close(retrained, expected)


def test_normalisations_really_differ(tiny_problem) -> None:
    X, y, classes = tiny_problem
    model = _logreg(X.shape[1], classes)
    cfg = _config("plain")
    schedule = train_sgd(model, X, y, cfg).schedule
    full = coupled_retrain(model, X, y, schedule, cfg, exclude=[0, 3], normalization="full_batch")
    remaining = coupled_retrain(
        model, X, y, schedule, cfg, exclude=[0, 3], normalization="remaining"
    )
    assert float((full["linear.weight"] - remaining["linear.weight"]).abs().max()) > 1e-6


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_fully_excluded_batch_only_projects(tiny_problem, normalization: str) -> None:
    """A step whose whole batch is deleted leaves w unchanged except for the projection.

    w_0 is started outside the projection ball and the first batch is deleted, so the first step of
    the retrain is a pure projection; weight decay must not act on an empty batch.
    """
    X, y, classes = tiny_problem
    model = _logreg(X.shape[1], classes, scale=2.0)
    w0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    cfg = _config("plain", projection_radius=1.0, weight_decay=0.1, clip_norm=0.5)
    assert float(w0.norm()) > 1.0
    schedule = train_sgd(model, X, y, cfg).schedule
    exclude = sorted(schedule.steps[0].ids) + [i for i in schedule.steps[1].ids[:1]]
    retrained = coupled_retrain(
        model, X, y, schedule, cfg, exclude=exclude, normalization=normalization
    )
    expected, run = _run_reference(
        model, X, y, schedule, cfg, exclude=exclude, normalization=normalization
    )
    assert run.empty_steps >= 1  # at least the first step has nothing left
    _assert_params_close(retrained, expected)
    # One-step check against the definition: a pure projection of w_0.
    one_step = Schedule(schedule.n_samples, schedule.steps[:1])
    first = coupled_retrain(
        model, X, y, one_step, cfg, exclude=exclude, normalization=normalization
    )
    flat = torch.cat([first["linear.weight"].reshape(-1), first["linear.bias"]])
    torch.testing.assert_close(flat, w0 / w0.norm(), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("name", ["plain", "lr_decay", "clipping"])
def test_excluding_every_id_leaves_w0(tiny_problem, name: str, normalization: str) -> None:
    X, y, classes = tiny_problem
    model = _logreg(X.shape[1], classes)
    cfg = _config(name)
    schedule = train_sgd(model, X, y, cfg).schedule
    retrained = coupled_retrain(
        model, X, y, schedule, cfg, exclude=list(range(X.shape[0])), normalization=normalization
    )
    _assert_params_equal(retrained, dict(model.state_dict()))


# ---------------------------------------------------------------------------------------------
# Determinism and bit-for-bit reproduction
# ---------------------------------------------------------------------------------------------


def _mlp(features: int, classes: int) -> MLP:
    return MLP(features, classes, hidden=(6,), generator=_gen(2))


@pytest.mark.parametrize("factory", [_logreg, _mlp], ids=["logreg", "mlp"])
def test_same_seed_is_bit_identical(tiny_problem, factory) -> None:
    X, y, classes = tiny_problem
    cfg = _config("everything")
    a = train_sgd(factory(X.shape[1], classes), X, y, cfg)
    b = train_sgd(factory(X.shape[1], classes), X, y, cfg)
    _assert_params_equal(a.params, b.params)
    assert torch.equal(a.theta, b.theta)
    assert a.schedule == b.schedule
    assert a.schedule.to_json() == b.schedule.to_json()


def test_different_seed_differs(tiny_problem) -> None:
    X, y, classes = tiny_problem
    model = _logreg(X.shape[1], classes)
    a = train_sgd(model, X, y, _config("plain", seed=1))
    b = train_sgd(model, X, y, _config("plain", seed=2))
    assert a.schedule != b.schedule
    assert float((a.theta - b.theta).abs().max()) > 1e-8


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("factory", [_logreg, _mlp], ids=["logreg", "mlp"])
@pytest.mark.parametrize("name", ["plain", "everything"])
def test_retrain_without_exclusions_reproduces_training(
    tiny_problem, factory, name: str, normalization: str
) -> None:
    X, y, classes = tiny_problem
    model = factory(X.shape[1], classes)
    cfg = _config(name)
    result = train_sgd(model, X, y, cfg)
    again = coupled_retrain(
        model, X, y, result.schedule, cfg, exclude=[], normalization=normalization
    )
    _assert_params_equal(again, result.params)


def test_retrain_from_a_json_schedule(tiny_problem) -> None:
    X, y, classes = tiny_problem
    model = _logreg(X.shape[1], classes)
    cfg = _config("everything")
    result = train_sgd(model, X, y, cfg)
    restored = Schedule.from_json(result.schedule.to_json())
    _assert_params_equal(coupled_retrain(model, X, y, restored, cfg), result.params)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def test_coupled_retrain_rejects_bad_requests(tiny_problem) -> None:
    X, y, classes = tiny_problem
    model = _logreg(X.shape[1], classes)
    cfg = _config("plain")
    schedule = train_sgd(model, X, y, cfg).schedule
    for bad in ([1, 1], [X.shape[0]], [-1], [1.0]):
        with pytest.raises(SampleIdError):
            coupled_retrain(model, X, y, schedule, cfg, exclude=bad)
    with pytest.raises(ConfigError, match="normalization"):
        coupled_retrain(model, X, y, schedule, cfg, normalization="mean")
    other = Schedule.build(n_samples=X.shape[0] + 1, config=cfg)
    with pytest.raises(InputError, match="schedule"):
        coupled_retrain(model, torch.cat([X, X[:1]]), torch.cat([y, y[:1]]), schedule, cfg)
    with pytest.raises(InputError):
        coupled_retrain(model, X, y, other, cfg)


@pytest.mark.parametrize(
    ("X", "y"),
    [
        (torch.zeros(4, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.int64)),
        (torch.full((4, 3), float("nan"), dtype=torch.float64), torch.zeros(4, dtype=torch.int64)),
        (torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, dtype=torch.int64)),
        (np.zeros((4, 3)), np.zeros(4, dtype=np.int64)),
    ],
    ids=["row_mismatch", "nan", "empty", "numpy"],
)
def test_train_sgd_rejects_bad_data(X: object, y: object) -> None:
    with pytest.raises(InputError):
        train_sgd(LogisticRegression(3, 2), X, y, _config("plain"))  # type: ignore[arg-type]


def test_check_sample_ids() -> None:
    assert check_sample_ids([3, np.int64(1), torch.tensor(0)], 5) == [3, 1, 0]
    assert check_sample_ids([], 5) == []
    for bad, pattern in (
        ([2, 2], "repeated"),
        ([5], "unknown"),
        ([-1], "unknown"),
        ([1.0], "integers"),
        ([np.float64(2.0)], "integers"),
        ([torch.tensor(2.0)], "integers"),
        ([True], "integers"),
        (["1"], "integers"),
    ):
        with pytest.raises(SampleIdError, match=pattern):
            check_sample_ids(bad, 5)


# ---------------------------------------------------------------------------------------------
# SGDConfig
# ---------------------------------------------------------------------------------------------

BAD_FIELDS = [
    ("epochs", 0),
    ("epochs", -1),
    ("epochs", 1.5),
    ("epochs", True),
    ("epochs", "3"),
    ("batch_size", 0),
    ("batch_size", 2.0),
    ("lr", 0.0),
    ("lr", -0.1),
    ("lr", math.nan),
    ("lr", math.inf),
    ("lr", False),
    ("lr_decay", 0.0),
    ("lr_decay", 1.01),
    ("lr_decay", -0.5),
    ("lr_decay", math.nan),
    ("weight_decay", -1e-3),
    ("weight_decay", math.inf),
    ("projection_radius", 0.0),
    ("projection_radius", -1.0),
    ("projection_radius", math.nan),
    ("clip_norm", 0.0),
    ("clip_norm", -2.0),
    ("clip_norm", math.inf),
    ("seed", -1),
    ("seed", 0.5),
    ("loss", "hinge"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_sgd_config_rejects_bad_field(field: str, value: object) -> None:
    base = {"epochs": 2, "batch_size": 4, "lr": 0.1}
    with pytest.raises(ConfigError) as info:
        SGDConfig(**{**base, field: value})  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(field) and repr(value) in message, message


def test_sgd_config_round_trip_and_unknown_keys() -> None:
    cfg = SGDConfig(
        epochs=2,
        batch_size=4,
        lr=0.1,
        lr_decay=0.99,
        weight_decay=1e-3,
        projection_radius=5.0,
        clip_norm=1.0,
        seed=3,
        loss="mse",
    )
    assert SGDConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="momentum"):
        SGDConfig.from_dict({**cfg.to_dict(), "momentum": 0.9})
    assert cfg.lr_at(0) == 0.1
    assert cfg.lr_at(5) == pytest.approx(0.1 * 0.99**5, rel=1e-15)
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]  # frozen
