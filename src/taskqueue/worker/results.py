"""Reading what a command left in ``$TASKQUEUE_OUTPUT``: safely, boundedly, as plain JSON."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from taskqueue.engine.schemas import SchemaRefused, instance_errors

__all__ = ["MAX_RESULT_BYTES", "MAX_RESULT_DEPTH", "output_mismatch", "read_result"]

#: Largest JSON result a command may write to ``$TASKQUEUE_OUTPUT``.
MAX_RESULT_BYTES = 1024 * 1024
#: Deepest nesting accepted in a command's JSON result (the API's serialiser stops at 255).
MAX_RESULT_DEPTH = 100


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _result_problem(value: Any) -> str | None:
    """Why a parsed result cannot be stored and served as JSON, or None."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_RESULT_DEPTH:
            return f"nests deeper than {MAX_RESULT_DEPTH} levels"
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not -(2**63) <= item < 2**63:
            return "has an integer that does not fit in 64 bits"
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


def read_result(path: str, owner: int | None = None) -> tuple[Any, str | None]:
    """The JSON a command wrote to ``$TASKQUEUE_OUTPUT``, or an error saying why not.

    Only a regular file is read (not a symlink, a FIFO or a device), and at most the limit.
    With ``owner`` (the user commands run as), the file must belong to that user: a link to
    a file of the worker's own is not read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"$TASKQUEUE_OUTPUT cannot be read ({exc.strerror}); write a regular file"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "$TASKQUEUE_OUTPUT is not a regular file"
        if owner is not None and info.st_uid != owner:
            return None, "$TASKQUEUE_OUTPUT is not a file the command wrote"
        data = b""
        while len(data) <= MAX_RESULT_BYTES:
            piece = os.read(fd, MAX_RESULT_BYTES + 1 - len(data))
            if not piece:
                break
            data += piece
    finally:
        os.close(fd)
    if len(data) > MAX_RESULT_BYTES:
        return None, f"$TASKQUEUE_OUTPUT is over the limit of {MAX_RESULT_BYTES} bytes"
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return None, f"$TASKQUEUE_OUTPUT is not valid JSON: {exc}"
    problem = _result_problem(value)
    if problem is not None:
        return None, f"$TASKQUEUE_OUTPUT {problem}"
    return value, None


def output_mismatch(schema: Any, output: Any) -> str | None:
    """How ``output`` fails the ``output_schema`` it must match (with the JSON path), or None."""
    try:
        errors = instance_errors(schema, output, [])
    except SchemaRefused as exc:  # pragma: no cover - schemas are checked when stored
        return f"output_schema cannot be used: {exc}"
    if not errors:
        return None
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"the output does not match output_schema at {errors[0]['msg']}{more}"
