"""The exception hierarchy under its module name: ``from taskqueue.exceptions import ...``.

The same classes as :mod:`taskqueue.errors` (and ``from taskqueue import ...``), with
``ConnectionError`` and ``TimeoutError`` as aliases of :class:`TaskQueueConnectionError` and
:class:`TaskQueueTimeoutError`. Imported bare, those two shadow Python's builtins of the same
names in the importing module (``except ConnectionError`` then no longer catches the builtin);
they are left out of ``__all__``, so ``from taskqueue.exceptions import *`` never shadows them.
"""

from __future__ import annotations

from taskqueue.errors import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    ExecutionError,
    InvalidSignatureError,
    MalformedWebhookError,
    NotFoundError,
    PayloadTooLargeError,
    ProjectNotFoundError,
    RateLimitError,
    ServerError,
    StaleTimestampError,
    TaskNotFoundError,
    TaskQueueConfigError,
    TaskQueueConnectionError,
    TaskQueueError,
    TaskQueueTimeoutError,
    ValidationError,
    WebhookVerificationError,
)
from taskqueue.errors import ConnectionError as ConnectionError
from taskqueue.errors import TimeoutError as TimeoutError

__all__ = [
    "APIError",
    "AuthenticationError",
    "AuthorizationError",
    "ConflictError",
    "ExecutionError",
    "InvalidSignatureError",
    "MalformedWebhookError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ProjectNotFoundError",
    "RateLimitError",
    "ServerError",
    "StaleTimestampError",
    "TaskNotFoundError",
    "TaskQueueConfigError",
    "TaskQueueConnectionError",
    "TaskQueueError",
    "TaskQueueTimeoutError",
    "ValidationError",
    "WebhookVerificationError",
]
