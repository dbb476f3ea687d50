"""The webhook dispatcher: every subscription's events, delivered in order, at least once.

Every ``taskqueue server`` runs one :class:`WebhookDispatcher` beside the API. It leases the
enabled subscriptions no other dispatcher holds (renewing its leases at a third of their
length) and runs one loop per subscription it holds:

1. read the subscription (a rotated secret, a new URL or a disable takes effect at once);
2. wait until its next attempt is due, if the last one failed;
3. read the events after its ``position`` that it wants, and send them one at a time;
4. record each attempt in the deliveries log, in the transaction that moves ``position`` past
   a delivered event, or schedules the retry of a failed one (the schedule of
   :data:`~taskqueue.integrations.webhook_sender.RETRY_SCHEDULE_S`), or disables the
   subscription (410 Gone, or failing for a day) with a ``webhook.disabled`` event.

A crash repeats at most the delivery that was in flight. Each subscription waits only on its
own endpoint: a slow or dead one delays nobody else, and no task ever waits on a webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

from taskqueue.integrations.webhook_sender import (
    DISABLE_AFTER_S,
    RETRY_SCHEDULE_S,
    Sent,
    WebhookSender,
    WebhookSettings,
    new_delivery,
)
from taskqueue.store.webhooks import Failure

if TYPE_CHECKING:
    from taskqueue.store import Store
    from taskqueue.store.eventlog import EventSignal

__all__ = ["WebhookDispatcher"]

log: logging.Logger = logging.getLogger(__name__)

#: Events read at once for one subscription.
BATCH = 50
#: Subscriptions one dispatcher holds at most.
MAX_HELD = 10_000
#: Seconds between looks for subscriptions to take, when nothing wakes the dispatcher.
LOOK_INTERVAL_S = 1.0
#: Events only the request that made them sends (to one subscription, at once).
_NOT_IN_ORDER = frozenset({"webhook.test"})


class WebhookDispatcher:
    """A :class:`~taskqueue.server.services.Service` delivering webhook subscriptions."""

    def __init__(
        self,
        store: Store,
        settings: WebhookSettings | None = None,
        sender: WebhookSender | None = None,
    ) -> None:
        self.store: Store = store
        self.settings: WebhookSettings = settings or WebhookSettings()
        self._sender = sender or WebhookSender(self.settings)
        self._own_sender = sender is None
        #: The name this dispatcher's leases are held under.
        self.owner: str = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopping = asyncio.Event()
        self._signal: EventSignal | None = None
        self._loops: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        #: Deliveries sent since start (any outcome).
        self.sent: int = 0

    @property
    def name(self) -> str:
        """What the log calls it."""
        return "webhook dispatcher"

    async def start(self) -> None:
        """Hear of every commit that writes events."""
        self._signal = self.store.events.signal()

    async def run(self) -> None:
        """Hold leases and run a loop per subscription held, until stopped."""
        assert self._signal is not None, "start() first"
        loop = asyncio.get_running_loop()
        renew_at = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    if loop.time() >= renew_at or await self.store.webhooks.claimable():
                        held = await self.store.webhooks.acquire(
                            self.owner, self.settings.lease, MAX_HELD
                        )
                        renew_at = loop.time() + self.settings.lease / 3
                        self._hold(held)
                except Exception as exc:
                    log.warning("webhook dispatcher: cannot take subscriptions (%r)", exc)
                if await self._signal.wait(LOOK_INTERVAL_S):
                    for _, wake in self._loops.values():
                        wake.set()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        """Ask :meth:`run` to stop the loops, give up its leases and return."""
        self._stopping.set()
        if self._signal is not None:
            self._signal.set()

    def _hold(self, held: list[str]) -> None:
        """Start a loop for each newly held subscription; end those no longer held."""
        wanted = set(held)
        for webhook_id in list(self._loops):
            task, _ = self._loops[webhook_id]
            if webhook_id not in wanted or task.done():
                task.cancel()
                del self._loops[webhook_id]
        for webhook_id in held:
            if webhook_id not in self._loops:
                wake = asyncio.Event()
                task = asyncio.create_task(
                    self._serve(webhook_id, wake), name=f"taskqueue-webhook-{webhook_id}"
                )
                self._loops[webhook_id] = (task, wake)

    async def _shutdown(self) -> None:
        for task, _ in self._loops.values():
            task.cancel()
        for task, _ in self._loops.values():
            with contextlib.suppress(BaseException):
                await task
        self._loops.clear()
        with contextlib.suppress(Exception):  # the store may be failing: the leases expire
            await self.store.webhooks.release(self.owner)
        if self._own_sender:
            await self._sender.aclose()
        assert self._signal is not None
        self._signal.close()

    # ------------------------------------------------------------------ one subscription

    async def _serve(self, webhook_id: str, wake: asyncio.Event) -> None:
        """Deliver one subscription until it is no longer held (or is deleted, or disabled)."""
        failures = 0
        while not self._stopping.is_set():
            try:
                pause = await self._step(webhook_id)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "webhook dispatcher: %s: the database failed (%r)", webhook_id, exc)
                pause = min(5.0, 0.1 * 2**failures)
            if pause is None:
                return
            if pause > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), pause)
            wake.clear()

    async def _step(self, webhook_id: str) -> float | None:
        """Send what is due; how long to wait before the next step (None: stop serving)."""
        subscription = await self.store.webhooks.subscription(webhook_id)
        if subscription is None or not subscription["enabled"]:
            return None
        if subscription["lease_owner"] != self.owner:
            return None
        now = self.store.clock()
        due: int | None = subscription["next_attempt_at"]
        if due is not None and due > now:
            return (due - now) / 1_000_000
        position = subscription["position"]
        _, last = await self.store.events.bounds()
        project = subscription["project_id"]
        events = await self.store.events.read(
            position,
            BATCH,
            sequence=False,  # bounds() just did
            projects=None if project is None else frozenset({project}),
            types=subscription["event_types"],
        )
        wanted = [e for e in events if e["type"] not in _NOT_IN_ORDER]
        if not wanted:
            skip = int(events[-1]["id"]) if events else (last or 0)
            if skip > position:
                await self.store.webhooks.skip_to(webhook_id, self.owner, skip)
            return LOOK_INTERVAL_S if len(events) < BATCH else 0.0
        # Each event is sent once the one before it was delivered; its record is written
        # while the next one is on its way (a crash in between repeats only the unrecorded).
        recording: list[asyncio.Future[bool]] = []
        for event in wanted:
            if self._stopping.is_set():
                break
            outcome, record = await self._deliver(subscription, event)
            recording.append(record)
            if outcome != "delivered":
                break
            subscription.update(failures=0, failing_since=None)
        recorded = await asyncio.gather(*recording, return_exceptions=True)
        for result in recorded:
            if isinstance(result, BaseException):
                raise result
        held = all(recorded)
        if not held or self._stopping.is_set():
            return None  # another dispatcher holds it now, or this one is stopping
        return 0.0  # after a failure, the next step waits for the retry

    async def _deliver(
        self, subscription: dict[str, Any], event: dict[str, Any]
    ) -> tuple[str, asyncio.Future[bool]]:
        """Send one event: ``delivered`` or ``failed``, and the write recording it.

        The write answers False when the lease passed to another dispatcher meanwhile (the
        event was sent; the other dispatcher may send it again).
        """
        sent = await self._sender.send(subscription, event)
        self.sent += 1
        now = self.store.clock()
        attempt = subscription["failures"] + 1
        delivery = new_delivery(subscription, event, sent, attempt, now)
        if sent.delivered:
            return "delivered", asyncio.ensure_future(
                self.store.webhooks.delivered(delivery, self.owner)
            )
        failure = self._failure(subscription, sent, now)
        if failure.disable is not None:
            log.warning(
                "webhook dispatcher: disabled webhook %s: %s", subscription["id"], failure.disable
            )
        return "failed", asyncio.ensure_future(
            self.store.webhooks.failed(delivery, failure, self.owner)
        )

    def _failure(self, subscription: dict[str, Any], sent: Sent, now: int) -> Failure:
        """What a failed attempt leads to: the retry's time, or disabling and why."""
        scale = self.settings.retry_scale
        if sent.gone:
            return Failure(None, "the endpoint answered 410 Gone")
        since = subscription["failing_since"] or now
        if now - since >= DISABLE_AFTER_S * scale * 1_000_000:
            hours = (now - since) / 3_600_000_000
            return Failure(
                None, f"every delivery failed for {hours:.3g} hours (last: {sent.error})"
            )
        failures = subscription["failures"] + 1
        delay = RETRY_SCHEDULE_S[min(failures, len(RETRY_SCHEDULE_S) - 1)] * scale
        return Failure(now + int(delay * 1_000_000), None)
