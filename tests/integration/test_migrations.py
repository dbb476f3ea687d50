"""Migrations: a fresh database migrated to head has exactly the schema the code declares.

Each test runs on both backends: a fresh SQLite file, and an empty (never migrated) database on
the session's PostgreSQL cluster.
"""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, text

from taskqueue.models import TaskCreate
from taskqueue.store import Store
from taskqueue.store.migrate import alembic_config, current_revision, head_revision, upgrade
from taskqueue.store.postgres import pg_engine
from taskqueue.store.schema import metadata, tasks
from taskqueue.store.sqlite import sqlite_engine
from taskqueue.store.tasks import new_task_row
from tests.conftest import EmptyDatabase, query_db, run_store

#: The revision before output chunks became bytes.
BEFORE_OUTPUT_BYTES = "0005-1"
TASK_ID = "00000000-0000-4000-8000-000000000001"


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


def add_task_with_output(engine: Engine, chunks: list[Any]) -> None:
    """A task and its output chunks (``data`` as given), written straight to the tables."""
    row = new_task_row(TaskCreate(name="old", command="true"), TASK_ID, [], 0, 1, None)
    # Only the columns set: those added by later revisions (limits) are not there yet.
    row = {name: value for name, value in row.items() if value is not None}
    with engine.begin() as conn:
        conn.execute(tasks.insert(), {**row, "status": "Completed"})
        conn.execute(
            text(
                "INSERT INTO output_chunks (task_id, seq, attempt, stream, data)"
                " VALUES (:task, :seq, 1, 'stdout', :data)"
            ),
            [{"task": TASK_ID, "seq": seq, "data": data} for seq, data in enumerate(chunks)],
        )


def logged(db: str) -> list[str]:
    """The task's output as the API serves it."""

    async def read(store: Store) -> list[str]:
        chunks, _, _ = await store.read_logs(TASK_ID, 0, 100)
        return [chunk["data"] for chunk in chunks]

    return run_store(db, read)


OLD_OUTPUT = ["plain\n", "héllo ✓ \U0001f600\n", "tab\t 'quotes' \\backslash \\x00 %s ?\n"]


def test_output_stored_as_text_migrates_to_its_utf8_bytes(
    empty_database: EmptyDatabase,
) -> None:
    db = empty_database()
    engine = engine_on(db)
    try:
        upgrade(engine, BEFORE_OUTPUT_BYTES)
        add_task_with_output(engine, OLD_OUTPUT)
        upgrade(engine)
    finally:
        engine.dispose()
    stored = query_db(db, "SELECT data FROM output_chunks ORDER BY seq")
    assert [row[0] for row in stored] == [chunk.encode() for chunk in OLD_OUTPUT]
    assert logged(db) == OLD_OUTPUT


def test_a_downgrade_turns_output_back_into_text(empty_database: EmptyDatabase) -> None:
    db = empty_database()
    engine = engine_on(db)
    try:
        upgrade(engine)
        written = [chunk.encode() for chunk in OLD_OUTPUT] + [b"a\x00b \xff\n"]
        add_task_with_output(engine, written)
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, BEFORE_OUTPUT_BYTES)
        assert current_revision(engine) != head_revision()
    finally:
        engine.dispose()
    stored = query_db(db, "SELECT data FROM output_chunks ORDER BY seq")
    # As the older version stored output: text, with U+FFFD where it could not be kept.
    assert [row[0] for row in stored] == [*OLD_OUTPUT, "a\ufffdb \ufffd\n"]
    # And up again, the same text.
    assert logged(db) == [*OLD_OUTPUT, "a\ufffdb \ufffd\n"]
