"""Everything the clients do without I/O: requests, retry decisions, errors, parsing.

The async client (the source) and the generated sync client are thin loops around these pure
pieces, so the two cannot drift in behaviour.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import pydantic

from taskqueue._backoff import equal_jitter_delay
from taskqueue._validation import validation_details
from taskqueue._version import __version__
from taskqueue.client._http1 import encode_headers
from taskqueue.client._wire import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    Response,
    TimeoutException,
    TransportError,
    encode_body,
    encode_url,
    os_error_text,
    was_refused,
)
from taskqueue.errors import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ProjectNotFoundError,
    RateLimitError,
    ServerError,
    TaskNotFoundError,
    TaskQueueConfigError,
    TaskQueueConnectionError,
    TaskQueueError,
    TaskQueueTimeoutError,
    ValidationError,
)
from taskqueue.models import TaskFilters

__all__ = [
    "API_KEY_HEADERS",
    "NOT_GIVEN",
    "NotGiven",
    "RequestSpec",
    "RetryPolicy",
    "client_headers",
    "error_from_response",
    "error_from_transport",
    "filter_params",
    "parse_answer",
    "parse_model",
    "refused_locally",
    "transport_message",
    "validate_input",
]

log: logging.Logger = logging.getLogger("taskqueue.client")

M = TypeVar("M", bound=pydantic.BaseModel)

#: Statuses worth another try: the server was busy, or failed in a way that may pass.
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
#: No wait between tries is longer than this, whatever ``Retry-After`` asks.
MAX_RETRY_WAIT_S: Final = 60.0
USER_AGENT: Final = f"taskqueue-python/{__version__}"


class NotGiven:
    """The type of :data:`NOT_GIVEN`: "use the client's default", distinct from ``None``."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


#: Pass as ``timeout=`` to use the client's default; ``None`` means no timeout.
NOT_GIVEN: Final = NotGiven()


