"""The worker registry: each worker process says it is alive, so the API can list workers.

A worker registers when it starts, refreshes ``last_seen`` (and how many tasks it runs) every
few seconds, and removes itself when it stops cleanly. A worker killed without warning stays
listed, its ``last_seen`` growing old, until housekeeping forgets it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskqueue.store.codec import dumps, from_us, loads
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx

__all__ = [
    "WorkerInfo",
    "deregister_worker",
    "list_workers",
    "offered_languages",
    "register_worker",
    "touch_worker",
]


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says of itself when it registers."""

    id: str
    host: str
    pid: int
    concurrency: int
    queues: Sequence[str]
    version: str
    #: The languages it runs code in, each with the version its toolchain reported.
    languages: Mapping[str, str] = field(default_factory=dict)


def register_worker(conn: Tx, fx: Effects, info: WorkerInfo, now: int) -> None:
    """Record a starting worker (again, if it registered before under the same id)."""
    del fx
    conn.execute(
        "INSERT INTO workers (id, host, pid, concurrency, queues, version, started_at,"
        " last_seen, running, languages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
        " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen,"
        " languages = excluded.languages",
        (
            info.id,
            info.host,
            info.pid,
            info.concurrency,
            dumps(list(info.queues)),
            info.version,
            now,
            now,
            dumps(dict(info.languages)),
        ),
    )


def touch_worker(conn: Tx, fx: Effects, info: WorkerInfo, running: int, now: int) -> None:
    """Say the worker is alive and how many tasks it runs (registering it if it was forgotten)."""
    changed = conn.execute(
        "UPDATE workers SET last_seen = ?, running = ? WHERE id = ?", (now, running, info.id)
    ).rowcount
    if changed == 0:
        register_worker(conn, fx, info, now)
        conn.execute("UPDATE workers SET running = ? WHERE id = ?", (running, info.id))


def deregister_worker(conn: Tx, fx: Effects, worker_id: str) -> None:
    """Forget a worker that stopped cleanly."""
    del fx
    conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))


def list_workers(conn: Tx, now: int, stale_after_us: int) -> list[dict[str, Any]]:
    """Every registered worker, newest first, ``active`` or ``stale`` by its last sign of life."""
    rows = conn.execute(
        "SELECT id, host, pid, concurrency, queues, version, started_at, last_seen, running"
        " FROM workers ORDER BY started_at DESC, id"
    ).fetchall()
    return [
        {
            "id": r["id"],
            "host": r["host"],
            "pid": r["pid"],
            "concurrency": r["concurrency"],
            "queues": loads(r["queues"]),
            "version": r["version"],
            "running": r["running"],
            "started_at": from_us(r["started_at"]),
            "last_seen": from_us(r["last_seen"]),
            "status": "active" if now - r["last_seen"] <= stale_after_us else "stale",
        }
        for r in rows
    ]


def offered_languages(conn: Tx, now: int, stale_after_us: int) -> dict[str, dict[str, Any]]:
    """What live workers offer: per language, the versions they reported and how many offer it."""
    rows = conn.execute(
        "SELECT languages FROM workers WHERE last_seen >= ? AND languages IS NOT NULL",
        (now - stale_after_us,),
    ).fetchall()
    offered: dict[str, dict[str, Any]] = {}
    for row in rows:
        for name, version in (loads(row["languages"]) or {}).items():
            entry = offered.setdefault(name, {"versions": [], "workers": 0})
            entry["workers"] += 1
            if version not in entry["versions"]:
                entry["versions"].append(version)
    return offered
