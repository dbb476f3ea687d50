"""The OpenAPI document is the contract: what it allows is accepted, what it forbids refused.

Each case is checked twice against a real server: what ``/openapi.json`` says about the
request (validated with a JSON Schema validator against the served document), and what the
server does with it. A refusal changes nothing. The fuzzer run of ``test_schemathesis.py``
covers the same ground at random; these are the cases found by hand, kept as regressions.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest

from taskqueue.models import RESERVED_ENVIRONMENT
from taskqueue.server.openapi import OPERATIONS
from taskqueue.server.routes import ENDPOINTS
from tests.conftest import ServerProcess, wait_status

PARKED = "contract-parked"  # never claimed by the embedded worker (it serves `default`)
MADE = "contract-made"  # where a test that checks `unchanged` keeps the tasks it makes


@pytest.fixture(scope="module")
def doc(shared: httpx.Client) -> dict[str, Any]:
    response = shared.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def admits(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    """Whether the document's ``schema`` (which may refer to its components) allows ``value``."""
    root = {**schema, "components": doc["components"]}
    return bool(jsonschema_rs.Draft202012Validator(root, validate_formats=True).is_valid(value))


def body_schema(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path][method]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


def param_schema(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    for param in doc["paths"][path][method]["parameters"]:
        if param["name"] == name:
            schema: dict[str, Any] = param["schema"]
            return schema
    raise AssertionError(f"{method} {path} documents no parameter {name}")


def task(**fields: Any) -> dict[str, Any]:
    return {"name": "contract", "command": "true", "queue": PARKED, **fields}


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/tasks", json=task(**fields))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def count(api: httpx.Client, queue: str = PARKED) -> int:
    total: int = api.get("/api/tasks", params={"queue": queue}).json()["total"]
    return total


def refused(response: httpx.Response, status: int, loc: list[Any]) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["details"][0]["loc"] == loc, error
    assert error["message"], error
    return error


@pytest.fixture
def unchanged(shared: httpx.Client) -> Iterator[None]:
    """The test's requests store no task (every one of them is refused)."""
    before = count(shared)
    yield
    assert count(shared) == before, "a refused request stored a task"


# ------------------------------------------------------------------------- names and aliases


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    errors = [e.message for e in jsonschema_rs.Draft202012Validator(OPENAPI_31).iter_errors(doc)]
    assert errors == []
    for name, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
        # Only JSON Schema keywords: a pydantic constraint name (ge, le...) would be ignored.
        assert not {"ge", "le", "gt", "lt"} & set(json.dumps(schema).split('"')), name


def test_the_document_names_fields_in_snake_case(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert {"created_at", "updated_at", "retry_attempts"} <= set(schemas["Task"]["properties"])
    for name in ("Task", "Project", "Attempt", "LogPage", "Health", "WorkerList", "ErrorInfo"):
        properties = schemas[name]["properties"]
        assert not [p for p in properties if re.search("[A-Z]", p)], name
        # The server sends every field, so a generated client may rely on each.
        assert set(schemas[name]["required"]) == set(properties), name


def test_camel_case_is_listed_as_an_alias_and_accepted(
    shared: httpx.Client, doc: dict[str, Any]
) -> None:
    create_schema = doc["components"]["schemas"]["TaskCreate"]
    assert create_schema["additionalProperties"] is False
    assert "retry_attempts" in create_schema["properties"]
    assert "retry_attempts" in create_schema["properties"]["retryAttempts"]["description"]
    body = task(retryAttempts=1, runAt="2030-01-01T00:00:00Z")
    assert admits(doc, body_schema(doc, "/api/tasks", "post"), body)
    created = create(shared, retryAttempts=1, runAt="2030-01-01T00:00:00Z")
    assert created["retry_attempts"] == 1
    assert created["run_at"] == "2030-01-01T00:00:00Z"


def test_both_spellings_of_one_field_are_forbidden_and_refused(
    shared: httpx.Client, doc: dict[str, Any], unchanged: None
) -> None:
    body = task(retry_attempts=1, retryAttempts=2)
    assert not admits(doc, body_schema(doc, "/api/tasks", "post"), body)
    error = refused(shared.post("/api/tasks", json=body), 422, ["retryAttempts"])
    assert "given twice" in error["message"]


def test_camel_case_query_parameters_are_refused_with_the_right_name(
    shared: httpx.Client, doc: dict[str, Any]
) -> None:
    names = {p["name"] for p in doc["paths"]["/api/tasks"]["get"]["parameters"]}
    assert "created_after" in names
    assert "createdAfter" not in names
    response = shared.get("/api/tasks", params={"createdAfter": "2030-01-01T00:00:00Z"})
    error = refused(response, 422, ["query", "createdAfter"])
    assert "created_after" in error["message"]


# ------------------------------------------------------- null on update fields (accepted)


def test_null_clears_the_nullable_fields_of_a_task(
    shared: httpx.Client, doc: dict[str, Any]
) -> None:
    created = create(shared, timeout=60, technical_specs="s", working_directory="/tmp")
    body = {"timeout": None, "technical_specs": None, "working_directory": None}
    assert admits(doc, body_schema(doc, "/api/tasks/{task_id}", "put"), body)
    response = shared.put(f"/api/tasks/{created['id']}", json=body)
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in body} == body


def test_null_clears_the_nullable_fields_of_a_project(
    shared: httpx.Client, doc: dict[str, Any]
) -> None:
    name = f"contract-{uuid.uuid4()}"
    project = shared.post(
        "/api/projects", json={"name": name, "description": "d", "due_date": "2030-01-01T00:00:00Z"}
    ).json()
    body = {"description": None, "due_date": None}
    assert admits(doc, body_schema(doc, "/api/projects/{project_id}", "put"), body)
    response = shared.put(f"/api/projects/{project['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["description"] is None
    assert response.json()["due_date"] is None


@pytest.mark.parametrize("field", ["name", "command", "priority", "retry_attempts", "run_at"])
def test_null_on_a_field_that_cannot_be_null_is_forbidden_and_refused(
    shared: httpx.Client, doc: dict[str, Any], field: str
) -> None:
    created = create(shared)
    assert not admits(doc, body_schema(doc, "/api/tasks/{task_id}", "put"), {field: None})
    refused(shared.put(f"/api/tasks/{created['id']}", json={field: None}), 422, [field])
    assert shared.get(f"/api/tasks/{created['id']}").json() == created


# ------------------------------------------------------------ strict types (refused)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("retry_attempts", True, id="retry-attempts-true"),
        pytest.param("ai_reviews_required", False, id="ai-reviews-false"),
        pytest.param("timeout", True, id="timeout-true"),
        pytest.param("retry_attempts", "3", id="retry-attempts-string"),
        pytest.param("retry_delay", True, id="retry-delay-true"),
        pytest.param("retry_delay", "1.5", id="retry-delay-string"),
        pytest.param("run_at", 1700000000, id="run-at-unix-time"),
        pytest.param("run_at", "1700000000", id="run-at-unix-time-string"),
        pytest.param("run_at", "2030-01-01T00:00:00", id="run-at-without-offset"),
        pytest.param("run_at", "9999-12-31T23:59:59-01:00", id="run-at-past-the-calendar"),
        pytest.param("project_id", "0123456789abcdef0123456789abcdef", id="uuid-without-dashes"),
    ],
)
def test_a_value_of_the_wrong_type_is_forbidden_and_refused(
    shared: httpx.Client, doc: dict[str, Any], unchanged: None, field: str, value: Any
) -> None:
    body = task(**{field: value})
    assert not admits(doc, body_schema(doc, "/api/tasks", "post"), body)
    refused(shared.post("/api/tasks", json=body), 422, [field])


