"""Migrations: a fresh database migrated to head has exactly the schema the code declares.

Each test runs on both backends: a fresh SQLite file, and an empty (never migrated) database on
the session's PostgreSQL cluster.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect

from taskqueue.store import Store
from taskqueue.store.migrate import current_revision, head_revision, upgrade
from taskqueue.store.postgres import pg_engine
from taskqueue.store.schema import metadata
from taskqueue.store.sqlite import sqlite_engine
from tests.conftest import EmptyDatabase


def engine_on(db: str) -> Engine:
    return pg_engine(db) if "://" in db else sqlite_engine(db)


def test_fresh_schema_equals_the_sum_of_the_migrations(
    empty_database: EmptyDatabase, backend: str
) -> None:
    engine = engine_on(empty_database())
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            if backend == "sqlite":
                # Alembic cannot reflect SQLite expression indexes (the claim index orders by
                # "priority_rank DESC"); that one is checked by its SQL below.
                diff = [
                    d
                    for d in diff
                    if not (d[0].endswith("_index") and d[1].name == "ix_tasks_claim")
                ]
            assert diff == []
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("tasks")}
            if backend == "sqlite":
                claim_sql = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'ix_tasks_claim'"
                ).scalar_one()
                assert "priority_rank DESC" in claim_sql
                assert "WHERE status = 'Pending' AND waiting_on = 0" in claim_sql
            else:
                migrated = pg_catalog(conn)
        assert {"ix_tasks_claim", "ix_tasks_running_lease"} <= indexes
    finally:
        engine.dispose()
    if backend == "postgresql":
        # Alembic compares neither index predicates nor server defaults: PostgreSQL's own
        # rendering of a database made straight from the code's schema must match.
        declared = engine_on(empty_database())
        try:
            metadata.create_all(declared)
            with declared.connect() as conn:
                assert migrated == pg_catalog(conn)
        finally:
            declared.dispose()


def pg_catalog(conn: Connection) -> dict[str, object]:
    """PostgreSQL's rendering of every column, index and constraint in the public schema."""

    def rows(sql: str) -> set[tuple[object, ...]]:
        return {tuple(r) for r in conn.exec_driver_sql(sql)}

    return {
        "columns": rows(
            "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,"
            " column_default"
            " FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name <> 'alembic_version'"
        ),
        "indexes": rows(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        ),
        "constraints": rows(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
            " AND conrelid::regclass::text <> 'alembic_version'"
        ),
    }


def test_migrating_twice_is_harmless(empty_database: EmptyDatabase) -> None:
    db = empty_database()
    Store(db).migrate()
    Store(db).migrate()
    engine = engine_on(db)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
