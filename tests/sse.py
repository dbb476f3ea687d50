"""Reading ``GET /api/events`` as a test does: raw server-sent event blocks, with a deadline."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Block:
    """One server-sent event block: its fields, and ``data`` parsed when it is JSON."""

    fields: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.fields.get("event", "message")

    @property
    def data(self) -> Any:
        return json.loads(self.fields["data"]) if "data" in self.fields else None

    @property
    def is_event(self) -> bool:
        return self.name == "message" and "data" in self.fields


def blocks(lines: Iterator[str]) -> Iterator[Block | str]:
    """Blocks of an event stream, and each comment line (``": keep-alive"``) as a string."""
    current = Block()
    for line in lines:
        if line == "":
            if current.fields:
                yield current
            current = Block()
        elif line.startswith(":"):
            yield line
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data" and "data" in current.fields:
                value = current.fields["data"] + "\n" + value
            current.fields[name] = value


def read_stream(
    client: httpx.Client,
    params: Mapping[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 30.0,
) -> tuple[list[dict[str, Any]], list[Block | str]]:
    """Events of one stream until ``until(events)`` is true, and everything else it sent.

    The stream is asked for keep-alives every 0.2 s; after ``timeout`` seconds' worth of them
    in a row with no event, the reading stops and the caller's assertions on what arrived
    say what is missing.
    """
    query = {"heartbeat": 0.2, **(params or {})}
    idle_limit = int(timeout / 0.2)
    idle = 0
    events: list[dict[str, Any]] = []
    others: list[Block | str] = []
    with client.stream("GET", "/api/events", params=query, headers=headers, timeout=10) as reply:
        assert reply.status_code == 200, reply.read().decode()
        assert reply.headers["content-type"].startswith("text/event-stream")
        for item in blocks(reply.iter_lines()):
            if isinstance(item, Block) and item.is_event:
                assert item.fields["id"] == str(item.data["id"])
                events.append(item.data)
                idle = 0
            else:
                others.append(item)
                idle += 1
            if until(events) or idle > idle_limit:
                return events, others
    return events, others
