"""The store: the one object the API and the workers use to read and change state.

It owns the database (SQLite or PostgreSQL, by the URL it is given) and the in-process
notifications that follow each commit: waking idle workers, long-polls waiting for a task to
end, log followers, and workers that must stop a task whose lease was revoked. On PostgreSQL,
commits of other processes arrive as NOTIFYs and wake the same waiters. Every waiter also polls,
so a missed notification costs latency, never progress.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from taskqueue.models import ProjectCreate, ProjectUpdate, TaskCreate, TaskFilters, TaskUpdate
from taskqueue.store import (
    create_ops,
    lease_ops,
    project_ops,
    prune_ops,
    queries,
    task_ops,
    worker_ops,
)
from taskqueue.store.database import Effects, SqliteDatabase, sqlite_engine
from taskqueue.store.lease_ops import Claimed, Outcome
from taskqueue.store.migrate import upgrade
from taskqueue.store.rows import now_us
from taskqueue.store.task_ops import IdempotencyRequest

if TYPE_CHECKING:
    from taskqueue.store.postgres import PostgresDatabase

__all__ = ["Store", "describe_database", "is_postgres_url", "resolve_sqlite_path"]

#: How often a waiter re-reads the database in case the change came from another process.
POLL_INTERVAL_S = 0.5
#: Rows housekeeping deletes in one transaction.
PRUNE_BATCH = 1000
#: How long an idempotency key is remembered.
IDEMPOTENCY_RETENTION_S = 24 * 3600
#: A worker silent this long is forgotten.
WORKER_RETENTION_S = 3600


def is_postgres_url(db: str) -> bool:
    """Whether ``db`` names a PostgreSQL database (``postgresql://...``)."""
    scheme = db.split("://", 1)[0].lower() if "://" in db else ""
    return scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+")


def describe_database(db: str) -> str:
    """``db`` fit for a log line: a URL's password is hidden."""
    if "://" not in db:
        return db
    try:
        return make_url(db).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: say nothing of it
        return "<database>"


def resolve_sqlite_path(db: str) -> Path:
    """The SQLite file named by ``db``: a plain path or a ``sqlite:///`` URL."""
    if "://" in db:
        url = make_url(db)
        if url.get_backend_name() != "sqlite":
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}: "
                "give a SQLite file or a postgresql:// URL"
            )
        if not url.database or url.database == ":memory:":
            raise ValueError("an in-memory SQLite database cannot be shared; give a file path")
        return Path(url.database)
    return Path(db)


def _prune_batch(
    prune: Callable[[Any, Effects, int, int], int], before: int, conn: Any, fx: Effects
) -> int:
    return prune(conn, fx, before, PRUNE_BATCH)


