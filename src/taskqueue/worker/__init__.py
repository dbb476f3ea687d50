"""Workers: the claim loop, leases, and the processes that run commands."""

from taskqueue.worker.worker import Worker, WorkerSettings

__all__ = ["Worker", "WorkerSettings"]