def test_an_integral_number_is_an_integer(shared: httpx.Client, doc: dict[str, Any]) -> None:
    # JSON Schema counts 3.0 as an integer, so the server does too.
    body = task(retry_attempts=3.0)
    assert admits(doc, body_schema(doc, "/api/tasks", "post"), body)
    assert create(shared, retry_attempts=3.0)["retry_attempts"] == 3


# ------------------------------------------------------------------ query parameters


@pytest.mark.parametrize(
    ("path", "query", "name"),
    [
        pytest.param("/api/tasks", "limit=10.0", "limit", id="limit-10.0"),
        pytest.param("/api/tasks", "limit=1_000", "limit", id="limit-1_000"),
        pytest.param("/api/tasks", "limit=true", "limit", id="limit-true"),
        pytest.param("/api/tasks", "limit=1e2", "limit", id="limit-1e2"),
        pytest.param("/api/tasks", "created_after=1700000000", "created_after", id="unix-time"),
        pytest.param("/api/projects", "offset=%2B5", "offset", id="offset-plus-sign"),
    ],
)
def test_a_query_value_not_of_its_documented_form_is_refused(
    shared: httpx.Client, doc: dict[str, Any], path: str, query: str, name: str
) -> None:
    schema = param_schema(doc, path, "get", name)
    assert schema.get("type") in ("integer", "string"), schema
    if schema["type"] == "string":
        assert not admits(doc, schema, httpx.QueryParams(query)[name])
    refused(shared.get(f"{path}?{query}"), 422, ["query", name])


