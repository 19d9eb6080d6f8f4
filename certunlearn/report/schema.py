"""The versioned JSON Schema of compliance reports, a small validator for it, and the report digest.

Reports are data first: :func:`~certunlearn.report.build.build_report` produces a plain dict, this
module checks it against ``certunlearn/report/schemas/<version>/report.schema.json`` (shipped in the
wheel), and the renderers only ever read validated dicts.

**Validator.** The schema is standard JSON Schema (draft 2020-12) restricted to a small set of
keywords (:data:`SUPPORTED_KEYWORDS`); :func:`iter_errors` implements exactly that set, and
:func:`check_schema` refuses a schema that uses anything else, so no rule can be silently ignored.
No third-party validator is needed at run time; ``jsonschema`` (in the ``test`` extra) cross-checks
it in the tests.

**Digest.** ``report_digest`` is the SHA-256 of the report's canonical JSON without the
``report_digest`` key: UTF-8, keys sorted, separators ``","`` and ``":"``, no NaN or infinity
(:func:`canonical_json`). Sign the digest; anyone can recompute it with :func:`report_digest`.

Example:
    >>> schema = load_schema()
    >>> schema["properties"]["schema_version"]["const"]
    3
    >>> first_error({"schema_version": 3}, schema)
    "$: missing required key 'kind'"
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

from certunlearn import digest
from certunlearn.errors import ConfigError, InputError

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_KEYWORDS",
    "SUPPORTED_VERSIONS",
    "ReportValidationError",
    "SchemaError",
    "canonical_json",
    "check_schema",
    "first_error",
    "iter_errors",
    "load_schema",
    "report_digest",
    "validate_report",
]

SCHEMA_VERSION = 3
"""Version of the schema :func:`~certunlearn.report.build.build_report` writes (2: the certificate
gains its reference, kind, public budget, measured bound and refinement; docs/report.md)."""

SUPPORTED_VERSIONS = (1, 2, 3)
"""Schema versions this release can validate and render."""

SUPPORTED_KEYWORDS = frozenset({
    "$schema", "$id", "$defs", "$ref", "$comment", "title", "description",
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "enum", "const", "minimum", "maximum", "pattern", "minLength",
})
"""The JSON Schema keywords the report schema may use (and :func:`iter_errors` implements)."""

_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


class ReportValidationError(InputError):
    """A report does not match its schema, its digest, or its own verdict; the message names the
    first problem with its JSON path."""


class SchemaError(InputError):
    """A schema uses a keyword outside :data:`SUPPORTED_KEYWORDS` or is malformed."""


# ---------------------------------------------------------------------------------------------
# Schema loading and checking
# ---------------------------------------------------------------------------------------------


def load_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The report schema of ``version``, read from the package data and checked.

    Args:
        version: A schema version in :data:`SUPPORTED_VERSIONS`.

    Returns:
        A fresh copy of the schema (a plain dict).

    Raises:
        ReportValidationError: Unsupported version.

    Example:
        >>> load_schema(1)["$id"]
        'urn:certunlearn:schema:report:1'
    """
    return json.loads(_schema_text(_check_version(version)))


def _check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version not in SUPPORTED_VERSIONS:
        raise ReportValidationError(
            f"$.schema_version: unsupported schema_version {version!r} "
            f"(this release reads {list(SUPPORTED_VERSIONS)})"
        )
    return version


