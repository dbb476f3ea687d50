"""Request bodies and query filters: what a client may send, validated strictly.

Field names are snake_case, and every model also accepts the camelCase spelling of each field
(``retryAttempts`` for ``retry_attempts``), never both at once. Unknown fields are refused, so a
typo is an error, not a silently ignored setting. The value types (:mod:`taskqueue._fields`)
refuse what their JSON Schema does not allow, so the OpenAPI document is what is accepted.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union
from uuid import UUID

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError

from taskqueue._enums import QUEUE_RE, TaskPriority, TaskStatus, TaskType
from taskqueue._fields import (
    INT64_MAX,
    UUID_RE,
    EnvironmentMap,
    JSONObject,
    JSONValue,
    Omittable,
    SchemaOf,
    StrictInteger,
    StrictNumber,
    Text,
    UTCDateTime,
    WireUUID,
)
from taskqueue._input import _Input
from taskqueue._limits import TaskLimits
from taskqueue._schedule_models import Schedule
from taskqueue._workflow_models import Phases, Rounds, WorkflowName, check_phases
from taskqueue.languages import LANGUAGES, canonical_language

__all__ = [
    "BatchTaskCreate",
    "BatchTaskItem",
    "BatchTaskUpdate",
    "DependencyRef",
    "KeyCreate",
    "KeyRotate",
    "KeyScope",
    "ProjectCreate",
    "ProjectUpdate",
    "TaskCreate",
    "TaskFilters",
    "TaskIdRef",
    "TaskUpdate",
    "TaskUpdateItem",
]


# --------------------------------------------------------------------------------------------
# Projects

ProjectName = Annotated[Text, Field(min_length=1, max_length=200)]
ProjectStatus = Annotated[Text, Field(min_length=1, max_length=50)]
Description = Annotated[Text, Field(max_length=10_000)]
Tags = Annotated[list[Annotated[Text, Field(max_length=100)]], Field(max_length=100)]


class ProjectCreate(_Input):
    """Body of ``POST /api/projects``."""

    name: ProjectName
    description: Description | None = None
    status: ProjectStatus = "Planning"
    due_date: UTCDateTime | None = None
    tags: Tags = Field(default_factory=list)
    metadata: JSONObject = Field(default_factory=dict)


class ProjectUpdate(_Input):
    """Body of ``PUT /api/projects/{id}``: only the fields given change.

    ``description`` and ``due_date`` may be set to ``null`` (cleared); the others may be left out
    but not set to ``null``.
    """

    name: Omittable[ProjectName] = None
    description: Description | None = None
    status: Omittable[ProjectStatus] = None
    due_date: UTCDateTime | None = None
    tags: Omittable[Tags] = None
    metadata: Omittable[JSONObject] = None


# --------------------------------------------------------------------------------------------
# Tasks

Ref = Annotated[Text, Field(min_length=1, max_length=200)]


def _exactly_one(model: str, data: Any, names: tuple[str, ...]) -> None:
    if isinstance(data, dict) and len([n for n in names if n in data]) != 1:
        error = PydanticCustomError(
            "dependency_object", "give exactly one of {names}", {"names": ", ".join(names)}
        )
        raise ValidationError.from_exception_data(
            model, [InitErrorDetails(type=error, loc=(), input=data)]
        )


class TaskIdRef(_Input):
    """A dependency on an existing task, given as an object: ``{"task_id": ...}``."""

    task_id: WireUUID

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        _exactly_one(cls.__name__, data, ("task_id", "taskId"))
        return data


class DependencyRef(_Input):
    """A dependency of a batch item as an object: a task's id or an earlier item's ``ref``."""

    task_id: WireUUID | None = None
    ref: Ref | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        _exactly_one(cls.__name__, data, ("task_id", "taskId", "ref"))
        return data


def _task_dependency(value: Any) -> Any:
    """A dependency of a single task: a task id, or ``{"task_id": ...}``."""
    if isinstance(value, UUID):  # from Python code
        return str(value)
    if isinstance(value, str):
        if not UUID_RE.match(value):
            raise ValueError(
                "a dependency is a task id (refs are only for items of POST /api/tasks/batch)"
            )
        return value
    if isinstance(value, (dict, TaskIdRef, DependencyRef)):
        if isinstance(value, DependencyRef):
            value = value.model_dump(exclude_unset=True)
        ref = TaskIdRef.model_validate(value)
        return DependencyRef(task_id=ref.task_id)
    raise ValueError('a dependency is a task id or {"task_id": ...}')


def _batch_dependency(value: Any) -> Any:
    """A dependency of a batch item: a task id or ref, ``{"task_id": ...}`` or ``{"ref": ...}``."""
    if isinstance(value, UUID):  # from Python code
        return str(value)
    if isinstance(value, str):
        if not 1 <= len(value) <= 200:
            raise ValueError("a dependency string must be 1 to 200 characters")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value
    if isinstance(value, (dict, DependencyRef)):
        return DependencyRef.model_validate(value)
    raise ValueError('a dependency is a task id, a ref, or {"task_id": ...} / {"ref": ...}')


#: A dependency of a single task: a task id, or ``{"task_id": ...}``.
TaskDependency = Annotated[
    Union[str, DependencyRef],  # noqa: UP007
    BeforeValidator(_task_dependency),
    SchemaOf(Union[WireUUID, TaskIdRef]),  # noqa: UP007
]
#: A dependency of a batch item: a task id, the ``ref`` of an earlier item of the same batch, or
#: ``{"task_id": ...}`` / ``{"ref": ...}``.
Dependency = Annotated[
    Union[str, DependencyRef],  # noqa: UP007
    BeforeValidator(_batch_dependency),
    SchemaOf(Union[Ref, DependencyRef]),  # noqa: UP007
]

TaskName = Annotated[Text, Field(min_length=1, max_length=255)]
Command = Annotated[Text, Field(min_length=1, max_length=65_536)]
LanguageName = Annotated[Text, Field(min_length=1, max_length=50)]
Code = Annotated[Text, Field(min_length=1, max_length=1_000_000)]
TechnicalSpecs = Annotated[Text, Field(max_length=100_000)]
Criteria = Annotated[list[Annotated[Text, Field(max_length=10_000)]], Field(max_length=100)]
Timeout = Annotated[int, Field(ge=1, le=7 * 24 * 3600), StrictInteger]
RetryAttempts = Annotated[int, Field(ge=0, le=100), StrictInteger]
RetryDelay = Annotated[float, Field(ge=0, le=24 * 3600), StrictNumber]
WorkingDirectory = Annotated[Text, Field(min_length=1, max_length=4096)]
Queue = Annotated[str, Field(min_length=1, max_length=100, pattern=QUEUE_RE.pattern)]


#: A task runs a ``command``, or ``code`` in a ``language``: exactly one of the two.
_BODY_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"required": ["command"], "not": {"anyOf": [{"required": ["language"]},
                                                     {"required": ["code"]}]}},
        {"required": ["language", "code"], "not": {"required": ["command"]}},
    ]
}  # fmt: skip


_COMMAND_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 65_536}
_CODE_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 1_000_000}
_LANGUAGE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": sorted({name for lang in LANGUAGES for name in (lang.name, *lang.aliases)}),
    "description": "The language of code (a name or alias of GET /api/languages).",
}


class TaskCreate(_Input):
    """Body of ``POST /api/tasks`` (see :class:`BatchTaskItem` for the items of a batch).

    A task runs either ``command`` (a shell command) or ``code`` written in ``language`` (a
    name or alias of :data:`taskqueue.languages.LANGUAGES`, stored under its table name).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(json_schema_extra=_BODY_SCHEMA)

    name: TaskName
    command: Annotated[Command | None, WithJsonSchema(_COMMAND_SCHEMA)] = None
    language: Annotated[LanguageName | None, WithJsonSchema(_LANGUAGE_SCHEMA)] = None
    code: Annotated[Code | None, WithJsonSchema(_CODE_SCHEMA)] = None
    project_id: WireUUID | None = None
    description: Description = ""
    technical_specs: TechnicalSpecs | None = None
    acceptance_criteria: Criteria = Field(default_factory=list)
    task_type: TaskType = TaskType.SIMPLE
    priority: TaskPriority = TaskPriority.NORMAL
    dependencies: Annotated[list[TaskDependency], Field(max_length=1000)] = Field(
        default_factory=list
    )
    timeout: Timeout | None = None
    retry_attempts: RetryAttempts = 3
    retry_delay: RetryDelay = 30.0
    environment: EnvironmentMap = Field(default_factory=dict)
    working_directory: WorkingDirectory | None = None
    metadata: JSONObject = Field(default_factory=dict)
    queue: Queue = "default"
    run_at: UTCDateTime | None = None
    input: JSONValue = None
    #: A Function definition's JSON Schemas (draft 2020-12) of its input and its output.
    input_schema: JSONObject | None = None
    output_schema: JSONObject | None = None
    #: Whether a Function's outputs are checked against ``output_schema`` (``false``: trusted,
    #: unless an execution asks for ``force_validation``).
    validate_output: bool = True
    #: A Scheduled task's schedule: when it makes a child task of itself.
    schedule: Schedule | None = None
    #: Resource limits of its command (see :mod:`taskqueue._limits`); None: the operator's.
    limits: TaskLimits | None = None
    ai_reviews_required: Annotated[int, Field(ge=0, le=100), StrictInteger] = 3
    #: A Workflow task's phases, given inline (see :class:`~taskqueue.models.PhaseSpec`).
    phases: Phases | None = None
    #: Or the name of a workflow of its project (the latest version, or ``workflow_version``).
    workflow: WorkflowName | None = None
    workflow_version: Annotated[int, Field(ge=1, le=INT64_MAX), StrictInteger] | None = None
    #: How many times a review may send the workflow back (default: the workflow's, or 3).
    max_review_rounds: Rounds | None = None
    #: Only items of a batch have refs (:class:`BatchTaskItem`); always None here.
    ref: SkipJsonSchema[Ref | None] = None

    @field_validator("ref", mode="before")
    @classmethod
    def _batch_only(cls, value: Any) -> Any:
        if cls is TaskCreate:
            raise ValueError("only items of POST /api/tasks/batch have refs")
        return value

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
    def _workflow_fields(self) -> TaskCreate:
        problem: tuple[tuple[str | int, ...], str] | None = None
        given = [
            name
            for name in ("phases", "workflow", "workflow_version", "max_review_rounds")
            if getattr(self, name) is not None
        ]
        # A Scheduled task given phases makes Workflow tasks of them at each slot.
        if self.task_type not in (TaskType.WORKFLOW, TaskType.SCHEDULED):
            if given:
                problem = (given[0],), 'it belongs to a task of task_type "Workflow"'
        elif self.phases is not None and self.workflow is not None:
            problem = ("workflow",), "give phases or the name of a workflow, not both"
        elif self.workflow_version is not None and self.workflow is None:
            problem = ("workflow_version",), "a version of which workflow? give workflow too"
        elif self.workflow is not None and self.project_id is None:
            problem = ("workflow",), "workflows belong to a project: give project_id too"
        elif self.phases is not None:
            found = check_phases(self.phases)
            if found is not None:
                problem = ("phases", *found[0]), found[1]
        if problem is None:
            return self
        error = PydanticCustomError("workflow_field", problem[1])
        raise ValidationError.from_exception_data(
            type(self).__name__, [InitErrorDetails(type=error, loc=problem[0], input=None)]
        )

    @model_validator(mode="after")
    def _kind_fields(self) -> TaskCreate:
        scheduled = self.task_type is TaskType.SCHEDULED
        if scheduled != (self.schedule is not None):
            loc, msg = (
                ("schedule", "a Scheduled task needs a schedule (cron or interval_seconds)")
                if scheduled
                else ("schedule", 'a schedule belongs to a task of task_type "Scheduled"')
            )
        elif scheduled and self.dependencies:
            loc, msg = "dependencies", "a Scheduled task has no dependencies (its runs start alone)"
        elif self.task_type is TaskType.FUNCTION:
            if self.dependencies:
                loc, msg = "dependencies", "a Function definition has no dependencies"
            elif self.input is not None:
                loc, msg = "input", "a Function definition takes its input when executed"
            else:
                return self
        elif self.input_schema is not None:
            loc, msg = "input_schema", 'schemas belong to definitions: set task_type "Function"'
        elif self.output_schema is not None:
            loc, msg = "output_schema", 'schemas belong to definitions: set task_type "Function"'
        else:
            return self
        error = PydanticCustomError("function_field", msg)
        raise ValidationError.from_exception_data(
            type(self).__name__, [InitErrorDetails(type=error, loc=(loc,), input=None)]
        )

    @model_validator(mode="after")
    def _command_or_code(self) -> TaskCreate:
        has_code = self.language is not None or self.code is not None
        if self.command is not None and not has_code:
            return self
        # A workflow whose phases each bring a body needs none of its own (a named workflow's
        # phases are checked when the store reads them).
        if (
            self.task_type in (TaskType.WORKFLOW, TaskType.SCHEDULED)
            and not has_code
            and self.command is None
            and (
                self.workflow is not None
                or (self.phases is not None and all(p.review or p.has_body for p in self.phases))
            )
        ):
            return self
        if self.command is not None:
            loc, msg = "command", "give either command, or language and code, not both"
        elif self.language is None or self.code is None:
            loc = "code" if self.code is None and self.language is not None else "language"
            msg = (
                "a code task needs both language and code"
                if has_code
                else ("give command, or language and code")
            )
            loc = loc if has_code else "command"
        else:
            return self
        error = PydanticCustomError("task_body", msg)
        raise ValidationError.from_exception_data(
            type(self).__name__, [InitErrorDetails(type=error, loc=(loc,), input=None)]
        )


