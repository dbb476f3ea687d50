"""Per-task resource limits: the wire model, shared by the SDK, the server and the worker.

A task may carry ``limits``: CPU seconds, address space (bytes), file size (bytes), processes
and open files, each applied as an rlimit in the command's process before it runs its
command, and ``network: false`` (a network namespace of its own, with only a loopback
device). A limit left out falls to the operator's default, if any (see
:class:`LimitPolicy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, StrictBool

from taskqueue._fields import StrictInteger
from taskqueue._input import _Input

__all__ = ["LIMIT_NAMES", "LimitPolicy", "TaskLimits", "parse_limit"]

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
#: The largest value of every byte limit (1 PiB): beyond it, a limit means nothing.
_MAX_BYTES = 2**50

CpuSeconds = Annotated[
    int,
    Field(ge=1, le=7 * 24 * 3600, description="CPU seconds (RLIMIT_CPU): SIGXCPU past them."),
    StrictInteger,
]
MemoryBytes = Annotated[
    int,
    Field(
        ge=16 * MIB,
        le=_MAX_BYTES,
        description="Address space in bytes (RLIMIT_AS), applied in KiB (rounded down).",
    ),
    StrictInteger,
]
FileSizeBytes = Annotated[
    int,
    Field(
        ge=512,
        le=_MAX_BYTES,
        description="Largest file the command may write, in bytes (RLIMIT_FSIZE), applied in"
        " 512-byte blocks (rounded down).",
    ),
    StrictInteger,
]
Processes = Annotated[
    int,
    Field(
        ge=1,
        le=1_000_000,
        description="Processes of the user the command runs as (RLIMIT_NPROC); binds only a"
        " worker started with --run-as (root is not bound by it).",
    ),
    StrictInteger,
]
OpenFiles = Annotated[
    int,
    Field(ge=8, le=1_048_576, description="Open file descriptors (RLIMIT_NOFILE)."),
    StrictInteger,
]


class TaskLimits(_Input):
    """The limits a task's command runs within; a field left out is not limited by the task."""

    cpu_seconds: CpuSeconds | None = None
    memory_bytes: MemoryBytes | None = None
    file_size_bytes: FileSizeBytes | None = None
    processes: Processes | None = None
    open_files: OpenFiles | None = None
    network: Annotated[
        StrictBool,
        Field(
            description="false: the command runs in a network namespace of its own, with no"
            " network at all (its loopback is down); refused by a worker that cannot make one."
            " true or left out: the host's network."
        ),
    ] = True

    def stored(self) -> dict[str, Any]:
        """The limits given, as stored and served (fields left out are not listed)."""
        return self.model_dump(exclude_defaults=True)


#: The numeric limits, by field name.
LIMIT_NAMES = ("cpu_seconds", "memory_bytes", "file_size_bytes", "processes", "open_files")
_SUFFIXES = {"k": KIB, "m": MIB, "g": GIB, "t": 1024 * GIB}


def parse_limit(text: str) -> tuple[str, int]:
    """``NAME=VALUE`` of an operator option (bytes may end in K, M, G or T); ValueError if bad."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in LIMIT_NAMES:
        raise ValueError(f"expected NAME=VALUE with NAME one of {', '.join(LIMIT_NAMES)}")
    value = value.strip().lower()
    scale = 1
    if name.endswith("_bytes") and value[-1:] in _SUFFIXES:
        scale, value = _SUFFIXES[value[-1]], value[:-1]
    if not value.isdigit():
        raise ValueError(f"{name}: {value!r} is not a whole number")
    number = int(value) * scale
    bounds = TaskLimits.model_fields[name].metadata
    try:
        TaskLimits.model_validate({name: number})
    except ValueError as exc:
        raise ValueError(f"{name}: {number} is out of bounds ({bounds})") from exc
    return name, number


@dataclass(frozen=True)
class LimitPolicy:
    """The operator's limits: defaults for limits a task leaves out, and maxima.

    A task asking more than a maximum is refused at creation (422 naming the field). A worker
    runs a task with its own policy applied: what the task leaves out falls to the default,
    or the maximum when there is no default; what it asks above the maximum (a task made
    through another server) is lowered to the maximum.
    """

    defaults: dict[str, int] = field(default_factory=dict)
    maxima: dict[str, int] = field(default_factory=dict)

    def effective(self, limits: dict[str, Any] | None) -> dict[str, Any]:
        """The limits a command runs with: the task's, the defaults, within the maxima."""
        given = dict(limits or {})
        for name in LIMIT_NAMES:
            value = given.get(name)
            if value is None:
                value = self.defaults.get(name, self.maxima.get(name))
            ceiling = self.maxima.get(name)
            if value is not None and ceiling is not None:
                value = min(value, ceiling)
            if value is None:
                given.pop(name, None)
            else:
                given[name] = value
        return given

    def over_maxima(self, limits: TaskLimits | None) -> list[tuple[str, int, int]]:
        """The fields of ``limits`` above a maximum: (name, asked, maximum)."""
        if limits is None:
            return []
        asked = limits.model_dump()
        return [
            (name, asked[name], ceiling)
            for name, ceiling in self.maxima.items()
            if asked.get(name) is not None and asked[name] > ceiling
        ]