@cache
def _schema_text(version: int) -> str:
    text = (resources.files("certunlearn.report") / "schemas" / str(version) / "report.schema.json").read_text(
        encoding="utf-8"
    )
    check_schema(json.loads(text))
    return text


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise :class:`SchemaError` if ``schema`` uses a keyword this validator does not implement.

    Args:
        schema: A JSON Schema document.

    Raises:
        SchemaError: The first unsupported keyword, unknown type or non-local reference.

    Example:
        >>> check_schema({"type": "object", "properties": {"a": {"type": "integer"}}})
        >>> check_schema({"type": "string", "format": "email"})
        Traceback (most recent call last):
        ...
        certunlearn.report.schema.SchemaError: #: unsupported schema keyword 'format'
    """
    _check_node(schema, "#")


def _check_node(node: object, where: str) -> None:
    if not isinstance(node, Mapping):
        raise SchemaError(f"{where}: a schema must be an object, got {type(node).__name__}")
    for key in node:
        if key not in SUPPORTED_KEYWORDS:
            raise SchemaError(f"{where}: unsupported schema keyword {key!r}")
    types = node.get("type")
    for name in [types] if isinstance(types, str) else (types or []):
        if name not in _TYPES:
            raise SchemaError(f"{where}: unknown type {name!r}")
    for group in ("properties", "$defs"):
        for name, child in node.get(group, {}).items():
            _check_node(child, f"{where}/{group}/{name}")
    for key in ("items", "additionalProperties"):
        child = node.get(key)
        if isinstance(child, Mapping):
            _check_node(child, f"{where}/{key}")
    if "$ref" in node and not str(node["$ref"]).startswith("#/"):
        raise SchemaError(f"{where}: only local references '#/...' are supported, got {node['$ref']!r}")


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _is_type(value: object, name: str) -> bool:
    actual = _type_name(value)
    if name == "number":
        return actual in ("integer", "number")
    if name == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())  # type: ignore[arg-type]
    return actual == name


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        try:
            node = node[part]
        except (KeyError, TypeError):
            raise SchemaError(f"unresolvable reference {ref!r}") from None
    return node


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr) if _type_name(value) != "number" else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def iter_errors(
    instance: object, schema: Mapping[str, Any], *, root: Mapping[str, Any] | None = None, path: str = "$"
) -> Iterator[str]:
    """Every way ``instance`` breaks ``schema``, as ``"<json path>: <problem>"``, in document order.

    Args:
        instance: A JSON value (dicts, lists, str, int, float, bool, None).
        schema: A schema using only :data:`SUPPORTED_KEYWORDS`.
        root: Document that ``$ref`` pointers resolve against (default: ``schema``).
        path: JSON path of ``instance`` (for messages).

    Yields:
        One message per problem.

    Example:
        >>> list(iter_errors({"a": "x"}, {"type": "object", "properties": {"a": {"type": "integer"}}}))
        ['$.a: expected integer, got string "x"']
    """
    root = schema if root is None else root
    if "$ref" in schema:
        yield from iter_errors(instance, _resolve(root, schema["$ref"]), root=root, path=path)
    if "type" in schema:
        allowed = [schema["type"]] if isinstance(schema["type"], str) else list(schema["type"])
        if not any(_is_type(instance, name) for name in allowed):
            yield f"{path}: expected {' or '.join(allowed)}, got {_type_name(instance)} {_short(instance)}"
            return
    if "const" in schema and not _json_equal(instance, schema["const"]):
        yield f"{path}: expected {_short(schema['const'])}, got {_short(instance)}"
        return
    if "enum" in schema and not any(_json_equal(instance, option) for option in schema["enum"]):
        yield f"{path}: expected one of {_short(schema['enum'])}, got {_short(instance)}"
        return
    kind = _type_name(instance)
    if kind in ("integer", "number"):
        number = float(instance)  # type: ignore[arg-type]
        if not math.isfinite(number):
            yield f"{path}: numbers must be finite, got {instance!r}"
        if "minimum" in schema and number < schema["minimum"]:
            yield f"{path}: must be >= {schema['minimum']}, got {instance!r}"
        if "maximum" in schema and number > schema["maximum"]:
            yield f"{path}: must be <= {schema['maximum']}, got {instance!r}"
    elif kind == "string":
        text = str(instance)
        if "minLength" in schema and len(text) < schema["minLength"]:
            yield f"{path}: must have at least {schema['minLength']} characters, got {_short(text)}"
        if "pattern" in schema and re.search(schema["pattern"], text) is None:
            yield f"{path}: must match {schema['pattern']!r}, got {_short(text)}"
    elif kind == "array":
        items = list(instance)  # type: ignore[call-overload]
        if "minItems" in schema and len(items) < schema["minItems"]:
            yield f"{path}: needs at least {schema['minItems']} items, got {len(items)}"
        if "maxItems" in schema and len(items) > schema["maxItems"]:
            yield f"{path}: allows at most {schema['maxItems']} items, got {len(items)}"
        if isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(items):
                yield from iter_errors(item, schema["items"], root=root, path=_child(path, index))
    elif kind == "object":
        obj: Mapping[str, Any] = instance  # type: ignore[assignment]
        for key in schema.get("required", ()):
            if key not in obj:
                yield f"{path}: missing required key {key!r}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key in obj:
            if not isinstance(key, str):
                yield f"{path}: keys must be strings, got {key!r}"
            elif key in properties:
                yield from iter_errors(obj[key], properties[key], root=root, path=_child(path, key))
            elif extra is False:
                yield f"{path}: unexpected key {key!r} (allowed: {', '.join(sorted(properties))})"
            elif isinstance(extra, Mapping):
                yield from iter_errors(obj[key], extra, root=root, path=_child(path, key))


def _json_equal(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def first_error(instance: object, schema: Mapping[str, Any]) -> str | None:
    """The first problem :func:`iter_errors` finds, or None when ``instance`` is valid.

    Args:
        instance: A JSON value.
        schema: The schema.

    Returns:
        ``"<json path>: <problem>"`` or None.

    Example:
        >>> first_error(3, {"type": "integer", "minimum": 5})
        '$: must be >= 5, got 3'
    """
    return next(iter_errors(instance, schema), None)


# ---------------------------------------------------------------------------------------------
# Digest
# ---------------------------------------------------------------------------------------------


def canonical_json(report: Mapping[str, Any]) -> bytes:
    """The canonical bytes the digest is computed on (``report_digest`` itself left out).

    UTF-8 JSON with sorted keys and compact separators; NaN and infinity are refused.

    Args:
        report: A report dict (any JSON object).

    Returns:
        The bytes.

    Raises:
        ReportValidationError: The report holds NaN, infinity or non-JSON values.

    Example:
        >>> canonical_json({"b": 1, "a": [1.5, None], "report_digest": "x"})
        b'{"a":[1.5,null],"b":1}'
    """
    body = {key: value for key, value in report.items() if key != "report_digest"}
    try:
        return digest.canonical_json(body)
    except ConfigError as exc:
        raise ReportValidationError(f"$: {exc}") from None


def report_digest(report: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``report``: what a signature should cover.

    Args:
        report: A report dict; its own ``report_digest`` key is ignored.

    Returns:
        The hex digest.

    Example:
        >>> report_digest({"a": 1, "b": 2}) == report_digest({"b": 2, "a": 1, "report_digest": "?"})
        True
    """
    return hashlib.sha256(canonical_json(report)).hexdigest()