@dataclass(frozen=True)
class RequestSpec:
    """One API call, before any I/O."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    #: Safe to send again even if the server may have acted on it (reads, PUT, DELETE,
    #: creates carrying an idempotency key, cancel).
    idempotent: bool = True
    #: "task" or "project": which not-found error a 404 becomes.
    resource: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Extra seconds the server may hold the request (long-polls), added to the read timeout.
    hold: float = 0.0

    def encode(self, base_url: str) -> tuple[str, bytes | None, dict[str, str]]:
        """The URL, body and extra headers to send (the client's own headers aside)."""
        body = encode_body(self.json)
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        return encode_url(base_url, self.path, self.params), body, headers

    @staticmethod
    def create(path: str, body: Any, resource: str | None = None) -> RequestSpec:
        """A creating POST: one idempotency key, made now and reused by every retry."""
        return RequestSpec(
            "POST",
            path,
            json=body,
            resource=resource,
            headers={"Idempotency-Key": f"tq-{uuid.uuid4().hex}"},
        )


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again, and how long to wait first."""

    max_retries: int = 3
    backoff: float = 1.0

    def should_retry(
        self,
        retries_done: int,
        idempotent: bool,
        *,
        status: int | None = None,
        error: Exception | None = None,
    ) -> bool:
        """Whether the call should be tried again after this outcome."""
        if retries_done >= self.max_retries:
            return False
        if status is not None:
            # A 429 was refused before any work; other statuses may follow partial work.
            return status == 429 or (status in RETRY_STATUSES and idempotent)
        if isinstance(error, ConnectError) and refused_locally(error):
            return False  # nothing listens on this machine's port: waiting will not help
        if isinstance(error, (ConnectError, ConnectTimeout, PoolTimeout)):
            return True  # the request never reached the server
        if isinstance(error, TransportError):
            return idempotent  # it may have been received and acted on
        return False

    def delay(
        self, retries_done: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``retries_done + 1``.

        ``Retry-After`` is obeyed (up to a minute); otherwise exponential backoff from
        ``backoff`` with equal jitter (somewhere in the upper half of the ideal delay), capped
        at a minute: the same formula as the server's task retries.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_WAIT_S)
        return equal_jitter_delay(retries_done + 1, self.backoff, cap=MAX_RETRY_WAIT_S, rng=rng)


_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def refused_locally(error: TransportError) -> bool:
    """Whether a connection to this machine was refused: no server listens on that port.

    A refusal from another host may be a server restarting behind a balancer and is worth a
    retry; on loopback it is reported at once.
    """
    host = error.host
    return (host in _LOOPBACK_HOSTS or host.startswith("127.")) and was_refused(error)


def transport_message(error: TransportError, base_url: str) -> str:
    """How both clients word a request that did not reach the server or get an answer."""
    if isinstance(error, TimeoutException):
        return f"the request to {base_url} timed out ({type(error).__name__})"
    if was_refused(error):
        return f"cannot reach the taskqueue server at {base_url}: connection refused"
    return f"cannot reach the taskqueue server at {base_url}: {error}"


def _original(error: TransportError) -> BaseException:
    """The first OS error behind ``error``, else the HTTP library's own, else ``error``."""
    current: BaseException | None = error.__cause__
    while current is not None:
        if isinstance(current, OSError) and os_error_text(current) is not None:
            return current
        current = current.__cause__ or current.__context__
    return error.__cause__ or error


def error_from_transport(error: TransportError, base_url: str) -> TaskQueueError:
    """The exception a failed request becomes: a timeout or a connection error."""
    message = transport_message(error, base_url)
    if isinstance(error, TimeoutException):
        return TaskQueueTimeoutError(message, original_exception=_original(error))
    return TaskQueueConnectionError(message, original_exception=_original(error))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _error_info(body: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"], body
        return str(body.get("message") or body.get("detail") or "request failed"), body
    return "request failed", {}


#: The error each status becomes (404, 429 and 5xx are decided in :func:`error_from_response`).
_BY_STATUS: Final[dict[int, type[APIError]]] = {
    400: ValidationError,
    422: ValidationError,
    401: AuthenticationError,
    403: AuthorizationError,
    409: ConflictError,
    413: PayloadTooLargeError,
}
#: The not-found error of each kind of resource.
_NOT_FOUND: Final[dict[str, type[NotFoundError]]] = {
    "task": TaskNotFoundError,
    "project": ProjectNotFoundError,
}


def _ours(body: Any) -> bool:
    """Whether an error body has the shape every taskqueue error has."""
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


def _not_ours(response: Response) -> str:
    return (
        f"{response.origin} answered {response.status_code} {response.reason_phrase or ''} to "
        f"{response.method} {response.path} without a taskqueue error: it does not look "
        "like a taskqueue server (check the base URL)"
    ).replace("  ", " ")


def error_from_response(response: Response, resource: str | None = None) -> TaskQueueError:
    """The exception an error response becomes."""
    try:
        body: Any = response.json()
    except ValueError:
        body = {"message": response.text[:500]}
    message, data = _error_info(body)
    status = response.status_code
    request_id = response.headers.get("x-request-id")
    args = (message, status, data, request_id)
    if status == 404 and not _ours(body):
        return APIError(_not_ours(response), *args[1:])
    if status == 404:
        return _NOT_FOUND.get(resource or "", NotFoundError)(*args)
    if status == 429:
        return RateLimitError(
            *args, retry_after=parse_retry_after(response.headers.get("retry-after"))
        )
    if status >= 500:
        return ServerError(*args)
    return _BY_STATUS.get(status, APIError)(*args)


def validate_input(model: type[M], data: Mapping[str, Any]) -> dict[str, Any]:
    """Check a request body before sending it; the JSON of the fields given.

    Bad input fails here, with the same field errors the server would give, and costs no call.
    """
    try:
        validated = model.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        details = validation_details(exc)
        where = ".".join(str(p) for p in details[0]["loc"]) or "body"
        raise ValidationError(
            f"{where}: {details[0]['msg']}", None, {"error": {"details": details}}
        ) from None
    dumped: dict[str, Any] = validated.model_dump(mode="json", exclude_unset=True)
    return dumped


def parse_model(model: type[M], data: Any) -> M:
    """Parse an answer into its model (a malformed answer is an :class:`APIError`)."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise APIError(f"unexpected answer from the server: {exc.errors()[0]['msg']}") from exc


#: The headers an API key may travel in.
API_KEY_HEADERS: Final = ("Authorization", "X-API-Key")


def client_headers(
    given: Mapping[str, str] | None, api_key: str | None, api_key_header: str = "Authorization"
) -> dict[str, str]:
    """The headers every request of a client carries.

    The key goes in ``api_key_header``: ``Authorization: Bearer <key>``, or ``X-API-Key: <key>``.
    """
    if api_key_header not in API_KEY_HEADERS:
        raise TaskQueueConfigError(
            f"api_key_header must be 'Authorization' or 'X-API-Key', not {api_key_header!r}"
        )
    sent = {"User-Agent": USER_AGENT, "Accept": "application/json", **(given or {})}
    if api_key:
        if api_key_header == "X-API-Key":
            sent["X-API-Key"] = api_key
        else:
            sent["Authorization"] = f"Bearer {api_key}"
    try:
        encode_headers(sent)
    except ValueError as exc:
        raise TaskQueueConfigError(f"{exc} (headers and the API key must be one line)") from None
    return sent


def filter_params(filters: TaskFilters | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """The query of a task listing, checked before sending.

    A :class:`TaskFilters` (if any), overlaid with the keywords given (those not None).
    """
    values = filters.model_dump(mode="json", exclude_none=True) if filters is not None else {}
    values.update({k: v for k, v in given.items() if v is not None})
    return validate_input(TaskFilters, values)


def parse_answer(model: type[M], content: bytes) -> M:
    """Parse an answer's JSON bytes into its model, in one step (no intermediate dicts).

    Cheaper than ``json.loads`` and :func:`parse_model` by about half; a malformed answer is an
    :class:`APIError`, as there.
    """
    try:
        return model.model_validate_json(content)
    except pydantic.ValidationError as exc:
        raise APIError(f"unexpected answer from the server: {exc.errors()[0]['msg']}") from exc


def drop_unset(values: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments that were given (not :data:`NOT_GIVEN`)."""
    return {k: v for k, v in values.items() if not isinstance(v, NotGiven)}
