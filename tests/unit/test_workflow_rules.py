"""The rules of Workflow tasks, alone: phases given, resolved, and what they show."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from taskqueue.engine.workflows import (
    Body,
    default_phases,
    envelope,
    index_of,
    resolve_phases,
    wire_status,
)
from taskqueue.models import PhaseSpec, TaskCreate, WorkflowCreate

BODY = Body(
    command="./agent.sh",
    language=None,
    code=None,
    timeout=60,
    retry_attempts=2,
    retry_delay=5.0,
    reviews_required=3,
)


def test_the_default_workflow_is_the_six_phases_with_one_gate() -> None:
    phases, problem = resolve_phases(default_phases(), BODY)
    assert problem is None
    assert [p["name"] for p in phases] == [
        "Planning",
        "Implementation",
        "TestCreation",
        "Testing",
        "AIReview",
        "Finalized",
    ]
    gate = phases[4]
    assert gate["review"] is True
    assert gate["reviews_required"] == 3
    assert gate["on_reject"] == "Implementation"
    assert gate["command"] is None
    for phase in phases[:4] + phases[5:]:
        assert phase["command"] == "./agent.sh"
        assert (phase["timeout"], phase["retry_attempts"], phase["retry_delay"]) == (60, 2, 5.0)
    assert {p["status"] for p in phases} == {"Pending"}
    assert {p["attempts"] for p in phases} == {0}


def test_a_phase_keeps_its_own_body_and_settings() -> None:
    specs = [
        PhaseSpec(name="build", command="make", timeout=10, retry_attempts=0, retry_delay=1),
        PhaseSpec(name="lint", language="python", code="print(1)"),
        PhaseSpec(name="review", review=True, reviews_required=1),
    ]
    phases, problem = resolve_phases(specs, BODY)
    assert problem is None
    assert (phases[0]["command"], phases[0]["timeout"], phases[0]["retry_attempts"]) == (
        "make",
        10,
        0,
    )
    assert (phases[1]["language"], phases[1]["code"], phases[1]["command"]) == (
        "python3",  # stored under the language's table name
        "print(1)",
        None,
    )
    # No Implementation phase: a rejection goes back to the first.
    assert phases[2]["on_reject"] == "build"
    assert phases[2]["reviews_required"] == 1


def test_a_phase_without_a_body_needs_the_tasks() -> None:
    no_body = Body(None, None, None, None, 3, 30.0, 3)
    phases, problem = resolve_phases(
        [PhaseSpec(name="a", command="x"), PhaseSpec(name="b")], no_body
    )
    assert phases == []
    assert problem is not None
    assert problem[0] == 1
    assert "runs nothing" in problem[1]


@pytest.mark.parametrize(
    ("phases", "loc", "says"),
    [
        ([{"name": "a", "command": "x"}, {"name": "a", "command": "y"}], (1, "name"), "twice"),
        ([{"name": "r", "review": True}], (0, "review"), "first phase"),
        (
            [{"name": "a", "command": "x"}, {"name": "r", "review": True, "on_reject": "z"}],
            (1, "on_reject"),
            "not an earlier phase",
        ),
        (
            [
                {"name": "a", "command": "x"},
                {"name": "r", "review": True},
                {"name": "s", "review": True, "on_reject": "r"},
            ],
            (2, "on_reject"),
            "review phase",
        ),
    ],
)
def test_phases_that_cannot_be_a_workflow_are_refused_where_they_break(
    phases: list[dict[str, Any]], loc: tuple[Any, ...], says: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        WorkflowCreate(name="wf", phases=phases)
    error = caught.value.errors()[0]
    assert error["loc"] == ("phases", *loc)
    assert says in error["msg"]


@pytest.mark.parametrize(
    ("phase", "field"),
    [
        ({"name": "r", "review": True, "command": "x"}, "command"),
        ({"name": "a", "reviews_required": 2}, "reviews_required"),
        ({"name": "a", "on_reject": "b"}, "on_reject"),
        ({"name": "a", "command": "x", "code": "y", "language": "python"}, "command"),
        ({"name": "a", "code": "y"}, "language"),
        ({"name": "1bad"}, "name"),
        ({"name": "a" * 21}, "name"),
        ({"name": "a", "language": "cobol-9000", "code": "x"}, "language"),
    ],
)
def test_a_phase_of_the_wrong_shape_names_its_field(phase: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PhaseSpec(**phase)
    assert caught.value.errors()[0]["loc"][0] == field


def test_workflow_fields_belong_to_workflow_tasks() -> None:
    with pytest.raises(ValidationError) as caught:
        TaskCreate(name="t", command="x", phases=[{"name": "a"}])
    assert caught.value.errors()[0]["loc"] == ("phases",)
    with pytest.raises(ValidationError) as caught:
        TaskCreate(name="t", command="x", task_type="Workflow", workflow="w")
    assert caught.value.errors()[0]["loc"] == ("workflow",)  # needs a project
    with pytest.raises(ValidationError) as caught:
        TaskCreate(name="t", command="x", task_type="Workflow", workflow_version=2)
    assert caught.value.errors()[0]["loc"] == ("workflow_version",)
    # Phases that each bring a body need none of the task's.
    made = TaskCreate(name="t", task_type="Workflow", phases=[{"name": "a", "command": "x"}])
    assert made.command is None
    with pytest.raises(ValidationError):
        TaskCreate(name="t", task_type="Workflow", phases=[{"name": "a"}])


def test_a_running_workflow_shows_its_seed_phase_as_its_status() -> None:
    assert wire_status("Workflow", "Running", "Implementation") == "Implementation"
    assert wire_status("Workflow", "Pending", "AIReview") == "AIReview"
    assert wire_status("Workflow", "Running", "build") == "Running"
    assert wire_status("Workflow", "Completed", "Finalized") == "Completed"
    assert wire_status("Simple", "Running", None) == "Running"


def test_a_phase_reads_the_outputs_before_it_and_the_reviews_that_sent_it_back() -> None:
    phases, _ = resolve_phases(default_phases(), BODY)
    phases[0].update(status="Completed", result={"output": {"plan": 1}})
    phases[1].update(status="Completed", result={"output": None})
    reviews = [{"phase": "AIReview", "round": 1, "reviewer": "a", "verdict": "reject",
                "comment": "no"}]  # fmt: skip
    given = envelope({"x": 1}, phases, index_of(phases, "TestCreation"), 2, reviews)
    assert given == {
        "input": {"x": 1},
        "phase": "TestCreation",
        "round": 2,
        "phases": {
            "Planning": {"status": "Completed", "output": {"plan": 1}},
            "Implementation": {"status": "Completed", "output": None},
        },
        "reviews": reviews,
    }
    assert index_of(phases, "nothing") == 0
