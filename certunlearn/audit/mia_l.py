r"""MIA-L, membership inference on a released model: :func:`run_mia_l` and its :class:`MIAResult`.

:func:`run_mia_l` evaluates a target (an ``nn.Module`` or any callable returning logits, e.g. a
deployed model behind an API) on its members and non-members, trains or reuses shadow models
(:mod:`certunlearn.audit.shadows`), runs the registered attacks of
:data:`~certunlearn.audit.attacks.ATTACKS` (LOSS; LiRA, :mod:`certunlearn.audit.lira`; RMIA,
:mod:`certunlearn.audit.rmia`), and turns their scores (higher = member) into
:class:`~certunlearn.audit.metrics.AttackMetrics` and empirical ε lower bounds
(:func:`~certunlearn.audit.epsilon.epsilon_lower_bound`, Bonferroni over the attacks).

Its steps, each a private function: input checks (attacks, audited rows, options), the target's
outputs on the audited rows, shadow training or reuse, the shadows' outputs and the RMIA population,
per-attack scoring, and the assembly of the result.

Example:
    >>> rng = np.random.default_rng(0)
    >>> labels = np.zeros(200, dtype=np.int64)
    >>> phi = np.r_[rng.normal(2, 1, 100), rng.normal(0, 1, 100)]  # members, then non-members
    >>> logits = np.stack([phi, np.zeros(200)], axis=1)           # φ = z_0 − z_1 for label 0
    >>> result = run_mia_l(lambda X: X, logits[:100], labels[:100], logits[100:], labels[100:],
    ...                    attacks=("loss",))
    >>> round(result.auc, 2), result.best_attack
    (0.95, 'loss')
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from certunlearn.audit.attacks import ATTACKS, DEFAULT_ATTACKS, AttackInputs, attack_options
from certunlearn.audit.epsilon import EpsilonBound, epsilon_lower_bound
from certunlearn.audit.lira import DEFAULT_MIN_STD
from certunlearn.audit.metrics import AttackMetrics, attack_metrics, readonly_copy
from certunlearn.audit.shadows import (
    ShadowSet,
    ShadowSpec,
    train_shadows,
)
from certunlearn.data_checks import as_classification_data
from certunlearn.digest import data_digest, row_digests
from certunlearn.errors import ConfigError, InputError
from certunlearn.progress import ProgressFn
from certunlearn.report.entries import AttackSection
from certunlearn.serialize import plain
from certunlearn.validation import check_int, check_real_array

__all__ = ["MIAResult", "run_mia_l"]


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MIAResult:
    """Outcome of :func:`run_mia_l`: metrics and an ε lower bound per attack.

    The ε bounds are taken at ``alpha / len(attacks)`` each (Bonferroni over attacks), so
    :attr:`epsilon_lower_bound` — the largest of them — holds with probability >= 1 − alpha.
    AUCs and TPRs are point estimates; :attr:`best_attack` (highest AUC) is chosen after the fact.

    Attributes:
        metrics: ``{attack: AttackMetrics}`` (in the order run).
        epsilon: ``{attack: EpsilonBound}`` at level ``alpha / len(attacks)``.
        scores_in: ``{attack: [n_members] scores}`` (read-only).
        scores_out: ``{attack: [n_non_members] scores}`` (read-only).
        details: ``{attack: {...}}`` — e.g. the LiRA variant, RMIA's tuned ``a``.
        n_shadows: Shadow models used (0 when none).
        n_population: Population samples used by RMIA (0 when none).
        alpha: Overall error level of the ε bounds.
        delta: δ of the ε bounds.
        notes: Caveats found while running (e.g. where the population came from).
    """

    metrics: Mapping[str, AttackMetrics]
    epsilon: Mapping[str, EpsilonBound]
    scores_in: Mapping[str, np.ndarray]
    scores_out: Mapping[str, np.ndarray]
    details: Mapping[str, Mapping[str, Any]]
    n_shadows: int
    n_population: int
    alpha: float
    delta: float
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = list(self.metrics)
        if not names:
            raise ConfigError("an MIAResult needs at least one attack")
        for label, mapping in (
            ("epsilon", self.epsilon),
            ("scores_in", self.scores_in),
            ("scores_out", self.scores_out),
            ("details", self.details),
        ):
            if list(mapping) != names:
                raise ConfigError(
                    f"{label} must have the same attacks as metrics: {names}, got {list(mapping)}"
                )
        check_int("n_shadows", self.n_shadows, minimum=0)
        check_int("n_population", self.n_population, minimum=0)
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "epsilon", MappingProxyType(dict(self.epsilon)))
        object.__setattr__(
            self,
            "scores_in",
            MappingProxyType({k: readonly_copy(v, np.float64) for k, v in self.scores_in.items()}),
        )
        object.__setattr__(
            self,
            "scores_out",
            MappingProxyType({k: readonly_copy(v, np.float64) for k, v in self.scores_out.items()}),
        )
        object.__setattr__(
            self,
            "details",
            MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.details.items()}),
        )
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def attacks(self) -> tuple[str, ...]:
        """Names of the attacks run, in order."""
        return tuple(self.metrics)

    @property
    def best_attack(self) -> str:
        """The attack with the highest AUC (the first one on ties)."""
        return max(self.metrics, key=lambda name: self.metrics[name].auc)

    @property
    def auc(self) -> float:
        """AUC of :attr:`best_attack`."""
        return self.metrics[self.best_attack].auc

    @property
    def tpr_at(self) -> Mapping[float, float]:
        """``{x: TPR@FPR=x}`` of :attr:`best_attack` (convention ``fpr <= x``)."""
        return self.metrics[self.best_attack].tpr_at

    @property
    def epsilon_lower_bound(self) -> float:
        """Largest ε lower bound over the attacks, valid with probability >= 1 − alpha."""
        return max(bound.epsilon for bound in self.epsilon.values())

    def _epsilon_correction(self) -> str:
        return f"Bonferroni over {len(self.metrics)} attacks (alpha / {len(self.metrics)} each)"

    def as_dict(self, *, include_roc: bool = False, include_scores: bool = False) -> dict[str, Any]:
        """JSON-friendly copy.

        Args:
            include_roc: Also write every attack's ROC.
            include_scores: Also write the raw scores.

        Example:
            >>> import json
            >>> rng = np.random.default_rng(0)
            >>> logits = rng.normal(size=(40, 3))
            >>> zeros = np.zeros(20, dtype=np.int64)
            >>> result = run_mia_l(lambda X: torch.as_tensor(logits), logits[:20], zeros,
            ...                    logits[20:], zeros, attacks=("loss",))
            >>> sorted(json.loads(json.dumps(result.as_dict())))[:4]
            ['alpha', 'attacks', 'auc', 'best_attack']
        """
        attacks: dict[str, Any] = {}
        for name in self.metrics:
            entry: dict[str, Any] = {
                "metrics": self.metrics[name].as_dict(include_roc=include_roc),
                "epsilon": self.epsilon[name].as_dict(),
                "details": plain(dict(self.details[name])),
                "description": ATTACKS[name].description if name in ATTACKS else "",
            }
            if include_scores:
                entry["scores_in"] = self.scores_in[name].tolist()
                entry["scores_out"] = self.scores_out[name].tolist()
            attacks[name] = entry
        best = self.best_attack
        return {
            "attacks": attacks,
            "best_attack": best,
            "auc": self.auc,
            "tpr_at": {repr(x): tpr for x, tpr in self.tpr_at.items()},
            "tpr_convention": self.metrics[best].tpr_convention,
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "epsilon_correction": self._epsilon_correction(),
            "n_members": self.metrics[best].n_in,
            "n_non_members": self.metrics[best].n_out,
            "n_shadows": self.n_shadows,
            "n_population": self.n_population,
            "alpha": self.alpha,
            "delta": self.delta,
            "notes": list(self.notes),
        }

    def report_section(
        self, *, reference: MIAResult | AttackSection | None = None, include_roc: bool = True,
        include_histograms: bool = True,
    ) -> AttackSection:
        """This audit as the MIA-L section of a compliance report (:class:`~certunlearn.report.entries.AttackSection`).

        Each attack's entry carries its metrics and ε bound (at ``alpha / len(attacks)``); the
        section's headline bound is :attr:`epsilon_lower_bound` (Bonferroni over the attacks) with
        the largest of the attacks' caps.

        Args:
            reference: The same attacks run on the retrained model (matched by name), or None.
            include_roc: Put each attack's ROC (thinned to 256 points) in the report.
            include_histograms: Put each attack's score histograms in the report.

        Example:
            >>> rng = np.random.default_rng(0)
            >>> logits = rng.normal(size=(40, 3))
            >>> zeros = np.zeros(20, dtype=np.int64)
            >>> result = run_mia_l(lambda X: torch.as_tensor(logits), logits[:20], zeros,
            ...                    logits[20:], zeros, attacks=("loss",))
            >>> section = result.report_section(reference=result)
            >>> section.attacks[0].name, section.attacks[0].reference.auc == result.auc, section.n_shadows
            ('loss', True, 0)
        """
        attacks = tuple(
            self.metrics[name].report_entry(
                name=name,
                description=ATTACKS[name].description if name in ATTACKS else "",
                epsilon=self.epsilon[name],
                scores_in=self.scores_in[name] if include_histograms else None,
                scores_out=self.scores_out[name] if include_histograms else None,
                include_roc=include_roc,
            )
            for name in self.metrics
        )
        section = AttackSection(
            attacks=attacks,
            n_shadows=self.n_shadows,
            n_population=self.n_population,
            alpha=self.alpha,
            delta=self.delta,
            tpr_convention=self.metrics[self.best_attack].tpr_convention,
            epsilon_lb=self.epsilon_lower_bound,
            epsilon_cap=max(bound.cap for bound in self.epsilon.values()),
            epsilon_correction=self._epsilon_correction(),
            notes=self.notes,
        )
        if isinstance(reference, MIAResult):
            reference = reference.report_section(include_roc=include_roc, include_histograms=include_histograms)
        return section if reference is None else section.with_reference(reference)


# ---------------------------------------------------------------------------------------------
# Running attacks on a model
# ---------------------------------------------------------------------------------------------


def _target_outputs(target: object, X: Tensor, batch_size: int | None) -> np.ndarray:
    """Logits ``[m, C]`` of an nn.Module (eval mode, no grad, mode restored) or a callable."""
    step = X.shape[0] if batch_size is None else batch_size
    if isinstance(target, nn.Module):
        reference = next(itertools.chain(target.parameters(), target.buffers()), None)
        device = X.device if reference is None else reference.device
        dtype = X.dtype
        if reference is not None and reference.dtype.is_floating_point:
            dtype = reference.dtype
        was_training = target.training
        target.eval()
        try:
            with torch.no_grad():
                parts = [
                    target(X[i : i + step].to(device=device, dtype=dtype))
                    for i in range(0, X.shape[0], step)
                ]
        finally:
            target.train(was_training)
    elif callable(target):
        with torch.no_grad():
            parts = [target(X[i : i + step]) for i in range(0, X.shape[0], step)]
    else:
        raise ConfigError(
            f"target must be an nn.Module or a callable X -> logits, got {type(target).__name__}"
        )
    arrays = []
    for part in parts:
        if isinstance(part, Tensor):
            part = part.detach().cpu().numpy()
        arrays.append(np.asarray(part))
    out = np.concatenate(arrays, axis=0) if arrays else np.empty((0, 0))
    if out.ndim != 2 or out.shape[0] != X.shape[0]:
        raise InputError(f"the target must return logits [{X.shape[0]}, C], got shape {out.shape}")
    try:
        return check_real_array("target outputs", out)
    except InputError as exc:
        raise InputError(f"the target returned unusable logits: {exc}") from exc


def _audit_rows(name: str, X: object, y: object) -> tuple[Tensor, Tensor]:
    return as_classification_data(X, y, names=(f"X_{name}", f"y_{name}"))


def _check_attacks(attacks: object) -> tuple[str, ...]:
    if isinstance(attacks, str) or not isinstance(attacks, Sequence) or len(attacks) == 0:
        raise ConfigError(
            f"attacks must be a non-empty sequence of names from {sorted(ATTACKS)}, got {attacks!r}"
        )
    names = tuple(attacks)
    for name in names:
        if name not in ATTACKS:
            raise ConfigError(f"attacks must be among {sorted(ATTACKS)}, got {name!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"attacks must not repeat a name, got {list(names)}")
    return names


@dataclass(frozen=True, slots=True)
class _AuditRows:
    """The audited examples: members first, then non-members (on the members' device and dtype)."""

    X: Tensor
    y: Tensor
    labels: np.ndarray  # ``y`` on the CPU, int64
    n_members: int


def _audited_rows(
    X_members: object, y_members: object, X_non_members: object, y_non_members: object
) -> _AuditRows:
    """Check both sets of rows and stack them, members first."""
    X_in, y_in = _audit_rows("members", X_members, y_members)
    X_out, y_out = _audit_rows("non_members", X_non_members, y_non_members)
    if X_in.shape[1:] != X_out.shape[1:]:
        raise InputError(
            f"X_members rows {tuple(X_in.shape[1:])} and "
            f"X_non_members rows {tuple(X_out.shape[1:])} differ"
        )
    X = torch.cat([X_in, X_out.to(device=X_in.device, dtype=X_in.dtype)])
    y = torch.cat([y_in, y_out.to(y_in.device)])
    return _AuditRows(X, y, y.cpu().numpy(), int(X_in.shape[0]))


def _audited_logits(target: object, audit: _AuditRows, batch_size: int | None) -> np.ndarray:
    """The target's logits ``[n, C]`` on the audited rows, with a class for every label."""
    logits = _target_outputs(target, audit.X, batch_size)
    if logits.shape[1] <= audit.labels.max():
        raise InputError(
            f"the target returned {logits.shape[1]} classes "
            f"but a label is {int(audit.labels.max())}"
        )
    return logits


def _shadow_pool(shadow_X: object, shadow_y: object) -> tuple[Tensor, Tensor] | None:
    """The shadows' training pool the caller gave (both or neither of ``shadow_X``/``shadow_y``)."""
    if shadow_X is None and shadow_y is None:
        return None
    if shadow_X is None or shadow_y is None:
        raise InputError("shadow_X and shadow_y must be given together")
    return _audit_rows("shadow", shadow_X, shadow_y)


def _obtain_shadows(
    names: tuple[str, ...],
    audit: _AuditRows,
    pool: tuple[Tensor, Tensor] | None,
    *,
    shadows: ShadowSet | None,
    shadow_spec: ShadowSpec | None,
    cache_dir: str | None,
    device: torch.device | str | None,
    progress: ProgressFn | None,
    notes: list[str],
) -> tuple[ShadowSet | None, tuple[Tensor, Tensor] | None]:
    """Reuse ``shadows`` or train them with ``shadow_spec`` when an attack needs them.

    Returns the shadows (None when none were given or needed) and their pool (None when unknown).
    Shadows trained here use ``pool``, or else the audited rows (noted).
    """
    given = shadows is not None
    if shadows is not None and shadow_spec is not None:
        raise ConfigError("pass shadows= (trained) or shadow_spec= (to train), not both")
    if shadows is not None and not isinstance(shadows, ShadowSet):
        raise ConfigError(f"shadows must be a ShadowSet, got {type(shadows).__name__}")
    if shadows is None and any(ATTACKS[n].needs_shadows for n in names):
        if shadow_spec is None:
            needing = [n for n in names if ATTACKS[n].needs_shadows]
            raise ConfigError(
                f"attacks {needing} need shadow models: pass shadows= or shadow_spec="
            )
        if pool is None:
            pool = (audit.X, audit.y)
            notes.append(
                "shadows trained on the audited examples (each IN for pkeep of the shadows)"
            )
        shadows = train_shadows(
            shadow_spec, pool[0], pool[1], cache_dir=cache_dir, progress=progress, device=device
        )
    if given and pool is not None and data_digest(*pool) != shadows.data_digest:
        raise InputError(
            "shadow_X/shadow_y are not the data these shadows were trained on (digest differs)"
        )
    return shadows, pool


def _shadow_outputs(
    shadows: ShadowSet,
    audit: _AuditRows,
    num_classes: int,
    batch_size: int | None,
    notes: list[str],
) -> dict[str, np.ndarray]:
    """The shadows' logits on the audited rows and which shadow was trained on which row."""
    shadow_logits = shadows.logits(audit.X, batch_size=batch_size).cpu().numpy()
    if shadow_logits.shape[-1] != num_classes:
        raise InputError(
            f"the shadows have {shadow_logits.shape[-1]} classes, the target {num_classes}"
        )
    membership = shadows.membership_for(audit.X, audit.y)
    unseen = int((membership.sum(axis=0) == 0).sum())
    if unseen:
        notes.append(
            f"{unseen} audited examples are not in the shadows' data (OUT for every shadow)"
        )
    return {"shadow_logits": shadow_logits, "membership": membership}


def _population_rows(
    audit: _AuditRows,
    pool: tuple[Tensor, Tensor] | None,
    shadows: ShadowSet,
    population_X: object,
    population_y: object,
) -> tuple[Tensor, Tensor, str]:
    """RMIA's population z and where it came from.

    ``population_X``/``population_y`` when given; else the rows of the shadows' pool that are not
    audited; else (no pool, or none left) the audited rows themselves.
    """
    if population_X is not None or population_y is not None:
        if population_X is None or population_y is None:
            raise InputError("population_X and population_y must be given together")
        pop_X, pop_y = _audit_rows("population", population_X, population_y)
        return pop_X, pop_y, "population_X"
    if pool is not None:
        audited = {d.tobytes() for d in row_digests(audit.X, audit.y)}
        # the pool is the shadows' data (trained here, or its digest checked by _obtain_shadows)
        keep = [i for i, d in enumerate(shadows.row_digests) if d.tobytes() not in audited]
        if keep:
            index = torch.as_tensor(keep, dtype=torch.int64, device=pool[0].device)
            return pool[0][index], pool[1][index], "shadow data outside the audit"
    return audit.X, audit.y, "audited examples (no other population given)"


def _population_outputs(
    target: object, shadows: ShadowSet, pop_X: Tensor, pop_y: Tensor, batch_size: int | None
) -> dict[str, np.ndarray]:
    """The target's and the shadows' outputs on the population, its labels and membership."""
    return {
        "population_logits": _target_outputs(target, pop_X, batch_size),
        "population_labels": pop_y.cpu().numpy(),
        "population_shadow_logits": shadows.logits(pop_X, batch_size=batch_size).cpu().numpy(),
        "population_membership": shadows.membership_for(pop_X, pop_y),
    }


def _attack_inputs(
    target: object,
    names: tuple[str, ...],
    audit: _AuditRows,
    target_logits: np.ndarray,
    shadows: ShadowSet | None,
    pool: tuple[Tensor, Tensor] | None,
    *,
    population: tuple[object, object],
    batch_size: int | None,
    notes: list[str],
) -> tuple[dict[str, Any], int]:
    """The fields of :class:`~certunlearn.audit.attacks.AttackInputs` (options aside) and the
    population size: shadow outputs when ``shadows`` are given (the attacks need them), RMIA's
    population when an attack needs it too."""
    inputs: dict[str, Any] = {"target_logits": target_logits, "labels": audit.labels}
    if shadows is None:
        return inputs, 0
    inputs.update(_shadow_outputs(shadows, audit, target_logits.shape[1], batch_size, notes))
    if not any(ATTACKS[n].needs_population for n in names):
        return inputs, 0
    pop_X, pop_y, source = _population_rows(audit, pool, shadows, *population)
    notes.append(f"RMIA population: {source} ({int(pop_X.shape[0])} samples)")
    inputs.update(_population_outputs(target, shadows, pop_X, pop_y, batch_size))
    return inputs, int(pop_X.shape[0])


def _attack_scores(name: str, bundle: AttackInputs) -> tuple[np.ndarray, dict[str, Any]]:
    """Run one registered attack: its ``[n]`` scores (checked) and its details."""
    output = ATTACKS[name].fn(bundle)
    scores, extra = output if isinstance(output, tuple) else (output, {})
    scores = check_real_array(f"scores of attack {name!r}", scores)
    if scores.shape != (bundle.labels.size,):
        raise InputError(
            f"attack {name!r} returned shape {scores.shape}, expected ({bundle.labels.size},)"
        )
    return scores, dict(extra)


def _score_attacks(
    names: tuple[str, ...],
    bundle: AttackInputs,
    n_members: int,
    *,
    delta: float,
    alpha: float,
    fprs: Sequence[float],
    n_bootstrap: int,
    rng: np.random.Generator | None,
) -> dict[str, dict[str, Any]]:
    """Per attack: metrics, an ε bound at ``alpha / len(names)``, the split scores and details.

    Returned as the like-named fields of :class:`MIAResult` (``metrics``, ``epsilon``,
    ``scores_in``, ``scores_out``, ``details``), each ``{attack: value}`` in the order run.
    """
    fields: dict[str, dict[str, Any]] = {
        key: {} for key in ("metrics", "epsilon", "scores_in", "scores_out", "details")
    }
    for name in names:
        scores, details = _attack_scores(name, bundle)
        members, non_members = scores[:n_members], scores[n_members:]
        fields["scores_in"][name], fields["scores_out"][name] = members, non_members
        fields["metrics"][name] = attack_metrics(
            members, non_members, alpha=alpha, fprs=fprs, n_bootstrap=n_bootstrap, rng=rng
        )
        fields["epsilon"][name] = epsilon_lower_bound(
            members, non_members, delta=delta, alpha=alpha / len(names)
        )
        fields["details"][name] = details
    return fields


def run_mia_l(
    target: nn.Module | Callable[[Tensor], object],
    X_members: object, y_members: object, X_non_members: object, y_non_members: object,
    *,
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    shadows: ShadowSet | None = None, shadow_X: object = None, shadow_y: object = None,
    shadow_spec: ShadowSpec | None = None,
    population_X: object = None, population_y: object = None,
    cache_dir: str | None = None, device: torch.device | str | None = None,
    delta: float = 1e-5, alpha: float = 0.05, fprs: Sequence[float] = (0.01, 0.001),
    n_bootstrap: int = 0, rng: np.random.Generator | None = None,
    gamma: float = 1.0, a: float | None = None, min_std: float = DEFAULT_MIN_STD,
    batch_size: int | None = None, progress: ProgressFn | None = None,
) -> MIAResult:
    """Run membership-inference attacks on a model and bound ε from them (MIA-L).

    The audited examples are the members (positives) followed by the non-members. Attacks that
    need shadow models use ``shadows``, or train them with ``shadow_spec`` on ``shadow_X``
    (default: the audited examples themselves — the LiRA setup, where each example is IN for half
    of the shadows). Audited rows are found among the shadow data by content (row digests): a row
    the shadows never saw is OUT for all of them, which online LiRA/RMIA refuse. RMIA's population
    z is ``population_X`` or else the shadow-data rows that are not audited; when there are none it
    falls back to the audited rows themselves (noted in the result).

    Args:
        target: An ``nn.Module`` (run in eval mode without gradients on its own device and dtype;
            its mode is restored) or any callable taking a ``[b, ...]`` tensor and returning
            logits ``[b, C]`` (tensor or array) — e.g. a deployed model behind an API.
        X_members: Training rows of the target ``[n_in, ...]``; ``y_members`` their labels.
        X_non_members: Rows it was not trained on; ``y_non_members`` their labels.
        attacks: Keys of :data:`~certunlearn.audit.attacks.ATTACKS`.
        shadows: Trained shadow models (:func:`train_shadows`).
        shadow_X: The shadows' training pool (to train them, to check ``shadows`` against, and as
            the default population); ``shadow_y`` its labels.
        shadow_spec: How to train shadows when ``shadows`` is None.
        population_X: Population samples for RMIA; ``population_y`` their labels.
        cache_dir: Shadow cache directory (see :func:`train_shadows`).
        device: Where to train shadows (None: the data's device).
        delta: δ of the ε lower bounds.
        alpha: Overall error of the ε bounds (Bonferroni over attacks) and of the metric intervals.
        fprs: FPRs x for TPR@FPR=x.
        n_bootstrap: Bootstrap resamples of each AUC band (0: none).
        rng: Randomness of the bootstrap.
        gamma: RMIA's γ >= 1.
        a: Offline RMIA's coefficient (None: tuned on the shadows).
        min_std: Floor of LiRA's σ.
        batch_size: Rows per forward pass of the target and the shadows (None: all).
        progress: Progress callback for shadow training.

    Returns:
        :class:`MIAResult`.

    Raises:
        InputError: Bad shapes/NaN, shadows that do not match ``shadow_X``, too few IN/OUT shadows.
        ConfigError: Unknown attacks, shadows needed but neither ``shadows`` nor ``shadow_spec``.

    Example:
        >>> from certunlearn.train import SGDConfig
        >>> gen = torch.Generator().manual_seed(0)
        >>> X = torch.randn(60, 5, dtype=torch.float64, generator=gen)
        >>> y = (X[:, 0] + 0.5 * torch.randn(60, dtype=torch.float64, generator=gen) > 0).long()
        >>> spec = ShadowSpec(model="logreg", n_shadows=4,
        ...                   training=SGDConfig(epochs=20, batch_size=10, lr=0.5, seed=1))
        >>> def deployed(rows):  # any callable X -> logits
        ...     return rows[:, :2] * torch.tensor([1.0, 0.0], dtype=rows.dtype)
        >>> result = run_mia_l(deployed, X[:30], y[:30], X[30:], y[30:], shadow_spec=spec,
        ...                    attacks=("loss", "lira-online-fixed", "lira-offline-fixed"))
        >>> result.attacks, 0.0 <= result.auc <= 1.0
        (('loss', 'lira-online-fixed', 'lira-offline-fixed'), True)
    """
    names = _check_attacks(attacks)
    if batch_size is not None:
        check_int("batch_size", batch_size, minimum=1)
    options = attack_options(gamma=gamma, a=a, min_std=min_std)
    audit = _audited_rows(X_members, y_members, X_non_members, y_non_members)
    target_logits = _audited_logits(target, audit, batch_size)
    notes: list[str] = []
    shadows, pool = _obtain_shadows(
        names, audit, _shadow_pool(shadow_X, shadow_y), shadows=shadows, shadow_spec=shadow_spec,
        cache_dir=cache_dir, device=device, progress=progress, notes=notes,
    )
    need_shadows = shadows is not None and any(ATTACKS[n].needs_shadows for n in names)
    inputs, n_population = _attack_inputs(
        target, names, audit, target_logits, shadows if need_shadows else None, pool,
        population=(population_X, population_y), batch_size=batch_size, notes=notes,
    )
    fields = _score_attacks(
        names, AttackInputs(**inputs, options=options), audit.n_members, delta=delta, alpha=alpha,
        fprs=fprs, n_bootstrap=n_bootstrap, rng=rng,
    )
    n_shadows = shadows.n_shadows if need_shadows and shadows is not None else 0
    return MIAResult(**fields, n_shadows=n_shadows, n_population=n_population, alpha=alpha,
                     delta=delta, notes=tuple(notes))
