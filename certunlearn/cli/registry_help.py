"""Option help texts that name what the registries hold, filled in only when help is shown.

A help string may contain ``{models}``, ``{datasets}``, ``{posthoc_methods}``, ``{attacks}`` or
``{attack_classifiers}``; :class:`RegistryHelpCommand` replaces them with the registered names (a
user's ``register_model`` / ``register_unlearner`` ... included) when ``--help`` is rendered. The
registries import torch or scikit-learn, so they are read lazily: a command that does not show its
help never pays for them.

Example:
    >>> "logreg" in registry_names("models").split(", ")
    True
    >>> fill("Model: {models}.").startswith("Model: ")
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer.core

__all__ = ["REGISTRY_NAMES", "RegistryHelpCommand", "fill", "registry_names"]


def _models() -> list[str]:
    from certunlearn.models import MODELS

    return sorted(MODELS)


def _datasets() -> list[str]:
    from certunlearn.data import DATASETS

    return sorted(DATASETS)


def _posthoc_methods() -> list[str]:
    from certunlearn.jobs.forget import NEEDS_TRAINING_RECORDS
    from certunlearn.unlearn import UNLEARNERS

    return sorted(name for name in UNLEARNERS if name not in NEEDS_TRAINING_RECORDS)


def _attacks() -> list[str]:
    from certunlearn.audit.attacks import ATTACKS

    return list(ATTACKS)


def _attack_classifiers() -> list[str]:
    from certunlearn.audit.mia_u_spec import ATTACK_CLASSIFIERS

    return list(ATTACK_CLASSIFIERS)


REGISTRY_NAMES: dict[str, Callable[[], list[str]]] = {
    "models": _models,
    "datasets": _datasets,
    "posthoc_methods": _posthoc_methods,
    "attacks": _attacks,
    "attack_classifiers": _attack_classifiers,
}
"""Placeholder → function listing the registered names."""


def registry_names(kind: str) -> str:
    """The names registered under ``kind`` (a key of :data:`REGISTRY_NAMES`), comma-separated."""
    return ", ".join(REGISTRY_NAMES[kind]())


class _Names(dict):  # str.format_map source: unknown placeholders stay as written
    def __missing__(self, key: str) -> str:
        if key in REGISTRY_NAMES:
            return registry_names(key)
        return "{" + key + "}"


def fill(text: str | None) -> str | None:
    """``text`` with every registry placeholder replaced by the registered names."""
    if not text or "{" not in text:
        return text
    return text.format_map(_Names())


class RegistryHelpCommand(typer.core.TyperCommand):
    """A typer command whose option help may name registries (see the module docstring)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            if getattr(param, "help", None):
                param.help = fill(param.help)  # type: ignore[attr-defined]
        self.help = fill(self.help)
        super().format_help(ctx, formatter)
