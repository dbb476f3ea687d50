"""The rules of Workflow tasks, as plain functions with no I/O.

A Workflow task keeps its phases in one list (``tasks.phases``): each phase as it was resolved
when the task was made (the body and settings it runs with) and where it is (status, times,
attempts, result). The store walks the list inside its transactions with these functions:
which phase comes next, what a phase's command is given, what the task's status reads as.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from taskqueue._workflow_models import (
    DEFAULT_ON_REJECT,
    DEFAULT_PHASES,
    SEED_PHASES,
    PhaseSpec,
)
from taskqueue.models import TaskStatus

__all__ = [
    "PHASE_STATE",
    "Body",
    "Gate",
    "default_phases",
    "envelope",
    "index_of",
    "resolve_phases",
    "wire_status",
]

NOT_REACHED, _R = TaskStatus.PENDING.value, TaskStatus.RUNNING.value
#: The fields of a phase that say where it is, as a phase not reached has them.
PHASE_STATE: Final[dict[str, Any]] = {
    "status": NOT_REACHED,
    "started_at": None,
    "finished_at": None,
    "attempts": 0,
    "result": None,
}


@dataclass(frozen=True)
class Body:
    """What a task itself runs, and its settings: what its phases fall back on."""

    command: str | None
    language: str | None
    code: str | None
    timeout: int | None
    retry_attempts: int
    retry_delay: float
    reviews_required: int


@dataclass(frozen=True)
class Gate:
    """A review gate a task waits at: its phase, the approvals it needs."""

    index: int
    name: str
    reviews_required: int


def default_phases() -> list[PhaseSpec]:
    """The default workflow: Planning ... Finalized, AIReview its review gate."""
    return [PhaseSpec(name=name, review=name == "AIReview") for name in DEFAULT_PHASES]


def resolve_phases(
    specs: Sequence[PhaseSpec], body: Body
) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
    """The stored phases of a new Workflow task, or (where, why) they cannot run.

    Every run phase gets a body (its own, or the task's) and settings; every gate the
    approvals it needs and the phase a rejection goes back to.
    """
    names = [spec.name for spec in specs]
    resolved: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        phase: dict[str, Any] = {"name": spec.name, "review": spec.review}
        if spec.review:
            target = spec.on_reject
            if target is None:
                earlier = names[:i]
                target = DEFAULT_ON_REJECT if DEFAULT_ON_REJECT in earlier else names[0]
                if specs[names.index(target)].review:  # pragma: no cover - first is never a gate
                    target = names[0]
            required = spec.reviews_required
            phase.update(
                command=None, language=None, code=None, timeout=None, retry_attempts=None,
                retry_delay=None, on_reject=target,
                reviews_required=body.reviews_required if required is None else required,
            )  # fmt: skip
        else:
            if spec.has_body:
                command, language, code = spec.command, spec.language, spec.code
            else:
                command, language, code = body.command or None, body.language, body.code
            if command is None and code is None:
                return [], (
                    i,
                    f"phase {spec.name!r} runs nothing: give it a command (or language and "
                    "code), or give the task one",
                )
            phase.update(
                command=command, language=language, code=code,
                timeout=spec.timeout if spec.timeout is not None else body.timeout,
                retry_attempts=(
                    spec.retry_attempts if spec.retry_attempts is not None
                    else body.retry_attempts
                ),
                retry_delay=spec.retry_delay if spec.retry_delay is not None else body.retry_delay,
                reviews_required=None, on_reject=None,
            )  # fmt: skip
        phase.update(PHASE_STATE)
        resolved.append(phase)
    return resolved, None


def index_of(phases: Sequence[Mapping[str, Any]], name: str | None) -> int:
    """Where the phase called ``name`` is in the list (0 if there is no such phase)."""
    for i, phase in enumerate(phases):
        if phase["name"] == name:
            return i
    return 0


def wire_status(task_type: str, status: str, current_phase: str | None) -> str:
    """The status a task shows: a running workflow's seed-named phase, else its own."""
    if task_type == "Workflow" and status in (NOT_REACHED, _R) and current_phase in SEED_PHASES:
        return str(current_phase)
    return status


def envelope(
    task_input: Any,
    phases: Sequence[Mapping[str, Any]],
    index: int,
    round_number: int,
    reviews: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """What a phase's command reads from ``$TASKQUEUE_INPUT``.

    The task's input, the phase and round, the output of every phase that ran before it
    (by name), and the reviews of the round that sent the workflow back (if one did).
    """
    done: dict[str, Any] = {}
    for phase in phases[:index]:
        if phase["review"] or phase["status"] != TaskStatus.COMPLETED.value:
            continue
        result = phase.get("result") or {}
        done[phase["name"]] = {"status": phase["status"], "output": result.get("output")}
    return {
        "input": task_input,
        "phase": phases[index]["name"],
        "round": round_number,
        "phases": done,
        "reviews": [dict(r) for r in reviews],
    }
