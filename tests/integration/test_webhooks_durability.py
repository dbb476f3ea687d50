"""Webhooks survive what servers go through: ``kill -9`` with events piled up, and a second
server taking over the deliveries of one that died.

Deliveries are at least once: the deliveries log of each test shows every event delivered,
in order, and a repeat only of what was in flight when a server was killed.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, free_port, wait_until
from tests.integration.test_webhooks import (
    arrived,
    client,
    deliveries,
    run_tasks,
    subscribe,
    task_events,
)
from tests.receivers import Receiver, start_receiver

#: Retries within seconds, a day of failures in 26 s; a dead server's holds end after 1 s.
FAST = ("--webhook-allow-private", "--webhook-retry-scale", "0.0003", "--webhook-lease", "1")


@pytest.fixture
def receiver_at(tmp_path: Path) -> Iterator[Callable[[int, str], Receiver]]:
    started: list[Receiver] = []

    def start(port: int, secret: str) -> Receiver:
        receiver = start_receiver(tmp_path / "receivers", port, "--secret", secret)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def delivered_per_event(log: list[dict[str, object]]) -> collections.Counter[object]:
    return collections.Counter(d["event_id"] for d in log if d["status"] == "delivered")


def test_kill_9_with_the_endpoint_down_loses_no_event(
    make_server: Callable[..., ServerProcess], receiver_at: Callable[[int, str], Receiver]
) -> None:
    port = free_port()
    server = make_server(*FAST)
    with client(server) as api:
        hook = subscribe(api, f"http://127.0.0.1:{port}/", event_types=["task.*"])
        tasks = run_tasks(api, 15)  # the endpoint is down: their events pile up
        expected = task_events(api, tasks)
        wait_until(lambda: len(deliveries(api, hook["id"])) >= 2, 60, "failed attempts")
    server.kill9()
    restarted = make_server(*FAST, db=server.db)
    receiver = receiver_at(port, hook["secret"])
    with client(restarted) as api:
        arrived(api, hook["id"], receiver, expected, "every event, in order")
        log = deliveries(api, hook["id"])
        counts = delivered_per_event(log)
        assert sorted(counts) == expected
        assert set(counts.values()) == {1}  # nothing was in flight: no repeat
        assert [d["event_id"] for d in log if d["status"] == "delivered"] == expected
        failed = [d for d in log if d["status"] == "failed"]
        assert failed
        assert {d["event_id"] for d in failed} == {expected[0]}


def test_another_server_takes_over_from_one_killed(
    make_server: Callable[..., ServerProcess], receiver_at: Callable[[int, str], Receiver]
) -> None:
    first = make_server(*FAST)
    second = make_server(*FAST, db=first.db)
    with client(first) as api, client(second) as other:
        hook = subscribe(api, "http://127.0.0.1:1/", event_types=["task.*"], enabled=False)
        receiver = receiver_at(free_port(), hook["secret"])
        api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url, "enabled": True})
        before = run_tasks(api, 5) + run_tasks(other, 5)
        expected = task_events(api, before)
        arrived(api, hook["id"], receiver, expected, "the events of both")
        # One server at a time sends: each event went once.
        assert set(delivered_per_event(deliveries(api, hook["id"])).values()) == {1}
        holder = {first.process.pid: first, second.process.pid: second}
        owner = api.get(f"/api/webhooks/{hook['id']}").json()
        assert owner["enabled"]
    # Kill whichever holds it (the lease names its pid) and let the other go on.
    lease = _lease_owner(first.db, hook["id"])
    killed = next(s for pid, s in holder.items() if f":{pid}:" in lease)
    survivor = second if killed is first else first
    killed.kill9()
    with client(survivor) as api:
        after = run_tasks(api, 5)
        expected = task_events(api, before + after)
        arrived(api, hook["id"], receiver, expected, "the events after the kill")
        counts = delivered_per_event(deliveries(api, hook["id"]))
        assert sorted(counts) == expected
        assert sum(1 for n in counts.values() if n > 1) <= 1  # at most the one in flight
        assert _lease_owner(survivor.db, hook["id"]) != lease


def _lease_owner(db: Path | str, hook_id: str) -> str:
    from tests.conftest import query_db

    [(owner,)] = query_db(db, f"SELECT lease_owner FROM webhooks WHERE id = '{hook_id}'")
    return str(owner)
