"""Tests of the MIA-L attacks (certunlearn.audit.attacks, .lira, .rmia) and their runner (.mia_l).

Layers: slow per-example loops as references for LiRA (medians,
per-example and pooled variances from the right population, one-sided offline) and RMIA (the
pairwise likelihood-ratio count, online and offline, the ``a`` tuning); synthetic logits with a
known structure (per-example difficulty that fools LOSS but not LiRA/RMIA); an end-to-end audit of
an overfit MLP on digits where LiRA must beat LOSS at TPR@1%FPR; a model that never saw either
set, where every attack must be near chance; registry and input validation.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import norm

from certunlearn.audit import mia_l
from certunlearn.audit.attacks import (
    ATTACKS,
    DEFAULT_ATTACKS,
    AttackInputs,
    loss_attack,
    register_attack,
)
from certunlearn.audit.lira import LIRA_VARIANTS, lira
from certunlearn.audit.metrics import attack_metrics
from certunlearn.audit.mia_l import MIAResult, run_mia_l
from certunlearn.audit.rmia import RMIA_A_GRID, rmia, tune_rmia_a
from certunlearn.audit.shadows import ShadowSpec, train_shadows
from certunlearn.audit.signals import lira_logit, loss
from certunlearn.data import load_dataset
from certunlearn.errors import ConfigError, InputError
from certunlearn.models import MLP
from certunlearn.train import SGDConfig, train_sgd


def logits_for(phi: np.ndarray) -> np.ndarray:
    """Two-class logits whose LiRA logit for label 0 is exactly ``phi`` (φ = z_0 − z_1)."""
    return np.stack([phi, np.zeros_like(phi)], axis=-1)


# ---------------------------------------------------------------------------------------------
# Slow references
# ---------------------------------------------------------------------------------------------


def lira_reference(target_phi, shadow_phi, membership, variant):
    """Per-example loop over ``target_phi [n, K]`` and ``shadow_phi [N, n, K]``."""
    n, queries = target_phi.shape
    online, fixed = variant.startswith("online"), variant.endswith("fixed")

    def pooled(mask):
        total, dof = 0.0, 0
        for j in range(n):
            for k in range(queries):
                values = shadow_phi[mask[:, j], j, k]
                total += float(np.sum((values - values.mean()) ** 2))
                dof += values.size - 1
        return math.sqrt(total / dof)

    sigma_in_global = pooled(membership) if fixed and online else None
    sigma_out_global = pooled(~membership) if fixed else None
    scores = np.zeros(n)
    for j in range(n):
        per_query = []
        for k in range(queries):
            ins = shadow_phi[membership[:, j], j, k]
            outs = shadow_phi[~membership[:, j], j, k]
            mu_out = float(np.median(outs))
            sd_out = sigma_out_global if fixed else float(np.std(outs, ddof=1))
            x = target_phi[j, k]
            if online:
                mu_in = float(np.median(ins))
                sd_in = sigma_in_global if fixed else float(np.std(ins, ddof=1))
                per_query.append(norm.logpdf(x, mu_in, sd_in) - norm.logpdf(x, mu_out, sd_out))
            else:
                per_query.append(norm.logcdf(x, mu_out, sd_out))
        scores[j] = np.mean(per_query)
    return scores


def rmia_reference(p_x, ref_x, member_x, p_z, ref_z, member_z, *, gamma, online, a):
    """Pairwise LR(x, z) >= γ count, with Pr(·) computed by explicit loops."""

    def marginal(ref, member, j, strict):
        ins = [ref[r, j] for r in range(ref.shape[0]) if member[r, j]]
        outs = [ref[r, j] for r in range(ref.shape[0]) if not member[r, j]]
        if online:
            if ins and outs:
                return 0.5 * (np.mean(ins) + np.mean(outs))
            assert not strict
            return float(np.mean(ref[:, j]))
        return 0.5 * (1 + a) * np.mean(outs) + 0.5 * (1 - a)

    pr_x = [marginal(ref_x, member_x, j, True) for j in range(p_x.size)]
    pr_z = [marginal(ref_z, member_z, j, False) for j in range(p_z.size)]
    scores = np.zeros(p_x.size)
    for i in range(p_x.size):
        hits = sum(
            (p_x[i] / pr_x[i]) / (p_z[j] / pr_z[j]) >= gamma * (1 - 1e-12) for j in range(p_z.size)
        )
        scores[i] = hits / p_z.size
    return scores


# ---------------------------------------------------------------------------------------------
# LOSS
# ---------------------------------------------------------------------------------------------


def test_loss_attack_is_minus_the_loss_averaged_over_queries():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 3, 4))
    labels = rng.integers(0, 4, 7)
    expected = np.mean([-loss(logits=logits[:, k], labels=labels) for k in range(3)], axis=0)
    np.testing.assert_allclose(loss_attack(logits, labels), expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(
        loss_attack(logits[:, 0], labels), -loss(logits=logits[:, 0], labels=labels)
    )


# ---------------------------------------------------------------------------------------------
# LiRA
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", LIRA_VARIANTS)
@pytest.mark.parametrize("queries", [1, 2])
def test_lira_matches_the_per_example_reference(variant, queries):
    rng = np.random.default_rng(queries)
    n, n_shadows, classes = 9, 10, 4
    labels = rng.integers(0, classes, n)
    shadow_logits = rng.normal(size=(n_shadows, n, queries, classes)) * 2
    target_logits = rng.normal(size=(n, queries, classes)) * 2
    # unbalanced membership: 3..7 IN shadows per example (the code must not assume pkeep·N)
    membership = np.zeros((n_shadows, n), dtype=bool)
    for j in range(n):
        membership[rng.choice(n_shadows, size=3 + j % 5, replace=False), j] = True
    phi_s = np.stack(
        [
            np.stack(
                [lira_logit(logits=shadow_logits[s, :, k], labels=labels) for k in range(queries)],
                axis=1,
            )
            for s in range(n_shadows)
        ]
    )
    phi_t = np.stack(
        [lira_logit(logits=target_logits[:, k], labels=labels) for k in range(queries)], axis=1
    )
    expected = lira_reference(phi_t, phi_s, membership, variant)
    got = lira(
        target_logits if queries > 1 else target_logits[:, 0],
        labels,
        shadow_logits if queries > 1 else shadow_logits[:, :, 0],
        membership,
        variant=variant,
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_fixed_variance_uses_each_population():
    """IN spread 0.1, OUT spread 3: σ_out must come from OUT data (the official code used IN)."""
    rng = np.random.default_rng(4)
    n, n_shadows = 50, 16
    membership = np.zeros((n_shadows, n), dtype=bool)
    membership[:8] = True
    rng.permuted(membership, axis=0, out=membership)
    centre = rng.normal(0, 5, n)
    phi = np.where(
        membership,
        centre + 1 + rng.normal(0, 0.1, (n_shadows, n)),
        centre + rng.normal(0, 3.0, (n_shadows, n)),
    )
    target = centre + rng.normal(0, 3.0, n)
    labels = np.zeros(n, dtype=np.int64)
    scores = lira(logits_for(target), labels, logits_for(phi), membership, variant="offline-fixed")
    mu_out = np.array([np.median(phi[~membership[:, j], j]) for j in range(n)])
    sigma_out = math.sqrt(
        sum(
            np.sum((phi[~membership[:, j], j] - phi[~membership[:, j], j].mean()) ** 2)
            for j in range(n)
        )
        / (n * 7)
    )
    assert 2.5 < sigma_out < 3.5
    np.testing.assert_allclose(scores, norm.logcdf((target - mu_out) / sigma_out), rtol=1e-12)
    sigma_from_in = math.sqrt(
        sum(
            np.sum((phi[membership[:, j], j] - phi[membership[:, j], j].mean()) ** 2)
            for j in range(n)
        )
        / (n * 7)
    )
    assert not np.allclose(scores, norm.logcdf((target - mu_out) / sigma_from_in))


def test_lira_beats_loss_on_examples_of_different_difficulty():
    """Per-example offsets of spread 3 hide a membership shift of 1.5 from a global threshold."""
    rng = np.random.default_rng(0)
    n, n_shadows, sigma = 400, 16, 0.3
    difficulty = rng.normal(0, 3, n)
    membership = np.zeros((n_shadows, n), dtype=bool)
    membership[:8] = True
    rng.permuted(membership, axis=0, out=membership)
    phi_shadow = difficulty + 1.5 * membership + rng.normal(0, sigma, (n_shadows, n))
    member = np.arange(n) < n // 2
    phi_target = difficulty + 1.5 * member + rng.normal(0, sigma, n)
    labels = np.zeros(n, dtype=np.int64)
    aucs = {}
    for name, scores in {
        "loss": loss_attack(logits_for(phi_target), labels),
        **{
            v: lira(logits_for(phi_target), labels, logits_for(phi_shadow), membership, variant=v)
            for v in LIRA_VARIANTS
        },
    }.items():
        metrics = attack_metrics(scores[member], scores[~member], n_bootstrap=0)
        aucs[name] = (metrics.auc, metrics.tpr_at[0.01])
    assert aucs["loss"][0] < 0.7
    for variant in LIRA_VARIANTS:
        assert aucs[variant][0] > 0.95, (variant, aucs)
        assert aucs[variant][1] > 0.5 > aucs["loss"][1] + 0.3, (variant, aucs)


def test_offline_lira_is_one_sided_and_needs_only_out_shadows():
    labels = np.zeros(3, dtype=np.int64)
    out_only = np.zeros((4, 3), dtype=bool)
    shadows = logits_for(
        np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.5, 0.5, 0.5]])
    )
    scores = lira(
        logits_for(np.array([-5.0, 0.25, 5.0])), labels, shadows, out_only, variant="offline"
    )
    assert np.all(np.diff(scores) > 0) and scores[2] < 0  # log Φ, increasing in φ
    with pytest.raises(InputError, match=">= 2 IN shadows"):
        lira(logits_for(np.zeros(3)), labels, shadows, out_only, variant="online")


def test_identical_shadow_outputs_stay_finite():
    labels = np.zeros(2, dtype=np.int64)
    membership = np.array([[True, True], [True, True], [False, False], [False, False]])
    saturated = logits_for(np.full((4, 2), 500.0))  # φ clipped at 103.6 for every shadow
    for variant in LIRA_VARIANTS:
        scores = lira(
            logits_for(np.array([500.0, 0.0])), labels, saturated, membership, variant=variant
        )
        assert np.all(np.isfinite(scores)), variant


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"target_logits": np.full((3, 2), np.nan)}, InputError, "NaN"),
        ({"target_logits": np.zeros((4, 2))}, InputError, "shape \\[3, C\\]"),
        ({"shadow_logits": np.zeros((4, 2, 2))}, InputError, "shadow_logits must have shape"),
        ({"shadow_logits": np.zeros((4, 3, 3))}, InputError, "classes"),
        ({"membership": np.ones((4, 3))}, InputError, "bool"),
        ({"membership": np.ones((3, 3), dtype=bool)}, InputError, "membership must have shape"),
        ({"labels": np.array([0.0, 1.0, 0.0])}, InputError, "integer"),
        ({"labels": np.array([0, 2, 0])}, InputError, "labels must be in"),
        ({"variant": "offline-carlini"}, ConfigError, "variant must be one of"),
        ({"min_std": 0.0}, ConfigError, "min_std must be > 0"),
    ],
)
def test_lira_validates_inputs(kwargs, error, message):
    args = {
        "target_logits": np.zeros((3, 2)),
        "labels": np.zeros(3, dtype=np.int64),
        "shadow_logits": np.random.default_rng(0).normal(size=(4, 3, 2)),
        "membership": np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]], dtype=bool),
        **kwargs,
    }
    positional = [args.pop(k) for k in ("target_logits", "labels", "shadow_logits", "membership")]
    with pytest.raises(error, match=message):
        lira(*positional, **args)


# ---------------------------------------------------------------------------------------------
# RMIA
# ---------------------------------------------------------------------------------------------


def probs(p_true: np.ndarray) -> np.ndarray:
    """Two-class probabilities with p_y = p_true for label 0."""
    return np.stack([p_true, 1.0 - p_true], axis=-1)


def rmia_problem(seed=0, n=40, m=30, n_refs=4):
    rng = np.random.default_rng(seed)
    member_x = rng.random((n_refs, n)) < 0.5
    member_x[0], member_x[1] = True, False  # every x has IN and OUT references
    member_z = rng.random((n_refs, m)) < 0.3
    base_x, base_z = rng.uniform(0.2, 0.7, n), rng.uniform(0.2, 0.7, m)
    ref_x = np.clip(base_x + 0.25 * member_x + rng.normal(0, 0.03, (n_refs, n)), 0.01, 0.99)
    ref_z = np.clip(base_z + 0.25 * member_z + rng.normal(0, 0.03, (n_refs, m)), 0.01, 0.99)
    is_member = np.arange(n) < n // 2
    p_x = np.clip(base_x + 0.25 * is_member + rng.normal(0, 0.03, n), 0.01, 0.99)
    p_z = np.clip(base_z + rng.normal(0, 0.03, m), 0.01, 0.99)
    return p_x, ref_x, member_x, p_z, ref_z, member_z, is_member


def rmia_on(problem, wrap=None, **kw):
    """:func:`rmia` on an :func:`rmia_problem` (label 0 everywhere); ``wrap`` turns p into probabilities."""
    wrap = probs if wrap is None else wrap
    p_x, ref_x, member_x, p_z, ref_z, member_z, _ = problem
    labels_x, labels_z = np.zeros(p_x.size, np.int64), np.zeros(p_z.size, np.int64)
    return rmia(wrap(p_x), labels_x, wrap(ref_x), member_x, wrap(p_z), labels_z,
                population_reference_probs=wrap(ref_z), population_reference_membership=member_z, **kw)


@pytest.mark.parametrize("online, a", [(True, None), (False, 0.0), (False, 0.3), (False, 1.0)])
@pytest.mark.parametrize("gamma", [1.0, 1.7])
def test_rmia_matches_the_pairwise_reference(online, a, gamma):
    problem = rmia_problem()
    got = rmia_on(problem, gamma=gamma, a=a, online=online)
    expected = rmia_reference(*problem[:6], gamma=gamma, online=online, a=a)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_rmia_finds_members_and_augmented_queries_average():
    problem = rmia_problem(n=200, m=100)
    is_member = problem[-1]
    scores = rmia_on(problem)
    assert attack_metrics(scores[is_member], scores[~is_member], n_bootstrap=0).auc > 0.95
    # K = 2 identical queries give the same scores as one
    again = rmia_on(problem, wrap=lambda p: np.stack([probs(p), probs(p)], axis=-2))
    np.testing.assert_array_equal(scores, again)


def test_offline_a_is_tuned_by_attacking_each_reference_with_the_others():
    p_x, ref_x, member_x, p_z, ref_z, member_z, _ = rmia_problem(seed=3)
    labels_x, labels_z = np.zeros(p_x.size, np.int64), np.zeros(p_z.size, np.int64)
    a = tune_rmia_a(labels_x, probs(ref_x), member_x, labels_z, probs(ref_z), member_z)
    assert a in RMIA_A_GRID
    # reference: mean AUC over the references of the pairwise-count scores, first maximum wins
    cand_p, cand_m = np.concatenate([ref_x, ref_z], 1), np.concatenate([member_x, member_z], 1)
    means = []
    for value in RMIA_A_GRID:
        aucs = []
        for r in range(ref_x.shape[0]):
            others = np.arange(ref_x.shape[0]) != r
            usable = (~cand_m[others]).any(0)
            pop = (~member_z[others]).any(0)
            scores = rmia_reference(
                cand_p[r, usable],
                cand_p[others][:, usable],
                cand_m[others][:, usable],
                ref_z[r, pop],
                ref_z[others][:, pop],
                member_z[others][:, pop],
                gamma=1.0,
                online=False,
                a=value,
            )
            truth = cand_m[r, usable]
            aucs.append(attack_metrics(scores[truth], scores[~truth], n_bootstrap=0, fprs=()).auc)
        means.append(np.mean(aucs))
    assert a == RMIA_A_GRID[int(np.argmax(means))]
    problem = (p_x, ref_x, member_x, p_z, ref_z, member_z, None)
    tuned = rmia_on(problem, online=False)
    fixed = rmia_on(problem, online=False, a=a)
    np.testing.assert_array_equal(tuned, fixed)


def test_rmia_validates_inputs():
    p_x, ref_x, member_x, p_z, ref_z, member_z, _ = rmia_problem()
    lx, lz = np.zeros(p_x.size, np.int64), np.zeros(p_z.size, np.int64)
    args = (probs(p_x), lx, probs(ref_x), member_x, probs(p_z), lz)
    kw = {"population_reference_probs": probs(ref_z), "population_reference_membership": member_z}
    with pytest.raises(ConfigError, match="gamma must be >= 1"):
        rmia(*args, **kw, gamma=0.5)
    with pytest.raises(ConfigError, match="offline"):
        rmia(*args, **kw, a=0.5)
    with pytest.raises(ConfigError, match="a must be in \\[0, 1\\]"):
        rmia(*args, **kw, a=1.5, online=False)
    with pytest.raises(ConfigError, match="online must be a bool"):
        rmia(*args, **kw, online="yes")
    bad = probs(p_x) * 1.1
    with pytest.raises(InputError, match="sum to 1"):
        rmia(bad, *args[1:], **kw)
    with pytest.raises(InputError, match="NaN"):
        rmia(np.full_like(args[0], np.nan), *args[1:], **kw)
    with pytest.raises(InputError, match="population_reference_probs must have shape"):
        rmia(*args, population_reference_probs=probs(ref_z[:, :-1]))
    with pytest.raises(InputError, match="reference_membership must have shape"):
        rmia(args[0], lx, args[2], member_x[:, :-1], *args[4:], **kw)
    only_out = np.zeros_like(member_x)
    with pytest.raises(InputError, match="IN and OUT reference models"):
        rmia(args[0], lx, args[2], only_out, *args[4:], **kw)
    with pytest.raises(InputError, match="OUT reference model"):
        rmia(args[0], lx, args[2], np.ones_like(member_x), *args[4:], **kw, online=False, a=0.5)
    with pytest.raises(ConfigError, match=">= 2 reference models"):
        tune_rmia_a(lx, probs(ref_x[:1]), member_x[:1], lz, probs(ref_z[:1]))
    with pytest.raises(ConfigError, match="cannot tune a"):
        tune_rmia_a(lx, probs(ref_x), np.zeros_like(member_x), lz, probs(ref_z))
    with pytest.raises(ConfigError, match="grid"):
        tune_rmia_a(lx, probs(ref_x), member_x, lz, probs(ref_z), grid=())


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_registry(monkeypatch):
    assert set(DEFAULT_ATTACKS) <= set(ATTACKS)
    assert {
        "loss",
        "lira-online",
        "lira-offline",
        "lira-online-fixed",
        "lira-offline-fixed",
        "rmia",
        "rmia-offline",
    } == set(ATTACKS)
    assert not ATTACKS["loss"].needs_shadows and ATTACKS["rmia"].needs_population
    with pytest.raises(ConfigError, match="already registered"):
        register_attack("loss", lambda inputs: inputs.labels * 0.0)
    with pytest.raises(ConfigError, match="callable"):
        register_attack("new", 3)  # type: ignore[arg-type]
    monkeypatch.setitem(ATTACKS, "placeholder", ATTACKS["loss"])  # restored after the test
    register_attack("placeholder", lambda inputs: -inputs.labels.astype(float), force=True)
    out = ATTACKS["placeholder"].fn(AttackInputs(np.zeros((2, 2)), np.array([0, 1])))
    np.testing.assert_array_equal(out, [0.0, -1.0])


# ---------------------------------------------------------------------------------------------
# End to end on digits
# ---------------------------------------------------------------------------------------------

ALL_ATTACKS = (
    "loss",
    "lira-online",
    "lira-online-fixed",
    "lira-offline",
    "lira-offline-fixed",
    "rmia",
    "rmia-offline",
)


@pytest.fixture(scope="module")
def digits_audit():
    """An MLP trained to 100% train accuracy on 200 digits, 16 shadows on the 400 audited rows.

    Small but not fragile: with seeds 0-3 of the split LiRA's TPR@1%FPR was 0.06-0.22 against
    LOSS's 0.01-0.045 (AUC 0.75-0.79 against 0.64-0.67); the test uses seed 0.
    """
    ds = load_dataset("digits", seed=0)
    order = torch.as_tensor(np.random.default_rng(0).permutation(ds.n_train))
    audit, population, unseen = order[:400], order[400:700], order[700:900]
    config = SGDConfig(epochs=100, batch_size=50, lr=0.2, seed=0)
    members, non_members = audit[:200], audit[200:]
    model = MLP(64, 10, hidden=(32,), generator=torch.Generator().manual_seed(0))
    model.load_state_dict(train_sgd(model, ds.X_train[members], ds.y_train[members], config).params)
    spec = ShadowSpec(model="mlp", model_kwargs={"hidden": [32]}, n_shadows=16, training=config)
    shadows = train_shadows(spec, ds.X_train[audit], ds.y_train[audit])
    null_model = MLP(64, 10, hidden=(32,), generator=torch.Generator().manual_seed(1))
    null_model.load_state_dict(
        train_sgd(null_model, ds.X_train[unseen], ds.y_train[unseen], config).params
    )
    return {
        "ds": ds,
        "model": model,
        "null_model": null_model,
        "shadows": shadows,
        "spec": spec,
        "members": members,
        "non_members": non_members,
        "audit": audit,
        "population": population,
    }


def _run(setup, target, **kwargs):
    ds = setup["ds"]
    m, n = setup["members"], setup["non_members"]
    kwargs.setdefault("shadows", setup["shadows"])
    kwargs.setdefault("population_X", ds.X_train[setup["population"]])
    kwargs.setdefault("population_y", ds.y_train[setup["population"]])
    return run_mia_l(target, ds.X_train[m], ds.y_train[m], ds.X_train[n], ds.y_train[n], **kwargs)


def test_lira_flags_an_overfit_mlp_better_than_loss(digits_audit):
    with torch.no_grad():
        model = digits_audit["model"]
        ds = digits_audit["ds"]
        train_accuracy = (
            (
                model(ds.X_train[digits_audit["members"]]).argmax(1)
                == ds.y_train[digits_audit["members"]]
            )
            .double()
            .mean()
        )
    assert train_accuracy == 1.0
    result = _run(digits_audit, model, attacks=ALL_ATTACKS)
    tpr = {name: m.tpr_at[0.01] for name, m in result.metrics.items()}
    auc = {name: m.auc for name, m in result.metrics.items()}
    for variant in ("lira-online", "lira-online-fixed", "lira-offline", "lira-offline-fixed"):
        assert tpr[variant] > tpr["loss"], (tpr, auc)
        assert auc[variant] > auc["loss"] + 0.05, (tpr, auc)
    assert tpr["lira-online-fixed"] >= 0.1 > tpr["loss"] + 0.05, tpr
    assert auc["rmia"] > auc["loss"] + 0.05 and auc["rmia-offline"] > auc["loss"] + 0.05, auc
    assert result.best_attack != "loss" and result.auc == max(auc.values())
    assert result.tpr_at == result.metrics[result.best_attack].tpr_at
    # ε bounds: Bonferroni over the 7 attacks; an overfit model leaks a little
    assert all(b.alpha == pytest.approx(0.05 / 7) for b in result.epsilon.values())
    assert 0.5 < result.epsilon_lower_bound < 3.0
    assert result.n_shadows == 16 and result.n_population == 300
    assert (
        result.details["rmia-offline"]["a"] in RMIA_A_GRID
        and result.details["rmia-offline"]["a_tuned"]
    )
    data = json.loads(json.dumps(result.as_dict(include_scores=True)))
    assert (
        data["best_attack"] == result.best_attack
        and len(data["attacks"]["loss"]["scores_in"]) == 200
    )
    assert data["tpr_convention"] == "TPR at the last ROC point with fpr <= x"


def test_every_attack_is_near_chance_on_a_model_that_saw_neither_set(digits_audit):
    result = _run(digits_audit, digits_audit["null_model"], attacks=ALL_ATTACKS)
    for name, metrics in result.metrics.items():
        assert abs(metrics.auc - 0.5) < 0.08, (name, metrics.auc)  # 200 vs 200: AUC s.e. ≈ 0.03
    assert result.epsilon_lower_bound < 0.5


def test_callable_target_and_module_give_the_same_result(digits_audit):
    model = digits_audit["model"]
    attacks = ("loss", "lira-offline-fixed", "rmia")
    as_module = _run(digits_audit, model, attacks=attacks)

    def deployed(rows: torch.Tensor) -> np.ndarray:  # e.g. a model behind an API returning numpy
        with torch.no_grad():
            return model(rows).numpy()

    as_callable = _run(digits_audit, deployed, attacks=attacks, batch_size=64)
    for name in attacks:
        np.testing.assert_allclose(
            as_callable.scores_in[name], as_module.scores_in[name], atol=1e-9
        )
        np.testing.assert_allclose(
            as_callable.scores_out[name], as_module.scores_out[name], atol=1e-9
        )
    model.train()
    _run(digits_audit, model, attacks=("loss",))
    assert model.training  # mode restored
    model.eval()


def test_shadows_trained_inside_match_shadows_passed_in(digits_audit, tmp_path):
    """Same spec and pool: run_mia_l trains the same shadows (and reuses the cache on a rerun)."""
    ds = digits_audit["ds"]
    audit = digits_audit["audit"]
    pool = {"shadow_X": ds.X_train[audit], "shadow_y": ds.y_train[audit]}
    small = ShadowSpec(
        model="logreg", n_shadows=4, training=SGDConfig(epochs=3, batch_size=50, lr=0.2)
    )
    shadows = train_shadows(small, **dict(zip(("X", "y"), pool.values(), strict=True)))
    attacks = ("lira-offline-fixed", "rmia")
    given = _run(digits_audit, digits_audit["model"], attacks=attacks, shadows=shadows, **pool)
    trained = _run(
        digits_audit,
        digits_audit["model"],
        attacks=attacks,
        shadows=None,
        shadow_spec=small,
        cache_dir=str(tmp_path),
        **pool,
    )
    for name in attacks:
        np.testing.assert_allclose(trained.scores_in[name], given.scores_in[name], atol=1e-12)
    cached = _run(
        digits_audit,
        digits_audit["model"],
        attacks=attacks,
        shadows=None,
        shadow_spec=small,
        cache_dir=str(tmp_path),
        **pool,
    )
    np.testing.assert_array_equal(cached.scores_in["rmia"], trained.scores_in["rmia"])
    # default population: the pool rows outside the audit (none here: falls back and says so)
    fallback = _run(
        digits_audit,
        digits_audit["model"],
        attacks=("rmia",),
        shadows=shadows,
        population_X=None,
        population_y=None,
        **pool,
    )
    assert any("audited examples" in note for note in fallback.notes)


def test_run_mia_l_validates(digits_audit):
    ds = digits_audit["ds"]
    model = digits_audit["model"]
    m, n = digits_audit["members"][:20], digits_audit["non_members"][:20]
    args = (ds.X_train[m], ds.y_train[m], ds.X_train[n], ds.y_train[n])
    with pytest.raises(ConfigError, match="attacks must be among"):
        run_mia_l(model, *args, attacks=("lira",))
    with pytest.raises(ConfigError, match="non-empty sequence"):
        run_mia_l(model, *args, attacks="loss")
    with pytest.raises(ConfigError, match="repeat"):
        run_mia_l(model, *args, attacks=("loss", "loss"))
    with pytest.raises(ConfigError, match="need shadow models"):
        run_mia_l(model, *args, attacks=("loss", "lira-online"))
    with pytest.raises(ConfigError, match="not both"):
        run_mia_l(
            model,
            *args,
            attacks=("lira-online",),
            shadows=digits_audit["shadows"],
            shadow_spec=digits_audit["spec"],
        )
    with pytest.raises(InputError, match="digest differs"):
        run_mia_l(
            model,
            *args,
            attacks=("lira-offline",),
            shadows=digits_audit["shadows"],
            shadow_X=ds.X_train[:10],
            shadow_y=ds.y_train[:10],
        )
    with pytest.raises(InputError, match="IN shadows"):  # rows outside the shadows' pool
        run_mia_l(
            model,
            *(
                ds.X_train[digits_audit["population"][:40]],
                ds.y_train[digits_audit["population"][:40]],
            )
            * 2,
            attacks=("lira-online",),
            shadows=digits_audit["shadows"],
        )
    with pytest.raises(ConfigError, match="nn.Module or a callable"):
        run_mia_l("model", *args, attacks=("loss",))
    with pytest.raises(InputError, match="logits \\[40, C\\]"):
        run_mia_l(lambda rows: torch.zeros(3, 10), *args, attacks=("loss",))
    with pytest.raises(InputError, match="NaN"):
        run_mia_l(
            lambda rows: torch.full((rows.shape[0], 10), float("nan")), *args, attacks=("loss",)
        )
    with pytest.raises(InputError, match="classes"):
        run_mia_l(lambda rows: torch.zeros(rows.shape[0], 2), *args, attacks=("loss",))
    bad = ds.X_train[m].clone()
    bad[0, 0] = float("inf")
    with pytest.raises(InputError, match="X_members contains NaN"):
        run_mia_l(model, bad, *args[1:], attacks=("loss",))
    with pytest.raises(InputError, match="y_non_members must have shape"):
        run_mia_l(model, *args[:3], ds.y_train[n][:-1], attacks=("loss",))
    with pytest.raises(InputError, match="differ"):
        run_mia_l(model, *args[:2], ds.X_train[n][:, :10], args[3], attacks=("loss",))


def test_attack_options_are_checked_before_shadows_are_trained(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("shadows trained before the options were checked")

    monkeypatch.setattr(mia_l, "train_shadows", no_training)
    logits, labels = np.zeros((10, 2)), np.zeros(10, dtype=np.int64)
    spec = ShadowSpec(model="logreg", n_shadows=4, training=SGDConfig(epochs=1, batch_size=5, lr=0.1))
    for bad, message in (({"gamma": 0.5}, "gamma"), ({"a": 2.0}, "a must be"),
                         ({"min_std": 0.0}, "min_std")):
        with pytest.raises(ConfigError, match=message):
            run_mia_l(lambda X: X, logits[:5], labels[:5], logits[5:], labels[5:],
                      attacks=("rmia-offline",), shadow_spec=spec, **bad)


def test_mia_result_is_validated_and_read_only(digits_audit):
    result = _run(digits_audit, digits_audit["model"], attacks=("loss",))
    assert isinstance(result, MIAResult) and result.attacks == ("loss",)
    with pytest.raises(ValueError):
        result.scores_in["loss"][0] = 1.0
    with pytest.raises(ConfigError, match="same attacks"):
        MIAResult(
            metrics=result.metrics,
            epsilon={},
            scores_in=result.scores_in,
            scores_out=result.scores_out,
            details=result.details,
            n_shadows=0,
            n_population=0,
            alpha=0.05,
            delta=1e-5,
        )
    with pytest.raises(ConfigError, match="at least one attack"):
        MIAResult(
            metrics={},
            epsilon={},
            scores_in={},
            scores_out={},
            details={},
            n_shadows=0,
            n_population=0,
            alpha=0.05,
            delta=1e-5,
        )


def test_softmax_helper_consistency():
    """RMIA in run_mia_l feeds softmax(logits): the true-label probability is exp(−loss)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 3))
    labels = rng.integers(0, 3, 5)
    np.testing.assert_allclose(
        softmax(logits, axis=-1)[np.arange(5), labels],
        np.exp(-loss(logits=logits, labels=labels)),
        rtol=1e-12,
    )
