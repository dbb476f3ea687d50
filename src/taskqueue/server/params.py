"""What a request says besides its body: query parameters, path ids, the idempotency key.

Query strings are read by the type the OpenAPI document gives each parameter (the JSON Schema
of its model, so the two cannot drift): an integer is decimal digits (not ``10.0``, ``1_000``
or ``true``), a number is a JSON number, a boolean is ``true`` or ``false``, and a date-time is
RFC 3339. Each parameter is given at most once, by its snake_case name; any other is an error.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from typing import Any, ClassVar, Literal, TypeVar

import pydantic
from starlette.requests import Request

from taskqueue._fields import INT64_MAX, UUID_RE
from taskqueue.server.errors import ApiError, validation_details
from taskqueue.store import IdempotencyRequest

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "MAX_WAIT_S",
    "CascadeQuery",
    "LogsQuery",
    "Paging",
    "Query",
    "TaskQuery",
    "WaitQuery",
    "idempotency",
    "no_query",
    "parse_query",
    "path_id",
    "query_kinds",
]

M = TypeVar("M", bound=pydantic.BaseModel)

#: What an ``Idempotency-Key`` may be: 1 to 255 printable ASCII characters.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7E]{1,255}$"
_IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
#: Longest a ``/wait`` may hold a request, in seconds.
MAX_WAIT_S = 300.0
#: Longest a log follow may hold a request, in seconds.
MAX_FOLLOW_S = 3600.0

_INTEGER_RE = re.compile(r"^-?[0-9]+$")
_NUMBER_RE = re.compile(r"^-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$")
#: Past this many digits an integer is out of every range: not worth converting.
_MAX_DIGITS = 40


class Query(pydantic.BaseModel):
    """Base of the query parameters of one endpoint: unknown parameters refused."""

    model_config: ClassVar[pydantic.ConfigDict] = pydantic.ConfigDict(
        extra="forbid", allow_inf_nan=False
    )


class Paging(Query):
    """``limit`` and ``offset`` of a listing."""

    limit: int = pydantic.Field(100, ge=1, le=1000)
    offset: int = pydantic.Field(0, ge=0, le=INT64_MAX)


class WaitQuery(Query):
    """``GET /api/tasks/{id}/wait``: how long to hold the request, in seconds."""

    timeout: float = pydantic.Field(30.0, ge=0, le=MAX_WAIT_S)


class TaskQuery(Query):
    """``GET /api/tasks/{id}``: a version of a Function definition (default: the current)."""

    version: int | None = pydantic.Field(None, ge=1, le=2**31 - 1)


class CascadeQuery(Query):
    """``DELETE /api/projects/{id}``: whether to delete the project's tasks too."""

    cascade: bool = False


class LogsQuery(Query):
    """``GET /api/tasks/{id}/logs``: where to start, what to read, whether to follow."""

    offset: int = pydantic.Field(0, ge=0, le=2**31)
    limit: int = pydantic.Field(1000, ge=1, le=10_000)
    stream: Literal["stdout", "stderr"] | None = None
    attempt: int | None = pydantic.Field(None, ge=1, le=2**31)
    follow: bool = False
    #: With ``follow``: how long to follow before a ``timeout`` line (0: answer at once).
    timeout: float = pydantic.Field(300.0, ge=0, le=MAX_FOLLOW_S)


@functools.cache
def query_kinds(model: type[pydantic.BaseModel]) -> dict[str, str]:
    """Each parameter's JSON type (``integer``, ``number``, ``boolean``, ``string``)."""
    properties = model.model_json_schema(by_alias=False)["properties"]
    kinds: dict[str, str] = {}
    for name, schema in properties.items():
        branches = schema.get("anyOf", [schema])
        types = {branch.get("type", "string") for branch in branches} - {"null"}
        kinds[name] = types.pop() if len(types) == 1 else "string"
    return kinds


def _refused(name: str, message: str, kind: str) -> ApiError:
    return ApiError(
        422,
        f"query parameter {name}: {message}",
        [{"loc": ["query", name], "msg": message, "type": kind}],
    )


