"""Background services: work an API process runs beside the app, such as an embedded worker.

The app knows them only through :class:`Service`, so the API does not depend on what they
are: ``taskqueue server`` hands it a worker (see :mod:`taskqueue.service`), a test or another
program may hand it anything else, or nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

__all__ = ["Service", "run_services"]

log: logging.Logger = logging.getLogger(__name__)


class Service(Protocol):
    """Something that runs in the background for as long as the app serves."""

    @property
    def name(self) -> str:
        """What to call it in the log ("embedded worker")."""

    async def start(self) -> None:
        """Get ready; the app starts serving once every service's ``start`` has returned."""

    async def run(self) -> None:
        """Do the work until :meth:`stop` is called, then return."""

    def stop(self) -> None:
        """Ask :meth:`run` to finish (it may take a while: a worker drains)."""


@contextlib.asynccontextmanager
async def run_services(services: Sequence[Service]) -> AsyncIterator[None]:
    """Start ``services`` one by one and run them as tasks; stop and await them on exit.

    A service that ends before it is asked to is logged; the others go on. If one fails to
    start, those already running are stopped and the failure propagates.
    """
    running: list[tuple[Service, asyncio.Task[None]]] = []
    stopping = False

    def ended(service: Service, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("the %s stopped: %r", service.name, error)
        elif not stopping:
            log.error("the %s stopped unexpectedly", service.name)

    try:
        for service in services:
            await service.start()
            task = asyncio.create_task(service.run(), name=f"taskqueue-{service.name}")
            task.add_done_callback(functools.partial(ended, service))
            running.append((service, task))
        yield
    finally:
        stopping = True
        for service, _ in running:
            service.stop()
        for _, task in running:
            with contextlib.suppress(Exception):  # already logged by ended()
                await task
