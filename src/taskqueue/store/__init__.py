"""The store: tables, migrations and every SQL statement taskqueue runs."""

from taskqueue.store.errors import Conflict, InvalidInput, NotFound, StoreError, Unavailable
from taskqueue.store.lease_ops import Claimed, Outcome
from taskqueue.store.store import Store, describe_database, is_postgres_url, resolve_sqlite_path
from taskqueue.store.task_ops import IdempotencyRequest

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
    "describe_database",
    "is_postgres_url",
    "resolve_sqlite_path",
]
