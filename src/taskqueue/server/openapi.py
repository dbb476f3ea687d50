"""The OpenAPI document: the contract, built from what the server itself validates and sends.

Schemas come from the models that validate requests and shape answers
(:mod:`taskqueue.server.openapi_schemas`), query parameters from the models the routes parse
them with (:mod:`taskqueue.server.params`), and every status code an operation can answer is
listed with why. ``tests/integration/test_schemathesis.py`` runs a fuzzer against a real server
with this document, so a change to an endpoint that breaks the document fails the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pydantic

from taskqueue._version import __version__
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
    ErrorBody,
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
    component_schemas,
    parameter_schemas,
    ref,
)
from taskqueue.server.params import (
    IDEMPOTENCY_KEY_PATTERN,
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

__all__ = ["ERRORS", "OPERATIONS", "Operation", "openapi_document"]

#: Every error status and when it is answered. All bodies are :class:`ErrorBody`.
ERRORS: dict[str, str] = {
    "400": "The body is not JSON (or names a key twice), is empty, or Content-Length is not a "
    "number",
    "401": "The request needs an API key and has none, or its key is unknown, revoked or "
    "expired, or its signature is bad, outside the 5-minute window or already used; "
    "`WWW-Authenticate` says how to authenticate",
    "403": "The API key lacks the scope this operation needs, or the request's Host is not a "
    "name this server answers to, or it comes from an origin that is not allowed",
    "404": "No such task, project, key or webhook (a key limited to some projects sees no other)",
    "405": "The path does not take this method; `Allow` lists those it takes",
    "408": "The body did not arrive within 30 s",
    "409": "Well formed, but it cannot be applied as things stand: it conflicts with what is "
    "stored (a Running task, a used project name, an Idempotency-Key used with another body or "
    "whose creation has since been deleted) or "
    "names what is not there or cannot be used (a dependency or project that does not exist, a "
    "dependency that already failed, a ref that no earlier item of the batch has)",
    "410": "The approval link was used already (each works once), has expired, or the review "
    "it was for is over",
    "413": "The body is over the limit (16 MiB by default)",
    "415": "The body is not sent as `application/json`",
    "422": "A field, query parameter, header or path id breaks this document; `details` names each",
    "429": "Too many requests: the API key is over its rate limit, or this address made too many "
    "failed authentication attempts; `Retry-After` says when to try again",
    "431": "A request header (or all of them together) is too large",
    "503": "The database is unavailable for now (SQLite: locked by another process past the busy "
    "timeout; PostgreSQL: unreachable), or the server is at its connection limit. Nothing was "
    "changed; repeat the request",
}
#: Statuses every operation can answer.
_EVERYWHERE = ("403", "405", "422", "429", "431", "503")

_HEADERS = {
    "X-Request-ID": "The request's id: the one sent (1 to 64 of `[A-Za-z0-9._-]`) or a new one",
    "Allow": "The methods the path takes",
    "Retry-After": "Seconds to wait before repeating the request",
    "Location": "The same path without its trailing slash",
    "WWW-Authenticate": "How to authenticate: `Bearer`",
    "RateLimit-Limit": "Requests the API key may make at once (its burst)",
    "RateLimit-Remaining": "Requests it may make now",
    "RateLimit-Reset": "Seconds until it may make its whole burst again",
    "RateLimit-Policy": "The key's limit: burst and window in seconds",
}
#: Operations anyone may call without a key.
PUBLIC = frozenset(
    {
        ("/", "GET"),
        ("/api/health", "GET"),
        ("/reviews/{token}", "GET"),  # the token is the credential
        ("/reviews/{token}", "POST"),
    }
)
#: The ways a request may carry its credentials (any one of them).
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key, `tq_…`"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "signedRequest": {
        "type": "apiKey",
        "in": "header",
        "name": "X-TaskQueue-Signature",
        "description": "A request signed with a key pair: also send X-TaskQueue-Key-Id and "
        "X-TaskQueue-Timestamp (see docs/security.md)",
    },
}


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


def _header(name: str, required: bool = False) -> dict[str, Any]:
    return {"description": _HEADERS[name], "required": required, "schema": {"type": "string"}}


def _error(status: str) -> dict[str, Any]:
    headers = {"X-Request-ID": _header("X-Request-ID")}
    if status == "405":
        headers["Allow"] = _header("Allow", required=True)
    if status in ("429", "503"):
        headers["Retry-After"] = _header("Retry-After")
    if status == "401":
        headers["WWW-Authenticate"] = _header("WWW-Authenticate")
    return {
        "description": ERRORS[status],
        "headers": headers,
        "content": {"application/json": {"schema": ref(ErrorBody)}},
    }


def _html_error(status: str) -> dict[str, Any]:
    return {
        "description": ERRORS[status],
        "headers": {"X-Request-ID": _header("X-Request-ID")},
        "content": {"text/html": {"schema": {"type": "string"}}},
    }


def _statuses(path: str, method: str, op: Operation) -> list[str]:
    codes = set(_EVERYWHERE)
    if (path, method) not in PUBLIC:
        codes |= {"401"}
    if "{" in path:
        codes |= {"404"}
    if method != "GET":
        codes |= {"400", "415"}
    if op.body is not None or op.form is not None:
        codes |= {"408", "413"}
    if op.conflicts:
        codes |= {"409"}
    return sorted(codes)


def _links(creates: tuple[str, str]) -> dict[str, Any]:
    """Links from an answer to every operation on what it created (for clients and fuzzers)."""
    param, where = creates
    return {
        op.operation_id[0].upper() + op.operation_id[1:]: {
            "operationId": op.operation_id,
            "parameters": {param: where},
        }
        for path, methods in OPERATIONS.items()
        if f"{{{param}}}" in path
        for op in methods.values()
    }


def _success(op: Operation) -> dict[str, Any]:
    ok: dict[str, Any] = {
        "description": op.answer,
        "headers": {
            "X-Request-ID": _header("X-Request-ID", required=True),
            **{name: _header(name) for name in _HEADERS if name.startswith("RateLimit-")},
        },
    }
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": ref(op.response)}, **op.extra_content}
    if op.html:
        ok["content"] = {"text/html": {"schema": {"type": "string"}}}
    if op.creates is not None:
        ok["links"] = _links(op.creates)
    return ok


def _parameters(path: str, op: Operation) -> list[dict[str, Any]]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": op.path_schemas.get(name, {"type": "string", "format": "uuid"}),
        }
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    if op.query is not None:
        params += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in parameter_schemas(op.query).items()
        ]
    params += list(op.headers)
    if op.idempotent:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "A repeat with the same key and body returns the first answer; "
                "the same key with another body is a 409",
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
            }
        )
    return params


def _operation(path: str, method: str, op: Operation) -> dict[str, Any]:
    responses = {op.status: _success(op)}
    if op.pending is not None:
        status, answer = op.pending
        responses[status] = {**_success(op), "description": answer}
    if "{" in path:
        responses["307"] = {
            "description": "A path parameter ended with `/`: the same path without it",
            "headers": {"Location": _header("Location", required=True)},
        }
    responses.update({status: _error(status) for status in _statuses(path, method, op)})
    responses.update({status: _html_error(status) for status in op.html_errors})
    result: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": list(op.tags),
        "parameters": _parameters(path, op),
        "responses": responses,
    }
    if (path, method) not in PUBLIC:
        result["security"] = [{name: []} for name in SECURITY_SCHEMES]
    if op.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(op.body)}},
        }
    if op.form is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": ref(op.form)}},
        }
    return result


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API."""
    paths = {
        path: {method.lower(): _operation(path, method, op) for method, op in methods.items()}
        for path, methods in OPERATIONS.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskqueue",
            "version": __version__,
            "description": "A durable task queue: tasks, projects, workers. Field names are "
            "snake_case; request bodies also accept each field's camelCase spelling (listed "
            "beside it), never both at once.",
        },
        "paths": paths,
        "components": {"schemas": component_schemas(), "securitySchemes": SECURITY_SCHEMES},
    }
