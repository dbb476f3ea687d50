r"""Request bodies from JSON to models: duplicate keys refused, large bodies off the event loop.

Pydantic (like every fast JSON parser) keeps the last of two equal keys, so
``{"command": "echo SAFE", "command": "echo EVIL"}`` would store ``echo EVIL`` while anything in
front of the API that reads the first key saw ``echo SAFE``. Every body is checked for
duplicate keys at any depth before it is validated; a duplicate is a 400 naming the key and
where it is.

The check costs two passes of orjson and three byte counts (a tenth to a third of the
validation it precedes): a body without duplicates has exactly as many ``:`` outside its
strings as its parsed and re-serialised form, so it compares the colons of the raw body,
corrected for ``\u003a`` escapes, with those of ``orjson.dumps(orjson.loads(body))``. A
duplicate always leaves the raw body with more; any mismatch (or a body orjson refuses) is
settled by the exact, slower parse that names the key.

Parsing and validating a large body takes long enough (about 20 ms a megabyte) to stall every
other request, so a body over :data:`INLINE_BYTES` is parsed in a worker thread. A thread
helps only between the parser's calls (each holds the GIL throughout), so no single call may be
long either: a top-level list over its field's limit is refused before its items are
validated.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from typing import Any, TypeVar

import anyio.to_thread
import orjson
import pydantic
from annotated_types import MaxLen
from pydantic_core import InitErrorDetails
from starlette.requests import Request

from taskqueue.server.errors import ApiError

#: Longest a client may take to send a request body, in seconds.
BODY_TIMEOUT_S = 30.0

__all__ = [
    "BODY_TIMEOUT_S",
    "INLINE_BYTES",
    "decode_body",
    "find_duplicate_key",
    "read_request_body",
    "refuse_duplicate_keys",
    "refuse_overlong_lists",
]

M = TypeVar("M", bound=pydantic.BaseModel)

#: Bodies up to this size are parsed on the event loop (well under a millisecond of work);
#: larger ones in a worker thread, so the loop keeps serving other requests meanwhile.
INLINE_BYTES = 64 * 1024

_ESCAPED_COLONS = (b"\\u003a", b"\\u003A")


#: What :func:`_loads` answers for a body orjson cannot parse.
_UNPARSED: Any = object()


class _Pairs(list[tuple[str, Any]]):
    """One JSON object as its key-value pairs, in order, duplicates kept."""


def _loads(body: bytes) -> Any:
    """``body`` parsed by orjson, or :data:`_UNPARSED` where orjson refuses it."""
    try:
        return orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError):
        return _UNPARSED


def _same_colon_count(body: bytes, parsed: Any) -> bool:
    """Whether ``body`` provably has no duplicate key (False: it may, or orjson cannot tell)."""
    if parsed is _UNPARSED:
        return False
    try:
        again = orjson.dumps(parsed)
    except orjson.JSONEncodeError:
        return False
    raw = body.count(b":") + sum(body.count(escape) for escape in _ESCAPED_COLONS)
    return raw == again.count(b":")


def find_duplicate_key(body: bytes, parsed: Any = _UNPARSED) -> tuple[list[str | int], str] | None:
    """The first duplicate key of a JSON body: where its object is and the key; else None.

    ``parsed`` is the body as orjson parses it, if the caller has it already. A body that is
    not JSON has none (its validation says what is wrong with it).
    """
    if _same_colon_count(body, _loads(body) if parsed is _UNPARSED else parsed):
        return None
    try:
        parsed = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[list[str | int], Any]] = [([], parsed)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for key, _ in value:
                if key in seen:
                    return path, key
                seen.add(key)
            stack.extend(([*path, key], item) for key, item in reversed(value))
        elif isinstance(value, list):
            stack.extend(([*path, index], item) for index, item in reversed(list(enumerate(value))))
    return None


def refuse_duplicate_keys(body: bytes, parsed: Any = _UNPARSED) -> None:
    """Raise a 400 naming the first duplicate key of ``body``, if it has one."""
    found = find_duplicate_key(body, parsed)
    if found is None:
        return
    path, key = found
    where = ".".join(str(part) for part in path)
    shown = key if len(key) <= 60 else key[:60] + "..."
    raise ApiError(
        400,
        f"{where + ': ' if where else ''}the key {shown!r} is given more than once",
        [{"loc": [*path, key], "msg": "duplicate key", "type": "duplicate_key"}],
    )


def refuse_overlong_lists(model: type[pydantic.BaseModel], parsed: Any) -> None:
    """Refuse a top-level list over its field's ``max_length`` before validating its items.

    Pydantic checks a list's length only after validating every item, so 70,000 tasks in a
    batch of at most 5,000 would cost a second of validation to refuse. The error is pydantic's
    own, as if it had got there.
    """
    if not isinstance(parsed, dict):
        return
    for name, field in model.model_fields.items():
        limit = next((m.max_length for m in field.metadata if isinstance(m, MaxLen)), None)
        if limit is None:
            continue
        for key in dict.fromkeys((name, field.alias or name)):
            value = parsed.get(key)
            if isinstance(value, list) and len(value) > limit:
                error: InitErrorDetails = {
                    "type": "too_long",
                    "loc": (key,),
                    "input": f"a list of {len(value)} items",  # not the list: its repr is slow
                    "ctx": {"field_type": "List", "max_length": limit, "actual_length": len(value)},
                }
                raise pydantic.ValidationError.from_exception_data(model.__name__, [error])


def _decode(model: type[M], body: bytes) -> M:
    parsed = _loads(body)
    refuse_overlong_lists(model, parsed)
    refuse_duplicate_keys(body, parsed)
    return model.model_validate_json(body)


class _CollectorPause:
    """The cyclic garbage collector paused while at least one large body is parsed.

    Parsing builds objects that the collector would scan again and again as they are made (it
    runs every few hundred new containers, and now and then over the whole heap); that doubles
    to quadruples the parse, all of it with the GIL held. Nothing a parse makes is a cycle.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self._was_enabled:
                gc.enable()


_collector_pause = _CollectorPause()


def _decode_large(model: type[M], body: bytes) -> M:
    with _collector_pause:
        return _decode(model, body)


async def decode_body(model: type[M], body: bytes) -> M:
    """``body`` validated as ``model``, refusing duplicate keys; off the loop when large."""
    if len(body) <= INLINE_BYTES:
        return _decode(model, body)
    return await anyio.to_thread.run_sync(_decode_large, model, body)


async def read_request_body(request: Request, media_type: str = "application/json") -> bytes:
    """The request body, refusing content types other than ``media_type``, and over the limit."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != media_type:
        shown = "JSON" if media_type == "application/json" else "a form"
        raise ApiError(
            415, f"send the body as {shown} with the header 'Content-Type: {media_type}'"
        )
    cached: bytes | None = getattr(request, "_body", None)
    if cached is not None:  # read already (to check a signature)
        return cached
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise ApiError(413, f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []

    async def receive_all() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(receive_all(), BODY_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the body did not arrive within {BODY_TIMEOUT_S:g} s") from None
    body = b"".join(chunks)
    request._body = body  # what Request.body() and Request.stream() answer from now on
    return body
