"""Webhook subscriptions and their deliveries: the SQL of ``/api/webhooks`` and the dispatcher.

A subscription is a row of ``webhooks``: where to send which events, its secret(s), and how
far delivery got. ``position`` is the last event handed on (delivered, or passed over as not
wanted): the dispatcher sends the events after it one at a time, in order, and moves it in the
transaction that records the delivery, so a crash repeats at most the delivery in flight.

One dispatcher at a time delivers a subscription: it holds the row's lease (``lease_owner``,
``lease_expires_at``) and renews it; every change it records checks that it still does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from taskqueue._webhook_models import WebhookUpdate
from taskqueue.store import outbox
from taskqueue.store.codec import dumps, from_us, loads
from taskqueue.store.errors import InvalidInput, NotFound
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx, insert_rows
from taskqueue.store.visibility import Projects, project_condition

__all__ = [
    "Failure",
    "acquire",
    "claimable",
    "delete_webhook",
    "delivery_to_dict",
    "emit_test_event",
    "get_webhook",
    "insert_webhook",
    "list_deliveries",
    "list_webhooks",
    "record_delivered",
    "record_failed",
    "record_manual",
    "release",
    "rotate_secret",
    "skip_to",
    "subscription",
    "update_webhook",
    "webhook_to_dict",
]


def webhook_to_dict(row: Any) -> dict[str, Any]:
    """A ``webhooks`` row as the wire's :class:`~taskqueue.models.Webhook` (no secret)."""
    return {
        "id": row["id"],
        "project_id": row["project_id"],
        "url": row["url"],
        "description": row["description"],
        "event_types": loads(row["event_types"]),
        "enabled": bool(row["enabled"]),
        "disabled_reason": row["disabled_reason"],
        "position": row["position"],
        "failures": row["failures"],
        "failing_since": from_us(row["failing_since"]),
        "next_attempt_at": from_us(row["next_attempt_at"]),
        "previous_secret_until": from_us(row["previous_secret_until"]),
        "created_at": from_us(row["created_at"]),
        "updated_at": from_us(row["updated_at"]),
    }


