"""The refine certificate end to end: Refiner/ErmObjective, HF-OCU, the post-hoc unlearners, declared models.

Every distance is measured against argmin F_R computed here, never by the code under test:

* softmax regression: F_R(θ) = mean CE over the remaining rows + (λ/2)‖θ‖², θ = [vec W; b] (weight
  row-major, then bias), written with torch.nn.functional and minimised by a damped Newton iteration
  (torch.autograd Hessians, float64) to ‖∇F_R‖ < 1e-13 (``newton_minimise``);
* ridge regression (the declared-constants model): the closed form (X̃ᵀX̃/|R| + λI)θ = X̃ᵀy/|R|.

Checked: the measured bound of every released candidate is ≥ its true distance (soundness) and
within 5× of it (tightness, where the distance is above the floating-point floor); the paths
(refined / retrained / refused); the preconditioners; the public budget of the default rule
(recomputed from gaussian_sigma), σ = gaussian_sigma(ε, δ, Δ_b), fresh noise per request, request
overrides, dry runs, persistence, the configurations that cannot be refined, and that every post-hoc
method's output is only the start of the refinement (``method_output_distance``).
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from conftest import single_torch_thread
from reference.erm import ce_grad, ce_hessian, ce_objective, newton_minimise, ridge_solution
from torch import Tensor

from certunlearn.certify.assumptions import Assumptions
from certunlearn.certify.gaussian import gaussian_sigma
from certunlearn.certify.ledger import Ledger, LedgerPolicy
from certunlearn.certify.rounding import DeclaredErrorModel
from certunlearn.errors import ConfigError, InputError, PrivacyLeakWarning, RefinementRefused
from certunlearn.models import MLP, LogisticRegression
from certunlearn.train import SGDConfig
from certunlearn.unlearn import (
    HFOCU,
    AbsEigNewton,
    CureNewton,
    DampedNewton,
    ExactRetrain,
    FineTune,
    GradientAscent,
    InfluenceJackknife,
    NewtonStep,
    PinvNewton,
)
from certunlearn.unlearn.certificate import RefineCertifier
from certunlearn.unlearn.refine import ErmObjective, RefineOptions, Refiner

EPS, DELTA = 1.0, 1e-5
TAU = 0.01  # the default risk tolerance
NAMES = ("linear.weight", "linear.bias")
TIGHT = 5.0  # measured bound / true distance, above the floating-point floor


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def flat(state: dict[str, Tensor], names: tuple[str, ...] = NAMES) -> Tensor:
    return torch.cat([state[k].reshape(-1) for k in names]).to(torch.float64)


# =========================================================================== problems
def softmax_problem(seed: int, n: int = 80, p: int = 3, K: int = 3, clip: float = 1.0):
    g = gen(seed)
    X = 0.9 * clip * torch.randn(n, p, dtype=torch.float64, generator=g)
    X = X * (clip / X.norm(dim=1, keepdim=True)).clamp(max=1.0)  # rows clipped to norm `clip`
    W = 3.0 * torch.randn(K, p, dtype=torch.float64, generator=g)
    cdf = torch.softmax(X @ W.T / clip, dim=1).cumsum(dim=1)
    u = torch.rand(n, 1, dtype=torch.float64, generator=g)
    y = (u > cdf).sum(dim=1).clamp(max=K - 1)  # a draw from softmax(Wx) by inverse CDF
    return X, y


def logreg_with(theta: Tensor, p: int, K: int, dtype: torch.dtype = torch.float64) -> LogisticRegression:
    model = LogisticRegression(p, K, dtype=dtype)
    with torch.no_grad():
        model.linear.weight.copy_(theta[: K * p].view(K, p))
        model.linear.bias.copy_(theta[K * p:])
    return model


def mask(n: int, deleted) -> Tensor:
    keep = torch.ones(n, dtype=torch.bool)
    keep[list(deleted)] = False
    return keep


def default_budget(*, dim: int, smoothness: float, epsilon: float = EPS, delta: float = DELTA) -> float:
    """The documented rule, recomputed: √(2τ/(β(1 + dσ₁²))) · (1 − 1e-6), σ₁ = gaussian_sigma(ε, δ, 1)."""
    unit = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=1.0)
    return math.sqrt(2 * TAU / (smoothness * (1 + dim * unit * unit))) * (1 - 1e-6)


_TARGETS: dict[tuple, Tensor] = {}


def target(key: tuple, X: Tensor, y: Tensor, keep: Tensor, lam: float, K: int, start: Tensor | None = None) -> Tensor:
    """argmin F_R (cached per problem and deleted set)."""
    if key not in _TARGETS:
        _TARGETS[key] = newton_minimise(X[keep], y[keep], lam, K, start=start)
    return _TARGETS[key]


def check_sound_and_tight(theta: Tensor, star: Tensor, bound: float, rounding: float | None = None) -> float:
    """true distance ≤ bound; bound ≤ 5 × true distance when the distance is well above the rounding."""
    true = float((theta.to(torch.float64) - star).norm())
    assert true <= bound, (true, bound)
    floor = 1e-11 if rounding is None else 1e3 * rounding
    if true > floor:
        assert bound <= TIGHT * true, (true, bound)
    return true


def check_fresh_noise(res, generator: torch.Generator, dtype: torch.dtype) -> None:
    """released = noiseless + σ·N(0, I) drawn from ``generator`` in the model's dtype, up to the
    rounding of that one addition (half an ulp of the sum per entry)."""
    theta = flat(res.params_noiseless)
    released = flat(res.params_released)
    fresh = res.sigma * torch.randn(theta.shape, generator=generator, dtype=dtype).to(torch.float64)
    ulp = torch.finfo(dtype).eps
    allowed = ulp * (theta.abs() + fresh.abs()) + 1e-300
    excess = float(((released - theta - fresh).abs() - allowed).max())
    assert excess <= 0, f"released - noiseless is not sigma * N(0, I) from this generator (off by {excess:.3g})"
    assert res.sigma > 0


# =========================================================================== (1) Refiner / ErmObjective
@pytest.fixture(scope="module")
def problems():
    """Three softmax-regression problems (λ, clipping norm) with their full-data minimisers."""
    with single_torch_thread():
        out = {}
        for seed, lam, clip in ((0, 0.05, 1.0), (1, 0.01, 2.0), (2, 0.2, 0.5)):
            X, y = softmax_problem(seed, clip=clip)
            out[seed] = (X, y, lam, clip, newton_minimise(X, y, lam, 3))
        return out


DTYPES = [torch.float64, torch.float32]
DELETED = [0, 7, 13, 40, 41]


def build_objective(X, y, lam, dtype, p=3, K=3):
    obj, why = ErmObjective.build(LogisticRegression(p, K, dtype=dtype), X.to(dtype), y, weight_decay=lam)
    assert why is None and obj is not None
    return obj


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objective_is_the_remaining_data_objective(problems, seed, dtype):
    """ErmObjective's F_R, d and Hessian-Lipschitz constant are the ones written here (layout [vec W; b])."""
    X, y, lam, clip, theta_s = problems[seed]
    obj = build_objective(X, y, lam, dtype)
    assert obj.dim == 3 * 4 and obj.strong_convexity == lam
    Xd = X.to(dtype).to(torch.float64)
    keep = mask(X.shape[0], DELETED)
    rows = obj.rows(keep)
    assert rows.count == X.shape[0] - len(DELETED)
    theta = theta_s + 0.3 * torch.randn(theta_s.shape, dtype=torch.float64, generator=gen(seed))
    assert obj.value(theta, rows) == pytest.approx(float(ce_objective(theta, Xd[keep], y[keep], lam, 3)), rel=1e-13)
    # Lemma 13 averaged over the remaining rows: mean (‖x‖² + 1)^{3/2} / √2
    norms2 = Xd[keep].pow(2).sum(dim=1)
    M = float((norms2 + 1).pow(1.5).mean()) / math.sqrt(2)
    assert M <= rows.lipschitz <= M * (1 + 1e-9)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_measured_bound_is_sound_at_arbitrary_points(problems, seed, dtype):
    """Refiner.measure at random points (near and far) bounds the true distance to argmin F_R."""
    X, y, lam, clip, theta_s = problems[seed]
    obj = build_objective(X, y, lam, dtype)
    keep = mask(X.shape[0], DELETED)
    star = target((seed, dtype, "del"), X.to(dtype), y, keep, lam, 3, start=theta_s)
    refiner = Refiner(obj, reference=theta_s, dtype=dtype)
    g = gen(10 + seed)
    kinds = set()
    for scale in (1e-5, 1e-3, 1e-1, 1.0, 30.0):
        for _ in range(3):
            theta = (star + scale * torch.randn(star.shape, dtype=torch.float64, generator=g)).to(dtype)
            m = refiner.measure(theta, keep, budget=1e-6)
            kinds.add(m.bound.kind)
            true = float((theta.to(torch.float64) - star).norm())
            assert true <= m.bound.value, (scale, true, m.bound)
            if m.bound.kind == "newton" and true > 1e-9:
                assert m.bound.value <= TIGHT * true, (scale, true, m.bound)
    assert kinds == {"newton", "gradient"}


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("budget", [1e-3, 1e-5])
def test_refined_candidate_is_certified_against_the_exact_retrain(problems, seed, dtype, budget):
    """From the trained model (a decent start): path 'refined', candidate in the model's dtype,
    true distance ≤ measured bound ≤ budget, bound within 5× of the distance."""
    X, y, lam, clip, theta_s = problems[seed]
    obj = build_objective(X, y, lam, dtype)
    keep = mask(X.shape[0], DELETED)
    star = target((seed, dtype, "del"), X.to(dtype), y, keep, lam, 3, start=theta_s)
    refiner = Refiner(obj, reference=theta_s, dtype=dtype)
    out = refiner.refine(theta_s.to(dtype), keep, budget, fallback_start=theta_s)
    assert out.met and out.path == "refined", out.summary()
    assert out.theta.dtype == dtype and out.theta.shape == (obj.dim,)
    assert out.bound.value <= budget
    assert out.start_bound >= float((theta_s - star).norm())  # the first measurement is sound too
    assert out.steps >= 1 and out.hvps >= 1 and out.passes > out.hvps
    check_sound_and_tight(out.theta, star, out.bound.value, out.rounding)
    assert 0 < out.rounding < 1e-9


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
def test_terrible_start_is_retrained_from_the_fallback(problems, dtype):
    """A start at 1e3·N(0, I) with two steps allowed: the fallback (the trained model) certifies."""
    X, y, lam, clip, theta_s = problems[0]
    obj = build_objective(X, y, lam, dtype)
    keep = mask(X.shape[0], DELETED)
    star = target((0, dtype, "del"), X.to(dtype), y, keep, lam, 3, start=theta_s)
    refiner = Refiner(obj, reference=theta_s, dtype=dtype, options=RefineOptions(max_steps=2))
    start = 1e3 * torch.randn(obj.dim, dtype=torch.float64, generator=gen(5))
    out = refiner.refine(start.to(dtype), keep, 1e-5, fallback_start=theta_s)
    assert out.met and out.path == "retrained", out.summary()
    assert out.start_bound >= float((start - star).norm()) > 100
    check_sound_and_tight(out.theta, star, out.bound.value, out.rounding)
    # without a fallback start the same attempt is refused
    alone = refiner.refine(start.to(dtype), keep, 1e-5)
    assert not alone.met and alone.path == "refused" and alone.bound.value > 1e-5
    assert float((alone.theta.to(torch.float64) - star).norm()) <= alone.bound.value


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
def test_unreachable_budget_is_refused_and_raises(problems, dtype):
    """One step, no fallback, a budget far below reach: Refiner says 'refused'; the certifier and an
    unlearner raise RefinementRefused, and nothing changes (no ledger event, no deleted ids)."""
    X, y, lam, clip, theta_s = problems[0]
    budget = 3e-5 if dtype == torch.float32 else 1e-12  # above the dtype's floor 8 u R
    opts = RefineOptions(max_steps=1, fallback=False)
    obj = build_objective(X, y, lam, dtype)
    keep = mask(X.shape[0], DELETED)
    start = torch.zeros(obj.dim, dtype=dtype)
    out = Refiner(obj, reference=theta_s, dtype=dtype, options=opts).refine(start, keep, budget,
                                                                           fallback_start=theta_s)
    assert not out.met and out.path == "refused" and out.steps == 1 and out.bound.value > budget
    certifier = RefineCertifier(obj, reference=theta_s, dtype=dtype, options=opts)
    with pytest.raises(RefinementRefused, match="nothing was released"):
        certifier.certify(start, DELETED, epsilon=EPS, delta=DELTA, assumptions=None, request_budget=budget,
                          fallback_start=theta_s, unit_roundoff=2.0**-53)
    ledger = Ledger(LedgerPolicy(epsilon=10.0, delta=1e-3))
    far = logreg_with(torch.zeros(obj.dim, dtype=torch.float64), 3, 3, dtype)
    un = GradientAscent(far, weight_decay=lam, feature_norm_bound=clip, refine=opts,
                        sensitivity_budget=budget, ledger=ledger, steps=1, lr=1e-3).fit(X.to(dtype), y)
    with pytest.raises(RefinementRefused):
        un.forget(DELETED, epsilon=EPS, delta=DELTA, generator=gen(0))
    assert un.deleted_ids == () and ledger.events == ()
    # below the floor 8 u R (R = 1.01 G_CE/λ, G_CE = √2·√(X² + 1)) the budget is refused up front
    floor = 8 * (2.0**-24 if dtype == torch.float32 else 2.0**-53) * 1.01 * math.sqrt(2 * (clip**2 + 1)) / lam
    with pytest.raises(ConfigError, match="below"):
        un.forget(DELETED, epsilon=EPS, delta=DELTA, generator=gen(0), sensitivity_budget=0.5 * floor)
    assert un.deleted_ids == () and ledger.events == ()
    # the unlearner is still usable: a reachable request-level budget certifies
    ok = un.forget(DELETED, epsilon=EPS, delta=DELTA, generator=gen(0), sensitivity_budget=10.0)
    assert ok.certified and ok.sensitivity == 10.0 and len(ledger.events) == 1


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
@pytest.mark.parametrize("preconditioner", ["cholesky", "jacobi", "none"])
def test_preconditioners_give_equally_certified_candidates(problems, dtype, preconditioner):
    """Every preconditioner reaches the budget from the trained model with a sound, tight bound."""
    X, y, lam, clip, theta_s = problems[1]
    obj = build_objective(X, y, lam, dtype)
    keep = mask(X.shape[0], DELETED)
    star = target((1, dtype, "del"), X.to(dtype), y, keep, lam, 3, start=theta_s)
    refiner = Refiner(obj, reference=theta_s, dtype=dtype, options=RefineOptions(preconditioner=preconditioner))
    assert refiner.preconditioner_kind == preconditioner
    budget = 1e-5
    out = refiner.refine(theta_s.to(dtype), keep, budget, fallback_start=theta_s)
    assert out.met and out.path == "refined", (preconditioner, out.summary())
    true = check_sound_and_tight(out.theta, star, out.bound.value, out.rounding)
    assert true <= budget


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
def test_polishing_a_loose_certificate_is_sound_and_tighter(problems, dtype):
    """A generous budget met at the start by the loose gradient bound: without polishing the start is
    the candidate (0 steps); with it, one more Newton step gives a smaller, still sound bound."""
    X, y, lam, clip, theta_s = problems[0]
    obj = build_objective(X, y, lam, dtype)
    keep = mask(X.shape[0], DELETED)
    star = target((0, dtype, "del"), X.to(dtype), y, keep, lam, 3, start=theta_s)
    start = (theta_s + 0.5 * torch.randn(theta_s.shape, dtype=torch.float64, generator=gen(8))).to(dtype)
    budget = 100.0
    plain = Refiner(obj, reference=theta_s, dtype=dtype, options=RefineOptions(polish=False)).refine(start, keep, budget)
    assert plain.met and plain.steps == 0 and torch.equal(plain.theta, start)
    assert plain.bound.kind == "gradient" or plain.bound.condition > 0.25
    polished = Refiner(obj, reference=theta_s, dtype=dtype).refine(start, keep, budget)
    assert polished.met and polished.steps == 1 and polished.bound.value < plain.bound.value
    for out in (plain, polished):
        assert float((out.theta.to(torch.float64) - star).norm()) <= out.bound.value