class BatchTaskItem(TaskCreate):
    """An item of ``POST /api/tasks/batch``: a task that later items may depend on by ``ref``."""

    dependencies: Annotated[list[Dependency], Field(max_length=1000)] = Field(default_factory=list)
    ref: Ref | None = None


class BatchTaskCreate(_Input):
    """Body of ``POST /api/tasks/batch``: later items may depend on earlier ones by ``ref``."""

    tasks: Annotated[list[BatchTaskItem], Field(min_length=1, max_length=5000)]


class TaskUpdate(_Input):
    """Body of ``PUT /api/tasks/{id}``.

    Descriptive fields may change at any time; fields that say how the task runs may change only
    while it is Pending. ``technical_specs``, ``timeout`` and ``working_directory`` may be set to
    ``null`` (cleared); the others may be left out but not set to ``null``.
    """

    name: Omittable[TaskName] = None
    description: Omittable[Description] = None
    technical_specs: TechnicalSpecs | None = None
    acceptance_criteria: Omittable[Criteria] = None
    metadata: Omittable[JSONObject] = None
    command: Omittable[Command] = None
    #: A code task's code; a Function definition's body, schemas and validation may change too
    #: (each change of its body or schemas makes a new version).
    code: Omittable[Code] = None
    input_schema: JSONObject | None = None
    output_schema: JSONObject | None = None
    validate_output: Omittable[bool] = None
    priority: Omittable[TaskPriority] = None
    timeout: Timeout | None = None
    retry_attempts: Omittable[RetryAttempts] = None
    retry_delay: Omittable[RetryDelay] = None
    environment: Omittable[EnvironmentMap] = None
    working_directory: WorkingDirectory | None = None
    queue: Omittable[Queue] = None
    run_at: Omittable[UTCDateTime] = None


