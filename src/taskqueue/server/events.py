"""``GET /api/events``: the outbox as a resumable server-sent event stream, or a page of JSON.

One :class:`EventHub` per API process reads the outbox, woken by every commit that wrote
events (in this process, or another's by NOTIFY on PostgreSQL), and hands each new event to
every stream whose filters it passes: a thousand open streams cost one read per commit, not a
thousand polls. A stream that resumes from an earlier position (``Last-Event-ID`` or
``?after=``) first reads what it missed, page by page, then joins the live feed, dropping what
it has already sent, so there is no gap and no duplicate.

The hub holds the last :data:`WINDOW` events once for all streams, and each stream only its
position in them: a client that falls further behind than that is sent a ``dropped`` event
saying so and disconnected (it resumes with ``Last-Event-ID``), rather than the server
buffering for it without limit.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pydantic
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from taskqueue._fields import INT64_MAX
from taskqueue.events import EVENT_TYPES, is_event_type
from taskqueue.server.auth import Scope, principal_of
from taskqueue.server.errors import ApiError
from taskqueue.server.params import Query, parse_query
from taskqueue.server.responses import json_response, store_of
from taskqueue.store import Store
from taskqueue.store.outbox import UNOWNED_PREFIXES
from taskqueue.store.visibility import Projects

__all__ = ["EVENT_ENDPOINTS", "EVENT_SCOPES", "EventHub", "EventsQuery"]

log: logging.Logger = logging.getLogger(__name__)

#: Recent events the hub holds for every stream; one further behind is dropped as too slow.
WINDOW = 10_000
#: Shortest time between two reads of the hub: commits closer together are read at once.
COALESCE_S = 0.02
#: Events read from the database at once (by the hub, or by a stream catching up).
READ_BATCH = 500
_TYPE_NAMES = "|".join(
    re.escape(name)
    for name in sorted(
        {*EVENT_TYPES, "*", *(t.split(".")[0] + ".*" for t in EVENT_TYPES)}, key=len, reverse=True
    )
)
#: What ``types`` may be: known types and families, comma-separated.
TYPES_PATTERN = f"^({_TYPE_NAMES})(,({_TYPE_NAMES}))*$"
_EVENT_ID_RE = re.compile(r"^[0-9]{1,19}$")
#: Streams one process serves at once; more are refused with 503.
MAX_STREAMS = 10_000


class EventsQuery(Query):
    """``GET /api/events``: where to start, which events, and in which form."""

    #: Start after this position (``Last-Event-ID`` takes precedence); none: only new events.
    after: int | None = pydantic.Field(None, ge=0, le=INT64_MAX)
    project_id: str | None = pydantic.Field(None, max_length=36)
    task_id: str | None = pydantic.Field(None, max_length=36)
    #: Comma-separated event types or families (``task.completed,project.*``).
    #: The document states the pattern; the check itself names the unknown type it finds.
    types: str | None = pydantic.Field(
        None, max_length=2000, json_schema_extra={"pattern": TYPES_PATTERN}
    )
    queue: str | None = pydantic.Field(None, max_length=200)
    #: ``sse`` (the stream) or ``json`` (one page of past events).
    format: Literal["sse", "json"] = "sse"
    #: ``json``: most events in the page.
    limit: int = pydantic.Field(100, ge=1, le=1000)
    #: ``sse``: seconds between keep-alive comments when nothing happens.
    heartbeat: float = pydantic.Field(15.0, ge=0.05, le=300)
    #: ``sse``: end the stream after this many seconds with an ``end`` event (resume after
    #: its ``last_id``); 0: once what is stored was sent; none: never.
    timeout: float | None = pydantic.Field(None, ge=0, le=86_400)

    def type_list(self) -> list[str]:
        """The types asked for (empty: every type), each checked to name a type or family."""
        if self.types is None:
            return []
        names = [t.strip() for t in self.types.split(",") if t.strip()]
        for name in names:
            if not is_event_type(name):
                raise ApiError(
                    422,
                    f"query parameter types: unknown event type {name[:80]!r}",
                    [{"loc": ["query", "types"], "msg": "unknown type", "type": "value_error"}],
                )
        return names


@dataclass(frozen=True)
class Filter:
    """What one reader wants: its caller's projects and the query's filters.

    Hashable: streams that want the same events share each batch's rendering of them.
    """

    projects: Projects
    admin: bool
    project_id: str | None = None
    task_id: str | None = None
    types: tuple[str, ...] = ()
    queue: str | None = None

    def read_kwargs(self) -> dict[str, Any]:
        """The filters as :meth:`EventLog.read` takes them."""
        return {
            "projects": self.projects,
            "project_id": self.project_id,
            "task_id": self.task_id,
            "types": self.types,
            "queue": self.queue,
        }

    def visible(self, event: dict[str, Any]) -> bool:
        """Whether the caller may see ``event`` (audit events need a key for everything)."""
        if event["project_id"] is None and event["type"].startswith(UNOWNED_PREFIXES):
            return self.admin and self.projects is None
        return True

    def passes(self, event: dict[str, Any], queue: str | None) -> bool:
        """Whether a live event (of a task on ``queue``) passes every filter."""
        if self.projects is not None and event["project_id"] not in self.projects:
            return False
        if self.project_id is not None and event["project_id"] != self.project_id:
            return False
        if self.task_id is not None and event["task_id"] != self.task_id:
            return False
        if self.queue is not None and queue != self.queue:
            return False
        if self.types and "*" not in self.types:
            kind = event["type"]
            if not any(
                kind == t or (t.endswith(".*") and kind.startswith(t[:-1])) for t in self.types
            ):
                return False
        return self.visible(event)


@dataclass(eq=False)
class Subscriber:
    """One open stream: what it wants, where it joined, and its wake-up."""

    filter: Filter
    #: The hub's position when it subscribed: the stream's "new events" start after it.
    start: int = 0
    #: Why the stream must end (None: it goes on).
    dropped: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Batch:
    """Events the hub read at once, and their wire form for each filter streams asked for."""

    after: int  # the position before its first event
    events: list[dict[str, Any]]
    rendered: dict[Filter, bytes] = field(default_factory=dict)
    _blobs: list[bytes] | None = None

    @property
    def last(self) -> int:
        """The position of its last event."""
        last: int = self.events[-1]["id"]
        return last

    def blobs(self) -> list[bytes]:
        """Each event's stream block, made once however many streams send it."""
        if self._blobs is None:
            self._blobs = [_sse(e) for e in self.events]
        return self._blobs

    def render(self, flt: Filter, after: int) -> bytes:
        """The blocks of the events after ``after`` that pass ``flt``."""
        whole = after <= self.after
        if whole and flt in self.rendered:
            return self.rendered[flt]
        chunk = b"".join(
            blob
            for event, blob in zip(self.events, self.blobs(), strict=True)
            if event["id"] > after and flt.passes(event, event.get("queue"))
        )
        if whole:
            self.rendered[flt] = chunk
        return chunk


