"""The store: the one object the API and the workers use to read and change state.

It opens the backend its URL names (SQLite or PostgreSQL, see :mod:`.backend`), queues each
write to the backend's commit pipeline and runs each read on a reader, and fans every commit
out to the in-process waiters (:mod:`.waiters`). On PostgreSQL, commits of other processes
arrive as NOTIFYs and wake the same waiters. Every time the store takes comes from its
``clock``, so tests can drive time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from taskqueue.models import (
    TERMINAL_STATUSES,
    ProjectCreate,
    ProjectUpdate,
    TaskCreate,
    TaskFilters,
    TaskUpdate,
)
from taskqueue.security import redact_logs
from taskqueue.store import (
    attempts,
    deployment,
    housekeeping,
    leases,
    projects,
    tasks,
    transitions,
    visibility,
    workers,
)
from taskqueue.store.backend import Backend, open_backend, secrets_of
from taskqueue.store.codec import now_us
from taskqueue.store.eventlog import EventLog
from taskqueue.store.functionstore import FunctionStore
from taskqueue.store.idempotency import IdempotencyRequest
from taskqueue.store.keystore import KeyStore
from taskqueue.store.pipeline import Effects
from taskqueue.store.schedulestore import ScheduleStore
from taskqueue.store.sql import Tx
from taskqueue.store.transitions import Claimed, Outcome
from taskqueue.store.visibility import Projects
from taskqueue.store.waiters import Waiters
from taskqueue.store.webhookstore import WebhookStore
from taskqueue.store.workflowstore import WorkflowStore

__all__ = ["Store"]

T = TypeVar("T")

#: How often a waiter re-reads the database in case the change came from another process.
POLL_INTERVAL_S = 0.5
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)


def _within(
    projects: Projects, task_ids: Sequence[str], fn: Callable[[Tx, Effects], T]
) -> Callable[[Tx, Effects], T]:
    """``fn``, first checking in its transaction that each task is within ``projects``."""
    if projects is None:
        return fn

    def checked(tx: Tx, fx: Effects) -> T:
        for task_id in task_ids:
            visibility.check_task(tx, task_id, projects)
        return fn(tx, fx)

    return checked


class Store:
    """Async access to tasks, projects and workers on one database.

    ``clock`` gives the time in integer microseconds since the epoch (default: the system's).
    """

    def __init__(
        self,
        db: str | Path,
        *,
        listen: bool = True,
        changes: bool = True,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.url: str = str(db)
        # Whatever a driver's error echoes of the URL, no log line of this process shows it.
        redact_logs(secrets_of(self.url))
        self.clock: Callable[[], int] = clock
        self.waiters: Waiters = Waiters()
        self.db: Backend = open_backend(
            self.url, self.waiters.on_commit, listen=listen, changes=changes
        )
        self._rng = random.Random()
        self._migrated = False
        self._finishing: list[tuple[str, str, Outcome, asyncio.Future[str | None]]] = []
        self._finish_in_flight = False
        #: The outbox's readers' view: events after a position, and their cursors.
        self.events: EventLog = EventLog(self.db, self.waiters, self._write, clock)
        #: API keys: their hashes (or public ids), scopes and uses.
        self.keys: KeyStore = KeyStore(self.db, self._write, clock)
        #: Webhook subscriptions and their deliveries.
        self.webhooks: WebhookStore = WebhookStore(self.db, self._write, self.events, clock)
        #: Function definitions: their versions, executions and batches.
        self.functions: FunctionStore = FunctionStore(self.db, self.waiters, self._write, clock)
        #: Scheduled tasks: firing their slots, their runs.
        self.schedules: ScheduleStore = ScheduleStore(self.db, self._write, clock)
        #: Workflow tasks: project workflows, reviews, approval links.
        self.workflows: WorkflowStore = WorkflowStore(self.db, self._write, clock)

    # ------------------------------------------------------------------ lifecycle

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``, for people (health, logs)."""
        return self.db.dialect.name

    @property
    def notifications(self) -> bool:
        """Whether commits of other processes wake this one (else waiters must poll)."""
        return self.db.notifications

    @property
    def work_available(self) -> asyncio.Event:
        """Set when a commit may have made work runnable."""
        return self.waiters.work_available

    def poll_interval(self) -> float:
        """How often an idle worker should look for work that nothing announced, in seconds."""
        return self.db.dialect.poll_interval(self.db.notifications)

    def migrate(self) -> None:
        """Create the database (a SQLite file) if needed and apply every migration."""
        self.db.migrate()
        self._migrated = True

    def start(self) -> None:
        """Migrate (unless this store did already), then open the database."""
        if not self._migrated:
            self.migrate()
        self.db.start()

    async def close(self) -> None:
        """Finish queued writes and close the database."""
        await self.db.close()

    def _write(self, fn: Callable[[Tx, Effects], T], *, durable: bool = True) -> asyncio.Future[T]:
        return self.db.write(fn, durable=durable)

    # ------------------------------------------------------------------ notifications

    def on_stop_running(self, listener: Callable[[set[tuple[str, str]]], None]) -> None:
        """Call ``listener`` with (task id, lease token) of attempts revoked in this process."""
        self.waiters.on_stop_running(listener)

    async def wait_terminal(
        self, task_id: str, timeout: float, *, projects: Projects = None
    ) -> dict[str, Any]:
        """The task once it is terminal, or as it is when ``timeout`` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            task = await self.get_task(task_id, projects=projects)
            remaining = deadline - loop.time()
            if task["status"] in _TERMINAL or remaining <= 0:
                return task
            await self.waiters.change(task_id, min(remaining, POLL_INTERVAL_S))

    async def wait_logs(self, task_id: str, timeout: float) -> None:
        """Return when the task has new output or changed status, or after ``timeout``."""
        await self.waiters.output(task_id, timeout)

    # ------------------------------------------------------------------ tasks

    async def create_tasks(
        self,
        items: Sequence[TaskCreate],
        idem: IdempotencyRequest | None = None,
        batch: bool = False,
        *,
        projects: Projects = None,
    ) -> list[dict[str, Any]]:
        """Create tasks atomically; later items may depend on earlier ones by ``ref``.

        ``projects``, on this method and the others that take it, limits the call to the tasks
        and projects a caller may see (see :mod:`.visibility`); others do not exist for it.
        """
        now = self.clock()
        return await self._write(
            lambda c, fx: tasks.create_tasks(c, fx, items, now, idem, batch, projects)
        )

    async def get_task(self, task_id: str, *, projects: Projects = None) -> dict[str, Any]:
        """One task."""
        return await self.db.read(lambda c: tasks.get_task(c, task_id, projects))

    async def list_tasks(
        self, filters: TaskFilters, *, projects: Projects = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of tasks and the number matching."""
        return await self.db.read(lambda c: tasks.list_tasks(c, filters, projects))

    async def update_task(
        self, task_id: str, changes: TaskUpdate, *, projects: Projects = None
    ) -> dict[str, Any]:
        """Change a task's fields."""
        now = self.clock()
        return await self._write(
            _within(
                projects, [task_id], lambda c, fx: tasks.update_task(c, fx, task_id, changes, now)
            )
        )

    async def update_tasks(
        self, updates: Sequence[tuple[str, TaskUpdate]], *, projects: Projects = None
    ) -> list[dict[str, Any]]:
        """Change many tasks' fields, all or none."""
        now = self.clock()
        ids = [task_id for task_id, _ in updates]
        return await self._write(
            _within(projects, ids, lambda c, fx: tasks.update_tasks(c, fx, updates, now))
        )

    async def cancel_task(self, task_id: str, *, projects: Projects = None) -> dict[str, Any]:
        """Cancel a task and its dependents."""
        now = self.clock()
        return await self._write(
            _within(projects, [task_id], lambda c, fx: transitions.cancel(c, fx, task_id, now))
        )

    async def retry_task(self, task_id: str, *, projects: Projects = None) -> dict[str, Any]:
        """Re-queue a Failed or Cancelled task."""
        now = self.clock()
        return await self._write(
            _within(projects, [task_id], lambda c, fx: transitions.requeue(c, fx, task_id, now))
        )

    async def delete_task(self, task_id: str, *, projects: Projects = None) -> None:
        """Delete a task."""
        now = self.clock()
        await self._write(
            _within(projects, [task_id], lambda c, fx: tasks.delete_task(c, fx, task_id, now))
        )

    async def list_attempts(
        self, task_id: str, *, projects: Projects = None
    ) -> list[dict[str, Any]]:
        """Every attempt of a task."""

        def read(c: Tx) -> list[dict[str, Any]]:
            visibility.check_task(c, task_id, projects)
            return attempts.list_attempts(c, task_id)

        return await self.db.read(read)

    async def read_logs(
        self,
        task_id: str,
        offset: int,
        limit: int,
        stream: str | None = None,
        attempt: int | None = None,
        *,
        projects: Projects = None,
    ) -> tuple[list[dict[str, Any]], int, str]:
        """Output chunks from ``offset``, the next offset, and the task's status."""

        def read(c: Tx) -> tuple[list[dict[str, Any]], int, str]:
            visibility.check_task(c, task_id, projects)
            return attempts.read_logs(c, task_id, offset, limit, stream, attempt)

        return await self.db.read(read)

    async def task_counts(self, *, projects: Projects = None) -> dict[str, int]:
        """Tasks per status."""
        return await self.db.read(lambda c: tasks.task_counts(c, projects))

    # ------------------------------------------------------------------ projects

    async def create_project(
        self, data: ProjectCreate, idem: IdempotencyRequest | None = None
    ) -> dict[str, Any]:
        """Create a project."""
        now = self.clock()
        return await self._write(lambda c, fx: projects.create_project(c, fx, data, now, idem))

    async def get_project(self, project_id: str, *, within: Projects = None) -> dict[str, Any]:
        """One project (``within``: the projects the caller may see)."""
        visibility.check_project(project_id, within)
        return await self.db.read(lambda c: projects.get_project(c, project_id))

    async def list_projects(
        self, limit: int, offset: int, *, within: Projects = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of projects and their number."""
        return await self.db.read(lambda c: projects.list_projects(c, limit, offset, within))

    async def update_project(
        self, project_id: str, changes: ProjectUpdate, *, within: Projects = None
    ) -> dict[str, Any]:
        """Change a project's fields."""
        visibility.check_project(project_id, within)
        now = self.clock()
        return await self._write(
            lambda c, fx: projects.update_project(c, fx, project_id, changes, now)
        )

    async def delete_project(
        self, project_id: str, cascade: bool, *, within: Projects = None
    ) -> None:
        """Delete a project (and its tasks, when ``cascade``)."""
        visibility.check_project(project_id, within)
        now = self.clock()
        await self._write(lambda c, fx: projects.delete_project(c, fx, project_id, cascade, now))

    # ------------------------------------------------------------------ workers

    async def claim(
        self,
        worker_id: str,
        queues: Sequence[str],
        limit: int,
        lease_s: float,
        languages: Sequence[str] = (),
    ) -> list[Claimed]:
        """Take up to ``limit`` runnable tasks under a fresh lease.

        Code tasks are taken only in the ``languages`` the worker offers.
        """
        now = self.clock()
        lease_us = int(lease_s * 1_000_000)
        return await self._write(
            lambda c, fx: transitions.claim(
                c, fx, worker_id, queues, limit, lease_us, now, languages
            ),
            durable=False,
        )

    async def has_runnable(self, queues: Sequence[str], languages: Sequence[str] = ()) -> bool:
        """Whether a task of ``queues`` (and ``languages``) could be claimed now (a cheap read)."""
        now = self.clock()
        return await self.db.read(
            lambda c: transitions.has_runnable(c, list(queues), now, languages)
        )

    async def has_expired_leases(self) -> bool:
        """Whether some running task's lease has expired (a cheap read)."""
        now = self.clock()
        return await self.db.read(lambda c: leases.has_expired_leases(c, now))

    async def orphaned_attempts(
        self, attempts: Sequence[tuple[str, int, str]]
    ) -> set[tuple[str, int, str]]:
        """Which (task id, attempt, worker id) this database recorded and no lease holds."""
        now = self.clock()
        return await self.db.read(lambda c: leases.orphaned_attempts(c, list(attempts), now))

    async def deployment_id(self) -> str:
        """The deployment id of this database (made and recorded the first time it is asked)."""
        found = await self.db.read(deployment.read_deployment)
        if found is None:
            candidate, now = uuid.uuid4().hex, self.clock()
            found = await self._write(
                lambda tx, fx: deployment.ensure_deployment(tx, fx, candidate, now)
            )
        return found

    async def heartbeat(
        self, held: Sequence[tuple[str, str]], lease_s: float
    ) -> list[tuple[str, str]]:
        """Extend leases; the (task id, token) pairs no longer held."""
        now = self.clock()
        lease_us = int(lease_s * 1_000_000)
        return await self._write(
            lambda c, fx: leases.heartbeat(c, fx, held, lease_us, now), durable=False
        )

    async def lost_leases(self, held: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Which of these leases are no longer held (a cheap read)."""
        return await self.db.read(lambda c: leases.lost_leases(c, held))

    def append_output(
        self, task_id: str, token: str, attempt: int, chunks: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[bool]:
        """Queue output (stream, bytes) of a running attempt; resolves False if the lease is lost.

        Queued at once (not when awaited), so writes queued after it apply after it.
        """
        future: asyncio.Future[bool] = self._write(
            lambda c, fx: attempts.append_output(c, fx, task_id, token, attempt, chunks),
            durable=False,
        )
        return future

    async def finish(self, task_id: str, token: str, outcome: Outcome) -> str | None:
        """End an attempt; the task's new status, or None if the lease was lost.

        Finishes are batched: while one batch is being written, the next ones gather, and go
        together as one set-based write (see :func:`transitions.finish_many`). An idle store
        writes a lone finish at once.
        """
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._finishing.append((task_id, token, outcome, future))
        if not self._finish_in_flight:
            self._flush_finishes()
        return await future

    def _flush_finishes(self) -> None:
        batch, self._finishing = self._finishing, []
        if not batch:
            return
        self._finish_in_flight = True
        now = self.clock()
        items = [(task_id, token, outcome) for task_id, token, outcome, _ in batch]
        write: asyncio.Future[list[str | None]] = self._write(
            lambda c, fx: transitions.finish_many(c, fx, items, now, self._rng)
        )
        write.add_done_callback(lambda done: self._finished(batch, done))

    def _finished(
        self,
        batch: list[tuple[str, str, Outcome, asyncio.Future[str | None]]],
        write: asyncio.Future[list[str | None]],
    ) -> None:
        self._finish_in_flight = False
        if write.cancelled():  # the loop is shutting down: so are the callers
            for _, _, _, future in batch:
                future.cancel()
            return
        error = write.exception()
        results: list[str | None] = [None] * len(batch) if error else write.result()
        for (_, _, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        self._flush_finishes()

    async def release(self, task_id: str, token: str) -> bool:
        """Hand a held task back to the queue."""
        now = self.clock()
        return await self._write(lambda c, fx: transitions.hand_back(c, fx, task_id, token, now))

    async def reap_expired(self) -> list[str]:
        """Settle expired leases as failed attempts."""
        now = self.clock()
        return await self._write(lambda c, fx: transitions.expire_leases(c, fx, now, rng=self._rng))

    # ------------------------------------------------------------------ registry and housekeeping

    async def register_worker(self, info: workers.WorkerInfo) -> None:
        """Record a starting worker."""
        now = self.clock()
        await self._write(lambda c, fx: workers.register_worker(c, fx, info, now))

    async def touch_worker(self, info: workers.WorkerInfo, running: int) -> None:
        """Say the worker is alive (a write that need not wait for the disk)."""
        now = self.clock()
        await self._write(
            lambda c, fx: workers.touch_worker(c, fx, info, running, now), durable=False
        )

    async def deregister_worker(self, worker_id: str) -> None:
        """Forget a worker that stops cleanly."""
        await self._write(lambda c, fx: workers.deregister_worker(c, fx, worker_id))

    async def list_workers(self, stale_after_s: float) -> list[dict[str, Any]]:
        """Every registered worker, marked ``stale`` when silent for ``stale_after_s``."""
        now = self.clock()
        stale_us = int(stale_after_s * 1_000_000)
        return await self.db.read(lambda c: workers.list_workers(c, now, stale_us))

    async def offered_languages(self, stale_after_s: float) -> dict[str, dict[str, Any]]:
        """The languages live workers offer: versions seen and how many workers offer each."""
        now = self.clock()
        stale_us = int(stale_after_s * 1_000_000)
        return await self.db.read(lambda c: workers.offered_languages(c, now, stale_us))

    async def prune(self, retention_s: float | None) -> dict[str, int]:
        """Delete what is past its retention, in small batches (see :func:`housekeeping.prune`)."""
        return await housekeeping.prune(
            lambda fn: self._write(fn, durable=False), self.clock(), retention_s
        )
