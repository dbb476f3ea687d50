"""A real webhook receiver for tests: the SDK's ``WebhookHandler`` served by uvicorn.

Run it as a script (``python tests/webhook_receiver.py --port 8081 --secret whsec_... --out
received.jsonl``); it serves until SIGTERM or SIGINT. Every handler call appends one JSON line
to the out file: ``{"handler": NAME, "ok": BOOL, "event": EVENT}``, where NAME is

* ``completed`` (``on_task_completed``, a coroutine function), ``failed`` (``on_task_failed``,
  a plain function), ``started`` (``on_task_started``, plain), ``cancelled``
  (``on_task_cancelled``, coroutine);
* ``task.*`` (``on("task.*")``, plain) and ``*`` (``on("*")``, coroutine), which see every
  task event, and every event;
* ``gate``, registered first for every event, only with ``--fail-first``: it writes
  ``"ok": false`` and raises for the first N deliveries, so they are answered 500, none of
  the other handlers runs, and the sender must try again.

Flags:

``--port PORT``
    where to listen (on ``--host``, default 127.0.0.1); required.
``--secret SECRET``
    the signing secret; repeat it for two secrets in force (a rotation); required.
``--out FILE``
    the file the handlers append their lines to; required.
``--fail-first N``
    the first N deliveries fail with 500 (default 0).
``--status CODE``
    answer every delivery the receiver accepted (204, or 200 for a repeated ``webhook-id``)
    with CODE instead, after its handlers ran: 410 to make a sender give up, 503 to make it
    retry.
``--tolerance SECONDS``
    how far a timestamp may be from the clock (default 300).
``--path PATH``
    where deliveries are POSTed (default ``/``).

It is up when ``GET`` on its path answers (405: deliveries are POSTed).
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

from taskqueue.events import Event
from taskqueue.webhooks import WebhookHandler


def build(args: argparse.Namespace) -> WebhookHandler:
    hooks = WebhookHandler(args.secret, tolerance=args.tolerance, path=args.path)
    out = Path(args.out)
    lock = threading.Lock()
    failures_left = [args.fail_first]

    def record(handler: str, event: Event, ok: bool = True) -> None:
        line = json.dumps({"handler": handler, "ok": ok, "event": event.model_dump(mode="json")})
        # Plain handlers run in threads: one whole line at a time.
        with lock, out.open("a") as file:
            file.write(line + "\n")

    if args.fail_first:

        @hooks.on("*")
        def gate(event: Event) -> None:
            with lock:
                fail = failures_left[0] > 0
                failures_left[0] -= fail
            if fail:
                record("gate", event, ok=False)
                raise RuntimeError("failing on purpose (--fail-first)")

    @hooks.on_task_completed
    async def completed(event: Event) -> None:
        record("completed", event)

    @hooks.on_task_failed
    def failed(event: Event) -> None:
        record("failed", event)

    @hooks.on_task_started
    def started(event: Event) -> None:
        record("started", event)

    @hooks.on_task_cancelled
    async def cancelled(event: Event) -> None:
        record("cancelled", event)

    @hooks.on("task.*")
    def task_family(event: Event) -> None:
        record("task.*", event)

    @hooks.on("*")
    async def everything(event: Event) -> None:
        record("*", event)

    if args.status is not None:
        hooks.app = _answering(hooks.app, args.status)
    return hooks


def _answering(app: Any, status: int) -> Any:
    """``app``, with each 2xx answer to a POST turned into ``status`` (and an empty body)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        rewritten = False

        async def rewrite(message: Any) -> None:
            nonlocal rewritten
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                rewritten = True
                message = {"type": message["type"], "status": status, "headers": []}
                if status != 204:
                    message["headers"] = [(b"content-length", b"0")]
            elif message["type"] == "http.response.body" and rewritten:
                message = {"type": message["type"], "body": b""}
            await send(message)

        await app(scope, receive, rewrite)

    return wrapped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret", action="append", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--status", type=int)
    parser.add_argument("--tolerance", type=int, default=300)
    parser.add_argument("--path", default="/")
    args = parser.parse_args(argv)
    build(args).run(port=args.port, host=args.host, log_level="warning")


if __name__ == "__main__":
    main()
