"""What every handler uses: JSON answers, the app's store, the request body as a model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
import pydantic
from starlette.requests import Request
from starlette.responses import Response

from taskqueue.server.body import decode_body, read_request_body
from taskqueue.server.errors import ApiError
from taskqueue.store import Store

__all__ = ["json_response", "page_response", "parse_body", "store_of"]

M = TypeVar("M", bound=pydantic.BaseModel)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response, serialised with orjson."""
    return Response(
        orjson.dumps(data),
        status_code=status,
        media_type="application/json",
        headers=dict(headers) if headers else None,
    )


def page_response(key: str, page: Any, total: int, limit: int, offset: int) -> Response:
    """One page of a listing: its items under ``key``, how many there are, the paging asked."""
    return json_response({key: page, "total": total, "limit": limit, "offset": offset})


def store_of(request: Request) -> Store:
    """The store the app serves."""
    store: Store = request.app.state.store
    return store


async def parse_body(request: Request, model: type[M]) -> M:
    """The body validated as ``model`` (422 names each bad field, 400 a duplicate key)."""
    body = await read_request_body(request)
    if not body:
        raise ApiError(400, "the request has no body; send a JSON object")
    return await decode_body(model, body)
