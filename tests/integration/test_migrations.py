"""Migrations: a fresh database migrated to head has exactly the schema the code declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from taskqueue.store import Store
from taskqueue.store.migrate import current_revision, head_revision, upgrade
from taskqueue.store.schema import metadata
from taskqueue.store.sqlite import sqlite_engine

pytestmark = pytest.mark.sqlite_only


def test_fresh_schema_equals_the_sum_of_the_migrations(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "m.db")
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            # Alembic cannot reflect SQLite expression indexes (the claim index orders by
            # "priority_rank DESC"); that one is checked by its SQL below.
            diff = [
                d for d in diff if not (d[0].endswith("_index") and d[1].name == "ix_tasks_claim")
            ]
            assert diff == []
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("tasks")}
            claim_sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_tasks_claim'"
            ).scalar_one()
        assert {"ix_tasks_running_lease"} <= indexes
        assert "priority_rank DESC" in claim_sql
        assert "WHERE status = 'Pending' AND waiting_on = 0" in claim_sql
    finally:
        engine.dispose()


def test_migrating_twice_is_harmless(tmp_path: Path) -> None:
    Store(tmp_path / "twice.db").migrate()
    Store(tmp_path / "twice.db").migrate()
    engine = sqlite_engine(tmp_path / "twice.db")
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
