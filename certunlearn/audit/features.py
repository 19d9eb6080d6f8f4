r"""Features of the attack on the unlearning itself (MIA-U, Chen et al., CCS 2021), defences, DegCount/DegRate.

An MIA-U attacker queries the **original** model and its **unlearned** counterpart on the same
input x and sees two posteriors ``p_o`` and ``p_u`` (``[n, C]``). Chen et al. ("When Machine
Unlearning Jeopardizes Privacy", ACM CCS 2021; code: github.com/MinChen00/UnlearningLeaks) turn them into
six features, with ``π = argsort(p_o)`` taken **ascending** per row (as their code does; the order
only matters for bit-exact reproduction; ties keep the column order):

============== ====================== =====
key            feature                dim
============== ====================== =====
direct_concat  p_o ∥ p_u              2C
sorted_concat  p_o[π] ∥ p_u[π]        2C
direct_diff    p_o − p_u              C
sorted_diff    p_o[π] − p_u[π]        C
l2_distance    ‖p_o − p_u‖₂           1
basic          p_o (classical MIA)    C
============== ====================== =====

**Defences** are output transforms that the model owner applies before releasing posteriors; here
they are applied to ``p_o`` and ``p_u`` alike and therefore to **every** feature (the original code
skips them for DirectConcat): ``none``; ``top_k:k`` (keep the k largest probabilities, spread the
remainder ``(1 − Σ top-k)/(C − k)`` over the other classes — insufficient as a defence); ``label_only``
(a one-hot of the arg-max); ``temperature:T`` (``softmax(ℓ/T)`` of the logits ℓ; from probabilities
``ℓ = log p``, which has the same softmax). A defence is named by a string ``"name"`` or
``"name:value"`` (:func:`parse_defence`).

**DegCount** ``= (1/N) Σ 1[c_F(x) > c_B(x)]`` and **DegRate** ``= (1/N) Σ (c_F(x) − c_B(x))``, where
``c_F(x)`` is the attack's probability of x's true membership label with feature F and ``c_B(x)`` the
same with ``basic``: DegCount > 0.5 or DegRate > 0 means the unlearning leaks more than the
original model alone.

Pure numpy: nothing here imports torch or scikit-learn.

Example:
    >>> p_o = np.array([[0.7, 0.2, 0.1]])
    >>> p_u = np.array([[0.4, 0.5, 0.1]])
    >>> compute_features("direct_diff", p_original=p_o, p_unlearned=p_u).round(3)
    array([[ 0.3, -0.3,  0. ]])
    >>> compute_features("sorted_concat", p_original=p_o, p_unlearned=p_u).tolist()
    [[0.1, 0.2, 0.7, 0.1, 0.5, 0.4]]
    >>> apply_defence("top_k:1", probabilities=p_u).round(3)
    array([[0.25, 0.5 , 0.25]])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from certunlearn.audit.signals import PROBABILITY_FLOOR, _check_probabilities
from certunlearn.audit.signals import _check_outputs as _check_matrix
from certunlearn.errors import ConfigError, InputError
from certunlearn.validation import check_int, check_positive, register

__all__ = [
    "CHEN_FEATURES",
    "DEFENCES",
    "FEATURES",
    "Defence",
    "apply_defence",
    "basic",
    "compute_features",
    "deg_count",
    "deg_rate",
    "direct_concat",
    "direct_diff",
    "l2_distance",
    "label_only",
    "no_defence",
    "parse_defence",
    "register_defence",
    "register_feature",
    "sorted_concat",
    "sorted_diff",
    "temperature_scaling",
    "top_k",
    "true_label_confidences",
]

FeatureFunction = Callable[..., np.ndarray]
"""``f(*, p_original [n, C], p_unlearned [n, C]) -> features [n, d]`` (float64)."""

DefenceFunction = Callable[..., np.ndarray]
"""``f(*, logits=None, probabilities=None, **parameter) -> probabilities [n, C]``."""


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _check_pair(p_original: object, p_unlearned: object) -> tuple[np.ndarray, np.ndarray]:
    p_o = _check_probabilities("p_original", p_original)
    p_u = _check_probabilities("p_unlearned", p_unlearned)
    if p_o.shape != p_u.shape:
        raise InputError(
            f"p_original and p_unlearned must have the same shape, got {p_o.shape} and {p_u.shape}"
        )
    return p_o, p_u


def _one_of(logits: object, probabilities: object) -> tuple[np.ndarray | None, np.ndarray | None]:
    if (logits is None) == (probabilities is None):
        raise InputError("pass exactly one of logits= or probabilities=")
    if logits is not None:
        return _check_matrix("logits", logits), None
    return None, _check_probabilities("probabilities", probabilities)


def _sort_order(p_original: np.ndarray) -> np.ndarray:
    """π = argsort(p_o) per row, ascending, ties in column order."""
    return np.argsort(p_original, axis=1, kind="stable")


# ---------------------------------------------------------------------------------------------
# The six features
# ---------------------------------------------------------------------------------------------


def direct_concat(*, p_original: object, p_unlearned: object) -> np.ndarray:
    """``p_o ∥ p_u`` — the two posteriors side by side (``[n, 2C]``).

    Args:
        p_original: Posteriors of the original model ``[n, C]`` (rows sum to 1).
        p_unlearned: Posteriors of the unlearned model on the same inputs ``[n, C]``.

    Returns:
        ``[n, 2C]`` float64.

    Example:
        >>> direct_concat(p_original=[[0.9, 0.1]], p_unlearned=[[0.6, 0.4]]).tolist()
        [[0.9, 0.1, 0.6, 0.4]]
    """
    p_o, p_u = _check_pair(p_original, p_unlearned)
    return np.concatenate([p_o, p_u], axis=1)


def sorted_concat(*, p_original: object, p_unlearned: object) -> np.ndarray:
    """``p_o[π] ∥ p_u[π]`` with ``π = argsort(p_o)`` ascending (``[n, 2C]``).

    Both posteriors are permuted by the *original* model's order, so the feature no longer depends
    on which class is which.

    Args:
        p_original: ``[n, C]`` posteriors of the original model.
        p_unlearned: ``[n, C]`` posteriors of the unlearned model.

    Returns:
        ``[n, 2C]`` float64.

    Example:
        >>> sorted_concat(p_original=[[0.2, 0.7, 0.1]], p_unlearned=[[0.3, 0.3, 0.4]]).tolist()
        [[0.1, 0.2, 0.7, 0.4, 0.3, 0.3]]
    """
    p_o, p_u = _check_pair(p_original, p_unlearned)
    order = _sort_order(p_o)
    return np.concatenate(
        [np.take_along_axis(p_o, order, axis=1), np.take_along_axis(p_u, order, axis=1)], axis=1
    )


def direct_diff(*, p_original: object, p_unlearned: object) -> np.ndarray:
    """``p_o − p_u`` (``[n, C]``).

    Args:
        p_original: ``[n, C]`` posteriors of the original model.
        p_unlearned: ``[n, C]`` posteriors of the unlearned model.

    Returns:
        ``[n, C]`` float64; every row sums to 0 (up to rounding).

    Example:
        >>> direct_diff(p_original=[[0.75, 0.25]], p_unlearned=[[0.5, 0.5]]).tolist()
        [[0.25, -0.25]]
    """
    p_o, p_u = _check_pair(p_original, p_unlearned)
    return p_o - p_u


def sorted_diff(*, p_original: object, p_unlearned: object) -> np.ndarray:
    """``p_o[π] − p_u[π]`` with ``π = argsort(p_o)`` ascending (``[n, C]``).

    Args:
        p_original: ``[n, C]`` posteriors of the original model.
        p_unlearned: ``[n, C]`` posteriors of the unlearned model.

    Returns:
        ``[n, C]`` float64.

    Example:
        >>> sorted_diff(p_original=[[0.75, 0.25]], p_unlearned=[[0.5, 0.5]]).tolist()
        [[-0.25, 0.25]]
    """
    p_o, p_u = _check_pair(p_original, p_unlearned)
    order = _sort_order(p_o)
    return np.take_along_axis(p_o, order, axis=1) - np.take_along_axis(p_u, order, axis=1)


def l2_distance(*, p_original: object, p_unlearned: object) -> np.ndarray:
    """``‖p_o − p_u‖₂`` per row, as a ``[n, 1]`` column.

    Args:
        p_original: ``[n, C]`` posteriors of the original model.
        p_unlearned: ``[n, C]`` posteriors of the unlearned model.

    Returns:
        ``[n, 1]`` float64, >= 0.

    Example:
        >>> l2_distance(p_original=[[1.0, 0.0]], p_unlearned=[[0.0, 1.0]]).round(4).tolist()
        [[1.4142]]
    """
    p_o, p_u = _check_pair(p_original, p_unlearned)
    return np.linalg.norm(p_o - p_u, axis=1, keepdims=True)


def basic(*, p_original: object, p_unlearned: object) -> np.ndarray:
    """``p_o`` alone — the classical membership-inference baseline on the original model.

    ``p_unlearned`` is checked (same shape) but not used, so every feature has one signature.

    Args:
        p_original: ``[n, C]`` posteriors of the original model.
        p_unlearned: ``[n, C]`` posteriors of the unlearned model (ignored).

    Returns:
        ``[n, C]`` float64, a copy of ``p_original``.

    Example:
        >>> basic(p_original=[[0.9, 0.1]], p_unlearned=[[0.5, 0.5]]).tolist()
        [[0.9, 0.1]]
    """
    p_o, _ = _check_pair(p_original, p_unlearned)
    return p_o.copy()


FEATURES: dict[str, FeatureFunction] = {}
"""Registry of MIA-U features: name -> ``f(*, p_original, p_unlearned) -> [n, d]``."""


def register_feature(name: str, function: FeatureFunction, *, force: bool = False) -> None:
    """Register a feature ``f(*, p_original, p_unlearned) -> [n, d]`` under ``name``.

    Args:
        name: Registry key.
        function: The feature function (keyword-only arguments ``p_original``, ``p_unlearned``).
        force: Replace an existing entry.

    Raises:
        ConfigError: ``name`` is taken and ``force`` is False, or ``function`` is not callable.

    Example:
        >>> register_feature("basic", basic)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: feature 'basic' is already registered; pass force=True to replace it
    """
    if not callable(function):
        raise ConfigError(f"feature {name!r} must be callable, got {type(function).__name__}")
    register("feature", FEATURES, name, function, force=force)


for _name, _function in (
    ("direct_concat", direct_concat),
    ("sorted_concat", sorted_concat),
    ("direct_diff", direct_diff),
    ("sorted_diff", sorted_diff),
    ("l2_distance", l2_distance),
    ("basic", basic),
):
    register_feature(_name, _function)

CHEN_FEATURES = ("direct_concat", "sorted_concat", "direct_diff", "sorted_diff", "l2_distance", "basic")
"""The six features of Chen et al. (CCS 2021), in their table's order."""


