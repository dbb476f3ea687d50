"""Events on NATS: the subjects the server publishes them on, and a subscriber that reads them.

A server started with ``taskqueue server --nats-url nats://...`` publishes every event (see
:mod:`taskqueue.events`) to the subject ``taskqueue.<project>.<type>``: the project's id, or
``_`` for an event of no project, then the event type's own tokens, so ``task.completed`` in
project ``p`` is ``taskqueue.p.task.completed``. The payload is the event envelope as JSON,
plus ``timestamp`` (the event's ``time``) and ``service`` (``"taskqueue"``); the header
``Nats-Msg-Id`` is the event id, so a JetStream stream drops a copy published twice::

    from taskqueue.nats import subscribe

    async for event in subscribe("nats://127.0.0.1:4222", project=p, types=["task.failed"]):
        print(event.id, event.type, event.task_id)

The subject rules and the payload are pure functions here, shared with the server's publisher
(:mod:`taskqueue.integrations.nats`). Only :func:`subscribe` needs ``nats-py``: install
``taskqueue-sdk[nats]``. Nothing here imports the server or the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from taskqueue.events import Event

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = [
    "MSG_ID_HEADER",
    "NO_PROJECT",
    "SERVICE",
    "SUBJECT_PREFIX",
    "check_token",
    "describe_servers",
    "message_for",
    "server_secrets",
    "subject_for",
    "subjects_for",
    "subscribe",
]

#: The first token of every subject the server publishes to.
SUBJECT_PREFIX = "taskqueue"
#: The project token of an event that belongs to no project (a key's, an auth failure's).
NO_PROJECT = "_"
#: The ``service`` field of every payload: who published it.
SERVICE = "taskqueue"
#: The header JetStream deduplicates by: the event id.
MSG_ID_HEADER = "Nats-Msg-Id"

#: Characters a subject token may not hold: the separator and the wildcards.
_SPECIAL = frozenset(".*>")
#: How many events :func:`subscribe` holds for a caller that is slower than the stream.
_BACKLOG = 1024
#: Seconds one fetch from a durable consumer waits for an event before it asks again.
_FETCH_WAIT_S = 5.0


def check_token(token: str, what: str = "subject token") -> str:
    """``token`` if it can stand as one token of a NATS subject, else a ValueError naming it.

    A token is not empty and holds no whitespace or control character, no ``.`` (the
    separator) and no ``*`` or ``>`` (the wildcards).
    """
    if not token:
        raise ValueError(f"{what} is empty")
    for char in token:
        if char in _SPECIAL or char.isspace() or not char.isprintable():
            raise ValueError(f"{what} {token!r} holds {char!r}, which a NATS subject token cannot")
    return token


def _project_token(project_id: str | None) -> str:
    return NO_PROJECT if project_id is None else check_token(project_id, "project id")


def subject_for(project_id: str | None, type: str) -> str:
    """The subject the server publishes an event of ``type`` in ``project_id`` to.

    ``subject_for("p1", "task.completed") == "taskqueue.p1.task.completed"``; an event of no
    project goes to ``taskqueue._.<type>``. A ValueError names a token a subject cannot hold.
    """
    tokens = type.split(".")
    for token in tokens:
        check_token(token, f"event type {type!r} token")
    return ".".join([SUBJECT_PREFIX, _project_token(project_id), *tokens])


def subjects_for(project: str | None = None, types: Sequence[str] | None = None) -> list[str]:
    """The subjects that carry the events of ``project`` whose type is one of ``types``.

    ``project`` None is every project, events of none included; ``types`` None (or ``*``) is
    every type. A type may name a family: ``task.*`` is every task event. A ValueError names
    a token a subject cannot hold.
    """
    head = f"{SUBJECT_PREFIX}.{'*' if project is None else _project_token(project)}"
    if not types or "*" in types:
        return [f"{head}.>"]
    subjects: list[str] = []
    for pattern in types:
        tokens = pattern.split(".")
        # A family's last token is the wildcard; every other token is checked as it stands.
        family = len(tokens) > 1 and tokens[-1] == "*"
        for token in tokens[:-1] if family else tokens:
            check_token(token, f"event type {pattern!r} token")
        subjects.append(".".join([head, *tokens]))
    return list(dict.fromkeys(subjects))


def message_for(event: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """The subject, payload and headers the server publishes ``event`` (a wire envelope) with.

    The payload is the envelope plus ``timestamp`` (its ``time``) and ``service``, the same
    bytes every time the event is published; the ``Nats-Msg-Id`` header is its id.
    """
    subject = subject_for(event.get("project_id"), str(event["type"]))
    body = {
        **event,
        "trace_id": event.get("trace_id"),
        "timestamp": event["time"],
        "service": SERVICE,
    }
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
    return subject, payload.encode(), {MSG_ID_HEADER: str(event["id"])}


def _servers(url: str) -> list[str]:
    return [part.strip() for part in url.split(",") if part.strip()]


def describe_servers(url: str) -> str:
    """``url`` (one NATS URL or several, comma-separated) with its credentials as ``***``."""
    shown = []
    for server in _servers(url):
        scheme, sep, rest = server.rpartition("://")
        _, at, host = rest.rpartition("@")
        shown.append(f"{scheme}{sep}***@{host}" if at else server)
    return ",".join(shown)


def server_secrets(url: str) -> list[str]:
    """The credentials in ``url`` (a token, or a user's password), as written and decoded."""
    secrets: list[str] = []
    for server in _servers(url):
        with contextlib.suppress(ValueError):
            parts = urlsplit(server if "://" in server else f"nats://{server}")
            for value in (parts.password, None if parts.password else parts.username):
                if value:
                    secrets += [value, unquote(value)]
    return list(dict.fromkeys(secrets))


async def subscribe(
    url: str,
    *,
    project: str | None = None,
    types: Sequence[str] | None = None,
    queue: str | None = None,
    durable: str | None = None,
) -> AsyncIterator[Event]:
    """Yield the events published on NATS at ``url`` for ``project`` and ``types``, as they come.

    ``project`` None hears every project; ``types`` None every type, and a type may name a
    family (``task.*``). Without ``durable``, only the events published while subscribed
    arrive; ``queue`` joins a queue group, so that each event goes to one member of it.

    ``durable`` reads through the JetStream durable consumer of that name instead (made on
    first use; a stream must cover the subjects, see ``docs/nats.md``): it resumes where the
    consumer left off, every reader of the same consumer shares its events (so ``queue`` is
    not for it), and each event is acknowledged once the loop asks for the next one: the one
    whose handling was cut short is delivered again, after the consumer's ack wait.

    Stop by leaving the loop; the connection closes with the generator. A ValueError names a
    subject token that cannot be.
    """
    subjects = subjects_for(project, types)
    if durable is not None:
        check_token(durable, "durable consumer name")
        if queue is not None:
            raise ValueError("give queue or durable, not both: a durable consumer is shared")
    try:
        import nats
        import nats.errors
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "taskqueue.nats.subscribe needs nats-py: pip install 'taskqueue-sdk[nats]'"
        ) from exc

    connection = await nats.connect(_servers(url), name="taskqueue subscriber")
    try:
        if durable is None:
            backlog: asyncio.Queue[Msg] = asyncio.Queue(_BACKLOG)
            for subject in subjects:
                await connection.subscribe(subject, queue=queue or "", cb=backlog.put)
            while True:
                msg = await backlog.get()
                yield Event.model_validate_json(msg.data)
        else:
            from nats.js.api import ConsumerConfig

            many = subjects if len(subjects) > 1 else None
            pull = await connection.jetstream().pull_subscribe(
                subjects[0], durable=durable, config=ConsumerConfig(filter_subjects=many)
            )
            while True:
                try:
                    batch = await pull.fetch(1, timeout=_FETCH_WAIT_S)
                except nats.errors.TimeoutError:
                    continue
                for msg in batch:
                    yield Event.model_validate_json(msg.data)
                    await msg.ack()
    finally:
        await connection.close()
