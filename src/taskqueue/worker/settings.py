"""How a worker behaves: its settings and its default identity.

Kept apart from :mod:`taskqueue.worker.worker` so that the worker and its background loops
(:mod:`taskqueue.worker.upkeep`) both depend on the settings without depending on each other.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from taskqueue._limits import LimitPolicy
from taskqueue.security import RunAs

__all__ = ["WorkerSettings", "default_worker_id"]


def default_worker_id() -> str:
    """``host:pid:random``: unique per worker process, readable in attempt records."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"


@dataclass
class WorkerSettings:
    """How a worker behaves; every field has a default that suits one machine."""

    concurrency: int = 16
    queues: Sequence[str] = ("default",)
    lease_seconds: float = 30.0
    #: How often an idle worker looks for work another process made runnable (or a retry that
    #: came due). None picks by database: 0.02 s on SQLite (a read of a local file, and the
    #: only way to hear of another process's commits), 0.5 s on PostgreSQL while NOTIFYs
    #: arrive (they wake the worker at once), 0.1 s when they do not.
    poll_interval: float | None = None
    cancel_check_interval: float = 0.5
    kill_grace_seconds: float = 5.0
    drain_timeout: float = 30.0
    output_limit: int = 1024 * 1024
    worker_id: str = field(default_factory=default_worker_id)
    #: Finished tasks and events older than this are pruned (None: kept forever).
    retention_hours: float | None = 168.0
    housekeeping_interval: float = 60.0
    #: How often the worker tells the registry it is alive.
    presence_interval: float = 5.0
    #: The unprivileged user commands run as (the worker runs as root); None: as the worker.
    run_as: RunAs | None = None
    #: The languages offered for code tasks (names or aliases); None: every one found. Either
    #: way only those whose toolchain answers the worker's probe at start are offered.
    languages: Sequence[str] | None = None
    #: The operator's limits: defaults for what a task leaves out, and maxima.
    limits: LimitPolicy = field(default_factory=LimitPolicy)
