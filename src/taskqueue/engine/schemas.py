"""JSON Schemas of Function definitions: checked at creation, compiled once, errors with paths.

Schemas are draft 2020-12. A ``$ref`` may point within the schema, never to a URL: the server
fetches nothing on a caller's behalf. Compiled validators are kept by the schema's text, so an
execution pays for validation, not for compiling.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import jsonschema_rs
import orjson

__all__ = [
    "DRAFT",
    "MAX_ERRORS",
    "SchemaRefused",
    "compile_schema",
    "instance_errors",
    "json_path",
    "schema_errors",
]

#: The only ``$schema`` a schema may name (it may also name none).
DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: The most errors an answer lists for one value.
MAX_ERRORS = 20


class SchemaRefused(ValueError):
    """A schema that is not a valid draft 2020-12 schema, or that refers outside itself."""


def _refuse_retrieval(uri: str) -> Any:
    raise SchemaRefused(f"$ref {uri!r} points outside the schema; only local references work")


def _short(message: str, limit: int = 300) -> str:
    """A message cut to ``limit`` characters (it may quote a large part of the value)."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def json_path(parts: Sequence[str | int]) -> str:
    """A location inside a JSON value as a JSON path: ``$.items[0].name``."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier():
            path += f".{part}"
        else:
            path += "[" + orjson.dumps(part).decode() + "]"
    return path


@lru_cache(maxsize=512)
def _compiled(text: str) -> jsonschema_rs.Draft202012Validator:
    schema = orjson.loads(text)
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        where = json_path(list(exc.instance_path))
        raise SchemaRefused(f"not a valid JSON Schema at {where}: {exc.message}") from None
    try:
        return jsonschema_rs.Draft202012Validator(
            schema, retriever=_refuse_retrieval, validate_formats=True
        )
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        message = str(exc).split("\n", 1)[0]
        raise SchemaRefused(f"the schema cannot be used: {message}") from None


def compile_schema(schema: Any) -> jsonschema_rs.Draft202012Validator:
    """A validator of ``schema``, or raise :class:`SchemaRefused` saying what is wrong."""
    if isinstance(schema, dict):
        named = schema.get("$schema")
        if named is not None and named not in (DRAFT, DRAFT + "#"):
            raise SchemaRefused(f"$schema must be {DRAFT} (draft 2020-12), not {named!r}")
    return _compiled(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode())


def schema_errors(schemas: Sequence[tuple[list[Any], Any]]) -> list[dict[str, Any]]:
    """The error details of each (location, schema) that is not a usable schema."""
    details: list[dict[str, Any]] = []
    for loc, schema in schemas:
        if schema is None:
            continue
        try:
            compile_schema(schema)
        except SchemaRefused as exc:
            details.append({"loc": loc, "msg": str(exc), "type": "invalid_schema"})
    return details


def instance_errors(schema: Any, value: Any, loc: list[Any]) -> list[dict[str, Any]]:
    """How ``value`` fails ``schema``, one detail per error (at most :data:`MAX_ERRORS`).

    Each ``loc`` is ``loc`` followed by the path inside the value; ``msg`` starts with the
    value's JSON path (``$.text``), so a person reading it knows where to look.
    """
    validator = compile_schema(schema)
    details: list[dict[str, Any]] = []
    for error in validator.iter_errors(value):
        path = list(error.instance_path)
        details.append(
            {
                "loc": [*loc, *path],
                "msg": f"{json_path(path)}: {_short(error.message)}",
                "type": "schema",
                "path": json_path(path),
            }
        )
        if len(details) >= MAX_ERRORS:
            break
    return details
