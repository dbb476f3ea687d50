"""Running the async client from sync tests: each coroutine method run on one event loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

from taskqueue import AsyncTaskQueueClient


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
