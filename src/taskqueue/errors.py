"""The exceptions taskqueue raises.

::

    TaskQueueError                  every error of this package
    ├── APIError                    the server answered an error status
    │   ├── ValidationError         400 / 422: the request was malformed (see ``details``)
    │   ├── AuthenticationError     401
    │   ├── AuthorizationError      403
    │   ├── NotFoundError           404
    │   │   ├── TaskNotFoundError
    │   │   └── ProjectNotFoundError
    │   ├── ConflictError           409: the request conflicts with the current state
    │   ├── PayloadTooLargeError    413
    │   ├── RateLimitError          429 (``retry_after`` in seconds)
    │   └── ServerError             5xx
    ├── TaskQueueConnectionError    the server could not be reached (alias ``ConnectionError``;
    │                               ``original_exception``: the network's error)
    ├── TaskQueueTimeoutError       the request or the wait timed out (alias ``TimeoutError``)
    ├── TaskQueueConfigError        a config file or setting is wrong (names the file and line)
    ├── ExecutionError              an execution of a Function task Failed or was Cancelled
    │                               (``execution_id``, ``result``: its ExecutionResult)
    └── WebhookVerificationError    a webhook delivery is not to be trusted (``http_status``: the
        │                           status a receiver answers; see :mod:`taskqueue.webhooks`)
        ├── MalformedWebhookError   400: a header is missing or garbled, or the body is no event
        ├── InvalidSignatureError   401: no signature matches any of the secrets
        └── StaleTimestampError     401: signed too long ago, or too far in the future

Each carries ``status_code``, ``message``, ``response_data`` and ``request_id``; an API error
also ``details`` (``ValidationError.errors`` is the same list).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskqueue._function_models import ExecutionResult

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


class TaskQueueError(Exception):
    """Base of every error raised by taskqueue."""

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        response_data: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.response_data: dict[str, Any] = response_data or {}
        self.request_id = request_id

    def __str__(self) -> str:
        text = f"[{self.status_code}] {self.message}" if self.status_code else self.message
        if self.request_id:
            text += f" (request {self.request_id})"
        return text


class APIError(TaskQueueError):
    """The server answered with an error status; ``details`` lists what it found wrong."""

    @property
    def details(self) -> list[dict[str, Any]]:
        """What the server found wrong; empty when it said nothing more.

        Each bad field (``loc``, ``msg``, ``type``), or each refused item of a batch.
        """
        error = self.response_data.get("error", {})
        details = error.get("details", []) if isinstance(error, dict) else []
        return details if isinstance(details, list) else []


class ValidationError(APIError):
    """The request was malformed; ``details`` (or ``errors``) lists each field and why."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The field errors: the same list as :attr:`details`."""
        return self.details


class AuthenticationError(APIError):
    """No valid credentials were given (401)."""


class AuthorizationError(APIError):
    """The credentials do not allow this (403)."""


class NotFoundError(APIError):
    """The resource does not exist (404)."""


class TaskNotFoundError(NotFoundError):
    """No task has this id."""


class ProjectNotFoundError(NotFoundError):
    """No project has this id."""


class ConflictError(APIError):
    """The request conflicts with the resource's current state (409)."""


class PayloadTooLargeError(APIError):
    """The request body is larger than the server accepts (413)."""


class RateLimitError(APIError):
    """Too many requests (429); ``retry_after`` says how many seconds to wait."""

    def __init__(
        self,
        message: str,
        status_code: int | None = 429,
        response_data: dict[str, Any] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code, response_data, request_id)
        self.retry_after = retry_after


class ServerError(APIError):
    """The server failed (5xx)."""


class _TransportFailure(TaskQueueError):
    """A request that got no answer; ``original_exception`` is what the network raised."""

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        response_data: dict[str, Any] | None = None,
        request_id: str | None = None,
        *,
        original_exception: BaseException | None = None,
    ) -> None:
        super().__init__(message, status_code, response_data, request_id)
        #: The underlying error (an ``OSError`` such as ``ConnectionRefusedError`` when the
        #: operating system reported one, else the HTTP library's), or None.
        self.original_exception = original_exception


class TaskQueueConnectionError(_TransportFailure):
    """The server could not be reached (``original_exception`` says why)."""


class TaskQueueTimeoutError(_TransportFailure):
    """A request, or a wait for a task, timed out (``original_exception``: None for a wait)."""


class TaskQueueConfigError(TaskQueueError):
    """A configuration file or setting is wrong; the message names the file and line."""


class ExecutionError(TaskQueueError):
    """An execution of a Function task ended Failed or Cancelled.

    ``execution_id`` is the id of the execution (its child task's); ``result`` is the
    :class:`~taskqueue.models.ExecutionResult` as it ended, with its ``error``,
    ``failure_reason``, ``exit_code`` and ``output``. ``status_code`` stays None: the request
    succeeded, the execution did not.
    """

    def __init__(self, result: ExecutionResult, message: str | None = None) -> None:
        super().__init__(
            message or _execution_message(result), response_data=result.model_dump(mode="json")
        )
        #: The execution's id (its child task's, ``GET /api/tasks/{id}`` shows it whole).
        self.execution_id: str = str(result.execution_id)
        #: The execution as it ended.
        self.result: ExecutionResult = result

    @property
    def failure_reason(self) -> str | None:
        """Why it failed, as a word (``exit_code``, ``output_invalid``...), or None."""
        reason = self.result.failure_reason
        return None if reason is None else str(reason.value)


def _execution_message(result: ExecutionResult) -> str:
    """``execution 0192… of task 0191… (version 2) Failed (exit_code): exit code 3``."""
    text = (
        f"execution {result.execution_id} of task {result.task_id} (version {result.version}) "
        f"{result.status.value}"
    )
    if result.failure_reason is not None:
        text += f" ({result.failure_reason.value})"
    if result.error:
        text += f": {result.error}"
    elif result.exit_code is not None:
        text += f": exit code {result.exit_code}"
    return text


class WebhookVerificationError(TaskQueueError):
    """A webhook delivery failed verification: it must not be acted on.

    ``http_status`` is what a receiver answers (400 or 401); ``status_code`` stays None, as
    no server answered anything.
    """

    #: The status a receiver answers the delivery with.
    http_status: int = 400


class MalformedWebhookError(WebhookVerificationError):
    """A ``webhook-*`` header is missing or garbled, or the body is not an event (400)."""

    http_status = 400


class InvalidSignatureError(WebhookVerificationError):
    """No ``v1`` signature of the delivery matches the body under any of the secrets (401)."""

    http_status = 401


class StaleTimestampError(WebhookVerificationError):
    """The delivery was signed outside the tolerance: too long ago (a replay) or ahead (401)."""

    http_status = 401


# The documented alias names for the two. Imported bare (``from taskqueue import
# ConnectionError``) they shadow Python's builtins of the same names in that module; they are
# left out of ``__all__`` so that a star import never does.
ConnectionError = TaskQueueConnectionError
TimeoutError = TaskQueueTimeoutError
