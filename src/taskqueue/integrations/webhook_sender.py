"""Sending one webhook delivery: signed, to the URL's host only, never to a private address.

Each delivery is an HTTP POST of the event's JSON (the same envelope as the stream's), signed
the Standard Webhooks way: ``webhook-id`` (the same on every attempt of one event to one
subscription), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``, ``v1,<base64
HMAC-SHA256>`` of ``id.timestamp.body``; while a rotated secret is still valid, one entry per
secret.

The URL's host is resolved when each delivery is sent, and the request goes to the address
resolved (the ``Host`` header and TLS name stay the URL's), so a name that resolves elsewhere
on the next lookup (DNS rebinding) cannot steer it. Unless the operator allows it
(``--webhook-allow-private``), a host with any address that is not global (loopback, private,
link-local, carrier-grade NAT, multicast, reserved) is refused. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from taskqueue._version import __version__
from taskqueue._webhook_signatures import sign

__all__ = [
    "DISABLE_AFTER_S",
    "RETRY_SCHEDULE_S",
    "AddressRefused",
    "Sent",
    "WebhookSender",
    "WebhookSettings",
    "message_id",
    "new_delivery",
]

#: Seconds before each attempt at one event: at once, then 5 s, 5 min, 30 min, 2 h, 5 h,
#: 10 h, 14 h, 20 h and 24 h after the attempt before (the last repeats).
RETRY_SCHEDULE_S: tuple[float, ...] = (
    0,
    5,
    300,
    1800,
    7200,
    18_000,
    36_000,
    50_400,
    72_000,
    86_400,
)
#: A subscription failing for this long (seconds, from its first failure in a row) is disabled.
DISABLE_AFTER_S = 86_400.0
#: Bytes of a response body kept in the deliveries log.
RESPONSE_BYTES = 1024
#: Bytes of a request body kept in the deliveries log.
REQUEST_BYTES = 64 * 1024


@dataclass(frozen=True)
class WebhookSettings:
    """How webhooks are delivered (``taskqueue server --webhook-...``)."""

    #: Run the dispatcher in this process (every API process does, by default).
    dispatch: bool = True
    #: Send to private, loopback and link-local addresses too.
    allow_private: bool = False
    #: Seconds one delivery may take, connection included.
    timeout: float = 10.0
    #: Multiplies the retry schedule and the day after which a failing subscription is
    #: disabled (tests compress a day into seconds).
    retry_scale: float = 1.0
    #: Seconds a dispatcher's lease on a subscription lasts; renewed at a third of it.
    lease: float = 30.0


class AddressRefused(Exception):
    """The URL's host resolves to an address deliveries may not go to, or to none."""


@dataclass(frozen=True)
class Sent:
    """What one attempt did: the request sent and what came back (or why nothing did)."""

    request: dict[str, Any]
    response_code: int | None
    response_body: str | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        """A 2xx answer: the receiver has it."""
        return self.response_code is not None and 200 <= self.response_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver asks never to be sent to again."""
        return self.response_code == 410


def message_id(webhook_id: str, event_id: int) -> str:
    """The ``webhook-id`` of an event's deliveries to one subscription (the same each time)."""
    return f"{webhook_id}.{event_id}"


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