# ---------------------------------------------------------------------------------------------
# Whole-report validation
# ---------------------------------------------------------------------------------------------


def validate_report(report: object, *, check_digest: bool = True, check_verdict: bool = True) -> None:
    """Check a report: its schema version, the schema, the digest, and that the verdict follows.

    The verdict check recomputes :func:`~certunlearn.report.policy.verdict` from the report's own
    numbers under its recorded policy, so an edited verdict (or edited evidence) is caught even when
    the digest was recomputed.

    Args:
        report: The parsed JSON document.
        check_digest: Recompute ``report_digest`` and compare.
        check_verdict: Recompute the verdict and compare status and reasons.

    Raises:
        ReportValidationError: The first problem, named with its JSON path.

    Example:
        >>> validate_report({"schema_version": 4})
        Traceback (most recent call last):
        ...
        certunlearn.report.schema.ReportValidationError: $.schema_version: unsupported schema_version 4 (this release reads [1, 2, 3])
    """
    if not isinstance(report, Mapping):
        raise ReportValidationError(f"$: a report must be a JSON object, got {_type_name(report)}")
    if "schema_version" not in report:
        raise ReportValidationError("$: missing required key 'schema_version'")
    schema = load_schema(_check_version(report["schema_version"]))
    problem = first_error(report, schema)
    if problem is not None:
        raise ReportValidationError(problem)
    if check_digest:
        expected = report_digest(report)
        if report["report_digest"] != expected:
            raise ReportValidationError(
                f"$.report_digest: does not match the content (recorded {report['report_digest'][:12]}…, "
                f"computed {expected[:12]}…): the report was changed after it was built"
            )
    if check_verdict:
        from certunlearn.report.policy import Policy, verdict

        recomputed = verdict(report, Policy.from_mapping(report["policy"]))
        recorded = report["verdict"]
        if recorded["status"] != recomputed.status or recorded["reasons"] != recomputed.as_dict()["reasons"]:
            raise ReportValidationError(
                f"$.verdict: recorded {recorded['status']} does not follow from the report under its "
                f"policy (recomputed {recomputed.status})"
            )