def test_auto_preconditioner_switches_to_jacobi_above_max_dense_dim(problems):
    X, y, lam, clip, theta_s = problems[0]
    obj = build_objective(X, y, lam, torch.float64)
    assert Refiner(obj, reference=theta_s).preconditioner_kind == "cholesky"
    small = Refiner(obj, reference=theta_s, options=RefineOptions(max_dense_dim=obj.dim - 1))
    assert small.preconditioner_kind == "jacobi"


def test_newton_start_is_one_exact_newton_step_on_the_remaining_rows(problems):
    """anchor − ∇²F_R(anchor)⁻¹ ∇F_R(anchor), computed from the stored training gradient and Hessian
    and the deleted rows only (reference: autograd's dense Hessian of the remaining rows)."""
    X, y, lam, clip, theta_s = problems[2]
    obj = build_objective(X, y, lam, torch.float64)
    anchor = theta_s
    keep = mask(X.shape[0], DELETED)
    refiner = Refiner(obj, reference=anchor)
    grad_s = ce_grad(anchor, X, y, lam, 3)
    got = refiner.newton_start(anchor, grad_s, torch.tensor(DELETED), int(keep.sum()))
    want = anchor - torch.linalg.solve(ce_hessian(anchor, X[keep], y[keep], lam, 3),
                                       ce_grad(anchor, X[keep], y[keep], lam, 3))
    # the step is solved to a relative residual of 1e-8 (a start, not a certificate)
    assert float((got - want).norm()) <= 1e-6 * float((want - anchor).norm())


