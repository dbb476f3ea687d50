"""``GET /api/events`` on a real server: resume without gap or duplicate, filters, isolation of
project-limited keys, keep-alives, pruned positions, and refusals of bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import execute_db, wait_until
from tests.integration.authkit import AuthServer, auth_server
from tests.sse import Block, read_stream


@pytest.fixture(scope="module")
def hub(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    """One server (with an admin key) for the module."""
    with auth_server(request, backend, tmp_path_factory.mktemp("events")) as server:
        yield server


def _project(admin: httpx.Client, name: str) -> str:
    made = admin.post("/api/projects", json={"name": name})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _head(client: httpx.Client) -> int:
    page = client.get("/api/events", params={"format": "json", "limit": 1}).json()
    return int(page["last_id"] or 0)


def _run(admin: httpx.Client, project_id: str | None, count: int, tag: str) -> list[str]:
    ids = []
    for n in range(count):
        body: dict[str, Any] = {"name": f"{tag}-{n}", "command": "true", "retry_attempts": 0}
        if project_id is not None:
            body["project_id"] = project_id
        made = admin.post("/api/tasks", json=body)
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    return ids


def _all_done(admin: httpx.Client, ids: list[str]) -> None:
    def done() -> bool:
        for task_id in ids:
            if admin.get(f"/api/tasks/{task_id}").json()["status"] != "Completed":
                return False
        return True

    wait_until(done, 60, "tasks completed")


def _stored(client: httpx.Client, after: int, **params: Any) -> list[dict[str, Any]]:
    """Every stored event after ``after`` that the client may see, by the JSON pages."""
    found: list[dict[str, Any]] = []
    while True:
        query = {"format": "json", "after": after, "limit": 1000, **params}
        page = client.get("/api/events", params=query).json()
        found += page["items"]
        if page["next_after"] == after:
            return found
        after = page["next_after"]


def test_a_stream_resumed_from_last_event_id_has_no_gap_and_no_duplicate(
    hub: AuthServer,
) -> None:
    with hub.admin_client() as admin:
        project = _project(admin, "resume")
        start = _head(admin)
        first = _run(admin, project, 3, "resume-a")
        _all_done(admin, first)
        # The first connection reads part of what happened, then drops.
        got, _ = read_stream(
            admin, {"after": start, "project_id": project}, until=lambda e: len(e) >= 4
        )
        more = _run(admin, project, 3, "resume-b")
        _all_done(admin, more)
        expected = _stored(admin, start, project_id=project)
        rest, _ = read_stream(
            admin,
            {"project_id": project},
            headers={"Last-Event-ID": str(got[-1]["id"])},
            until=lambda e: len(got) + len(e) >= len(expected),
        )
    everything = got + rest
    assert everything == expected
    ids = [e["id"] for e in everything]
    assert ids == sorted(set(ids))
    # Each task's whole life is there, in order.
    for task_id in first + more:
        assert [e["type"] for e in everything if e["task_id"] == task_id] == [
            "task.created",
            "task.started",
            "task.completed",
        ]


def test_live_events_arrive_on_an_open_stream(hub: AuthServer) -> None:
    with hub.admin_client() as admin, hub.admin_client() as writer:
        project = _project(admin, "live")
        made: list[str] = []

        def wrote(events: list[dict[str, Any]]) -> bool:
            if not made:  # the stream is open: now something happens
                made.extend(_run(writer, project, 1, "live"))
            return any(e["type"] == "task.completed" for e in events)

        events, others = read_stream(admin, {"project_id": project}, until=wrote)
    assert [e["type"] for e in events] == ["task.created", "task.started", "task.completed"]
    assert {e["task_id"] for e in events} == set(made)
    # The stream opened by saying where it starts, before any event.
    opening = next(o for o in others if isinstance(o, Block))
    assert int(opening.fields["id"]) < events[0]["id"]
    done = events[-1]
    assert done["data"]["exit_code"] == 0
    assert done["project_id"] == project
    assert done["time"].endswith("Z")


def test_a_project_limited_key_never_receives_another_projects_events(hub: AuthServer) -> None:
    with hub.admin_client() as admin:
        mine = _project(admin, "iso-mine")
        theirs = _project(admin, "iso-theirs")
        key = hub.api_key("iso-reader", scopes=["read"], projects=[mine])["key"]
        start = _head(admin)
        _all_done(admin, _run(admin, theirs, 2, "iso-theirs") + _run(admin, None, 1, "iso-none"))
        mine_ids = _run(admin, mine, 2, "iso-mine")
        _all_done(admin, mine_ids)
        _run(admin, theirs, 1, "iso-after")
        hub.api_key("iso-other", scopes=["read"])  # a key.created event: an admin's business
        expected = _stored(admin, start, project_id=mine)
        assert len(expected) == 2 * 3  # its two tasks' lives: created, started, completed
    with hub.client(key) as reader:
        events, _ = read_stream(reader, {"after": start}, until=lambda e: len(e) >= len(expected))
        assert events == expected
        assert {e["project_id"] for e in events} == {mine}
        # Asking for the other project by name gets nothing, not its events.
        page = reader.get(
            "/api/events", params={"format": "json", "after": start, "project_id": theirs}
        ).json()
        assert page["items"] == []
        assert _stored(reader, start) == expected


def test_filters_by_type_and_task(hub: AuthServer) -> None:
    with hub.admin_client() as admin:
        project = _project(admin, "filters")
        start = _head(admin)
        ids = _run(admin, project, 3, "filters")
        _all_done(admin, ids)
        ends, _ = read_stream(
            admin,
            {"after": start, "types": "task.completed,project.*"},
            until=lambda e: sum(x["type"] == "task.completed" for x in e) >= 3,
        )
        assert {e["type"] for e in ends} <= {"task.completed", "project.created"}
        assert {e["task_id"] for e in ends if e["type"] == "task.completed"} >= set(ids)
        one, _ = read_stream(
            admin,
            {"after": start, "task_id": ids[1], "types": "task.*"},
            until=lambda e: len(e) >= 3,
        )
        assert [(e["task_id"], e["type"]) for e in one] == [
            (ids[1], "task.created"),
            (ids[1], "task.started"),
            (ids[1], "task.completed"),
        ]
        on_queue = _stored(admin, start, queue="default", project_id=project)
        assert {e["task_id"] for e in on_queue} == set(ids)
        assert _stored(admin, start, queue="elsewhere", project_id=project) == []


def test_keep_alives_while_idle_and_an_end_at_the_timeout(hub: AuthServer) -> None:
    with hub.admin_client() as admin:
        answer = admin.get(
            "/api/events",
            params={"heartbeat": 0.1, "timeout": 0.6, "types": "webhook.disabled"},
        )
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    text = answer.text
    assert text.count(": keep-alive") >= 2
    assert "event: end" in text
    assert '"reason":"timeout"' in text


def test_a_position_past_the_retention_is_said_and_the_stream_goes_on(hub: AuthServer) -> None:
    with hub.admin_client() as admin:
        _all_done(admin, _run(admin, None, 2, "pruned"))
        last = _head(admin)
        # What housekeeping does past the retention: the oldest events are gone.
        position = "seq" if "://" in hub.db else "id"
        execute_db(hub.db, f"DELETE FROM events WHERE {position} < {last - 2}")
        events, others = read_stream(
            admin, {"after": 1}, until=lambda e: bool(e) and e[-1]["id"] >= last
        )
    notices = [o for o in others if isinstance(o, Block) and o.name == "pruned"]
    assert len(notices) == 1
    assert notices[0].data["after"] == 1
    assert notices[0].data["first_id"] == last - 2
    assert "pruned" in notices[0].data["message"]
    # The stream goes on from the oldest event kept.
    assert [e["id"] for e in events] == [last - 2, last - 1, last]


@pytest.mark.parametrize(
    ("params", "headers", "where"),
    [
        ({"types": "task.finished"}, {}, "types"),
        ({"format": "xml"}, {}, "format"),
        ({"after": "-1"}, {}, "after"),
        ({"after": "1.5"}, {}, "after"),
        ({"heartbeat": "0"}, {}, "heartbeat"),
        ({"limit": "5000", "format": "json"}, {}, "limit"),
        ({"follow": "true"}, {}, "follow"),
        ({}, {"Last-Event-ID": "twelve"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "1" * 25}, "Last-Event-ID"),
    ],
)
def test_bad_input_is_a_422_naming_what(
    hub: AuthServer, params: dict[str, str], headers: dict[str, str], where: str
) -> None:
    with hub.admin_client() as admin:
        answer = admin.get("/api/events", params=params, headers=headers)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert where in error["message"]
    assert error["details"][0]["loc"][-1] == where


def test_without_a_key_the_stream_is_refused(hub: AuthServer) -> None:
    with hub.client() as anonymous:
        answer = anonymous.get("/api/events", params={"timeout": 0})
    assert answer.status_code == 401
