"""The sync client's event methods, GENERATED from ``_async_events.py`` by unasync."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from taskqueue.client._base import RequestSpec, error_from_response, error_from_transport
from taskqueue.client._sse import SseParser
from taskqueue.client._sync_core import SyncClientCore, id_of
from taskqueue.client._wire import TransportError, encode_url
from taskqueue.events import Event, EventPage

__all__ = ["SyncEventsMixin"]


def _params(
    after: int | None,
    project_id: str | UUID | None,
    task_id: str | UUID | None,
    types: Sequence[str] | None,
    queue: str | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if after is not None:
        params["after"] = after
    if project_id is not None:
        params["project_id"] = id_of(project_id)
    if task_id is not None:
        params["task_id"] = id_of(task_id)
    if types:
        params["types"] = ",".join(types)
    if queue is not None:
        params["queue"] = queue
    return params


class SyncEventsMixin(SyncClientCore):
    """Reading what happened: the live stream of events, and pages of past ones."""

    def list_events(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        project_id: str | UUID | None = None,
        task_id: str | UUID | None = None,
        types: Sequence[str] | None = None,
        queue: str | None = None,
    ) -> EventPage:
        """Up to ``limit`` past events after position ``after``; go on from ``next_after``."""
        params = _params(after, project_id, task_id, types, queue)
        params.update({"format": "json", "limit": limit})
        return self._model(EventPage, RequestSpec("GET", "/api/events", params=params))

    def events(
        self,
        *,
        after: int | None = None,
        project_id: str | UUID | None = None,
        task_id: str | UUID | None = None,
        types: Sequence[str] | None = None,
        queue: str | None = None,
    ) -> Iterator[Event]:
        """Events as they happen, for as long as the caller reads (an endless iterator).

        Starts after position ``after`` (None: with the next event to happen). When the
        connection drops, or the server drops a client that reads too slowly, it reconnects
        and resumes after the last event it yielded: no gap, no duplicate. ``types`` takes
        event types and families (``["task.completed", "task.failed"]``, ``["task.*"]``).
        """
        position = after
        reconnects = 0
        while True:
            params = _params(position, project_id, task_id, types, queue)
            url = encode_url(self.base_url, "/api/events", params)
            try:
                with self._http.stream("GET", url, self.timeout) as reply:
                    if reply.status_code >= 400:
                        raise error_from_response(reply.read(), "project")
                    parser = SseParser()
                    for line in reply.iter_lines():
                        item = parser.feed(line)
                        if item is None:
                            continue
                        if "id" in item and item["id"].isdigit():
                            position = int(item["id"])
                        if "data" not in item or item.get("event") not in (None, "message"):
                            continue  # the start position, or a notice (pruned, dropped)
                        reconnects = 0
                        yield Event.model_validate(json.loads(item["data"]))
            except TransportError as exc:
                if not self.retry.should_retry(reconnects, True, error=exc):
                    raise error_from_transport(exc, self.base_url) from exc
                time.sleep(self.retry.delay(reconnects))
                reconnects += 1
