"""Applying a task's limits to its command, and naming the limit a failed command hit.

``posix_spawn`` cannot set rlimits, so the command's first shell does, with ``ulimit``, before
it ``exec``s the command's own shell: the limits are set in the very process that becomes the
command, as the user the command runs as, and every process it starts inherits them. CPU
seconds get a soft limit (SIGXCPU when reached) and a hard limit one second later (SIGKILL,
for a command that ignores SIGXCPU); the other limits are set soft and hard alike.

``network: false`` runs the whole under ``unshare --net`` (a new network namespace with only
a loopback device, left down): it needs root or CAP_SYS_ADMIN and util-linux's ``unshare``.
A worker that has neither refuses such a task's attempt, never running it with the network.

A failure is put down to a limit from what the kernel says and the command printed:

* SIGXCPU (or SIGKILL after using the CPU seconds, or an exit of 128 + SIGXCPU from a shell
  in between) → ``cpu_limit``; the CPU time comes from ``wait4``;
* SIGXFSZ (or an exit of 128 + SIGXFSZ), or a non-zero exit whose stderr ends with EFBIG
  ("File too large": a program that ignores SIGXFSZ, as Python does) → ``file_size_limit``;
* a non-zero exit whose stderr ends with an allocation failure (MemoryError, "Cannot allocate
  memory", ``std::bad_alloc``, "out of memory") → ``memory_limit``: RLIMIT_AS makes
  allocations fail, it sends no signal, so the program's own report is the only evidence;
* a non-zero exit whose stderr says a fork failed (EAGAIN, "Cannot fork") → ``process_limit``.

Each only when the task ran with that limit.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskqueue._enums import FailureReason
from taskqueue._limits import LimitPolicy
from taskqueue.security import RunAs

__all__ = [
    "Confinement",
    "NetworkUnavailable",
    "confine",
    "limit_failure",
    "limits_prelude",
    "network_prefix",
]

_MEMORY_WORDS = re.compile(
    r"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory|memory allocation"
    r" failed|failed to allocate|Out of memory|ENOMEM",
)
_FORK_WORDS = re.compile(
    r"Resource temporarily unavailable|Cannot fork|can't fork|fork failed|EAGAIN"
    r"|retry: No child processes",
)
_FILES_WORDS = re.compile(r"Too many open files|EMFILE")
_SIZE_WORDS = re.compile(r"File too large|EFBIG")


class NetworkUnavailable(RuntimeError):
    """The worker cannot run a command without the network (``network: false``)."""


def limits_prelude(limits: Mapping[str, Any]) -> str:
    """The ``ulimit`` commands that set ``limits`` in the command's first shell ("" if none)."""
    steps: list[str] = []
    cpu = limits.get("cpu_seconds")
    if cpu is not None:
        # Soft first: dash's -H keeps the soft limit, which may not exceed the hard one.
        steps += [f"ulimit -S -t {int(cpu)}", f"ulimit -H -t {int(cpu) + 1}"]
    memory = limits.get("memory_bytes")
    if memory is not None:
        steps.append(f"ulimit -v {max(int(memory) // 1024, 1)}")
    size = limits.get("file_size_bytes")
    if size is not None:
        steps.append(f"ulimit -f {max(int(size) // 512, 1)}")
    files = limits.get("open_files")
    if files is not None:
        steps.append(f"ulimit -n {int(files)}")
    processes = limits.get("processes")
    if processes is not None:
        steps.append(f"ulimit -p {int(processes)}")
    if not steps:
        return ""
    failed = 'echo "taskqueue: the task\'s limits cannot be applied" >&2; exit 126'
    return " && ".join(steps) + f" || {{ {failed}; }}"


