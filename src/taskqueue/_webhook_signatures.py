"""Signing and verifying webhook deliveries: no I/O, no state (see :mod:`taskqueue.webhooks`).

The server signs with :func:`sign`; a receiver checks with :func:`verify`, or through
:class:`taskqueue.webhooks.WebhookHandler`, which adds the idempotency by ``webhook-id``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pydantic

from taskqueue.errors import InvalidSignatureError, MalformedWebhookError, StaleTimestampError
from taskqueue.events import Event

#: How every webhook secret starts.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
#: How far a delivery's timestamp may be from the receiver's clock, in seconds, either way.
DEFAULT_TOLERANCE = 300
#: The three headers of a delivery (lower case: header names are compared case-insensitively).
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
#: The longest ``webhook-id`` accepted: a receiver keeps the ids it has seen in memory.
MAX_ID_LENGTH = 256
#: The signature scheme this receiver checks; entries of other versions are ignored.
_VERSION = "v1"
#: Unix seconds, digits only: ``int()`` alone would also take ``+1``, `` 1`` and ``1_0``.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    """The HMAC key a secret stands for (``whsec_`` + base64; any other string as UTF-8)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except ValueError:
            pass
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` entry of ``body`` under ``secret``: ``v1,<base64>``."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def secrets_of(secret: str | Sequence[str]) -> tuple[str, ...]:
    """``secret`` as a non-empty tuple of non-empty secrets (one string, or several)."""
    found = (secret,) if isinstance(secret, str) else tuple(secret)
    if not found:
        raise ValueError("no webhook secret given")
    for each in found:
        if not isinstance(each, str) or not each:
            raise ValueError("a webhook secret must be a non-empty string")
    return found


@dataclass(frozen=True)
class Verified:
    """A delivery that passed :func:`verify_delivery`: its id, timestamp and event."""

    #: The ``webhook-id``: the same on every attempt of one event.
    msg_id: str
    #: The ``webhook-timestamp``, Unix seconds.
    timestamp: int
    #: The body, parsed.
    event: Event


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    # items(), not iteration: some frameworks' header objects iterate as (name, value) pairs.
    return {str(name).lower(): value for name, value in headers.items()}


def _header(headers: dict[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise MalformedWebhookError(f"the {name} header is missing")
    return value.strip()


def verify_delivery(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Verified:
    """:func:`verify`, returning the delivery's id and timestamp beside the event."""
    keys = secrets_of(secret)
    if tolerance < 0:
        raise ValueError("the tolerance is a number of seconds, not negative")
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    lowered = _lowered(headers)
    msg_id = _header(lowered, ID_HEADER)
    if len(msg_id) > MAX_ID_LENGTH:
        raise MalformedWebhookError(f"the {ID_HEADER} header is longer than {MAX_ID_LENGTH}")
    stamp = _header(lowered, TIMESTAMP_HEADER)
    if not _TIMESTAMP.fullmatch(stamp):
        raise MalformedWebhookError(f"the {TIMESTAMP_HEADER} header is not Unix seconds")
    timestamp = int(stamp)
    offered = _header(lowered, SIGNATURE_HEADER).split()
    # Checked before the signature, as the Standard Webhooks libraries do: a replay of an old
    # delivery costs no HMAC.
    clock = time.time() if now is None else now
    if timestamp < clock - tolerance:
        raise StaleTimestampError(
            f"the delivery was signed {int(clock - timestamp)}s ago (tolerance {tolerance}s)"
        )
    if timestamp > clock + tolerance:
        raise StaleTimestampError(
            f"the delivery is signed {int(timestamp - clock)}s ahead (tolerance {tolerance}s)"
        )
    entries = [
        e.encode("utf-8", "surrogateescape") for e in offered if e.startswith(f"{_VERSION},")
    ]
    if not entries:
        raise InvalidSignatureError(f"the {SIGNATURE_HEADER} header has no {_VERSION} signature")
    expected = [sign(key, msg_id, timestamp, body).encode() for key in keys]
    # Every pair is compared, each in constant time, so the time taken says nothing about
    # which entry or which secret came close.
    matched = False
    for entry in entries:
        for candidate in expected:
            matched |= hmac.compare_digest(entry, candidate)
    if not matched:
        raise InvalidSignatureError("no signature matches the body under the secret")
    try:
        event = Event.model_validate_json(body)
    except pydantic.ValidationError as exc:
        raise MalformedWebhookError(f"the body is not an event: {_first_problem(exc)}") from exc
    return Verified(msg_id=msg_id, timestamp=timestamp, event=event)


def _first_problem(exc: pydantic.ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def verify(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Event:
    """The event a webhook delivery carries, once its signature and timestamp are checked.

    ``payload`` is the raw body exactly as received (parse nothing before verifying: JSON
    re-encoded differs by a byte and fails). ``headers`` is any mapping of the request's
    headers, names in any case. ``secret`` is the subscription's secret, or several: during
    a rotation pass both, the delivery passes when any ``v1`` entry of its
    ``webhook-signature`` matches under any of them. ``tolerance`` is how many seconds the
    ``webhook-timestamp`` may be from ``now`` (Unix seconds, default the clock) either way.

    Raises :class:`MalformedWebhookError` (a header missing or garbled, a body that is no
    event), :class:`InvalidSignatureError` or :class:`StaleTimestampError`; all are
    :class:`WebhookVerificationError`, whose ``http_status`` is the status to answer.

    Replays within the tolerance pass: dropping repeats of a ``webhook-id`` is the receiver's
    part (:class:`WebhookHandler` does it).
    """
    return verify_delivery(payload, headers, secret, tolerance=tolerance, now=now).event
