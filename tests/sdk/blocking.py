"""Running the async client from sync tests: each coroutine method run on one event loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from taskqueue import AsyncTaskQueueClient, TaskQueueClient
from tests.conftest import ServerProcess


class Blocking:
    """The async client's methods, run to completion on one event loop (iterators as lists)."""

    def __init__(self, client: AsyncTaskQueueClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if inspect.isasyncgenfunction(attr):

            def collect(*args: Any, **kwargs: Any) -> Iterator[Any]:
                async def run() -> list[Any]:
                    return [item async for item in attr(*args, **kwargs)]

                return iter(self._loop.run_until_complete(run()))

            return collect
        if inspect.iscoroutinefunction(attr):
            return lambda *args, **kwargs: self._loop.run_until_complete(attr(*args, **kwargs))
        return attr


@pytest.fixture(params=["sync", "async"])
def sync_and_async_client(request: pytest.FixtureRequest, live: ServerProcess) -> Iterator[Any]:
    """Each test runs once with the sync client and once with the async one."""
    if request.param == "sync":
        with TaskQueueClient(live.url) as sync_client:
            yield sync_client
        return
    loop = asyncio.new_event_loop()
    async_client = AsyncTaskQueueClient(live.url)
    try:
        yield Blocking(async_client, loop)
    finally:
        loop.run_until_complete(async_client.close())
        loop.close()
