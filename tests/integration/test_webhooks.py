"""Webhooks out, end to end: a real server delivering to the SDK's receiver in a subprocess.

Each test starts a server with a compressed retry schedule (``--webhook-retry-scale``) and,
where it sends to 127.0.0.1, ``--webhook-allow-private``. The receiver verifies every
signature with the secret the API handed out; what its handlers ran is what arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, free_port, wait_status, wait_until
from tests.receivers import Receiver, silent_endpoint, start_receiver

#: A day of failures lasts 26 s; the retries come after 1.5 ms, 90 ms, 0.54 s, 2.2 s, 5.4 s...
SCALE = "0.0003"
LOCAL = ("--webhook-allow-private", "--webhook-retry-scale", SCALE)


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(secret: str, *args: str, port: int | None = None) -> Receiver:
        receiver = start_receiver(tmp_path / "receivers", port or free_port(), "--secret", secret,
                                  *args)  # fmt: skip
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60)


def subscribe(api: httpx.Client, url: str, **fields: Any) -> dict[str, Any]:
    made = api.post("/api/webhooks", json={"url": url, **fields})
    assert made.status_code == 201, made.text
    hook: dict[str, Any] = made.json()
    assert hook["secret"].startswith("whsec_")
    return hook


def run_tasks(api: httpx.Client, count: int, command: str = "true") -> list[str]:
    ids = []
    for i in range(count):
        made = api.post("/api/tasks", json={"name": f"t{i}", "command": command})
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    for task_id in ids:
        wait_status(api, task_id, timeout=60)
    return ids


def task_events(api: httpx.Client, task_ids: list[str], types: str = "task.*") -> list[int]:
    """The ids of every event of these tasks stored on the server, in order."""
    page = api.get("/api/events", params={"format": "json", "types": types, "limit": 1000})
    wanted = set(task_ids)
    return [e["id"] for e in page.json()["items"] if e["task_id"] in wanted]


def deliveries(api: httpx.Client, hook_id: str) -> list[dict[str, Any]]:
    page = api.get(f"/api/webhooks/{hook_id}/deliveries", params={"limit": 1000})
    assert page.status_code == 200, page.text
    return list(reversed(page.json()["deliveries"]))  # oldest first


def received_ids(receiver: Receiver) -> list[int]:
    return [int(e["id"]) for e in receiver.events("*")]


def arrived(
    api: httpx.Client, hook_id: str, receiver: Receiver, expected: list[int], what: str
) -> None:
    """Wait until the receiver has ``expected`` (in order) and the server recorded it."""
    wait_until(lambda: received_ids(receiver) == expected, 90, what)
    wait_until(
        lambda: api.get(f"/api/webhooks/{hook_id}").json()["position"] >= expected[-1],
        90,
        f"{what}, recorded",
    )


def test_every_event_arrives_signed_once_and_in_order(
    make_server: Callable[..., ServerProcess], receivers: Callable[..., Receiver]
) -> None:
    server = make_server(*LOCAL)
    with client(server) as api:
        hook = subscribe(api, "http://127.0.0.1:1/", event_types=["task.*"], enabled=False)
        receiver = receivers(hook["secret"])
        changed = api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url,
                                                                "enabled": True})  # fmt: skip
        assert changed.status_code == 200, changed.text
        assert "secret" not in changed.json()
        tasks = run_tasks(api, 12)
        expected = task_events(api, tasks)
        assert len(expected) == 12 * 3  # created, started, completed
        arrived(api, hook["id"], receiver, expected, "every event, in order")
        log = deliveries(api, hook["id"])
        assert [d["event_id"] for d in log] == expected
        assert {(d["status"], d["response_code"], d["attempt"]) for d in log} == {
            ("delivered", 204, 1)
        }
        first = log[0]
        assert first["request"]["url"] == receiver.url
        assert first["request"]["headers"]["webhook-id"] == f"{hook['id']}.{expected[0]}"
        assert "webhook-signature" not in first["request"]["headers"]  # what it is signed with
        assert hook["secret"] not in str(log)
        assert api.get(f"/api/webhooks/{hook['id']}").json()["position"] == expected[-1]
    assert hook["secret"] not in (server.log or Path()).read_text()


def test_a_failing_endpoint_is_retried_until_it_takes_the_event(
    make_server: Callable[..., ServerProcess], receivers: Callable[..., Receiver]
) -> None:
    server = make_server(*LOCAL)
    with client(server) as api:
        hook = subscribe(api, "http://127.0.0.1:1/", event_types=["task.completed"],
                         enabled=False)  # fmt: skip
        receiver = receivers(hook["secret"], "--fail-first", "3")
        api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url, "enabled": True})
        [task] = run_tasks(api, 1)
        [completed] = task_events(api, [task], "task.completed")
        arrived(api, hook["id"], receiver, [completed], "the retried delivery")
        log = deliveries(api, hook["id"])
        assert [(d["attempt"], d["status"], d["response_code"]) for d in log] == [
            (1, "failed", 500),
            (2, "failed", 500),
            (3, "failed", 500),
            (4, "delivered", 204),
        ]
        assert {d["event_id"] for d in log} == {completed}
        assert log[0]["error"] == "answered 500"
        # The schedule: each retry waited at least its (scaled) delay after the one before.
        hook_now = api.get(f"/api/webhooks/{hook['id']}").json()
        assert hook_now["failures"] == 0
        assert hook_now["failing_since"] is None
        assert hook_now["next_attempt_at"] is None


def test_410_gone_disables_the_subscription_and_an_event_says_why(
    make_server: Callable[..., ServerProcess], receivers: Callable[..., Receiver]
) -> None:
    server = make_server(*LOCAL)
    with client(server) as api:
        hook = subscribe(api, "http://127.0.0.1:1/", event_types=["task.completed"],
                         enabled=False)  # fmt: skip
        receiver = receivers(hook["secret"], "--status", "410")
        api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url, "enabled": True})
        run_tasks(api, 2)
        wait_until(
            lambda: not api.get(f"/api/webhooks/{hook['id']}").json()["enabled"], 60, "disabling"
        )
        disabled = api.get(f"/api/webhooks/{hook['id']}").json()
        assert "410 Gone" in disabled["disabled_reason"]
        log = deliveries(api, hook["id"])
        assert [(d["status"], d["response_code"]) for d in log] == [("failed", 410)]
        page = api.get("/api/events", params={"format": "json", "types": "webhook.disabled"})
        [event] = page.json()["items"]
        assert event["data"]["webhook_id"] == hook["id"]
        assert "410 Gone" in event["data"]["reason"]
        assert event["data"]["url"] == "http://127.0.0.1:" + receiver.url.split(":")[2][:-1]
        # Enabled again, it resumes with the event it could not deliver.
        before = position = disabled["position"]
        api.put(f"/api/webhooks/{hook['id']}", json={"enabled": True})
        wait_until(lambda: len(deliveries(api, hook["id"])) == 2, 60, "the next attempt")
        assert deliveries(api, hook["id"])[1]["event_id"] == log[0]["event_id"]
        assert api.get(f"/api/webhooks/{hook['id']}").json()["position"] == before == position


def test_a_day_of_failures_disables_the_subscription(
    make_server: Callable[..., ServerProcess],
) -> None:
    # A day is 0.86 s here; the endpoint refuses connections.
    server = make_server("--webhook-allow-private", "--webhook-retry-scale", "0.00001")
    with client(server) as api:
        hook = subscribe(api, f"http://127.0.0.1:{free_port()}/", event_types=["task.*"])
        run_tasks(api, 1)
        wait_until(
            lambda: not api.get(f"/api/webhooks/{hook['id']}").json()["enabled"], 60, "disabling"
        )
        disabled = api.get(f"/api/webhooks/{hook['id']}").json()
        assert "every delivery failed for" in disabled["disabled_reason"]
        assert "cannot connect" in disabled["disabled_reason"]
        log = deliveries(api, hook["id"])
        assert len(log) >= 2
        assert {d["status"] for d in log} == {"failed"}
        assert [d["attempt"] for d in log] == list(range(1, len(log) + 1))
        assert len({d["event_id"] for d in log}) == 1  # in order: nothing past the first


def test_private_addresses_are_refused_unless_the_operator_allows_them(
    make_server: Callable[..., ServerProcess], receivers: Callable[..., Receiver]
) -> None:
    server = make_server("--webhook-retry-scale", SCALE)
    with client(server) as api:
        hook = subscribe(api, "http://127.0.0.1:1/", event_types=["task.*"], enabled=False)
        receiver = receivers(hook["secret"])
        for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
            api.put(f"/api/webhooks/{hook['id']}", json={"url": url})
            sent = api.post(f"/api/webhooks/{hook['id']}/test")
            assert sent.status_code == 200, sent.text
            delivery = sent.json()
            assert delivery["status"] == "failed"
            assert delivery["response_code"] is None
            assert "--webhook-allow-private" in delivery["error"]
            assert delivery["manual"] is True
        assert receiver.lines() == []


def test_rotation_signs_with_both_secrets_until_the_grace_ends(
    make_server: Callable[..., ServerProcess], receivers: Callable[..., Receiver]
) -> None:
    server = make_server(*LOCAL)
    with client(server) as api:
        hook = subscribe(api, "http://127.0.0.1:1/", event_types=["task.*"], enabled=False)
        old = receivers(hook["secret"])
        api.put(f"/api/webhooks/{hook['id']}", json={"url": old.url})
        rotated = api.post(f"/api/webhooks/{hook['id']}/rotate-secret", json={})
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != hook["secret"]
        assert rotated.json()["previous_secret_until"] is not None
        new = receivers(new_secret)
        for receiver in (old, new):  # each knows one secret: both sign
            api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url})
            sent = api.post(f"/api/webhooks/{hook['id']}/test").json()
            assert (sent["status"], sent["response_code"]) == ("delivered", 204), sent
            assert [e["type"] for e in receiver.events("*")] == ["webhook.test"]
        # With no grace, the old secret stops at once.
        again = api.post(f"/api/webhooks/{hook['id']}/rotate-secret", json={"grace_seconds": 0})
        assert again.json()["previous_secret_until"] is None
        sent = api.post(f"/api/webhooks/{hook['id']}/test").json()
        assert (sent["status"], sent["response_code"]) == ("failed", 401), sent
        assert len(new.events("*")) == 1


def test_redelivery_sends_a_past_event_again_outside_the_order(
    make_server: Callable[..., ServerProcess], receivers: Callable[..., Receiver]
) -> None:
    server = make_server(*LOCAL)
    with client(server) as api:
        hook = subscribe(api, "http://127.0.0.1:1/", event_types=["task.completed"],
                         enabled=False)  # fmt: skip
        receiver = receivers(hook["secret"])
        api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url, "enabled": True})
        [task] = run_tasks(api, 1)
        [completed] = task_events(api, [task], "task.completed")
        arrived(api, hook["id"], receiver, [completed], "the delivery")
        again = api.post(f"/api/webhooks/{hook['id']}/redeliver", json={"event_id": completed})
        assert again.status_code == 200, again.text
        # Same webhook-id: the receiver acknowledges it (200) and does not run it twice.
        assert (again.json()["response_code"], again.json()["manual"]) == (200, True)
        assert received_ids(receiver) == [completed]
        [created] = task_events(api, [task], "task.created")
        unwanted = api.post(f"/api/webhooks/{hook['id']}/redeliver", json={"event_id": created})
        assert unwanted.status_code == 200  # any stored event of its projects may be sent again
        missing = api.post(f"/api/webhooks/{hook['id']}/redeliver", json={"event_id": 10**12})
        assert missing.status_code == 409, missing.text
        assert missing.json()["error"]["details"][0]["loc"] == ["event_id"]
        log = deliveries(api, hook["id"])
        assert [(d["event_id"], d["manual"]) for d in log] == [
            (completed, False),
            (completed, True),
            (created, True),
        ]
        assert api.get(f"/api/webhooks/{hook['id']}").json()["position"] >= completed


def test_a_hung_endpoint_delays_neither_tasks_nor_other_subscriptions(
    make_server: Callable[..., ServerProcess], receivers: Callable[..., Receiver]
) -> None:
    with silent_endpoint() as hung:
        server = make_server(*LOCAL, "--webhook-timeout", "120")
        with client(server) as api:
            stuck = subscribe(api, hung, event_types=["task.*"])
            hook = subscribe(api, "http://127.0.0.1:1/", event_types=["task.*"], enabled=False)
            receiver = receivers(hook["secret"])
            api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url, "enabled": True})
            tasks = run_tasks(api, 5)
            expected = task_events(api, tasks)
            arrived(api, hook["id"], receiver, expected, "the healthy subscription")
            assert deliveries(api, stuck["id"]) == []  # its first delivery is still waiting
            assert api.get(f"/api/webhooks/{stuck['id']}").json()["position"] < expected[0]


def test_a_project_subscription_gets_only_its_projects_events(
    make_server: Callable[..., ServerProcess], receivers: Callable[..., Receiver]
) -> None:
    server = make_server(*LOCAL)
    with client(server) as api:
        mine = api.post("/api/projects", json={"name": "mine"}).json()["id"]
        other = api.post("/api/projects", json={"name": "other"}).json()["id"]
        hook = subscribe(api, "http://127.0.0.1:1/", project_id=mine, event_types=["task.*"],
                         enabled=False)  # fmt: skip
        receiver = receivers(hook["secret"])
        api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url, "enabled": True})
        ids = []
        for project in (other, mine, other, mine):
            made = api.post("/api/tasks", json={"name": "p", "command": "true",
                                                "project_id": project})  # fmt: skip
            ids.append(made.json()["id"])
        for task_id in ids:
            wait_status(api, task_id)
        expected = task_events(api, [ids[1], ids[3]])
        arrived(api, hook["id"], receiver, expected, "the project's events")
        assert {e["project_id"] for e in receiver.events("*")} == {mine}
