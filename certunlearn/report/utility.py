"""The utility section of a compliance report: accuracy of every model, ratios, privacy–utility curve.

Example:
    >>> utility_section({"released": {"test": 0.9}})["models"]["released"]["test_accuracy"]
    0.9
"""

from __future__ import annotations

import math
from typing import Any

from certunlearn.errors import ConfigError
from certunlearn.report.fields import as_mapping, opt_float, reject_unknown

__all__ = ["utility_section"]

_UTILITY_KEYS = ("released", "retrained", "original", "trained", "unlearned_noiseless", "noiseless",
                 "privacy_utility_curve")
_SPLITS = ("retain", "test", "forget")


def _model_utility(name: str, value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    raw = as_mapping(name, value)
    allowed = [*_SPLITS, *(f"{s}_accuracy" for s in _SPLITS), *(f"{s}_loss" for s in _SPLITS)]
    reject_unknown(f"utility[{name!r}]", raw, allowed)
    out: dict[str, Any] = {}
    for split in _SPLITS:
        if split in raw and f"{split}_accuracy" in raw:
            raise ConfigError(f"utility[{name!r}] gives both {split!r} and {split + '_accuracy'!r}")
        out[f"{split}_accuracy"] = opt_float(f"{split}_accuracy", raw.get(f"{split}_accuracy", raw.get(split)))
    for split in _SPLITS:
        out[f"{split}_loss"] = opt_float(f"{split}_loss", raw.get(f"{split}_loss"))
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if b == 0.0:
        return math.nan if a == 0.0 else math.inf
    return a / b


def utility_section(utility: object) -> dict[str, Any]:
    """Section 4, utility: each model's accuracy (and loss) per split, released / retrained ratios,
    and the privacy–utility curve of a σ sweep.

    Args:
        utility: ``released`` (required), ``retrained``, ``original`` (or ``trained``) and
            ``noiseless`` (or ``unlearned_noiseless``): each ``{retain, test, forget}`` accuracies
            (or ``*_accuracy``) and optional ``*_loss``; ``privacy_utility_curve``: a list of
            ``{sigma, epsilon, test_accuracy, retain_accuracy}``.

    Example:
        >>> section = utility_section({"released": {"test": 0.9}, "retrained": {"test": 0.95}})
        >>> round(section["ratios"]["test_accuracy_ratio"], 4), section["models"]["original"]
        (0.9474, None)
    """
    raw = as_mapping("utility", utility)
    reject_unknown("utility", raw, _UTILITY_KEYS)
    if raw.get("released") is None:
        raise ConfigError("utility needs the released model's figures under 'released'")
    if "trained" in raw and "original" in raw:
        raise ConfigError("utility gives both 'trained' and 'original'")
    models = {
        "released": _model_utility("released", raw["released"]),
        "retrained": _model_utility("retrained", raw.get("retrained")),
        "original": _model_utility("original", raw.get("original", raw.get("trained"))),
        "noiseless": _model_utility("noiseless", raw.get("noiseless", raw.get("unlearned_noiseless"))),
    }
    released, retrained = models["released"], models["retrained"] or {}
    ratios = {f"{s}_accuracy_ratio": _ratio(released[f"{s}_accuracy"], retrained.get(f"{s}_accuracy"))  # type: ignore[index]
              for s in _SPLITS}
    curve = raw.get("privacy_utility_curve")
    points = None
    if curve is not None:
        points = []
        for i, point in enumerate(curve):
            p = as_mapping(f"privacy_utility_curve[{i}]", point)
            reject_unknown("privacy_utility_curve point", p, ("sigma", "epsilon", "test_accuracy", "retain_accuracy"))
            points.append({key: opt_float(key, p.get(key))
                           for key in ("sigma", "epsilon", "test_accuracy", "retain_accuracy")})
    return {"models": models, "ratios": ratios, "ratio_definition": "released / retrained (RA_U/RA_R, TA_U/TA_R)",
            "privacy_utility_curve": points}
