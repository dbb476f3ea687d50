"""Workflow tasks on the API: reviews, approval links, and the workflows of a project.

A Workflow task is created with ``POST /api/tasks`` (``task_type: "Workflow"``); here are its
reviews (``/api/tasks/{id}/reviews``), single-use approval links (``/review-links``, opened at
``/reviews/{token}`` by a browser, no key needed: the token is the credential) and the named,
versioned workflows of a project (``/api/projects/{id}/workflows``).
"""

from __future__ import annotations

import re
import secrets
import urllib.parse
from typing import Annotated, Any, Literal

import pydantic
from starlette.requests import Request
from starlette.responses import Response

from taskqueue._fields import Text
from taskqueue._input import _Input
from taskqueue._workflow_models import ReviewCreate, ReviewLinkCreate, WorkflowCreate
from taskqueue.server.auth import Scope, principal_of, projects_of
from taskqueue.server.body import read_request_body
from taskqueue.server.errors import ApiError
from taskqueue.server.params import Query, idempotency, no_query, parse_query, path_id
from taskqueue.server.responses import json_response, parse_body, store_of
from taskqueue.server.review_page import closed_page, decided_page, review_page
from taskqueue.store import NotFound
from taskqueue.store.errors import Conflict
from taskqueue.store.workflows import LinkClosed

__all__ = [
    "TOKEN_SCHEMA",
    "WORKFLOW_ENDPOINTS",
    "WORKFLOW_NAME_SCHEMA",
    "WORKFLOW_SCOPES",
    "ReviewForm",
    "VersionQuery",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
#: The path parameter of a workflow's name, and of an approval link's token.
WORKFLOW_NAME_SCHEMA: dict[str, Any] = {"type": "string", "pattern": _NAME.pattern}
TOKEN_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 200}


class VersionQuery(Query):
    """``GET /api/projects/{id}/workflows/{name}``: which version (default: the latest)."""

    version: int | None = pydantic.Field(None, ge=1, le=2**31 - 1)


class ReviewForm(_Input):
    """The form an approval page posts: the verdict, and a comment."""

    verdict: Literal["approve", "reject"]
    comment: Annotated[Text, pydantic.Field(max_length=10_000)] = ""


def _name(request: Request) -> str:
    raw: str = request.path_params["name"]
    if not _NAME.match(raw):
        raise ApiError(
            422,
            "a workflow name is 1 to 100 letters, digits and _ . : - (starting with a letter "
            "or digit)",
            [{"loc": ["path", "name"], "msg": "not a workflow name", "type": "pattern"}],
        )
    return raw


# ---------------------------------------------------------------------------- reviews


def _reviewer(request: Request, given: str | None) -> str:
    principal = principal_of(request)
    if principal.key_id is None:
        if given is None:
            raise ApiError(
                422,
                "reviewer: say who reviews (this server has no API keys to tell)",
                [{"loc": ["body", "reviewer"], "msg": "required without an API key",
                  "type": "missing"}],
            )  # fmt: skip
        return given
    if given is not None and given != principal.name:
        raise ApiError(
            422,
            f"reviewer: this API key reviews as {principal.name!r}",
            [{"loc": ["body", "reviewer"], "msg": f"the key's name is {principal.name!r}",
              "type": "reviewer"}],
        )  # fmt: skip
    return principal.name