def _typed(name: str, value: str, kind: str) -> Any:
    """A query string's value as its parameter's JSON type, or 422 saying what it should be."""
    if kind == "integer":
        if not _INTEGER_RE.match(value):
            raise _refused(name, "Input should be an integer (decimal digits)", "int_parsing")
        digits = value.lstrip("-")
        if len(digits) > _MAX_DIGITS:
            return -(10**_MAX_DIGITS) if value.startswith("-") else 10**_MAX_DIGITS
        return int(value)
    if kind == "number":
        if not _NUMBER_RE.match(value):
            raise _refused(name, "Input should be a number", "float_parsing")
        return float(value)
    if kind == "boolean":
        if value not in ("true", "false"):
            raise _refused(name, "Input should be true or false", "bool_parsing")
        return value == "true"
    return value


def _unknown(model: type[pydantic.BaseModel], names: list[str]) -> ApiError:
    aliases = {field.alias: name for name, field in model.model_fields.items() if field.alias}
    hint = ""
    if names[0] in aliases and aliases[names[0]] != names[0]:
        hint = f" (query parameters are snake_case: {aliases[names[0]]})"
    return ApiError(
        422,
        f"unknown query parameter {names[0]!r}{hint}",
        [
            {"loc": ["query", name], "msg": "unknown parameter", "type": "extra_forbidden"}
            for name in names
        ],
    )


def parse_query(request: Request, model: type[M]) -> M:
    """Query parameters validated as ``model``; unknown or repeated parameters are an error."""
    kinds = query_kinds(model)
    unknown = sorted({key for key, _ in request.query_params.multi_items() if key not in kinds})
    if unknown:
        raise _unknown(model, unknown)
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in params:
            raise _refused(key, "given more than once", "duplicate")
        if "\x00" in value:  # no database stores it, and no stored value contains it
            raise _refused(key, "must not contain NUL characters", "value_error")
        params[key] = _typed(key, value, kinds[key])
    try:
        return model.model_validate(params)
    except pydantic.ValidationError as exc:
        details = validation_details(exc, ("query",))
        loc = ".".join(str(p) for p in details[0]["loc"][1:])
        raise ApiError(422, f"query parameter {loc}: {details[0]['msg']}", details) from exc


def no_query(request: Request) -> None:
    """Refuse query parameters on an endpoint that takes none: a typo must not pass silently."""
    if request.scope.get("query_string"):
        names = sorted({key for key, _ in request.query_params.multi_items()}) or ["?"]
        raise ApiError(
            422,
            f"unknown query parameter {names[0]!r}: this endpoint takes none",
            [
                {"loc": ["query", name], "msg": "unknown parameter", "type": "extra_forbidden"}
                for name in names
            ],
        )


def path_id(request: Request, name: str) -> str:
    """A UUID path parameter (8-4-4-4-12 hex digits) in canonical form, or 422."""
    raw: str = request.path_params[name]
    if not UUID_RE.match(raw):
        shown = raw if len(raw) <= 60 else raw[:60] + "..."
        raise ApiError(
            422,
            f"{name} {shown!r} is not a valid UUID",
            [{"loc": ["path", name], "msg": "not a valid UUID", "type": "uuid_parsing"}],
        )
    return str(uuid.UUID(raw))


def idempotency(request: Request, data: pydantic.BaseModel) -> IdempotencyRequest | None:
    """The request's ``Idempotency-Key``, scoped to its endpoint and bound to its content.

    The content is hashed as parsed, so spacing, key order or camelCase spelling do not make
    a repeat look like a different request.
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY_RE.match(key):
        raise ApiError(
            422,
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
            [{"loc": ["header", "Idempotency-Key"], "msg": "invalid", "type": "value_error"}],
        )
    digest = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    scoped = f"{request.url.path}:{key}"
    principal = getattr(request.state, "principal", None)
    key_id = getattr(principal, "key_id", None)
    if key_id is not None:  # one key's Idempotency-Key never replays another key's answer
        scoped = f"{key_id}:{hashlib.sha256(scoped.encode()).hexdigest()}"
    return IdempotencyRequest(key=scoped, request_hash=digest)
