"""The API's one reader of the outbox, in process on a real store: fan-out to many streams,
a slow stream dropped with its reason (not buffered), the head of a stream that wants only new
events, and the end of every stream when the server stops."""

from __future__ import annotations

import asyncio
from typing import Any

from taskqueue.models import TaskCreate
from taskqueue.server.events import EventHub, Filter, _stream
from taskqueue.store import Store
from tests.conftest import run_store

_EVERYTHING = Filter(projects=None, admin=True)


async def _never_disconnected() -> bool:
    return False


async def _collect(
    store: Store, hub: EventHub, after: int | None, want: int, flt: Filter = _EVERYTHING
) -> tuple[list[bytes], Any]:
    sub = await hub.subscribe(flt)
    chunks: list[bytes] = []
    stream = _stream(store, hub, sub, after, (0.05, None), _never_disconnected)

    async def read() -> None:
        async for chunk in stream:
            chunks.append(chunk)
            if b"".join(chunks).count(b"\ndata: ") >= want:
                return

    return chunks, read


def test_every_stream_gets_every_event_from_one_reader(db_url: str) -> None:
    async def body(store: Store) -> None:
        hub = EventHub(store)
        readers = [await _collect(store, hub, None, 30) for _ in range(200)]
        assert hub.streams == 200
        tasks = [asyncio.create_task(read()) for _, read in readers]
        await store.create_tasks([TaskCreate(name=f"t{i}", command="true") for i in range(30)])
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        # Keep-alives (every 0.05 s here) come when each stream's wait happens to end; the
        # events are the same bytes for every stream, in the same order.
        texts = [b"".join(chunks).replace(b": keep-alive\n\n", b"") for chunks, _ in readers]
        assert all(text.count(b"task.created") == 30 for text in texts)
        assert len(set(texts)) == 1
        hub.close()

    run_store(db_url, body)


def test_a_stream_that_falls_behind_the_window_is_dropped_with_its_reason(db_url: str) -> None:
    async def body(store: Store) -> None:
        hub = EventHub(store, window=10)
        slow = await hub.subscribe(_EVERYTHING)
        reading, read = await _collect(store, hub, None, 25)
        reader = asyncio.create_task(read())
        for i in range(25):  # one at a time: a stream that reads keeps up
            await store.create_tasks([TaskCreate(name=f"t{i}", command="true")])
            await asyncio.sleep(0.01)
        await asyncio.wait_for(reader, 30)
        assert b"".join(reading).count(b"task.created") == 25
        # The hub holds the last 10 events, once: the stream that read none is past them.
        held = hub.since(hub._floor) or []
        assert sum(len(b.events) for b in held) < 10 + len(held[0].events)
        assert hub.since(slow.start) is None
        stream = _stream(store, hub, slow, None, (0.05, None), _never_disconnected)
        sent = b"".join([chunk async for chunk in stream])
        assert b"task.created" not in sent
        assert b"event: dropped" in sent
        assert b"more than 10 events behind" in sent
        assert b"resume with Last-Event-ID" in sent
        assert hub.streams == 1
        hub.close()

    run_store(db_url, body)


def test_a_stream_of_new_events_starts_at_the_end_of_the_log(db_url: str) -> None:
    async def body(store: Store) -> None:
        await store.create_tasks([TaskCreate(name="old", command="true")])
        hub = EventHub(store)
        chunks, read = await _collect(store, hub, None, 1)
        reader = asyncio.create_task(read())
        await asyncio.sleep(0.1)
        await store.create_tasks([TaskCreate(name="new", command="true")])
        await asyncio.wait_for(reader, 30)
        text = b"".join(chunks)
        assert b'"name":"new"' in text
        assert b'"name":"old"' not in text
        # With no stream left the hub stops; the next "new events" start at the end again.
        hub.close()
        hub2 = EventHub(store)
        chunks2, read2 = await _collect(store, hub2, None, 1)
        reader2 = asyncio.create_task(read2())
        await asyncio.sleep(0.1)
        await store.create_tasks([TaskCreate(name="newer", command="true")])
        await asyncio.wait_for(reader2, 30)
        assert b'"name":"new"' not in b"".join(chunks2)
        hub2.close()

    run_store(db_url, body)


def test_closing_the_hub_ends_every_stream(db_url: str) -> None:
    async def body(store: Store) -> None:
        hub = EventHub(store)
        sub = await hub.subscribe(_EVERYTHING)
        stream = _stream(store, hub, sub, None, (10.0, None), _never_disconnected)
        first = await anext(stream)
        assert first.startswith(b": connected")
        ending = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.05)
        hub.close()
        last = await asyncio.wait_for(ending, 5)
        assert b"event: dropped" in last
        assert b"shutting down" in last
        assert hub.streams == 0

    run_store(db_url, body)
