"""The worker: claims tasks into free slots, runs them, keeps their leases, reaps dead workers.

The main loop takes as many tasks as it has free slots in one claim, then waits for whichever
comes first: a commit that made work runnable (in-process), a freed slot, the poll interval
(work made runnable by another process, retries coming due), or a stop. Beside it run the
heartbeat (renews every lease held), the lease watch (notices cancels from other processes
within ``cancel_check_interval``), the reaper (turns expired leases of dead workers into
failed attempts), the presence beat (keeps this worker listed in ``GET /api/workers``) and
housekeeping (prunes what is past its retention).

When the database cannot be reached, running commands go on; claims, heartbeats and the
recording of results are retried with backoff until it answers again. A lease that expired in
the meantime is settled as the contract says: its attempt counts as failed and another worker
may take the task, and this worker, told so by its next heartbeat, stops its copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from taskqueue.models import FailureReason
from taskqueue.store import Claimed, Outcome, Store, Unavailable
from taskqueue.worker.running import AttemptRunner
from taskqueue.worker.settings import WorkerSettings
from taskqueue.worker.toolchains import probe_languages
from taskqueue.worker.upkeep import QuietLog, Upkeep

__all__ = ["Worker", "WorkerSettings"]

log: logging.Logger = logging.getLogger(__name__)

#: Output is sent to the store at least this often while a command runs...
FLUSH_INTERVAL_S = 0.1
#: ...or as soon as this much is waiting.
FLUSH_BYTES = 64 * 1024


@dataclass
class _Run:
    """A task this worker holds and runs."""

    claimed: Claimed
    halt: threading.Event = field(default_factory=threading.Event)  # stop the command
    lost: bool = False
    hand_back: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards pending output
    pending: list[tuple[str, bytes]] = field(default_factory=list)
    pending_bytes: int = 0
    flush_armed: bool = False
    flush_handle: asyncio.TimerHandle | None = None
    writes: list[asyncio.Future[bool]] = field(default_factory=list)


class Worker:
    """Runs tasks from one store.

    It is a service an API app can run beside itself (see ``taskqueue.server.Service``):
    :meth:`start` puts it in the registry, :meth:`run` runs tasks until :meth:`stop`.
    """

    def __init__(
        self, store: Store, settings: WorkerSettings | None = None, *, name: str = "worker"
    ) -> None:
        self.store: Store = store
        self.settings: WorkerSettings = settings or WorkerSettings()
        #: What the log calls this worker ("embedded worker" beside an API server).
        self.name: str = name
        self._registered = False
        self.running: dict[str, _Run] = {}
        self._active = 0  # slots taken by a running process
        self._ready: deque[_Run] = deque()  # claimed, waiting for a slot
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        #: What runs each attempt, in a runner thread.
        self._attempts = AttemptRunner(self.settings, self.worker_id)
        #: The languages this worker runs code tasks in, with their versions (probed here).
        self.languages: dict[str, str] = probe_languages(self.settings.languages)
        # One thread follows each running command (see taskqueue.worker.process).
        self._runners = ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="taskqueue-run"
        )
        store.on_stop_running(self._on_revoked)
        self._quiet = QuietLog()
        self._upkeep = Upkeep(
            store,
            self.settings,
            leases=self._leases,
            lose=self._lose,
            busy=lambda: self._active,
            languages=self.languages,
        )

    @property
    def worker_id(self) -> str:
        """The identity of this worker, recorded on every attempt it runs."""
        return self.settings.worker_id

    # ------------------------------------------------------------------ main loop

    async def start(self) -> None:
        """Register in the registry, so the worker is listed (and counted) from now on.

        :meth:`run` does it itself when it was not done before.
        """
        if not self._registered:
            self._registered = True
            await self._upkeep.register()

    async def run(self) -> None:
        """Claim and run tasks until :meth:`stop` is called, then drain."""
        await self.start()
        # Every command carries the deployment id: without it, no sweep could tell it ours.
        self._attempts.deployment = await self._upkeep.learn_deployment(self._stopping) or ""
        side = self._upkeep.start()
        await self._upkeep.sweep_orphans()
        try:
            try:
                await self._claim_loop()
            finally:
                # However the loop ended, running commands are finished or handed back.
                await self._drain()
        finally:
            for task in side:
                task.cancel()
            for task in side:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._upkeep.deregister()
            # The runners are idle now; joining them must still not block the event loop.
            await asyncio.to_thread(self._runners.shutdown, True)
            # fd-based removal, which follows no link a command may have left in its directory.
            self._attempts.remove_files()

    def stop(self) -> None:
        """Stop claiming; :meth:`run` then drains and returns."""
        self._stopping.set()

    async def _claim_loop(self) -> None:
        settings = self.settings
        work = self.store.work_available
        while not self._stopping.is_set():
            wanted = settings.concurrency - self._active - len(self._ready)
            if wanted > 0:
                work.clear()
                try:
                    claimed = await self.store.claim(
                        self.worker_id,
                        settings.queues,
                        wanted,
                        settings.lease_seconds,
                        list(self.languages),
                    )
                except Exception as exc:
                    self._quiet.warn("claim", "claim failed, retrying: %s", exc)
                    claimed = []
                    await self._sleep(1.0)
                for task in claimed:
                    run = _Run(task)
                    self.running[task.id] = run
                    self._ready.append(run)
                self._start_ready()
                if claimed:
                    continue
            self._slot_freed.clear()
            await self._wait_for_work(wanted > 0)

    async def _wait_for_work(self, have_slots: bool) -> None:
        waits = [
            asyncio.ensure_future(self._stopping.wait()),
            asyncio.ensure_future(self._slot_freed.wait()),
        ]
        if have_slots:
            waits.append(asyncio.ensure_future(self.store.work_available.wait()))
        deadline = time.monotonic() + self._poll_interval()
        try:
            while True:
                remaining = deadline - time.monotonic()
                done, _ = await asyncio.wait(
                    waits, timeout=max(remaining, 0), return_when=asyncio.FIRST_COMPLETED
                )
                if done or not have_slots:
                    return
                # Poll: work made runnable by another process, or a retry that came due.
                try:
                    if await self.store.has_runnable(self.settings.queues, list(self.languages)):
                        return
                except Exception as exc:  # a locked or unreadable file: keep polling
                    self._quiet.warn("poll", "checking for work failed: %s", exc)
                deadline = time.monotonic() + self._poll_interval()
        finally:
            for waiter in waits:
                waiter.cancel()

    def _poll_interval(self) -> float:
        if self.settings.poll_interval is not None:
            return self.settings.poll_interval
        return self.store.poll_interval()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _start_ready(self) -> None:
        """Start claimed tasks while slots are free (cancelled ones are dropped)."""
        while self._ready and self._active < self.settings.concurrency:
            run = self._ready.popleft()
            if run.lost:
                self._forget(run)
                continue
            self._active += 1
            task = asyncio.create_task(self._execute(run), name=f"taskqueue-task-{run.claimed.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ one task

    async def _execute(self, run: _Run) -> None:
        claimed = run.claimed
        holds_slot = True
        try:
            try:
                outcome = await self._run_command(run)
            except Exception as exc:  # a spawn failure is the task's failure, not the worker's
                log.warning("task %s could not run: %s", claimed.id, exc)
                outcome = Outcome(
                    False,
                    error=f"could not start the command: {exc}",
                    reason=FailureReason.SPAWN_ERROR,
                )
            # The process is gone: its slot can take the next task while the result commits.
            # The lease stays held (heartbeats go on) until the result is on disk.
            holds_slot = False
            self._free_slot()
            self._flush(run)
            # Writes apply in the order they are queued: output first, then the end of the
            # attempt, and both fenced by the lease, so there is no need to wait in between.
            await self._settle(run, outcome)
            for result in await asyncio.gather(*run.writes, return_exceptions=True):
                if isinstance(result, BaseException):
                    log.warning("task %s: some output could not be stored: %s", claimed.id, result)
        except Exception:
            log.exception("task %s: could not record its end; its lease will expire", claimed.id)
        finally:
            if holds_slot:
                self._free_slot()
            self._forget(run)

    async def _settle(self, run: _Run, outcome: Outcome) -> None:
        """Record how the attempt ended, retrying while the database is unreachable.

        Repeating is safe: the write is fenced by the lease token, so a repeat of a write that
        did commit (its answer lost with the connection) finds the lease gone and changes
        nothing. Retries stop when the lease is known lost, or at shutdown once the drain
        timeout has passed (the lease then expires and the task is retried elsewhere).
        """
        claimed = run.claimed
        delay = 0.1
        started = time.monotonic()
        while True:
            if run.lost:
                await self._say_lost(claimed)
                return
            try:
                if run.hand_back:
                    await self.store.release(claimed.id, claimed.lease_token)
                else:
                    await self.store.finish(claimed.id, claimed.lease_token, outcome)
                return
            except Unavailable as exc:
                if (
                    self._stopping.is_set()
                    and time.monotonic() - started > self.settings.drain_timeout
                ):
                    raise
                log.warning("task %s: recording its end failed (retrying): %s", claimed.id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _say_lost(self, claimed: Claimed) -> None:
        """Log why an attempt's result was not recorded, in words that say what happened."""
        try:
            status = (await self.store.get_task(claimed.id))["status"]
        except Exception:  # deleted, or the database is away: say what is known
            status = None
        if status == "Cancelled":
            log.info("task %s: cancelled while running; its command was stopped", claimed.id)
        else:
            log.info(
                "task %s: this worker no longer holds attempt %d (task now %s); its command was"
                " stopped and its result not recorded",
                claimed.id,
                claimed.attempt,
                status or "gone",
            )

    def _forget(self, run: _Run) -> None:
        # A newer attempt of the same task may already be here; leave that one alone.
        if self.running.get(run.claimed.id) is run:
            del self.running[run.claimed.id]

    def _free_slot(self) -> None:
        self._active -= 1
        if not self._stopping.is_set():
            self._start_ready()
        self._slot_freed.set()

    async def _run_command(self, run: _Run) -> Outcome:
        loop = asyncio.get_running_loop()

        def sink(stream: str, data: bytes) -> None:
            self._sink(run, loop, stream, data)

        return await loop.run_in_executor(
            self._runners, self._attempts.run, run.claimed, sink, run.halt.is_set
        )

    # ------------------------------------------------------------------ output

    def _sink(self, run: _Run, loop: asyncio.AbstractEventLoop, stream: str, data: bytes) -> None:
        """Take output, as the command wrote it, from a runner thread for the store.

        The event loop flushes it.
        """
        with run.lock:
            run.pending.append((stream, data))
            run.pending_bytes += len(data)
            if run.pending_bytes >= FLUSH_BYTES:
                action: Callable[[_Run], None] | None = self._flush
            elif not run.flush_armed:
                run.flush_armed = True
                action = self._arm_flush
            else:
                action = None
        if action is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(action, run)

    def _arm_flush(self, run: _Run) -> None:
        if run.flush_handle is None:
            loop = asyncio.get_running_loop()
            run.flush_handle = loop.call_later(FLUSH_INTERVAL_S, self._flush, run)

    def _flush(self, run: _Run) -> None:
        if run.flush_handle is not None:
            run.flush_handle.cancel()
            run.flush_handle = None
        with run.lock:
            chunks, run.pending, run.pending_bytes = run.pending, [], 0
            run.flush_armed = False
        if not chunks or run.lost:
            return
        claimed = run.claimed
        # Writes are applied in the order they are queued, so chunks keep their order
        # without waiting for each other.
        future = self.store.append_output(claimed.id, claimed.lease_token, claimed.attempt, chunks)
        run.writes.append(future)
        run.writes = [w for w in run.writes if _worth_keeping(w)]

    # ------------------------------------------------------------------ leases

    def _lose(self, task_id: str, token: str) -> None:
        """Stop the attempt held under ``token`` (never a newer attempt of the same task)."""
        run = self.running.get(task_id)
        if run is not None and run.claimed.lease_token == token and not run.lost:
            run.lost = True
            run.halt.set()

    def _on_revoked(self, leases: set[tuple[str, str]]) -> None:
        for task_id, token in leases:
            self._lose(task_id, token)

    def _leases(self) -> list[tuple[str, str]]:
        return [(r.claimed.id, r.claimed.lease_token) for r in self.running.values() if not r.lost]

    # ------------------------------------------------------------------ shutdown

    async def _drain(self) -> None:
        """Let running tasks finish up to the drain timeout, then hand back the rest."""
        waiting = [run for run in self._ready if not run.lost]
        self._ready.clear()
        if waiting:
            log.info("handing back %d claimed task(s) that had not started", len(waiting))
            await asyncio.gather(
                *[self.store.release(r.claimed.id, r.claimed.lease_token) for r in waiting],
                return_exceptions=True,
            )
            for run in waiting:
                self._forget(run)
        draining = len(self._tasks)
        if draining:
            log.info(
                "draining %d running task(s), up to %ss",
                draining,
                self.settings.drain_timeout,
            )
            await asyncio.wait(set(self._tasks), timeout=self.settings.drain_timeout)
        left = [run for run in self.running.values() if not run.lost]
        for run in list(self.running.values()):
            run.hand_back = True
            run.halt.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if draining or waiting:
            log.info(
                "stopped: %d task(s) finished while draining, %d handed back to run again",
                max(draining - len(left), 0),
                len(left) + len(waiting),
            )


def _worth_keeping(write: asyncio.Future[bool]) -> bool:
    """Whether an output write still has something to say: pending, failed, or lease lost."""
    if not write.done():
        return True
    if write.cancelled():
        return False
    return write.exception() is not None or write.result() is False
