"""``taskqueue webhooks ...``: subscribe URLs to events, and see what was sent to them.

A subscription's signing secret is printed when it is made (``create``) or replaced
(``rotate-secret``), and never again. Commands take a subscription's whole id, the short form
tables show, or any part of at least 4 characters of its start or end that only one matches.
See ``docs/webhooks.md``.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import click
from rich.table import Table

from taskqueue._webhook_models import EVENT_PATTERNS, check_webhook_url
from taskqueue.cli._context import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliContext,
    client_command,
    confirm,
    relative,
    rows_table,
)
from taskqueue.cli._ids import resolve_project, short_id
from taskqueue.cli.keys import parse_duration
from taskqueue.errors import NotFoundError
from taskqueue.models import NewWebhook, Webhook, WebhookDelivery

__all__ = ["delivery_table", "webhook_detail", "webhook_table", "webhooks"]

_PART = re.compile(r"^[0-9A-Fa-f-]{4,36}$")
#: How many of the matches an ambiguous part lists.
_SHOWN = 5
_LIST_HINT = "see the subscriptions with `taskqueue webhooks list`"


def _state(hook: Webhook) -> str:
    if not hook.enabled:
        return f"disabled ({hook.disabled_reason})" if hook.disabled_reason else "disabled"
    if hook.failures:
        return f"failing ({hook.failures} in a row)"
    return "enabled"


def webhook_table(items: Sequence[Webhook]) -> Table:
    """Subscriptions as a table (never a secret: the API has none to give)."""
    table = rows_table(None, ["ID", "URL", "EVENTS", "PROJECT", "STATE", "CREATED"])
    for hook in items:
        table.add_row(
            short_id(hook.id),
            hook.url,
            ",".join(hook.event_types),
            short_id(hook.project_id) if hook.project_id else "all",
            _state(hook),
            relative(hook.created_at),
        )
    return table


def webhook_detail(hook: Webhook) -> Table:
    """One subscription as field / value rows."""
    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("id", str(hook.id)),
        ("url", hook.url),
        ("events", ", ".join(hook.event_types)),
        ("project", str(hook.project_id) if hook.project_id else "all (and events of none)"),
        ("description", hook.description or "-"),
        ("state", _state(hook)),
        ("position", str(hook.position)),
        ("next attempt", relative(hook.next_attempt_at)),
        ("old secret until", relative(hook.previous_secret_until)),
        ("created", relative(hook.created_at)),
        ("updated", relative(hook.updated_at)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def delivery_table(items: Sequence[WebhookDelivery]) -> Table:
    """Deliveries as a table, as the server lists them (newest first)."""
    table = rows_table(
        None, ["TIME", "EVENT", "TYPE", "ATTEMPT", "STATUS", "CODE", "DURATION", "ERROR"]
    )
    for item in items:
        status = "[green]delivered[/green]" if item.status == "delivered" else "[red]failed[/red]"
        table.add_row(
            item.created_at.astimezone().strftime("%m-%d %H:%M:%S"),
            str(item.event_id),
            item.event_type,
            f"{item.attempt}{' (manual)' if item.manual else ''}",
            status,
            str(item.response_code) if item.response_code is not None else "-",
            f"{item.duration_ms:.0f}ms",
            item.error or "-",
        )
    return table


# --------------------------------------------------------------------------- input


def _events(given: tuple[str, ...]) -> list[str] | None:
    """``--events`` values (repeated or comma-separated), each a type, a family or ``*``."""
    names = [name.strip() for value in given for name in value.split(",") if name.strip()]
    for name in names:
        if name not in EVENT_PATTERNS:
            raise click.BadParameter(
                f"{name!r} is not an event type: give a type such as task.failed, a family "
                "such as task.*, or * (see docs/events.md)",
                param_hint="--events",
            )
    return names or None


def _url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_webhook_url(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}") from None


def _matching(ctx: CliContext, part: str) -> list[str]:
    """The ids of every subscription (the caller may see) that start or end with ``part``."""
    found: set[str] = set()
    offset = 0
    while True:
        page = ctx.client.list_webhooks(limit=1000, offset=offset)
        ids = [str(h.id) for h in page.webhooks]
        found.update(i for i in ids if i.startswith(part) or i.endswith(part))
        offset += len(ids)
        if not ids or offset >= page.total:
            return sorted(found)


def _webhook_id(ctx: CliContext, given: str) -> str:
    """The id of the one subscription ``given`` names: whole, or a part of its start or end."""
    try:
        return str(uuid.UUID(given))
    except ValueError:
        pass
    if not _PART.match(given):
        ctx.fail(
            f"{given!r} is not a webhook id: give the whole id, or at least 4 characters of "
            "its start or of its end (the ID column of `taskqueue webhooks list` shows its end)",
            EXIT_USAGE,
        )
    found = _matching(ctx, given.lower())
    if len(found) > 1:
        ctx.fail(
            f"{given!r} matches {len(found)} webhooks ({', '.join(found[:_SHOWN])}); give "
            "more of the id",
            EXIT_USAGE,
        )
    if not found:
        ctx.fail(f"no webhook id starts or ends with {given!r}", EXIT_NOT_FOUND, _LIST_HINT)
    return found[0]


@contextlib.contextmanager
def _named(ctx: CliContext) -> Iterator[None]:
    """A subscription the server does not have: exit 3, with the command that lists them."""
    try:
        yield
    except NotFoundError as missing:
        ctx.fail(missing.message, EXIT_NOT_FOUND, _LIST_HINT)


def _show_new(ctx: CliContext, made: NewWebhook, what: str) -> None:
    if ctx.output != "table":
        ctx.emit(made)
        return
    ctx.out.print(webhook_detail(made))
    click.echo(f"secret: {made.secret} (shown once; store it now)")
    click.echo(f"{what} webhook {made.id}; the server never shows this secret again", err=True)


def _show_delivery(ctx: CliContext, delivery: WebhookDelivery) -> None:
    """Print a delivery sent now; exit 1 if it failed."""
    ctx.emit(delivery, lambda: delivery_table([delivery]))
    if delivery.status == "failed":
        why = delivery.error or f"the endpoint answered {delivery.response_code}"
        click.echo(f"error: the delivery failed: {why}", err=True)
        raise SystemExit(EXIT_FAILED)


# --------------------------------------------------------------------------- commands


@click.group()
def webhooks() -> None:
    """Subscribe URLs to events, and see what was sent to them."""


_EVENTS_HELP = (
    "An event type (task.failed), a family (task.*) or * to send; repeat or comma-separate."
)


@webhooks.command("create")
@click.argument("url", callback=_url)
@click.option("--events", "events", multiple=True, help=_EVENTS_HELP + " Default: *.")
@click.option("--project", default=None, help="Only this project's events (id or name).")
@click.option("--description", default=None, help="What it is for (shown by get).")
@click.option("--disabled", is_flag=True, help="Make it disabled: nothing is sent until enabled.")
@client_command
def create_webhook(
    ctx: CliContext,
    url: str,
    events: tuple[str, ...],
    project: str | None,
    description: str | None,
    disabled: bool,
) -> None:
    """Subscribe URL to events; its signing secret is printed this once."""
    made = ctx.client.create_webhook(
        url,
        event_types=_events(events),
        project_id=resolve_project(ctx, project),
        description=description,
        enabled=not disabled,
    )
    _show_new(ctx, made, "made")


@webhooks.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@client_command
def list_webhooks(ctx: CliContext, limit: int, offset: int) -> None:
    """List subscriptions, oldest first."""
    page = ctx.client.list_webhooks(limit=limit, offset=offset)
    ctx.emit(
        page.webhooks, lambda: webhook_table(page.webhooks) if page.webhooks else "no webhooks"
    )
    shown = len(page.webhooks)
    if ctx.output == "table" and shown and shown < page.total:
        click.echo(f"showing {offset + 1}-{offset + shown} of {page.total}", err=True)


@webhooks.command("get")
@click.argument("webhook")
@client_command
def get_webhook(ctx: CliContext, webhook: str) -> None:
    """Show one subscription (never its secret)."""
    with _named(ctx):
        found = ctx.client.get_webhook(_webhook_id(ctx, webhook))
    ctx.emit(found, lambda: webhook_detail(found))


@webhooks.command("update")
@click.argument("webhook")
@click.option("--url", default=None, callback=_url, help="Send to this URL instead.")
@click.option("--events", "events", multiple=True, help=_EVENTS_HELP + " Replaces them.")
@click.option("--enable/--disable", "enabled", default=None,
              help="Resume (with the event it could not deliver) or stop sending.")  # fmt: skip
@click.option("--description", default=None, help="Replaces it; '' clears it.")
@client_command
def update_webhook(
    ctx: CliContext,
    webhook: str,
    url: str | None,
    events: tuple[str, ...],
    enabled: bool | None,
    description: str | None,
) -> None:
    """Change a subscription's fields; the others stay as they are."""
    changes: dict[str, Any] = {"url": url, "event_types": _events(events), "enabled": enabled}
    changes = {k: v for k, v in changes.items() if v is not None}
    if description is not None:
        changes["description"] = description or None
    if not changes:
        raise click.UsageError(
            "nothing to change: give --url, --events, --enable/--disable or --description"
        )
    with _named(ctx):
        updated = ctx.client.update_webhook(_webhook_id(ctx, webhook), **changes)
    ctx.emit(updated, lambda: webhook_detail(updated))