def compute_features(name: str, *, p_original: object, p_unlearned: object) -> np.ndarray:
    """Feature ``name`` of :data:`FEATURES` for paired posteriors, as a ``[n, d]`` float64 array.

    Args:
        name: A key of :data:`FEATURES`.
        p_original: ``[n, C]`` posteriors of the original model.
        p_unlearned: ``[n, C]`` posteriors of the unlearned model on the same inputs.

    Returns:
        ``[n, d]`` float64 (d from the table in the module docstring).

    Raises:
        ConfigError: Unknown name (the message lists the registered ones).
        InputError: Malformed posteriors, or a registered feature returning a bad shape.

    Example:
        >>> compute_features("l2_distance", p_original=[[0.5, 0.5]], p_unlearned=[[0.5, 0.5]]).tolist()
        [[0.0]]
    """
    if name not in FEATURES:
        raise ConfigError(f"unknown feature {name!r}: use one of {sorted(FEATURES)}")
    p_o, p_u = _check_pair(p_original, p_unlearned)
    out = np.asarray(FEATURES[name](p_original=p_o, p_unlearned=p_u), dtype=np.float64)
    if out.ndim != 2 or out.shape[0] != p_o.shape[0]:
        raise InputError(
            f"feature {name!r} must return an array [n={p_o.shape[0]}, d], got shape {out.shape}"
        )
    return out