def test_an_offset_past_the_end_is_an_empty_page(shared: httpx.Client, doc: dict[str, Any]) -> None:
    for path in ("/api/projects", "/api/tasks"):
        assert admits(doc, param_schema(doc, path, "get", "offset"), 109420155)
        response = shared.get(path, params={"offset": 109420155})
        assert response.status_code == 200, response.text
        assert response.json()["offset"] == 109420155
        assert response.json()[path.rsplit("/", 1)[1]] == []


def test_every_documented_task_type_is_a_filter(shared: httpx.Client, doc: dict[str, Any]) -> None:
    schema = param_schema(doc, "/api/tasks", "get", "task_type")
    for value in ("Simple", "Workflow", "Scheduled", "Function"):
        assert admits(doc, schema, value)
        response = shared.get("/api/tasks", params={"task_type": value, "queue": PARKED})
        assert response.status_code == 200, response.text


def test_following_logs_with_no_wait_answers_at_once(
    shared: httpx.Client, doc: dict[str, Any]
) -> None:
    assert admits(doc, param_schema(doc, "/api/tasks/{task_id}/logs", "get", "timeout"), 0)
    created = create(shared)
    response = shared.get(
        f"/api/tasks/{created['id']}/logs", params={"follow": "true", "timeout": 0}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    content = doc["paths"]["/api/tasks/{task_id}/logs"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "application/x-ndjson"}
    lines = response.text.splitlines()
    assert lines[-1] == '{"event":"timeout","status":"Pending","next_offset":0}'


@pytest.mark.parametrize("value", ["maybe", "1", "yes", "True"])
def test_a_boolean_query_value_is_true_or_false(shared: httpx.Client, value: str) -> None:
    created = create(shared)
    response = shared.get(f"/api/tasks/{created['id']}/logs", params={"follow": value})
    refused(response, 422, ["query", "follow"])


# -------------------------------------------------------------- what a task may be given


def test_task_type_lists_every_kind_of_task(
    shared: httpx.Client, doc: dict[str, Any], unchanged: None
) -> None:
    schema = doc["components"]["schemas"]["TaskCreate"]["properties"]["task_type"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert sorted(schema["enum"]) == ["Function", "Scheduled", "Simple", "Workflow"]
    body = task(task_type="Batch")
    assert not admits(doc, body_schema(doc, "/api/tasks", "post"), body)
    refused(shared.post("/api/tasks", json=body), 422, ["task_type"])


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("0", id="digit"),
        pytest.param("A-B", id="dash"),
        pytest.param("", id="empty"),
        *(pytest.param(name, id=name) for name in RESERVED_ENVIRONMENT),
    ],
)
def test_an_environment_name_the_document_forbids_is_refused(
    shared: httpx.Client, doc: dict[str, Any], unchanged: None, name: str
) -> None:
    body = task(environment={name: "x"})
    assert not admits(doc, body_schema(doc, "/api/tasks", "post"), body)
    refused(shared.post("/api/tasks", json=body), 422, ["environment"])
    created = create(shared, queue=MADE)
    update = {"environment": {name: "x"}}
    assert not admits(doc, body_schema(doc, "/api/tasks/{task_id}", "put"), update)
    refused(shared.put(f"/api/tasks/{created['id']}", json=update), 422, ["environment"])


