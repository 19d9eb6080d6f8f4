r"""The report-entry shapes: what audit results hand to :func:`~certunlearn.report.build.build_report`.

The report schema's attack, reference, operating-point, attack-section and empirical-bound objects
(``certunlearn/report/schemas/2/report.schema.json``) are defined here once, as frozen dataclasses
validated on construction, whose ``as_dict()`` is the report's JSON for them. The builder adds only
what needs the whole report: an attack's ``comparison`` (from the policy), a section's
``best_attack``, the defaults of a section's ``target`` / ``comparison`` / ``tpr_convention``, and a
``source`` for an unnamed bound.

* :class:`AttackEntry` — one attack: AUC with its interval, sample sizes, thinned ROC, score
  histogram, TPR@FPR with its :class:`OperatingPointEntry` list, the attack's ε lower bound and cap,
  MIA-U DegCount / DegRate, and the same attack on the retrained model (:class:`ReferenceEntry`);
* :class:`AttackSection` — an MIA-L or MIA-U audit: its attacks and headline figures;
* :class:`BoundEntry` — an empirical ε lower bound for the empirical-privacy section.

Audit results build them (``report_section()`` on MIA-L / MIA-U results, ``report_entry()`` on
attack metrics, MIA-U attack results and ε bounds); a caller may instead give a mapping with these
keys and no others (:meth:`AttackEntry.from_mapping` and the like: unknown keys are a ConfigError).
:func:`thin_roc` and :func:`score_histogram` turn a full ROC and raw scores into the report's
summary curves: no raw score is ever stored.

Example:
    >>> entry = AttackEntry.from_mapping({"name": "loss", "auc": 0.61, "n_members": 50,
    ...                                   "n_non_members": 50, "reference": {"auc": 0.5}})
    >>> section = AttackSection(attacks=(entry,), alpha=0.05)
    >>> section.as_dict()["attacks"][0]["reference"]["auc"], entry.roc
    (0.5, None)
    >>> AttackEntry.from_mapping({"name": "loss", "scores_in": [0.1]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    certunlearn.errors.ConfigError: unknown attack key 'scores_in'; allowed keys: advantage, ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, ClassVar, Self

import numpy as np

from certunlearn.errors import ConfigError
from certunlearn.report.fields import opt_float, opt_int, opt_str, pair, reject_unknown, strings

__all__ = [
    "HISTOGRAM_BINS",
    "MAX_ROC_POINTS",
    "AttackEntry",
    "AttackSection",
    "BoundEntry",
    "OperatingPointEntry",
    "ReferenceEntry",
    "score_histogram",
    "thin_roc",
]

MAX_ROC_POINTS = 256
"""Most points of a ROC in a report (:func:`thin_roc`)."""

HISTOGRAM_BINS = 30
"""Bins of a score histogram (:func:`score_histogram`)."""


# ---------------------------------------------------------------------------------------------
# Summary curves
# ---------------------------------------------------------------------------------------------


def _real_array(name: str, values: object) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a list of numbers") from None


def thin_roc(fpr: object, tpr: object) -> dict[str, list[float]] | None:
    """A ROC thinned to at most :data:`MAX_ROC_POINTS` points, log-spaced in FPR; None when empty.

    Longer curves keep both ends, the last point at or below each of 200 log-spaced FPRs in
    [1e-6, 1] and of 51 linear ones; shorter curves are returned as they are.

    Args:
        fpr: False-positive rates, non-decreasing.
        tpr: True-positive rates, the same length.

    Returns:
        ``{"fpr": [...], "tpr": [...]}`` or None for an empty curve.

    Raises:
        ConfigError: The two lists differ in length or hold non-numbers.

    Example:
        >>> fpr = np.linspace(0.0, 1.0, 10_001)
        >>> len(thin_roc(fpr, fpr)["fpr"]) <= MAX_ROC_POINTS, thin_roc([0, 1], [0, 1])
        (True, {'fpr': [0.0, 1.0], 'tpr': [0.0, 1.0]})
    """
    f, t = _real_array("roc fpr", fpr), _real_array("roc tpr", tpr)
    if f.size != t.size:
        raise ConfigError(f"roc fpr and tpr must have the same length, got {f.size} and {t.size}")
    if f.size == 0:
        return None
    if f.size > MAX_ROC_POINTS:
        grid = np.concatenate([np.logspace(-6, 0, MAX_ROC_POINTS - 56), np.linspace(0, 1, 51)])
        index = np.unique(np.clip(np.searchsorted(f, grid, side="right") - 1, 0, f.size - 1))
        index = np.unique(np.concatenate([[0, f.size - 1], index]))
        f, t = f[index], t[index]
    return {"fpr": f.tolist(), "tpr": t.tolist()}


def score_histogram(scores_in: object, scores_out: object) -> dict[str, list[Any]] | None:
    """Histograms of members' and non-members' scores on :data:`HISTOGRAM_BINS` shared bins.

    Non-finite scores are left out; None when either side has no finite score (or is None).

    Example:
        >>> h = score_histogram([0.0, 1.0, 2.0], [0.0, float("nan")])
        >>> len(h["edges"]), sum(h["members"]), sum(h["non_members"])
        (31, 3, 1)
    """
    if scores_in is None or scores_out is None:
        return None
    a, b = _real_array("scores_in", scores_in), _real_array("scores_out", scores_out)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return None
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=HISTOGRAM_BINS)
    return {
        "edges": edges.tolist(),
        "members": np.histogram(a, bins=edges)[0].astype(int).tolist(),
        "non_members": np.histogram(b, bins=edges)[0].astype(int).tolist(),
    }


# ---------------------------------------------------------------------------------------------
# Field readers (one per kind of field; each names the field in its error)
# ---------------------------------------------------------------------------------------------

Reader = Callable[[str, Any], Any]


def _prob(name: str, value: object) -> float | None:
    out = opt_float(name, value)
    if out is not None and not math.isnan(out) and not 0.0 <= out <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1] or None, got {value!r}")
    return out


def _nonneg(name: str, value: object) -> float | None:
    out = opt_float(name, value)
    if out is not None and out < 0.0:
        raise ConfigError(f"{name} must be >= 0 or None, got {value!r}")
    return out


def _count(name: str, value: object) -> int | None:
    out = opt_int(name, value)
    if out is not None and out < 0:
        raise ConfigError(f"{name} must be >= 0 or None, got {value!r}")
    return out


def _interval(name: str, value: object) -> tuple[float, float] | None:
    ends = pair(name, value)
    return None if ends is None else (_prob(name, ends[0]), _prob(name, ends[1]))  # type: ignore[return-value]


def _name(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _text(name: str, value: object) -> str:
    return opt_str(name, value) or ""


def _flag(name: str, value: object) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{name} must be true, false or None, got {value!r}")
    return value


def _texts(name: str, value: object) -> tuple[str, ...]:
    return tuple(strings(name, value))


def _tpr_at(name: str, value: object) -> Mapping[str, float | None]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping of FPR (a string such as '0.01') to TPR, got {value!r}")
    return MappingProxyType({str(k): _prob(f"{name}[{k!r}]", v) for k, v in value.items()})


def _curve_mapping(name: str, value: object, keys: tuple[str, ...]) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping with keys {', '.join(keys)}, got {type(value).__name__}")
    reject_unknown(name, value, keys)
    for key in keys:
        if key not in value:
            raise ConfigError(f"{name} needs {key!r}")
    return value


def _roc(name: str, value: object) -> Mapping[str, tuple[float, ...]] | None:
    raw = _curve_mapping(name, value, ("fpr", "tpr"))
    thinned = None if raw is None else thin_roc(raw["fpr"], raw["tpr"])
    if thinned is None:
        return None
    for key, rates in thinned.items():
        if not all(0.0 <= r <= 1.0 for r in rates):
            raise ConfigError(f"{name} {key} must lie in [0, 1]")
    return MappingProxyType({key: tuple(rates) for key, rates in thinned.items()})


def _histogram(name: str, value: object) -> Mapping[str, tuple[Any, ...]] | None:
    raw = _curve_mapping(name, value, ("edges", "members", "non_members"))
    if raw is None:
        return None
    edges = _real_array(f"{name} edges", raw["edges"])
    if not np.all(np.isfinite(edges)):
        raise ConfigError(f"{name} edges must be finite")
    out: dict[str, tuple[Any, ...]] = {"edges": tuple(edges.tolist())}
    for key in ("members", "non_members"):
        counts = raw[key]
        if isinstance(counts, (str, bytes, Mapping)) or not isinstance(counts, Iterable):
            raise ConfigError(f"{name} {key} must be a list of counts, got {counts!r}")
        out[key] = tuple(_count(f"{name} {key}", c) for c in counts)
        if len(out[key]) != max(len(edges) - 1, 0) or None in out[key]:
            raise ConfigError(f"{name} {key} must hold one count per bin ({len(edges) - 1})")
    return MappingProxyType(out)


def _reference(name: str, value: object) -> ReferenceEntry | None:
    return None if value is None else ReferenceEntry.coerce(value, where=name)


def _operating_points(name: str, value: object) -> tuple[OperatingPointEntry, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ConfigError(f"{name} must be a list of operating points, got {value!r}")
    return tuple(OperatingPointEntry.coerce(p, where=f"{name}[{i}]") for i, p in enumerate(value))


def _attack_where(index: int, value: object) -> str:
    name = value.get("name") if isinstance(value, Mapping) else None
    return f"attack {name!r}" if isinstance(name, str) and name else f"attack {index}"


def _attacks(name: str, value: object) -> tuple[AttackEntry, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ConfigError(f"{name} must be a list of attack entries (each with its name), got {value!r}")
    out = tuple(AttackEntry.coerce(a, where=_attack_where(i, a)) for i, a in enumerate(value))
    if not out:
        raise ConfigError("an attack section needs at least one attack under 'attacks'")
    names = [a.name for a in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"attack names must be unique, repeated: {repeated}")
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, _Entry):
        return value.as_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# The entries
# ---------------------------------------------------------------------------------------------


class _Entry:
    """Shared machinery: per-field readers run on construction, strict mappings, ``as_dict``."""

    __slots__ = ()
    _READERS: ClassVar[Mapping[str, Reader]]
    _WHAT: ClassVar[str]
    _METHOD: ClassVar[str] = "report_entry"

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, self._READERS[f.name](f.name, getattr(self, f.name)))

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any], *, where: str | None = None) -> Self:
        """The entry of a mapping with these keys (missing optional keys: their defaults).

        Args:
            value: The mapping; a key that is not a field is a ConfigError.
            where: What to call it in error messages (default: the kind of entry).

        Example:
            >>> BoundEntry.from_mapping({"source": "gdp", "epsilon_lb": 0.2}).epsilon_lb
            0.2
            >>> BoundEntry.from_mapping({"epsilon": 0.2}, where="empirical[0]")
            Traceback (most recent call last):
            ...
            certunlearn.errors.ConfigError: unknown empirical[0] key 'epsilon'; allowed keys: alpha, cap, correction, delta, epsilon_lb, method, mu, n_members, n_non_members, source
        """
        where = where or cls._WHAT
        known = fields(cls)  # type: ignore[arg-type]
        reject_unknown(where, value, [f.name for f in known])
        for f in known:
            if f.default is MISSING and f.default_factory is MISSING and f.name not in value:
                raise ConfigError(f"{where} needs {f.name!r}")
        try:
            return cls(**value)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None

    @classmethod
    def _adapt(cls, value: Any) -> Any:
        return value

    @classmethod
    def coerce(cls, value: object, *, where: str | None = None) -> Self:
        """``value`` as this entry: the entry itself, an object's ``report_entry()`` /
        ``report_section()``, or a mapping of exactly these keys.

        Example:
            >>> class Result:
            ...     def report_entry(self):
            ...         return {"name": "loss", "auc": 0.5}
            >>> AttackEntry.coerce(Result()).auc, AttackEntry.coerce({"name": "x"}).name
            (0.5, 'x')
        """
        value = cls._adapt(value)
        if isinstance(value, cls):
            return value
        convert = getattr(value, cls._METHOD, None)
        if not isinstance(value, Mapping) and callable(convert):
            value = cls._adapt(convert())
            if isinstance(value, cls):
                return value
        if isinstance(value, Mapping):
            return cls.from_mapping(value, where=where)
        article = "an" if cls.__name__[0] in "AEIOU" else "a"
        raise ConfigError(f"{where or cls._WHAT} must be one of: {article} {cls.__name__}, an object with "
                          f"{cls._METHOD}(), a mapping of its keys; got {type(value).__name__}")

    def as_dict(self) -> dict[str, Any]:
        """The entry as the report's JSON object (lists and dicts only).

        Example:
            >>> OperatingPointEntry(target_fpr=0.1, tpr_ci=(0.0, 0.5)).as_dict()["tpr_ci"]
            [0.0, 0.5]
        """
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class OperatingPointEntry(_Entry):
    """TPR at the last ROC point with ``fpr <= target_fpr``, with its Clopper–Pearson bounds.

    Attributes:
        target_fpr: The requested FPR x.
        fpr: The FPR achieved (<= x).
        tpr: The TPR there (the reported TPR@FPR=x).
        tpr_ci: Two-sided interval of the TPR.
        tpr_upper: One-sided upper bound of the TPR.
        fpr_upper: One-sided upper bound of the FPR.
        enough_non_members: Whether there were at least 10/x non-members.

    Example:
        >>> OperatingPointEntry(target_fpr=0.01, tpr=0.2, tpr_ci=(0.1, 0.3)).as_dict()["tpr_ci"]
        [0.1, 0.3]
    """

    target_fpr: float | None = None
    fpr: float | None = None
    tpr: float | None = None
    tpr_ci: tuple[float, float] | None = None
    tpr_upper: float | None = None
    fpr_upper: float | None = None
    enough_non_members: bool | None = None

    _READERS: ClassVar[Mapping[str, Reader]] = MappingProxyType({
        "target_fpr": _prob, "fpr": _prob, "tpr": _prob, "tpr_ci": _interval, "tpr_upper": _prob,
        "fpr_upper": _prob, "enough_non_members": _flag})
    _WHAT: ClassVar[str] = "operating point"


@dataclass(frozen=True, slots=True)
class ReferenceEntry(_Entry):
    """The same attack on the retrained reference model (what perfect unlearning looks like).

    Attributes:
        auc: AUC against the reference.
        auc_ci: Its interval.
        auc_ci_level: Confidence level of ``auc_ci``.
        n_members: Members (forget-set records) attacked.
        n_non_members: Non-members attacked.
        roc: Thinned ROC (:func:`thin_roc`).
        score_histogram: Score histograms (:func:`score_histogram`).

    Example:
        >>> ReferenceEntry(auc=0.5, n_members=40).as_dict()["n_members"]
        40
    """

    auc: float | None = None
    auc_ci: tuple[float, float] | None = None
    auc_ci_level: float | None = None
    n_members: int | None = None
    n_non_members: int | None = None
    roc: Mapping[str, tuple[float, ...]] | None = None
    score_histogram: Mapping[str, tuple[Any, ...]] | None = None

    _READERS: ClassVar[Mapping[str, Reader]] = MappingProxyType({
        "auc": _prob, "auc_ci": _interval, "auc_ci_level": _prob, "n_members": _count, "n_non_members": _count,
        "roc": _roc, "score_histogram": _histogram})
    _WHAT: ClassVar[str] = "reference"

    @classmethod
    def _adapt(cls, value: Any) -> Any:
        return value.as_reference() if isinstance(value, AttackEntry) else value


_REFERENCE_FIELDS = ("auc", "auc_ci", "auc_ci_level", "n_members", "n_non_members", "roc", "score_histogram")


@dataclass(frozen=True, slots=True)
class AttackEntry(_Entry):
    """One membership-inference attack as the report shows it (higher score = member).

    Attributes:
        name: Unique name within its section (e.g. ``loss``, ``none/l2_distance/random_forest``).
        description: What the attack does, in words.
        auc: Area under the ROC.
        auc_ci: Interval of the AUC (bootstrap).
        auc_ci_level: Confidence level of ``auc_ci`` (1 − alpha).
        n_members: Members (forgotten records) attacked.
        n_non_members: Non-members attacked.
        roc: ROC thinned to at most :data:`MAX_ROC_POINTS` points (:func:`thin_roc`).
        score_histogram: Histograms of both groups' scores (:func:`score_histogram`).
        auc_ci_method: How ``auc_ci`` was computed.
        balanced_accuracy: Best balanced accuracy over thresholds.
        advantage: Best TPR − FPR over thresholds.
        tpr_at: ``{"0.01": TPR@FPR=0.01, ...}``.
        operating_points: The ROC points behind ``tpr_at``, with Clopper–Pearson bounds.
        epsilon_lb: The attack's empirical ε lower bound.
        epsilon_cap: The largest bound its sample sizes allow.
        deg_count: MIA-U DegCount against the ``basic`` feature.
        deg_rate: MIA-U DegRate against the ``basic`` feature.
        reference: The same attack on the retrained model.

    Example:
        >>> entry = AttackEntry(name="loss", auc=0.7, tpr_at={"0.01": 0.05})
        >>> entry.with_reference(AttackEntry(name="loss", auc=0.52)).as_dict()["reference"]["auc"]
        0.52
    """

    name: str
    description: str = ""
    auc: float | None = None
    auc_ci: tuple[float, float] | None = None
    auc_ci_level: float | None = None
    n_members: int | None = None
    n_non_members: int | None = None
    roc: Mapping[str, tuple[float, ...]] | None = None
    score_histogram: Mapping[str, tuple[Any, ...]] | None = None
    auc_ci_method: str | None = None
    balanced_accuracy: float | None = None
    advantage: float | None = None
    tpr_at: Mapping[str, float | None] = field(default_factory=dict)
    operating_points: tuple[OperatingPointEntry, ...] = ()
    epsilon_lb: float | None = None
    epsilon_cap: float | None = None
    deg_count: float | None = None
    deg_rate: float | None = None
    reference: ReferenceEntry | None = None

    _READERS: ClassVar[Mapping[str, Reader]] = MappingProxyType({
        "name": _name, "description": _text, "auc_ci_method": opt_str, "tpr_at": _tpr_at,
        "operating_points": _operating_points, "epsilon_lb": _nonneg, "epsilon_cap": _nonneg,
        "deg_count": opt_float, "deg_rate": opt_float, "reference": _reference,
        "balanced_accuracy": _prob, "advantage": _prob, **ReferenceEntry._READERS})
    _WHAT: ClassVar[str] = "attack"

    def as_reference(self) -> ReferenceEntry:
        """This attack's figures as the reference of another (run on the retrained model).

        Example:
            >>> AttackEntry(name="loss", auc=0.5, n_members=10, epsilon_lb=0.1).as_reference()
            ReferenceEntry(auc=0.5, auc_ci=None, auc_ci_level=None, n_members=10, n_non_members=None, roc=None, score_histogram=None)
        """
        return ReferenceEntry(**{key: getattr(self, key) for key in _REFERENCE_FIELDS})

    def with_reference(self, reference: object) -> AttackEntry:
        """A copy with ``reference`` (an entry, a result with ``report_entry()``, a mapping or None)."""
        return replace(self, reference=reference)


@dataclass(frozen=True, slots=True)
class AttackSection(_Entry):
    """An MIA-L or MIA-U audit as the report shows it.

    Attributes:
        attacks: The attacks (at least one, names unique).
        target: What was attacked (None: the section's standard wording).
        comparison: Members against what (None: the section's standard wording).
        n_shadows: Shadow models used.
        n_population: Population samples used (RMIA).
        alpha: Error level of the intervals and bounds.
        delta: δ of the ε lower bounds.
        tpr_convention: How TPR@FPR is read (None: "TPR at the last ROC point with fpr <= x").
        unlearning: The unlearning audited (MIA-U).
        negatives: What the negatives are (MIA-U: ``out_out`` or ``in_in``).
        negatives_definition: The negatives, in words.
        evaluation: How the metrics were obtained.
        defences: Output defences evaluated.
        epsilon_lb: The section's headline ε lower bound (corrected for the number of attacks).
        epsilon_cap: Its cap.
        epsilon_correction: The multiple-testing correction behind ``epsilon_lb``.
        notes: Caveats.

    Example:
        >>> released = AttackSection(attacks=(AttackEntry(name="loss", auc=0.7),))
        >>> retrained = AttackSection(attacks=(AttackEntry(name="loss", auc=0.5),))
        >>> released.with_reference(retrained).attacks[0].reference.auc
        0.5
    """

    attacks: tuple[AttackEntry, ...]
    target: str | None = None
    comparison: str | None = None
    n_shadows: int | None = None
    n_population: int | None = None
    alpha: float | None = None
    delta: float | None = None
    tpr_convention: str | None = None
    unlearning: str | None = None
    negatives: str | None = None
    negatives_definition: str | None = None
    evaluation: str | None = None
    defences: tuple[str, ...] = ()
    epsilon_lb: float | None = None
    epsilon_cap: float | None = None
    epsilon_correction: str | None = None
    notes: tuple[str, ...] = ()

    _READERS: ClassVar[Mapping[str, Reader]] = MappingProxyType({
        "attacks": _attacks, "target": opt_str, "comparison": opt_str, "n_shadows": _count,
        "n_population": _count, "alpha": _prob, "delta": _prob, "tpr_convention": opt_str,
        "unlearning": opt_str, "negatives": opt_str, "negatives_definition": opt_str, "evaluation": opt_str,
        "defences": _texts, "epsilon_lb": _nonneg, "epsilon_cap": _nonneg, "epsilon_correction": opt_str,
        "notes": _texts})
    _WHAT: ClassVar[str] = "attack section"
    _METHOD: ClassVar[str] = "report_section"

    def with_reference(self, reference: object) -> AttackSection:
        """A copy whose attacks without a reference get the same-named attack of ``reference``.

        Args:
            reference: The same audit of the retrained model: an :class:`AttackSection`, a result
                with ``report_section()`` or a mapping of section keys.
        """
        other = {a.name: a for a in AttackSection.coerce(reference, where="reference section").attacks}
        return replace(self, attacks=tuple(
            a.with_reference(other[a.name]) if a.reference is None and a.name in other else a
            for a in self.attacks))


@dataclass(frozen=True, slots=True)
class BoundEntry(_Entry):
    """An empirical ε lower bound set beside the claimed ε.

    Attributes:
        source: Where it comes from (None: ``empirical[i]`` by position in the builder's list).
        method: How it was computed (e.g. ``clopper-pearson``, ``gdp``).
        epsilon_lb: The lower bound.
        cap: The largest bound the audit's sample sizes allow.
        alpha: Its error probability.
        delta: Its δ.
        n_members: Members behind it.
        n_non_members: Non-members behind it.
        correction: Multiple-testing correction applied.
        mu: The GDP μ lower bound (``gdp`` only).

    Example:
        >>> BoundEntry(source="one-run", epsilon_lb=0.3, cap=5.0, delta=1e-5).as_dict()["cap"]
        5.0
    """

    source: str | None = None
    method: str | None = None
    epsilon_lb: float | None = None
    cap: float | None = None
    alpha: float | None = None
    delta: float | None = None
    n_members: int | None = None
    n_non_members: int | None = None
    correction: str | None = None
    mu: float | None = None

    _READERS: ClassVar[Mapping[str, Reader]] = MappingProxyType({
        "source": opt_str, "method": opt_str, "epsilon_lb": _nonneg, "cap": _nonneg, "alpha": _prob,
        "delta": _prob, "n_members": _count, "n_non_members": _count, "correction": opt_str, "mu": opt_float})
    _WHAT: ClassVar[str] = "empirical bound"