# ---------------------------------------------------------------------------------------------
# Defences (output transforms)
# ---------------------------------------------------------------------------------------------


def _probabilities(logits: np.ndarray | None, probabilities: np.ndarray | None) -> np.ndarray:
    if logits is not None:
        return softmax(logits, axis=1)
    assert probabilities is not None  # guaranteed by _one_of
    return probabilities


def no_defence(*, logits: object = None, probabilities: object = None) -> np.ndarray:
    """No transform: the full posterior (``softmax(ℓ)`` when logits are given).

    Args:
        logits: ``[n, C]`` unnormalised outputs (give this or ``probabilities``).
        probabilities: ``[n, C]`` posteriors.

    Returns:
        ``[n, C]`` float64 probabilities.

    Example:
        >>> no_defence(logits=[[0.0, 0.0]]).tolist()
        [[0.5, 0.5]]
    """
    z, p = _one_of(logits, probabilities)
    return _probabilities(z, p).copy()


def top_k(*, logits: object = None, probabilities: object = None, k: int) -> np.ndarray:
    """Release the k largest probabilities; the other C − k classes share the remainder equally.

    ``p'_i = p_i`` for the k largest (ranked by the logits when they are given, as
    :func:`label_only` does; ties broken by column order), ``p'_j = (1 − Σ_top-k p)/(C − k)``
    otherwise, so rows still sum to 1. ``k >= C`` changes nothing. Chen et al. found it
    insufficient against MIA-U.

    Args:
        logits: ``[n, C]`` unnormalised outputs (give this or ``probabilities``).
        probabilities: ``[n, C]`` posteriors.
        k: Number of probabilities kept (>= 1).

    Returns:
        ``[n, C]`` float64 probabilities.

    Example:
        >>> top_k(probabilities=[[0.1, 0.6, 0.2, 0.1]], k=2).round(3).tolist()
        [[0.1, 0.6, 0.2, 0.1]]
        >>> top_k(probabilities=[[0.05, 0.6, 0.2, 0.15]], k=2).round(3).tolist()
        [[0.1, 0.6, 0.2, 0.1]]
    """
    k = check_int("k", k, minimum=1)
    z, p = _one_of(logits, probabilities)
    p = _probabilities(z, p)
    n, num_classes = p.shape
    if k >= num_classes:
        return p.copy()
    ranking = z if z is not None else p  # logits when given: softmax rounding can tie distinct logits
    order = np.argsort(-ranking, axis=1, kind="stable")[:, :k]
    kept = np.zeros(p.shape, dtype=bool)
    kept[np.arange(n)[:, None], order] = True
    rest = (1.0 - np.where(kept, p, 0.0).sum(axis=1, keepdims=True)) / (num_classes - k)
    return np.where(kept, p, np.maximum(rest, 0.0))


