r"""Membership inference against the unlearning itself (MIA-U): Chen et al.'s shadow protocol.

**MIA-U shadow protocol** (Chen, Zhang, Wang, Backes, Humbert & Zhang, "When Machine Unlearning
Jeopardizes Privacy", ACM CCS 2021, arXiv 2005.02205; code defaults from their repository
MinChen00/UnlearningLeaks). The records (rows of ``X``) are split 50/50 into a **shadow**
and a **target** universe; each universe into a positive pool (``positive_fraction``, 80% in the
paper) and a negative pool. In each universe ``n_shadow_originals`` original models are trained on
``records_per_original`` records drawn from the positive pool; for each original,
``n_unlearned_per_original`` unlearned models each forget one distinct record of its training set.
Every (original, unlearned) pair is queried on

* a **positive** — the deleted record, ⟨in, out⟩ (in the original, out of the unlearned training
  set), and
* a **negative**, either ``"out_out"`` — a record of the negative pool that neither model saw
  (Chen et al.'s definition) — or ``"in_in"`` — a record both models were trained on (a retained
  record; this measures leakage about the retained set and is a different question).

Each query gives the posteriors ``p_o`` and ``p_u`` (after the output defence) and the features of
:mod:`certunlearn.audit.features`. Attack classifiers (scikit-learn on standardised features, Chen
et al.'s settings: :data:`~certunlearn.audit.mia_u_spec.ATTACK_CLASSIFIERS`) are **fitted on the
shadow universe's features and evaluated on the held-out target universe** — never on their own
training features (the HF-OCU and Zhang et al. code do; that is optimistic). The report gives, per
(defence, feature, classifier), AUC, balanced accuracy, TPR@FPR with Clopper–Pearson bounds
(:func:`attack_metrics`), the empirical ε lower bound (:func:`epsilon_lower_bound`) and DegCount /
DegRate against ``basic``; the headline is the best combination on the target set, whose ε bound is
Bonferroni-corrected for that selection.

The unlearning operation is pluggable: ``"sgd-retrain"`` (default: :func:`train_sgd` on the
remaining records, same initialisation and configuration — the protocol's ground truth),
``"coupled-retrain"`` (the registered oracle's operation: replay of the original batch schedule
without the record), the name of any other registered post-hoc unlearner in
:data:`~certunlearn.unlearn.UNLEARNERS` (with its default options; :func:`posthoc_unlearning` sets
options), or a callable ``(model, X, y, forget_ids) -> unlearned`` so a user's method can be
audited. :func:`audit_unlearning` applies a fitted attack to one (original, unlearned) pair a
user brings.

The settings live in :mod:`certunlearn.audit.mia_u_spec` (:class:`MIAUSpec`, the attack-classifier
registry, the negatives), the result types in :mod:`certunlearn.audit.mia_u_results`; the
challenge's population attack is in :mod:`certunlearn.audit.unlearning_challenge`.

Example:
    >>> import torch
    >>> from certunlearn.train import SGDConfig
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(60, 4, dtype=torch.float64, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=4, records_per_original=20,
    ...     model="logreg", training=SGDConfig(epochs=3, batch_size=20, lr=0.5),
    ...     attack_models=("logistic_regression",), features=("l2_distance", "basic"), n_bootstrap=0)
    >>> result = run_mia_u(X, y, spec=spec)
    >>> len(result.attacks), result.target.record_ids.size
    (2, 8)
    >>> set(result.shadow.universe_ids.tolist()).isdisjoint(result.target.universe_ids.tolist())
    True
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from certunlearn.audit.epsilon import epsilon_lower_bound
from certunlearn.audit.metrics import attack_metrics
from certunlearn.audit.mia_u_attacks import best_attack, evaluate_attacks, fit_attacks
from certunlearn.audit.mia_u_results import (
    FittedAttack,
    MIAUQueries,
    MIAUResult,
    UnlearningAudit,
)
from certunlearn.audit.mia_u_spec import NEGATIVES, MIAUSpec
from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.data_checks import as_classification_data
from certunlearn.errors import ConfigError, InputError
from certunlearn.models import build_model
from certunlearn.progress import ProgressFn, report
from certunlearn.train.config import SGDConfig
from certunlearn.train.sgd import TrainResult, coupled_retrain, train_sgd
from certunlearn.unlearn.base import UnlearnResult, get_unlearner

__all__ = [
    "UNLEARNING_METHODS",
    "UnlearnFn",
    "audit_unlearning",
    "posthoc_unlearning",
    "run_mia_u",
]

UNLEARNING_METHODS = ("sgd-retrain", "coupled-retrain")
"""The protocol's own operations (any other registered post-hoc unlearner is accepted by name)."""

