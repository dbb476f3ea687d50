"""Composition: the store, the API app and the workers that make up a taskqueue service.

The API (:mod:`taskqueue.server`) and the worker (:mod:`taskqueue.worker`) know nothing of
each other: both work on a :class:`~taskqueue.store.Store`. This module opens the store and
puts them together, for ``taskqueue server`` (the API with an embedded worker, or alone) and
``taskqueue worker`` (a worker alone). Install ``taskqueue-sdk[server]`` to use it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette

from taskqueue.integrations.scheduler import Scheduler, file_clock
from taskqueue.integrations.webhook_dispatcher import WebhookDispatcher
from taskqueue.server import ServerSettings, Service, create_app
from taskqueue.server.keyring import Keyring
from taskqueue.store import Store, describe_database
from taskqueue.worker import Worker, WorkerSettings

__all__ = [
    "ServerOptions",
    "UnusableDatabase",
    "build_server",
    "build_worker",
    "check_keys",
    "open_store",
]

#: What the log calls the worker that runs inside ``taskqueue server``.
EMBEDDED_WORKER = "embedded worker"


class UnusableDatabase(Exception):
    """The database could not be opened or brought up to date; ``__cause__`` says why."""

    def __init__(self, db: str) -> None:
        super().__init__(f"cannot use the database {describe_database(db)}")
        #: The database as it was given (a path or a URL, password included).
        self.db: str = db


@dataclass
class ServerOptions:
    """What ``taskqueue server`` is made of."""

    #: SQLite file path, ``sqlite:///`` URL or ``postgresql://`` URL.
    db: str = "taskqueue.db"
    #: On PostgreSQL, LISTEN for other processes' commits (else poll only).
    listen: bool = True
    #: The embedded worker's settings; None serves the API only.
    worker: WorkerSettings | None = field(default_factory=WorkerSettings)
    #: What the API itself needs.
    api: ServerSettings = field(default_factory=ServerSettings)
    #: Publish every event to the NATS server(s) at this URL (needs ``taskqueue-sdk[nats]``).
    nats_url: str | None = None
    #: For tests: the scheduler goes by the time in this file (seconds) while it exists.
    scheduler_clock: Path | None = None


def open_store(db: str, *, listen: bool = True, changes: bool = True) -> Store:
    """A store on ``db``, migrated (the store remembers it, so starting it does not migrate).

    ``changes=False`` suits a process that waits on no task (a worker without the API): it
    hears of runnable work, not of every change. Raises :class:`UnusableDatabase`.
    """
    store = Store(db, listen=listen, changes=changes)
    try:
        store.migrate()
    except Exception as exc:
        raise UnusableDatabase(db) from exc
    return store


def build_server(options: ServerOptions) -> tuple[Starlette, Store]:
    """The API app (with its embedded worker, if any) and the store it serves.

    The store is migrated here and started by the app; the app registers its embedded worker
    before it serves, so ``GET /api/health`` counts it from the first request.
    """
    store = open_store(options.db, listen=options.listen)
    services: list[Service] = []
    if options.worker is not None:
        services.append(Worker(store, options.worker, name=EMBEDDED_WORKER))
    if options.nats_url is not None:
        from taskqueue.integrations.nats import NatsPublisher

        services.append(NatsPublisher(store, options.nats_url))
    if options.api.webhooks.dispatch:
        services.append(WebhookDispatcher(store, options.api.webhooks))
    clock = file_clock(options.scheduler_clock) if options.scheduler_clock else None
    services.append(Scheduler(store, clock))
    return create_app(options.api, store, services), store


def build_worker(db: str, settings: WorkerSettings, *, listen: bool = True) -> tuple[Worker, Store]:
    """A standalone worker and its store (migrated, not started: start it in the loop)."""
    # A worker without the API waits on no task: it needs wake-ups, not every change.
    store = open_store(db, listen=listen, changes=False)
    return Worker(store, settings), store


def check_keys(db: str, secret_file: Path | None) -> bool:
    """Check, before serving, that the server can check this database's API keys.

    Whether the database has any key. Makes the secret file beside a SQLite database if it is
    missing; raises :class:`~taskqueue.apikeys.PepperError` when keys exist and the pepper is
    missing or is not the one they were made with.
    """

    async def check() -> bool:
        store = Store(db)
        store.start()
        try:
            keyring = Keyring(store, secret_file)
            await keyring.start()
            return keyring.any_keys
        finally:
            await store.close()

    return asyncio.run(check())