@webhooks.command("delete")
@click.argument("webhook")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@client_command
def delete_webhook(ctx: CliContext, webhook: str, yes: bool) -> None:
    """Delete a subscription and its deliveries log."""
    with _named(ctx):
        webhook_id = _webhook_id(ctx, webhook)
        if not yes:
            confirm(ctx, f"delete webhook {webhook_id} and its deliveries log?")
        ctx.client.delete_webhook(webhook_id)
    ctx.emit({"deleted": webhook_id}, lambda: f"deleted {webhook_id}")


@webhooks.command("rotate-secret")
@click.argument("webhook")
@click.option("--grace", default=None, metavar="DURATION",
              help="How long the old secret goes on signing beside the new one: seconds, or "
              "30m, 12h, 2d (at most 7d). Default: 1d.")  # fmt: skip
@client_command
def rotate_secret(ctx: CliContext, webhook: str, grace: str | None) -> None:
    """Give a subscription a new signing secret, printed this once."""
    seconds = None if grace is None else parse_duration(grace, "--grace")
    if seconds is not None and seconds > 7 * 86400:
        raise click.BadParameter(f"{grace!r} is more than 7 days", param_hint="--grace")
    with _named(ctx):
        made = ctx.client.rotate_webhook_secret(_webhook_id(ctx, webhook), grace_seconds=seconds)
    _show_new(ctx, made, "rotated the secret of")


