r"""The MIA-L attack registry (:data:`ATTACKS`) and the LOSS attack: membership inference on a model.

Every attack returns **membership scores, higher = more likely member** (the package's one
convention, docs/auditing.md "Conventions"), one per audited example;
:func:`~certunlearn.audit.mia_l.run_mia_l` turns them into
:class:`~certunlearn.audit.metrics.AttackMetrics` and empirical ε lower bounds.

* **LOSS** (Yeom, Giacomelli, Fredrikson & Jha, "Privacy Risk in Machine Learning", IEEE CSF 2018):
  ``s = −L = log p_y`` (:func:`loss_attack`). Yeom's own threshold is the mean training loss; the
  ROC sweeps every threshold.
* **LiRA** (Carlini et al., IEEE S&P 2022) online / offline, with per-example or fixed variance:
  :mod:`certunlearn.audit.lira`.
* **RMIA** (Zarifzadeh, Liu & Shokri, ICML 2024) online / offline with a tuned ``a``:
  :mod:`certunlearn.audit.rmia`.

An attack is a function ``f(AttackInputs) -> scores [n]`` (or ``(scores, details)``) registered as an
:class:`Attack` with what it needs (shadow models, population samples); :func:`register_attack` adds
one. Pure numpy/scipy: nothing here imports torch (the runner, :mod:`certunlearn.audit.mia_l`, does).

Example:
    >>> from certunlearn.audit.metrics import attack_metrics
    >>> rng = np.random.default_rng(0)
    >>> labels = np.zeros(200, dtype=np.int64)
    >>> phi = np.r_[rng.normal(2, 1, 100), rng.normal(0, 1, 100)]  # members, then non-members
    >>> logits = np.stack([phi, np.zeros(200)], axis=1)           # φ = z_0 − z_1 for label 0
    >>> scores = ATTACKS["loss"].fn(AttackInputs(logits, labels))
    >>> round(attack_metrics(scores[:100], scores[100:], n_bootstrap=0).auc, 2)
    0.95
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy.special import softmax as _softmax

from certunlearn.audit.attack_checks import _labels, _per_example
from certunlearn.audit.lira import DEFAULT_MIN_STD, LIRA_VARIANTS, lira
from certunlearn.audit.rmia import (
    RMIA_A_GRID,
    _check_a,
    _check_gamma,
    _rmia_from,
    _rmia_inputs,
    _tune_a,
)
from certunlearn.audit.signals import membership_scores
from certunlearn.errors import ConfigError, InputError
from certunlearn.validation import check_positive, register

__all__ = [
    "ATTACKS",
    "DEFAULT_ATTACKS",
    "Attack",
    "AttackFn",
    "AttackInputs",
    "AttackOutput",
    "attack_options",
    "loss_attack",
    "register_attack",
]

DEFAULT_ATTACKS = ("loss", "lira-online", "lira-offline", "rmia")
"""Attacks :func:`~certunlearn.audit.mia_l.run_mia_l`, ``MIALJob`` and ``certunlearn audit mia-l`` run
unless told otherwise. (Audit plans have their own default, :data:`~certunlearn.jobs.plan.PLAN_ATTACKS`.)"""


# ---------------------------------------------------------------------------------------------
# LOSS
# ---------------------------------------------------------------------------------------------


def loss_attack(target_logits: object, labels: object) -> np.ndarray:
    """LOSS attack (Yeom et al., CSF 2018): score ``−L = log p_y`` (mean over queries).

    For an ε-DP learner the attack's advantage ``TPR − FPR`` is at most ``e^ε − 1``; Yeom's own
    threshold is the mean training loss; :func:`~certunlearn.audit.mia_l.run_mia_l` sweeps all of
    them.

    Args:
        target_logits: The model's logits ``[n, C]`` (or ``[n, K, C]`` for K augmented queries).
        labels: Integer labels ``[n]``.

    Returns:
        ``[n]`` float64 scores, higher = member.

    Raises:
        InputError: Bad shapes, NaN/inf logits, labels out of range.

    Example:
        >>> loss_attack(np.array([[3.0, 0.0], [0.0, 3.0]]), np.array([0, 0])).round(4)
        array([-0.0486, -3.0486])
    """
    y = _labels(labels)
    outputs = _per_example("target_logits", target_logits, y.size)
    classes = outputs.shape[-1]
    scores = membership_scores(
        "loss", logits=outputs.reshape(-1, classes), labels=np.repeat(y, outputs.shape[1])
    )
    return scores.reshape(y.size, -1).mean(axis=1)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttackInputs:
    """What :func:`~certunlearn.audit.mia_l.run_mia_l` hands every attack (float64 logits; int64 labels).

    Attributes:
        target_logits: Target logits on the audited examples ``[n, C]`` (members first).
        labels: ``[n]`` labels.
        shadow_logits: Shadow logits on the audited examples ``[N, n, C]``, or None.
        membership: ``[N, n]`` bool, or None.
        population_logits: Target logits on the population samples ``[m, C]``, or None.
        population_labels: ``[m]`` labels, or None.
        population_shadow_logits: Shadow logits on the population ``[N, m, C]``, or None.
        population_membership: ``[N, m]`` bool, or None.
        options: Attack options (``gamma``, ``a``, ``min_std``; see :func:`attack_options`).
    """

    target_logits: np.ndarray
    labels: np.ndarray
    shadow_logits: np.ndarray | None = None
    membership: np.ndarray | None = None
    population_logits: np.ndarray | None = None
    population_labels: np.ndarray | None = None
    population_shadow_logits: np.ndarray | None = None
    population_membership: np.ndarray | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


AttackOutput = np.ndarray | tuple[np.ndarray, Mapping[str, Any]]
AttackFn = Callable[[AttackInputs], AttackOutput]
"""``f(inputs) -> scores [n]`` or ``(scores, details)``; scores higher = member."""


@dataclass(frozen=True, slots=True)
class Attack:
    """A registered attack.

    Attributes:
        fn: The attack function (:data:`AttackFn`).
        needs_shadows: Whether it reads shadow outputs.
        needs_population: Whether it reads population samples.
        description: One line for reports.
    """

    fn: AttackFn
    needs_shadows: bool = False
    needs_population: bool = False
    description: str = ""


def attack_options(
    *, gamma: float = 1.0, a: float | None = None, min_std: float = DEFAULT_MIN_STD
) -> dict[str, float | None]:
    """Checked options of the registered attacks, as :attr:`AttackInputs.options` takes them.

    Args:
        gamma: RMIA's γ >= 1.
        a: Offline RMIA's coefficient in [0, 1] (None: tuned on the reference models).
        min_std: Floor of LiRA's σ (> 0).

    Returns:
        ``{"gamma": float, "a": float | None, "min_std": float}``.

    Raises:
        ConfigError: A value out of its range.

    Example:
        >>> attack_options(gamma=2)
        {'gamma': 2.0, 'a': None, 'min_std': 1e-06}
        >>> attack_options(a=1.5)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: a must be in [0, 1], got 1.5
    """
    return {
        "gamma": _check_gamma(gamma),
        "a": None if a is None else _check_a(a),
        "min_std": check_positive("min_std", min_std),
    }


def _need(value: np.ndarray | None, what: str, attack: str) -> np.ndarray:
    if value is None:
        raise InputError(f"attack {attack!r} needs {what}")
    return value


def _lira_attack(variant: str) -> AttackFn:
    def run(inputs: AttackInputs) -> AttackOutput:
        scores = lira(
            inputs.target_logits,
            inputs.labels,
            _need(inputs.shadow_logits, "shadow outputs", f"lira-{variant}"),
            _need(inputs.membership, "shadow membership", f"lira-{variant}"),
            variant=variant,
            min_std=inputs.options.get("min_std", DEFAULT_MIN_STD),
        )
        return scores, {"variant": variant}

    return run


def _rmia_attack(online: bool) -> AttackFn:
    def run(inputs: AttackInputs) -> AttackOutput:
        name = "rmia" if online else "rmia-offline"
        shadows = _softmax(_need(inputs.shadow_logits, "shadow outputs", name), axis=-1)
        population = _softmax(_need(inputs.population_logits, "population samples", name), axis=-1)
        population_shadows = _softmax(
            _need(inputs.population_shadow_logits, "shadow outputs on the population", name),
            axis=-1,
        )
        membership = _need(inputs.membership, "shadow membership", name)
        gamma = inputs.options.get("gamma", 1.0)
        details: dict[str, Any] = {
            "online": online,
            "gamma": gamma,
            "population": int(population.shape[0]),
        }
        # validated and reduced once, for tuning a (offline) and for the scores
        data = _rmia_inputs(
            _softmax(inputs.target_logits, axis=-1), inputs.labels, shadows, membership, population,
            inputs.population_labels, population_shadows, inputs.population_membership,
        )
        a = 0.0
        if not online:
            a = inputs.options.get("a")
            details["a_tuned"] = a is None
            a = _tune_a(data, _check_gamma(gamma), RMIA_A_GRID) if a is None else _check_a(a)
            details["a"] = a
        return _rmia_from(data, _check_gamma(gamma), a, online), details

    return run


def _loss(inputs: AttackInputs) -> AttackOutput:
    return loss_attack(inputs.target_logits, inputs.labels)


ATTACKS: dict[str, Attack] = {
    "loss": Attack(_loss, description="LOSS threshold (Yeom et al. 2018): score = -loss"),
    **{
        f"lira-{variant}": Attack(
            _lira_attack(variant),
            needs_shadows=True,
            description=f"LiRA {variant} (Carlini et al. 2022)",
        )
        for variant in LIRA_VARIANTS
    },
    "rmia": Attack(
        _rmia_attack(True),
        needs_shadows=True,
        needs_population=True,
        description="RMIA online (Zarifzadeh et al. 2024)",
    ),
    "rmia-offline": Attack(
        _rmia_attack(False),
        needs_shadows=True,
        needs_population=True,
        description="RMIA offline, a tuned on the references (Zarifzadeh et al. 2024)",
    ),
}
"""Registry of MIA-L attacks used by :func:`~certunlearn.audit.mia_l.run_mia_l`: name -> :class:`Attack`."""


def register_attack(
    name: str,
    fn: AttackFn,
    *,
    needs_shadows: bool = False,
    needs_population: bool = False,
    description: str = "",
    force: bool = False,
) -> None:
    """Register an attack ``f(AttackInputs) -> scores [n]`` (higher = member) under ``name``.

    Args:
        name: Registry key.
        fn: The attack; may also return ``(scores, details)`` with a JSON-friendly dict.
        needs_shadows: It reads ``shadow_logits``/``membership``.
        needs_population: It reads the population fields.
        description: One line for reports.
        force: Replace an existing entry instead of raising.

    Raises:
        ConfigError: ``name`` is taken and ``force`` is False, or ``fn`` is not callable.

    Example:
        >>> register_attack("loss", _loss)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: attack 'loss' is already registered; pass force=True to replace it
    """
    if not callable(fn):
        raise ConfigError(f"attack {name!r} must be callable, got {type(fn).__name__}")
    entry = Attack(fn, bool(needs_shadows), bool(needs_population), str(description))
    register("attack", ATTACKS, name, entry, force=force)