def test_the_reserved_names_are_those_the_worker_sets(shared: httpx.Client) -> None:
    """A command's environment: every TASKQUEUE_ name the worker adds is a reserved one."""
    command = "env | cut -d= -f1 | grep '^TASKQUEUE_'"
    phase_only = {"TASKQUEUE_PHASE", "TASKQUEUE_ROUND"}  # what a workflow phase sees besides
    for extra, phases in ((set(), None), (phase_only, [{"name": "only", "command": command}])):
        body: dict[str, Any] = {"name": "env", "command": command}
        if phases is not None:
            body.update(task_type="Workflow", phases=phases)
        response = shared.post("/api/tasks", json=body)
        assert response.status_code == 201, response.text
        done = wait_status(shared, response.json()["id"])
        assert done["status"] == "Completed", done
        added = set(done["result"]["stdout_tail"].split()) - set(os.environ)
        assert added == set(RESERVED_ENVIRONMENT) - phase_only | extra


@pytest.mark.parametrize(
    ("metadata", "accepted"),
    [
        pytest.param({"n": 2**63 - 1, "f": -1.5e18}, True, id="64-bit"),
        pytest.param({"s": "a\x00b"}, True, id="nul-in-a-string"),
        pytest.param({"n": 2**63}, False, id="past-64-bit"),
        pytest.param({"n": [1e30]}, False, id="big-float"),
    ],
)
def test_metadata_numbers_are_within_64_bits(
    shared: httpx.Client, doc: dict[str, Any], metadata: dict[str, Any], accepted: bool
) -> None:
    body = task(metadata=metadata)
    assert admits(doc, body_schema(doc, "/api/tasks", "post"), body) is accepted
    response = shared.post("/api/tasks", json=body)
    if accepted:
        assert response.status_code == 201, response.text
        assert shared.get(f"/api/tasks/{response.json()['id']}").json()["metadata"] == metadata
    else:
        refused(response, 422, ["metadata"])


def test_a_ref_outside_a_batch_is_forbidden_and_refused(
    shared: httpx.Client, doc: dict[str, Any], unchanged: None
) -> None:
    for body in (task(ref="a"), task(dependencies=["a"])):
        assert not admits(doc, body_schema(doc, "/api/tasks", "post"), body)
        response = shared.post("/api/tasks", json=body)
        assert response.status_code == 422, response.text
    batch = {"tasks": [task(ref="a", queue=MADE), task(dependencies=["a"], queue=MADE)]}
    assert admits(doc, body_schema(doc, "/api/tasks/batch", "post"), batch)
    response = shared.post("/api/tasks/batch", json=batch)
    assert response.status_code == 201, response.text


def test_a_dependency_object_names_exactly_one_thing(
    shared: httpx.Client, doc: dict[str, Any]
) -> None:
    existing = create(shared)["id"]
    for dependency in (
        {},
        {"task_id": existing, "ref": "a"},
        {"task_id": existing, "taskId": existing},
    ):
        batch = {"tasks": [task(ref="a"), task(dependencies=[dependency])]}
        assert not admits(doc, body_schema(doc, "/api/tasks/batch", "post"), batch)
        refused(shared.post("/api/tasks/batch", json=batch), 422, ["tasks", 1, "dependencies", 0])


def test_a_well_formed_reference_to_nothing_is_a_documented_conflict(
    shared: httpx.Client, doc: dict[str, Any], unchanged: None
) -> None:
    # The document cannot know which tasks exist: a valid body naming none is a 409, not a 422.
    body = task(dependencies=[str(uuid.uuid4())])
    assert admits(doc, body_schema(doc, "/api/tasks", "post"), body)
    assert "409" in doc["paths"]["/api/tasks"]["post"]["responses"]
    error = refused(shared.post("/api/tasks", json=body), 409, ["dependencies", 0])
    assert "does not exist" in error["message"]
    batch = {"tasks": [task(dependencies=["nowhere"])]}
    assert admits(doc, body_schema(doc, "/api/tasks/batch", "post"), batch)
    refused(shared.post("/api/tasks/batch", json=batch), 409, ["tasks", 0, "dependencies", 0])


