"""The shape of the package (docs/architecture.md), checked on the source: module and function sizes,
and imports that only go down the layers. Imports inside functions count; doctest examples do not."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "certunlearn"
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 100

# package (or module) -> packages it must never import, with the reason
FORBIDDEN: dict[str, tuple[tuple[str, ...], str]] = {
    "certify": (("torch", "certunlearn.autodiff", "certunlearn.train", "certunlearn.unlearn", "certunlearn.audit",
                 "certunlearn.report", "certunlearn.jobs", "certunlearn.cli", "certunlearn.models"),
                "certify/ is pure numpy/scipy maths"),
    "digest": (("torch", "certunlearn.certify", "certunlearn.unlearn", "certunlearn.audit", "certunlearn.report",
                "certunlearn.jobs"), "one numpy-only digest"),
    "autodiff": (("certunlearn.models", "certunlearn.train", "certunlearn.unlearn", "certunlearn.audit",
                  "certunlearn.report", "certunlearn.jobs", "certunlearn.cli"), "autodiff never imports the model zoo"),
    "train": (("certunlearn.unlearn", "certunlearn.audit", "certunlearn.report", "certunlearn.jobs", "certunlearn.cli"),
              "train sits below unlearn and audit"),
    "unlearn": (("certunlearn.audit", "certunlearn.report", "certunlearn.jobs", "certunlearn.cli"),
                "unlearn sits below audit and report"),
    "audit": (("certunlearn.jobs", "certunlearn.cli"), "audit is a library of arrays and models"),
    "report": (("certunlearn.audit", "certunlearn.jobs", "certunlearn.cli"), "report never imports audit"),
    "service": (("certunlearn.jobs", "certunlearn.cli"), "the service is a library under the jobs and the CLI"),
    "jobs": (("certunlearn.cli",), "the CLI calls jobs, not the reverse"),
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py")


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_package_has_modules() -> None:
    assert len(_modules()) > 40


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name}: {text.count(chr(10))} lines > {MAX_MODULE_LINES}"
    long = [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down_the_layers(path: Path) -> None:
    rule = FORBIDDEN.get(_layer(path))
    if rule is None:
        return
    forbidden, why = rule
    bad = [(line, name) for line, name in _imports(ast.parse(path.read_text(encoding="utf-8")))
           if any(_is_under(name, f) for f in forbidden)]
    assert not bad, f"{path.relative_to(PACKAGE)} ({why}): {bad}"


def test_the_checker_sees_function_level_imports() -> None:
    tree = ast.parse("def f():\n    from certunlearn.audit.metrics import attack_metrics\n")
    assert (2, "certunlearn.audit.metrics") in _imports(tree)