_RENAMED = {
    "retrain": "'sgd-retrain' (the protocol's SGD retrain, the default); the registry's 'retrain' is the exact "
               "L-BFGS retrain: pass posthoc_unlearning('retrain', weight_decay=...) for it",
    "coupled_retrain": "'coupled-retrain' (the registry's spelling)",
}
"""Built-in unlearning operations of the shadow protocol (a callable may be given instead)."""

UnlearnFn = Callable[[nn.Module, Tensor, Tensor, list[int]], Any]
"""``f(original_model, X, y, forget_ids) -> nn.Module | state dict | UnlearnResult | logits_fn``.

``X, y`` are the original's training records and ``forget_ids`` row indices into them; the
original module is a fresh copy (it may be modified). A ``logits_fn`` maps a tensor of inputs to
logits ``[n, C]``.
"""


# ---------------------------------------------------------------------------------------------
# Helpers: data, models, outputs
# ---------------------------------------------------------------------------------------------


def _as_tensor_data(X: object, y: object) -> tuple[Tensor, Tensor]:
    return as_classification_data(X, y)

def _build(spec: MIAUSpec, in_features: int, num_classes: int, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    kwargs = dict(spec.model_kwargs)
    if isinstance(spec.model, str):
        return build_model(
            spec.model, in_features=in_features, num_classes=num_classes, generator=generator, **kwargs
        )
    model = spec.model(in_features=in_features, num_classes=num_classes, generator=generator, **kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"the model factory returned {type(model).__name__}, not an nn.Module")
    return model


def _to_numpy(name: str, output: object, n: int, num_classes: int | None) -> np.ndarray:
    if isinstance(output, Tensor):
        output = output.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(output, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n or (num_classes is not None and array.shape[1] != num_classes):
        expected = f"[{n}, {num_classes if num_classes is not None else 'C'}]"
        raise InputError(f"{name} must return logits of shape {expected}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} returned NaN or infinite logits")
    return array


def _module_logits(module: nn.Module, X: Tensor) -> Tensor:
    fm = FunctionalModel(module)
    with torch.no_grad():
        return fm.outputs(fm.theta0, X.to(device=fm.device, dtype=fm.dtype))


def _unlearned_logits_fn(output: object, template: nn.Module, name: str) -> Callable[[Tensor], Any]:
    """Turn what an unlearning callable returned into ``X -> logits``."""
    if isinstance(output, UnlearnResult):
        output = output.params_released
    if isinstance(output, nn.Module):
        module = output
        return lambda X: _module_logits(module, X)
    if isinstance(output, Mapping):
        module = copy.deepcopy(template)
        try:
            module.load_state_dict(dict(output))
        except RuntimeError as exc:
            raise InputError(f"{name} returned a state dict that does not fit the model: {exc}") from exc
        return lambda X: _module_logits(module, X)
    if callable(output):
        return output  # type: ignore[return-value]
    raise InputError(
        f"{name} must return an nn.Module, a state dict, an UnlearnResult or a logits function, "
        f"got {type(output).__name__}"
    )


def _resolve_unlearning(unlearning: object) -> tuple[str, str | UnlearnFn]:
    """(name, operation): a built-in name, a registered post-hoc unlearner's callable, or the caller's."""
    if isinstance(unlearning, str):
        if unlearning in _RENAMED:
            raise ConfigError(f"unlearning {unlearning!r} is ambiguous or renamed: use {_RENAMED[unlearning]}")
        if unlearning in UNLEARNING_METHODS:
            return unlearning, unlearning
        try:
            return unlearning, posthoc_unlearning(unlearning)
        except ConfigError as exc:
            raise ConfigError(f"unlearning must be one of {list(UNLEARNING_METHODS)}, a registered post-hoc "
                              f"unlearner or a callable, got {unlearning!r} ({exc})") from None
    if not callable(unlearning):
        raise ConfigError(
            f"unlearning must be one of {list(UNLEARNING_METHODS)}, a registered post-hoc unlearner or a "
            f"callable, got {unlearning!r}"
        )
    return str(getattr(unlearning, "__name__", type(unlearning).__name__)), unlearning  # type: ignore[return-value]

# ---------------------------------------------------------------------------------------------
# Protocol: one universe
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Progress:
    callback: ProgressFn | None
    total: int
    done: int = 0

    def step(self, label: str) -> None:
        self.done += 1
        report(self.callback, self.done, self.total, label)


@dataclass(frozen=True, slots=True)
class _Original:
    """One trained original of a universe: its initialisation, training run, function, data and config."""

    initial: nn.Module
    trained: TrainResult
    model: FunctionalModel
    X: Tensor
    y: Tensor
    config: SGDConfig


def _split_pools(
    name: str, universe_ids: np.ndarray, spec: MIAUSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle a universe into its (positive, negative) pools; check they fit the spec."""
    n_positive_pool = int(round(spec.positive_fraction * universe_ids.size))
    shuffled = rng.permutation(universe_ids)
    positive_pool, negative_pool = shuffled[:n_positive_pool], shuffled[n_positive_pool:]
    m, k = spec.records_per_original, spec.n_unlearned_per_original
    if positive_pool.size < m:
        raise InputError(
            f"the {name} universe's positive pool has {positive_pool.size} records "
            f"(positive_fraction={spec.positive_fraction} of {universe_ids.size}) but "
            f"records_per_original={m}: pass more records or a smaller spec"
        )
    if spec.negatives == "out_out" and negative_pool.size < k:
        raise InputError(
            f"the {name} universe's negative pool has {negative_pool.size} records but each "
            f"original needs n_unlearned_per_original={k} distinct never-trained negatives"
        )
    return positive_pool, negative_pool


def _train_original(
    spec: MIAUSpec, train_ids: np.ndarray, X: Tensor, y: Tensor, num_classes: int,
    rng: np.random.Generator,
) -> _Original:
    """Train one original on ``train_ids`` from a fresh initialisation and batch-order seed."""
    in_features = int(np.prod(X.shape[1:]))
    init_seed, schedule_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
    initial = _build(spec, in_features, num_classes, init_seed).to(X.device)
    config = replace(spec.training, seed=schedule_seed)
    X_o, y_o = X[torch.as_tensor(train_ids)], y[torch.as_tensor(train_ids)]
    trained = train_sgd(initial, X_o, y_o, config)
    return _Original(initial, trained, FunctionalModel(initial, loss=config.loss), X_o, y_o, config)


def _query_ids(
    spec: MIAUSpec, train_ids: np.ndarray, negative_pool: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(deleted rows of the original's training set, query ids: the k deleted, then k negatives)."""
    m, k = spec.records_per_original, spec.n_unlearned_per_original
    deleted_local = rng.choice(m, size=k, replace=False)
    if spec.negatives == "out_out":
        negative_ids = rng.choice(negative_pool, size=k, replace=False)
    else:
        retained_local = np.setdiff1d(np.arange(m), deleted_local)
        negative_ids = train_ids[rng.choice(retained_local, size=k, replace=False)]
    return deleted_local, np.concatenate([train_ids[deleted_local], negative_ids])


def _unlearned_outputs(
    original: _Original, local: int, pair: Tensor, unlearning: str | UnlearnFn, unlearn_name: str
) -> Any:
    """Raw outputs on ``pair`` of the original's unlearned model that forgot training row ``local``."""
    fm, config = original.model, original.config
    if unlearning == "sgd-retrain":
        keep = torch.ones(original.X.shape[0], dtype=torch.bool, device=original.X.device)
        keep[local] = False
        theta_u = train_sgd(original.initial, original.X[keep], original.y[keep], config).theta
        with torch.no_grad():
            return fm.outputs(theta_u, pair)
    if unlearning == "coupled-retrain":
        params = coupled_retrain(
            original.initial, original.X, original.y, original.trained.schedule, config,
            exclude=[local],
        )
        with torch.no_grad():
            return fm.outputs(fm.layout.flatten(params), pair)
    module = copy.deepcopy(original.initial)
    module.load_state_dict(original.trained.params)
    output = unlearning(module, original.X, original.y, [local])  # type: ignore[operator]
    logits_fn = _unlearned_logits_fn(output, original.initial, f"unlearning {unlearn_name!r}")
    with torch.no_grad():
        return logits_fn(pair)


def _query_pairs(
    original: _Original, deleted_local: np.ndarray, X_query: Tensor, num_classes: int,
    unlearning: str | UnlearnFn, progress: _Progress, label: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Both models' logits ``[2k, C]`` on each (deleted j, negative j) pair, pair after pair."""
    fm, k = original.model, deleted_local.size
    unlearn_name = unlearning if isinstance(unlearning, str) else _resolve_unlearning(unlearning)[0]
    logits_o, logits_u = [], []
    for j, local in enumerate(deleted_local.tolist()):
        pair = X_query[[j, k + j]]
        # both models see the same [2, ...] batch, so identical models give bit-identical logits
        with torch.no_grad():
            logits_o.append(_to_numpy("the original model", fm.outputs(original.trained.theta, pair),
                                      2, num_classes))
        raw = _unlearned_outputs(original, local, pair, unlearning, unlearn_name)
        logits_u.append(_to_numpy(f"unlearning {unlearn_name!r}", raw, 2, num_classes))
        progress.step(label)
    return np.concatenate(logits_o), np.concatenate(logits_u)


def _run_universe(
    name: str,
    universe_ids: np.ndarray,
    X: Tensor,
    y: Tensor,
    num_classes: int,
    spec: MIAUSpec,
    unlearning: str | UnlearnFn,
    rng: np.random.Generator,
    progress: _Progress,
) -> MIAUQueries:
    """Train one universe's originals and unlearned models and query every (original, unlearned) pair."""
    positive_pool, negative_pool = _split_pools(name, universe_ids, spec, rng)
    m, k = spec.records_per_original, spec.n_unlearned_per_original
    label = f"mia-u {name} models"
    training_ids, record_ids, original_logits, unlearned_logits = [], [], [], []
    for _ in range(spec.n_shadow_originals):
        train_ids = np.sort(rng.choice(positive_pool, size=m, replace=False))
        original = _train_original(spec, train_ids, X, y, num_classes, rng)
        progress.step(label)
        deleted_local, query_ids = _query_ids(spec, train_ids, negative_pool, rng)
        X_query = X[torch.as_tensor(query_ids)].to(device=original.model.device,
                                                   dtype=original.model.dtype)
        logits_o, logits_u = _query_pairs(
            original, deleted_local, X_query, num_classes, unlearning, progress, label
        )
        record_ids.append(np.stack([query_ids[:k], query_ids[k:]], axis=1).ravel())  # pair order
        original_logits.append(logits_o)
        unlearned_logits.append(logits_u)
        training_ids.append(train_ids)
    n_originals = spec.n_shadow_originals
    return MIAUQueries(
        universe=name,
        universe_ids=np.sort(universe_ids),
        training_ids=tuple(training_ids),
        record_ids=np.concatenate(record_ids).astype(np.int64),
        is_member=np.tile([True, False], n_originals * k),
        original_index=np.repeat(np.arange(n_originals, dtype=np.int64), 2 * k),
        unlearned_index=np.tile(np.repeat(np.arange(k, dtype=np.int64), 2), n_originals),
        original_logits=np.concatenate(original_logits),
        unlearned_logits=np.concatenate(unlearned_logits),
    )


def _prepared_data(
    X: object, y: object, spec: MIAUSpec, unlearning: object
) -> tuple[str, str | UnlearnFn, Tensor, Tensor, int]:
    """Check the call; return (unlearning name and operation, X and y as tensors, number of classes)."""
    if not isinstance(spec, MIAUSpec):
        raise ConfigError(f"spec must be an MIAUSpec, got {type(spec).__name__}")
    unlearn_name, operation = _resolve_unlearning(unlearning)
    X_t, y_t = _as_tensor_data(X, y)
    n = int(X_t.shape[0])
    if n < 4:
        raise InputError(f"need at least 4 records for two universes with two pools each, got {n}")
    return unlearn_name, operation, X_t, y_t, max(int(y_t.max()) + 1, 2)


def _train_universes(
    X: Tensor, y: Tensor, num_classes: int, spec: MIAUSpec, unlearning: str | UnlearnFn,
    progress: ProgressFn | None,
) -> tuple[MIAUQueries, MIAUQueries]:
    """Split the records 50/50 into the (shadow, target) universes and query each one's models."""
    n = int(X.shape[0])
    rng = np.random.default_rng(spec.seed)
    permutation = rng.permutation(n)
    halves = {"shadow": permutation[: n // 2], "target": permutation[n // 2 :]}
    per_universe = spec.n_shadow_originals * (1 + spec.n_unlearned_per_original)
    tracker = _Progress(progress, 2 * per_universe)
    universes = {
        name: _run_universe(name, ids, X, y, num_classes, spec, unlearning, rng, tracker)
        for name, ids in halves.items()
    }
    return universes["shadow"], universes["target"]


# ---------------------------------------------------------------------------------------------
# Protocol: the whole run, and post-hoc unlearners plugged into it
# ---------------------------------------------------------------------------------------------


def run_mia_u(
    X: object,
    y: object,
    *,
    spec: MIAUSpec,
    unlearning: str | UnlearnFn = "sgd-retrain",
    progress: ProgressFn | None = None,
) -> MIAUResult:
    """Run Chen et al.'s MIA-U shadow protocol: attack the unlearning of single records.

    Trains ``2 · n_shadow_originals · (1 + n_unlearned_per_original)`` models (shadow and target
    universes), fits every attack on the shadow universe's features and reports target-universe
    metrics — the attack never sees the records, models or features it is evaluated on.

    Args:
        X: ``[N, ...]`` records (tensor or array); record ids are the row indices.
        y: ``[N]`` integer class labels (the number of classes is ``max(y) + 1``, at least 2).
        spec: Budget and settings (:class:`~certunlearn.audit.mia_u_spec.MIAUSpec`).
        unlearning: ``"sgd-retrain"`` (:func:`train_sgd` on the remaining records from the same
            initialisation and configuration), ``"coupled-retrain"`` (the original schedule replayed
            without the record), the name of a registered post-hoc unlearner (default options), or a
            callable ``(original_model, X, y, forget_ids) -> unlearned`` (:data:`UnlearnFn`; ids are
            rows of the given ``X``).
        progress: Called as ``progress(done, total, label)`` after each trained or unlearned model.

    Returns:
        :class:`~certunlearn.audit.mia_u_results.MIAUResult` (``.auc``, ``.tpr_at`` of the best
        attack on the target set).

    Raises:
        ConfigError: A bad ``unlearning`` or spec.
        InputError: Malformed data, or too few records for the spec.

    Example:
        >>> import torch
        >>> from certunlearn.train import SGDConfig
        >>> X = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        >>> spec = MIAUSpec(n_shadow_originals=1, n_unlearned_per_original=2, records_per_original=10,
        ...     model="logreg", training=SGDConfig(epochs=2, batch_size=10, lr=0.5),
        ...     attack_models=("logistic_regression",), features=("basic",), n_bootstrap=0)
        >>> seen = []
        >>> result = run_mia_u(X, (X[:, 0] > 0).long(), spec=spec,
        ...     progress=lambda done, total, label: seen.append(done))
        >>> seen == list(range(1, 7)), 0.0 <= result.auc <= 1.0
        (True, True)
    """
    unlearn_name, operation, X_t, y_t, num_classes = _prepared_data(X, y, spec, unlearning)
    started = time.perf_counter()
    shadow, target = _train_universes(X_t, y_t, num_classes, spec, operation, progress)
    fitted, target_scores, notes = fit_attacks(shadow, target, spec)
    results = evaluate_attacks(target, target_scores, spec)
    best_index, epsilon = best_attack(results, spec)
    return MIAUResult(
        spec=spec,
        unlearning=unlearn_name,
        negatives=spec.negatives,
        negatives_definition=NEGATIVES[spec.negatives],
        shadow=shadow,
        target=target,
        attacks=tuple(results),
        fitted=fitted,
        best_index=best_index,
        epsilon=epsilon,
        notes=tuple(dict.fromkeys(notes)),
        elapsed_s=time.perf_counter() - started,
    )


def posthoc_unlearning(
    method: str,
    *,
    epsilon: float | None = None,
    delta: float | None = None,
    generator: torch.Generator | None = None,
    **options: Any,
) -> UnlearnFn:
    """Wrap a registered post-hoc unlearner (Newton family, CureNewton, fine-tune …) for :func:`run_mia_u`.

    The returned callable builds ``UNLEARNERS[method](model, **options).fit(X, y)`` on each original
    and returns ``forget(forget_ids, epsilon=, delta=, generator=)``'s released parameters. HF-OCU
    records its statistics during training and is not a post-hoc method.

    Args:
        method: Name of a :class:`~certunlearn.unlearn.posthoc.PostHocUnlearner` subclass in
            :data:`~certunlearn.unlearn.UNLEARNERS`.
        epsilon: ε of a noisy release (with ``delta``), or None for a noiseless one.
        delta: δ of a noisy release.
        generator: Source of the release noise (and of stochastic methods' minibatches).
        **options: Constructor options of the method (e.g. ``weight_decay`` — pass the value the
            models were trained with).

    Returns:
        An :data:`UnlearnFn` named after the method.

    Raises:
        ConfigError: Unknown method, or one that is not post-hoc.

    Example:
        >>> fn = posthoc_unlearning("newton", weight_decay=0.1)
        >>> fn.__name__
        'newton'
        >>> posthoc_unlearning("hfocu")
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: 'hfocu' is not a post-hoc unlearner (it cannot start from a trained model); use one of ['abs-newton', 'coupled-retrain', 'curenewton', 'damped-newton', 'finetune', 'gradient-ascent', 'influence', 'newton', 'pinv-newton', 'retrain']
    """
    import certunlearn.unlearn  # noqa: F401  (registers every method)
    from certunlearn.unlearn.base import UNLEARNERS
    from certunlearn.unlearn.posthoc import PostHocUnlearner

    cls = get_unlearner(method)
    allowed = sorted(n for n, c in UNLEARNERS.items() if issubclass(c, PostHocUnlearner))
    if not issubclass(cls, PostHocUnlearner):
        raise ConfigError(
            f"{method!r} is not a post-hoc unlearner (it cannot start from a trained model); "
            f"use one of {allowed}"
        )

    def unlearn(model: nn.Module, X: Tensor, y: Tensor, forget_ids: list[int]) -> UnlearnResult:
        unlearner = cls(model, **options).fit(X, y)  # type: ignore[call-arg]
        return unlearner.forget(forget_ids, epsilon=epsilon, delta=delta, generator=generator)

    unlearn.__name__ = method
    unlearn.__qualname__ = method
    return unlearn


# ---------------------------------------------------------------------------------------------
# Auditing one (original, unlearned) pair with a fitted attack
# ---------------------------------------------------------------------------------------------


def _call_logits(name: str, fn: object, X: object, n: int, num_classes: int | None) -> np.ndarray:
    if not callable(fn):
        raise ConfigError(f"{name} must be callable (X -> logits), got {type(fn).__name__}")
    with torch.no_grad():
        return _to_numpy(name, fn(X), n, num_classes)


def _labels(name: str, y: object, n: int) -> np.ndarray:
    labels = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{name} must be {n} integer labels, got shape {labels.shape}, dtype {labels.dtype}")
    return labels.astype(np.int64)


def audit_unlearning(
    original_logits_fn: Callable[[Any], Any],
    unlearned_logits_fn: Callable[[Any], Any],
    X_forget: object,
    y_forget: object,
    X_negative: object,
    y_negative: object,
    attack: FittedAttack | MIAUResult,
    *,
    alpha: float = 0.05,
    delta: float = 1e-5,
    fprs: Sequence[float] = (0.01, 0.001),
    n_bootstrap: int = 1000,
    rng: np.random.Generator | None = None,
) -> UnlearningAudit:
    """Apply a fitted MIA-U attack to one (original, unlearned) pair that a user brings.

    Members are the forgotten records; negatives must match what the attack was trained against
    (``attack.negatives``: records neither model saw for ``"out_out"``, retained records for
    ``"in_in"``). The attack applies its own output defence to both models' logits.

    Args:
        original_logits_fn: ``X -> logits [n, C]`` of the original model (an ``nn.Module`` works).
        unlearned_logits_fn: The same for the unlearned model.
        X_forget: Forgotten records, in whatever form the two functions take.
        y_forget: ``[n_forget]`` labels (used for the accuracies in the result).
        X_negative: Negative records.
        y_negative: ``[n_negative]`` labels.
        attack: A :class:`FittedAttack`, or an :class:`MIAUResult` (its best attack is used).
        alpha: Error level of the intervals and of ε_lb, in (0, 1).
        delta: δ of ε_lb.
        fprs: Targets x of TPR@FPR=x.
        n_bootstrap: Resamples of the AUC band.
        rng: Source of the bootstrap randomness.

    Returns:
        :class:`UnlearningAudit`.

    Raises:
        ConfigError: ``attack`` is neither a fitted attack nor a result; bad options.
        InputError: Shapes that do not match, non-finite logits.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> attack = FittedAttack("l2_distance", "logistic_regression", "none", "out_out",
        ...     LogisticRegression().fit([[0.0], [1.0]], [0, 1]), 2)
        >>> original = lambda X: np.stack([X, -X], axis=1)
        >>> unlearned = lambda X: np.stack([-np.abs(X), np.abs(X)], axis=1)
        >>> audit = audit_unlearning(original, unlearned, np.array([2.0, 3.0]), np.array([0, 0]),
        ...     np.array([-2.0, -3.0]), np.array([1, 1]), attack, n_bootstrap=0)
        >>> audit.auc, audit.accuracy["original_forget"], audit.accuracy["unlearned_forget"]
        (1.0, 1.0, 0.0)
    """
    if isinstance(attack, MIAUResult):
        attack = attack.best_attack
    if not isinstance(attack, FittedAttack):
        raise ConfigError(f"attack must be a FittedAttack or an MIAUResult, got {type(attack).__name__}")
    n_forget, n_negative = len(X_forget), len(X_negative)  # type: ignore[arg-type]
    if n_forget == 0 or n_negative == 0:
        raise InputError("X_forget and X_negative must not be empty")
    labels_forget = _labels("y_forget", y_forget, n_forget)
    labels_negative = _labels("y_negative", y_negative, n_negative)
    o_forget = _call_logits("original_logits_fn", original_logits_fn, X_forget, n_forget, None)
    num_classes = o_forget.shape[1]
    u_forget = _call_logits("unlearned_logits_fn", unlearned_logits_fn, X_forget, n_forget, num_classes)
    o_negative = _call_logits("original_logits_fn", original_logits_fn, X_negative, n_negative, num_classes)
    u_negative = _call_logits(
        "unlearned_logits_fn", unlearned_logits_fn, X_negative, n_negative, num_classes
    )
    scores_forget = attack.membership_scores(original_logits=o_forget, unlearned_logits=u_forget)
    scores_negative = attack.membership_scores(original_logits=o_negative, unlearned_logits=u_negative)
    accuracy = {
        "original_forget": float(np.mean(o_forget.argmax(axis=1) == labels_forget)),
        "unlearned_forget": float(np.mean(u_forget.argmax(axis=1) == labels_forget)),
        "original_negative": float(np.mean(o_negative.argmax(axis=1) == labels_negative)),
        "unlearned_negative": float(np.mean(u_negative.argmax(axis=1) == labels_negative)),
    }
    return UnlearningAudit(
        attack=attack.as_dict(),
        metrics=attack_metrics(
            scores_forget, scores_negative, alpha=alpha, fprs=fprs, n_bootstrap=n_bootstrap, rng=rng
        ),
        epsilon=epsilon_lower_bound(scores_forget, scores_negative, delta=delta, alpha=alpha),
        scores_forget=scores_forget,
        scores_negative=scores_negative,
        accuracy=accuracy,
    )
