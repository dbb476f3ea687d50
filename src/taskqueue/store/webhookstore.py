"""The store's webhook subscriptions, for the API (``/api/webhooks``) and the dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from taskqueue._webhook_models import WebhookUpdate
from taskqueue.store import outbox, webhooks
from taskqueue.store.backend import Backend
from taskqueue.store.eventlog import EventLog, Write
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx
from taskqueue.store.visibility import Projects

__all__ = ["WebhookStore"]

T = TypeVar("T")

#: How long :meth:`WebhookStore.emit_test_event` waits for its event's position, in seconds.
_POSITION_WAIT_S = 5.0


class WebhookStore:
    """Reads and changes of webhook subscriptions and their deliveries log."""

    def __init__(
        self, db: Backend, write: Write, events: EventLog, clock: Callable[[], int]
    ) -> None:
        self.db: Backend = db
        self._write: Write = write
        self._events: EventLog = events
        self._clock: Callable[[], int] = clock

    async def _change(self, fn: Callable[[Tx, Effects], T]) -> T:
        result: T = await self._write(fn)
        return result

    # ------------------------------------------------------------------------------ the API

    async def create(self, row: dict[str, Any]) -> dict[str, Any]:
        """Store a new subscription (``row``: every column but ``position``)."""
        now = self._clock()
        await self._events.sequence()  # it starts after every event committed before it
        return await self._change(lambda tx, fx: webhooks.insert_webhook(tx, fx, row, now))

    async def get(self, webhook_id: str, *, projects: Projects = None) -> dict[str, Any]:
        """One subscription as the API shows it."""
        return await self.db.read(lambda tx: webhooks.get_webhook(tx, webhook_id, projects))

    async def page(
        self, limit: int, offset: int, *, projects: Projects = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of subscriptions and their number."""
        return await self.db.read(lambda tx: webhooks.list_webhooks(tx, limit, offset, projects))

    async def update(
        self, webhook_id: str, changes: WebhookUpdate, *, projects: Projects = None
    ) -> dict[str, Any]:
        """Change a subscription's fields."""
        now = self._clock()
        return await self._change(
            lambda tx, fx: webhooks.update_webhook(tx, fx, webhook_id, changes, projects, now)
        )

    async def delete(self, webhook_id: str, *, projects: Projects = None) -> None:
        """Delete a subscription and its deliveries."""
        now = self._clock()
        await self._change(
            lambda tx, fx: webhooks.delete_webhook(tx, fx, webhook_id, projects, now)
        )

    async def rotate_secret(
        self, webhook_id: str, secret: str, grace_s: float, *, projects: Projects = None
    ) -> dict[str, Any]:
        """Sign with ``secret`` from now on; the old secret also signs for ``grace_s``."""
        now, grace_us = self._clock(), int(grace_s * 1_000_000)
        return await self._change(
            lambda tx, fx: webhooks.rotate_secret(
                tx, fx, webhook_id, secret, grace_us, projects, now
            )
        )

    async def deliveries(
        self, webhook_id: str, limit: int, offset: int, *, projects: Projects = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of a subscription's deliveries, newest first."""
        return await self.db.read(
            lambda tx: webhooks.list_deliveries(tx, webhook_id, limit, offset, projects)
        )

    async def emit_test_event(
        self, webhook_id: str, *, projects: Projects = None
    ) -> dict[str, Any]:
        """Write a ``webhook.test`` event for the subscription; the event, with its position."""
        now = self._clock()
        raw_id: int = await self._change(
            lambda tx, fx: webhooks.emit_test_event(tx, fx, webhook_id, projects, now)
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _POSITION_WAIT_S
        while True:
            await self._events.sequence()
            event = await self.db.read(lambda tx: outbox.event_by_id(tx, raw_id))
            if event is not None or loop.time() > deadline:
                break
            await asyncio.sleep(0.01)  # another process is numbering it
        if event is None:  # pragma: no cover - pruned within the second, or numbering stalled
            raise RuntimeError(f"the webhook.test event {raw_id} has no position")
        return event

    async def event(self, position: int, projects: Projects) -> dict[str, Any] | None:
        """The event at ``position``, if ``projects`` (None: all) may see it."""
        found = await self._events.read(position - 1, 1, projects=projects)
        if found and found[0]["id"] == position:
            return found[0]
        return None

    async def record_manual(self, delivery: dict[str, Any]) -> dict[str, Any]:
        """Log a delivery sent outside the order."""
        return await self._change(lambda tx, fx: webhooks.record_manual(tx, delivery))

    # ------------------------------------------------------------------------ the dispatcher

    async def acquire(self, owner: str, lease_s: float, limit: int) -> list[str]:
        """Take or renew the leases of enabled subscriptions; the ids ``owner`` holds."""
        now, lease_us = self._clock(), int(lease_s * 1_000_000)
        return await self._change(lambda tx, fx: webhooks.acquire(tx, owner, lease_us, now, limit))

    async def claimable(self) -> bool:
        """Whether some enabled subscription has no live lease (a cheap read)."""
        now = self._clock()
        return await self.db.read(lambda tx: webhooks.claimable(tx, now))

    async def release(self, owner: str) -> None:
        """Give up every lease ``owner`` holds."""
        await self._change(lambda tx, fx: webhooks.release(tx, owner))

    async def subscription(self, webhook_id: str) -> dict[str, Any] | None:
        """The whole row, secrets included (None: deleted)."""
        return await self.db.read(lambda tx: webhooks.subscription(tx, webhook_id))

    async def delivered(self, delivery: dict[str, Any], owner: str) -> bool:
        """Log a delivery and move past its event (False: the lease was lost meanwhile)."""
        now = self._clock()
        return await self._change(
            lambda tx, fx: webhooks.record_delivered(tx, delivery, owner, now)
        )

    async def failed(self, delivery: dict[str, Any], failure: webhooks.Failure, owner: str) -> bool:
        """Log a failed attempt and schedule the retry or disable (False: lease lost)."""
        now = self._clock()
        return await self._change(
            lambda tx, fx: webhooks.record_failed(tx, fx, delivery, failure, owner, now)
        )

    async def skip_to(self, webhook_id: str, owner: str, position: int) -> None:
        """Move past events the subscription does not want."""
        await self._change(lambda tx, fx: webhooks.skip_to(tx, webhook_id, owner, position))
