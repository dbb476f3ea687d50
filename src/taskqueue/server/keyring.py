"""The server's copy of the API keys: looked up in memory, re-read from the database often.

Checking a key costs a dictionary lookup by its prefix and one HMAC, never a database read.
The ring re-reads every key each :data:`REFRESH_S` (a revocation made anywhere, by another
server or by ``taskqueue keys revoke`` on the database, stops a key within that time) and
writes the keys' last-used times and the refused requests' audit events in one batch each
:data:`FLUSH_S`, so a request never waits for a write of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskqueue.apikeys import (
    PAIR_PREFIX,
    PepperError,
    fingerprint,
    hash_key,
    load_pepper,
    pair_secret,
    prefix_of,
)
from taskqueue.store import Store, is_postgres_url, resolve_sqlite_path
from taskqueue.store.codec import loads

__all__ = [
    "FLUSH_S",
    "MAX_DENIALS_PER_FLUSH",
    "REFRESH_S",
    "KeyRecord",
    "Keyring",
    "secret_file_for",
]

log: logging.Logger = logging.getLogger(__name__)

#: How often the ring re-reads the keys, in seconds.
REFRESH_S = 0.5
#: How often last-used times and audit events are written, in seconds.
FLUSH_S = 2.0
#: Refused requests recorded one event each per flush; past it, one event counts the rest.
MAX_DENIALS_PER_FLUSH = 200
#: Verified bearer keys whose hashes are kept at most.
MAX_VERIFIED = 1024


@dataclass(frozen=True)
class KeyRecord:
    """One key as the ring holds it."""

    id: str
    name: str
    prefix: str
    kind: str
    hash: str | None
    scopes: frozenset[str]
    projects: frozenset[str] | None
    rate_limit: float | None
    burst: int | None
    expires_at: int | None
    revoked_at: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> KeyRecord:
        """A record from a row of ``api_keys``."""
        projects = row["projects"]
        return cls(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            kind=row["kind"],
            hash=row["hash"],
            scopes=frozenset(loads(row["scopes"])),
            projects=frozenset(loads(projects)) if projects is not None else None,
            rate_limit=row["rate_limit"],
            burst=row["burst"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
        )

    def refusal(self, now_us: int) -> str | None:
        """Why the key may not be used now, or None."""
        if self.revoked_at is not None:
            return "the API key was revoked"
        if self.expires_at is not None and self.expires_at <= now_us:
            return "the API key has expired"
        return None


def secret_file_for(db: str, given: Path | None) -> Path | None:
    """The pepper's file: ``given``, else ``<file>.secret`` beside a SQLite database."""
    if given is not None:
        return given
    if is_postgres_url(db):
        return None
    path = resolve_sqlite_path(db)
    return None if str(path) == ":memory:" else path.with_name(path.name + ".secret")


