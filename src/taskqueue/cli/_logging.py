"""How ``taskqueue server`` and ``taskqueue worker`` log: one format for every line.

Every logger, uvicorn's included, goes through the root handler set up here, as text
(``2026-12-01 14:03:27,512 INFO taskqueue.worker: ...``) or as one JSON object a line
(``--log-format json``) for log collectors.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

__all__ = ["FORMATS", "JsonFormatter", "setup_logging"]

#: The ``--log-format`` choices.
FORMATS = ("text", "json")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time (UTC, ISO 8601), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Send every logger's records to stderr at ``level``, formatted as ``fmt``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    # Migrations say what they do at INFO on every start; only their problems matter here.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # httpx logs each request it sends (webhook deliveries) with its URL, which may hold a
    # token: the deliveries log says what was sent.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # uvicorn's own lines (a malformed request, a failed start) in the same format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(max(logging.WARNING, root.level))