def label_only(*, logits: object = None, probabilities: object = None) -> np.ndarray:
    """Release only the predicted label, as a one-hot vector of the arg-max (first on ties).

    Args:
        logits: ``[n, C]`` unnormalised outputs (give this or ``probabilities``).
        probabilities: ``[n, C]`` posteriors.

    Returns:
        ``[n, C]`` float64 one-hot rows.

    Example:
        >>> label_only(probabilities=[[0.2, 0.5, 0.3]]).tolist()
        [[0.0, 1.0, 0.0]]
    """
    z, p = _one_of(logits, probabilities)
    values = z if z is not None else p
    assert values is not None
    out = np.zeros(values.shape)
    out[np.arange(values.shape[0]), np.argmax(values, axis=1)] = 1.0
    return out


def temperature_scaling(
    *, logits: object = None, probabilities: object = None, temperature: float
) -> np.ndarray:
    """``softmax(ℓ / T)``: T > 1 flattens the posterior, T < 1 sharpens it; the arg-max is kept.

    From probabilities the logits are ``ℓ = log max(p, 1e-45)`` (``softmax(log p) = p``, so this is
    the same transform up to the floor).

    Args:
        logits: ``[n, C]`` unnormalised outputs (give this or ``probabilities``).
        probabilities: ``[n, C]`` posteriors.
        temperature: T > 0.

    Returns:
        ``[n, C]`` float64 probabilities.

    Example:
        >>> temperature_scaling(logits=[[2.0, 0.0]], temperature=2.0).round(4).tolist()
        [[0.7311, 0.2689]]
    """
    temperature = check_positive("temperature", temperature)
    z, p = _one_of(logits, probabilities)
    if z is None:
        assert p is not None
        z = np.log(np.maximum(p, PROBABILITY_FLOOR))
    return softmax(z / temperature, axis=1)