async def submit_review(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/reviews``: a verdict on the gate the workflow waits at."""
    no_query(request)
    task_id = path_id(request, "task_id")
    body = await parse_body(request, ReviewCreate)
    reviewer = _reviewer(request, body.reviewer)
    review = await store_of(request).workflows.review(
        task_id, body.verdict, reviewer, body.comment, projects=projects_of(request)
    )
    return json_response(review, 201)


async def list_reviews(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/reviews``: every review, and the gate it waits at."""
    no_query(request)
    task_id = path_id(request, "task_id")
    found = await store_of(request).workflows.reviews(task_id, projects=projects_of(request))
    return json_response(found)


async def create_review_link(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/review-links``: a single-use approval link for someone."""
    no_query(request)
    task_id = path_id(request, "task_id")
    body = await parse_body(request, ReviewLinkCreate)
    token = secrets.token_urlsafe(32)
    link = await store_of(request).workflows.create_link(
        task_id, body.reviewer, token, body.expires_in, projects=projects_of(request)
    )
    base = str(request.base_url).rstrip("/")
    return json_response({"url": f"{base}/reviews/{token}", **link}, 201)


# ---------------------------------------------------------------------------- the approval page


async def open_link(request: Request) -> Response:
    """``GET /reviews/{token}``: what the link asks to approve (it changes nothing)."""
    no_query(request)
    token: str = request.path_params["token"]
    try:
        link = await store_of(request).workflows.read_link(token)
    except NotFound:
        return closed_page(404, "This review link does not exist.")
    if link["closed"] is not None:
        return closed_page(410, f"{link['closed'][0].upper()}{link['closed'][1:]}.")
    return review_page(link)


async def _form(request: Request) -> ReviewForm:
    body = await read_request_body(request, "application/x-www-form-urlencoded")
    try:
        text = body.decode("utf-8")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the form is not UTF-8 URL-encoded fields") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise ApiError(
                422, f"{key}: given twice", [{"loc": ["body", key], "msg": "given twice",
                                              "type": "duplicate"}]
            )  # fmt: skip
        fields[key] = value
    try:
        return ReviewForm.model_validate(fields)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        loc = ["body", *first["loc"]]
        raise ApiError(
            422,
            f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
            [{"loc": loc, "msg": first["msg"], "type": first["type"]}],
        ) from None


async def decide_link(request: Request) -> Response:
    """``POST /reviews/{token}``: the form's verdict, given once."""
    no_query(request)
    token: str = request.path_params["token"]
    form = await _form(request)
    try:
        review = await store_of(request).workflows.use_link(token, form.verdict, form.comment)
    except NotFound:
        return closed_page(404, "This review link does not exist.")
    except LinkClosed as closed:
        return closed_page(410, f"{closed.message[0].upper()}{closed.message[1:]}.")
    except Conflict as refused:
        return closed_page(409, refused.message)
    return decided_page(review)


# ---------------------------------------------------------------------------- project workflows


async def create_workflow(request: Request) -> Response:
    """``POST /api/projects/{project_id}/workflows``: the next version of a named workflow."""
    no_query(request)
    project_id = path_id(request, "project_id")
    body = await parse_body(request, WorkflowCreate)
    found = await store_of(request).workflows.create(
        project_id, body, idempotency(request, body), projects=projects_of(request)
    )
    return json_response(found, 201)


async def list_workflows(request: Request) -> Response:
    """``GET /api/projects/{project_id}/workflows``: the latest version of each."""
    no_query(request)
    project_id = path_id(request, "project_id")
    found = await store_of(request).workflows.list(project_id, projects=projects_of(request))
    return json_response({"workflows": found, "total": len(found)})


async def get_workflow(request: Request) -> Response:
    """``GET /api/projects/{project_id}/workflows/{name}?version=N``."""
    project_id = path_id(request, "project_id")
    name = _name(request)
    query = parse_query(request, VersionQuery)
    found = await store_of(request).workflows.get(
        project_id, name, query.version, projects=projects_of(request)
    )
    return json_response(found)


async def delete_workflow(request: Request) -> Response:
    """``DELETE /api/projects/{project_id}/workflows/{name}``: every version of it."""
    no_query(request)
    project_id = path_id(request, "project_id")
    name = _name(request)
    await store_of(request).workflows.delete(project_id, name, projects=projects_of(request))
    return Response(status_code=204)


#: The routes of Workflow tasks, added to the route table.
WORKFLOW_ENDPOINTS: dict[str, dict[str, Any]] = {
    "/api/tasks/{task_id}/reviews": {"GET": list_reviews, "POST": submit_review},
    "/api/tasks/{task_id}/review-links": {"POST": create_review_link},
    "/api/projects/{project_id}/workflows": {"GET": list_workflows, "POST": create_workflow},
    "/api/projects/{project_id}/workflows/{name}": {
        "GET": get_workflow,
        "DELETE": delete_workflow,
    },
    "/reviews/{token}": {"GET": open_link, "POST": decide_link},
}
#: Their scopes: a review or a link needs a write key; the link's page needs none (the token
#: is its credential).
WORKFLOW_SCOPES: dict[str, dict[str, Scope]] = {
    "/api/tasks/{task_id}/reviews": {"GET": Scope.READ, "POST": Scope.WRITE},
    "/api/tasks/{task_id}/review-links": {"POST": Scope.WRITE},
    "/api/projects/{project_id}/workflows": {"GET": Scope.READ, "POST": Scope.WRITE},
    "/api/projects/{project_id}/workflows/{name}": {"GET": Scope.READ, "DELETE": Scope.WRITE},
    "/reviews/{token}": {"GET": Scope.PUBLIC, "POST": Scope.PUBLIC},
}
