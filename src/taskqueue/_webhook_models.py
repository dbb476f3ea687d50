"""Webhook subscriptions on the wire: what a client sends to ``/api/webhooks`` and gets back.

A subscription names a URL, the event types it wants and (optionally) one project; the server
signs every delivery with its secret (``whsec_…``, shown once, when it is made or rotated).
See ``docs/webhooks.md``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, WithJsonSchema

from taskqueue._fields import Omittable, StrictInteger, StrictNumber, Text, WireUUID
from taskqueue._input import _Input
from taskqueue._responses import OutputModel as _Output
from taskqueue.events import EVENT_TYPES

__all__ = [
    "EVENT_PATTERNS",
    "URL_PATTERN",
    "NewWebhook",
    "Webhook",
    "WebhookCreate",
    "WebhookDelivery",
    "WebhookDeliveryList",
    "WebhookList",
    "WebhookRedeliver",
    "WebhookRotate",
    "WebhookUpdate",
    "check_webhook_url",
]

#: What a subscription's ``event_types`` may hold: a type, a family (``task.*``) or ``*``.
EVENT_PATTERNS: tuple[str, ...] = (
    "*",
    *sorted({t.split(".")[0] + ".*" for t in EVENT_TYPES}),
    *EVENT_TYPES,
)
#: The longest URL a subscription may have.
MAX_URL_LENGTH = 2000


def _known_pattern(value: str) -> str:
    if value not in EVENT_PATTERNS:
        raise ValueError(
            f"{value[:80]!r} is not an event type; use a type such as task.completed, a "
            "family such as task.*, or *"
        )
    return value


EventPattern = Annotated[
    str,
    AfterValidator(_known_pattern),
    WithJsonSchema({"type": "string", "enum": list(EVENT_PATTERNS)}),
]
EventPatterns = Annotated[list[EventPattern], Field(min_length=1, max_length=100)]


_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
#: What a webhook URL may be: http(s), a host name or IPv4 address, a port, a path and query
#: of URL characters; no credentials, no fragment.
URL_PATTERN = rf"^https?://[A-Za-z0-9.-]+(?::{_PORT})?(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
_URL_RE = re.compile(URL_PATTERN)


def check_webhook_url(url: str) -> str:
    """``url`` if a webhook can be sent to it: ``http(s)://host[:port][/path?query]``.

    Whether its host is an address the server may reach is decided when each delivery is sent
    (names are resolved then); this checks only the form.
    """
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"is {len(url)} characters long; the limit is {MAX_URL_LENGTH}")
    if not _URL_RE.match(url):
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        raise ValueError(
            "must be http(s)://HOST[:PORT][/PATH?QUERY], with a host name or IPv4 address, "
            "a port from 1 to 65535, URL characters only (no spaces, credentials or #fragment)"
        )
    return url


WebhookURL = Annotated[
    str,
    AfterValidator(check_webhook_url),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_URL_LENGTH,
            "pattern": URL_PATTERN,
            "description": "An http:// or https:// URL, without credentials or fragment",
        }
    ),
]
Description = Annotated[Text, Field(max_length=10_000)]


def _all_types() -> list[str]:
    return ["*"]


class WebhookCreate(_Input):
    """Body of ``POST /api/webhooks``: where to send which events.

    ``project_id`` limits it to one project's events (a key limited to some projects must
    name one of them); left out, it gets every project's events and those no project owns
    (keys, webhooks). ``event_types`` defaults to ``["*"]``.
    """

    url: WebhookURL
    project_id: WireUUID | None = None
    event_types: EventPatterns = Field(default_factory=_all_types)
    description: Description | None = None
    enabled: bool = True


class WebhookUpdate(_Input):
    """Body of ``PUT /api/webhooks/{id}``: only the fields given change.

    Enabling a disabled subscription resumes delivery where it stopped, with the event it
    could not deliver.
    """

    url: Omittable[WebhookURL] = None
    event_types: Omittable[EventPatterns] = None
    description: Description | None = None
    enabled: Omittable[bool] = None


class WebhookRotate(_Input):
    """Body of ``POST /api/webhooks/{id}/rotate-secret``: how long the old secret stays valid.

    Until then every delivery is signed with both, so receivers can move to the new one.
    """

    grace_seconds: Annotated[float, Field(ge=0, le=7 * 24 * 3600), StrictNumber] = 86_400.0


class WebhookRedeliver(_Input):
    """Body of ``POST /api/webhooks/{id}/redeliver``: the event to send again, now."""

    event_id: Annotated[int, Field(ge=1, le=2**63 - 1), StrictInteger]


class Webhook(_Output):
    """A webhook subscription as the API shows it: never its secret."""

    id: UUID
    project_id: UUID | None = None
    url: str
    description: str | None = None
    event_types: list[str]
    enabled: bool
    #: Why the server disabled it (410 Gone, a day of failures), or None.
    disabled_reason: str | None = None
    #: The last event delivered (or skipped as not wanted), in order.
    position: int
    #: Failed attempts in a row at the event after ``position``.
    failures: int
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None
    #: Until when the secret before the last rotation also signs deliveries.
    previous_secret_until: datetime | None = None
    created_at: datetime
    updated_at: datetime


class NewWebhook(Webhook):
    """A subscription just made, or whose secret was just rotated: with its secret, this once."""

    secret: str


class WebhookList(_Output):
    """A page of subscriptions."""

    webhooks: list[Webhook]
    total: int
    limit: int
    offset: int


class WebhookDelivery(_Output):
    """One attempt to deliver one event: what was sent and what came back."""

    id: UUID
    webhook_id: UUID
    event_id: int
    event_type: str
    #: 1 for the first attempt at this event, counting up with each retry.
    attempt: int
    #: Sent by ``redeliver`` or ``test``, outside the subscription's order.
    manual: bool
    status: Literal["delivered", "failed"]
    #: The URL, headers and body sent.
    request: dict[str, Any]
    response_code: int | None = None
    #: The first KiB of the response body.
    response_body: str | None = None
    #: Why it failed, when no response (or a refusal) says.
    error: str | None = None
    duration_ms: float
    created_at: datetime


class WebhookDeliveryList(_Output):
    """A page of a subscription's deliveries, newest first."""

    deliveries: list[WebhookDelivery]
    total: int
    limit: int
    offset: int