def test_solve_reaches_the_exact_retrain(problems):
    X, y, lam, clip, theta_s = problems[1]
    obj = build_objective(X, y, lam, torch.float64)
    keep = mask(X.shape[0], DELETED)
    star = target((1, torch.float64, "del"), X, y, keep, lam, 3, start=theta_s)
    solved = Refiner(obj, reference=theta_s).solve(theta_s, keep)
    assert float((solved - star).norm()) <= 1e-11
    anchor = Refiner(obj, reference=theta_s).solve(torch.zeros(obj.dim, dtype=torch.float64))
    assert float((anchor - theta_s).norm()) <= 1e-11


def test_build_says_why_the_certificate_does_not_apply():
    X = torch.randn(20, 3, dtype=torch.float64, generator=gen(0))
    y = (X[:, 0] > 0).long()
    obj, why = ErmObjective.build(LogisticRegression(3, 2), X, y, weight_decay=0.0)
    assert obj is None and "weight_decay > 0" in why
    obj, why = ErmObjective.build(MLP(3, 2, hidden=(4,), generator=gen(0)), X, y, weight_decay=0.1)
    assert obj is None and "declare Assumptions" in why
    obj, why = ErmObjective.build(LogisticRegression(3, 2), X, y, weight_decay=0.1, loss="mse")
    assert obj is None and "LogisticRegression with cross-entropy" in why
    partial = Assumptions(gradient_bound=1.0, smoothness=2.0, strong_convexity=0.1, convex=True)
    obj, why = ErmObjective.build(torch.nn.Linear(3, 1, dtype=torch.float64), X, X[:, 0], weight_decay=0.1,
                                  loss="mse", assumptions=partial)
    assert obj is None and "hessian_lipschitz" in why and "error_model" in why