# ------------------------------------------------------------------------ idempotency keys


def test_an_idempotency_key_is_printable_ascii(
    shared: httpx.Client, doc: dict[str, Any], unchanged: None
) -> None:
    schema = param_schema(doc, "/api/tasks", "post", "Idempotency-Key")
    assert admits(doc, schema, "key-1")
    assert not admits(doc, schema, "clé")
    response = shared.post(
        "/api/tasks", json=task(), headers={"Idempotency-Key": "clé".encode("latin-1")}
    )
    refused(response, 422, ["header", "Idempotency-Key"])


def test_a_repeat_whose_task_was_deleted_is_a_conflict(shared: httpx.Client) -> None:
    key = {"Idempotency-Key": f"contract-{uuid.uuid4()}"}
    first = shared.post("/api/tasks", json=task(), headers=key)
    assert first.status_code == 201, first.text
    again = shared.post("/api/tasks", json=task(), headers=key)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert shared.delete(f"/api/tasks/{first.json()['id']}").status_code == 204
    error = refused(
        shared.post("/api/tasks", json=task(), headers=key), 409, ["header", "Idempotency-Key"]
    )
    assert first.json()["id"] in error["message"]
    assert shared.get(f"/api/tasks/{first.json()['id']}").status_code == 404


# ------------------------------------------------------------------- methods and statuses


def test_the_document_and_the_routes_have_the_same_operations(doc: dict[str, Any]) -> None:
    routed = {(path, method.lower()) for path, methods in ENDPOINTS.items() for method in methods}
    documented = {(path, method) for path, methods in doc["paths"].items() for method in methods}
    assert routed == documented
    assert set(OPERATIONS) == set(ENDPOINTS)


def test_every_operation_documents_its_error_statuses(doc: dict[str, Any]) -> None:
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            codes = set(op["responses"])
            assert {"403", "405", "422", "431", "503"} <= codes, (method, path)
            if "{" in path:
                assert {"404", "307"} <= codes, (method, path)
            if method != "get":
                assert {"400", "415"} <= codes, (method, path)
            if "requestBody" in op:
                assert {"408", "413"} <= codes, (method, path)
            allow = op["responses"]["405"]["headers"]["Allow"]
            assert allow["required"] is True


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_405_and_options_name_every_method_of_the_path(
    shared: httpx.Client, doc: dict[str, Any], path: str
) -> None:
    url = re.sub(r"\{\w+\}", str(uuid.uuid4()), path)
    methods = [m.upper() for m in doc["paths"][path]]
    expected = {*methods, "OPTIONS", *(["HEAD"] if "GET" in methods else [])}
    options = shared.options(url)
    assert options.status_code == 204, options.text
    assert set(options.headers["allow"].split(", ")) == expected
    other = next(m for m in ("PATCH", "TRACE", "PUT", "DELETE") if m not in methods)
    refused_ = shared.request(other, url)
    assert refused_.status_code == 405, refused_.text
    assert set(refused_.headers["allow"].split(", ")) == expected
    assert refused_.json()["error"]["type"] == "method_not_allowed"


def test_the_batch_path_is_not_a_task_id(shared: httpx.Client) -> None:
    response = shared.get("/api/tasks/batch")
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST, PUT, OPTIONS"


def test_head_answers_as_get_without_a_body(shared: httpx.Client) -> None:
    response = shared.head("/api/health")
    assert response.status_code == 200
    assert response.content == b""


def test_a_trailing_slash_is_a_documented_redirect(
    live: ServerProcess, doc: dict[str, Any]
) -> None:
    responses = doc["paths"]["/api/tasks/{task_id}"]["get"]["responses"]
    assert "Location" in responses["307"]["headers"]
    ident = str(uuid.uuid4())
    response = httpx.get(f"{live.url}/api/tasks/{ident}/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"].endswith(f"/api/tasks/{ident}")