class WebhookSender:
    """Signs and sends deliveries over one connection pool (close it with :meth:`aclose`)."""

    def __init__(self, settings: WebhookSettings | None = None) -> None:
        self.settings: WebhookSettings = settings or WebhookSettings()
        self._pool: httpx.AsyncClient | None = None

    @property
    def _client(self) -> httpx.AsyncClient:
        # Made on the first delivery: its TLS context costs a server without webhooks ~40 ms
        # of start-up.
        if self._pool is None:
            self._pool = httpx.AsyncClient(
                timeout=self.settings.timeout,
                follow_redirects=False,
                trust_env=False,  # no proxy from the environment: requests go to the URL's host
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            )
        return self._pool

    async def aclose(self) -> None:
        """Close the connection pool (if a delivery made one)."""
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    async def resolve(self, host: str, port: int) -> str:
        """The address to send to: the first the host resolves to, if all may be sent to."""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                    self.settings.timeout,
                )
            except (OSError, asyncio.TimeoutError) as exc:
                raise AddressRefused(f"cannot resolve {host}: {exc or 'timed out'}") from exc
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
            if not addresses:  # pragma: no cover - getaddrinfo raises instead
                raise AddressRefused(f"{host} resolves to no address")
        if not self.settings.allow_private:
            for address in addresses:
                if _refused(address):
                    raise AddressRefused(
                        f"{host} resolves to {address}, a private, loopback or link-local "
                        "address; the server sends webhooks there only when started with "
                        "--webhook-allow-private"
                    )
        return str(addresses[0])

    def signed_headers(
        self, subscription: dict[str, Any], msg_id: str, timestamp: int, body: bytes
    ) -> dict[str, str]:
        """The headers of a delivery: content type and the three Standard Webhooks headers."""
        keys = [subscription["secret"]]
        until = subscription.get("previous_secret_until")
        if subscription.get("previous_secret") and until is not None and until > timestamp * 1e6:
            keys.append(subscription["previous_secret"])
        return {
            "content-type": "application/json",
            "user-agent": f"taskqueue-webhooks/{__version__}",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(sign(key, msg_id, timestamp, body) for key in keys),
        }

    async def send(self, subscription: dict[str, Any], event: dict[str, Any]) -> Sent:
        """POST ``event`` to the subscription's URL; never raises for what the far end does."""
        body = orjson.dumps(event)
        msg_id = message_id(subscription["id"], int(event["id"]))
        headers = self.signed_headers(subscription, msg_id, int(time.time()), body)
        url = subscription["url"]
        request = {
            "url": url,
            "headers": {k: v for k, v in headers.items() if k != "webhook-signature"},
            "body": body[:REQUEST_BYTES].decode("utf-8", "replace"),
        }
        started = time.monotonic()
        try:
            code, text = await asyncio.wait_for(
                self._post(url, headers, body), self.settings.timeout
            )
        except AddressRefused as exc:
            return Sent(request, None, None, f"refused: {exc}", _ms(started))
        except asyncio.TimeoutError:
            error = f"no answer within {self.settings.timeout:g}s"
            return Sent(request, None, None, error, _ms(started))
        except httpx.HTTPError as exc:
            return Sent(request, None, None, _describe(exc), _ms(started))
        failed = None if 200 <= code < 300 else f"answered {code}"
        return Sent(request, code, text, failed, _ms(started))

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self.resolve(host, port)
        shown = f"[{address}]" if ":" in address else address
        netloc = shown if parts.port is None else f"{shown}:{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        request = self._client.build_request(
            "POST",
            pinned,
            headers={**headers, "host": parts.netloc},
            content=body,
            extensions=extensions,
        )
        response = await self._client.send(request, stream=True)
        try:
            kept = b""
            async for chunk in response.aiter_raw():
                kept += chunk
                if len(kept) >= RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()
        return response.status_code, kept[:RESPONSE_BYTES].decode("utf-8", "replace")


def new_delivery(
    subscription: dict[str, Any],
    event: dict[str, Any],
    sent: Sent,
    attempt: int,
    now: int,
    *,
    manual: bool = False,
) -> dict[str, Any]:
    """The deliveries-log row of one attempt."""
    return {
        "id": str(uuid.uuid4()),
        "webhook_id": subscription["id"],
        "event_id": int(event["id"]),
        "event_type": event["type"],
        "attempt": attempt,
        "manual": int(manual),
        "status": "delivered" if sent.delivered else "failed",
        "request": sent.request,
        "response_code": sent.response_code,
        "response_body": sent.response_body,
        "error": sent.error,
        "duration_ms": sent.duration_ms,
        "created_at": now,
    }


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    kind = type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {text or kind}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({kind})"
    return f"{kind}: {text}" if text else kind
