"""``taskqueue workflows ...`` and the review commands of ``taskqueue tasks``.

A Workflow task walks phases; a review gate waits for approvals (``tasks review``), or for a
single-use link opened by someone outside the API (``tasks review-link``). A project keeps
named, versioned workflows (``workflows create``) that tasks name. See ``docs/workflows.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from taskqueue.cli._context import (
    CliContext,
    client_command,
    duration,
    json_flag,
    relative,
    rows_table,
    status_style,
)
from taskqueue.cli._ids import resolve_project, resolve_task
from taskqueue.cli.functions import read_json_argument
from taskqueue.models import DevelopmentWorkflow, ReviewList, Task, TaskPhase

__all__ = [
    "phase_table",
    "read_phases",
    "review_commands",
    "workflow_summary",
    "workflows",
]


def read_phases(value: str, option: str = "--phases") -> list[Any]:
    """A list of phases given as JSON, ``@FILE`` or ``-`` (exit 2 if it is not a list)."""
    phases = read_json_argument(value, option)
    if not isinstance(phases, list) or not phases:
        raise click.BadParameter("give a non-empty JSON list of phases", param_hint=option)
    return phases


def _took(phase: TaskPhase) -> str:
    if phase.started_at is None or phase.finished_at is None:
        return "-"
    return duration(int((phase.finished_at - phase.started_at).total_seconds() * 1000))


def phase_table(task: Task) -> Table:
    """A workflow's phases in order: kind, status, attempts, when each started and ended."""
    table = rows_table(None, ["PHASE", "KIND", "STATUS", "ATTEMPTS", "STARTED", "TOOK"])
    for phase in task.phases:
        kind = f"review ({phase.reviews_required})" if phase.review else "run"
        name = f"> {phase.name}" if phase.name == task.current_phase else f"  {phase.name}"
        table.add_row(
            name,
            kind,
            status_style(phase.status.value),
            str(phase.attempts) if not phase.review else "-",
            relative(phase.started_at),
            _took(phase),
        )
    return table


def workflow_summary(task: Task) -> str:
    """Where a workflow is: its phase, approvals and review rounds, in one line."""
    gate = next((p for p in task.phases if p.name == task.current_phase), None)
    words = [f"phase {task.current_phase}"]
    if gate is not None and gate.review:
        words.append(f"approvals {task.ai_reviews_completed}/{gate.reviews_required}")
    rounds = task.max_review_rounds if task.max_review_rounds is not None else "-"
    words.append(f"review rounds {task.review_rounds}/{rounds}")
    if task.development_workflow is not None:
        ref = task.development_workflow
        words.append(f"workflow {ref.name} v{ref.version}")
    return ", ".join(words)


def _reviews_table(found: ReviewList) -> Table | str:
    if not found.reviews and found.pending is None:
        return "no reviews, and no review gate waiting"
    table = rows_table(None, ["PHASE", "ROUND", "REVIEWER", "VERDICT", "VIA", "WHEN", "COMMENT"])
    for review in found.reviews:
        verdict = "[green]approve[/]" if review.verdict == "approve" else "[red]reject[/]"
        table.add_row(
            review.phase,
            str(review.round),
            review.reviewer,
            verdict,
            review.via,
            relative(review.created_at),
            review.comment,
        )
    pending = found.pending
    if pending is not None:
        table.caption = (
            f"waiting at {pending.phase} (round {pending.round}): "
            f"{pending.approvals} of {pending.reviews_required} approvals"
        )
    return table


# ---------------------------------------------------------------------------- tasks review ...


@click.command("review")
@click.argument("task_id")
@click.option("--approve", "verdict", flag_value="approve", help="Approve the gate.")
@click.option("--reject", "verdict", flag_value="reject", help="Reject: back to an earlier phase.")
@click.option("--message", "-m", "comment", default="", help="A comment (the phase sees it).")
@click.option("--reviewer", default=None, help="Who reviews (a server without API keys).")
@client_command
@json_flag
def review_task(
    ctx: CliContext, task_id: str, verdict: str | None, comment: str, reviewer: str | None
) -> None:
    """Approve or reject the review gate the workflow TASK_ID waits at."""
    if verdict is None:
        raise click.UsageError("give --approve or --reject")
    review = ctx.client.submit_review(
        resolve_task(ctx, task_id), verdict, comment, reviewer=reviewer
    )
    done = "approved" if review.verdict == "approve" else "rejected"
    ctx.emit(review, lambda: f"{review.reviewer} {done} {review.phase} (round {review.round})")


