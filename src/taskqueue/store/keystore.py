"""The store's API keys, for the key ring, ``/api/keys`` and ``taskqueue keys``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from taskqueue.store import keys
from taskqueue.store.backend import Backend
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx

__all__ = ["KeyStore"]

T = TypeVar("T")


class _Write(Protocol):
    """The store's way to queue a write (``durable=False``: need not wait for the disk)."""

    def __call__(
        self, fn: Callable[[Tx, Effects], T], *, durable: bool = True
    ) -> asyncio.Future[T]: ...


class KeyStore:
    """Reads and changes of API keys."""

    def __init__(self, db: Backend, write: _Write, clock: Callable[[], int]) -> None:
        self.db: Backend = db
        self._write: _Write = write
        self._clock: Callable[[], int] = clock

    async def check_pepper(self, fingerprint: str) -> bool:
        """Whether the pepper named ``fingerprint`` is the one the keys were made under."""
        now = self._clock()
        return await self._write(lambda c, fx: keys.check_fingerprint(c, fingerprint, now))

    async def create(self, row: dict[str, Any]) -> dict[str, Any]:
        """Store a new key (its hash or public id, never the key) and its event."""
        now = self._clock()
        return await self._write(lambda c, fx: keys.insert_key(c, fx, row, now))

    async def rows(self) -> list[dict[str, Any]]:
        """Every key with its hash, for the key ring."""
        return await self.db.read(keys.read_keys)

    async def shown(self) -> list[dict[str, Any]]:
        """Every key as the API shows it."""
        now = self._clock()
        return await self.db.read(lambda c: keys.list_keys(c, now))

    async def find(self, ident: str) -> dict[str, Any]:
        """The key with this id, prefix or unique start of an id."""
        now = self._clock()
        return await self.db.read(lambda c: keys.find_key(c, ident, now))

    async def revoke(self, ident: str) -> dict[str, Any]:
        """Revoke a key."""
        now = self._clock()
        return await self._write(lambda c, fx: keys.revoke_key(c, fx, ident, now))

    async def expire(self, key_id: str, at: int) -> None:
        """Make a key expire at ``at`` (microseconds), unless it expires sooner."""
        now = self._clock()
        await self._write(lambda c, fx: keys.expire_key(c, fx, key_id, at, now))

    async def touch(self, used: dict[str, int]) -> None:
        """Record keys' last use (one write for many requests; need not wait for the disk)."""
        await self._write(lambda c, fx: keys.touch_keys(c, fx, used), durable=False)

    async def record_denials(self, denials: list[dict[str, Any]]) -> None:
        """Write the ``auth.denied`` events of refused requests."""
        await self._write(lambda c, fx: keys.record_denials(c, fx, denials), durable=False)
