"""The Python SDK: :class:`AsyncTaskQueueClient` and its generated twin :class:`TaskQueueClient`."""

from taskqueue.client._async_client import AsyncTaskQueueClient
from taskqueue.client._base import NOT_GIVEN, NotGiven
from taskqueue.client._config import ResolvedConfig, resolve_config
from taskqueue.client._sync_client import TaskQueueClient

__all__ = [
    "NOT_GIVEN",
    "AsyncTaskQueueClient",
    "NotGiven",
    "ResolvedConfig",
    "TaskQueueClient",
    "resolve_config",
]