@click.command("reviews")
@click.argument("task_id")
@client_command
@json_flag
def list_task_reviews(ctx: CliContext, task_id: str) -> None:
    """The reviews of a workflow, and the gate it waits at."""
    found = ctx.client.list_reviews(resolve_task(ctx, task_id))
    ctx.emit(found, lambda: _reviews_table(found))


@click.command("review-link")
@click.argument("task_id")
@click.option("--reviewer", required=True, help="Who the link is for (shown on its page).")
@click.option(
    "--expires-in",
    type=click.IntRange(60, 30 * 24 * 3600),
    default=None,
    metavar="SECONDS",
    help="How long it works (default 7 days).",
)
@client_command
@json_flag
def review_link(ctx: CliContext, task_id: str, reviewer: str, expires_in: int | None) -> None:
    """A single-use approval link to the gate TASK_ID waits at, for someone without a key."""
    link = ctx.client.create_review_link(
        resolve_task(ctx, task_id), reviewer, expires_in=expires_in
    )
    ctx.emit(link, lambda: link.url)


#: The commands ``taskqueue tasks`` takes for reviews.
review_commands: tuple[click.Command, ...] = (review_task, list_task_reviews, review_link)


# ---------------------------------------------------------------------------- workflows ...


def _workflow_detail(flow: DevelopmentWorkflow) -> Table:
    table = rows_table(
        f"{flow.name} v{flow.version} (max review rounds {flow.max_review_rounds})",
        ["PHASE", "KIND", "RUNS"],
    )
    for phase in flow.phases:
        if phase.review:
            needs = phase.reviews_required
            gate = f"needs {needs} approvals" if needs is not None else "needs the task's approvals"
            table.add_row(phase.name, "review", f"{gate}; a rejection: back to {phase.on_reject}")
        else:
            body = phase.command or (f"{phase.language} code" if phase.code else "the task's body")
            table.add_row(phase.name, "run", body)
    return table


def _workflows_table(found: Sequence[DevelopmentWorkflow]) -> Table:
    table = rows_table(None, ["NAME", "VERSION", "PHASES", "CREATED"])
    for flow in found:
        table.add_row(
            flow.name,
            str(flow.version),
            " > ".join(p.name for p in flow.phases),
            relative(flow.created_at),
        )
    return table


def _project(ctx: CliContext, given: str) -> str:
    found = resolve_project(ctx, given)
    assert found is not None
    return found


@click.group()
def workflows() -> None:
    """A project's named workflows: the phases its Workflow tasks walk."""


@workflows.command("create")
@click.argument("project")
@click.argument("name")
@click.option("--phases", "phases_json", required=True, metavar="JSON|@FILE|-",
              help="The phases: a JSON list (see docs/workflows.md).")  # fmt: skip
@click.option("--description", default=None)
@click.option("--max-review-rounds", type=click.IntRange(0, 100), default=None)
@client_command
@json_flag
def create_workflow(
    ctx: CliContext,
    project: str,
    name: str,
    phases_json: str,
    description: str | None,
    max_review_rounds: int | None,
) -> None:
    """Store workflow NAME of PROJECT (its next version if the name exists)."""
    flow = ctx.client.create_workflow(
        _project(ctx, project),
        name,
        read_phases(phases_json),
        description=description,
        max_review_rounds=max_review_rounds,
    )
    ctx.emit(flow, lambda: _workflow_detail(flow))


@workflows.command("list")
@click.argument("project")
@client_command
@json_flag
def list_workflows(ctx: CliContext, project: str) -> None:
    """The workflows of PROJECT, each at its latest version."""
    found = ctx.client.list_workflows(_project(ctx, project))
    ctx.emit(found, lambda: _workflows_table(found) if found else "no workflows")


@workflows.command("get")
@click.argument("project")
@click.argument("name")
@click.option("--version", type=click.IntRange(1), default=None, help="Default: the latest.")
@client_command
@json_flag
def get_workflow(ctx: CliContext, project: str, name: str, version: int | None) -> None:
    """Show workflow NAME of PROJECT: its phases in order."""
    flow = ctx.client.get_workflow(_project(ctx, project), name, version)
    ctx.emit(flow, lambda: _workflow_detail(flow))


@workflows.command("delete")
@click.argument("project")
@click.argument("name")
@client_command
def delete_workflow(ctx: CliContext, project: str, name: str) -> None:
    """Delete every version of workflow NAME (tasks keep the phases they copied)."""
    if not ctx.client.delete_workflow(_project(ctx, project), name):
        raise click.ClickException(f"project {project} has no workflow {name}")
    click.echo(f"deleted workflow {name}")
