"""Workflow tasks through both clients, against a real server and its workers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from taskqueue import (
    ConflictError,
    DevelopmentWorkflow,
    PhaseSpec,
    Review,
    ReviewLink,
    ReviewList,
    TaskPhase,
    ValidationError,
)
from tests.conftest import wait_until
from tests.sdk.blocking import sync_and_async_client

client = sync_and_async_client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _waiting(client: Any, task_id: Any, round_number: int = 1) -> ReviewList:
    seen: list[ReviewList] = []

    def at_gate() -> bool:
        found = client.list_reviews(task_id)
        seen.append(found)
        return found.pending is not None and found.pending.round == round_number

    wait_until(at_gate, 60, "the workflow to wait at its gate")
    return seen[-1]


def test_a_workflow_passes_its_gate_with_two_reviewers(client: Any) -> None:
    task = client.create_task(
        unique("wf"),
        task_type="Workflow",
        phases=[
            PhaseSpec(name="build", command="echo '{\"built\": true}' > $TASKQUEUE_OUTPUT"),
            {"name": "review", "review": True, "reviews_required": 2},
            PhaseSpec(name="ship", command="true"),
        ],
    )
    assert task.task_type.value == "Workflow"
    assert all(isinstance(p, TaskPhase) for p in task.phases)
    assert [p.name for p in task.phases] == ["build", "review", "ship"]
    pending = _waiting(client, task.id).pending
    assert pending is not None
    assert (pending.phase, pending.reviews_required, pending.approvals) == ("review", 2, 0)

    first = client.submit_review(task.id, "approve", "fine", reviewer="ann")
    assert isinstance(first, Review)
    assert (first.reviewer, first.verdict, first.round, first.via) == ("ann", "approve", 1, "api")
    with pytest.raises(ConflictError, match="once per round"):
        client.submit_review(task.id, "approve", reviewer="ann")
    client.submit_review(task.id, "approve", reviewer="ben")
    done = client.wait_for_completion(task.id, timeout=60)
    assert done.status.value == "Completed"
    assert [p.status.value for p in done.phases] == ["Completed"] * 3
    assert done.phases[0].result is not None
    assert done.phases[0].result.output == {"built": True}
    assert done.ai_reviews_completed == 2
    reviews = client.list_reviews(task.id)
    assert [r.reviewer for r in reviews.reviews] == ["ann", "ben"]
    assert reviews.pending is None


def test_a_rejection_sends_it_back_and_is_listed(client: Any) -> None:
    task = client.create_task(
        unique("back"),
        "true",
        task_type="Workflow",
        ai_reviews_required=1,
        retry_delay=0,
    )
    _waiting(client, task.id)
    client.submit_review(task.id, "reject", "add tests", reviewer="cy")
    _waiting(client, task.id, 2)
    again = client.get_task(task.id)
    assert again.review_rounds == 1
    assert again.status.value == "AIReview"
    assert again.current_phase == "AIReview"
    listed = client.list_reviews(task.id)
    assert [(r.verdict, r.comment, r.round) for r in listed.reviews] == [("reject", "add tests", 1)]


def test_a_review_link_points_at_the_server(client: Any, live: Any) -> None:
    task = client.create_task(
        unique("link"),
        task_type="Workflow",
        phases=[{"name": "make", "command": "true"}, {"name": "ok", "review": True}],
    )
    _waiting(client, task.id)
    link = client.create_review_link(task.id, "dee@example.com", expires_in=600)
    assert isinstance(link, ReviewLink)
    assert link.url.startswith(f"{live.url}/reviews/")
    assert (link.phase, link.round, link.reviewer) == ("ok", 1, "dee@example.com")
    with pytest.raises(ValidationError):
        client.create_review_link(task.id, "dee", expires_in=5)


def test_project_workflows_by_name_and_version(client: Any) -> None:
    project = client.create_project(unique("proj"))
    name = unique("release")
    first = client.create_workflow(project.id, name, [PhaseSpec(name="one", command="true")])
    second = client.create_workflow(
        project.id,
        name,
        [{"name": "two", "command": "true"}],
        description="v2",
        max_review_rounds=1,
    )
    assert isinstance(first, DevelopmentWorkflow)
    assert (first.version, second.version) == (1, 2)
    assert second.description == "v2"
    assert [w.version for w in client.list_workflows(project.id)] == [2]
    assert client.get_workflow(project.id, name, version=1).phases[0].name == "one"
    task = client.create_task(
        unique("t"), project_id=project.id, task_type="Workflow", workflow=name
    )
    assert task.development_workflow is not None
    assert (task.development_workflow.name, task.development_workflow.version) == (name, 2)
    assert task.max_review_rounds == 1
    assert client.delete_workflow(project.id, name) is True
    assert client.delete_workflow(project.id, name) is False
    assert client.list_workflows(project.id) == []


def test_bad_phases_are_refused_before_sending(client: Any) -> None:
    project = client.create_project(unique("bad"))
    with pytest.raises(ValidationError):
        client.create_workflow(project.id, "w", [{"name": "r", "review": True}])
    with pytest.raises(ValidationError):
        client.submit_review("00000000-0000-4000-8000-000000000000", "maybe")
