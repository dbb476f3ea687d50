"""The OpenAPI document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic.json_schema import models_json_schema

from taskqueue._version import __version__
from taskqueue.models import (
    Attempt,
    BatchTaskCreate,
    ErrorBody,
    Health,
    LogPage,
    Project,
    ProjectCreate,
    ProjectList,
    ProjectUpdate,
    Task,
    TaskFilters,
    TaskList,
    TaskUpdate,
    WorkerList,
)

__all__ = ["openapi_document"]


class AttemptList(pydantic.BaseModel):
    """Answer of ``GET /api/tasks/{id}/attempts``."""

    task_id: str
    attempts: list[Attempt]


class TaskBatch(pydantic.BaseModel):
    """Answer of ``POST /api/tasks/batch``."""

    tasks: list[Task]


def _ref(model: type[pydantic.BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _param(
    name: str, where: str, schema: dict[str, Any], description: str = "", required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "schema": schema,
        "description": description,
    }


_UUID = {"type": "string", "format": "uuid"}
_IDEMPOTENCY = _param(
    "Idempotency-Key",
    "header",
    {"type": "string", "maxLength": 255},
    "A repeat with the same key and body returns the first result.",
)


def _filters() -> list[dict[str, Any]]:
    schema = TaskFilters.model_json_schema(
        by_alias=False, ref_template="#/components/schemas/{model}"
    )
    return [_param(name, "query", prop) for name, prop in schema["properties"].items()]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API."""
    models: list[type[pydantic.BaseModel]] = [
        Task,
        TaskList,
        BatchTaskCreate,
        TaskUpdate,
        Project,
        ProjectCreate,
        ProjectUpdate,
        ProjectList,
        Attempt,
        AttemptList,
        LogPage,
        Health,
        ErrorBody,
        TaskBatch,
        WorkerList,
    ]
    from taskqueue.models import BatchTaskUpdate, TaskCreate

    models.append(TaskCreate)
    models.append(BatchTaskUpdate)
    _, top = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    schemas = top.get("$defs", {})

    def op(
        summary: str,
        response: type[pydantic.BaseModel] | None,
        status: str = "200",
        body: type[pydantic.BaseModel] | None = None,
        params: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        errors = {
            code: {
                "description": text,
                "content": {"application/json": {"schema": _ref(ErrorBody)}},
            }
            for code, text in (
                ("400", "Malformed request"),
                ("404", "Not found"),
                ("409", "Conflict"),
                ("413", "Body too large"),
                ("422", "Invalid field"),
            )
        }
        ok: dict[str, Any] = {"description": "Success"}
        if response is not None:
            ok["content"] = {"application/json": {"schema": _ref(response)}}
        result: dict[str, Any] = {
            "summary": summary,
            "responses": {status: ok, **errors},
            "parameters": params or [],
        }
        if body is not None:
            result["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(body)}},
            }
        return result

    task_id = _param("task_id", "path", _UUID, required=True)
    project_id = _param("project_id", "path", _UUID, required=True)
    paging = [
        _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
        _param("offset", "query", {"type": "integer", "minimum": 0}),
    ]
    paths: dict[str, Any] = {
        "/api/health": {"get": op("Health of the server and its database", Health)},
        "/api/tasks": {
            "post": op("Create a task", Task, "201", TaskCreate, [_IDEMPOTENCY]),
            "get": op("List tasks", TaskList, params=_filters()),
        },
        "/api/tasks/batch": {
            "post": op(
                "Create many tasks at once (all or none); items may depend on earlier items' ref",
                TaskBatch,
                "201",
                BatchTaskCreate,
                [_IDEMPOTENCY],
            )
        },
        "/api/tasks/{task_id}": {
            "get": op("Get a task", Task, params=[task_id]),
            "put": op("Update a task", Task, body=TaskUpdate, params=[task_id]),
            "delete": op("Delete a task", None, "204", params=[task_id]),
        },
        "/api/tasks/{task_id}/cancel": {
            "post": op("Cancel a task and its dependents", Task, params=[task_id])
        },
        "/api/tasks/{task_id}/retry": {
            "post": op("Re-queue a Failed or Cancelled task", Task, params=[task_id])
        },
        "/api/tasks/{task_id}/wait": {
            "get": op(
                "Wait until the task is terminal or the timeout passes",
                Task,
                params=[
                    task_id,
                    _param("timeout", "query", {"type": "number", "minimum": 0, "maximum": 300}),
                ],
            )
        },
        "/api/tasks/{task_id}/logs": {
            "get": op(
                "Output from an offset; with follow=true, NDJSON lines until the task ends",
                LogPage,
                params=[
                    task_id,
                    *(
                        _param(n, "query", s)
                        for n, s in (
                            ("offset", {"type": "integer", "minimum": 0}),
                            ("limit", {"type": "integer", "minimum": 1, "maximum": 10000}),
                            ("stream", {"enum": ["stdout", "stderr"]}),
                            ("attempt", {"type": "integer", "minimum": 1}),
                            ("follow", {"type": "boolean"}),
                            ("timeout", {"type": "number"}),
                        )
                    ),
                ],
            )
        },
        "/api/tasks/{task_id}/attempts": {
            "get": op("Every attempt of a task", AttemptList, params=[task_id])
        },
        "/api/workers": {
            "get": op("Worker processes registered on the database, active or stale", WorkerList)
        },
        "/api/projects": {
            "post": op("Create a project", Project, "201", ProjectCreate, [_IDEMPOTENCY]),
            "get": op("List projects", ProjectList, params=paging),
        },
        "/api/projects/{project_id}": {
            "get": op("Get a project", Project, params=[project_id]),
            "put": op("Update a project", Project, body=ProjectUpdate, params=[project_id]),
            "delete": op(
                "Delete a project (cascade=true deletes its tasks)",
                None,
                "204",
                params=[project_id, _param("cascade", "query", {"type": "boolean"})],
            ),
        },
    }
    paths["/api/tasks/batch"]["put"] = op(
        "Change many tasks at once (all or none); a 409 lists every refused item in details",
        TaskBatch,
        body=BatchTaskUpdate,
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskqueue",
            "version": __version__,
            "description": "A durable task queue: tasks, projects, workers.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