def delivery_to_dict(row: Any) -> dict[str, Any]:
    """A ``webhook_deliveries`` row as the wire's :class:`~taskqueue.models.WebhookDelivery`."""
    return {
        "id": row["id"],
        "webhook_id": row["webhook_id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "attempt": row["attempt"],
        "manual": bool(row["manual"]),
        "status": row["status"],
        "request": loads(row["request"]),
        "response_code": row["response_code"],
        "response_body": row["response_body"],
        "error": row["error"],
        "duration_ms": row["duration_ms"],
        "created_at": from_us(row["created_at"]),
    }


def _host_of(url: str) -> str:
    """What events say of a URL: its scheme and host (its path and query may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _row(tx: Tx, webhook_id: str, projects: Projects) -> Any:
    visible, ids = project_condition(projects)
    row = tx.execute(
        f"SELECT * FROM webhooks WHERE id = ?{' AND ' + visible if visible else ''}",
        (webhook_id, *ids),
    ).fetchone()
    if row is None:
        raise NotFound("webhook", webhook_id)
    return row


def insert_webhook(tx: Tx, fx: Effects, row: dict[str, Any], now: int) -> dict[str, Any]:
    """Store a new subscription (``row`` has every column); starts after the newest event."""
    project_id = row["project_id"]
    if project_id is not None:
        found = tx.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone()
        if found is None:
            raise InvalidInput(
                "unknown project",
                [
                    {
                        "loc": ["project_id"],
                        "msg": f"project {project_id} does not exist",
                        "type": "not_found",
                    }
                ],
            )
    _, last = outbox.event_bounds(tx)
    stored = {**row, "event_types": dumps(row["event_types"]), "position": last or 0}
    insert_rows(tx, "webhooks", [stored])
    outbox.emit(
        tx,
        fx,
        "webhook.created",
        now,
        None,
        project_id,
        {"webhook_id": row["id"], "url": _host_of(row["url"]), "event_types": row["event_types"]},
    )
    return webhook_to_dict(stored)


def get_webhook(tx: Tx, webhook_id: str, projects: Projects) -> dict[str, Any]:
    """One subscription, if ``projects`` (the caller's) include it."""
    return webhook_to_dict(_row(tx, webhook_id, projects))


def subscription(tx: Tx, webhook_id: str) -> dict[str, Any] | None:
    """The whole row of a subscription, secrets included, for sending (None: deleted)."""
    row = tx.execute("SELECT * FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
    return None if row is None else {**dict(row), "event_types": loads(row["event_types"])}


def list_webhooks(
    tx: Tx, limit: int, offset: int, projects: Projects
) -> tuple[list[dict[str, Any]], int]:
    """A page of subscriptions, oldest first, and how many the caller may see."""
    visible, ids = project_condition(projects)
    where = f" WHERE {visible}" if visible else ""
    total = tx.execute(f"SELECT COUNT(*) FROM webhooks{where}", ids).fetchone()[0]
    rows = tx.execute(
        f"SELECT * FROM webhooks{where} ORDER BY created_at, id LIMIT ? OFFSET ?",
        (*ids, limit, offset),
    ).fetchall()
    return [webhook_to_dict(r) for r in rows], int(total)


def update_webhook(
    tx: Tx, fx: Effects, webhook_id: str, changes: WebhookUpdate, projects: Projects, now: int
) -> dict[str, Any]:
    """Change the fields given; enabling a disabled subscription resumes where it stopped."""
    row = _row(tx, webhook_id, projects)
    given = changes.model_fields_set
    values: dict[str, Any] = {}
    if "url" in given and changes.url is not None:
        values["url"] = changes.url
    if "event_types" in given and changes.event_types is not None:
        values["event_types"] = dumps(sorted(set(changes.event_types)))
    if "description" in given:
        values["description"] = changes.description
    if "enabled" in given and changes.enabled is not None:
        values["enabled"] = int(changes.enabled)
        if changes.enabled and not row["enabled"]:
            values.update(
                disabled_reason=None, failures=0, failing_since=None, next_attempt_at=None
            )
    values["updated_at"] = now
    assignments = ", ".join(f"{name} = ?" for name in values)
    tx.execute(f"UPDATE webhooks SET {assignments} WHERE id = ?", (*values.values(), webhook_id))
    changed = sorted(name for name in given if name != "updated_at")
    outbox.emit(
        tx,
        fx,
        "webhook.updated",
        now,
        None,
        row["project_id"],
        {"webhook_id": webhook_id, "changed": changed},
    )
    return get_webhook(tx, webhook_id, None)


def delete_webhook(tx: Tx, fx: Effects, webhook_id: str, projects: Projects, now: int) -> None:
    """Delete a subscription and its deliveries log."""
    row = _row(tx, webhook_id, projects)
    tx.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,))
    tx.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
    outbox.emit(tx, fx, "webhook.deleted", now, None, row["project_id"], {"webhook_id": webhook_id})


def rotate_secret(
    tx: Tx,
    fx: Effects,
    webhook_id: str,
    secret: str,
    grace_us: int,
    projects: Projects,
    now: int,
) -> dict[str, Any]:
    """Sign with ``secret`` from now on, and with the old one too for ``grace_us`` more."""
    row = _row(tx, webhook_id, projects)
    previous, until = (row["secret"], now + grace_us) if grace_us > 0 else (None, None)
    tx.execute(
        "UPDATE webhooks SET secret = ?, previous_secret = ?, previous_secret_until = ?,"
        " updated_at = ? WHERE id = ?",
        (secret, previous, until, now, webhook_id),
    )
    outbox.emit(
        tx,
        fx,
        "webhook.updated",
        now,
        None,
        row["project_id"],
        {"webhook_id": webhook_id, "changed": ["secret"]},
    )
    return get_webhook(tx, webhook_id, None)


def list_deliveries(
    tx: Tx, webhook_id: str, limit: int, offset: int, projects: Projects
) -> tuple[list[dict[str, Any]], int]:
    """A page of a subscription's deliveries, newest first, and their number."""
    _row(tx, webhook_id, projects)
    total = tx.execute(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,)
    ).fetchone()[0]
    rows = tx.execute(
        "SELECT * FROM webhook_deliveries WHERE webhook_id = ?"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        (webhook_id, limit, offset),
    ).fetchall()
    return [delivery_to_dict(r) for r in rows], int(total)


# ---------------------------------------------------------------------------- the dispatcher


def acquire(tx: Tx, owner: str, lease_us: int, now: int, limit: int) -> list[str]:
    """Lease to ``owner`` the enabled subscriptions no live lease holds, renew its own.

    Returns the ids ``owner`` holds now (up to ``limit``). Another dispatcher's live lease is
    left alone, so each subscription has one sender at a time.
    """
    expires = now + lease_us
    tx.execute(
        "UPDATE webhooks SET lease_owner = ?, lease_expires_at = ? WHERE id IN ("
        " SELECT id FROM webhooks WHERE enabled = 1 AND (lease_owner = ?"
        "  OR lease_owner IS NULL OR lease_expires_at < ?)"
        f" ORDER BY created_at LIMIT ?{tx.dialect.lock('FOR UPDATE SKIP LOCKED')})",
        (owner, expires, owner, now, limit),
    )
    rows = tx.execute(
        "SELECT id FROM webhooks WHERE lease_owner = ? AND enabled = 1 ORDER BY created_at",
        (owner,),
    ).fetchall()
    return [r[0] for r in rows]