class Store:
    """Async access to tasks and projects on one database."""

    def __init__(self, db: str | Path, *, listen: bool = True, changes: bool = True) -> None:
        self.url: str = str(db)
        self.db: SqliteDatabase | PostgresDatabase
        if is_postgres_url(self.url):
            from taskqueue.store.postgres import PostgresDatabase

            self.path: Path | None = None
            self.db = PostgresDatabase(
                self.url, on_commit=self._on_commit, listen=listen, changes=changes
            )
        else:
            self.path = resolve_sqlite_path(self.url)
            self.db = SqliteDatabase(self.path, on_commit=self._on_commit)
        self.backend: str = self.db.backend
        self.work_available: asyncio.Event = asyncio.Event()
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._log_waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._stop_listeners: list[Callable[[set[tuple[str, str]]], None]] = []
        self._rng = random.Random()
        self._migrated = False
        self._finishing: list[tuple[str, str, Outcome, asyncio.Future[str | None]]] = []
        self._finish_in_flight = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def notifications(self) -> bool:
        """Whether commits of other processes wake this one (else waiters must poll)."""
        return self.db.notifications

    def migrate(self) -> None:
        """Create the database (a SQLite file) if needed and apply every migration."""
        if self.path is None:
            from taskqueue.store.postgres import pg_engine

            engine = pg_engine(self.url)
        else:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            engine = sqlite_engine(self.path)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        self._migrated = True

    def start(self) -> None:
        """Migrate (unless this store did already), then open the database."""
        if not self._migrated:
            self.migrate()
        self.db.start()

    async def close(self) -> None:
        """Finish queued writes and close the database."""
        await self.db.close()

    # ------------------------------------------------------------------ notifications

    def _on_commit(self, fx: Effects) -> None:
        if fx.wake:
            self.work_available.set()
        for task_id in fx.changed:
            for waiter in self._waiters.get(task_id, ()):
                waiter.set()
        for task_id in fx.logs | fx.changed:
            for waiter in self._log_waiters.get(task_id, ()):
                waiter.set()
        if fx.stop_running:
            for listener in self._stop_listeners:
                listener(fx.stop_running)

    def on_stop_running(self, listener: Callable[[set[tuple[str, str]]], None]) -> None:
        """Call ``listener`` with (task id, lease token) of attempts revoked in this process."""
        self._stop_listeners.append(listener)

    async def _wait_change(
        self, registry: dict[str, set[asyncio.Event]], task_id: str, timeout: float
    ) -> None:
        event = asyncio.Event()
        registry[task_id].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            waiters = registry[task_id]
            waiters.discard(event)
            if not waiters:
                del registry[task_id]

    async def wait_terminal(self, task_id: str, timeout: float) -> dict[str, Any]:
        """The task once it is terminal, or as it is when ``timeout`` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            task = await self.get_task(task_id)
            remaining = deadline - loop.time()
            if task["status"] in ("Completed", "Failed", "Cancelled") or remaining <= 0:
                return task
            await self._wait_change(self._waiters, task_id, min(remaining, POLL_INTERVAL_S))

    async def wait_logs(self, task_id: str, timeout: float) -> None:
        """Return when the task has new output or changed status, or after ``timeout``."""
        await self._wait_change(self._log_waiters, task_id, timeout)

    # ------------------------------------------------------------------ tasks

    async def create_tasks(
        self,
        items: Sequence[TaskCreate],
        idem: IdempotencyRequest | None = None,
        batch: bool = False,
    ) -> list[dict[str, Any]]:
        """Create tasks atomically; later items may depend on earlier ones by ``ref``."""
        now = now_us()
        return await self.db.write(
            lambda c, fx: create_ops.create_tasks(c, fx, items, now, idem, batch)
        )

    async def get_task(self, task_id: str) -> dict[str, Any]:
        """One task."""
        return await self.db.read(lambda c: queries.get_task(c, task_id))

    async def list_tasks(self, filters: TaskFilters) -> tuple[list[dict[str, Any]], int]:
        """A page of tasks and the number matching."""
        return await self.db.read(lambda c: queries.list_tasks(c, filters))

    async def update_task(self, task_id: str, changes: TaskUpdate) -> dict[str, Any]:
        """Change a task's fields."""
        now = now_us()
        return await self.db.write(lambda c, fx: task_ops.update_task(c, fx, task_id, changes, now))

    async def cancel_task(self, task_id: str) -> dict[str, Any]:
        """Cancel a task and its dependents."""
        now = now_us()
        return await self.db.write(lambda c, fx: task_ops.cancel_task(c, fx, task_id, now))

    async def retry_task(self, task_id: str) -> dict[str, Any]:
        """Re-queue a Failed or Cancelled task."""
        now = now_us()
        return await self.db.write(lambda c, fx: task_ops.retry_task(c, fx, task_id, now))

    async def delete_task(self, task_id: str) -> None:
        """Delete a task."""
        now = now_us()
        await self.db.write(lambda c, fx: task_ops.delete_task(c, fx, task_id, now))

    async def list_attempts(self, task_id: str) -> list[dict[str, Any]]:
        """Every attempt of a task."""
        return await self.db.read(lambda c: queries.list_attempts(c, task_id))

    async def read_logs(
        self,
        task_id: str,
        offset: int,
        limit: int,
        stream: str | None = None,
        attempt: int | None = None,
    ) -> tuple[list[dict[str, Any]], int, str]:
        """Output chunks from ``offset``, the next offset, and the task's status."""
        return await self.db.read(
            lambda c: queries.read_logs(c, task_id, offset, limit, stream, attempt)
        )

    async def task_counts(self) -> dict[str, int]:
        """Tasks per status."""
        return await self.db.read(queries.task_counts)

    # ------------------------------------------------------------------ projects

    async def create_project(
        self, data: ProjectCreate, idem: IdempotencyRequest | None = None
    ) -> dict[str, Any]:
        """Create a project."""
        now = now_us()
        return await self.db.write(lambda c, fx: project_ops.create_project(c, fx, data, now, idem))

    async def get_project(self, project_id: str) -> dict[str, Any]:
        """One project."""
        return await self.db.read(lambda c: queries.get_project(c, project_id))

    async def list_projects(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """A page of projects and their number."""
        return await self.db.read(lambda c: queries.list_projects(c, limit, offset))

    async def update_project(self, project_id: str, changes: ProjectUpdate) -> dict[str, Any]:
        """Change a project's fields."""
        now = now_us()
        return await self.db.write(
            lambda c, fx: project_ops.update_project(c, fx, project_id, changes, now)
        )

    async def delete_project(self, project_id: str, cascade: bool) -> None:
        """Delete a project (and its tasks, when ``cascade``)."""
        now = now_us()
        await self.db.write(
            lambda c, fx: project_ops.delete_project(c, fx, project_id, cascade, now)
        )

    # ------------------------------------------------------------------ workers

    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_s: float
    ) -> list[Claimed]:
        """Take up to ``limit`` runnable tasks under a fresh lease."""
        now = now_us()
        lease_us = int(lease_s * 1_000_000)
        return await self.db.write(
            lambda c, fx: lease_ops.claim(c, fx, worker_id, queues, limit, lease_us, now),
            durable=False,
        )

    async def has_runnable(self, queues: Sequence[str]) -> bool:
        """Whether a task of ``queues`` could be claimed now (a cheap read)."""
        now = now_us()
        return await self.db.read(lambda c: queries.has_runnable(c, list(queues), now))

    async def has_expired_leases(self) -> bool:
        """Whether some running task's lease has expired (a cheap read)."""
        now = now_us()
        return await self.db.read(lambda c: queries.has_expired_leases(c, now))

    async def held_attempts(self, attempts: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which (task id, attempt) pairs are still running under a live lease (a read)."""
        now = now_us()
        return await self.db.read(lambda c: queries.held_attempts(c, list(attempts), now))

    async def heartbeat(
        self, leases: Sequence[tuple[str, str]], lease_s: float
    ) -> list[tuple[str, str]]:
        """Extend leases; the (task id, token) pairs no longer held."""
        now = now_us()
        lease_us = int(lease_s * 1_000_000)
        return await self.db.write(
            lambda c, fx: lease_ops.heartbeat(c, fx, leases, lease_us, now), durable=False
        )

    async def lost_leases(self, leases: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Which of these leases are no longer held (a cheap read)."""
        return await self.db.read(lambda c: lease_ops.lost_leases(c, leases))

    def append_output(
        self, task_id: str, token: str, attempt: int, chunks: Sequence[tuple[str, str]]
    ) -> asyncio.Future[bool]:
        """Queue output of a running attempt; resolves False if the lease is lost.

        Queued at once (not when awaited), so writes queued after it apply after it.
        """
        return self.db.write(
            lambda c, fx: lease_ops.append_output(c, fx, task_id, token, attempt, chunks),
            durable=False,
        )

    async def finish(self, task_id: str, token: str, outcome: Outcome) -> str | None:
        """End an attempt; the task's new status, or None if the lease was lost.

        Finishes are batched: while one batch is being written, the next ones gather, and go
        together as one set-based write (see :func:`lease_ops.finish_many`). An idle store
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
        now = now_us()
        items = [(task_id, token, outcome) for task_id, token, outcome, _ in batch]
        write = self.db.write(lambda c, fx: lease_ops.finish_many(c, fx, items, now, self._rng))
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
        now = now_us()
        return await self.db.write(lambda c, fx: lease_ops.release(c, fx, task_id, token, now))

    async def reap_expired(self) -> list[str]:
        """Settle expired leases as failed attempts."""
        now = now_us()
        return await self.db.write(lambda c, fx: lease_ops.reap_expired(c, fx, now, rng=self._rng))

    # ------------------------------------------------------------------ registry and housekeeping

    async def register_worker(self, info: worker_ops.WorkerInfo) -> None:
        """Record a starting worker."""
        now = now_us()
        await self.db.write(lambda c, fx: worker_ops.register_worker(c, fx, info, now))

    async def touch_worker(self, info: worker_ops.WorkerInfo, running: int) -> None:
        """Say the worker is alive (a write that need not wait for the disk)."""
        now = now_us()
        await self.db.write(
            lambda c, fx: worker_ops.touch_worker(c, fx, info, running, now), durable=False
        )

    async def deregister_worker(self, worker_id: str) -> None:
        """Forget a worker that stops cleanly."""
        await self.db.write(lambda c, fx: worker_ops.deregister_worker(c, fx, worker_id))

    async def list_workers(self, stale_after_s: float) -> list[dict[str, Any]]:
        """Every registered worker, marked ``stale`` when silent for ``stale_after_s``."""
        now = now_us()
        stale_us = int(stale_after_s * 1_000_000)
        return await self.db.read(lambda c: worker_ops.list_workers(c, now, stale_us))

    async def prune(self, retention_s: float | None) -> dict[str, int]:
        """Delete what is older than its retention, batch by batch; the rows deleted per kind.

        Finished tasks (with their attempts, output and edges) and events go after
        ``retention_s`` (never, when None); idempotency keys after a day; workers silent for
        an hour. Each batch is its own short transaction, queued like any other write.
        """
        now = now_us()
        jobs: list[tuple[str, Callable[[Any, Effects, int, int], int], int]] = [
            (
                "idempotency_keys",
                prune_ops.prune_idempotency_keys,
                now - IDEMPOTENCY_RETENTION_S * 1_000_000,
            ),
            ("workers", prune_ops.prune_workers, now - WORKER_RETENTION_S * 1_000_000),
        ]
        if retention_s is not None:
            before = now - int(retention_s * 1_000_000)
            jobs += [
                ("tasks", prune_ops.prune_tasks, before),
                ("events", prune_ops.prune_events, before),
            ]
        deleted: dict[str, int] = {}
        for kind, prune, before in jobs:
            total = 0
            while True:
                count = await self.db.write(
                    functools.partial(_prune_batch, prune, before), durable=False
                )
                total += count
                if count < PRUNE_BATCH:
                    break
                await asyncio.sleep(0)  # let other writes in between batches
            deleted[kind] = total
        return deleted
