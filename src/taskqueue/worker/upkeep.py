"""What a worker does besides running tasks: keep its leases, reap, say it is alive, prune.

* The heartbeat renews every lease the worker holds, every third of the lease time; a lease
  it no longer holds (cancelled, reaped, taken over) stops that attempt's command.
* The lease watch notices, within ``cancel_check_interval``, leases revoked by another process
  (a cancel through an API server elsewhere).
* The reaper turns expired leases of dead workers into failed attempts, then kills the commands
  those workers left running on this host.
* The presence beat keeps the worker listed in ``GET /api/workers``.
* Housekeeping prunes what is past its retention.

Every loop survives a database that is away: it logs (once per 10 s) and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

from taskqueue._version import __version__
from taskqueue.store import Store, WorkerInfo
from taskqueue.worker.orphans import find_attempt_processes, kill_groups
from taskqueue.worker.settings import WorkerSettings

__all__ = ["QuietLog", "Upkeep"]

log: logging.Logger = logging.getLogger(__name__)


class QuietLog:
    """Warnings of a failure that repeats (the database is down) once per key per interval."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval: float = interval
        self._last: dict[str, float] = {}

    def warn(self, key: str, message: str, *args: object) -> None:
        """Log ``message`` unless ``key`` was logged within the interval."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= self.interval:
            self._last[key] = now
            log.warning(message, *args)


class Upkeep:
    """The background loops of one worker."""

    def __init__(
        self,
        store: Store,
        settings: WorkerSettings,
        *,
        leases: Callable[[], list[tuple[str, str]]],
        lose: Callable[[str, str], None],
        busy: Callable[[], int],
        languages: Mapping[str, str] | None = None,
    ) -> None:
        self.store: Store = store
        #: The languages (and versions) the worker registers as offered.
        self.languages: Mapping[str, str] = languages or {}
        self.settings: WorkerSettings = settings
        self.leases: Callable[[], list[tuple[str, str]]] = leases
        self.lose: Callable[[str, str], None] = lose
        self.busy: Callable[[], int] = busy
        self.quiet: QuietLog = QuietLog()
        #: This database's deployment id (see :meth:`learn_deployment`).
        self.deployment: str | None = None
        #: This host's name, as worker ids spell it.
        self.host: str = socket.gethostname()

    def start(self) -> list[asyncio.Task[None]]:
        """Start every loop; the caller cancels them when the worker stops."""
        return [
            asyncio.create_task(self._heartbeat_loop(), name="taskqueue-heartbeat"),
            asyncio.create_task(self._watch_loop(), name="taskqueue-lease-watch"),
            asyncio.create_task(self._reap_loop(), name="taskqueue-reaper"),
            asyncio.create_task(self._presence_loop(), name="taskqueue-presence"),
            asyncio.create_task(self._housekeeping_loop(), name="taskqueue-housekeeping"),
        ]

    async def deregister(self) -> None:
        """Leave the registry (a worker that cannot just goes stale, then is forgotten)."""
        try:
            await self.store.deregister_worker(self.settings.worker_id)
        except Exception as exc:
            log.warning("could not deregister: %s", exc)

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            leases = self.leases()
            if not leases:
                continue
            try:
                lost = await self.store.heartbeat(leases, self.settings.lease_seconds)
            except Exception as exc:
                self.quiet.warn("heartbeat", "heartbeat failed: %s", exc)
                continue
            for task_id, token in lost:
                self.lose(task_id, token)

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cancel_check_interval)
            leases = self.leases()
            if not leases:
                continue
            try:
                lost = await self.store.lost_leases(leases)
            except Exception as exc:  # pragma: no cover - a locked or vanished database file
                self.quiet.warn("watch", "lease check failed: %s", exc)
                continue
            for task_id, token in lost:
                self.lose(task_id, token)

    async def _reap_loop(self) -> None:
        interval = min(5.0, self.settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.store.has_expired_leases():
                    reaped = await self.store.reap_expired()
                    if reaped:
                        log.warning(
                            "reaped %d task(s) whose worker stopped responding", len(reaped)
                        )
                        await self.sweep_orphans()
            except Exception as exc:
                self.quiet.warn("reaper", "reaper failed: %s", exc)

    def _info(self) -> WorkerInfo:
        return WorkerInfo(
            id=self.settings.worker_id,
            host=self.host,
            pid=os.getpid(),
            concurrency=self.settings.concurrency,
            queues=self.settings.queues,
            version=__version__,
            languages=self.languages,
        )

    async def register(self) -> None:
        """Put this worker in the registry (the presence beat retries if this fails)."""
        try:
            await self.store.register_worker(self._info())
        except Exception as exc:  # the presence beat registers it later
            log.warning("could not register this worker: %s", exc)

    async def _presence_loop(self) -> None:
        info = self._info()
        while True:
            await asyncio.sleep(self.settings.presence_interval)
            try:
                await self.store.touch_worker(info, self.busy())
            except Exception as exc:
                self.quiet.warn("presence", "presence beat failed: %s", exc)

    async def _housekeeping_loop(self) -> None:
        hours = self.settings.retention_hours
        retention = None if hours is None else hours * 3600
        while True:
            try:
                deleted = await self.store.prune(retention)
                if any(deleted.values()):
                    log.info(
                        "housekeeping pruned %s",
                        ", ".join(f"{n} {kind}" for kind, n in deleted.items() if n),
                    )
            except Exception as exc:
                log.warning("housekeeping failed: %s", exc)
            await asyncio.sleep(self.settings.housekeeping_interval)

    async def sweep_orphans(self) -> None:
        """Kill what this deployment left running on this host and no worker holds any more.

        See :mod:`taskqueue.worker.orphans` for what proves a process is ours; anything
        else, however it is named, is left alone.
        """
        deployment = self.deployment
        if deployment is None:  # not known yet: nothing can be proven ours
            return
        try:
            found = await asyncio.to_thread(find_attempt_processes)
            # A command whose worker still runs is that worker's business (it may even serve
            # another database on this host).
            found = [p for p in found if p.may_be_ours(deployment, self.host)]
            if not found:
                return
            recorded = await self.store.orphaned_attempts(
                [(p.task_id, p.attempt, p.worker_id or "") for p in found]
            )
            doomed = [p for p in found if (p.task_id, p.attempt, p.worker_id) in recorded]
            if doomed:
                await asyncio.to_thread(kill_groups, doomed)
        except Exception as exc:  # pragma: no cover - best effort; the reaper goes on
            log.warning("looking for orphaned commands failed: %s", exc)

    async def learn_deployment(self, stopping: asyncio.Event) -> str | None:
        """The deployment id, asked of the store until it answers (or ``stopping`` is set)."""
        delay = 0.1
        while self.deployment is None and not stopping.is_set():
            try:
                self.deployment = await self.store.deployment_id()
            except Exception as exc:
                self.quiet.warn("deployment", "reading the deployment id failed: %s", exc)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                delay = min(delay * 2, 5.0)
        return self.deployment
