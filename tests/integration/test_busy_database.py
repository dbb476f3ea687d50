"""Another process holding the SQLite write lock: writes fail cleanly, then recover."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest

from taskqueue.models import TaskCreate
from taskqueue.server import ServerSettings, create_app
from taskqueue.store import Store, Unavailable, sqlite

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_MS", 200)


def test_a_locked_database_is_a_503_with_retry_after_and_changes_nothing(
    tmp_path: Path, short_busy_timeout: None
) -> None:
    db = tmp_path / "busy.db"

    async def main() -> None:
        store = Store(db)
        # No services: the API alone, as with ``taskqueue server --workers 0``.
        app = create_app(ServerSettings(), store)
        store.start()
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1"
            ) as client:
                holder = sqlite3.connect(db, isolation_level=None)
                holder.execute("BEGIN EXCLUSIVE")
                try:
                    busy = await client.post(
                        "/api/tasks", json={"name": "blocked", "command": "true"}
                    )
                finally:
                    holder.execute("ROLLBACK")
                    holder.close()
                assert busy.status_code == 503
                assert busy.headers["retry-after"] == "1"
                assert busy.json()["error"]["type"] == "unavailable"
                assert (await client.get("/api/tasks")).json()["total"] == 0
                fine = await client.post("/api/tasks", json={"name": "after", "command": "true"})
                assert fine.status_code == 201
                assert (await client.get("/api/tasks")).json()["total"] == 1
        finally:
            await store.close()

    asyncio.run(main())


def test_the_store_reports_the_lock_and_recovers(tmp_path: Path, short_busy_timeout: None) -> None:
    async def main() -> None:
        store = Store(tmp_path / "s.db")
        store.start()
        try:
            holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            with pytest.raises(Unavailable, match="busy"):
                await store.create_tasks([TaskCreate(name="x", command="true")])
            holder.execute("ROLLBACK")
            holder.close()
            created = await store.create_tasks([TaskCreate(name="y", command="true")])
            assert [t["name"] for t in created] == ["y"]
        finally:
            await store.close()

    asyncio.run(main())