def _can_unshare() -> bool:
    """Whether this process may make network namespaces: root, or CAP_SYS_ADMIN."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 21))
    except OSError:
        return False
    return False


def network_prefix(limits: Mapping[str, Any], run_as: RunAs | None) -> list[str]:
    """What the command's argv starts with for ``network: false`` ([] when it may use it).

    The namespace is made as the worker (root); with ``run_as``, util-linux's ``setpriv``
    then takes the user's ids and groups before the command's shell starts, so the argv is
    spawned as the worker and drops to the user itself. Raises :class:`NetworkUnavailable`,
    saying why, when the worker cannot isolate the command.
    """
    if limits.get("network", True):
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        raise NetworkUnavailable(
            "network: false needs util-linux's unshare on the worker's PATH; this worker has"
            " none, so the task was not run"
        )
    if not _can_unshare():
        raise NetworkUnavailable(
            "network: false needs a worker running as root or with CAP_SYS_ADMIN (to make a"
            " network namespace); this one has neither, so the task was not run"
        )
    prefix = [unshare, "--net", "--"]
    if run_as is None:
        return prefix
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise NetworkUnavailable(
            "network: false with --run-as needs util-linux's setpriv on the worker's PATH;"
            " this worker has none, so the task was not run"
        )
    groups = ",".join(str(g) for g in run_as.groups) if run_as.groups else None
    return [
        *prefix,
        setpriv,
        f"--reuid={run_as.uid}",
        f"--regid={run_as.gid}",
        f"--groups={groups}" if groups else "--clear-groups",
        "--",
    ]


@dataclass(frozen=True)
class Confinement:
    """How one attempt's command is confined: its limits, and how they are applied."""

    #: The limits it runs with (the task's, the worker's defaults, within its maxima).
    limits: dict[str, Any]
    #: The ``ulimit`` commands of its first shell (see :func:`limits_prelude`).
    prelude: str
    #: What its argv starts with (see :func:`network_prefix`).
    prefix: list[str]
    #: The user it is spawned as: none when the prefix drops to the user itself.
    spawn_as: RunAs | None


def confine(
    policy: LimitPolicy, asked: Mapping[str, Any] | None, run_as: RunAs | None
) -> Confinement:
    """The confinement of a command whose task asked for ``asked``, on a worker with ``policy``.

    Raises :class:`NetworkUnavailable` when the worker cannot give what the task asks.
    """
    limits = policy.effective(dict(asked) if asked is not None else None)
    prefix = network_prefix(limits, run_as)
    return Confinement(limits, limits_prelude(limits), prefix, None if prefix else run_as)


def limit_failure(
    limits: Mapping[str, Any], exit_code: int, cpu_seconds: float, stderr_tail: str
) -> tuple[FailureReason, str] | None:
    """The limit a failed command ran into, and a message naming it; None if none is known."""
    if exit_code == 0:
        return None
    cpu = limits.get("cpu_seconds")
    xcpu = exit_code in (-signal.SIGXCPU, 128 + signal.SIGXCPU)
    if cpu is not None and (xcpu or (exit_code == -signal.SIGKILL and cpu_seconds >= cpu)):
        return FailureReason.CPU_LIMIT, f"stopped by its CPU limit of {cpu}s"
    size = limits.get("file_size_bytes")
    xfsz = exit_code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ)
    if size is not None and (xfsz or _SIZE_WORDS.search(stderr_tail)):
        return FailureReason.FILE_SIZE_LIMIT, f"stopped by its file-size limit of {size} bytes"
    memory = limits.get("memory_bytes")
    if memory is not None and _MEMORY_WORDS.search(stderr_tail):
        return FailureReason.MEMORY_LIMIT, f"ran out of its memory limit of {memory} bytes"
    processes = limits.get("processes")
    if processes is not None and _FORK_WORDS.search(stderr_tail):
        return (
            FailureReason.PROCESS_LIMIT,
            f"could not start a process past its limit of {processes}",
        )
    files = limits.get("open_files")
    if files is not None and _FILES_WORDS.search(stderr_tail):
        return FailureReason.OPEN_FILES_LIMIT, f"ran out of its open-files limit of {files}"
    return None
