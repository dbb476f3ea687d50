"""The OpenAPI document: the contract, built from what the server itself validates and sends.

Schemas come from the models that validate requests and shape answers
(:mod:`taskqueue.server.openapi_schemas`), query parameters from the models the routes parse
them with (:mod:`taskqueue.server.params`), and every status code an operation can answer is
listed with why. ``tests/integration/test_schemathesis.py`` runs a fuzzer against a real server
with this document, so a change to an endpoint that breaks the document fails the tests.
"""

from __future__ import annotations

import re
from typing import Any

from taskqueue._version import __version__
from taskqueue.models import (
    ErrorBody,
)
from taskqueue.server.openapi_operations import OPERATIONS, Operation
from taskqueue.server.openapi_schemas import (
    component_schemas,
    parameter_schemas,
    ref,
)
from taskqueue.server.params import (
    IDEMPOTENCY_KEY_PATTERN,
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
