"""Error handling: every failure is a ``TaskQueueError`` subclass you can catch by kind.

Run it against a server::

    TASKQUEUE_URL=http://localhost:8080 python examples/error_handling.py
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

from taskqueue import (
    AsyncTaskQueueClient,
    ConflictError,
    TaskNotFoundError,
    TaskQueueConnectionError,
    TaskQueueError,
    TaskQueueTimeoutError,
    ValidationError,
)

BASE_URL = os.environ.get("TASKQUEUE_URL", "http://localhost:8080")


class UnexpectedSuccess(Exception):
    """A call that should have failed did not."""


async def validation_errors(client: AsyncTaskQueueClient) -> None:
    """Bad input: caught before sending when the SDK can tell, else reported by the server."""
    try:
        await client.create_task("bad-priority", "true", priority="Urgent")
    except ValidationError as exc:
        # Checked locally: no request was sent, so there is no status code.
        print(f"ValidationError (status {exc.status_code}): {exc.message}")
        for detail in exc.details:
            print(f"  field {'.'.join(map(str, detail['loc']))}: {detail['msg']}")
    else:
        raise UnexpectedSuccess("an unknown priority was accepted")

    try:
        await client.create_tasks([{"name": "orphan", "command": "true", "dependencies": ["x"]}])
    except ConflictError as exc:
        # Well formed, but no earlier item has ref "x": only the server can tell (409).
        print(f"ConflictError (status {exc.status_code}): {exc.message}")
        for detail in exc.details:
            print(f"  field {'.'.join(map(str, detail['loc']))}: {detail['msg']}")
    else:
        raise UnexpectedSuccess("a dependency on an unknown ref was accepted")


async def not_found(client: AsyncTaskQueueClient) -> None:
    """A task id that does not exist."""
    missing = uuid.uuid4()
    try:
        await client.get_task(missing)
    except TaskNotFoundError as exc:
        print(f"TaskNotFoundError (status {exc.status_code}): {exc.message}")
    else:
        raise UnexpectedSuccess(f"task {missing} was found")


async def conflicts(client: AsyncTaskQueueClient) -> None:
    """Requests that clash with the current state: a taken name, cancelling a finished task."""
    name = f"errors-{uuid.uuid4().hex[:8]}"
    project = await client.create_project(name)
    print(f"Created project {name} ({project.id})")
    try:
        await client.create_project(name)
    except ConflictError as exc:
        print(f"ConflictError (status {exc.status_code}): {exc.message}")
    else:
        raise UnexpectedSuccess("a second project took the same name")

    task = await client.create_task("quick", "true", project.id)
    done = await client.wait_for_completion(task.id, timeout=60)
    print(f"Task {done.name} ({done.id}) is {done.status.value}")
    try:
        await client.cancel_task(task.id)
    except ConflictError as exc:
        print(f"ConflictError (status {exc.status_code}): {exc.message}")
    else:
        raise UnexpectedSuccess("a finished task was cancelled")


async def unreachable_server() -> None:
    """A server that is not there: no retries, so this fails at once."""
    with socket.socket() as sock:  # ask the OS for a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AsyncTaskQueueClient(f"http://127.0.0.1:{port}", retry_attempts=0) as client:
        try:
            await client.get_health()
        except TaskQueueConnectionError as exc:
            print(f"TaskQueueConnectionError: {exc}")
        else:
            raise UnexpectedSuccess(f"something answered on port {port}")


async def wait_timeout(client: AsyncTaskQueueClient) -> None:
    """Waiting longer than allowed for a task no worker will pick up."""
    # No worker serves the "parked" queue, so the task stays Pending.
    task = await client.create_task("parked", "echo never", queue="parked")
    print(f"Created task {task.name} ({task.id}) in queue {task.queue}")
    try:
        await client.wait_for_completion(task.id, timeout=0.5)
    except TaskQueueTimeoutError as exc:
        print(f"TaskQueueTimeoutError: {exc.message}")
        print(f"  status when the wait ended: {exc.response_data['status']}")
    else:
        raise UnexpectedSuccess("the parked task finished")
    cancelled = await client.cancel_task(task.id)
    print(f"Task {cancelled.name} is now {cancelled.status.value}")


async def main() -> int:
    """Provoke and catch each kind of error; 0 when every one was raised as expected."""
    try:
        async with AsyncTaskQueueClient(BASE_URL) as client:
            await validation_errors(client)
            await not_found(client)
            await conflicts(client)
            await wait_timeout(client)
        await unreachable_server()
    except UnexpectedSuccess as exc:
        print(f"Unexpected: {exc}")
        return 1
    except TaskQueueError as exc:  # the base of every taskqueue error
        print(f"Unexpected {type(exc).__name__}: {exc}")
        return 1
    print("Every error was caught.")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
