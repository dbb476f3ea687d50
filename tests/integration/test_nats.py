"""NATS publishing end to end: a real ``nats-server``, a real ``taskqueue server --nats-url``.

Every event of a few tasks arrives on its subject with the envelope and its id as
``Nats-Msg-Id``; with a JetStream stream on ``taskqueue.>``, a NATS server killed (-9) mid-run
and a taskqueue server killed (-9) mid-run lose nothing, and the stream holds every event
exactly once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg

from taskqueue.events import Event
from taskqueue.integrations.nats import CURSOR, NatsPublisher
from taskqueue.models import TaskCreate
from taskqueue.nats import subscribe
from taskqueue.store import Store
from tests.conftest import (
    BIN,
    ServerProcess,
    execute_db,
    query_db,
    run_store,
    wait_status,
    wait_until,
)
from tests.nats_server import NatsServer

STREAM = "TASKQUEUE"
#: Every server here: a short drain, so a test's end does not wait on it.
SERVER_ARGS = ("--drain-timeout", "1")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------------------------- helpers


def run_tasks(server: ServerProcess, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create the tasks and wait until each has finished; the finished tasks."""
    with httpx.Client(base_url=server.url, timeout=30) as api:
        made = []
        for body in bodies:
            response = api.post(
                "/api/tasks", json={"name": "t", "command": "true", "retry_attempts": 0, **body}
            )
            assert response.status_code == 201, response.text
            made.append(response.json()["id"])
        return [wait_status(api, task_id) for task_id in made]


def make_project(server: ServerProcess, name: str) -> str:
    response = httpx.post(f"{server.url}/api/projects", json={"name": name}, timeout=30)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def stored_events(db: str) -> list[dict[str, Any]]:
    """Every event in the outbox, oldest first, as the publisher reads them."""

    async def read(store: Store) -> list[dict[str, Any]]:
        return await store.events.read(0, 100_000)

    return run_store(db, read)


def nats_cursor(db: str) -> int | None:
    rows = query_db(db, "SELECT position FROM event_cursors WHERE name = 'nats'")
    return int(rows[0][0]) if rows else None  # type: ignore[call-overload]


def add_stream(url: str) -> None:
    async def add() -> None:
        connection = await nats.connect(url)
        await connection.jetstream().add_stream(name=STREAM, subjects=["taskqueue.>"])
        await connection.close()

    asyncio.run(add())


def stream_messages(url: str) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """Every message the stream holds: subject, headers, payload."""

    async def read() -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        connection = await nats.connect(url)
        try:
            jsm = connection.jetstream()
            state = (await jsm.stream_info(STREAM)).state
            found = []
            for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                msg = await jsm.get_msg(STREAM, seq)
                assert msg.subject is not None
                assert msg.data is not None
                found.append((msg.subject, dict(msg.headers or {}), json.loads(msg.data)))
            return found
        finally:
            await connection.close()

    return asyncio.run(read())


def wait_stream_has(url: str, ids: set[int], timeout: float = 30.0) -> None:
    def has_all() -> bool:
        return ids <= {int(m[1]["Nats-Msg-Id"]) for m in stream_messages(url)}

    wait_until(has_all, timeout, f"the stream to hold events {sorted(ids)}")


def check_message(subject: str, headers: dict[str, str], payload: dict[str, Any]) -> None:
    """The message of one event: its subject, its msg id, the envelope and seed 003's fields."""
    project = payload["project_id"] or "_"
    assert subject == f"taskqueue.{project}.{payload['type']}"
    assert headers["Nats-Msg-Id"] == str(payload["id"])
    assert payload["service"] == "taskqueue"
    assert payload["timestamp"] == payload["time"]
    assert "trace_id" in payload
    Event.model_validate(payload)


def assert_each_once(url: str, db: str, after: int) -> list[dict[str, Any]]:
    """The stream holds every stored event after ``after`` exactly once, as published."""
    expected = [e for e in stored_events(db) if e["id"] > after]
    messages = stream_messages(url)
    counts = Counter(int(headers["Nats-Msg-Id"]) for _, headers, _ in messages)
    assert {i: n for i, n in counts.items() if n > 1} == {}
    assert sorted(counts) == [e["id"] for e in expected]
    by_id = {payload["id"]: payload for _, _, payload in messages}
    for subject, headers, payload in messages:
        check_message(subject, headers, payload)
    for event in expected:
        published = by_id[event["id"]]
        assert {k: published[k] for k in event} == event
    return expected


# ------------------------------------------------------------------------------------ tests


