"""The I/O-free parts of the PostgreSQL backend: notification payloads, rows, SQL, URLs."""

from __future__ import annotations

import json

import pytest

from taskqueue.store import describe_database, is_postgres_url
from taskqueue.store.pipeline import Effects
from taskqueue.store.postgres import (
    CHANGES,
    CHANNEL,
    MAX_PAYLOAD,
    PgRow,
    _effects_of,
    _payloads,
    _pg_sql,
    pg_conninfo,
)


def test_nothing_to_say_sends_no_notification() -> None:
    assert _payloads(Effects()) == []


def test_a_payload_carries_wake_changes_logs_and_revoked_leases() -> None:
    fx = Effects(wake=True, changed={"t1", "t2"}, logs={"t2", "t3"}, stop_running={("t1", "tok")})
    (wake_channel, wake), (changes_channel, changes) = _payloads(fx)
    # Workers hear wake-ups and revoked leases; only API servers need which tasks changed.
    assert (wake_channel, changes_channel) == (CHANNEL, CHANGES)
    assert len(wake) < MAX_PAYLOAD
    assert len(changes) < MAX_PAYLOAD
    heard_wake, heard_changes = _effects_of(wake), _effects_of(changes)
    assert heard_wake is not None
    assert heard_changes is not None
    assert heard_wake.wake
    assert heard_wake.stop_running == {("t1", "tok")}
    assert not heard_wake.changed
    assert not heard_changes.wake
    assert heard_changes.changed == {"t1", "t2"}
    assert heard_changes.logs == {"t3"}  # t2's followers wake through "changed" already


def test_many_changes_split_into_payloads_under_the_limit_and_lose_nothing() -> None:
    ids = {f"{i:036d}" for i in range(1000)}
    payloads = [p for _, p in _payloads(Effects(wake=True, changed=ids))]
    assert len(payloads) > 1
    assert all(len(p.encode()) < 8000 for p in payloads)
    heard = [_effects_of(p) for p in payloads]
    assert set().union(*(h.changed for h in heard if h is not None)) == ids
    assert any(h.wake for h in heard if h is not None)


def test_a_flood_of_changes_is_capped_and_waiters_fall_back_to_polling() -> None:
    ids = {f"{i:036d}" for i in range(20_000)}
    assert len(_payloads(Effects(changed=ids))) == 20


def test_many_revoked_leases_split_and_all_arrive() -> None:
    stops = {(f"{i:036d}", f"{i:032x}") for i in range(500)}
    notes = _payloads(Effects(stop_running=stops))
    assert len(notes) > 1
    assert all(channel == CHANNEL and len(p.encode()) < 8000 for channel, p in notes)
    heard = set().union(*(e.stop_running for _, p in notes if (e := _effects_of(p))))
    assert heard == stops


@pytest.mark.parametrize("payload", ["", "not json", "[1, 2]", '{"c": 5}', '{"s": [[1]]}'])
def test_a_malformed_notification_is_ignored(payload: str) -> None:
    assert _effects_of(payload) is None


def test_rows_read_by_position_and_by_name() -> None:
    row = PgRow((1, "x"), {"id": 0, "name": 1})
    assert row[0] == 1
    assert row["name"] == "x"
    assert list(row.keys()) == ["id", "name"]
    assert list(row) == [1, "x"]
    assert len(row) == 2
    assert dict(zip(row.keys(), row, strict=True)) == {"id": 1, "name": "x"}


def test_placeholders_are_rewritten_and_percent_signs_escaped() -> None:
    assert _pg_sql("SELECT ? WHERE a LIKE '5%' AND b IN (?, ?)") == (
        "SELECT %s WHERE a LIKE '5%%' AND b IN (%s, %s)"
    )


def test_database_urls() -> None:
    assert is_postgres_url("postgresql://u@h/db")
    assert is_postgres_url("postgres://u@h/db")
    assert is_postgres_url("postgresql+psycopg://u@h/db")
    assert not is_postgres_url("sqlite:///x.db")
    assert not is_postgres_url("postgresql.db")
    assert pg_conninfo("postgresql+psycopg://u:p@h:5433/db") == "postgresql://u:p@h:5433/db"
    assert describe_database("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert describe_database("plain.db") == "plain.db"
    assert "secret" not in json.dumps(describe_database("postgresql://u:secret@h:x/db"))
