"""What carries a client's requests, imported only when a client is made.

By default each client's own HTTP/1.1 transport: on asyncio protocols under the async client
(``_aio.py``), on sockets under the sync one (``_sock.py``), measured the fastest here under
concurrency (``bench/sdk.py``). httpx when HTTP/2 or an httpx transport is asked for, or when
the environment names a proxy for the server. Each is imported by the first client that needs it, so
``import taskqueue`` (and the CLI, which uses only the sync client) pays for none it does not
use.

Every transport gets the same two security settings: the client's key pair (if any), which
signs each request it sends, and the TLS context made from the client's CA bundle (if any;
else each verifies against the system's certificates, as it did before).
"""

from __future__ import annotations

import importlib.util
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING

from taskqueue.client._wire import env_proxy
from taskqueue.errors import TaskQueueConfigError

if TYPE_CHECKING:
    import httpx

    from taskqueue.client._keypair import KeyPair
    from taskqueue.client._wire import AsyncTransport, SyncTransport

__all__ = ["open_async_transport", "open_sync_transport", "tls_context"]


def tls_context(ca_bundle: str | None) -> ssl.SSLContext | None:
    """A verifying TLS context trusting the CA bundle's certificates; None without a bundle.

    A bundle that holds no certificate ssl can load is a :class:`TaskQueueConfigError` naming
    it, raised when the client is made rather than at its first request.
    """
    if ca_bundle is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise TaskQueueConfigError(
            f"CA bundle {ca_bundle!r} is not a PEM file of certificates: {reason}"
        ) from None


def _check_http2(http2: bool) -> None:
    if http2 and importlib.util.find_spec("h2") is None:
        raise TaskQueueConfigError("http2=True needs the h2 package: pip install 'httpx[http2]'")


def open_async_transport(
    base_url: str,
    headers: Mapping[str, str],
    *,
    max_connections: int | None,
    max_keepalive_connections: int | None,
    http2: bool,
    transport: httpx.AsyncBaseTransport | None,
    key_pair: KeyPair | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncTransport:
    """The async client's transport: its own, or httpx for HTTP/2, a transport or a proxy."""
    _check_http2(http2)
    if http2 or transport is not None or env_proxy(base_url) is not None:
        from taskqueue.client._httpx import HttpxAsyncTransport, limits

        pool = limits(max_connections, max_keepalive_connections)
        return HttpxAsyncTransport(
            headers,
            pool,
            http2=http2,
            transport=transport,
            key_pair=key_pair,
            ssl_context=ssl_context,
        )
    from taskqueue.client._aio import AsyncioTransport

    return AsyncioTransport(
        base_url,
        headers,
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        key_pair=key_pair,
        ssl_context=ssl_context,
    )


def open_sync_transport(
    base_url: str,
    headers: Mapping[str, str],
    *,
    max_connections: int | None,
    max_keepalive_connections: int | None,
    http2: bool,
    transport: httpx.BaseTransport | None,
    key_pair: KeyPair | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> SyncTransport:
    """The sync client's transport: its own, or httpx for HTTP/2, a transport or a proxy."""
    _check_http2(http2)
    if http2 or transport is not None or env_proxy(base_url) is not None:
        from taskqueue.client._httpx import HttpxSyncTransport, limits

        pool = limits(max_connections, max_keepalive_connections)
        return HttpxSyncTransport(
            headers,
            pool,
            http2=http2,
            transport=transport,
            key_pair=key_pair,
            ssl_context=ssl_context,
        )
    from taskqueue.client._sock import SocketTransport

    return SocketTransport(
        base_url,
        headers,
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        key_pair=key_pair,
        ssl_context=ssl_context,
    )
