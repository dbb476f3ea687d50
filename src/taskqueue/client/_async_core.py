"""The async client's core: settings, the pool, retries, health (source of ``_sync_core.py``)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from uuid import UUID

import pydantic

from taskqueue.client._base import (
    NOT_GIVEN,
    NotGiven,
    RequestSpec,
    RetryPolicy,
    client_headers,
    error_from_response,
    error_from_transport,
    parse_answer,
    parse_retry_after,
)
from taskqueue.client._config import resolve_config
from taskqueue.client._connect import open_async_transport, tls_context
from taskqueue.client._keypair import KeyPair
from taskqueue.client._wire import AsyncTransport, Response, TransportError
from taskqueue.models import Health, WorkerList

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncClientCore", "every_page", "id_of"]

log: logging.Logger = logging.getLogger("taskqueue.client")

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)
C = TypeVar("C", bound="AsyncClientCore")


def id_of(value: str | UUID) -> str:
    """An id as the API takes it."""
    return str(value)


async def every_page(
    list_page: Callable[..., Awaitable[list[T]]], page_size: int
) -> AsyncIterator[T]:
    """Every item of a listing, asking ``list_page(limit=, offset=)`` for one page at a time."""
    offset = 0
    while True:
        page = await list_page(limit=page_size, offset=offset)
        for item in page:
            yield item
        if len(page) < page_size:
            return
        offset += len(page)


class AsyncClientCore:
    """What every method of the async client stands on: settings, the pool, retries."""

    def __init__(
        self,
        base_url: str | None = None,
        timeout: float | NotGiven | None = NOT_GIVEN,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        retry_attempts: int = 3,
        retry_backoff: float | None = None,
        *,
        api_key: str | None = None,
        api_key_header: Literal["Authorization", "X-API-Key"] = "Authorization",
        public_key: str | None = None,
        secret_key: str | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        profile: str | None = None,
        http2: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Connect to ``base_url`` (or the configured server).

        The first seven parameters may be given in order; the rest by name.
        ``timeout`` is per request in seconds (``None``: none); ``retry_attempts`` retries
        connection errors, timeouts and 429/5xx answers with exponential backoff from
        ``retry_backoff`` seconds (``None``: ``TASKQUEUE_RETRY_BACKOFF``, else 1), honouring
        ``Retry-After``. ``api_key`` is sent as ``Authorization: Bearer <key>``, or as
        ``X-API-Key: <key>`` with ``api_key_header="X-API-Key"``. A key pair (``public_key``
        ``tqp_…`` and ``secret_key`` ``tqs_…``) signs every request instead
        (:mod:`taskqueue.signing`); the secret is never sent. ``ca_bundle`` is a PEM file of
        the certificate authorities that https verification trusts instead of the system's.
        Each of these falls back to the environment, a profile, then an accounts file
        (``taskqueue.client._config``).

        Requests go over HTTP/1.1 on asyncio
        (at most ``max_connections`` at once, ``max_keepalive_connections`` kept idle);
        ``http2=True`` (needs ``h2``), an httpx ``transport``, or a proxy named by the
        environment use httpx instead.
        """
        config = resolve_config(
            base_url,
            api_key,
            profile,
            retry_backoff=retry_backoff,
            public_key=public_key,
            secret_key=secret_key,
            ca_bundle=ca_bundle,
        )
        self.base_url: str = config.base_url
        self.api_key: str | None = config.api_key
        #: The key pair's public id, when requests are signed.
        self.public_key: str | None = config.public_key
        #: The CA bundle https verification trusts, if one was configured.
        self.ca_bundle: str | None = config.ca_bundle
        key_pair = None
        if config.public_key and config.secret_key:
            key_pair = KeyPair(config.public_key, config.secret_key)
        if isinstance(timeout, NotGiven):
            timeout = config.timeout if config.timeout is not None else 30.0
        self.timeout: float | None = timeout
        self.retry: RetryPolicy = RetryPolicy(
            max_retries=retry_attempts, backoff=config.retry_backoff
        )
        self._http: AsyncTransport = open_async_transport(
            self.base_url,
            client_headers(headers, self.api_key, api_key_header),
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            http2=http2,
            transport=transport,
            key_pair=key_pair,
            ssl_context=tls_context(config.ca_bundle),
        )

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self: C) -> C:
        """Use the client as a context manager; it closes on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def with_options(
        self: C,
        *,
        timeout: float | NotGiven | None = NOT_GIVEN,
        retry_attempts: int | None = None,
        retry_backoff: float | None = None,
    ) -> C:
        """A copy with other settings that shares this client's connection pool."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        if not isinstance(timeout, NotGiven):
            copy.timeout = timeout
        copy.retry = RetryPolicy(
            max_retries=self.retry.max_retries if retry_attempts is None else retry_attempts,
            backoff=self.retry.backoff if retry_backoff is None else retry_backoff,
        )
        return copy

    # ------------------------------------------------------------------ transport

    def _timeout(self, hold: float) -> float | None:
        return None if self.timeout is None else self.timeout + hold

    async def _send(self, spec: RequestSpec) -> Response:
        url, body, headers = spec.encode(self.base_url)
        timeout = self._timeout(spec.hold)
        retries = 0
        while True:
            try:
                response = await self._http.request(spec.method, url, body, headers, timeout)
            except TransportError as exc:
                if not self.retry.should_retry(retries, spec.idempotent, error=exc):
                    raise error_from_transport(exc, self.base_url) from exc
                wait = self.retry.delay(retries)
                log.debug(
                    "%s %s: %r; retry %d in %.2fs", spec.method, spec.path, exc, retries + 1, wait
                )
            else:
                if response.status_code < 400:
                    return response
                if not self.retry.should_retry(
                    retries, spec.idempotent, status=response.status_code
                ):
                    raise error_from_response(response, spec.resource)
                wait = self.retry.delay(
                    retries, parse_retry_after(response.headers.get("retry-after"))
                )
                log.debug(
                    "%s %s: %d; retry %d in %.2fs",
                    spec.method,
                    spec.path,
                    response.status_code,
                    retries + 1,
                    wait,
                )
            retries += 1
            await asyncio.sleep(wait)

    async def _json(self, spec: RequestSpec) -> Any:
        response = await self._send(spec)
        if response.status_code == 204:
            return None
        return response.json()

    async def _model(self, model: type[M], spec: RequestSpec) -> M:
        """The answer to ``spec``, parsed straight from its JSON bytes into ``model``."""
        return parse_answer(model, (await self._send(spec)).content)

    # ------------------------------------------------------------------ health

    async def get_health(self) -> Health:
        """The server's health: version, database, workers, tasks per status."""
        return await self._model(Health, RequestSpec("GET", "/api/health"))

    async def list_workers(self) -> WorkerList:
        """Worker processes registered on the server's database, ``active`` or ``stale``."""
        return await self._model(WorkerList, RequestSpec("GET", "/api/workers"))
