"""The SDK's webhook methods, through both clients, against a real server and a real receiver.

The module's server sends to 127.0.0.1 (``--webhook-allow-private``). Subscriptions here want
only ``task.failed`` and no task runs, so the server's own dispatcher sends them nothing: every
delivery a test sees is one it asked for (``test_webhook``, ``redeliver_webhook``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskqueue import (
    AsyncTaskQueueClient,
    ConflictError,
    NewWebhook,
    NotFoundError,
    TaskQueueClient,
    ValidationError,
    Webhook,
    WebhookDelivery,
)
from tests.conftest import ServerProcess, free_port
from tests.receivers import Receiver, start_receiver
from tests.sdk.blocking import Blocking

MISSING = "00000000-0000-0000-0000-000000000000"
QUIET = ["task.failed"]


@pytest.fixture(scope="module")
def hooks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("webhooks-sdk")
    server = ServerProcess(
        db=root / "tq.db",
        port=free_port(),
        log=root / "server.log",
        args=["--workers", "0", "--webhook-allow-private"],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, hooks_server: ServerProcess) -> Iterator[Any]:
    if request.param == "sync":
        with TaskQueueClient(hooks_server.url, retry_attempts=0) as sync_client:
            yield sync_client
        return
    loop = asyncio.new_event_loop()
    async_client = AsyncTaskQueueClient(hooks_server.url, retry_attempts=0)
    try:
        yield Blocking(async_client, loop)
    finally:
        loop.run_until_complete(async_client.close())
        loop.close()


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(port: int, *secrets: str) -> Receiver:
        args = [arg for secret in secrets for arg in ("--secret", secret)]
        receiver = start_receiver(tmp_path / "receivers", port, *args)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def test_crud_round_trip(client: Any) -> None:
    made = client.create_webhook(
        "https://hooks.example.com/tq", event_types=["task.failed", "task.*"], description="ops"
    )
    assert isinstance(made, NewWebhook)
    assert made.secret.startswith("whsec_")
    assert made.url == "https://hooks.example.com/tq"
    assert sorted(made.event_types) == ["task.*", "task.failed"]
    assert made.description == "ops"
    assert made.enabled is True
    assert made.project_id is None

    got = client.get_webhook(made.id)
    assert type(got) is Webhook
    assert got.id == made.id
    assert got.url == made.url
    assert [h.id for h in client.list_webhooks(limit=1000).webhooks].count(made.id) == 1

    updated = client.update_webhook(made.id, enabled=False)
    assert updated.enabled is False
    assert updated.description == "ops"  # not given: unchanged
    assert updated.url == made.url
    updated = client.update_webhook(made.id, url="https://other.example.com/", description=None)
    assert updated.url == "https://other.example.com/"
    assert updated.description is None
    assert updated.enabled is False
    updated = client.update_webhook(made.id, event_types=["*"], enabled=True)
    assert updated.event_types == ["*"]
    assert updated.enabled is True

    assert client.delete_webhook(made.id) is None
    with pytest.raises(NotFoundError):
        client.get_webhook(made.id)
    with pytest.raises(NotFoundError):
        client.delete_webhook(made.id)


def test_the_secret_is_shown_once(client: Any) -> None:
    made = client.create_webhook("https://hooks.example.com/once", event_types=QUIET)
    got = client.get_webhook(made.id)
    assert not hasattr(got, "secret")
    assert "secret" not in got.model_dump()
    listed = next(h for h in client.list_webhooks(limit=1000).webhooks if h.id == made.id)
    assert "secret" not in listed.model_dump()
    updated = client.update_webhook(made.id, description="changed")
    assert "secret" not in updated.model_dump()
    client.delete_webhook(made.id)


def test_a_project_subscription(client: Any) -> None:
    project = client.create_project(f"hooks-{uuid.uuid4().hex[:8]}")
    made = client.create_webhook(
        "https://hooks.example.com/p", project_id=project.id, event_types=QUIET, enabled=False
    )
    assert made.project_id == project.id
    assert made.enabled is False
    client.delete_webhook(made.id)
    client.delete_project(project.id)


def test_listing_pages(client: Any) -> None:
    made = [
        client.create_webhook(f"https://hooks.example.com/page/{i}", event_types=QUIET)
        for i in range(3)
    ]
    everything = client.list_webhooks(limit=1000)
    assert everything.total >= 3
    second = client.list_webhooks(limit=1, offset=1)
    assert second.limit == 1
    assert second.offset == 1
    assert [h.id for h in second.webhooks] == [everything.webhooks[1].id]
    for hook in made:
        client.delete_webhook(hook.id)


def test_rotation_gives_a_new_secret_and_keeps_the_old_one_for_the_grace(client: Any) -> None:
    made = client.create_webhook("https://hooks.example.com/rotate", event_types=QUIET)
    assert made.previous_secret_until is None
    rotated = client.rotate_webhook_secret(made.id, grace_seconds=600)
    assert isinstance(rotated, NewWebhook)
    assert rotated.secret.startswith("whsec_")
    assert rotated.secret != made.secret
    assert rotated.previous_secret_until is not None
    assert rotated.previous_secret_until > rotated.updated_at
    assert client.get_webhook(made.id).previous_secret_until == rotated.previous_secret_until
    default = client.rotate_webhook_secret(made.id)  # the server's grace: a day
    assert default.secret not in (made.secret, rotated.secret)
    assert default.previous_secret_until is not None
    assert default.previous_secret_until > rotated.previous_secret_until
    client.delete_webhook(made.id)


def test_test_send_and_redelivery_are_logged_newest_first(
    client: Any, receivers: Callable[..., Receiver]
) -> None:
    port = free_port()
    made = client.create_webhook(f"http://127.0.0.1:{port}/", event_types=QUIET)
    receiver = receivers(port, made.secret)

    sent = client.test_webhook(made.id)
    assert isinstance(sent, WebhookDelivery)
    assert sent.status == "delivered", sent.error
    assert sent.response_code == 204
    assert sent.manual is True
    assert sent.event_type == "webhook.test"
    assert sent.webhook_id == made.id
    assert sent.request["url"] == made.url
    arrived = receiver.events("*")
    assert [int(e["id"]) for e in arrived] == [sent.event_id]
    assert arrived[0]["type"] == "webhook.test"

    again = client.redeliver_webhook(made.id, sent.event_id)
    assert again.status == "delivered", again.error
    assert again.manual is True
    assert again.event_id == sent.event_id
    # The same webhook-id: the receiver acknowledges it (200) and does not run it twice.
    assert again.response_code == 200
    assert [int(e["id"]) for e in receiver.events("*")] == [sent.event_id]

    page = client.list_webhook_deliveries(made.id)
    assert page.total == 2
    assert [d.id for d in page.deliveries] == [again.id, sent.id]  # newest first
    assert all(d.status == "delivered" for d in page.deliveries)
    one = client.list_webhook_deliveries(made.id, limit=1, offset=1)
    assert [d.id for d in one.deliveries] == [sent.id]
    client.delete_webhook(made.id)


def test_a_failed_send_is_an_answer_not_an_exception(client: Any) -> None:
    made = client.create_webhook(f"http://127.0.0.1:{free_port()}/", event_types=QUIET)
    sent = client.test_webhook(made.id)  # nothing listens there
    assert sent.status == "failed"
    assert sent.response_code is None
    assert sent.error
    assert client.list_webhook_deliveries(made.id).deliveries[0].id == sent.id
    client.delete_webhook(made.id)


def test_the_rotated_secret_signs_what_a_receiver_with_only_it_accepts(
    client: Any, receivers: Callable[..., Receiver]
) -> None:
    port = free_port()
    made = client.create_webhook(f"http://127.0.0.1:{port}/", event_types=QUIET)
    rotated = client.rotate_webhook_secret(made.id, grace_seconds=0)
    receivers(port, rotated.secret)
    assert client.test_webhook(made.id).status == "delivered"
    client.delete_webhook(made.id)


def test_refusals(client: Any) -> None:
    with pytest.raises(ValidationError, match="url"):
        client.create_webhook("ftp://hooks.example.com/")
    with pytest.raises(ValidationError, match="event_types"):
        client.create_webhook("https://hooks.example.com/", event_types=["task.bogus"])
    with pytest.raises(ValidationError, match="grace_seconds"):
        client.rotate_webhook_secret(MISSING, grace_seconds=-1)
    with pytest.raises(ValidationError, match="event_id"):
        client.redeliver_webhook(MISSING, 0)
    for call in (
        lambda: client.get_webhook(MISSING),
        lambda: client.update_webhook(MISSING, enabled=False),
        lambda: client.rotate_webhook_secret(MISSING),
        lambda: client.list_webhook_deliveries(MISSING),
        lambda: client.test_webhook(MISSING),
        lambda: client.redeliver_webhook(MISSING, 1),
    ):
        with pytest.raises(NotFoundError):
            call()
    made = client.create_webhook("https://hooks.example.com/none", event_types=QUIET)
    with pytest.raises(ConflictError, match="no event"):
        client.redeliver_webhook(made.id, 2**62)
    client.delete_webhook(made.id)


def test_the_async_client_natively(
    hooks_server: ServerProcess, receivers: Callable[..., Receiver]
) -> None:
    """A round trip written as a user of the async client writes it, to a live receiver."""
    port = free_port()

    async def main() -> tuple[NewWebhook, WebhookDelivery, int, str | None]:
        async with AsyncTaskQueueClient(hooks_server.url, retry_attempts=0) as client:
            made = await client.create_webhook(f"http://127.0.0.1:{port}/", event_types=QUIET)
            await asyncio.to_thread(receivers, port, made.secret)
            sent = await client.test_webhook(made.id)
            page = await client.list_webhook_deliveries(made.id)
            updated = await client.update_webhook(made.id, description="async")
            await client.delete_webhook(made.id)
            return made, sent, page.total, updated.description

    made, sent, total, description = asyncio.run(main())
    assert made.secret.startswith("whsec_")
    assert sent.status == "delivered", sent.error
    assert total == 1
    assert description == "async"
