"""Workflow tasks on the wire: their phases, the workflows a project defines, and reviews.

A Workflow task (``task_type: "Workflow"``) walks an ordered list of phases. A phase runs a
body (its own ``command``, or ``language`` and ``code``; none: the task's body) as attempts
with the same leases, retries and limits as any task, or is a review gate (``review: true``)
that waits for ``reviews_required`` approvals. A rejection sends the workflow back to the
gate's ``on_reject`` phase, at most ``max_review_rounds`` times. See ``docs/workflows.md``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from taskqueue._enums import FailureReason, TaskStatus
from taskqueue._fields import StrictInteger, StrictNumber, Text
from taskqueue._input import _Input
from taskqueue._responses import OutputModel as _Output
from taskqueue.languages import LANGUAGES, canonical_language

__all__ = [
    "DEFAULT_PHASES",
    "PHASE_NAME_RE",
    "SEED_PHASES",
    "DevelopmentWorkflow",
    "PendingReview",
    "PhaseSpec",
    "Review",
    "ReviewCreate",
    "ReviewLink",
    "ReviewLinkCreate",
    "ReviewList",
    "TaskPhase",
    "TaskResult",
    "WorkflowCreate",
    "WorkflowList",
    "WorkflowPhase",
    "WorkflowRef",
    "check_phases",
]

#: What a phase may be called: a letter, then up to 19 letters, digits, ``_ . -``.
PHASE_NAME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,19}$")
#: The phases that are statuses too: while one of them is current, it is the task's status.
SEED_PHASES: Final = frozenset(
    s.value
    for s in (
        TaskStatus.PLANNING,
        TaskStatus.IMPLEMENTATION,
        TaskStatus.TEST_CREATION,
        TaskStatus.TESTING,
        TaskStatus.AI_REVIEW,
        TaskStatus.FINALIZED,
    )
)
#: The default workflow: these six, in this order; AIReview is the review gate.
DEFAULT_PHASES: Final = (
    "Planning",
    "Implementation",
    "TestCreation",
    "Testing",
    "AIReview",
    "Finalized",
)
#: Where a rejection goes back to when a gate does not say (if the workflow has it).
DEFAULT_ON_REJECT: Final = "Implementation"

PhaseName = Annotated[
    str,
    Field(min_length=1, max_length=20, pattern=PHASE_NAME_RE.pattern),
]
WorkflowName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
]
ReviewerName = Annotated[Text, Field(min_length=1, max_length=200)]
Comment = Annotated[Text, Field(max_length=10_000)]
ReviewCount = Annotated[int, Field(ge=0, le=100), StrictInteger]
Rounds = Annotated[int, Field(ge=0, le=100), StrictInteger]
Verdict = Literal["approve", "reject"]


class TaskResult(_Output):
    """What an attempt of a task (or of a workflow phase) produced."""

    exit_code: int | None = None
    output: Any = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    duration_ms: int | None = None
    error: str | None = None
    failure_reason: FailureReason | None = None


# -------------------------------------------------------------------------------- definitions


def _error(loc: tuple[str | int, ...], kind: str, msg: str, model: str) -> ValidationError:
    error = PydanticCustomError(kind, msg)
    return ValidationError.from_exception_data(
        model, [InitErrorDetails(type=error, loc=loc, input=None)]
    )


class PhaseSpec(_Input):
    """One phase of a workflow, as given: a body to run, or a review gate.

    A run phase has ``command``, or ``language`` and ``code``, or neither (it runs the task's
    own body, with ``$TASKQUEUE_PHASE`` naming the phase); ``timeout``, ``retry_attempts``
    and ``retry_delay`` left out are the task's. A review gate (``review: true``) has no body:
    it waits for ``reviews_required`` approvals (left out: the task's
    ``ai_reviews_required``), and a rejection sends the workflow back to ``on_reject`` (an
    earlier run phase; left out: ``Implementation`` if the workflow has it, else the first).
    """

    name: PhaseName
    review: bool = False
    command: Annotated[Text, Field(min_length=1, max_length=65_536)] | None = None
    language: Annotated[Text, Field(min_length=1, max_length=50)] | None = None
    code: Annotated[Text, Field(min_length=1, max_length=1_000_000)] | None = None
    timeout: Annotated[int, Field(ge=1, le=7 * 24 * 3600), StrictInteger] | None = None
    retry_attempts: Annotated[int, Field(ge=0, le=100), StrictInteger] | None = None
    retry_delay: Annotated[float, Field(ge=0, le=24 * 3600), StrictNumber] | None = None
    reviews_required: ReviewCount | None = None
    on_reject: PhaseName | None = None

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = canonical_language(value)
        if name is None:
            known = ", ".join(language.name for language in LANGUAGES)
            raise ValueError(f"unknown language {value!r}; known languages: {known}")
        return name

    @model_validator(mode="after")
    def _shape(self) -> PhaseSpec:
        model = type(self).__name__
        run_only = ("command", "language", "code", "timeout", "retry_attempts", "retry_delay")
        if self.review:
            for name in run_only:
                if getattr(self, name) is not None:
                    msg = "a review phase runs nothing: leave it out"
                    raise _error((name,), "phase", msg, model)
            return self
        for name in ("reviews_required", "on_reject"):
            if getattr(self, name) is not None:
                raise _error((name,), "phase", "only a review phase (review: true) has it", model)
        if self.command is not None and (self.language is not None or self.code is not None):
            raise _error(("command",), "phase", "give command, or language and code", model)
        if (self.language is None) != (self.code is None):
            loc = "code" if self.code is None else "language"
            raise _error((loc,), "phase", "a code phase needs both language and code", model)
        return self

    @property
    def has_body(self) -> bool:
        """Whether the phase brings its own body (a command, or language and code)."""
        return self.command is not None or self.code is not None


Phases = Annotated[list[PhaseSpec], Field(min_length=1, max_length=50)]


def check_phases(phases: list[PhaseSpec]) -> tuple[tuple[int | str, ...], str] | None:
    """Where and why a list of phases cannot be a workflow, or None if it can.

    Names are unique; the first phase runs something (a workflow cannot start at a gate); a
    gate's ``on_reject`` names an earlier run phase.
    """
    seen: dict[str, int] = {}
    for i, phase in enumerate(phases):
        if phase.name in seen:
            first = seen[phase.name]
            return (i, "name"), f"phase {phase.name!r} is named twice (phases {first} and {i})"
        seen[phase.name] = i
    if phases[0].review:
        return (0, "review"), "the first phase cannot be a review: there is nothing to review yet"
    for i, phase in enumerate(phases):
        target = phase.on_reject
        if target is None:
            continue
        at = seen.get(target)
        if at is None or at >= i:
            return (i, "on_reject"), f"{target!r} is not an earlier phase of this workflow"
        if phases[at].review:
            return (i, "on_reject"), f"{target!r} is a review phase; go back to a phase that runs"
    return None


class WorkflowCreate(_Input):
    """Body of ``POST /api/projects/{id}/workflows``: a named list of phases.

    Creating a workflow whose name the project already has stores its next version; tasks
    keep the version they were created with.
    """

    name: WorkflowName
    description: Annotated[Text, Field(max_length=10_000)] = ""
    phases: Phases
    max_review_rounds: Rounds = 3

    @model_validator(mode="after")
    def _valid(self) -> WorkflowCreate:
        problem = check_phases(self.phases)
        if problem is not None:
            loc, msg = problem
            raise _error(("phases", *loc), "workflow", msg, type(self).__name__)
        return self


class ReviewCreate(_Input):
    """Body of ``POST /api/tasks/{id}/reviews``: a verdict on the open review gate.

    With API keys the reviewer is the key's name (``reviewer``, if given, must match it);
    without keys ``reviewer`` is required. A reviewer counts once per round.
    """

    verdict: Verdict
    reviewer: ReviewerName | None = None
    comment: Comment = ""


class ReviewLinkCreate(_Input):
    """Body of ``POST /api/tasks/{id}/review-links``: a single-use approval link for someone.

    ``expires_in`` is in seconds (one minute to thirty days; default seven days).
    """

    reviewer: ReviewerName
    expires_in: Annotated[int, Field(ge=60, le=30 * 24 * 3600), StrictInteger] = 7 * 24 * 3600


# -------------------------------------------------------------------------------- on the wire


class WorkflowPhase(_Output):
    """A phase as a workflow defines it (resolved: the body and settings it runs with)."""

    name: str
    review: bool = False
    command: str | None = None
    language: str | None = None
    code: str | None = None
    timeout: int | None = None
    retry_attempts: int | None = None
    retry_delay: float | None = None
    reviews_required: int | None = None
    on_reject: str | None = None


class TaskPhase(WorkflowPhase):
    """A phase of a Workflow task and where it is.

    ``status``: Pending (not reached), Running (its attempts run, or its gate waits for
    reviews), Completed, Failed or Cancelled.
    """

    status: TaskStatus = TaskStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    result: TaskResult | None = None


class DevelopmentWorkflow(_Output):
    """A named, versioned list of phases of a project, that tasks name to walk."""

    id: UUID
    project_id: UUID
    name: str
    version: int
    description: str = ""
    phases: list[WorkflowPhase]
    max_review_rounds: int = 3
    created_at: datetime


class WorkflowList(_Output):
    """The workflows of a project: the latest version of each name."""

    workflows: list[DevelopmentWorkflow]
    total: int


class WorkflowRef(_Output):
    """Which project workflow (and version) a task walks."""

    id: UUID
    name: str
    version: int


class Review(_Output):
    """A verdict given on a review gate: by whom, in which round, how (``api`` or ``link``)."""

    id: UUID
    task_id: UUID
    phase: str
    round: int
    verdict: Verdict
    reviewer: str
    comment: str = ""
    via: Literal["api", "link"] = "api"
    created_at: datetime


class PendingReview(_Output):
    """The gate a task waits at: its phase and round, approvals needed and given."""

    phase: str
    round: int
    reviews_required: int
    approvals: int
    reviewers: list[str]


class ReviewList(_Output):
    """Every review of a task, oldest first, and the gate it waits at (if it does)."""

    task_id: UUID
    reviews: list[Review]
    pending: PendingReview | None = None


class ReviewLink(_Output):
    """A single-use approval link: open ``url`` in a browser to see the work and decide."""

    url: str
    task_id: UUID
    phase: str
    round: int
    reviewer: str
    expires_at: datetime