def test_every_event_arrives_on_its_subject_with_the_envelope(
    make_server: Callable[..., ServerProcess], db_url: str, nats_server: NatsServer
) -> None:
    # Credentials in the URL (a server without auth accepts them): the log must not show them.
    password = "pw-never-in-a-log-4f1d"
    url = f"nats://taskqueue:{password}@127.0.0.1:{nats_server.port}"
    server = make_server(*SERVER_ARGS, "--nats-url", url)
    received: list[Msg] = []
    typed: list[Event] = []

    async def main() -> None:
        connection = await nats.connect(nats_server.url)

        async def keep(msg: Msg) -> None:
            received.append(msg)

        await connection.subscribe("taskqueue.>", cb=keep)
        await connection.flush()
        project = await asyncio.to_thread(make_project, server, "etl")

        async def task_events() -> None:
            async for event in subscribe(nats_server.url, project=project, types=["task.*"]):
                typed.append(event)

        reader = asyncio.create_task(task_events())
        subject = f"taskqueue.{project}.task.*"
        while subject not in nats_server.subscriptions("taskqueue subscriber"):
            await asyncio.sleep(0.02)  # the SDK's subscription is in place before the tasks
        await asyncio.to_thread(
            run_tasks,
            server,
            [
                {"project_id": project},
                {"project_id": project, "command": "exit 3", "retry_attempts": 1, "retry_delay": 0},
                {"command": "echo no project"},
            ],
        )
        expected = await asyncio.to_thread(stored_events, db_url)
        deadline = time.monotonic() + 20
        while len(received) < len(expected) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        in_project = [e for e in expected if e["project_id"] == project and e["task_id"]]
        while len(typed) < len(in_project) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await connection.close()

        payloads = [json.loads(m.data) for m in received]
        assert [p["id"] for p in payloads] == [e["id"] for e in expected]  # all, in order
        for msg, payload, event in zip(received, payloads, expected, strict=True):
            check_message(msg.subject, dict(msg.headers or {}), payload)
            assert {k: payload[k] for k in event} == event  # the stored envelope, unchanged
        types = {(p["project_id"] is None, p["type"]) for p in payloads}
        assert (False, "project.created") in types
        assert (False, "task.retrying") in types
        assert (False, "task.failed") in types
        assert (True, "task.completed") in types
        # The SDK's subscriber: the project's task events, typed, nothing else.
        assert [e.id for e in typed] == [e["id"] for e in in_project]
        assert all(isinstance(e, Event) and str(e.project_id) == project for e in typed)

    asyncio.run(main())
    assert server.log is not None
    log = server.log.read_text()
    assert f"connected to nats://***@127.0.0.1:{nats_server.port}" in log
    assert password not in log


def test_a_nats_server_killed_mid_run_loses_nothing(
    make_server: Callable[..., ServerProcess], db_url: str, nats_server: NatsServer
) -> None:
    add_stream(nats_server.url)
    server = make_server(*SERVER_ARGS, "--nats-url", nats_server.url)
    run_tasks(server, [{}, {"command": "exit 1"}])
    before = {e["id"] for e in stored_events(db_url)}
    wait_stream_has(nats_server.url, before)
    wait_until(lambda: nats_cursor(db_url) == max(before), 10, "the cursor to catch up")

    nats_server.kill9()
    run_tasks(server, [{}, {}, {"command": "exit 2"}])  # tasks end while NATS is down
    during = {e["id"] for e in stored_events(db_url)} - before
    assert during
    time.sleep(0.5)  # the publisher tries, fails, backs off
    # NATS has none of these events, so the cursor stayed where NATS left it.
    assert nats_cursor(db_url) == max(before)

    nats_server.start()
    wait_stream_has(nats_server.url, before | during)
    assert_each_once(nats_server.url, db_url, 0)
    wait_until(lambda: nats_cursor(db_url) == max(during), 10, "the cursor to catch up")
    assert server.log is not None
    assert "lost the connection to nats://127.0.0.1" in server.log.read_text()
    # The SDK's durable subscriber reads the stream from its start, resumes where it left
    # off, and leaves unacknowledged (for JetStream to deliver again) each event it broke on.
    every = sorted(before | during)
    assert durable_read(nats_server.url, 3) == every[:3]
    assert durable_read(nats_server.url, len(every) - 3) == every[3:]
    assert asyncio.run(acks_pending(nats_server.url, "audit")) == 2  # every[2], every[-1]


async def acks_pending(url: str, durable: str) -> int:
    connection = await nats.connect(url)
    try:
        info = await connection.jetstream().consumer_info(STREAM, durable)
        return int(info.num_ack_pending or 0)
    finally:
        await connection.close()


def durable_read(url: str, count: int) -> list[int]:
    """The ids of the next ``count`` events of the durable consumer ``audit``; the loop
    breaks on the last one, the others it handled."""

    async def read() -> list[int]:
        ids: list[int] = []
        events = subscribe(url, durable="audit")
        async for event in events:
            ids.append(event.id)
            if len(ids) == count:
                break
        await events.aclose()  # type: ignore[attr-defined]
        return ids

    return asyncio.run(read())


