"""``/api/webhooks``: subscriptions, their deliveries log, redelivery and test sends.

A subscription's secret is in the answer that creates it (or rotates it) and nowhere else. A
key limited to some projects manages only subscriptions to one of its projects; one for every
project may also subscribe to all of them (``project_id`` left out).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from taskqueue._webhook_models import (
    WebhookCreate,
    WebhookRedeliver,
    WebhookRotate,
    WebhookUpdate,
)
from taskqueue._webhook_signatures import generate_secret
from taskqueue.integrations.webhook_sender import WebhookSender, new_delivery
from taskqueue.server.auth import Scope, projects_of
from taskqueue.server.errors import ApiError
from taskqueue.server.params import Paging, no_query, parse_query, path_id
from taskqueue.server.responses import json_response, page_response, parse_body, store_of
from taskqueue.store.ids import new_id

__all__ = ["WEBHOOK_ENDPOINTS", "WEBHOOK_SCOPES"]


def _sender(request: Request) -> WebhookSender:
    sender: WebhookSender = request.app.state.webhook_sender
    return sender


async def create_webhook(request: Request) -> Response:
    """``POST /api/webhooks``: the new subscription, with its secret (shown this once)."""
    no_query(request)
    data = await parse_body(request, WebhookCreate)
    projects = projects_of(request)
    project_id = str(data.project_id) if data.project_id is not None else None
    if projects is not None and (project_id is None or project_id not in projects):
        allowed = "one of its projects" if projects else "no project"
        raise ApiError(
            403,
            "this API key is limited to some projects: a webhook it makes must name "
            f"{allowed} in project_id",
            [{"loc": ["project_id"], "msg": "outside the key's projects", "type": "scope"}],
        )
    store = store_of(request)
    now = store.clock()
    secret = generate_secret()
    row: dict[str, Any] = {
        "id": new_id(),
        "project_id": project_id,
        "url": data.url,
        "description": data.description,
        "event_types": sorted(set(data.event_types)),
        "secret": secret,
        "previous_secret": None,
        "previous_secret_until": None,
        "enabled": int(data.enabled),
        "disabled_reason": None,
        "failures": 0,
        "failing_since": None,
        "next_attempt_at": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "created_at": now,
        "updated_at": now,
    }
    webhook = await store.webhooks.create(row)
    return json_response({**webhook, "secret": secret}, 201)


async def list_webhooks(request: Request) -> Response:
    """``GET /api/webhooks``: the subscriptions the caller may see, oldest first."""
    paging = parse_query(request, Paging)
    page, total = await store_of(request).webhooks.page(
        paging.limit, paging.offset, projects=projects_of(request)
    )
    return page_response("webhooks", page, total, paging.limit, paging.offset)


async def get_webhook(request: Request) -> Response:
    """``GET /api/webhooks/{webhook_id}``."""
    no_query(request)
    webhook_id = path_id(request, "webhook_id")
    store = store_of(request)
    return json_response(await store.webhooks.get(webhook_id, projects=projects_of(request)))


async def update_webhook(request: Request) -> Response:
    """``PUT /api/webhooks/{webhook_id}``: change the fields given."""
    no_query(request)
    webhook_id = path_id(request, "webhook_id")
    changes = await parse_body(request, WebhookUpdate)
    webhook = await store_of(request).webhooks.update(
        webhook_id, changes, projects=projects_of(request)
    )
    return json_response(webhook)


async def delete_webhook(request: Request) -> Response:
    """``DELETE /api/webhooks/{webhook_id}``: the subscription and its deliveries log."""
    no_query(request)
    webhook_id = path_id(request, "webhook_id")
    await store_of(request).webhooks.delete(webhook_id, projects=projects_of(request))
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    """``POST /api/webhooks/{webhook_id}/rotate-secret``: a new secret, shown this once.

    The old one goes on signing every delivery beside it for ``grace_seconds``.
    """
    no_query(request)
    webhook_id = path_id(request, "webhook_id")
    body = await parse_body(request, WebhookRotate)
    secret = generate_secret()
    webhook = await store_of(request).webhooks.rotate_secret(
        webhook_id, secret, body.grace_seconds, projects=projects_of(request)
    )
    return json_response({**webhook, "secret": secret})


async def list_deliveries(request: Request) -> Response:
    """``GET /api/webhooks/{webhook_id}/deliveries``: every attempt, newest first."""
    webhook_id = path_id(request, "webhook_id")
    paging = parse_query(request, Paging)
    page, total = await store_of(request).webhooks.deliveries(
        webhook_id, paging.limit, paging.offset, projects=projects_of(request)
    )
    return page_response("deliveries", page, total, paging.limit, paging.offset)


async def _send_now(request: Request, webhook_id: str, event: dict[str, Any]) -> Response:
    """Send ``event`` to the subscription at once, outside its order; the delivery logged."""
    store = store_of(request)
    subscription = await store.webhooks.subscription(webhook_id)
    if subscription is None:  # deleted meanwhile
        raise ApiError(404, f"webhook {webhook_id} not found")
    sent = await _sender(request).send(subscription, event)
    delivery = new_delivery(subscription, event, sent, 1, store.clock(), manual=True)
    return json_response(await store.webhooks.record_manual(delivery))


async def redeliver(request: Request) -> Response:
    """``POST /api/webhooks/{webhook_id}/redeliver``: send a past event again, now."""
    no_query(request)
    webhook_id = path_id(request, "webhook_id")
    body = await parse_body(request, WebhookRedeliver)
    store = store_of(request)
    webhook = await store.webhooks.get(webhook_id, projects=projects_of(request))
    scope = None if webhook["project_id"] is None else frozenset({webhook["project_id"]})
    event = await store.webhooks.event(body.event_id, scope)
    if event is None:
        raise ApiError(
            409,
            f"no event {body.event_id} this webhook may receive is stored (never written, "
            "pruned, or of another project)",
            [{"loc": ["event_id"], "msg": "no such event", "type": "not_found"}],
        )
    return await _send_now(request, webhook_id, event)


async def test_webhook(request: Request) -> Response:
    """``POST /api/webhooks/{webhook_id}/test``: send a ``webhook.test`` event now."""
    no_query(request)
    webhook_id = path_id(request, "webhook_id")
    store = store_of(request)
    event = await store.webhooks.emit_test_event(webhook_id, projects=projects_of(request))
    return await _send_now(request, webhook_id, event)


#: The webhook routes, added to the API's endpoints.
WEBHOOK_ENDPOINTS: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {
    "/api/webhooks": {"GET": list_webhooks, "POST": create_webhook},
    "/api/webhooks/{webhook_id}": {
        "GET": get_webhook,
        "PUT": update_webhook,
        "DELETE": delete_webhook,
    },
    "/api/webhooks/{webhook_id}/rotate-secret": {"POST": rotate_secret},
    "/api/webhooks/{webhook_id}/deliveries": {"GET": list_deliveries},
    "/api/webhooks/{webhook_id}/redeliver": {"POST": redeliver},
    "/api/webhooks/{webhook_id}/test": {"POST": test_webhook},
}
#: Reading subscriptions needs ``read``; changing them or sending, ``write``.
WEBHOOK_SCOPES: dict[str, dict[str, Scope]] = {
    path: {method: Scope.READ if method == "GET" else Scope.WRITE for method in methods}
    for path, methods in WEBHOOK_ENDPOINTS.items()
}
