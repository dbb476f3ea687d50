"""Reading a server-sent event stream (``text/event-stream``), line by line."""

from __future__ import annotations

__all__ = ["SseParser"]


class SseParser:
    """Server-sent event lines in, complete events (``id``, ``event``, ``data``) out."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._data: list[str] = []

    def feed(self, line: str) -> dict[str, str] | None:
        """Take one line; the event it completes (on a blank line), if any."""
        line = line.rstrip("\r")
        if not line:
            fields, data = self._fields, self._data
            self._fields, self._data = {}, []
            if not fields and not data:
                return None
            if data:
                fields["data"] = "\n".join(data)
            return fields
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name in ("id", "event", "retry"):
            self._fields[name] = value
        return None
