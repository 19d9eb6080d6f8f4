"""The contract every registered Unlearner honours, checked for each name in UNLEARNERS.

A new method must be added to FACTORIES below; until it is, the registry test and every
parametrised case of the new name fail loudly.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import io
import json
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import single_torch_thread

from certunlearn.certify.assumptions import Bound
from certunlearn.certify.ledger import Ledger, LedgerPolicy
from certunlearn.errors import CertUnlearnError, ConfigError, InputError, SampleIdError
from certunlearn.models import LogisticRegression
from certunlearn.train import SGDConfig, train_sgd
from certunlearn.unlearn import (
    HFOCU,
    UNLEARNERS,
    AbsEigNewton,
    CoupledRetrainOracle,
    CureNewton,
    DampedNewton,
    ExactRetrain,
    FineTune,
    GradientAscent,
    InfluenceJackknife,
    NewtonStep,
    PinvNewton,
    Unlearner,
    UnlearnResult,
)
from certunlearn.unlearn.base import state_header

EPS, DELTA = 1.0, 1e-5
N, P, K = 40, 3, 3



class Problem(NamedTuple):
    X: torch.Tensor
    y: torch.Tensor
    config: SGDConfig
    initial: LogisticRegression  # w_0
    model: LogisticRegression  # trained by SGD on (X, y)
    gap: float  # a public optimality gap ≥ the trained model's measured gradient norm


def make_problem(dtype: torch.dtype = torch.float64) -> Problem:
    g = torch.Generator().manual_seed(7)
    X = torch.randn(N, P, dtype=torch.float64, generator=g)
    X = (X / X.norm(dim=1, keepdim=True).clamp(min=1.0)).to(dtype)  # rows clipped to norm 1
    y = torch.randint(0, K, (N,), generator=g)
    cfg = SGDConfig(epochs=3, batch_size=8, lr=0.5, weight_decay=0.1, seed=3)
    initial = LogisticRegression(P, K, dtype=dtype)
    trained = train_sgd(initial, X, y, cfg)
    model = LogisticRegression(P, K, dtype=dtype)
    model.load_state_dict(trained.params)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double().requires_grad_(True)
    W, b = theta[: K * P].view(K, P), theta[K * P :]
    obj = F.cross_entropy(X.double() @ W.T + b, y) + 0.05 * theta.pow(2).sum()
    (grad,) = torch.autograd.grad(obj, theta)
    return Problem(X, y, cfg, initial, model, 2.0 * float(grad.norm()) + 1e-6)


def _posthoc(cls: type, **extra: Any) -> Callable[[Problem], Unlearner]:
    def make(pb: Problem, **kw: Any) -> Unlearner:
        return cls(pb.model, weight_decay=pb.config.weight_decay, feature_norm_bound=1.0,
                   optimality_gap=pb.gap, **extra, **kw)

    return make


FACTORIES: dict[str, Callable[..., Unlearner]] = {
    "hfocu": lambda pb, **kw: HFOCU(pb.initial, pb.config, feature_norm_bound=1.0, **kw),
    "curenewton": _posthoc(CureNewton, iterations=2),
    "newton": _posthoc(NewtonStep),
    "damped-newton": _posthoc(DampedNewton, damping=1e-2),
    "pinv-newton": _posthoc(PinvNewton),
    "abs-newton": _posthoc(AbsEigNewton),
    "influence": _posthoc(InfluenceJackknife),
    "finetune": _posthoc(FineTune, lr=0.1, batch_size=8),
    "gradient-ascent": _posthoc(GradientAscent, steps=3),
    "retrain": _posthoc(ExactRetrain, max_iter=100),
    "coupled-retrain": lambda pb, **kw: CoupledRetrainOracle(pb.model, initial_model=pb.initial,
                                                             config=pb.config, **kw),
}
"""name -> constructor of an unfitted unlearner (model and options only) on a small softmax-regression
problem; :func:`build` fits it on the problem's data."""

NAMES = sorted(UNLEARNERS)


def make(name: str, pb: Problem, **kw: Any) -> Unlearner:
    """An unfitted unlearner: the model and the options, no data yet."""
    factory = FACTORIES.get(name)
    if factory is None:
        pytest.fail(f"registered unlearner {name!r} has no factory in tests/unlearn/test_contract.py::FACTORIES; "
                    "add one so that the contract is checked for it")
    un = factory(pb, **kw)
    assert isinstance(un, UNLEARNERS[name]) and isinstance(un, Unlearner)
    assert type(un).name == name
    return un