def test_a_taskqueue_server_killed_mid_run_loses_nothing(
    make_server: Callable[..., ServerProcess], db_url: str, nats_server: NatsServer
) -> None:
    add_stream(nats_server.url)
    first = make_server(*SERVER_ARGS, "--nats-url", nats_server.url)
    run_tasks(first, [{}, {"command": "exit 1"}])
    before = {e["id"] for e in stored_events(db_url)}
    wait_stream_has(nats_server.url, before)
    first.kill9()
    # The worst a crash can leave: not one cursor write of this run made it to disk.
    assert execute_db(db_url, "UPDATE event_cursors SET position = 0 WHERE name = 'nats'") == 1

    second = make_server(*SERVER_ARGS, "--nats-url", nats_server.url)
    run_tasks(second, [{}, {}])
    every = {e["id"] for e in stored_events(db_url)}
    wait_stream_has(nats_server.url, every)
    assert_each_once(nats_server.url, db_url, 0)
    # What the first server had published went out again, and the stream dropped it.
    assert second.log is not None
    assert "the stream already had" in second.log.read_text()


def test_the_option_says_what_to_install_without_the_nats_client(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['nats'] = None  # as if nats-py were not installed\n"
        "from taskqueue.cli import main\n"
        "main(['server', '--db', sys.argv[1], '--nats-url', 'nats://127.0.0.1:4222'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "tq.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'taskqueue-sdk[nats]'" in result.stderr
    assert not (tmp_path / "tq.db").exists()  # it stopped before opening anything


def test_the_option_refuses_what_is_not_a_nats_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN), "server", "--db", str(tmp_path / "tq.db"), "--nats-url", "http://u:pw@x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "http://***@x is not a NATS URL" in result.stderr
    assert ":pw@" not in result.stderr


def test_a_server_stops_at_once_while_nats_is_down(
    make_server: Callable[..., ServerProcess], db_url: str, nats_server: NatsServer
) -> None:
    server = make_server(*SERVER_ARGS, "--nats-url", nats_server.url)
    run_tasks(server, [{}])
    wait_until(lambda: (nats_cursor(db_url) or 0) > 0, 10, "the first events to be published")
    nats_server.kill9()
    run_tasks(server, [{}])  # the publisher now retries, connection attempts and backoff
    time.sleep(0.5)
    # Its retries do not hold the shutdown (the client's own pool would retry for minutes,
    # past this wait, which then raises).
    assert server.terminate(timeout=30) == 0


def test_without_jetstream_events_go_out_by_core_publish_and_a_pruned_gap_is_logged(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In process: a NATS server without JetStream (the publisher must not wait for a stream
    that cannot exist), events pruned before they were published (the log says which), and
    the SDK's queue groups (each event to one member)."""
    server = NatsServer(tmp_path / "nats", jetstream=False)
    server.start()
    column = "seq" if "://" in db_url else "id"  # the position readers follow, per backend

    async def body(store: Store) -> int:
        await store.create_tasks(
            [TaskCreate(name=f"t{i}", command="true", queue="parked") for i in range(5)]
        )
        events = await store.events.read(0, 100)
        first, last = events[0]["id"], events[-1]["id"]
        await store.events.set_cursor(CURSOR, first)
        gone = execute_db(
            db_url, f"DELETE FROM events WHERE {column} IN ({first + 1}, {first + 2})"
        )
        assert gone == 2
        connection = await nats.connect(server.url)
        received: list[Msg] = []

        async def keep(msg: Msg) -> None:
            received.append(msg)

        await connection.subscribe("taskqueue.>", cb=keep)
        await connection.flush()
        # Two members of one queue group: each event goes to one of them.
        members: list[list[int]] = [[], []]

        async def member(ids: list[int]) -> None:
            async for event in subscribe(server.url, types=["task.created"], queue="g"):
                ids.append(event.id)

        readers = [asyncio.create_task(member(ids)) for ids in members]
        while len(server.subscriptions("taskqueue subscriber")) < 2:
            await asyncio.sleep(0.02)
        publisher = NatsPublisher(store, server.url)
        await publisher.start()
        running = asyncio.create_task(publisher.run())
        deadline = time.monotonic() + 20
        while len(received) + sum(map(len, members)) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        publisher.stop()
        await running
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)  # their connections close
        await connection.close()
        assert [json.loads(m.data)["id"] for m in received] == [first + 3, last]
        assert sorted(members[0] + members[1]) == [first + 3, last]
        assert await store.events.cursor(CURSOR) == last
        assert publisher.published == 2
        return int(first)

    try:
        with caplog.at_level(logging.INFO, "taskqueue.integrations.nats"):
            first = run_store(db_url, body)
    finally:
        server.stop()
    pruned = f"events {first + 1} to {first + 2} were pruned (retention) before they were published"
    assert pruned in caplog.text