@webhooks.command("deliveries")
@click.argument("webhook")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@client_command
def list_deliveries(ctx: CliContext, webhook: str, limit: int, offset: int) -> None:
    """What was sent to a subscription and what came back, newest first."""
    with _named(ctx):
        page = ctx.client.list_webhook_deliveries(
            _webhook_id(ctx, webhook), limit=limit, offset=offset
        )
    ctx.emit(
        page.deliveries,
        lambda: delivery_table(page.deliveries) if page.deliveries else "no deliveries",
    )
    shown = len(page.deliveries)
    if ctx.output == "table" and shown and shown < page.total:
        click.echo(f"showing {offset + 1}-{offset + shown} of {page.total}, newest first", err=True)


@webhooks.command("redeliver")
@click.argument("webhook")
@click.argument("event_id", type=click.IntRange(1, 2**63 - 1))
@client_command
def redeliver(ctx: CliContext, webhook: str, event_id: int) -> None:
    """Send event EVENT_ID to a subscription again, now; exit 1 if it failed."""
    with _named(ctx):
        delivery = ctx.client.redeliver_webhook(_webhook_id(ctx, webhook), event_id)
    _show_delivery(ctx, delivery)


@webhooks.command("test")
@click.argument("webhook")
@client_command
def test_webhook(ctx: CliContext, webhook: str) -> None:
    """Send a webhook.test event to a subscription now; exit 1 if it failed."""
    with _named(ctx):
        delivery = ctx.client.test_webhook(_webhook_id(ctx, webhook))
    _show_delivery(ctx, delivery)