class EventHub:
    """The one reader of the outbox in an API process, and the window of recent events.

    The hub keeps the last :data:`WINDOW` events it read, once for every stream, in the
    batches it read them in; each stream only remembers its position. Streams with the same
    filters share each batch's rendering, and the hub reads at most every
    :data:`COALESCE_S` seconds, so a busy queue costs each stream one send per read, not one per
    commit. A stream that falls further behind than the window is dropped with the reason (it
    resumes with ``Last-Event-ID`` and catches up from the database), so memory stays bounded
    however slowly clients read.
    """

    def __init__(self, store: Store, *, window: int = WINDOW) -> None:
        self.store: Store = store
        #: How many recent events the hub holds for streams that lag behind.
        self.window: int = window
        self._subscribers: set[Subscriber] = set()
        self._batches: list[_Batch] = []  # the window, oldest first
        self._lasts: list[int] = []  # each batch's last position
        self._held = 0  # events in the window
        self._floor = 0  # the window holds every event after this position
        self._head: int | None = None  # the last position read
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def streams(self) -> int:
        """How many streams are open."""
        return len(self._subscribers)

    def check_capacity(self) -> None:
        """Raise the 503 a new stream gets when the server is stopping or full."""
        if self._closed:
            raise ApiError(503, "the server is shutting down")
        if len(self._subscribers) >= MAX_STREAMS:
            raise ApiError(503, f"this server already serves {MAX_STREAMS} event streams")

    async def subscribe(self, flt: Filter) -> Subscriber:
        """A new stream, fed every event after the hub's current head."""
        self.check_capacity()
        if self._head is None:
            _, last = await self.store.events.bounds()
            if self._head is None:
                self._head = self._floor = last or 0
        sub = Subscriber(flt, start=self._head)
        self._subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="taskqueue-event-hub")
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a stream that ended."""
        self._subscribers.discard(sub)

    def since(self, position: int) -> list[_Batch] | None:
        """The batches holding events after ``position``.

        None if the window no longer reaches back there.
        """
        if position < self._floor:
            return None
        return self._batches[bisect.bisect_right(self._lasts, position) :]

    def close(self) -> None:
        """End every stream (the server is stopping) and stop reading."""
        self._closed = True
        self._drop_all("the server is shutting down; resume with Last-Event-ID")
        if self._task is not None:
            self._task.cancel()

    def _drop_all(self, reason: str) -> None:
        for sub in list(self._subscribers):
            sub.dropped = sub.dropped or reason
            sub.wake.set()
        self._subscribers.clear()

    async def _run(self) -> None:
        signal = self.store.events.signal()
        loop = asyncio.get_running_loop()
        try:
            while self._subscribers:
                read_at = loop.time()
                await self._read_new()
                await signal.wait()
                pause = COALESCE_S - (loop.time() - read_at)
                if pause > 0:  # a busy queue: gather the next commits into one read
                    await asyncio.sleep(pause)
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a database outage: the streams end
            log.exception("the event stream reader stopped")
            self._drop_all("the server could not read events; resume with Last-Event-ID")
        finally:
            signal.close()
            if not self._subscribers:  # the next stream's "new events" start at the log's end
                self._head = None
                self._batches, self._lasts, self._held = [], [], 0

    async def _read_new(self) -> None:
        while self._subscribers:
            head = self._head or 0
            events = await self.store.events.read(head, READ_BATCH, with_queue=True)
            if not events:
                return
            batch = _Batch(head, events)
            self._head = batch.last
            self._batches.append(batch)
            self._lasts.append(batch.last)
            self._held += len(events)
            while self._held - len(self._batches[0].events) >= self.window:
                gone = self._batches.pop(0)
                self._lasts.pop(0)
                self._held -= len(gone.events)
                self._floor = gone.last
            for sub in self._subscribers:
                sub.wake.set()
            if len(events) < READ_BATCH:
                return
            await asyncio.sleep(0)  # let the streams send what came before reading on


def _sse(event: dict[str, Any]) -> bytes:
    body = {k: v for k, v in event.items() if k != "queue"}
    return b"id: %d\ndata: %s\n\n" % (event["id"], orjson.dumps(body))


def _control(name: str, data: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data))


def _filter_of(request: Request, query: EventsQuery) -> Filter:
    principal = principal_of(request)
    return Filter(
        projects=principal.projects,
        admin=principal.allows(Scope.ADMIN),
        project_id=query.project_id,
        task_id=query.task_id,
        types=tuple(query.type_list()),
        queue=query.queue,
    )


def _start(request: Request, query: EventsQuery) -> int | None:
    """Where to start: ``Last-Event-ID``, else ``?after=``, else None (only new events)."""
    last = request.headers.get("last-event-id")
    if last is None or last == "":
        return query.after
    if not _EVENT_ID_RE.match(last):
        raise ApiError(
            422,
            "header Last-Event-ID: must be an event id (decimal digits)",
            [{"loc": ["header", "Last-Event-ID"], "msg": "not an event id", "type": "int"}],
        )
    return min(int(last), INT64_MAX)


async def events_endpoint(request: Request) -> Response:
    """``GET /api/events``: the stream (``text/event-stream``) or a JSON page."""
    query = parse_query(request, EventsQuery)
    flt = _filter_of(request, query)
    after = _start(request, query)
    store = store_of(request)
    if query.format == "json":
        return await _page(store, flt, after or 0, query.limit)
    hub: EventHub = request.app.state.events
    hub.check_capacity()
    loop = asyncio.get_running_loop()
    deadline = None if query.timeout is None else loop.time() + query.timeout
    return StreamingResponse(
        _stream(store, hub, flt, after, (query.heartbeat, deadline), request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _page(store: Store, flt: Filter, after: int, limit: int) -> Response:
    events = await store.events.read(after, limit, **flt.read_kwargs())
    first, last = await store.events.bounds()
    items = [e for e in events if flt.visible(e)]
    next_after = events[-1]["id"] if events else after
    return json_response(
        {"items": items, "next_after": next_after, "first_id": first, "last_id": last}
    )


async def _catch_up(
    store: Store, flt: Filter, after: int
) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    """Pages of the events after ``after`` already stored, with the position each reaches."""
    position = after
    while True:
        events = await store.events.read(position, READ_BATCH, **flt.read_kwargs())
        if not events:
            return
        position = events[-1]["id"]
        yield position, [e for e in events if flt.visible(e)]
        if len(events) < READ_BATCH:
            return


async def _stream(
    store: Store,
    hub: EventHub,
    reader: Subscriber | Filter,
    after: int | None,
    timing: tuple[float, float | None],
    disconnected: Callable[[], Any],
) -> AsyncIterator[bytes]:
    """The stream's bytes: missed events, then live ones, with keep-alive comments.

    ``reader``: a subscriber, or the filter of one to subscribe here, once the answer is being
    sent (so a client gone before that leaves nothing subscribed). ``timing``: seconds between
    keep-alive comments, and when to end (loop time; None: never).
    """
    sub = reader if isinstance(reader, Subscriber) else await hub.subscribe(reader)
    try:
        # The position the stream starts from, as an id without data: a client that must
        # reconnect before any event arrives resumes from there (EventSource does).
        position = sub.start if after is None else after
        yield b": connected\nretry: 1000\nid: %d\n\n" % position
        if after is not None:
            first, last = await store.events.bounds()
            if after > (last or 0):  # a position this log never reached: it was reset
                position = last or 0
            if first is not None and after + 1 < first:
                yield _control(
                    "pruned",
                    {
                        "after": after,
                        "first_id": first,
                        "message": f"events after {after} up to {first - 1} were pruned "
                        "(past the retention); the stream goes on from the oldest kept",
                    },
                )
            async for reached, events in _catch_up(store, sub.filter, position):
                position = reached
                if events:
                    yield b"".join(_sse(e) for e in events)
            # Every event up to where the stream joined the hub was in the database it read:
            # the live feed goes on from there (a filter may have matched none of the last).
            position = max(position, sub.start)
        async for chunk in _live(hub, sub, position, timing, disconnected):
            yield chunk
    finally:
        hub.unsubscribe(sub)


async def _live(
    hub: EventHub,
    sub: Subscriber,
    position: int,
    timing: tuple[float, float | None],
    disconnected: Callable[[], Any],
) -> AsyncIterator[bytes]:
    heartbeat, deadline = timing
    loop = asyncio.get_running_loop()
    flt = sub.filter
    while sub.dropped is None:
        batches = hub.since(position)
        if batches is None:
            sub.dropped = (
                f"the client read too slowly: more than {hub.window} events behind; "
                "resume with Last-Event-ID"
            )
            break
        if batches:
            chunk = b"".join(batch.render(flt, position) for batch in batches)
            position = batches[-1].last
            if chunk:
                yield chunk
            continue
        wait = heartbeat
        if deadline is not None:
            wait = min(wait, deadline - loop.time())
            if wait <= 0:
                yield _control("end", {"reason": "timeout", "last_id": position})
                return
        sub.wake.clear()
        woke = False
        with contextlib.suppress(asyncio.TimeoutError):
            woke = await asyncio.wait_for(sub.wake.wait(), wait)
        if not woke and await disconnected():
            return
        if not woke:
            yield b": keep-alive\n\n"
    yield _control("dropped", {"reason": sub.dropped, "last_id": position})


#: The paths of this module and their handlers.
EVENT_ENDPOINTS: dict[str, dict[str, Callable[[Request], Any]]] = {
    "/api/events": {"GET": events_endpoint},
}
#: The scope each needs.
EVENT_SCOPES: dict[str, dict[str, Scope]] = {"/api/events": {"GET": Scope.READ}}