def build(name: str, pb: Problem, **kw: Any) -> Unlearner:
    """A ready-to-forget unlearner: ``make(...).fit(X, y)``."""
    un = make(name, pb, **kw)
    fitted = un.fit(pb.X, pb.y)
    assert fitted is un, "fit must return self"
    return un


def forget(un: Unlearner, ids: Any, seed: int = 0, **kwargs: Any) -> UnlearnResult:
    kwargs.setdefault("epsilon", EPS)
    kwargs.setdefault("delta", DELTA)
    return un.forget(ids, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.fixture(scope="module")
def problem() -> Problem:
    with single_torch_thread():
        return make_problem()


def snapshot(un: Unlearner) -> tuple:
    """What a failed request must leave untouched."""
    deleted = tuple(un.deleted_ids)
    state = getattr(un, "current_", None)
    if state is None:
        state = getattr(un, "sum_a_", None)
    return deleted, None if state is None else state.clone()


def same_snapshot(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and ((a[1] is None and b[1] is None) or torch.equal(a[1], b[1]))


# --------------------------------------------------------------------------- registry
def test_every_registered_method_has_a_factory():
    missing = sorted(set(UNLEARNERS) - set(FACTORIES))
    assert not missing, f"registered unlearners without a contract factory: {missing}"
    stale = sorted(set(FACTORIES) - set(UNLEARNERS))
    assert not stale, f"factories for unregistered names: {stale}"


# --------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("name", NAMES)
def test_result_has_the_state_dict_layout(name, dtype, problem):
    pb = problem if dtype == torch.float64 else make_problem(dtype)
    un = build(name, pb)
    res = forget(un, [4, 1])
    assert isinstance(res, UnlearnResult)
    assert res.method == name
    assert res.request_ids == (4, 1) and res.cumulative_ids == (1, 4)
    reference = pb.model.state_dict()
    for params in (res.params_noiseless, res.params_released):
        assert set(params) == set(reference)
        for key, value in reference.items():
            assert params[key].shape == value.shape, key
            assert params[key].dtype == value.dtype == dtype, key
            assert bool(torch.isfinite(params[key]).all()), key
    # the released parameters load into a fresh model of the same architecture
    fresh = LogisticRegression(P, K, dtype=dtype)
    fresh.load_state_dict(res.params_released)
    assert res.elapsed_s >= 0.0


@pytest.mark.parametrize("name", NAMES)
def test_input_model_and_data_are_not_mutated(name, problem):
    pb = Problem(problem.X.clone(), problem.y.clone(), problem.config, copy.deepcopy(problem.initial),
                 copy.deepcopy(problem.model), problem.gap)
    before = (copy.deepcopy(pb.model.state_dict()), copy.deepcopy(pb.initial.state_dict()),
              pb.X.clone(), pb.y.clone())
    grads = [p.requires_grad for p in pb.model.parameters()]
    training = pb.model.training
    un = build(name, pb)
    first = forget(un, [0, 9])
    forget(un, [3])
    for key, value in before[0].items():
        assert torch.equal(pb.model.state_dict()[key], value), key
    for key, value in before[1].items():
        assert torch.equal(pb.initial.state_dict()[key], value), key
    assert torch.equal(pb.X, before[2]) and torch.equal(pb.y, before[3])
    assert [p.requires_grad for p in pb.model.parameters()] == grads
    assert all(p.grad is None for p in pb.model.parameters())
    assert pb.model.training == training
    # editing an earlier result in place does not change later requests
    for value in first.params_noiseless.values():
        value.add_(1.0)
    third = forget(un, [5])
    replay = build(name, problem)
    forget(replay, [0, 9])
    forget(replay, [3])
    expected = forget(replay, [5])
    for key in expected.params_noiseless:
        assert torch.equal(third.params_noiseless[key], expected.params_noiseless[key]), key
        assert torch.equal(third.params_released[key], expected.params_released[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_results_do_not_alias_the_unlearner_state(name, problem):
    """A caller editing a returned tensor in place must not edit the unlearner's private state."""
    un = build(name, problem)
    res = forget(un, [0, 9])
    before = snapshot(un)
    for params in (res.params_noiseless, res.params_released):
        for value in params.values():
            value.mul_(-3.0).add_(1.0)
    assert same_snapshot(before, snapshot(un))


BAD_IDS = [
    ("unknown", [N]),
    ("negative", [-1]),
    ("repeated", [2, 2]),
    ("repeated-across-types", [2, np.int64(2)]),
    ("bool", [True]),
    ("float", [1.0]),
    ("float-mixed", [3, 2.5]),
    ("string", ["1"]),
    ("none", [None]),
    ("already-forgotten", [6]),
    ("empty", []),
]


@pytest.mark.parametrize("name", NAMES)
def test_invalid_ids_raise_and_change_nothing(name, problem):
    un = build(name, problem)
    forget(un, [6, 8])
    before = snapshot(un)
    for label, ids in BAD_IDS:
        with pytest.raises(SampleIdError):
            forget(un, ids)
        assert same_snapshot(before, snapshot(un)), label
    # the unlearner still works and gives what a fresh one gives
    after = forget(un, [10], seed=5)
    fresh = build(name, problem)
    forget(fresh, [6, 8])
    expected = forget(fresh, [10], seed=5)
    for key in expected.params_released:
        assert torch.equal(after.params_released[key], expected.params_released[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_integer_like_ids_are_accepted(name, problem):
    un = build(name, problem)
    res = forget(un, (np.int64(3), torch.tensor(5), 7))
    assert res.request_ids == (3, 5, 7)
    assert all(type(i) is int for i in res.request_ids)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_bit_identical_releases(name, problem):
    a = forget(build(name, problem), [2, 11, 30], seed=123)
    b = forget(build(name, problem), [2, 11, 30], seed=123)
    c = forget(build(name, problem), [2, 11, 30], seed=124)
    assert a.sigma == b.sigma and a.sensitivity == b.sensitivity
    for key in a.params_released:
        assert torch.equal(a.params_released[key], b.params_released[key]), key
        assert torch.equal(a.params_noiseless[key], b.params_noiseless[key]), key
        assert torch.equal(a.params_noiseless[key], c.params_noiseless[key]), key
    if a.sigma > 0:
        assert any(not torch.equal(a.params_released[k], c.params_released[k]) for k in a.params_released)
    else:
        for key in a.params_released:
            assert torch.equal(a.params_released[key], a.params_noiseless[key]), key


BAD_PRIVACY = [
    ("epsilon-zero", dict(epsilon=0.0)),
    ("epsilon-negative", dict(epsilon=-1.0)),
    ("epsilon-nan", dict(epsilon=float("nan"))),
    ("epsilon-inf", dict(epsilon=float("inf"))),
    ("epsilon-string", dict(epsilon="1")),
    ("delta-zero", dict(delta=0.0)),
    ("delta-one", dict(delta=1.0)),
    ("delta-negative", dict(delta=-1e-5)),
    ("delta-nan", dict(delta=float("nan"))),
    ("epsilon-only", dict(delta=None)),
]


@pytest.mark.parametrize("name", NAMES)
def test_invalid_epsilon_delta_raise_and_change_nothing(name, problem):
    un = build(name, problem)
    forget(un, [1])
    before = snapshot(un)
    for label, kwargs in BAD_PRIVACY:
        with pytest.raises(ConfigError) as info:
            forget(un, [2], **kwargs)
        assert isinstance(info.value, CertUnlearnError), label
        assert same_snapshot(before, snapshot(un)), label


@pytest.mark.parametrize("name", NAMES)
def test_summary_is_strict_json_and_certificates_are_consistent(name, problem):
    un = build(name, problem)
    for ids in ([0, 1], [2]):
        res = forget(un, ids)
        text = json.dumps(res.summary(), allow_nan=False)
        back = json.loads(text)
        assert back["method"] == name
        assert back["request_ids"] == list(ids)
        assert back["certified"] == res.certified
        assert res.certified == (res.status == "certified")
        assert res.status in ("certified", "conditional", "uncertified")
        if res.certified:
            assert res.sensitivity is not None and math.isfinite(res.sensitivity) and res.sensitivity > 0
            assert res.sigma > 0 and math.isfinite(res.sigma)
            assert res.epsilon == EPS and res.delta == DELTA
            assert res.assumptions and not res.reasons
        else:
            assert res.reasons, "an uncertified release must say why"
        if res.sigma == 0.0:
            for key in res.params_released:
                assert torch.equal(res.params_released[key], res.params_noiseless[key]), key


def test_the_certifying_methods_do_certify_here(problem):
    """Guards the contract test itself: the 'certified' branch above is exercised, by both certificates.

    By default (refine) every method's output is only the start of the refinement, so every method
    certifies against the exact retrain; the coupled-retrain oracle gets no public feature bound here,
    so it has no public budget and stays uncertified. With ``certificate="worst-case"`` only the
    methods with an a priori bound certify.
    """
    default = {name: forget(build(name, problem), [0, 1]) for name in NAMES}
    assert {n for n, r in default.items() if r.certified} == set(NAMES) - {"coupled-retrain"}
    assert all(r.reference == "erm" and r.certificate == "refine" for n, r in default.items() if r.certified)
    assert any("no public sensitivity budget" in r for r in default["coupled-retrain"].reasons)
    worst = {name for name in NAMES if forget(build(name, problem, certificate="worst-case"), [0, 1]).certified}
    assert {"hfocu", "newton", "damped-newton", "curenewton"} <= worst
    assert not worst & {"pinv-newton", "abs-newton", "influence", "finetune", "gradient-ascent",
                        "retrain", "coupled-retrain"}


# --------------------------------------------------------------------------- one interface
INTERFACE = ("fit", "forget", "bound", "state_dict", "load_state_dict")


@pytest.mark.parametrize("name", NAMES)
def test_every_method_has_the_base_signatures(name):
    """One interface: the same parameters (names, kinds, defaults) as Unlearner's abstract methods."""
    cls = UNLEARNERS[name]
    for method in INTERFACE:
        mine = inspect.signature(getattr(cls, method)).parameters
        base = inspect.signature(getattr(Unlearner, method)).parameters
        assert [(p.name, p.kind, p.default) for p in mine.values()] == \
            [(p.name, p.kind, p.default) for p in base.values()], (name, method)


@pytest.mark.parametrize("name", NAMES)
def test_an_unfitted_unlearner_refuses_requests(name, problem):
    un = make(name, problem)
    for call in (lambda: forget(un, [0]), lambda: un.bound([0]), un.state_dict, lambda: un.deleted_ids):
        with pytest.raises(ConfigError, match="not fitted"):
            call()


@pytest.mark.parametrize("name", NAMES)
def test_bound_takes_ids_and_is_the_worst_case_release_sensitivity(name, problem):
    """``bound(ids)`` is the a priori Δ for the cumulative set (forgotten so far + ids): a certified
    worst-case release is calibrated to exactly that value. Invalid ids are refused as by ``forget``."""
    un = build(name, problem, certificate="worst-case")
    forget(un, [6])
    before = snapshot(un)
    for ids in ([2, 2], [N], [6], [True]):
        with pytest.raises(SampleIdError):
            un.bound(ids)
    assert un.bound([]) is None or isinstance(un.bound([]), Bound)
    bound = un.bound((np.int64(0), 1))
    assert same_snapshot(before, snapshot(un)), "bound() must not change the unlearner"
    assert bound is None or isinstance(bound, Bound)
    res = forget(un, [0, 1])
    if res.certified:
        assert bound is not None and bound.certified and res.sensitivity == bound.value
    if name in ("hfocu", "newton", "damped-newton", "curenewton"):
        assert bound is not None and bound.certified and res.certified


SHARED_ERRORS = [
    ("repeated", dict(ids=[2, 2]), SampleIdError),
    ("unknown", dict(ids=[N]), SampleIdError),
    ("already-forgotten", dict(ids=[6, 3]), SampleIdError),
    ("empty", dict(ids=[]), SampleIdError),
    ("epsilon-zero", dict(ids=[3], epsilon=0.0), ConfigError),
    ("epsilon-negative", dict(ids=[3], epsilon=-0.5), ConfigError),
    ("delta-zero", dict(ids=[3], delta=0.0), ConfigError),
    ("delta-one", dict(ids=[3], delta=1.0), ConfigError),
    ("delta-above-one", dict(ids=[3], delta=1.5), ConfigError),
    ("epsilon-without-delta", dict(ids=[3], delta=None), ConfigError),
]


@pytest.mark.parametrize("label,call,error", SHARED_ERRORS, ids=[c[0] for c in SHARED_ERRORS])
def test_request_validation_is_shared_by_every_method(problem, label, call, error):
    """Every method refuses a bad request with the same error and the same message: the checks
    live once, in ``Unlearner.check_request``."""
    messages = {}
    for name in NAMES:
        un = build(name, problem)
        forget(un, [6, 8])
        kwargs = dict(call)
        with pytest.raises(error) as info:
            forget(un, kwargs.pop("ids"), **kwargs)
        messages[name] = str(info.value)
        with pytest.raises(error, match=re.escape(messages[name])):
            un.check_request(call["ids"], epsilon=call.get("epsilon", EPS), delta=call.get("delta", DELTA))
    assert len(set(messages.values())) == 1, messages


@pytest.mark.parametrize("name", NAMES)
def test_noiseless_releases_only_where_the_method_allows_them(name, problem):
    un = build(name, problem)
    if type(un).noiseless_releases:
        res = un.forget([3])
        assert res.sigma == 0.0 and not res.certified and res.epsilon is None
    else:
        with pytest.raises(ConfigError, match="give epsilon and delta"):
            un.forget([3])
        assert un.deleted_ids == ()


# --------------------------------------------------------------------------- state round trip
def _through_torch_save(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a.cpu(), b.cpu()), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(a), sorted(b))
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for k, (u, v) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(u, v, f"{where}[{k}]")
    else:
        assert a == b, (where, a, b)


def _events(ledger: Ledger) -> list:
    return [dataclasses.replace(e, timestamp="") for e in ledger.events]


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_gives_the_same_next_release_and_ledger(name, problem):
    """fit → forget one request → state_dict → torch.save / torch.load(weights_only=True) → a fresh
    instance's load_state_dict → the next request with the same seeded generator is bit-identical."""
    policy = LedgerPolicy(epsilon=EPS, delta=DELTA, require_certified=False)
    un = build(name, problem, ledger=Ledger(policy))
    forget(un, [4, 1], seed=1, request_id="first")
    state = un.state_dict()
    assert set(state) >= set(state_header()) and state["method"] == name
    assert state["deleted_ids"] == [4, 1] and state["ledger"] == un.ledger.state_dict()
    fresh = make(name, problem)  # no ledger: the saved one is restored
    assert fresh.load_state_dict(_through_torch_save(state)) is fresh
    assert fresh.deleted_ids == un.deleted_ids == (4, 1) and fresh.n_samples == N
    _assert_same_state(state, fresh.state_dict())
    assert _events(fresh.ledger) == _events(un.ledger)
    a, b = forget(un, [9, 30], seed=2), forget(fresh, [9, 30], seed=2)
    assert (a.sigma, a.sensitivity, a.certified, a.cumulative_ids) == (b.sigma, b.sensitivity, b.certified,
                                                                       b.cumulative_ids)
    for key in a.params_released:
        assert torch.equal(a.params_released[key], b.params_released[key]), key
        assert torch.equal(a.params_noiseless[key], b.params_noiseless[key]), key
    assert len(un.ledger.events) == 2 and _events(fresh.ledger) == _events(un.ledger)
    assert fresh.bound([11]) == un.bound([11]) or (fresh.bound([11]) is None and un.bound([11]) is None)
    with pytest.raises(SampleIdError, match="already forgotten"):
        forget(fresh, [1])


@pytest.mark.parametrize("name", NAMES)
def test_a_state_that_does_not_fit_is_refused_and_changes_nothing(name, problem):
    un = build(name, problem)
    forget(un, [4])
    state = un.state_dict()
    other = next(n for n in NAMES if n != name)
    bad = {
        "another method": {**state, "method": other},
        "another schema": {**state, "schema_version": 99},
        "unknown key": {**state, "surprise": 1},
        "missing key": {k: v for k, v in state.items() if k != "deleted_ids"},
        "repeated deleted ids": {**state, "deleted_ids": [4, 4]},
        "bad ledger": {**state, "ledger": {"mechanism": "ledger", "schema_version": 1, "policy": {}}},
        "not a dict": [state],
    }
    for label, value in bad.items():
        fresh = make(name, problem)
        with pytest.raises(InputError):
            fresh.load_state_dict(value)
        with pytest.raises(ConfigError, match="not fitted"):
            forget(fresh, [5])
        assert label
    with pytest.raises(InputError, match="other options"):
        make(name, problem, noise_sensitivity=0.25).load_state_dict(state)
    with pytest.raises(InputError, match="for method"):
        make(other, problem).load_state_dict(state)