def test_refine_options_validate():
    for bad in (dict(max_steps=0), dict(max_cg=0), dict(preconditioner="ilu"), dict(max_dense_dim=0),
                dict(start="middle")):
        with pytest.raises(ConfigError):
            RefineOptions(**bad)


# =========================================================================== (2) HF-OCU
def hf_problem(seed: int = 3, n: int = 60, p: int = 3, K: int = 3):
    X, y = softmax_problem(seed, n=n, p=p, K=K)
    cfg = SGDConfig(epochs=3, batch_size=8, lr=0.5, weight_decay=0.05, seed=4)
    return X, y, cfg


@pytest.fixture(scope="module")
def hf_fitted():
    """An HF-OCU with the default certificate (refine) on fp64 and fp32 softmax regression."""
    with single_torch_thread():
        X, y, cfg = hf_problem()
        out = {}
        for dtype in DTYPES:
            Xd = X.to(dtype)
            out[dtype] = (Xd, y, cfg, HFOCU(LogisticRegression(3, 3, dtype=dtype), cfg, feature_norm_bound=1.0).fit(Xd, y))
        return out


def hf_target(dtype, X, y, cumulative, lam=0.05):
    keep = mask(X.shape[0], cumulative)
    return target(("hf", dtype, tuple(sorted(cumulative))), X.to(torch.float64), y, keep, lam, 3)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