class TaskUpdateItem(_Input):
    """One item of ``PUT /api/tasks/batch``: a task, and its fields to change."""

    task_id: WireUUID
    changes: TaskUpdate


class BatchTaskUpdate(_Input):
    """Body of ``PUT /api/tasks/batch``: every update applies, or none does."""

    updates: Annotated[list[TaskUpdateItem], Field(min_length=1, max_length=5000)]


class TaskFilters(_Input):
    """Query parameters of ``GET /api/tasks`` (each given at most once, by its snake_case name)."""

    status: TaskStatus | None = None
    project_id: WireUUID | None = None
    priority: TaskPriority | None = None
    task_type: TaskType | None = None
    queue: Annotated[Text, Field(max_length=100)] | None = None
    created_after: UTCDateTime | None = None
    created_before: UTCDateTime | None = None
    limit: Annotated[int, Field(ge=1, le=1000), StrictInteger] = 100
    offset: Annotated[int, Field(ge=0, le=INT64_MAX), StrictInteger] = 0
    #: A task id or a part of one: its start or its end (the last group tables show), at
    #: least 4 characters of hexadecimal digits and dashes.
    id_part: (
        Annotated[
            str,
            Field(
                min_length=4,
                max_length=36,
                pattern=r"^[0-9A-Fa-f-]{4,36}$",
                description="A task id, or its start or end (at least 4 characters)",
            ),
        ]
        | None
    ) = None
    #: ``created_at``: oldest first (the default); ``-created_at``: newest first.
    sort: Annotated[
        Literal["created_at", "-created_at"],
        Field(description="created_at: oldest first; -created_at: newest first"),
    ] = "created_at"


