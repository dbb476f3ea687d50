"""The store: tables, migrations and every SQL statement taskqueue runs.

Where each thing lives (the file names say it): ``tasks``, ``transitions`` (every status
change), ``leases``, ``attempts`` (and their output), ``dependencies``, ``projects``,
``workers`` (the registry), ``housekeeping``, ``outbox`` (events), ``idempotency``; the commit
``pipeline``; the ``dialect`` and ``backend`` seam, with one module per database (``sqlite``,
``postgres``); the ``codec`` (rows to wire dicts); the ``schema`` and its ``migrations``.
"""

from taskqueue.store.backend import (
    check_database,
    describe_database,
    is_postgres_url,
    resolve_sqlite_path,
    secrets_of,
)
from taskqueue.store.errors import Conflict, InvalidInput, NotFound, StoreError, Unavailable
from taskqueue.store.idempotency import IdempotencyRequest
from taskqueue.store.store import Store
from taskqueue.store.transitions import Claimed, Outcome
from taskqueue.store.workers import WorkerInfo

__all__ = [
    "Claimed",
    "Conflict",
    "IdempotencyRequest",
    "InvalidInput",
    "NotFound",
    "Outcome",
    "Store",
    "StoreError",
    "Unavailable",
    "WorkerInfo",
    "check_database",
    "describe_database",
    "is_postgres_url",
    "resolve_sqlite_path",
    "secrets_of",
]