def test_hfocu_default_certificate_is_refine_with_the_default_budget(hf_fitted, dtype):
    X, y, cfg, fitted = hf_fitted[dtype]
    hf = copy.deepcopy(fitted)
    assert hf.certificate_ == "refine"
    ids = [3, 17, 25, 50]
    res = hf.forget(ids, epsilon=EPS, delta=DELTA, generator=gen(0))
    assert res.certified and res.status == "certified" and res.reasons == ()
    assert res.reference == "erm" and res.certificate == "refine"
    budget = default_budget(dim=12, smoothness=(1.0 + 1.0) / 2 + 0.05)
    assert res.sensitivity == res.sensitivity_budget
    assert res.sensitivity == pytest.approx(budget, rel=1e-12)
    assert res.sigma == gaussian_sigma(epsilon=EPS, delta=DELTA, sensitivity=res.sensitivity_budget)
    assert res.measured_bound <= res.sensitivity_budget
    assert res.extras["refine_measured_bound"] == res.measured_bound and res.extras["refine_met"]
    assert res.extras["refine_path"] in ("refined", "retrained")
    assert res.extras["refine_preconditioner"] == "cholesky"
    theta = flat(res.params_noiseless)
    assert res.params_noiseless["linear.weight"].dtype == dtype
    check_sound_and_tight(theta, hf_target(dtype, X, y, ids), res.measured_bound, res.extras["refine_rounding"])
    # the release is the candidate plus exactly σ·N(0, I) from the request's generator
    check_fresh_noise(res, gen(0), dtype)
    assert res.extras["hfocu_update_distance"] > 0
    if dtype == torch.float64:  # the start: one Newton step from the ERM anchor with the training Hessian
        anchor = newton_minimise(X, y, 0.05, 3)
        keep = mask(X.shape[0], ids)
        start = anchor - torch.linalg.solve(ce_hessian(anchor, X, y, 0.05, 3),
                                            ce_grad(anchor, X[keep], y[keep], 0.05, 3))
        star = hf_target(dtype, X, y, ids)
        assert res.extras["refine_start_bound"] >= float((start - star).norm())
        assert float((hf.anchor_ - anchor).norm()) <= 1e-10


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
def test_hfocu_successive_requests_are_calibrated_to_the_cumulative_set(hf_fitted, dtype):
    """Three requests: each release is certified against argmin F_R without the cumulative set, with
    fresh noise σ·N(0, I) from that request's generator (never stacked on the previous release)."""
    X, y, cfg, fitted = hf_fitted[dtype]
    hf = copy.deepcopy(fitted)
    requests = [[1, 2], [30, 31, 32], [59]]
    cumulative: list[int] = []
    budget = default_budget(dim=12, smoothness=1.05)
    previous = None
    for j, request in enumerate(requests):
        res = hf.forget(request, epsilon=EPS, delta=DELTA, generator=gen(100 + j))
        cumulative += request
        assert res.certified and res.cumulative_ids == tuple(sorted(cumulative))
        assert res.request_ids == tuple(request)
        assert res.sensitivity == pytest.approx(budget, rel=1e-12)
        theta = flat(res.params_noiseless)
        check_sound_and_tight(theta, hf_target(dtype, X, y, cumulative), res.measured_bound,
                              res.extras["refine_rounding"])
        check_fresh_noise(res, gen(100 + j), dtype)
        if previous is not None:
            assert not torch.equal(theta, previous)
        previous = theta
    assert hf.deleted_ids == (1, 2, 30, 31, 32, 59)


def test_hfocu_request_and_unlearner_budgets_override_the_rule(hf_fitted):
    X, y, cfg, _ = hf_fitted[torch.float64]
    hf = HFOCU(LogisticRegression(3, 3), cfg, feature_norm_bound=1.0, sensitivity_budget=2e-3).fit(X, y)
    res = hf.forget([5, 6], epsilon=EPS, delta=DELTA, generator=gen(1), dry_run=True)
    assert res.certified and res.sensitivity == res.sensitivity_budget == 2e-3
    assert res.sigma == gaussian_sigma(epsilon=EPS, delta=DELTA, sensitivity=2e-3)
    res = hf.forget([5, 6], epsilon=EPS, delta=DELTA, generator=gen(1), sensitivity_budget=1e-4)
    assert res.certified and res.sensitivity == res.sensitivity_budget == 1e-4
    assert res.sigma == gaussian_sigma(epsilon=EPS, delta=DELTA, sensitivity=1e-4)
    assert res.measured_bound <= 1e-4
    check_sound_and_tight(flat(res.params_noiseless), hf_target(torch.float64, X, y, [5, 6]), res.measured_bound,
                          res.extras["refine_rounding"])
    # ε changes σ and the default budget, not the candidate's certificate
    res = hf.forget([7], epsilon=4.0, delta=DELTA, generator=gen(2))
    assert res.sensitivity == 2e-3 and res.sigma == gaussian_sigma(epsilon=4.0, delta=DELTA, sensitivity=2e-3)


def test_hfocu_dry_run_changes_nothing(hf_fitted):
    X, y, cfg, fitted = hf_fitted[torch.float64]
    hf = copy.deepcopy(fitted)
    ledger = Ledger(LedgerPolicy(epsilon=10.0, delta=1e-3))
    hf.ledger = ledger
    untouched = copy.deepcopy(fitted)
    dry = hf.forget([8, 9], epsilon=EPS, delta=DELTA, generator=gen(3), dry_run=True)
    assert dry.certified and hf.deleted_ids == () and ledger.events == ()
    assert torch.equal(hf.sum_a_, untouched.sum_a_) and hf.released_noiseless_ is None
    real = hf.forget([8, 9], epsilon=EPS, delta=DELTA, generator=gen(3))
    other = untouched.forget([8, 9], epsilon=EPS, delta=DELTA, generator=gen(3))
    for k in NAMES:
        assert torch.equal(dry.params_released[k], real.params_released[k])
        assert torch.equal(real.params_released[k], other.params_released[k])
    assert len(ledger.events) == 1 and hf.deleted_ids == (8, 9)


