"""Languages of code tasks on the API: ``GET /api/languages`` and the check at creation.

A code task is claimed only by a worker offering its language, so one created in a language
no live worker offers would wait for ever: it is refused (422) with the languages available.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from taskqueue.languages import LANGUAGES
from taskqueue.models import TaskCreate
from taskqueue.server.auth import Scope
from taskqueue.server.errors import ApiError
from taskqueue.server.params import no_query
from taskqueue.server.responses import json_response, store_of

__all__ = ["LANGUAGE_ENDPOINTS", "LANGUAGE_SCOPES", "check_languages", "list_languages"]

#: A worker not heard from for this long offers nothing (as ``GET /api/workers`` calls it stale).
WORKER_STALE_AFTER_S = 30.0


async def list_languages(request: Request) -> Response:
    """``GET /api/languages``: the table of languages, with what live workers offer of each."""
    no_query(request)
    offered = await store_of(request).offered_languages(WORKER_STALE_AFTER_S)
    languages = [
        {
            "name": language.name,
            "aliases": list(language.aliases),
            "extensions": list(language.extensions),
            "versions": offered.get(language.name, {}).get("versions", []),
            "workers": offered.get(language.name, {}).get("workers", 0),
        }
        for language in LANGUAGES
    ]
    return json_response({"languages": languages, "total": len(languages)})


def _unoffered(
    items: Sequence[TaskCreate], offered: Mapping[str, Any]
) -> list[tuple[int, TaskCreate]]:
    return [
        (i, item)
        for i, item in enumerate(items)
        if item.language is not None and item.language not in offered
    ]


async def check_languages(request: Request, items: Sequence[TaskCreate], batch: bool) -> None:
    """Refuse (422) code tasks in a language no live worker offers, naming those offered."""
    wanted = [(i, item.language) for i, item in enumerate(items) if item.language is not None]
    if not wanted:
        return
    offered = await store_of(request).offered_languages(WORKER_STALE_AFTER_S)
    available = ", ".join(sorted(offered)) or "none (no live worker runs code)"
    details: list[dict[str, Any]] = [
        {
            "loc": ["tasks", i, "language"] if batch else ["language"],
            "msg": f"no live worker offers {language}; languages available: {available}",
            "type": "language_unavailable",
        }
        for i, language in wanted
        if language not in offered
    ]
    if details:
        missing = ", ".join(sorted({str(item.language) for _, item in _unoffered(items, offered)}))
        raise ApiError(
            422, f"no live worker offers {missing}; languages available: {available}", details
        )


#: The paths of this module and their handlers (merged into ``routes.ENDPOINTS``).
LANGUAGE_ENDPOINTS: dict[str, dict[str, Any]] = {"/api/languages": {"GET": list_languages}}
#: Their scopes: reading the table needs a read key.
LANGUAGE_SCOPES: dict[str, dict[str, Scope]] = {"/api/languages": {"GET": Scope.READ}}
