"""The services an API app runs beside itself: started before it serves, stopped before the
store closes, and an unexpected end logged without taking the API down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx
import pytest
from starlette.applications import Starlette

from taskqueue.server import ServerSettings, Service, create_app
from taskqueue.store import Store


class Recorder:
    """A service that says what happens to it; ``fail_on`` makes start or run raise (or run
    return before it is stopped)."""

    def __init__(self, name: str, store: Store, events: list[str], fail_on: str = "") -> None:
        self.name = name
        self.store = store
        self.events = events
        self.fail_on = fail_on
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self.events.append(f"{self.name} start")
        if self.fail_on == "start":
            raise RuntimeError(f"{self.name} cannot start")

    async def run(self) -> None:
        self.events.append(f"{self.name} run")
        if self.fail_on == "run":
            raise RuntimeError("boom")
        if self.fail_on == "return":
            return
        await self._stop.wait()
        # Still able to use the store while it winds down.
        counts = await self.store.task_counts()
        self.events.append(f"{self.name} drained {counts}")

    def stop(self) -> None:
        self.events.append(f"{self.name} stop")
        self._stop.set()


def serve(
    db_url: str, make: Callable[[Store], list[Service]]
) -> Callable[[Callable[[Starlette, httpx.AsyncClient], Awaitable[None]]], None]:
    """Run ``body`` against an app on ``db_url`` with the services ``make`` builds, lifespan on."""

    def run(body: Callable[[Starlette, httpx.AsyncClient], Awaitable[None]]) -> None:
        async def main() -> None:
            store = Store(db_url)
            app = create_app(ServerSettings(), store, make(store))
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://127.0.0.1"
                ) as client:
                    await body(app, client)

        asyncio.run(main())

    return run


def test_services_start_before_serving_and_stop_before_the_store_closes(db_url: str) -> None:
    events: list[str] = []

    async def body(app: Starlette, client: httpx.AsyncClient) -> None:
        await asyncio.sleep(0)  # let the run tasks begin
        events.append("serving")
        assert (await client.get("/api/health")).status_code == 200

    serve(
        db_url,
        lambda store: [Recorder("one", store, events), Recorder("two", store, events)],
    )(body)
    assert events == [
        "one start",
        "two start",
        "one run",
        "two run",
        "serving",
        "one stop",
        "two stop",
        "one drained {}",
        "two drained {}",
    ]


def test_a_service_that_ends_is_logged_and_the_api_goes_on(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []

    async def body(app: Starlette, client: httpx.AsyncClient) -> None:
        for _ in range(10):
            await asyncio.sleep(0)
        reply = await client.get("/api/health")
        assert reply.status_code == 200
        assert reply.json()["workers"] == 0

    with caplog.at_level(logging.ERROR, logger="taskqueue.server.services"):
        serve(
            db_url,
            lambda store: [
                Recorder("broken thing", store, events, fail_on="run"),
                Recorder("quitter", store, events, fail_on="return"),
                Recorder("steady", store, events),
            ],
        )(body)
    assert "the broken thing stopped: RuntimeError('boom')" in caplog.messages
    assert "the quitter stopped unexpectedly" in caplog.messages
    assert not [m for m in caplog.messages if "steady" in m]
    assert "steady drained {}" in events


def test_a_service_that_cannot_start_stops_those_already_running(db_url: str) -> None:
    events: list[str] = []

    async def body(app: Starlette, client: httpx.AsyncClient) -> None:
        pytest.fail("the app served though a service could not start")

    with pytest.raises(RuntimeError, match="second cannot start"):
        serve(
            db_url,
            lambda store: [
                Recorder("first", store, events),
                Recorder("second", store, events, fail_on="start"),
                Recorder("third", store, events),
            ],
        )(body)
    assert events == [
        "first start",
        "second start",
        "first stop",
        "first run",
        "first drained {}",
    ]