@dataclass(frozen=True, slots=True)
class Defence:
    """A registered output defence.

    Attributes:
        name: Registry key (the part of a defence string before ``:``).
        function: ``f(*, logits=None, probabilities=None[, parameter=value]) -> [n, C]``.
        parameter: Keyword name of the function's one parameter, or None for none.
        parameter_type: ``int`` or ``float`` (the parameter's type when written in a string).
    """

    name: str
    function: DefenceFunction
    parameter: str | None = None
    parameter_type: type = float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or ":" in self.name:
            raise ConfigError(f"defence name must be a non-empty string without ':', got {self.name!r}")
        if not callable(self.function):
            raise ConfigError(f"defence {self.name!r} function must be callable")
        if self.parameter_type not in (int, float):
            raise ConfigError(f"parameter_type must be int or float, got {self.parameter_type!r}")


DEFENCES: dict[str, Defence] = {}
"""Registry of output defences: name -> :class:`Defence` (``none``, ``top_k``, ``label_only``,
``temperature``)."""


def register_defence(
    name: str,
    function: DefenceFunction,
    *,
    parameter: str | None = None,
    parameter_type: type = float,
    force: bool = False,
) -> None:
    """Register an output defence under ``name`` (used as ``"name"`` or ``"name:value"``).

    Args:
        name: Registry key (no ``:``).
        function: ``f(*, logits=None, probabilities=None[, <parameter>=value]) -> [n, C]``.
        parameter: Keyword of the function's single parameter, or None.
        parameter_type: ``int`` or ``float``.
        force: Replace an existing entry.

    Raises:
        ConfigError: Name taken (without ``force``) or a malformed entry.

    Example:
        >>> register_defence("none", no_defence)
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: defence 'none' is already registered; pass force=True to replace it
    """
    entry = Defence(name, function, parameter, parameter_type)
    register("defence", DEFENCES, name, entry, force=force)


register_defence("none", no_defence)
register_defence("top_k", top_k, parameter="k", parameter_type=int)
register_defence("label_only", label_only)
register_defence("temperature", temperature_scaling, parameter="temperature", parameter_type=float)


def parse_defence(spec: str) -> tuple[str, int | float | None]:
    """Split and check a defence string ``"name"`` or ``"name:value"``.

    Args:
        spec: e.g. ``"none"``, ``"label_only"``, ``"top_k:3"``, ``"temperature:2.0"``.

    Returns:
        ``(name, value)`` with ``value`` None for parameter-free defences.

    Raises:
        ConfigError: Unknown name (the message lists the registered ones), a missing, extra or
            malformed value, or a value out of range (k >= 1, T > 0).

    Example:
        >>> parse_defence("top_k:3"), parse_defence("label_only")
        (('top_k', 3), ('label_only', None))
        >>> parse_defence("top_k:0")
        Traceback (most recent call last):
        ...
        certunlearn.errors.ConfigError: k must be >= 1, got 0
    """
    if not isinstance(spec, str):
        raise ConfigError(f"a defence must be a string like 'top_k:3', got {spec!r}")
    name, sep, raw = spec.partition(":")
    name = name.strip()
    if name not in DEFENCES:
        raise ConfigError(f"unknown defence {name!r}: use one of {sorted(DEFENCES)}")
    entry = DEFENCES[name]
    if entry.parameter is None:
        if sep:
            raise ConfigError(f"defence {name!r} takes no parameter, got {spec!r}")
        return name, None
    if not sep or not raw.strip():
        raise ConfigError(f"defence {name!r} needs a value for {entry.parameter}, e.g. '{name}:2'")
    try:
        value = entry.parameter_type(raw.strip())
    except ValueError:
        raise ConfigError(
            f"defence {name!r}: {entry.parameter} must be {entry.parameter_type.__name__}, got {raw!r}"
        ) from None
    if entry.parameter_type is int:
        check_int(entry.parameter, value, minimum=1)
    else:
        check_positive(entry.parameter, value)
    return name, value


def apply_defence(spec: str, *, logits: object = None, probabilities: object = None) -> np.ndarray:
    """Apply the defence named by ``spec`` (see :func:`parse_defence`) to model outputs.

    Args:
        spec: Defence string, e.g. ``"none"`` or ``"temperature:4"``.
        logits: ``[n, C]`` unnormalised outputs (give this or ``probabilities``).
        probabilities: ``[n, C]`` posteriors.

    Returns:
        ``[n, C]`` float64 released probabilities (rows sum to 1).

    Example:
        >>> apply_defence("label_only", logits=[[0.1, 3.0]]).tolist()
        [[0.0, 1.0]]
        >>> apply_defence("temperature:1e9", logits=[[0.1, 3.0]]).round(6).tolist()
        [[0.5, 0.5]]
    """
    name, value = parse_defence(spec)
    entry = DEFENCES[name]
    kwargs = {} if entry.parameter is None else {entry.parameter: value}
    out = np.asarray(entry.function(logits=logits, probabilities=probabilities, **kwargs), dtype=np.float64)
    reference = logits if logits is not None else probabilities
    shape = np.shape(reference)
    if out.shape != shape:
        raise InputError(f"defence {name!r} returned shape {out.shape}, expected {shape}")
    return out


