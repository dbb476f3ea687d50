"""Webhook signatures, the Standard Webhooks way, and the receiver's side of them.

Every delivery the server sends carries three headers: ``webhook-id`` (the same on every
retry of one event, so a receiver can drop repeats), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``, with
one ``v1,`` entry per secret in force (two while a secret is being rotated), space-separated.
Secrets are ``whsec_`` followed by base64 of the key bytes. The body is one
:class:`~taskqueue.events.Event` as JSON.

The server signs with :func:`sign`. A receiver checks a delivery with :func:`verify` in any
framework, or lets :class:`WebhookHandler` do everything: verify, drop repeats of a
``webhook-id``, dispatch the event to decorated handlers, answer, serve (an ASGI ``app`` and
``run()``). ``docs/receiving-webhooks.md`` shows each way.

The refusals are :class:`WebhookVerificationError` and its subclasses (also in
:mod:`taskqueue.errors`)::

    WebhookVerificationError    http_status: the status to answer
    ├── MalformedWebhookError   400: a header missing or garbled, or a body that is no event
    ├── InvalidSignatureError   401: no v1 signature matches under any of the secrets
    └── StaleTimestampError     401: signed outside ±tolerance (300 s) of the clock

The signing half has no I/O and no state (``_webhook_signatures.py``); the receiver is in
``_webhook_receiver.py``.
"""

from __future__ import annotations

from taskqueue._webhook_receiver import MAX_BODY, MAX_SEEN, WebhookHandler, WebhookReceipt
from taskqueue._webhook_signatures import (
    DEFAULT_TOLERANCE,
    SECRET_PREFIX,
    generate_secret,
    sign,
    verify,
)
from taskqueue.errors import (
    InvalidSignatureError,
    MalformedWebhookError,
    StaleTimestampError,
    WebhookVerificationError,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "MAX_BODY",
    "MAX_SEEN",
    "SECRET_PREFIX",
    "InvalidSignatureError",
    "MalformedWebhookError",
    "StaleTimestampError",
    "WebhookHandler",
    "WebhookReceipt",
    "WebhookVerificationError",
    "generate_secret",
    "sign",
    "verify",
]
