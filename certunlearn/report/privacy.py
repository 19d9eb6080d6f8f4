r"""The audit sections of a compliance report: MIA-L, MIA-U (sections 5–6) and empirical privacy (7).

They read only the report-entry shapes of :mod:`certunlearn.report.entries`: an audit result's
``report_section()`` (or an :class:`~certunlearn.report.entries.AttackSection`, or a mapping of its
keys) for an attack section, and ``report_entry()`` results (or
:class:`~certunlearn.report.entries.BoundEntry` objects, or mappings of their keys) for extra
empirical ε bounds. What needs the whole section is added here: each attack's ``comparison`` slot
(filled later from the policy), the ``best_attack``, the standard wording of ``target`` /
``comparison`` / ``tpr_convention``, and the headline bounds of the MIA sections in the empirical
section.

Example:
    >>> section = attack_section("mia_l", {"attacks": [{"name": "loss", "auc": 0.6}, {"name": "lira", "auc": 0.7}]})
    >>> section["best_attack"], section["target"], section["attacks"][0]["comparison"]
    ('lira', 'released model', None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from certunlearn.errors import ConfigError
from certunlearn.report.entries import AttackSection, BoundEntry
from certunlearn.report.fields import opt_float, reject_unknown

__all__ = ["TPR_CONVENTION", "attack_section", "empirical_section"]

TPR_CONVENTION = "TPR at the last ROC point with fpr <= x"
"""How TPR@FPR=x is read off the ROC when a section does not say."""

_SECTION_META = {
    "mia_l": ("released model", "forget set (members) vs held-out records never trained on (non-members)"),
    "mia_u": ("original and unlearned models", "deleted records vs negatives (see negatives_definition)"),
}

_INTERPRETATION = ("An epsilon lower bound above the claimed epsilon refutes the certificate (FAIL). A bound below "
                   "it is consistent with the claim but proves nothing; the audit could not have shown more than "
                   "its cap.")


def attack_section(kind: str, value: object) -> dict[str, Any] | None:
    """Section 5 (``mia_l``) or 6 (``mia_u``): the audit's attacks and headline figures, or None.

    Args:
        kind: ``"mia_l"`` or ``"mia_u"``.
        value: None (not run), an object with ``report_section()``, an
            :class:`~certunlearn.report.entries.AttackSection` or a mapping of its keys.

    Raises:
        ConfigError: ``value`` is none of these, or a mapping with unknown keys or bad values.

    Example:
        >>> attack_section("mia_u", {"attacks": [{"name": "x"}], "negatives": "out_out"})["tpr_convention"]
        'TPR at the last ROC point with fpr <= x'
    """
    if kind not in _SECTION_META:
        raise ConfigError(f"attack section kind must be one of {sorted(_SECTION_META)}, got {kind!r}")
    if value is None:
        return None
    section: AttackSection = AttackSection.coerce(value, where=kind)
    attacks = [{**attack.as_dict(), "comparison": None} for attack in section.attacks]
    best = max((a for a in attacks if a["auc"] is not None), key=lambda a: a["auc"], default=None)
    target, comparison = _SECTION_META[kind]
    return {
        "target": section.target or target,
        "comparison": section.comparison or comparison,
        "attacks": attacks,
        "best_attack": None if best is None else best["name"],
        "n_shadows": section.n_shadows,
        "n_population": section.n_population,
        "alpha": section.alpha,
        "delta": section.delta,
        "tpr_convention": section.tpr_convention or TPR_CONVENTION,
        "unlearning": section.unlearning,
        "negatives": section.negatives,
        "negatives_definition": section.negatives_definition,
        "evaluation": section.evaluation,
        "defences": list(section.defences),
        "epsilon_lb": section.epsilon_lb,
        "epsilon_cap": section.epsilon_cap,
        "epsilon_correction": section.epsilon_correction,
        "notes": list(section.notes),
    }


def _extra_bounds(empirical: object) -> tuple[list[dict[str, Any]], float | None]:
    """The caller's ε bounds (unnamed ones named ``empirical[i]``) and the forgetting quality."""
    if empirical is None:
        return [], None
    forgetting_quality = None
    if isinstance(empirical, Mapping) and ("bounds" in empirical or "forgetting_quality" in empirical):
        reject_unknown("empirical", empirical, ("bounds", "forgetting_quality"))
        forgetting_quality = opt_float("forgetting_quality", empirical.get("forgetting_quality"))
        extra = list(empirical.get("bounds") or [])
    elif isinstance(empirical, Sequence) and not isinstance(empirical, (str, bytes)):
        extra = list(empirical)
    else:
        extra = [empirical]
    bounds = []
    for i, value in enumerate(extra):
        bound = BoundEntry.coerce(value, where=f"empirical[{i}]").as_dict()
        bound["source"] = bound["source"] or f"empirical[{i}]"
        bounds.append(bound)
    return bounds, forgetting_quality


def empirical_section(empirical: object, sections: Mapping[str, Any], certificate: Mapping[str, Any]) -> dict[str, Any]:
    """Section 7: the MIA sections' headline ε bounds and the caller's, beside the claimed ε.

    Args:
        empirical: None, one bound (an object with ``report_entry()``, a
            :class:`~certunlearn.report.entries.BoundEntry` or a mapping of its keys), a list of
            them, or ``{"bounds": [...], "forgetting_quality": F}``.
        sections: The built ``mia_l`` / ``mia_u`` sections (None where not run).
        certificate: The built certificate section.

    Example:
        >>> cert = {"epsilon": 1.0, "delta": 1e-5, "certified": True}
        >>> out = empirical_section([{"epsilon_lb": 0.4, "cap": 3.0}], {"mia_l": None}, cert)
        >>> out["bounds"][0]["source"], out["max_epsilon_lb"], out["max_cap"]
        ('empirical[0]', 0.4, 3.0)
    """
    bounds: list[dict[str, Any]] = []
    for kind in ("mia_l", "mia_u"):
        section = sections.get(kind)
        if section is not None and section["epsilon_lb"] is not None:
            bounds.append({
                "source": kind, "method": "clopper-pearson", "epsilon_lb": section["epsilon_lb"],
                "cap": section["epsilon_cap"], "alpha": section["alpha"], "delta": section["delta"],
                "n_members": section["attacks"][0]["n_members"],
                "n_non_members": section["attacks"][0]["n_non_members"],
                "correction": section["epsilon_correction"], "mu": None,
            })
    extra, forgetting_quality = _extra_bounds(empirical)
    bounds.extend(extra)
    lbs = [b["epsilon_lb"] for b in bounds if b["epsilon_lb"] is not None]
    caps = [b["cap"] for b in bounds if b["cap"] is not None]
    return {
        "claimed_epsilon": certificate["epsilon"],
        "claimed_delta": certificate["delta"],
        "certified": certificate["certified"],
        "bounds": bounds,
        "max_epsilon_lb": max(lbs) if lbs else None,
        "max_cap": max(caps) if caps else None,
        "forgetting_quality": forgetting_quality,
        "interpretation": _INTERPRETATION,
    }
