"""``/api/keys``: make, list, show, revoke and rotate API keys (an admin key for every project).

A key's secret is in the answer that creates it and nowhere else, ever. Revoking a key keeps it
listed (``status: revoked``); every server stops accepting it within a second.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from taskqueue.apikeys import new_key_row
from taskqueue.models import KeyCreate, KeyRotate
from taskqueue.server.auth import Scope, principal_of
from taskqueue.server.errors import ApiError
from taskqueue.server.keyring import Keyring
from taskqueue.server.params import no_query, path_id
from taskqueue.server.responses import json_response, parse_body, store_of
from taskqueue.store.codec import to_us
from taskqueue.store.ids import new_id

__all__ = ["KEY_ENDPOINTS", "KEY_SCOPES"]


#: The fields of a new key's answer that only some kinds of key fill.
_NO_SECRET = {"key": None, "public_key": None, "secret_key": None, "replaces": None}


def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.auth.keyring
    return keyring


def _every_project(request: Request) -> None:
    """Keys are managed only with a key for every project (else a limited key could widen)."""
    principal = principal_of(request)
    if principal.projects is not None:
        raise ApiError(
            403,
            f"the API key {principal.name!r} is limited to some projects; keys are managed "
            "with an admin key for every project",
        )


async def create_key(request: Request) -> Response:
    """``POST /api/keys``: the new key, with its secret (shown this once)."""
    no_query(request)
    _every_project(request)
    data = await parse_body(request, KeyCreate)
    keyring = _keyring(request)
    if keyring.pepper is None:
        raise ApiError(
            409,
            "this server has no secret file to hash keys with; start it with --secret-file "
            "PATH (the same file on every server of this database)",
        )
    row, secret = new_key_row(
        keyring.pepper,
        new_id(),
        name=data.name,
        scopes=list(data.scopes),
        projects=[str(p) for p in data.projects] if data.projects is not None else None,
        kind=data.kind,
        expires_at=to_us(data.expires_at) if data.expires_at is not None else None,
        rate_limit=data.rate_limit,
        burst=data.burst,
    )
    key = await store_of(request).keys.create(row)
    await keyring.refresh()
    return json_response({**key, **_NO_SECRET, **secret}, 201)


async def list_keys(request: Request) -> Response:
    """``GET /api/keys``: every key, revoked ones too, without secrets."""
    no_query(request)
    _every_project(request)
    keys = await store_of(request).keys.shown()
    return json_response({"keys": keys, "total": len(keys)})


async def get_key(request: Request) -> Response:
    """``GET /api/keys/{key_id}``."""
    no_query(request)
    _every_project(request)
    return json_response(await store_of(request).keys.find(path_id(request, "key_id")))


async def revoke_key(request: Request) -> Response:
    """``POST /api/keys/{key_id}/revoke``: the key stops working at once, everywhere."""
    no_query(request)
    _every_project(request)
    key = await store_of(request).keys.revoke(path_id(request, "key_id"))
    await _keyring(request).refresh()
    return json_response(key)


async def rotate_key(request: Request) -> Response:
    """``POST /api/keys/{key_id}/rotate``: a new key like the old; the old one expires later.

    The old key keeps working for ``grace_seconds`` (default an hour), so clients can move to
    the new one without a moment in which neither works.
    """
    no_query(request)
    _every_project(request)
    changes = await parse_body(request, KeyRotate)
    store = store_of(request)
    old = await store.keys.find(path_id(request, "key_id"))
    if old["status"] != "active":
        raise ApiError(
            409, f"the key {old['name']!r} is {old['status']}; only an active key rotates"
        )
    keyring = _keyring(request)
    if keyring.pepper is None:
        raise ApiError(409, "this server has no secret file to hash keys with")
    row, secret = new_key_row(
        keyring.pepper,
        new_id(),
        name=old["name"],
        scopes=old["scopes"],
        projects=old["projects"],
        kind=old["kind"],
        rate_limit=old["rate_limit"],
        burst=old["burst"],
        # A key made to expire keeps its end: rotating does not make it last for ever.
        expires_at=to_us(datetime.fromisoformat(old["expires_at"])) if old["expires_at"] else None,
    )
    key = await store.keys.create(row)
    await store.keys.expire(old["id"], store.clock() + int(changes.grace_seconds * 1_000_000))
    await keyring.refresh()
    return json_response({**key, **_NO_SECRET, **secret, "replaces": old["id"]}, 201)


#: The key routes, added to the API's endpoints.
KEY_ENDPOINTS: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {
    "/api/keys": {"GET": list_keys, "POST": create_key},
    "/api/keys/{key_id}": {"GET": get_key},
    "/api/keys/{key_id}/revoke": {"POST": revoke_key},
    "/api/keys/{key_id}/rotate": {"POST": rotate_key},
}
#: Every key route needs an admin key.
KEY_SCOPES: dict[str, dict[str, Scope]] = {
    path: dict.fromkeys(methods, Scope.ADMIN) for path, methods in KEY_ENDPOINTS.items()
}