# ---------------------------------------------------------------------------------------------
# DegCount and DegRate (Chen et al. §5)
# ---------------------------------------------------------------------------------------------


def true_label_confidences(*, member_probabilities: object, is_member: object) -> np.ndarray:
    """The attack's probability of each example's true label: ``P(member)`` or ``1 − P(member)``.

    Args:
        member_probabilities: ``[n]`` attack outputs P(member | features) in [0, 1].
        is_member: ``[n]`` booleans (or 0/1): the true membership label.

    Returns:
        ``[n]`` float64 confidences ``c(x)``.

    Example:
        >>> true_label_confidences(member_probabilities=[0.8, 0.8], is_member=[1, 0]).round(2).tolist()
        [0.8, 0.2]
    """
    probabilities = np.asarray(member_probabilities, dtype=np.float64)
    labels = np.asarray(is_member)
    if probabilities.ndim != 1 or labels.shape != probabilities.shape:
        raise InputError(
            f"member_probabilities and is_member must be 1-D of the same length, "
            f"got {probabilities.shape} and {labels.shape}"
        )
    if not np.all(np.isfinite(probabilities)) or np.any((probabilities < 0) | (probabilities > 1)):
        raise InputError("member_probabilities must lie in [0, 1]")
    if not np.all((labels == 0) | (labels == 1)):
        raise InputError("is_member must hold booleans or 0/1")
    return np.where(labels.astype(bool), probabilities, 1.0 - probabilities)


def _check_confidences(
    feature_confidences: object, basic_confidences: object
) -> tuple[np.ndarray, np.ndarray]:
    c_f = np.asarray(feature_confidences, dtype=np.float64)
    c_b = np.asarray(basic_confidences, dtype=np.float64)
    if c_f.ndim != 1 or c_f.shape != c_b.shape or c_f.size == 0:
        raise InputError(
            f"feature_confidences and basic_confidences must be non-empty 1-D arrays of the same "
            f"length, got {c_f.shape} and {c_b.shape}"
        )
    if not (np.all(np.isfinite(c_f)) and np.all(np.isfinite(c_b))):
        raise InputError("confidences contain NaN or infinite values")
    if np.any((c_f < 0) | (c_f > 1) | (c_b < 0) | (c_b > 1)):
        raise InputError("confidences must lie in [0, 1]")
    return c_f, c_b


def deg_count(*, feature_confidences: object, basic_confidences: object) -> float:
    """DegCount ``= (1/N) Σ 1[c_F(x) > c_B(x)]`` — share of examples the feature classifies better.

    Ties count as "not better". DegCount > 0.5 ⇒ the unlearning leaks more than the original alone.

    Args:
        feature_confidences: ``[N]`` attack confidences in the true label with feature F.
        basic_confidences: ``[N]`` the same with the ``basic`` feature (same examples, same order).

    Returns:
        A fraction in [0, 1].

    Example:
        >>> deg_count(feature_confidences=[0.9, 0.4, 0.5], basic_confidences=[0.6, 0.5, 0.5])
        0.3333333333333333
    """
    c_f, c_b = _check_confidences(feature_confidences, basic_confidences)
    return float(np.mean(c_f > c_b))


def deg_rate(*, feature_confidences: object, basic_confidences: object) -> float:
    """DegRate ``= (1/N) Σ (c_F(x) − c_B(x))`` — mean gain in confidence over ``basic``.

    DegRate > 0 ⇒ the unlearning leaks more than the original model alone.

    Args:
        feature_confidences: ``[N]`` attack confidences in the true label with feature F.
        basic_confidences: ``[N]`` the same with the ``basic`` feature.

    Returns:
        A number in [−1, 1].

    Example:
        >>> deg_rate(feature_confidences=[0.75, 0.5], basic_confidences=[0.5, 0.5])
        0.125
    """
    c_f, c_b = _check_confidences(feature_confidences, basic_confidences)
    return float(np.mean(c_f - c_b))