class Keyring:
    """The keys of one store, the pepper they are hashed under, and the batched writes."""

    def __init__(self, store: Store, secret_file: Path | None) -> None:
        self.store: Store = store
        self.secret_file: Path | None = secret_file_for(store.url, secret_file)
        self.pepper: bytes | None = None
        #: Whether any key was ever made in this database (revoked ones count: revoking the
        #: last key must not open the API).
        self.any_keys: bool = False
        self._by_prefix: dict[str, KeyRecord] = {}
        #: Re-reads begun, and the latest begun of those applied (see :meth:`refresh`).
        self._started = 0
        self._applied = 0
        self._secrets: dict[str, str] = {}
        #: The hashes of bearer keys that matched a key (so a key is hashed once, not on
        #: every request); keys that match none are never kept.
        self._verified: dict[str, str] = {}
        self._used: dict[str, int] = {}
        self._denials: list[dict[str, Any]] = []
        self._dropped = 0

    # ------------------------------------------------------------------ start and refresh

    async def start(self) -> None:
        """Load the pepper (made beside a SQLite database if need be) and read the keys.

        Raises :class:`PepperError` when keys exist but the pepper is missing or is not the
        one they were made under.
        """
        await self.refresh()
        if self.secret_file is not None:
            if self.secret_file.exists() or not self.any_keys:
                self.pepper = load_pepper(self.secret_file, create=True)
            else:  # a new pepper could check none of the keys: say the file is missing
                raise PepperError(
                    f"the secret file {self.secret_file} does not exist, and this database "
                    "has API keys made with it; give the servers' secret file: --secret-file "
                    "PATH (or TASKQUEUE_SECRET_FILE)"
                )
        if self.pepper is not None:
            if not await self.store.keys.check_pepper(fingerprint(self.pepper)):
                raise PepperError(
                    f"the secret file {self.secret_file} is not the one this database's API "
                    "keys were made with; give the servers of one database the same "
                    "--secret-file"
                )
        elif self.any_keys:
            raise PepperError(
                "this database has API keys but the server has no secret file to check them "
                "with; give the one they were made with: --secret-file PATH "
                "(or TASKQUEUE_SECRET_FILE)"
            )

    async def refresh(self) -> None:
        """Re-read every key.

        A read that began before another one finished is dropped if that later one was applied
        first: the background re-read, begun before a request made or revoked a key, must not
        put back what the request's own re-read has just replaced.
        """
        self._started += 1
        mine = self._started
        rows = await self.store.keys.rows()
        if mine < self._applied:
            return
        self._applied = mine
        self._by_prefix = {row["prefix"]: KeyRecord.from_row(row) for row in rows}
        self.any_keys = bool(rows)

    def put(self, row: Mapping[str, Any]) -> None:
        """Take a key this process just made or changed, without waiting for the next read."""
        record = KeyRecord.from_row(row)
        self._by_prefix[record.prefix] = record
        self.any_keys = True

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Refresh and flush in the background for as long as the block runs; flush at exit."""
        task = asyncio.create_task(self._loop(), name="taskqueue-keyring")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await self.flush()

    async def _loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
                if time.monotonic() - last_flush >= FLUSH_S:
                    last_flush = time.monotonic()
                    await self.flush()
            except Exception as exc:  # a busy or unreachable database: try again soon
                log.warning("could not refresh the API keys: %s", exc)

    # ------------------------------------------------------------------ lookups

    def lookup(self, presented: str) -> KeyRecord | None:
        """The bearer key ``presented`` is, compared in constant time, or None."""
        record = self._by_prefix.get(prefix_of(presented))
        if record is None or record.hash is None or self.pepper is None:
            return None
        digest = self._verified.get(presented)
        if digest is None:
            digest = hash_key(self.pepper, presented)
        if not hmac.compare_digest(record.hash, digest):
            return None
        if len(self._verified) >= MAX_VERIFIED:
            self._verified.clear()
        self._verified[presented] = digest
        return record

    def known_prefix(self, presented: str) -> str | None:
        """The prefix of ``presented`` if some key has it (safe to log: it is shown anyway)."""
        prefix = prefix_of(presented)
        return prefix if prefix in self._by_prefix else None

    def pair(self, public_id: str) -> tuple[KeyRecord, str] | None:
        """The key pair with this public id and its signing secret, or None."""
        record = self._by_prefix.get(public_id) if public_id.startswith(PAIR_PREFIX) else None
        if record is None or record.kind != "pair" or self.pepper is None:
            return None
        secret = self._secrets.get(public_id)
        if secret is None:
            secret = self._secrets[public_id] = pair_secret(self.pepper, public_id)
        return record, secret

    # ------------------------------------------------------------------ batched writes

    def used(self, key_id: str, now_us: int) -> None:
        """Note that a key was used now (written with the next flush)."""
        self._used[key_id] = now_us

    def denied(self, denial: dict[str, Any]) -> None:
        """Note a refused request for the audit trail (``denial`` has no secret)."""
        if len(self._denials) < MAX_DENIALS_PER_FLUSH:
            self._denials.append(denial)
        else:
            self._dropped += 1

    async def flush(self) -> None:
        """Write the pending last-used times and audit events."""
        used, self._used = self._used, {}
        denials, self._denials = self._denials, []
        dropped, self._dropped = self._dropped, 0
        if dropped:
            denials.append(
                {"time": self.store.clock(), "reason": "more refused requests", "count": dropped}
            )
        if used:
            await self.store.keys.touch(used)
        if denials:
            await self.store.keys.record_denials(denials)