def test_hfocu_dry_run_does_not_use_the_prefetched_draw(hf_fitted):
    """prefetch_noise: 'the next (non-dry-run) forget adds σ times this draw', and a draw 'must never
    be used for two releases'. A dry run in between draws from its own generator; the prefetched draw
    goes to the real release only (else the two outputs differ by exactly their noiseless models)."""
    X, y, cfg, fitted = hf_fitted[torch.float64]
    hf = copy.deepcopy(fitted)
    hf.prefetch_noise(gen(7))
    dry = hf.forget([1, 2], epsilon=EPS, delta=DELTA, generator=gen(99), dry_run=True)
    real = hf.forget([3], epsilon=EPS, delta=DELTA, generator=gen(5))
    z = torch.randn(12, generator=gen(7), dtype=torch.float64)
    real_noise = (flat(real.params_released) - flat(real.params_noiseless)) / real.sigma
    torch.testing.assert_close(real_noise, z, rtol=1e-9, atol=1e-9)
    check_fresh_noise(dry, gen(99), torch.float64)


def test_hfocu_refusal_changes_nothing(hf_fitted):
    """RefinementRefused from HF-OCU (one step, no fallback, a budget out of reach): no state change,
    no ledger event, and the next request behaves as if the refused one never happened."""
    X, y, cfg, _ = hf_fitted[torch.float64]
    ledger = Ledger(LedgerPolicy(epsilon=10.0, delta=1e-3))
    opts = RefineOptions(max_steps=1, fallback=False, start="update")
    hf = HFOCU(LogisticRegression(3, 3), cfg, feature_norm_bound=1.0, refine=opts, ledger=ledger).fit(X, y)
    twin = copy.deepcopy(hf)
    with pytest.raises(RefinementRefused, match="nothing was released"):
        hf.forget(list(range(10)), epsilon=EPS, delta=DELTA, generator=gen(0), sensitivity_budget=1e-13)
    assert hf.deleted_ids == () and ledger.events == () and torch.equal(hf.sum_a_, twin.sum_a_)
    a = hf.forget([4], epsilon=EPS, delta=DELTA, generator=gen(1), sensitivity_budget=1.0)
    b = twin.forget([4], epsilon=EPS, delta=DELTA, generator=gen(1), sensitivity_budget=1.0)
    assert a.certified and len(ledger.events) == 1
    for k in NAMES:
        assert torch.equal(a.params_released[k], b.params_released[k])


def test_hfocu_budget_rule_follows_risk_tolerance_and_calibration(hf_fitted):
    """τ and the classical calibration enter the default rule as documented (recomputed here)."""
    X, y, cfg, _ = hf_fitted[torch.float64]
    hf = HFOCU(LogisticRegression(3, 3), cfg, feature_norm_bound=1.0, risk_tolerance=0.04,
               calibration="classical").fit(X, y)
    eps = 0.5
    res = hf.forget([6, 7], epsilon=eps, delta=DELTA, generator=gen(0))
    unit = gaussian_sigma(epsilon=eps, delta=DELTA, sensitivity=1.0, method="classical")
    want = math.sqrt(2 * 0.04 / (1.05 * (1 + 12 * unit * unit))) * (1 - 1e-6)
    assert res.certified and res.sensitivity == pytest.approx(want, rel=1e-12)
    assert res.sigma == gaussian_sigma(epsilon=eps, delta=DELTA, sensitivity=res.sensitivity, method="classical")
    sigma = res.sigma
    assert 0.5 * 1.05 * (res.sensitivity**2 + 12 * sigma * sigma) <= 0.04
    check_sound_and_tight(flat(res.params_noiseless), hf_target(torch.float64, X, y, [6, 7]), res.measured_bound,
                          res.extras["refine_rounding"])


