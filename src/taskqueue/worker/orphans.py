"""Finding and stopping commands whose worker died, and nothing else.

A worker killed with SIGKILL cannot stop the commands it was running. Every command carries
``TASKQUEUE_TASK_ID``, ``TASKQUEUE_ATTEMPT``, ``TASKQUEUE_WORKER_ID`` (with the worker's start
time) and ``TASKQUEUE_DEPLOYMENT`` in its environment, so another worker on the same host finds
them in ``/proc``: when it reaps an expired attempt, and once when it starts. Anyone can put
those variables in a process's environment, so a process is killed only when everything about
it says this deployment started it and nobody holds its attempt any more:

* its ``TASKQUEUE_DEPLOYMENT`` is this database's deployment id;
* its worker id names this host, and the worker process it names is gone (the pid together
  with the start time, so a reused pid is not taken for it);
* this database recorded that attempt of that task, run by that worker id, and no live lease
  holds it (a command whose worker died may still be held until its lease expires).

A process is recognised by its own environment, never by a pid alone, and is looked at again
(same pid, same start time, same group) just before its group is killed.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["AttemptProcess", "find_attempt_processes", "kill_groups", "process_start"]

log: logging.Logger = logging.getLogger(__name__)

_ID = b"TASKQUEUE_TASK_ID="
_ATTEMPT = b"TASKQUEUE_ATTEMPT="
_WORKER = b"TASKQUEUE_WORKER_ID="
_WORKER_START = b"TASKQUEUE_WORKER_START="
_DEPLOYMENT = b"TASKQUEUE_DEPLOYMENT="


@dataclass(frozen=True)
class AttemptProcess:
    """A process running (part of) one attempt of a task, as its environment tells."""

    pid: int
    pgid: int
    task_id: str
    attempt: int
    worker_pid: int | None = None
    worker_start: int | None = None
    #: ``TASKQUEUE_WORKER_ID``: ``host:pid:random``.
    worker_id: str | None = None
    #: ``TASKQUEUE_DEPLOYMENT``: the deployment id of the database the attempt belongs to.
    deployment: str | None = None
    #: When this process started (clock ticks since boot), to know it again before a kill.
    started: int | None = None

    @property
    def worker_host(self) -> str | None:
        """The host named by the worker id."""
        if self.worker_id is None or self.worker_id.count(":") < 2:
            return None
        return self.worker_id.rsplit(":", 2)[0]

    def worker_alive(self) -> bool:
        """Whether the worker process that started this command still runs.

        The pid alone could have been reused by now: the process there must also have started
        when the worker did.
        """
        if self.worker_pid is None or self.worker_start is None:
            return False
        return process_start(self.worker_pid) == self.worker_start

    def may_be_ours(self, deployment: str, host: str) -> bool:
        """Whether this deployment may have started it on ``host``, and its worker is gone.

        What remains to prove it, the attempt recorded in the database and no longer held, is
        the caller's question to the store.
        """
        return (
            self.deployment == deployment
            and self.worker_host == host
            and self.worker_id is not None
            and not self.worker_alive()
        )

    def still_the_same(self) -> bool:
        """Whether the process found is still there, unchanged, in the same group."""
        if self.started is None or process_start(self.pid) != self.started:
            return False
        try:
            return os.getpgid(self.pid) == self.pgid
        except OSError:
            return False


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (None: there is no such process).

    Together with the pid, this names one process for as long as the machine runs.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: count from its end.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):  # pragma: no cover - not Linux's format
        return None


def _environ_of(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return handle.read()
    except OSError:  # gone, or not ours to read
        return None


def find_attempt_processes(proc: str = "/proc") -> list[AttemptProcess]:
    """Every process on this host whose environment names a taskqueue attempt."""
    found: list[AttemptProcess] = []
    own = os.getpid()
    try:
        entries = os.listdir(proc)
    except OSError:  # pragma: no cover - no /proc on this system
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == own:
            continue
        pid = int(entry)
        started = process_start(pid)
        environ = _environ_of(pid)
        if not environ or _ID not in environ:
            continue
        process = _parse(pid, environ, started)
        if process is not None:
            found.append(process)
    return found


def _parse(pid: int, environ: bytes, started: int | None) -> AttemptProcess | None:
    values: dict[bytes, str] = {}
    for item in environ.split(b"\0"):
        for name in (_ID, _ATTEMPT, _WORKER, _WORKER_START, _DEPLOYMENT):
            if item.startswith(name):
                values[name] = item[len(name) :].decode(errors="replace")
    task_id, attempt = values.get(_ID), values.get(_ATTEMPT, "")
    if task_id is None or not attempt.isdigit():
        return None
    worker_id = values.get(_WORKER)
    start = values.get(_WORKER_START, "")
    try:
        pgid = os.getpgid(pid)
    except OSError:
        return None
    return AttemptProcess(
        pid,
        pgid,
        task_id,
        int(attempt),
        _pid_of_worker_id(worker_id) if worker_id is not None else None,
        int(start) if start.isdigit() else None,
        worker_id=worker_id,
        deployment=values.get(_DEPLOYMENT),
        started=started,
    )


def _pid_of_worker_id(worker_id: str) -> int | None:
    """The pid in a ``host:pid:random`` worker id, if there is one."""
    parts = worker_id.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1])
    return None


def kill_groups(processes: Iterable[AttemptProcess]) -> int:
    """SIGKILL the process groups of ``processes``; how many groups were killed.

    Each attempt's command leads a group of its own (it was started with setsid), so killing
    the group stops the attempt and whatever it started, and nothing else. A group is killed
    only while the process found in it is still there, unchanged (a group id is not reused
    while a member lives); the caller's own group is never touched.
    """
    own = os.getpgid(0)
    killed = 0
    groups: dict[int, list[AttemptProcess]] = {}
    for process in processes:
        if process.pgid > 1 and process.pgid != own:
            groups.setdefault(process.pgid, []).append(process)
    for pgid, members in groups.items():
        witness = next((p for p in members if p.still_the_same()), None)
        if witness is None:
            continue
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            continue
        killed += 1
        log.warning(
            "killed process group %d (task %s, attempt %d), left running by worker %s, "
            "which stopped",
            pgid,
            witness.task_id,
            witness.attempt,
            witness.worker_id,
        )
    return killed
