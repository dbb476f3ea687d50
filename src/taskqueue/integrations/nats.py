"""The NATS publisher: every event of the outbox, published to ``taskqueue.<project>.<type>``.

``taskqueue server --nats-url nats://...`` runs one :class:`NatsPublisher` beside the API. It
is a reader of the outbox like the others (see :mod:`taskqueue.store.eventlog`): it reads the
events after its durable cursor ``nats``, publishes them in order, and moves the cursor only
once NATS has them, so no event is lost to a NATS outage or a crash of the server:

* on a subject a JetStream stream covers, each event is published with a JetStream
  acknowledgement, and counts as handed on once the stream acknowledged it; elsewhere, by a
  core publish and a flush (the server has read it; there is no more to know);
* the cursor is written every :attr:`NatsSettings.cursor_every` events or
  :attr:`NatsSettings.cursor_interval` seconds, whichever comes first, so it costs the
  database little; a crash re-publishes at most what was published since, with the same
  ``Nats-Msg-Id`` (the event id), which a stream drops as a duplicate;
* a lost connection is retried with backoff, forever; the events of the outage wait in the
  outbox and go out once NATS is back. Tasks never wait on any of it.

The subjects and the payload are :mod:`taskqueue.nats`'s (the SDK's), so a subscriber and the
publisher agree on them by construction. Needs ``nats-py``: install ``taskqueue-sdk[nats]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import nats
import nats.errors
import nats.js.errors

from taskqueue._backoff import equal_jitter_delay
from taskqueue.nats import describe_servers, message_for, server_secrets
from taskqueue.security import redact_logs
from taskqueue.store.eventlog import POLL_INTERVAL_S

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import PubAck

    from taskqueue.store import Store
    from taskqueue.store.eventlog import EventSignal

__all__ = ["CURSOR", "NatsPublisher", "NatsSettings"]

log: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The name of the publisher's durable cursor in the event log.
CURSOR = "nats"


@dataclass(frozen=True)
class NatsSettings:
    """How the publisher batches, waits and retries."""

    #: Events read from the outbox and published at once.
    batch: int = 100
    #: Write the cursor after this many events published...
    cursor_every: int = 100
    #: ...or this many seconds after the first event it does not cover yet.
    cursor_interval: float = 0.2
    #: Seconds NATS has to acknowledge a batch (JetStream acks, or the flush of core publishes).
    ack_timeout: float = 5.0
    #: Seconds one connection attempt may take.
    connect_timeout: float = 2.0
    #: The first retry's delay after a failure, in seconds; it doubles up to ``backoff_cap``.
    backoff_base: float = 0.1
    backoff_cap: float = 5.0
    #: Seconds an answer to "which stream covers this subject" is trusted before it is asked
    #: again (a stream made later is used from then on).
    stream_ttl: float = 10.0


class NatsPublisher:
    """A :class:`~taskqueue.server.services.Service` that publishes the outbox to NATS."""

    def __init__(self, store: Store, url: str, settings: NatsSettings | None = None) -> None:
        self.store: Store = store
        #: The NATS server(s): one URL or several, comma-separated (may hold credentials).
        self.url: str = url
        self.settings: NatsSettings = settings or NatsSettings()
        #: Events published since start, and how many of them a stream already had.
        self.published: int = 0
        self.duplicates: int = 0
        # The URL may carry a token or a password: no log line of this process shows it.
        redact_logs(server_secrets(url))
        self._shown = describe_servers(url)
        self._stopping = asyncio.Event()
        self._signal: EventSignal | None = None
        self._position = 0  # the last event NATS has
        self._saved = 0  # the last event the durable cursor covers
        self._unsaved_since: float | None = None
        self._connection: Client | None = None
        self._jetstream: JetStreamContext | None = None
        self._lost: asyncio.Event | None = None  # set when the current connection closes
        self._streams: dict[str, tuple[bool, float]] = {}

    @property
    def name(self) -> str:
        """What the log calls it."""
        return "NATS publisher"

    @property
    def position(self) -> int:
        """The id of the last event NATS has acknowledged (the cursor may lag behind it)."""
        return self._position

    async def start(self) -> None:
        """Find the cursor; on the first run ever, start it at the end of the event log."""
        position = await self.store.events.cursor(CURSOR)
        if position is None:
            _, last = await self.store.events.bounds()
            position = last or 0
            await self.store.events.set_cursor(CURSOR, position)
            log.info("NATS publisher: first run, publishing the events after %d", position)
        self._position = self._saved = position
        self._signal = self.store.events.signal()

    async def run(self) -> None:
        """Publish until stopped: connect, read, publish, move the cursor; retry on failure."""
        assert self._signal is not None, "start() first"
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    await self._connect(failures)
                    await self._publish_some(self._signal)
                except _Stopped:
                    break
                except Exception as exc:
                    failures += 1
                    await self._failed(exc, failures)
                else:
                    failures = 0
        finally:
            with contextlib.suppress(Exception):  # the store may be failing too: said above
                await self._save()
            await self._disconnect()
            self._signal.close()

    def stop(self) -> None:
        """Ask :meth:`run` to write the cursor and return."""
        self._stopping.set()
        if self._signal is not None:
            self._signal.set()

    # ------------------------------------------------------------------------------ the loop

    async def _publish_some(self, signal: EventSignal) -> None:
        """Publish the next batch of events, or wait for news when there is none."""
        events = await self.store.events.read(self._position, self.settings.batch)
        if not events:
            await self._save_if_due()
            timeout = POLL_INTERVAL_S
            if self._unsaved_since is not None:
                elapsed = time.monotonic() - self._unsaved_since
                timeout = max(0.0, min(timeout, self.settings.cursor_interval - elapsed))
            await signal.wait(timeout)
            return
        first = int(events[0]["id"])
        if first > self._position + 1 and self._position > 0:
            # Positions are never skipped: the missing ones were pruned before NATS had them.
            log.warning(
                "NATS publisher: events %d to %d were pruned (retention) before they were "
                "published",
                self._position + 1,
                first - 1,
            )
        await self._send(events)
        self._position = int(events[-1]["id"])
        if self._unsaved_since is None:
            self._unsaved_since = time.monotonic()
        await self._save_if_due()

    async def _send(self, events: list[dict[str, Any]]) -> None:
        """Publish ``events`` in order; return once NATS has every one of them."""
        assert self._connection is not None
        assert self._jetstream is not None
        connection, jetstream = self._connection, self._jetstream
        acks: list[asyncio.Future[PubAck]] = []
        core = False
        for event in events:
            try:
                subject, payload, headers = message_for(event)
            except ValueError as exc:  # no subject can carry it: publishing it can never work
                log.error("NATS publisher: event %s is not published: %s", event["id"], exc)
                continue
            if len(payload) > connection.max_payload:  # the server would refuse it, every time
                log.error(
                    "NATS publisher: event %s is not published: %d bytes, over the server's "
                    "max_payload of %d",
                    event["id"],
                    len(payload),
                    connection.max_payload,
                )
                continue
            if await self._in_stream(subject):
                acks.append(await jetstream.publish_async(subject, payload, headers=headers))
            else:
                await connection.publish(subject, payload, headers=headers)
                core = True
        timeout = self.settings.ack_timeout
        if core:
            await connection.flush(timeout=max(1, round(timeout)))
        if acks:
            waiting = asyncio.wait_for(asyncio.gather(*acks), timeout)
            answers = await self._until_stopped(waiting, self._lost)
            duplicates = sum(1 for ack in answers if ack.duplicate)
            if duplicates:
                self.duplicates += duplicates
                log.info(
                    "NATS publisher: the stream already had %d of events %s to %s "
                    "(published again after a restart, dropped by Nats-Msg-Id)",
                    duplicates,
                    events[0]["id"],
                    events[-1]["id"],
                )
        self.published += len(events)

    async def _in_stream(self, subject: str) -> bool:
        """Whether a JetStream stream covers ``subject`` (asked once per ``stream_ttl``)."""
        now = time.monotonic()
        known = self._streams.get(subject)
        if known is not None and now - known[1] < self.settings.stream_ttl:
            return known[0]
        assert self._connection is not None
        assert self._jetstream is not None
        try:
            await self._jetstream.find_stream_name_by_subject(subject)
            covered = True
        except nats.js.errors.NotFoundError:
            covered = False
        except nats.js.errors.ServiceUnavailableError:
            # No JetStream answers. On a server without it, core publishing is all there is;
            # on one that has it (it says so when it connects) it is still starting: wait.
            if _announces_jetstream(self._connection):
                raise
            covered = False
        self._streams[subject] = (covered, now)
        return covered

    # ------------------------------------------------------------------- cursor and connection

    async def _save_if_due(self) -> None:
        since = self._unsaved_since
        if since is None:
            return
        due = self._position - self._saved >= self.settings.cursor_every
        if due or time.monotonic() - since >= self.settings.cursor_interval:
            await self._save()

    async def _save(self) -> None:
        """Write the cursor up to the last event NATS has."""
        if self._position > self._saved:
            await self.store.events.set_cursor(CURSOR, self._position)
            self._saved = self._position
        self._unsaved_since = None

    async def _connect(self, failures: int) -> None:
        if self._connection is not None and self._connection.is_connected:
            return
        await self._disconnect()

        async def on_error(exc: Exception) -> None:
            log.debug("NATS publisher: connection error: %r", exc)

        lost = asyncio.Event()

        async def on_closed() -> None:
            lost.set()
            if not self._stopping.is_set():
                log.warning("NATS publisher: lost the connection to %s", self._shown)

        # The publisher reconnects by itself, with its own backoff, and re-reads from what NATS
        # acknowledged: the client's buffering of publishes during a reconnect is not wanted.
        # (Its pool still tries each server twice, reconnect_time_wait apart, before it gives
        # up: 0 attempts would mean "forever".)
        self._connection = await self._until_stopped(
            nats.connect(
                [part.strip() for part in self.url.split(",") if part.strip()],
                name="taskqueue",
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                connect_timeout=max(1, round(self.settings.connect_timeout)),
                error_cb=on_error,
                closed_cb=on_closed,
            )
        )
        self._jetstream = self._connection.jetstream()
        self._lost = lost
        self._streams.clear()
        again = f" after {failures} failed attempt(s)" if failures else ""
        log.info(
            "NATS publisher: connected to %s%s; publishing the events after %d",
            self._shown,
            again,
            self._position,
        )

    async def _until_stopped(
        self, work: Coroutine[Any, Any, T], lost: asyncio.Event | None = None
    ) -> T:
        """What ``work`` returns, unless :meth:`stop` or the loss of the connection comes first.

        A stop raises :class:`_Stopped`; a ``lost`` connection ``ConnectionClosedError`` (no
        acknowledgement can come on it any more: no use waiting out the timeout).
        """
        task = asyncio.ensure_future(work)
        events = [self._stopping, *([lost] if lost is not None else [])]
        watchers = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait((task, *watchers), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for watcher in watchers:
                watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if self._stopping.is_set():
                raise _Stopped
            raise nats.errors.ConnectionClosedError
        return task.result()

    async def _disconnect(self) -> None:
        connection, self._connection, self._jetstream = self._connection, None, None
        self._lost = None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _failed(self, exc: Exception, failures: int) -> None:
        """Log a failure (the first of a run of them as a warning) and wait before retrying."""
        delay = equal_jitter_delay(
            failures, self.settings.backoff_base, cap=self.settings.backoff_cap
        )
        level = logging.WARNING if failures == 1 else logging.DEBUG
        nats_trouble = _is_connection_trouble(exc)
        what = f"cannot publish to {self._shown}" if nats_trouble else "the database failed"
        log.log(
            level,
            "NATS publisher: %s (%s); retrying in %.1fs, from event %d",
            what,
            _reason(exc),
            delay,
            self._position + 1,
        )
        if nats_trouble:
            await self._disconnect()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)


class _Stopped(Exception):
    """:meth:`NatsPublisher.stop` was called while the publisher waited on NATS."""


def _announces_jetstream(connection: Client) -> bool:
    """Whether the server said, when the client connected, that it has JetStream."""
    info: Any = getattr(connection, "_server_info", None)  # the INFO the server sent
    return bool(isinstance(info, dict) and info.get("jetstream"))


def _is_connection_trouble(exc: Exception) -> bool:
    return isinstance(exc, (nats.errors.Error, OSError, asyncio.TimeoutError))


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
