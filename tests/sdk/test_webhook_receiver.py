"""The SDK's webhook receiver: ``WebhookHandler`` answering real requests.

In process first (``httpx.ASGITransport``, and mounted in a Starlette app), for the answers and
the dispatch rules; then the issue's end-to-end test: the SDK's own ``WebhookHandler`` served
by uvicorn in a subprocess (``tests/webhook_receiver.py``), sent signed requests over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from taskqueue.events import Event
from taskqueue.webhooks import (
    InvalidSignatureError,
    StaleTimestampError,
    WebhookHandler,
    generate_secret,
    sign,
)
from tests.conftest import free_port
from tests.receivers import Receiver, start_receiver

SECRET = generate_secret()
_ids = iter(range(1, 1_000_000))


PROJECT = "0195e0c6-1c5a-7000-8000-00000000000a"
OTHER_PROJECT = "0195e0c6-1c5a-7000-8000-00000000000c"
TASK = "0195e0c6-1c5a-7000-8000-00000000000b"


def event(event_type: str = "task.completed", **fields: Any) -> dict[str, Any]:
    """An event envelope as the server writes it, with a fresh id."""
    return {
        "id": next(_ids),
        "type": event_type,
        "time": "2027-01-15T08:00:00Z",
        "project_id": PROJECT,
        "task_id": "0195e0c6-1c5a-7000-8000-00000000000b"
        if event_type.startswith("task.")
        else None,
        "data": {"status": "Completed"},
        **fields,
    }


def signed(
    body: bytes,
    *secrets: str,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The three headers of a delivery of ``body``, signed with each of ``secrets``."""
    msg_id = msg_id or f"msg_{time.monotonic_ns()}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign(s, msg_id, timestamp, body) for s in secrets or (SECRET,)
        ),
        "content-type": "application/json",
    }


