"""The value types of the wire format: what each kind of field accepts, and says it accepts.

Each type validates strictly (a boolean is not an integer, a number is not a date, a date needs
its offset) and carries the JSON Schema that says exactly that, so the OpenAPI document built
from the models in :mod:`taskqueue.models` describes what the server accepts, no more and no
less. Python callers (the SDK) may also pass the native objects: ``datetime``, ``UUID``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar, Union
from uuid import UUID

from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError
from typing_extensions import TypeAliasType

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_JSON_FIELD_BYTES",
    "RESERVED_ENVIRONMENT",
    "UUID_RE",
    "EnvironmentMap",
    "JSONObject",
    "JSONValue",
    "Omittable",
    "SchemaExtra",
    "SchemaOf",
    "StrictInteger",
    "StrictNumber",
    "Text",
    "UTCDateTime",
    "WireUUID",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Largest size, in bytes of JSON, of a ``metadata`` or ``input`` value.
MAX_JSON_FIELD_BYTES = 256 * 1024

#: A UUID as the API writes it: 8-4-4-4-12 hexadecimal digits (either case).
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

#: The variables the worker sets in every command's environment (see ``taskqueue.worker``):
#: a task may not set them, since the worker's value would silently replace the task's.
RESERVED_ENVIRONMENT = (
    "TASKQUEUE_TASK_ID",
    "TASKQUEUE_ATTEMPT",
    "TASKQUEUE_WORKER_ID",
    "TASKQUEUE_WORKER_START",
    "TASKQUEUE_DEPLOYMENT",
    "TASKQUEUE_INPUT",
    "TASKQUEUE_OUTPUT",
    "TASKQUEUE_DEPENDENCIES",
    "TASKQUEUE_PHASE",
    "TASKQUEUE_ROUND",
)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NO_NUL = r"^[^\x00]*$"
# RFC 3339 with the offset required, years 0002 to 9998 (so that every offset converts to UTC
# within the calendar), no leap second (no datetime can hold one).
_YEAR = r"(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9])"
_RFC3339 = (
    rf"^{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RFC3339_RE = re.compile(_RFC3339)


class SchemaExtra:
    """An annotation that adds JSON Schema keywords to what pydantic writes for a type."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: Any
    ) -> JsonSchemaValue:
        """The type's own schema, with the keywords added."""
        schema: JsonSchemaValue = handler(core_schema)
        schema.update(self.keywords)
        return schema


class SchemaOf:
    """An annotation that describes a type by another type's JSON Schema (validation unchanged)."""

    def __init__(self, described: Any) -> None:
        self.adapter: TypeAdapter[Any] = TypeAdapter(described)

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: Any
    ) -> JsonSchemaValue:
        """The other type's schema."""
        schema: JsonSchemaValue = handler(self.adapter.core_schema)
        return schema


class _DropNull:
    """An annotation that takes ``null`` out of a type's JSON Schema."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: Any
    ) -> JsonSchemaValue:
        """The schema without its ``{"type": "null"}`` branch."""
        schema: JsonSchemaValue = handler(core_schema)
        branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
        if len(branches) == 1:
            del schema["anyOf"]
            schema.update(branches[0])
        elif branches:
            schema["anyOf"] = branches
        return schema


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError(
            "null_forbidden", "Input should not be null; leave the field out to keep its value"
        )
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _integer(value: Any) -> Any:
    """Only numbers may be integers: not booleans, not strings of digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError(
            "int_type", "Input should be an integer, not {kind}", {"kind": _kind(value)}
        )
    return value


def _number(value: Any) -> Any:
    """Only numbers are numbers: not booleans, not strings of digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError(
            "float_type", "Input should be a number, not {kind}", {"kind": _kind(value)}
        )
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _date_time(value: Any) -> Any:
    """An RFC 3339 date-time string (with its offset), or a ``datetime`` from Python code."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339_RE.match(value):
        raise PydanticCustomError(
            "datetime_type",
            "Input should be an RFC 3339 date-time with an offset, "
            "from year 0002 to 9998, such as 2030-01-31T12:00:00Z",
        )
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:  # only from Python code: the wire format requires an offset
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


def _uuid(value: Any) -> Any:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str) or not UUID_RE.match(value):
        raise PydanticCustomError(
            "uuid_parsing", "Input should be a UUID such as 01234567-89ab-cdef-0123-456789abcdef"
        )
    return value


