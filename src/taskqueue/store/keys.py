"""API keys in the database: create, list, revoke, and the batched last-used times.

Only what :mod:`taskqueue.apikeys` makes of a key is stored (its prefix and keyed hash, or a
pair's public id); every creation and revocation writes its event, and so does each refused
request the API reports (:func:`record_denials`), so the audit trail is the outbox.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskqueue.store import outbox
from taskqueue.store.codec import dumps, from_us, loads
from taskqueue.store.errors import Conflict, InvalidInput, NotFound
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx, marks

__all__ = [
    "FINGERPRINT_KEY",
    "KEY_COLUMNS",
    "check_fingerprint",
    "count_keys",
    "expire_key",
    "find_key",
    "insert_key",
    "key_to_dict",
    "list_keys",
    "read_keys",
    "record_denials",
    "revoke_key",
    "touch_keys",
]

#: The row of ``meta`` holding the fingerprint of the pepper the keys were hashed under.
FINGERPRINT_KEY = "pepper_fingerprint"
#: The columns a key row is read with (never more than the API may show, plus its hash).
KEY_COLUMNS = (
    "id, name, prefix, kind, hash, scopes, projects, rate_limit, burst, expires_at, "
    "created_at, last_used_at, revoked_at"
)


def key_to_dict(row: Mapping[str, Any], now: int) -> dict[str, Any]:
    """A key as the API shows it: everything but its hash."""
    projects = loads(row["projects"]) if row["projects"] is not None else None
    if row["revoked_at"] is not None:
        status = "revoked"
    elif row["expires_at"] is not None and row["expires_at"] <= now:
        status = "expired"
    else:
        status = "active"
    return {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "kind": row["kind"],
        "scopes": loads(row["scopes"]),
        "projects": projects,
        "rate_limit": row["rate_limit"],
        "burst": row["burst"],
        "status": status,
        "expires_at": from_us(row["expires_at"]),
        "created_at": from_us(row["created_at"]),
        "last_used_at": from_us(row["last_used_at"]),
        "revoked_at": from_us(row["revoked_at"]),
    }


def check_fingerprint(tx: Tx, fingerprint: str, now: int) -> bool:
    """Whether ``fingerprint`` is the pepper's on record (recording it if none is yet)."""
    tx.execute(
        "INSERT INTO meta (key, value, created_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (FINGERPRINT_KEY, fingerprint, now),
    )
    row = tx.execute("SELECT value FROM meta WHERE key = ?", (FINGERPRINT_KEY,)).fetchone()
    return bool(row is not None and row["value"] == fingerprint)


def insert_key(tx: Tx, fx: Effects, row: dict[str, Any], now: int) -> dict[str, Any]:
    """Store a new key (``row`` has every column) and write its ``key.created`` event."""
    projects = row["projects"]
    if projects:
        found = {
            r[0]
            for r in tx.execute(
                f"SELECT id FROM projects WHERE id IN ({marks(projects)})", projects
            )
        }
        missing = [
            {"loc": ["projects", i], "msg": f"project {p} does not exist", "type": "not_found"}
            for i, p in enumerate(projects)
            if p not in found
        ]
        if missing:
            raise InvalidInput("unknown project", missing)
    stored = {
        **row,
        "scopes": dumps(sorted(row["scopes"])),
        "projects": dumps(sorted(projects)) if projects is not None else None,
        "created_at": now,
        "last_used_at": None,
        "revoked_at": None,
    }
    columns = ", ".join(stored)
    tx.execute(
        f"INSERT INTO api_keys ({columns}) VALUES ({marks(list(stored))})", list(stored.values())
    )
    shown = key_to_dict(stored, now)
    outbox.emit(tx, fx, "key.created", now, data=_audit(shown))
    return shown


def _audit(key: dict[str, Any]) -> dict[str, Any]:
    return {k: key[k] for k in ("id", "name", "prefix", "kind", "scopes", "projects")}


def read_keys(tx: Tx) -> list[dict[str, Any]]:
    """Every key row, hashes included (for the server's key ring)."""
    return [dict(row) for row in tx.execute(f"SELECT {KEY_COLUMNS} FROM api_keys")]


def count_keys(tx: Tx) -> int:
    """How many keys were ever made (revoked ones included)."""
    return int(tx.execute("SELECT count(*) FROM api_keys").fetchone()[0])


def list_keys(tx: Tx, now: int) -> list[dict[str, Any]]:
    """Every key as the API shows it, oldest first."""
    rows = tx.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id")
    return [key_to_dict(row, now) for row in rows]


def find_key(tx: Tx, ident: str, now: int) -> dict[str, Any]:
    """The key whose id or prefix is ``ident`` (a whole prefix, or a unique start of an id)."""
    rows = tx.execute(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ? OR prefix = ? OR id LIKE ?",
        (ident, ident, ident.replace("%", "").replace("_", "") + "%"),
    ).fetchall()
    exact = [row for row in rows if ident in (row["id"], row["prefix"])]
    if exact:
        return key_to_dict(exact[0], now)
    if len(rows) == 1 and len(ident) >= 4:
        return key_to_dict(rows[0], now)
    if len(rows) > 1:
        raise Conflict(f"{len(rows)} keys start with {ident!r}; give more of the id")
    raise NotFound("key", ident)


def revoke_key(tx: Tx, fx: Effects, ident: str, now: int) -> dict[str, Any]:
    """Revoke a key (at once for every server: they re-read revocations within a second)."""
    key = find_key(tx, ident, now)
    if key["revoked_at"] is None:
        tx.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, key["id"]))
        outbox.emit(tx, fx, "key.revoked", now, data=_audit(key))
    return find_key(tx, key["id"], now)


def expire_key(tx: Tx, fx: Effects, key_id: str, at: int, now: int) -> None:
    """Make a key expire at ``at`` (a rotation's grace period), unless it expires sooner."""
    tx.execute(
        "UPDATE api_keys SET expires_at = ? "
        "WHERE id = ? AND (expires_at IS NULL OR expires_at > ?)",
        (at, key_id, at),
    )
    outbox.emit(tx, fx, "key.rotated", now, data={"id": key_id, "expires_at": from_us(at)})


def touch_keys(tx: Tx, fx: Effects, used: Mapping[str, int]) -> None:
    """Record when each key was last used (one statement per key, never moving time back)."""
    for key_id, when in used.items():
        tx.execute(
            "UPDATE api_keys SET last_used_at = ? "
            "WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
            (when, key_id, when),
        )


def record_denials(tx: Tx, fx: Effects, denials: Sequence[dict[str, Any]]) -> None:
    """Write one ``auth.denied`` event per refused request (``time`` and what was refused)."""
    outbox.emit_many(
        tx, fx, [outbox.event_row("auth.denied", d.pop("time"), data=d) for d in denials]
    )