def body_of(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode()


# -- in process ---------------------------------------------------------------------------


def post(app: Any, body: bytes, headers: dict[str, str], path: str = "/") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(go())


def test_each_event_goes_to_the_handlers_of_its_type_in_order() -> None:
    hooks = WebhookHandler(SECRET)
    calls: list[tuple[str, int, str]] = []

    @hooks.on("*")
    async def first(event: Event) -> None:
        calls.append(("*", event.id, event.type))

    @hooks.on_task_completed
    async def completed(event: Event) -> None:
        calls.append(("completed", event.id, event.type))

    @hooks.on_task_failed
    def failed(event: Event) -> None:
        calls.append(("failed", event.id, event.type))

    @hooks.on_task_started
    def started(event: Event) -> None:
        calls.append(("started", event.id, event.type))

    @hooks.on_task_cancelled
    def cancelled(event: Event) -> None:
        calls.append(("cancelled", event.id, event.type))

    @hooks.on("task.*")
    def family(event: Event) -> None:
        calls.append(("task.*", event.id, event.type))

    @hooks.on("project.created")
    async def project(event: Event) -> None:
        calls.append(("project.created", event.id, event.type))

    expected = {
        "task.completed": ["*", "completed", "task.*"],
        "task.failed": ["*", "failed", "task.*"],
        "task.started": ["*", "started", "task.*"],
        "task.cancelled": ["*", "cancelled", "task.*"],
        "task.retrying": ["*", "task.*"],
        "project.created": ["*", "project.created"],
        "key.revoked": ["*"],
    }
    for event_type, names in expected.items():
        envelope = event(event_type)
        calls.clear()
        answer = post(hooks.app, body_of(envelope), signed(body_of(envelope)))
        assert answer.status_code == 204, answer.text
        assert calls == [(name, envelope["id"], event_type) for name in names]


def test_the_decorators_return_the_function_and_refuse_typos() -> None:
    hooks = WebhookHandler(SECRET)

    def done(event: Event) -> None: ...

    assert hooks.on_task_completed(done) is done
    assert hooks.handlers_for("task.completed") == [done]
    assert hooks.handlers_for("task.failed") == []
    with pytest.raises(ValueError, match=r"task\.complete"):
        hooks.on("task.complete")
    with pytest.raises(ValueError, match="nope"):
        hooks.on("nope.*")


def test_plain_handlers_run_in_a_thread_coroutines_on_the_loop() -> None:
    hooks = WebhookHandler(SECRET)
    where: dict[str, int] = {}

    @hooks.on_task_failed
    def plain(event: Event) -> None:
        where["plain"] = threading.get_ident()

    @hooks.on_task_failed
    async def coroutine(event: Event) -> None:
        where["coroutine"] = threading.get_ident()

    envelope = event("task.failed")
    assert post(hooks.app, body_of(envelope), signed(body_of(envelope))).status_code == 204
    assert where["coroutine"] == threading.get_ident()  # asyncio.run's loop: this thread
    assert where["plain"] != threading.get_ident()


def test_a_blocking_handler_does_not_block_other_deliveries() -> None:
    hooks = WebhookHandler(SECRET)
    release = threading.Event()
    order: list[str] = []

    @hooks.on_task_failed
    def slow(event: Event) -> None:
        # Waits until the other delivery was answered: on the loop's thread, it never would be.
        assert release.wait(10), "the event loop was blocked by a plain handler"
        order.append("slow")

    @hooks.on_task_completed
    async def quick(event: Event) -> None:
        order.append("quick")

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=hooks.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            failed, completed = body_of(event("task.failed")), body_of(event("task.completed"))
            first = asyncio.create_task(client.post("/", content=failed, headers=signed(failed)))
            await asyncio.sleep(0.05)
            second = await client.post("/", content=completed, headers=signed(completed))
            release.set()
            return [(await first).status_code, second.status_code]

    assert asyncio.run(go()) == [204, 204]
    assert order == ["quick", "slow"]


def test_a_failing_handler_answers_500_and_the_retry_runs_it_again() -> None:
    hooks = WebhookHandler(SECRET)
    runs: list[int] = []

    @hooks.on_task_completed
    def flaky(event: Event) -> None:
        runs.append(event.id)
        if len(runs) == 1:
            raise RuntimeError("database down: secret detail")

    envelope = event()
    body = body_of(envelope)
    headers = signed(body, msg_id="msg_flaky")
    failed = post(hooks.app, body, headers)
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "handler_failed"
    assert "RuntimeError" in failed.text
    assert "secret detail" not in failed.text
    # Not marked as handled: the sender's retry (same id, signed again later) runs it again.
    retry = signed(body, msg_id="msg_flaky", timestamp=int(time.time()) + 1)
    assert post(hooks.app, body, retry).status_code == 204
    assert post(hooks.app, body, retry).status_code == 200
    assert runs == [envelope["id"], envelope["id"]]


def test_a_repeated_webhook_id_is_acknowledged_and_not_dispatched_again() -> None:
    hooks = WebhookHandler(SECRET)
    runs: list[int] = []

    @hooks.on("*")
    async def record(event: Event) -> None:
        runs.append(event.id)

    body = body_of(event())
    headers = signed(body, msg_id="msg_once")
    assert post(hooks.app, body, headers).status_code == 204
    again = post(hooks.app, body, headers)
    assert (again.status_code, again.json()) == (200, {"duplicate": True})
    assert len(runs) == 1
    # Another id is another delivery, even with the same body.
    assert post(hooks.app, body, signed(body, msg_id="msg_other")).status_code == 204
    assert len(runs) == 2


def test_a_delivery_in_flight_is_not_run_twice_at_once() -> None:
    hooks = WebhookHandler(SECRET)
    runs: list[int] = []

    async def go() -> list[int]:
        entered, release = asyncio.Event(), asyncio.Event()

        @hooks.on_task_completed
        async def slow(event: Event) -> None:
            runs.append(event.id)
            entered.set()
            await asyncio.wait_for(release.wait(), 10)

        body = body_of(event())
        headers = signed(body, msg_id="msg_slow")
        transport = httpx.ASGITransport(app=hooks.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            first = asyncio.create_task(client.post("/", content=body, headers=headers))
            await asyncio.wait_for(entered.wait(), 10)
            meanwhile = await client.post("/", content=body, headers=headers)
            assert meanwhile.json()["error"]["type"] == "in_flight"
            assert meanwhile.headers["retry-after"] == "5"
            release.set()
            done = await first
            after = await client.post("/", content=body, headers=headers)
            return [meanwhile.status_code, done.status_code, after.status_code]

    assert asyncio.run(go()) == [409, 204, 200]
    assert len(runs) == 1


def test_refusals_answer_json_errors_and_dispatch_nothing() -> None:
    hooks = WebhookHandler(SECRET, max_body=2048)
    runs: list[int] = []

    @hooks.on("*")
    def record(event: Event) -> None:
        runs.append(event.id)

    body = body_of(event())
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (
            body.replace(
                b"0195e0c6-1c5a-7000-8000-00000000000a", b"0195e0c6-1c5a-7000-8000-00000000000c"
            ),
            signed(body),
            401,
            "invalid_signature",
        ),
        (body, signed(body, generate_secret()), 401, "invalid_signature"),
        (body, signed(body, timestamp=int(time.time()) - 400), 401, "stale_timestamp"),
        (body, signed(body, timestamp=int(time.time()) + 400), 401, "stale_timestamp"),
        (body, {"webhook-id": "x", "webhook-timestamp": "1"}, 400, "malformed_webhook"),
        (b"{}", signed(b"{}"), 400, "malformed_webhook"),
        (b"x" * 2049, signed(b"x" * 2049), 413, "payload_too_large"),
    ]
    for payload, headers, status, kind in cases:
        answer = post(hooks.app, payload, headers)
        assert (answer.status_code, answer.json()["error"]["type"]) == (status, kind), payload
        assert answer.headers["content-type"] == "application/json"
    assert runs == []


def test_only_post_at_its_path() -> None:
    hooks = WebhookHandler(SECRET, path="/hooks/taskqueue")

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=hooks.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            body = body_of(event())
            return [
                await client.get("/hooks/taskqueue"),
                await client.put("/hooks/taskqueue", content=body, headers=signed(body)),
                await client.post("/", content=body, headers=signed(body)),
                await client.post("/hooks/taskqueue/", content=body, headers=signed(body)),
            ]

    get, put, elsewhere, posted = asyncio.run(go())
    assert (get.status_code, get.headers["allow"]) == (405, "POST")
    assert put.status_code == 405
    assert elsewhere.status_code == 404
    assert posted.status_code == 204


def test_handle_serves_any_framework() -> None:
    hooks = WebhookHandler([generate_secret(), SECRET])
    got: list[Event] = []

    @hooks.on_task_completed
    def done(event: Event) -> None:
        got.append(event)

    body = body_of(event())
    headers = {k.upper(): v for k, v in signed(body, msg_id="msg_h").items()}
    receipt = asyncio.run(hooks.handle(body, headers))
    assert (receipt.outcome, receipt.status_code, receipt.handlers) == ("handled", 204, 1)
    assert (receipt.webhook_id, receipt.event) == ("msg_h", got[0])
    again = asyncio.run(hooks.handle(body.decode(), headers))
    assert (again.outcome, again.status_code, again.handlers) == ("duplicate", 200, 0)
    with pytest.raises(InvalidSignatureError):
        asyncio.run(hooks.handle(body + b" ", headers))
    with pytest.raises(StaleTimestampError):
        asyncio.run(hooks.handle(body, signed(body, timestamp=1)))
    assert len(got) == 1


def test_handle_from_many_threads_runs_one_delivery_once() -> None:
    # As a threaded WSGI server calling asyncio.run(hooks.handle(...)) per request would.
    hooks = WebhookHandler(SECRET)
    runs: list[int] = []

    @hooks.on_task_completed
    def done(event: Event) -> None:
        time.sleep(0.05)  # long enough for the others to arrive while it is in hand
        runs.append(event.id)

    body = body_of(event())
    headers = signed(body, msg_id="msg_threads")
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def deliver_once() -> None:
        start.wait(10)
        outcomes.append(asyncio.run(hooks.handle(body, headers)).outcome)

    threads = [threading.Thread(target=deliver_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(runs) == 1
    assert sorted(outcomes).count("handled") == 1
    assert set(outcomes) <= {"handled", "duplicate", "in_flight"}
    assert len(outcomes) == 8


def test_mounted_in_a_starlette_app() -> None:
    hooks = WebhookHandler(SECRET)
    got: list[int] = []

    @hooks.on_task_completed
    async def done(event: Event) -> None:
        got.append(event.id)

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home")

    app = Starlette(routes=[Route("/", home), Mount("/hooks", app=hooks.app)])
    envelope = event()
    body = body_of(envelope)

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://site") as client:
            return [
                await client.post("/hooks/", content=body, headers=signed(body)),
                await client.get("/hooks/"),
                await client.post("/hooks/", content=body + b" ", headers=signed(body)),
                await client.get("/"),
            ]

    delivered, get, tampered, home_page = asyncio.run(go())
    assert delivered.status_code == 204
    assert get.status_code == 405
    assert tampered.status_code == 401
    assert home_page.text == "home"
    assert got == [envelope["id"]]


def test_the_lifespan_is_answered() -> None:
    hooks = WebhookHandler(SECRET)

    async def go() -> list[str]:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[str] = []
        for message in ("lifespan.startup", "lifespan.shutdown"):
            inbox.put_nowait({"type": message})

        async def send(message: Any) -> None:
            sent.append(message["type"])

        await asyncio.wait_for(hooks.app({"type": "lifespan"}, inbox.get, send), 5)
        return sent

    assert asyncio.run(go()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_a_receiver_needs_sound_settings() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookHandler([])
    with pytest.raises(ValueError, match="path"):
        WebhookHandler(SECRET, path="hooks")
    with pytest.raises(ValueError, match="positive"):
        WebhookHandler(SECRET, max_body=0)


# -- served by uvicorn in a subprocess ----------------------------------------------------


@pytest.fixture(scope="module")
def receivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started: list[Receiver] = []

    def start(*args: str) -> Receiver:
        receiver = start_receiver(tmp_path_factory.mktemp("receiver"), free_port(), *args)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


OLD, NEW = generate_secret(), generate_secret()


@pytest.fixture(scope="module")
def receiver(receivers: Any) -> Receiver:
    """A receiver that knows two secrets, as during a rotation."""
    served: Receiver = receivers("--secret", OLD, "--secret", NEW)
    return served


def deliver(
    receiver: Receiver, envelope: dict[str, Any], *secrets: str, **how: Any
) -> httpx.Response:
    body = body_of(envelope)
    return httpx.post(receiver.url, content=body, headers=signed(body, *secrets, **how), timeout=10)


def test_signed_deliveries_reach_the_right_handlers(receiver: Receiver) -> None:
    expected = {
        "task.completed": ["completed", "task.*", "*"],  # a coroutine, then two others
        "task.failed": ["failed", "task.*", "*"],  # a plain function
        "task.started": ["started", "task.*", "*"],
        "task.cancelled": ["cancelled", "task.*", "*"],
        "task.created": ["task.*", "*"],
        "project.created": ["*"],
    }
    for event_type, handlers in expected.items():
        envelope = event(event_type)
        answer = deliver(receiver, envelope, NEW)
        assert answer.status_code == 204, answer.text
        assert receiver.handled(envelope["id"]) == handlers
    # The handlers were given the event as it was sent.
    [line] = [x for x in receiver.lines() if x["event"]["id"] == envelope["id"]]
    assert line["event"]["type"] == "project.created"
    assert line["event"]["project_id"] == PROJECT


def test_either_secret_of_a_rotation_is_accepted(receiver: Receiver) -> None:
    for secrets in ((OLD,), (NEW,), (OLD, NEW), (generate_secret(), NEW)):
        envelope = event("task.failed")
        assert deliver(receiver, envelope, *secrets).status_code == 204
        assert receiver.handled(envelope["id"]) == ["failed", "task.*", "*"]


def test_untrusted_deliveries_are_refused_and_not_dispatched(receiver: Receiver) -> None:
    before = len(receiver.lines())
    envelope = event()
    body = body_of(envelope)
    tampered = body.replace(b'"Completed"', b'"Failed"')
    assert tampered != body
    cases = {
        "tampered body": httpx.post(receiver.url, content=tampered, headers=signed(body, NEW)),
        "wrong secret": deliver(receiver, envelope, generate_secret()),
        "stale": deliver(receiver, envelope, NEW, timestamp=int(time.time()) - 301),
        "ahead": deliver(receiver, envelope, NEW, timestamp=int(time.time()) + 600),
        "unsigned": httpx.post(receiver.url, content=body),
    }
    statuses = {name: answer.status_code for name, answer in cases.items()}
    assert statuses == {
        "tampered body": 401,
        "wrong secret": 401,
        "stale": 401,
        "ahead": 401,
        "unsigned": 400,
    }
    assert cases["tampered body"].json()["error"]["type"] == "invalid_signature"
    assert cases["stale"].json()["error"]["type"] == "stale_timestamp"
    assert len(receiver.lines()) == before


def test_a_replayed_webhook_id_is_not_dispatched_twice(receiver: Receiver) -> None:
    envelope = event("task.completed")
    body = body_of(envelope)
    headers = signed(body, NEW, msg_id="msg_replayed")
    assert httpx.post(receiver.url, content=body, headers=headers).status_code == 204
    # The very same request again (a replay), and the sender's retry signed anew.
    replay = httpx.post(receiver.url, content=body, headers=headers)
    retry = deliver(receiver, envelope, OLD, NEW, msg_id="msg_replayed")
    assert (replay.status_code, replay.json()) == (200, {"duplicate": True})
    assert retry.status_code == 200
    assert receiver.handled(envelope["id"]) == ["completed", "task.*", "*"]


def test_the_served_receiver_answers_only_post_and_limits_the_body(receiver: Receiver) -> None:
    assert httpx.get(receiver.url).status_code == 405
    assert httpx.post(receiver.url + "/elsewhere", content=b"{}").status_code == 404

    def chunks() -> Iterator[bytes]:
        for _ in range(20):  # 1.25 MiB, no Content-Length: refused as it arrives
            yield b"x" * 65536

    big = httpx.post(receiver.url, content=chunks(), headers=signed(b""), timeout=10)
    assert big.status_code == 413


def test_a_failed_delivery_is_retried_until_it_is_handled(receivers: Any) -> None:
    flaky: Receiver = receivers("--secret", SECRET, "--fail-first", "2")
    envelope = event("task.failed")
    statuses = [deliver(flaky, envelope, msg_id="msg_flaky").status_code for _ in range(4)]
    assert statuses == [500, 500, 204, 200]
    # Twice the gate failed and nothing after it ran; then every handler, once.
    assert flaky.handled(envelope["id"]) == ["gate!", "gate!", "failed", "task.*", "*"]


def test_a_forced_status_is_answered_after_the_handlers_ran(receivers: Any) -> None:
    gone: Receiver = receivers("--secret", SECRET, "--status", "410")
    envelope = event()
    assert deliver(gone, envelope).status_code == 410
    assert deliver(gone, event(), generate_secret()).status_code == 401  # refusals stay
    assert gone.handled(envelope["id"]) == ["completed", "task.*", "*"]


def test_the_receiver_stops_cleanly_on_sigterm(receivers: Any) -> None:
    served: Receiver = receivers("--secret", SECRET)
    served.process.send_signal(signal.SIGTERM)
    # uvicorn shuts down (the lifespan too), then dies of the signal it caught, as it should.
    assert served.process.wait(10) in (0, -signal.SIGTERM)
    log = served.log.read_text()
    assert "Traceback" not in log
    assert "ERROR" not in log
