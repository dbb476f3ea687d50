"""The operations of the OpenAPI document: every path and method, with what it takes and sends.

:mod:`taskqueue.server.openapi` builds the document from this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pydantic

from taskqueue.events import Event, EventPage
from taskqueue.models import (
    ApiKey,
    ApiKeyList,
    AttemptList,
    BatchExecuteRequest,
    BatchExecuteResponse,
    BatchTaskCreate,
    BatchTaskUpdate,
    DevelopmentWorkflow,
    ExecuteRequest,
    ExecutionResult,
    Health,
    KeyCreate,
    KeyRotate,
    LanguageList,
    LogEvent,
    LogPage,
    NewApiKey,
    NewWebhook,
    NextRuns,
    Project,
    ProjectCreate,
    ProjectList,
    ProjectUpdate,
    Review,
    ReviewCreate,
    ReviewLink,
    ReviewLinkCreate,
    ReviewList,
    ScheduleRun,
    ScheduleRunList,
    Task,
    TaskBatch,
    TaskCreate,
    TaskFilters,
    TaskList,
    TaskUpdate,
    TaskVersionList,
    Webhook,
    WebhookCreate,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookList,
    WebhookRedeliver,
    WebhookRotate,
    WebhookUpdate,
    WorkerList,
    WorkflowCreate,
    WorkflowList,
)
from taskqueue.server.events import EventsQuery
from taskqueue.server.functions import WaitMsQuery
from taskqueue.server.openapi_schemas import (
    ServerInfo,
    ref,
)
from taskqueue.server.params import (
    CascadeQuery,
    LogsQuery,
    Paging,
    TaskQuery,
    WaitQuery,
)
from taskqueue.server.schedules import NextQuery
from taskqueue.server.workflows import (
    TOKEN_SCHEMA,
    WORKFLOW_NAME_SCHEMA,
    ReviewForm,
    VersionQuery,
)

__all__ = ["OPERATIONS", "Operation"]


@dataclass(frozen=True)
class Operation:
    """One method of one path, as the document describes it."""

    operation_id: str
    summary: str
    status: str = "200"
    response: type[pydantic.BaseModel] | None = None
    body: type[pydantic.BaseModel] | None = None
    query: type[pydantic.BaseModel] | None = None
    conflicts: bool = False
    idempotent: bool = False
    tags: tuple[str, ...] = ()
    extra_content: dict[str, Any] = field(default_factory=dict)
    answer: str = "Success"
    #: What the answer identifies: the path parameter it fills, and where in the body it is.
    creates: tuple[str, str] | None = None
    #: Request headers it reads (OpenAPI parameter objects), besides the usual ones.
    headers: tuple[dict[str, Any], ...] = ()
    #: Another success status with the same body, and when it is answered (202: not done yet).
    pending: tuple[str, str] | None = None
    #: Schemas of path parameters that are not ids (an id: a UUID).
    path_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: A page for browsers: the success (and ``html_errors``) answered as HTML.
    html: bool = False
    html_errors: tuple[str, ...] = ()
    #: The body is a form (``application/x-www-form-urlencoded``) of this model.
    form: type[pydantic.BaseModel] | None = None


_FOLLOW = {
    "application/x-ndjson": {
        "schema": {"type": "string"},
        "x-item-schema": {"oneOf": [{"$ref": "#/components/schemas/LogChunk"}, ref(LogEvent)]},
    }
}
#: Each block of the stream, as SSE parsers see it: its fields (the data is an Event's JSON).
_EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "properties": {name: {"type": "string"} for name in ("id", "event", "data")},
        },
        "x-item-schema": ref(Event),
    }
}
_STREAMED = (
    "With format=json, an EventPage. Else `text/event-stream`: an id-only block with the "
    "starting position, then each Event as `id: <id>` and `data: <Event JSON>`, keep-alive "
    "comments, and named notices: `pruned` (the position asked for is past the retention), "
    "`dropped` (the client read too slowly, or the server is stopping) and `end` (timeout)"
)
_LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "description": "Resume after this event id (EventSource sends it); wins over `after`",
    "schema": {"type": "string", "pattern": "^[0-9]{0,19}$"},
}
_FOLLOWED = (
    "A LogPage; with follow=true, `application/x-ndjson`: one LogChunk object a line as the "
    "command writes, then a last LogEvent line (`end` once the task is terminal, `timeout` "
    "after `timeout` seconds)"
)

_EXECUTED = "The execution ended (Completed, Failed or Cancelled) within timeout_ms"
_EXECUTING = (
    "The execution has not ended within timeout_ms: poll GET /api/executions/{execution_id}"
)
_BATCH_DONE = "Every item of the batch ended within timeout_ms"
_BATCH_RUNNING = "Items are still running after timeout_ms: poll GET /api/batches/{batch_id}"

#: Every path and method of the API (``taskqueue.server.routes.ENDPOINTS`` has the same ones).
OPERATIONS: dict[str, dict[str, Operation]] = {
    "/": {"GET": Operation("getServerInfo", "What this server is", response=ServerInfo)},
    "/api/health": {
        "GET": Operation("getHealth", "Health of the server and its database", response=Health)
    },
    "/api/tasks": {
        "GET": Operation("listTasks", "List tasks, oldest first", response=TaskList,
                         query=TaskFilters, tags=("tasks",)),
        "POST": Operation("createTask", "Create a task", "201", Task, TaskCreate,
                          conflicts=True, idempotent=True, tags=("tasks",),
                          creates=("task_id", "$response.body#/id")),
    },
    "/api/tasks/batch": {
        "POST": Operation("createTasks", "Create many tasks at once (all or none); items may "
                          "depend on earlier items by ref", "201", TaskBatch, BatchTaskCreate,
                          conflicts=True, idempotent=True, tags=("tasks",),
                          creates=("task_id", "$response.body#/tasks/0/id")),
        "PUT": Operation("updateTasks", "Change many tasks at once (all or none); a 409 lists "
                         "every refused item in details", response=TaskBatch,
                         body=BatchTaskUpdate, conflicts=True, tags=("tasks",)),
    },
    "/api/tasks/{task_id}": {
        "GET": Operation("getTask", "Get a task (with version=N, a Function definition as it "
                         "was at version N)", response=Task, query=TaskQuery, conflicts=True,
                         tags=("tasks",)),
        "PUT": Operation("updateTask", "Change a task's fields (run fields only while Pending)",
                         response=Task, body=TaskUpdate, conflicts=True, tags=("tasks",)),
        "DELETE": Operation("deleteTask", "Delete a task (not while Running, nor while an "
                            "unfinished task depends on it)", "204", conflicts=True,
                            tags=("tasks",)),
    },
    "/api/tasks/{task_id}/cancel": {
        "POST": Operation("cancelTask", "Cancel a Pending or Running task and its dependents",
                          response=Task, conflicts=True, tags=("tasks",)),
    },
    "/api/tasks/{task_id}/retry": {
        "POST": Operation("retryTask", "Re-queue a Failed or Cancelled task", response=Task,
                          conflicts=True, tags=("tasks",)),
    },
    "/api/tasks/{task_id}/wait": {
        "GET": Operation("waitTask", "Wait until the task is terminal or `timeout` seconds pass; "
                         "the task either way", response=Task, query=WaitQuery, tags=("tasks",)),
    },
    "/api/tasks/{task_id}/logs": {
        "GET": Operation("getTaskLogs", "Output from an offset; with follow=true, NDJSON lines "
                         "until the task ends", response=LogPage, query=LogsQuery,
                         tags=("tasks",), extra_content=_FOLLOW, answer=_FOLLOWED),
    },
    "/api/tasks/{task_id}/attempts": {
        "GET": Operation("listTaskAttempts", "Every attempt of a task", response=AttemptList,
                         tags=("tasks",)),
    },
    "/api/tasks/{task_id}/versions": {
        "GET": Operation("listTaskVersions", "Every version of a Function definition, oldest "
                         "first", response=TaskVersionList, conflicts=True, tags=("functions",)),
    },
    "/api/tasks/{task_id}/execute": {
        "POST": Operation("executeTask", "Run a Function definition once with an input "
                          "(validated against its input_schema); wait up to timeout_ms for the "
                          "end", response=ExecutionResult, body=ExecuteRequest, conflicts=True,
                          idempotent=True, tags=("functions",), answer=_EXECUTED,
                          pending=("202", _EXECUTING),
                          creates=("execution_id", "$response.body#/execution_id")),
    },
    "/api/tasks/{task_id}/batch-execute": {
        "POST": Operation("batchExecuteTask", "Run a Function definition with many inputs, at "
                          "most max_concurrency at once; wait up to timeout_ms for the end",
                          response=BatchExecuteResponse, body=BatchExecuteRequest,
                          conflicts=True, idempotent=True, tags=("functions",),
                          answer=_BATCH_DONE, pending=("202", _BATCH_RUNNING),
                          creates=("batch_id", "$response.body#/batch_id")),
    },
    "/api/executions/{execution_id}": {
        "GET": Operation("getExecution", "An execution of a Function definition, once it ended "
                         "or when timeout_ms passed", response=ExecutionResult,
                         query=WaitMsQuery, tags=("functions",)),
    },
    "/api/batches/{batch_id}": {
        "GET": Operation("getBatch", "A batch of executions, once every item ended or when "
                         "timeout_ms passed", response=BatchExecuteResponse, query=WaitMsQuery,
                         tags=("functions",)),
    },
    "/api/tasks/{task_id}/runs": {
        "GET": Operation("listScheduleRuns", "The slots a Scheduled task fired (or skipped), "
                         "newest first", response=ScheduleRunList, query=Paging,
                         conflicts=True, tags=("schedules",)),
    },
    "/api/tasks/{task_id}/next": {
        "GET": Operation("nextScheduleRuns", "The next slots a Scheduled task will fire",
                         response=NextRuns, query=NextQuery, conflicts=True,
                         tags=("schedules",)),
    },
    "/api/tasks/{task_id}/pause": {
        "POST": Operation("pauseSchedule", "Fire nothing until resumed", response=Task,
                          conflicts=True, tags=("schedules",)),
    },
    "/api/tasks/{task_id}/resume": {
        "POST": Operation("resumeSchedule", "Fire again from the next slot after now (the "
                          "slots missed while paused are skipped)", response=Task,
                          conflicts=True, tags=("schedules",)),
    },
    "/api/tasks/{task_id}/trigger": {
        "POST": Operation("triggerSchedule", "Run the Scheduled task's template now, as a "
                          "manual slot (its overlap policy applies)", "201", ScheduleRun,
                          conflicts=True, tags=("schedules",)),
    },
    "/api/events": {
        "GET": Operation("streamEvents", "What happened, as it happens: a resumable stream "
                         "of events (or a page of past ones with format=json)",
                         response=EventPage, query=EventsQuery, tags=("events",),
                         extra_content=_EVENT_STREAM, answer=_STREAMED,
                         headers=(_LAST_EVENT_ID,)),
    },
    "/api/workers": {
        "GET": Operation("listWorkers", "Worker processes registered on the database, active or "
                         "stale", response=WorkerList, tags=("workers",)),
    },
    "/api/languages": {
        "GET": Operation("listLanguages", "Languages code tasks may be written in: aliases, "
                         "extensions, and the versions and number of live workers offering "
                         "each", response=LanguageList, tags=("workers",)),
    },
    "/api/projects": {
        "GET": Operation("listProjects", "List projects", response=ProjectList, query=Paging,
                         tags=("projects",)),
        "POST": Operation("createProject", "Create a project (names are unique)", "201",
                          Project, ProjectCreate, conflicts=True, idempotent=True,
                          tags=("projects",), creates=("project_id", "$response.body#/id")),
    },
    "/api/projects/{project_id}": {
        "GET": Operation("getProject", "Get a project", response=Project, tags=("projects",)),
        "PUT": Operation("updateProject", "Change a project's fields", response=Project,
                         body=ProjectUpdate, conflicts=True, tags=("projects",)),
        "DELETE": Operation("deleteProject", "Delete a project; one with tasks only with "
                            "cascade=true (and none of them Running)", "204",
                            query=CascadeQuery, conflicts=True, tags=("projects",)),
    },
    "/api/keys": {
        "GET": Operation("listKeys", "Every API key (revoked ones too), never a secret",
                         response=ApiKeyList, tags=("keys",)),
        "POST": Operation("createKey", "Make an API key or key pair; the answer holds its "
                          "secret, shown this once", "201", NewApiKey, KeyCreate,
                          conflicts=True, tags=("keys",), creates=("key_id", "$response.body#/id")),
    },
    "/api/keys/{key_id}": {
        "GET": Operation("getKey", "Get an API key (without its secret)", response=ApiKey,
                         tags=("keys",)),
    },
    "/api/keys/{key_id}/revoke": {
        "POST": Operation("revokeKey", "Revoke an API key: every server refuses it within a "
                          "second", response=ApiKey, tags=("keys",)),
    },
    "/api/keys/{key_id}/rotate": {
        "POST": Operation("rotateKey", "Make a new key like this one; this one expires after "
                          "grace_seconds", "201", NewApiKey, KeyRotate, conflicts=True,
                          tags=("keys",)),
    },
    "/api/webhooks": {
        "GET": Operation("listWebhooks", "Webhook subscriptions, oldest first (never a secret)",
                         response=WebhookList, query=Paging, tags=("webhooks",)),
        "POST": Operation("createWebhook", "Subscribe a URL to events; the answer holds the "
                          "signing secret, shown this once", "201", NewWebhook, WebhookCreate,
                          conflicts=True, tags=("webhooks",),
                          creates=("webhook_id", "$response.body#/id")),
    },
    "/api/webhooks/{webhook_id}": {
        "GET": Operation("getWebhook", "Get a webhook subscription (without its secret)",
                         response=Webhook, tags=("webhooks",)),
        "PUT": Operation("updateWebhook", "Change a subscription's fields; enabling it resumes "
                         "delivery where it stopped", response=Webhook, body=WebhookUpdate,
                         tags=("webhooks",)),
        "DELETE": Operation("deleteWebhook", "Delete a subscription and its deliveries log",
                            "204", tags=("webhooks",)),
    },
    "/api/webhooks/{webhook_id}/rotate-secret": {
        "POST": Operation("rotateWebhookSecret", "A new signing secret, shown this once; the "
                          "old one also signs for grace_seconds", response=NewWebhook,
                          body=WebhookRotate, tags=("webhooks",)),
    },
    "/api/webhooks/{webhook_id}/deliveries": {
        "GET": Operation("listWebhookDeliveries", "Every delivery attempt, newest first",
                         response=WebhookDeliveryList, query=Paging, tags=("webhooks",)),
    },
    "/api/webhooks/{webhook_id}/redeliver": {
        "POST": Operation("redeliverWebhook", "Send a stored event to the subscription again, "
                          "now, outside its order", response=WebhookDelivery,
                          body=WebhookRedeliver, conflicts=True, tags=("webhooks",)),
    },
    "/api/webhooks/{webhook_id}/test": {
        "POST": Operation("testWebhook", "Send a webhook.test event to the subscription now",
                          response=WebhookDelivery, tags=("webhooks",)),
    },
    "/api/tasks/{task_id}/reviews": {
        "GET": Operation("listReviews", "Every review of a Workflow task, and the review gate "
                         "it waits at", response=ReviewList, tags=("workflows",)),
        "POST": Operation("submitReview", "Approve or reject the review gate a Workflow task "
                          "waits at (409: it waits at none, or this reviewer reviewed this "
                          "round)", "201", Review, ReviewCreate, conflicts=True,
                          tags=("workflows",)),
    },
    "/api/tasks/{task_id}/review-links": {
        "POST": Operation("createReviewLink", "A single-use approval link for a reviewer "
                          "outside the API, to the gate the task waits at", "201", ReviewLink,
                          ReviewLinkCreate, conflicts=True, tags=("workflows",)),
    },
    "/api/projects/{project_id}/workflows": {
        "GET": Operation("listWorkflows", "The latest version of each workflow of a project",
                         response=WorkflowList, tags=("workflows",)),
        "POST": Operation("createWorkflow", "Store a named workflow of a project (its next "
                          "version if the name exists)", "201", DevelopmentWorkflow,
                          WorkflowCreate, conflicts=True, idempotent=True,
                          tags=("workflows",)),
    },
    "/api/projects/{project_id}/workflows/{name}": {
        "GET": Operation("getWorkflow", "One version of a project's workflow (the latest by "
                         "default)", response=DevelopmentWorkflow, query=VersionQuery,
                         path_schemas={"name": WORKFLOW_NAME_SCHEMA}, tags=("workflows",)),
        "DELETE": Operation("deleteWorkflow", "Delete every version of a project's workflow "
                            "(tasks keep the phases they copied)", "204",
                            path_schemas={"name": WORKFLOW_NAME_SCHEMA}, tags=("workflows",)),
    },
    "/reviews/{token}": {
        "GET": Operation("openReviewLink", "The page of an approval link: what is to be "
                         "approved, and a form (nothing changes)", html=True,
                         html_errors=("404", "410"), path_schemas={"token": TOKEN_SCHEMA},
                         tags=("workflows",)),
        "POST": Operation("decideReviewLink", "Approve or reject by an approval link, once",
                          html=True, html_errors=("404", "409", "410"), form=ReviewForm,
                          path_schemas={"token": TOKEN_SCHEMA}, tags=("workflows",)),
    },
}  # fmt: skip
