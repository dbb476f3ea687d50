"""The Python SDK: :class:`AsyncTaskQueueClient` and its generated twin :class:`TaskQueueClient`.

The clients are imported on first use (:pep:`562`): a process that only reads the
configuration, such as ``taskqueue server``, does not pay for building them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from taskqueue.client._config import ResolvedConfig, resolve_config

if TYPE_CHECKING:
    from taskqueue.client._async_client import AsyncTaskQueueClient
    from taskqueue.client._base import NOT_GIVEN, NotGiven
    from taskqueue.client._sync_client import TaskQueueClient

__all__ = [
    "NOT_GIVEN",
    "AsyncTaskQueueClient",
    "NotGiven",
    "ResolvedConfig",
    "TaskQueueClient",
    "resolve_config",
]

#: Where each name imported on first use lives.
_LAZY = {
    "AsyncTaskQueueClient": "taskqueue.client._async_client",
    "NOT_GIVEN": "taskqueue.client._base",
    "NotGiven": "taskqueue.client._base",
    "TaskQueueClient": "taskqueue.client._sync_client",
}


def __getattr__(name: str) -> Any:
    """Import a client (or ``NOT_GIVEN``) the first time it is asked for."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, those imported on first use among them."""
    return sorted({*globals(), *__all__})