def _env_names(value: Any) -> Any:
    """Names checked before values, so that an error names the field, not a huge key."""
    if not isinstance(value, dict):
        return value
    for name in value:
        if not isinstance(name, str) or len(name) > 256 or not _NAME_RE.match(name):
            raise ValueError(
                f"{str(name)[:50]!r} is not a valid environment variable name "
                "(letters, digits and _, not starting with a digit, at most 256 characters)"
            )
        if name in RESERVED_ENVIRONMENT:
            raise ValueError(f"{name} is set by the worker for every command; choose another name")
    return value


_LONG_NUMBER = re.compile(r"\d{19}|[eE]")


def _out_of_range(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, (int, float)):
            if not INT64_MIN <= item <= INT64_MAX:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _json_size(value: Any) -> Any:
    if value is None or value == {} or value == []:
        return value
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ValueError("must be plain JSON: NaN and Infinity are not JSON numbers") from exc
    except (TypeError, RecursionError) as exc:  # pragma: no cover - jiter guards depth
        raise ValueError(f"is not serialisable JSON: {exc}") from exc
    if len(text) > MAX_JSON_FIELD_BYTES:
        raise ValueError(f"is {len(text)} bytes of JSON; the limit is {MAX_JSON_FIELD_BYTES}")
    # Only a run of 19+ digits or an exponent can be a number past 64 bits; walk only then.
    if _LONG_NUMBER.search(text) and _out_of_range(value):
        raise ValueError("has a number outside the 64-bit integer range")
    return value


#: What the JSON Schema of ``metadata`` and ``input`` says: any JSON, numbers within 64 bits.
JSONData = TypeAliasType(  # type: ignore[misc]
    "JSONData",
    Union[  # noqa: UP007 - a runtime alias, read by pydantic
        bool,
        str,
        Annotated[float, Field(ge=INT64_MIN, le=INT64_MAX)],
        list["JSONData"],  # type: ignore[misc]
        dict[str, "JSONData"],  # type: ignore[misc]
        None,
    ],
)

T = TypeVar("T")

#: A field of a change (``PUT``) that may be left out, but not set to ``null``.
Omittable = Annotated[Union[T, None], BeforeValidator(_not_null), _DropNull()]  # noqa: UP007

#: A string without NUL characters (no database stores them; PostgreSQL refuses them).
Text = Annotated[str, AfterValidator(_no_nul), SchemaExtra(pattern=_NO_NUL)]
#: Put last in an integer's ``Annotated`` (after its bounds, which then stay JSON Schema bounds):
#: a JSON number without a fractional part, never a boolean or a string.
StrictInteger = BeforeValidator(_integer)
#: Put last in a number's ``Annotated`` (after its bounds): never a boolean or a string.
StrictNumber = BeforeValidator(_number)
#: An RFC 3339 date-time with its offset, read as UTC.
UTCDateTime = Annotated[
    datetime,
    BeforeValidator(_date_time),
    AfterValidator(_aware),
    SchemaExtra(pattern=_RFC3339),
]
#: A UUID in its 8-4-4-4-12 form.
WireUUID = Annotated[UUID, BeforeValidator(_uuid)]
#: Any JSON value (numbers within 64 bits), at most :data:`MAX_JSON_FIELD_BYTES` of it.
JSONValue = Annotated[Any, AfterValidator(_json_size), SchemaOf(JSONData)]
#: A JSON object (numbers within 64 bits), at most :data:`MAX_JSON_FIELD_BYTES` of it.
JSONObject = Annotated[dict[str, Any], AfterValidator(_json_size), SchemaOf(dict[str, JSONData])]

_EnvValue = Annotated[Text, Field(max_length=32_768)]
#: A command's extra environment: valid names (none the worker sets), values without NUL.
EnvironmentMap = Annotated[
    dict[str, _EnvValue],
    Field(max_length=256),
    BeforeValidator(_env_names),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": 256,
            "propertyNames": {
                "type": "string",
                "pattern": _NAME_RE.pattern,
                "maxLength": 256,
                "not": {"enum": list(RESERVED_ENVIRONMENT)},
            },
            "additionalProperties": {"type": "string", "maxLength": 32_768, "pattern": _NO_NUL},
            "description": "Variables added to the command's environment. Names are letters, "
            "digits and _ (not starting with a digit); the worker's own "
            f"({', '.join(RESERVED_ENVIRONMENT)}) may not be set.",
        }
    ),
]
