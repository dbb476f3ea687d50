"""The async client's webhook methods: the source the sync ones are generated from (unasync)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from taskqueue.client._async_core import AsyncClientCore, id_of
from taskqueue.client._base import NOT_GIVEN, NotGiven, RequestSpec, validate_input
from taskqueue.models import (
    NewWebhook,
    Webhook,
    WebhookCreate,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookList,
    WebhookRedeliver,
    WebhookRotate,
    WebhookUpdate,
)

__all__ = ["AsyncWebhooksMixin"]

#: Which not-found error a 404 of these routes becomes (the generic :class:`NotFoundError`).
_RESOURCE = "webhook"


def _path(webhook_id: str | UUID, action: str = "") -> str:
    return f"/api/webhooks/{id_of(webhook_id)}{action}"


class AsyncWebhooksMixin(AsyncClientCore):
    """Webhook subscriptions: where the server sends which events, and what it sent.

    See ``docs/webhooks.md``. A subscription's signing secret (``whsec_…``) is in the answers
    of :meth:`create_webhook` and :meth:`rotate_webhook_secret` only; the server never shows
    it again.
    """

    async def create_webhook(
        self,
        url: str,
        *,
        event_types: Sequence[str] | None = None,
        project_id: str | UUID | None = None,
        description: str | None = None,
        enabled: bool = True,
    ) -> NewWebhook:
        """Subscribe ``url`` to events; the answer holds the signing secret, shown this once.

        ``event_types`` takes types and families (``["task.failed"]``, ``["task.*"]``; None:
        every event, ``["*"]``). ``project_id`` limits it to one project's events. The request
        is not retried once it may have reached the server: a retry could subscribe twice.
        """
        fields: dict[str, Any] = {"url": url, "enabled": enabled}
        if event_types is not None:
            fields["event_types"] = list(event_types)
        if project_id is not None:
            fields["project_id"] = id_of(project_id)
        if description is not None:
            fields["description"] = description
        body = validate_input(WebhookCreate, fields)
        spec = RequestSpec("POST", "/api/webhooks", json=body, resource=_RESOURCE, idempotent=False)
        return await self._model(NewWebhook, spec)

    async def list_webhooks(self, *, limit: int = 100, offset: int = 0) -> WebhookList:
        """A page of the subscriptions this key may see, oldest first, with their ``total``."""
        params = {"limit": limit, "offset": offset}
        return await self._model(WebhookList, RequestSpec("GET", "/api/webhooks", params=params))

    async def get_webhook(self, webhook_id: str | UUID) -> Webhook:
        """One subscription (never its secret)."""
        return await self._model(Webhook, RequestSpec("GET", _path(webhook_id), resource=_RESOURCE))

    async def update_webhook(
        self,
        webhook_id: str | UUID,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        description: str | NotGiven | None = NOT_GIVEN,
        enabled: bool | None = None,
    ) -> Webhook:
        """Change the fields given; the others stay as they are.

        ``description=None`` clears the description (left out, it stays). ``enabled=True`` on
        a disabled subscription resumes delivery with the event it could not deliver.
        """
        given = {
            "url": url,
            "event_types": list(event_types) if event_types is not None else None,
            "enabled": enabled,
        }
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if not isinstance(description, NotGiven):
            changes["description"] = description
        body = validate_input(WebhookUpdate, changes)
        return await self._model(
            Webhook, RequestSpec("PUT", _path(webhook_id), json=body, resource=_RESOURCE)
        )

    async def delete_webhook(self, webhook_id: str | UUID) -> None:
        """Delete a subscription and its deliveries log (:class:`NotFoundError` if none)."""
        await self._json(RequestSpec("DELETE", _path(webhook_id), resource=_RESOURCE))

    async def rotate_webhook_secret(
        self, webhook_id: str | UUID, *, grace_seconds: float | None = None
    ) -> NewWebhook:
        """A new signing secret, in the answer (shown this once).

        The old secret goes on signing every delivery beside the new one for ``grace_seconds``
        (None: the server's default, a day), until ``previous_secret_until``. Not retried once
        it may have reached the server: a second rotation would end the old secret at once.
        """
        body = validate_input(
            WebhookRotate, {} if grace_seconds is None else {"grace_seconds": grace_seconds}
        )
        spec = RequestSpec(
            "POST",
            _path(webhook_id, "/rotate-secret"),
            json=body,
            resource=_RESOURCE,
            idempotent=False,
        )
        return await self._model(NewWebhook, spec)

    async def list_webhook_deliveries(
        self, webhook_id: str | UUID, *, limit: int = 100, offset: int = 0
    ) -> WebhookDeliveryList:
        """A page of a subscription's delivery attempts, newest first, with their ``total``.

        Each holds what was sent (``request``), the answer's code and first KiB, or the error.
        """
        spec = RequestSpec(
            "GET",
            _path(webhook_id, "/deliveries"),
            params={"limit": limit, "offset": offset},
            resource=_RESOURCE,
        )
        return await self._model(WebhookDeliveryList, spec)

    async def redeliver_webhook(self, webhook_id: str | UUID, event_id: int) -> WebhookDelivery:
        """Send a past event to the subscription again, now, outside its order.

        The answer is the delivery (``manual=True``), sent or failed; an event the server no
        longer holds, or one this subscription may not receive, is a :class:`ConflictError`.
        """
        body = validate_input(WebhookRedeliver, {"event_id": event_id})
        spec = RequestSpec(
            "POST",
            _path(webhook_id, "/redeliver"),
            json=body,
            resource=_RESOURCE,
            idempotent=False,
        )
        return await self._model(WebhookDelivery, spec)

    async def test_webhook(self, webhook_id: str | UUID) -> WebhookDelivery:
        """Send a ``webhook.test`` event to the subscription now; the delivery, sent or failed.

        A failed delivery is an answer, not an exception: look at its ``status``,
        ``response_code`` and ``error``.
        """
        spec = RequestSpec("POST", _path(webhook_id, "/test"), resource=_RESOURCE, idempotent=False)
        return await self._model(WebhookDelivery, spec)
