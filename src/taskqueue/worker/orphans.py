"""Finding and stopping commands whose worker died.

A worker killed with SIGKILL cannot stop the commands it was running. Every command carries
``TASKQUEUE_TASK_ID``, ``TASKQUEUE_ATTEMPT`` and ``TASKQUEUE_WORKER_ID`` in its environment, so
another worker on the same host finds them in ``/proc``: when it reaps an expired attempt, and
once when it starts, it kills the process group of every attempt whose worker process is gone
and that is no longer held. A process is recognised by its own environment, never by a pid
that could have been reused.

Both conditions matter: a command whose worker is alive is that worker's to stop (it may serve
another database on the same host, where the attempt is held), and a command whose worker died
may still be held if the lease has not expired yet.
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


@dataclass(frozen=True)
class AttemptProcess:
    """A process running (part of) one attempt of a task."""

    pid: int
    pgid: int
    task_id: str
    attempt: int
    worker_pid: int | None = None
    worker_start: int | None = None

    def worker_alive(self) -> bool:
        """Whether the worker process that started this command still runs.

        The pid alone could have been reused by now: the process there must also have started
        when the worker did.
        """
        if self.worker_pid is None or self.worker_start is None:
            return False
        return process_start(self.worker_pid) == self.worker_start


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
    """Every process on this host that a taskqueue worker started for an attempt."""
    found: list[AttemptProcess] = []
    own = os.getpid()
    try:
        entries = os.listdir(proc)
    except OSError:  # pragma: no cover - no /proc on this system
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == own:
            continue
        environ = _environ_of(int(entry))
        if not environ or _ID not in environ:
            continue
        task_id = attempt = None
        worker_pid: int | None = None
        worker_start: int | None = None
        for item in environ.split(b"\0"):
            if item.startswith(_ID):
                task_id = item[len(_ID) :].decode(errors="replace")
            elif item.startswith(_ATTEMPT):
                attempt = item[len(_ATTEMPT) :].decode(errors="replace")
            elif item.startswith(_WORKER):
                worker_pid = _pid_of_worker_id(item[len(_WORKER) :].decode(errors="replace"))
            elif item.startswith(_WORKER_START) and item[len(_WORKER_START) :].isdigit():
                worker_start = int(item[len(_WORKER_START) :])
        if task_id is None or attempt is None or not attempt.isdigit():
            continue
        try:
            pgid = os.getpgid(int(entry))
        except OSError:
            continue
        found.append(
            AttemptProcess(int(entry), pgid, task_id, int(attempt), worker_pid, worker_start)
        )
    return found


def _pid_of_worker_id(worker_id: str) -> int | None:
    """The pid in a ``host:pid:random`` worker id, if there is one."""
    parts = worker_id.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1])
    return None


def kill_groups(processes: Iterable[AttemptProcess]) -> int:
    """SIGKILL the process groups of ``processes``; how many groups were killed.

    Each attempt's command leads a group of its own (it was started with setsid), so killing
    the group stops the attempt and whatever it started, and nothing else. The caller's own
    group is never touched.
    """
    own = os.getpgid(0)
    killed = 0
    for pgid in {p.pgid for p in processes if p.pgid > 1 and p.pgid != own}:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            continue
        killed += 1
        log.warning("killed process group %d, left running by a worker that stopped", pgid)
    return killed
