"""Workers: the claim loop, leases, and the processes that run commands."""

from taskqueue.worker.settings import WorkerSettings, default_worker_id
from taskqueue.worker.worker import Worker

__all__ = ["Worker", "WorkerSettings", "default_worker_id"]