def claimable(tx: Tx, now: int) -> bool:
    """Whether some enabled subscription has no live lease."""
    row = tx.execute(
        "SELECT 1 FROM webhooks WHERE enabled = 1 AND (lease_owner IS NULL"
        " OR lease_expires_at < ?) LIMIT 1",
        (now,),
    ).fetchone()
    return row is not None


def release(tx: Tx, owner: str) -> None:
    """Give up every lease of ``owner`` (it is stopping): another dispatcher may go on."""
    tx.execute(
        "UPDATE webhooks SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = ?",
        (owner,),
    )


def _insert_delivery(tx: Tx, delivery: dict[str, Any]) -> None:
    insert_rows(tx, "webhook_deliveries", [{**delivery, "request": dumps(delivery["request"])}])


def record_delivered(tx: Tx, delivery: dict[str, Any], owner: str, now: int) -> bool:
    """Log a delivered event and move the subscription past it; False if the lease is gone."""
    _insert_delivery(tx, delivery)
    moved = tx.execute(
        "UPDATE webhooks SET position = ?, failures = 0, failing_since = NULL,"
        " next_attempt_at = NULL WHERE id = ? AND lease_owner = ? AND position < ?",
        (delivery["event_id"], delivery["webhook_id"], owner, delivery["event_id"]),
    )
    return moved.rowcount == 1


class Failure:
    """What a failed delivery does to its subscription: retry later, or disable it."""

    def __init__(self, retry_at: int | None, disable: str | None) -> None:
        #: When to try the same event again (None when disabling).
        self.retry_at = retry_at
        #: Why the subscription is disabled (None: it is not).
        self.disable = disable


def record_failed(
    tx: Tx, fx: Effects, delivery: dict[str, Any], failure: Failure, owner: str, now: int
) -> bool:
    """Log a failed attempt; schedule the retry, or disable the subscription and say why."""
    _insert_delivery(tx, delivery)
    webhook_id = delivery["webhook_id"]
    if failure.disable is None:
        moved = tx.execute(
            "UPDATE webhooks SET failures = failures + 1,"
            " failing_since = COALESCE(failing_since, ?), next_attempt_at = ?"
            " WHERE id = ? AND lease_owner = ?",
            (now, failure.retry_at, webhook_id, owner),
        )
        return moved.rowcount == 1
    moved = tx.execute(
        "UPDATE webhooks SET failures = failures + 1, failing_since = COALESCE(failing_since, ?),"
        " next_attempt_at = NULL, enabled = 0, disabled_reason = ?, lease_owner = NULL,"
        " lease_expires_at = NULL, updated_at = ? WHERE id = ? AND lease_owner = ?",
        (now, failure.disable, now, webhook_id, owner),
    )
    if moved.rowcount != 1:
        return False
    row = tx.execute("SELECT project_id, url FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
    outbox.emit(
        tx,
        fx,
        "webhook.disabled",
        now,
        None,
        row["project_id"],
        {
            "webhook_id": webhook_id,
            "url": _host_of(row["url"]),
            "reason": failure.disable,
            "event_id": delivery["event_id"],
        },
    )
    return True


def skip_to(tx: Tx, webhook_id: str, owner: str, position: int) -> None:
    """Move past events the subscription does not want, up to ``position``."""
    tx.execute(
        "UPDATE webhooks SET position = ? WHERE id = ? AND lease_owner = ? AND position < ?",
        (position, webhook_id, owner, position),
    )


def record_manual(tx: Tx, delivery: dict[str, Any]) -> dict[str, Any]:
    """Log a delivery sent outside the order (redeliver, test); moves nothing."""
    _insert_delivery(tx, delivery)
    row = tx.execute("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery["id"],)).fetchone()
    return delivery_to_dict(row)


def emit_test_event(tx: Tx, fx: Effects, webhook_id: str, projects: Projects, now: int) -> int:
    """Write a ``webhook.test`` event for one subscription; its row id (not yet its position).

    The dispatcher never sends it in order (it is for the one subscription being tested, and
    is sent at once by the request that asked).
    """
    row = _row(tx, webhook_id, projects)
    fx.events = True
    found = tx.execute(
        "INSERT INTO events (type, task_id, project_id, time, data) VALUES (?, ?, ?, ?, ?)"
        " RETURNING id",
        (
            "webhook.test",
            None,
            row["project_id"],
            now,
            dumps({"webhook_id": webhook_id, "url": _host_of(row["url"])}),
        ),
    ).fetchone()
    return int(found[0])
