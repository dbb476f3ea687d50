"""``taskqueue health`` and ``taskqueue workers``: what the server holds and who serves it."""

from __future__ import annotations

from typing import Any

import click

from taskqueue.cli._context import (
    CliContext,
    client_command,
    rows_table,
)

__all__ = ["health", "workers"]


@click.command()
@client_command
def health(ctx: CliContext) -> None:
    """Whether the server answers, and what it holds."""
    report = ctx.client.get_health()

    def table() -> Any:
        rows = rows_table(None, ["STATUS", "VERSION", "DATABASE", "WORKERS", "TASKS"])
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.tasks.items())) or "none"
        rows.add_row(report.status, report.version, report.database, str(report.workers), counts)
        return rows

    ctx.emit(report, table)


@click.command()
@client_command
def workers(ctx: CliContext) -> None:
    """The worker processes serving the server's database."""
    report = ctx.client.list_workers()

    def table() -> Any:
        rows = rows_table(
            None, ["ID", "STATUS", "HOST", "PID", "RUNNING", "QUEUES", "VERSION", "LAST SEEN"]
        )
        for w in report.workers:
            rows.add_row(
                w.id,
                w.status.value,
                w.host,
                str(w.pid),
                f"{w.running}/{w.concurrency}",
                ", ".join(w.queues),
                w.version,
                w.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
            )
        return rows

    ctx.emit(report, table)
