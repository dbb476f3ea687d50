"""The ``components`` of the OpenAPI document: JSON Schemas of the wire models, made exact.

Request schemas are the validation schemas of the models that check request bodies, so they
say what the server accepts: the snake_case names, and beside each the camelCase spelling the
server also accepts (described as an alias; giving both is refused, and the schema says so),
with ``additionalProperties: false``. Response schemas are the serialisation schemas of the
output models, snake_case, every field required (the server always sends each one).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import pydantic
from pydantic.json_schema import models_json_schema

from taskqueue.events import Event, EventPage
from taskqueue.models import (
    ApiKey,
    ApiKeyList,
    Attempt,
    AttemptList,
    BatchExecuteRequest,
    BatchExecuteResponse,
    BatchTaskCreate,
    BatchTaskItem,
    BatchTaskUpdate,
    DependencyRef,
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
    TaskIdRef,
    TaskLimits,
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
from taskqueue.server.workflows import ReviewForm

__all__ = ["REF", "ServerInfo", "component_schemas", "parameter_schemas", "ref"]

REF = "#/components/schemas/{model}"


class ServerInfo(pydantic.BaseModel):
    """Answer of ``GET /``: what this server is."""

    model_config: ClassVar[pydantic.ConfigDict] = pydantic.ConfigDict(
        json_schema_serialization_defaults_required=True
    )

    name: str
    version: str
    api: str
    openapi: str


_REQUESTS: tuple[type[pydantic.BaseModel], ...] = (
    TaskCreate,
    BatchTaskItem,
    BatchTaskCreate,
    TaskUpdate,
    BatchTaskUpdate,
    DependencyRef,
    TaskIdRef,
    TaskLimits,
    ProjectCreate,
    ProjectUpdate,
    KeyCreate,
    KeyRotate,
    WebhookCreate,
    WebhookUpdate,
    WebhookRotate,
    WebhookRedeliver,
    ExecuteRequest,
    BatchExecuteRequest,
    WorkflowCreate,
    ReviewCreate,
    ReviewLinkCreate,
    ReviewForm,
)
_RESPONSES: tuple[type[pydantic.BaseModel], ...] = (
    ApiKey,
    ApiKeyList,
    NewApiKey,
    Task,
    TaskList,
    TaskBatch,
    Attempt,
    AttemptList,
    LogPage,
    LogEvent,
    Project,
    ProjectList,
    WorkerList,
    LanguageList,
    Health,
    ErrorBody,
    ServerInfo,
    Event,
    EventPage,
    Webhook,
    NewWebhook,
    WebhookList,
    WebhookDelivery,
    WebhookDeliveryList,
    ExecutionResult,
    BatchExecuteResponse,
    TaskVersionList,
    ScheduleRun,
    ScheduleRunList,
    NextRuns,
    DevelopmentWorkflow,
    WorkflowList,
    Review,
    ReviewList,
    ReviewLink,
)


def ref(model: type[pydantic.BaseModel]) -> dict[str, str]:
    """A reference to ``model``'s schema in the document's components."""
    return {"$ref": REF.format(model=model.__name__)}


def _admits_null(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "null" or str(schema.get("$ref", "")).endswith("/JSONData"):
        return True
    return any(_admits_null(branch) for branch in schema.get("anyOf", []))


def _tidy(schema: dict[str, Any]) -> None:
    """No per-field titles (noise in generated clients), no ``default: null`` null cannot meet."""
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
        if "default" in prop and prop["default"] is None and not _admits_null(prop):
            del prop["default"]


def _with_aliases(schema: dict[str, Any], model: type[pydantic.BaseModel]) -> None:
    """List each camelCase spelling beside its field; giving both spellings is refused."""
    properties: dict[str, Any] = schema["properties"]
    both: list[dict[str, Any]] = []
    for name, field in model.model_fields.items():
        alias = field.alias
        if alias is None or alias == name or name not in properties:
            continue
        twin = copy.deepcopy(properties[name])
        twin["description"] = f"The camelCase spelling of `{name}`; give one or the other."
        properties[alias] = twin
        both.append({"required": [name, alias]})
    if both:  # (one "not" of them all: a form fuzzers can generate from without blowing up)
        schema["not"] = {"anyOf": both}


def _exactly_one(schema: dict[str, Any]) -> None:
    """A dependency object names exactly one thing: one property of those listed."""
    schema["minProperties"] = 1
    schema["maxProperties"] = 1
    schema.pop("required", None)
    schema.pop("not", None)


def component_schemas() -> dict[str, Any]:
    """Every schema the document refers to, by model name."""
    _, top = models_json_schema(
        [(m, "validation") for m in _REQUESTS] + [(m, "serialization") for m in _RESPONSES],
        by_alias=False,
        ref_template=REF,
    )
    schemas: dict[str, Any] = top["$defs"]
    for schema in schemas.values():
        _tidy(schema)
    for model in _REQUESTS:
        _with_aliases(schemas[model.__name__], model)
    for model in (DependencyRef, TaskIdRef):
        _exactly_one(schemas[model.__name__])
    return schemas


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
    if branches:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        schema = {**rest, **branches[0]} if len(branches) == 1 else {**rest, "anyOf": branches}
    if schema.get("default", 0) is None:
        del schema["default"]
    schema.pop("title", None)
    return schema


def parameter_schemas(model: type[pydantic.BaseModel]) -> dict[str, dict[str, Any]]:
    """The schema of each query parameter a model reads (a query string has no null)."""
    properties = model.model_json_schema(by_alias=False, ref_template=REF)["properties"]
    return {name: _strip_null(schema) for name, schema in properties.items()}