# --------------------------------------------------------------------------------------------
# API keys

#: A scope an API key may be given: each includes those before it.
KeyScope = Literal["read", "write", "admin"]


def _read_only() -> list[KeyScope]:
    return ["read"]


class KeyCreate(_Input):
    """Body of ``POST /api/keys``: a bearer key (``tq_…``) or a key pair for signed requests.

    ``scopes`` defaults to ``["read"]``; ``projects`` limits the key to those projects (left
    out: every project); ``rate_limit`` is requests per second with ``burst`` at once.
    """

    name: Annotated[Text, Field(min_length=1, max_length=200)]
    scopes: Annotated[list[KeyScope], Field(min_length=1, max_length=3)] = Field(
        default_factory=_read_only
    )
    projects: Annotated[list[WireUUID], Field(min_length=1, max_length=1000)] | None = None
    kind: Literal["bearer", "pair"] = "bearer"
    expires_at: UTCDateTime | None = None
    rate_limit: Annotated[float, Field(gt=0, le=1_000_000), StrictNumber] | None = None
    burst: Annotated[int, Field(ge=1, le=1_000_000), StrictInteger] | None = None


class KeyRotate(_Input):
    """Body of ``POST /api/keys/{id}/rotate``: how long the old key keeps working."""

    grace_seconds: Annotated[float, Field(ge=0, le=90 * 24 * 3600), StrictNumber] = 3600.0