def test_hfocu_update_start_also_certifies(hf_fitted):
    X, y, cfg, _ = hf_fitted[torch.float64]
    hf = HFOCU(LogisticRegression(3, 3), cfg, feature_norm_bound=1.0, refine=RefineOptions(start="update")).fit(X, y)
    ids = [10, 11, 12, 40]
    res = hf.forget(ids, epsilon=EPS, delta=DELTA, generator=gen(4))
    assert res.certified and res.reference == "erm" and res.certificate == "refine"
    theta = flat(res.params_noiseless)
    star = hf_target(torch.float64, X, y, ids)
    check_sound_and_tight(theta, star, res.measured_bound, res.extras["refine_rounding"])
    # the start was the update w̄ = w_T + Σ a_u (the worst-case certificate's noiseless release): the
    # first measured bound bounds its distance, and the reported update distance is ‖θ − w̄‖
    worst = HFOCU(LogisticRegression(3, 3), cfg, feature_norm_bound=1.0, certificate="worst-case").fit(X, y)
    update = flat(worst.forget(ids, epsilon=EPS, delta=DELTA, generator=gen(4)).params_noiseless)
    assert res.extras["refine_start_bound"] >= float((update - star).norm())
    assert res.extras["hfocu_update_distance"] == pytest.approx(float((theta - update).norm()), rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
def test_hfocu_save_load_gives_the_same_release(hf_fitted, dtype, tmp_path):
    X, y, cfg, fitted = hf_fitted[dtype]
    hf = copy.deepcopy(fitted)
    hf.forget([0, 1], epsilon=EPS, delta=DELTA, generator=gen(5))
    hf.save(tmp_path / "state")
    with pytest.raises(InputError, match="refinement"):
        HFOCU.load(tmp_path / "state", LogisticRegression(3, 3, dtype=dtype), X)
    loaded = HFOCU.load(tmp_path / "state", LogisticRegression(3, 3, dtype=dtype), X, y=y)
    assert loaded.certificate_ == "refine" and loaded.deleted_ids == (0, 1)
    a = hf.forget([20, 21], epsilon=EPS, delta=DELTA, generator=gen(6))
    b = loaded.forget([20, 21], epsilon=EPS, delta=DELTA, generator=gen(6))
    assert a.certified and b.certified and a.sensitivity == b.sensitivity and a.sigma == b.sigma
    for k in NAMES:
        assert torch.equal(a.params_released[k], b.params_released[k]), k
        assert torch.equal(a.params_noiseless[k], b.params_noiseless[k]), k


def test_refine_on_an_mlp_is_a_config_error():
    X, y, cfg = hf_problem()
    with pytest.raises(ConfigError, match="certificate='refine' is not available"):
        HFOCU(MLP(3, 3, hidden=(4,), generator=gen(0)), cfg, certificate="refine").fit(X, y)
    with pytest.raises(ConfigError, match="certificate='refine' is not available"):
        NewtonStep(MLP(3, 3, hidden=(4,), generator=gen(0)), weight_decay=0.05, certificate="refine").fit(X, y)
    with pytest.raises(ConfigError, match="weight_decay > 0"):
        NewtonStep(LogisticRegression(3, 3), weight_decay=0.0, certificate="refine").fit(X, y)
    # without asking, an MLP falls back to the worst-case certificate
    assert NewtonStep(MLP(3, 3, hidden=(4,), generator=gen(0)), weight_decay=0.05).fit(X, y).certificate_ == "worst-case"


def test_no_public_budget_is_uncertified_until_a_budget_is_given():
    X, y, cfg = hf_problem()
    with pytest.warns(PrivacyLeakWarning):
        hf = HFOCU(LogisticRegression(3, 3), cfg).fit(X, y)  # no feature_norm_bound
    res = hf.forget([3], epsilon=EPS, delta=DELTA, generator=gen(0))
    assert not res.certified and res.status == "uncertified" and res.sigma == 0.0 and res.sensitivity is None
    assert any("no public sensitivity budget" in r for r in res.reasons), res.reasons
    assert res.measured_bound is None and res.sensitivity_budget is None
    res = hf.forget([4, 5], epsilon=EPS, delta=DELTA, generator=gen(1), sensitivity_budget=1e-3)
    assert res.certified and res.sensitivity == 1e-3 and res.measured_bound <= 1e-3
    check_sound_and_tight(flat(res.params_noiseless), hf_target(torch.float64, X, y, [3, 4, 5]),
                          res.measured_bound, res.extras["refine_rounding"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyLeakWarning)
        hf2 = HFOCU(LogisticRegression(3, 3), cfg, sensitivity_budget=5e-4).fit(X, y)
    res = hf2.forget([3, 4, 5], epsilon=EPS, delta=DELTA, generator=gen(2))
    assert res.certified and res.sensitivity == 5e-4
    # post-hoc: the same rule
    un = NewtonStep(LogisticRegression(3, 3), weight_decay=0.05).fit(X, y)
    res = un.forget([3], epsilon=EPS, delta=DELTA, generator=gen(0))
    assert not res.certified and any("no public sensitivity budget" in r for r in res.reasons)
    res = un.forget([4], epsilon=EPS, delta=DELTA, generator=gen(0), sensitivity_budget=1e-3)
    assert res.certified and res.sensitivity == 1e-3


# =========================================================================== (3) post-hoc methods
POSTHOC = [
    ("newton", NewtonStep, {}),
    ("damped", DampedNewton, {"damping": 0.01}),
    ("cure-exact", CureNewton, {"iterations": 2, "solver": "exact"}),
    ("cure-lanczos", CureNewton, {"iterations": 2, "solver": "lanczos"}),
    ("cure-minibatch", CureNewton, {"iterations": 2, "batch_size": 20}),
    ("finetune", FineTune, {"lr": 0.2, "epochs": 2, "batch_size": 16}),
    ("gradient-ascent", GradientAscent, {"steps": 5, "lr": 0.05}),
    ("influence", InfluenceJackknife, {}),
    ("pinv", PinvNewton, {}),
    ("abs", AbsEigNewton, {}),
    ("retrain", ExactRetrain, {}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32"])
@pytest.mark.parametrize("tag,cls,kwargs", POSTHOC, ids=[c[0] for c in POSTHOC])
def test_posthoc_methods_certify_by_refinement(problems, tag, cls, kwargs, dtype):
    """Each method's output is refined to within the default budget of argmin F_R; the distance it
    reports to its own output equals the one to that output computed without refinement."""
    X, y, lam, clip, theta_s = problems[0]
    Xd = X.to(dtype)
    ids = [2, 9, 30, 31, 77]
    common = dict(weight_decay=lam, feature_norm_bound=clip, **kwargs)
    un = cls(logreg_with(theta_s, 3, 3, dtype), **common).fit(Xd, y)
    assert un.certificate_ == "refine"
    res = un.forget(ids, epsilon=EPS, delta=DELTA, generator=gen(7))
    assert res.certified and res.reference == "erm" and res.certificate == "refine", res.reasons
    budget = default_budget(dim=12, smoothness=(clip * clip + 1) / 2 + lam)
    assert res.sensitivity == res.sensitivity_budget == pytest.approx(budget, rel=1e-12)
    assert res.sigma == gaussian_sigma(epsilon=EPS, delta=DELTA, sensitivity=res.sensitivity)
    assert res.measured_bound <= res.sensitivity
    theta = flat(res.params_noiseless)
    keep = mask(X.shape[0], ids)
    star = target((0, dtype, tuple(ids)), Xd, y, keep, lam, 3, start=theta_s)
    check_sound_and_tight(theta, star, res.measured_bound, res.extras["refine_rounding"])
    # the method alone (worst-case certificate, no noise, the same generator for its minibatches);
    # without the public feature bound, so that CureNewton takes its solver's steps, as under refine
    # (its worst-case certificate replaces them by Cholesky steps)
    alone = cls(logreg_with(theta_s, 3, 3, dtype), certificate="worst-case", weight_decay=lam, **kwargs).fit(Xd, y)
    out = flat(alone.forget(ids, generator=gen(7)).params_noiseless)
    want = float((theta - out).norm())
    assert res.extras["method_output_distance"] == pytest.approx(want, rel=1e-6, abs=1e-12)
    assert res.extras["retained_loss"] == pytest.approx(
        float(ce_objective(theta, Xd.to(torch.float64)[keep], y[keep], lam, 3)), rel=1e-6)


def test_posthoc_second_request_is_calibrated_to_the_union(problems):
    X, y, lam, clip, theta_s = problems[2]
    un = CureNewton(logreg_with(theta_s, 3, 3), weight_decay=lam, feature_norm_bound=clip).fit(X, y)
    un.forget([4, 5], epsilon=EPS, delta=DELTA, generator=gen(0))
    res = un.forget([60, 61, 62], epsilon=EPS, delta=DELTA, generator=gen(1))
    assert res.certified and res.cumulative_ids == (4, 5, 60, 61, 62)
    ids = [4, 5, 60, 61, 62]
    star = target((2, torch.float64, tuple(ids)), X, y, mask(X.shape[0], ids), lam, 3, start=theta_s)
    check_sound_and_tight(flat(res.params_noiseless), star, res.measured_bound, res.extras["refine_rounding"])
    check_fresh_noise(res, gen(1), torch.float64)


# =========================================================================== (4) declared constants
def ridge_data(seed: int = 0, n: int = 50, p: int = 4):
    g = gen(seed)
    X = torch.randn(n, p, dtype=torch.float64, generator=g)
    X = X / X.norm(dim=1, keepdim=True).clamp(min=1.0)
    w = torch.randn(p, dtype=torch.float64, generator=g)
    y = X @ w + 0.3 + 0.2 * torch.randn(n, dtype=torch.float64, generator=g)
    return X, y


def ridge_assumptions(lam: float) -> Assumptions:
    # per-sample Hessian x̃x̃ᵀ + λI: ‖·‖ ≤ ‖x‖² + 1 + λ ≤ 2 + λ; M = 0 (a quadratic)
    return Assumptions(gradient_bound=50.0, smoothness=2.0 + lam, strong_convexity=lam, convex=True,
                       hessian_lipschitz=0.0,
                       error_model=DeclaredErrorModel(radius=100.0, gradient_constant=1e4, hvp_constant=1e4,
                                                      objective_constant=1e4))


@pytest.mark.parametrize("tag,cls,kwargs", [("newton", NewtonStep, {}), ("finetune", FineTune, {"lr": 0.1}),
                                            ("gradient-ascent", GradientAscent, {})],
                         ids=["newton", "finetune", "gradient-ascent"])
def test_declared_ridge_model_certifies_against_the_closed_form(tag, cls, kwargs):
    """nn.Linear + mse + weight decay, with declared constants: the generic path refines to the
    closed-form ridge retrain, under the default budget computed from the declared smoothness."""
    lam = 0.05
    X, y = ridge_data()
    n, p = X.shape
    theta_s = ridge_solution(X, y, torch.ones(n, dtype=torch.bool), lam)
    model = torch.nn.Linear(p, 1, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(theta_s[:p].view(1, p))
        model.bias.copy_(theta_s[p:])
    a = ridge_assumptions(lam)
    un = cls(model, loss="mse", weight_decay=lam, assumptions=a, **kwargs).fit(X, y)
    assert un.certificate_ == "refine"
    ids = [3, 7, 11, 20]
    res = un.forget(ids, epsilon=EPS, delta=DELTA, generator=gen(0))
    assert res.certified and res.reference == "erm" and res.certificate == "refine", res.reasons
    assert res.sensitivity == pytest.approx(default_budget(dim=p + 1, smoothness=a.smoothness), rel=1e-12)
    star = ridge_solution(X, y, mask(n, ids), lam)
    theta = flat(res.params_noiseless, ("weight", "bias"))
    true = float((theta - star).norm())
    assert true <= res.measured_bound <= res.sensitivity
    assert any("declared rounding constants" in s for s in res.assumptions)
    # the declared rounding constants (1e4 u) are the floor of the measured bound here
    assert res.measured_bound <= max(TIGHT * true, 1e-9)


def test_declared_ridge_hfocu_certifies_against_the_closed_form():
    """HF-OCU on nn.Linear + mse with declared constants: the refine certificate is the default and
    the release is within its measured bound of the closed-form ridge retrain."""
    lam = 0.05
    X, y = ridge_data()
    n, p = X.shape
    cfg = SGDConfig(epochs=3, batch_size=10, lr=0.3, weight_decay=lam, seed=0, loss="mse")
    a = ridge_assumptions(lam)
    hf = HFOCU(torch.nn.Linear(p, 1, dtype=torch.float64), cfg, assumptions=a).fit(X, y)
    assert hf.certificate_ == "refine"
    ids = [3, 7, 30]
    res = hf.forget(ids, epsilon=EPS, delta=DELTA, generator=gen(0))
    assert res.certified and res.reference == "erm" and res.certificate == "refine", res.reasons
    assert res.sensitivity == pytest.approx(default_budget(dim=p + 1, smoothness=a.smoothness), rel=1e-12)
    star = ridge_solution(X, y, mask(n, ids), lam)
    true = float((flat(res.params_noiseless, ("weight", "bias")) - star).norm())
    assert true <= res.measured_bound <= res.sensitivity
    assert res.measured_bound <= max(TIGHT * true, 1e-9)
