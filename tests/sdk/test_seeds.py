"""The seeds' own example code, run against a real server through both clients.

Seed 001 (the SDK's technical specification) gives the client interface, its constructor
parameters in order, ``TaskFilters``, the exception hierarchy in ``taskqueue.exceptions`` and the
two ways to send a key; seed 002 (the implementation plan) gives phase 4's calls
(``list_tasks(TaskFilters(...))``, the sync wrapper taking keywords) and phase 5's bulk
operations (``create_tasks``, ``update_tasks([(task_id, {...}), ...])``) and retry rules; seed
000 gives the basic usage (``async with Client("http://host:port") as client``) and its error
handling (``exc.errors``, ``exc.original_exception``, ``exc.status_code``). The code below
is theirs, with this product's names where a seed names another product's.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from taskqueue import AsyncTaskQueueClient, TaskQueueClient
from taskqueue.client._base import RETRY_STATUSES
from taskqueue.exceptions import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    ProjectNotFoundError,
    RateLimitError,
    TaskNotFoundError,
    TaskQueueError,
    ValidationError,
)
from taskqueue.exceptions import ConnectionError as TQConnectionError
from taskqueue.exceptions import TimeoutError as TQTimeoutError
from taskqueue.models import Project, Task, TaskFilters, TaskPriority, TaskStatus
from tests.conftest import ServerProcess, free_port
from tests.sdk.recorder import Recorder


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- seed 001


def test_seed_001_constructor_takes_its_parameters_in_order(live: ServerProcess) -> None:
    # base_url, timeout, headers, max_connections, max_keepalive_connections, retry_attempts,
    # retry_backoff: ordinary parameters, in this order.
    client = TaskQueueClient(live.url, 30.0, {"X-Team": "data"}, 100, 20, 3, 1.0)
    with client:
        assert (client.base_url, client.timeout) == (live.url, 30.0)
        assert (client.retry.max_retries, client.retry.backoff) == (3, 1.0)
        assert client.get_health().status == "ok"

    async def main() -> float | None:
        async with AsyncTaskQueueClient(live.url, 10.0) as async_client:
            await async_client.get_health()
            return async_client.timeout

    assert asyncio.run(main()) == 10.0


async def seed_001_async_interface(client: AsyncTaskQueueClient) -> None:
    """Every call of seed 001's ``AsyncTaskQueueClient`` interface, in its order."""
    project = await client.create_project(unique("seed-project"), description="seed 001")
    assert isinstance(project, Project)
    task = await client.create_task(unique("seed-task"), "echo seed", str(project.id))
    assert isinstance(task, Task)
    assert (await client.get_task(str(task.id))).id == task.id
    tasks = await client.list_tasks(project_id=str(project.id))
    assert [t.id for t in tasks] == [task.id]
    done = await client.wait_for_completion(str(task.id), timeout=60)
    assert done.status is TaskStatus.COMPLETED
    updated = await client.update_task(str(task.id), description="reviewed")
    assert updated.description == "reviewed"
    parked = await client.create_task(
        unique("seed-parked"), "true", str(project.id), queue="parked"
    )
    assert (await client.cancel_task(str(parked.id))).status is TaskStatus.CANCELLED
    assert await client.delete_task(str(parked.id)) is True
    assert await client.get_project(str(project.id)) == project
    assert project.id in {p.id for p in await client.list_projects()}
    assert (await client.update_project(str(project.id), status="Active")).status == "Active"
    batch = await client.create_tasks(
        [{"name": unique("seed-batch"), "command": "true", "project_id": str(project.id)}]
    )
    assert len(batch) == 1
    await client.wait_for_completion(str(batch[0].id), timeout=60)
    with pytest.raises(ConflictError):  # it still has tasks
        await client.delete_project(str(project.id))
    assert await client.delete_project(str(project.id), cascade=True) is True


def test_seed_001_async_client_interface(live: ServerProcess) -> None:
    async def main() -> None:
        async with AsyncTaskQueueClient(live.url) as client:
            await seed_001_async_interface(client)

    asyncio.run(main())


def test_seed_001_sync_client_interface(live: ServerProcess) -> None:
    # "def __init__(self, **kwargs)": the sync wrapper is made and called with keywords.
    with TaskQueueClient(base_url=live.url, timeout=30.0) as client:
        project = client.create_project(name=unique("seed-sync-project"))
        task = client.create_task(
            name=unique("seed-sync"), command="echo sync", project_id=str(project.id)
        )
        assert client.get_task(task_id=str(task.id)).id == task.id
        assert [t.id for t in client.list_tasks(project_id=str(project.id))] == [task.id]
        assert client.wait_for_completion(task_id=str(task.id), timeout=60).status.value == (
            "Completed"
        )
        assert client.update_task(task_id=str(task.id), description="x").description == "x"
        parked = client.create_task(name=unique("seed-sync-parked"), command="true", queue="parked")
        assert client.cancel_task(task_id=str(parked.id)).status is TaskStatus.CANCELLED
        assert client.delete_task(task_id=str(parked.id)) is True
        assert client.delete_task(task_id=str(parked.id)) is False  # nothing left to delete
        assert client.get_project(project_id=str(project.id)).id == project.id
        assert client.list_projects()
        assert client.update_project(project_id=str(project.id), tags=["seed"]).tags == ["seed"]
        created = client.create_tasks(tasks_data=[{"name": unique("b"), "command": "true"}])
        assert created[0].status is TaskStatus.PENDING
        assert client.delete_project(project_id=str(project.id), cascade=True) is True
        assert client.delete_project(project_id=str(project.id)) is False


def test_seed_001_task_filters(live: ServerProcess) -> None:
    queue = unique("seed-filters")
    with TaskQueueClient(live.url) as client:
        high = client.create_task(unique("f"), "true", queue=queue, priority="High")
        client.create_task(unique("f"), "true", queue=queue, priority="Low")
        filters = TaskFilters(
            status=TaskStatus.PENDING, priority=TaskPriority.HIGH, queue=queue, limit=100, offset=0
        )
        assert [t.id for t in client.list_tasks(filters)] == [high.id]
        assert len(client.list_tasks(TaskFilters(queue=queue), priority=None, limit=1)) == 1


def test_seed_001_exception_hierarchy(live: ServerProcess) -> None:
    for cls in (
        ValidationError,
        AuthenticationError,
        AuthorizationError,
        TaskNotFoundError,
        ProjectNotFoundError,
        APIError,
        TQConnectionError,
        TQTimeoutError,
        RateLimitError,
    ):
        assert issubclass(cls, TaskQueueError)
    error = TaskQueueError("boom", 500, {"detail": "x"})
    assert (error.message, error.status_code, error.response_data) == ("boom", 500, {"detail": "x"})
    assert str(error) == "[500] boom"
    assert str(TaskQueueError("plain")) == "plain"
    with TaskQueueClient(live.url) as client:
        with pytest.raises(TaskNotFoundError) as missing:
            client.get_task(str(uuid.UUID(int=0)))
    assert str(missing.value).startswith(
        "[404] task 00000000-0000-0000-0000-000000000000 not found"
    )


@pytest.mark.parametrize(
    ("options", "header", "value"),
    [
        ({"api_key": "tq_secret"}, "authorization", "Bearer tq_secret"),
        ({"api_key": "tq_secret", "api_key_header": "X-API-Key"}, "x-api-key", "tq_secret"),
    ],
    ids=["bearer", "x-api-key"],
)
def test_seed_001_auth_headers(
    recorder: Recorder, options: dict[str, Any], header: str, value: str
) -> None:
    with TaskQueueClient(recorder.url, **options) as client:
        client.get_health()
    assert recorder.headers()[header] == value

    async def main() -> None:
        async with AsyncTaskQueueClient(recorder.url, **options) as client:
            await client.get_health()

    asyncio.run(main())
    assert recorder.headers()[header] == value


# --------------------------------------------------------------------------- seed 002


def test_seed_002_phase_4_list_tasks_with_filters(live: ServerProcess) -> None:
    queue = unique("seed-002")

    async def main() -> list[Task]:
        async with AsyncTaskQueueClient(live.url) as client:
            project = await client.create_project(unique("seed-002"))
            await client.create_task(unique("p4"), "true", str(project.id), queue=queue)
            return await client.list_tasks(filters=TaskFilters(project_id=project.id))

    assert [t.queue for t in asyncio.run(main())] == [queue]


async def seed_002_phase_5(client: Any, run: Any) -> None:
    """Phase 5.1's bulk operations, through either client (``run`` awaits if needed)."""
    queue = unique("seed-bulk")
    created = await run(
        client.create_tasks(
            [
                {"name": unique("bulk"), "command": "true", "queue": queue},
                {"name": unique("bulk"), "command": "true", "queue": queue},
            ]
        )
    )
    first, second = created
    updated = await run(
        client.update_tasks(
            [(first.id, {"priority": "High"}), (str(second.id), {"description": "bulk"})]
        )
    )
    assert [(t.id, t.priority) for t in updated] == [
        (first.id, TaskPriority.HIGH),
        (second.id, TaskPriority.NORMAL),
    ]
    assert updated[1].description == "bulk"
    await run(client.cancel_task(second.id))
    with pytest.raises(ConflictError) as refused:  # all or none: the first is not changed
        await run(
            client.update_tasks([(first.id, {"priority": "Low"}), (second.id, {"command": "x"})])
        )
    assert [d["loc"] for d in refused.value.details] == [["updates", 1, "changes"]]
    assert refused.value.details[0]["task_id"] == str(second.id)
    assert (await run(client.get_task(first.id))).priority is TaskPriority.HIGH
    with pytest.raises(ValidationError) as bad:  # checked before anything is sent
        await run(client.update_tasks([(first.id, {"priority": "Urgent"})]))
    assert bad.value.status_code is None
    assert bad.value.errors[0]["loc"] == ["updates", 0, "changes", "priority"]


def test_seed_002_phase_5_bulk_operations_sync(live: ServerProcess) -> None:
    async def same(value: Any) -> Any:
        return value

    with TaskQueueClient(live.url) as client:
        asyncio.run(seed_002_phase_5(client, same))


def test_seed_002_phase_5_bulk_operations_async(live: ServerProcess) -> None:
    async def awaited(value: Any) -> Any:
        return await value

    async def main() -> None:
        async with AsyncTaskQueueClient(live.url) as client:
            await seed_002_phase_5(client, awaited)

    asyncio.run(main())


def test_seed_002_phase_5_retry_and_pooling_settings(live: ServerProcess) -> None:
    # RetryConfig: max_attempts=3, backoff_factor=1.0, status_codes=[429, 500, 502, 503, 504];
    # connection pooling: httpx-style limits.
    assert frozenset({429, 500, 502, 503, 504}) == RETRY_STATUSES
    with TaskQueueClient(
        live.url,
        retry_attempts=3,
        retry_backoff=1.0,
        max_connections=10,
        max_keepalive_connections=5,
    ) as client:
        assert client.retry.max_retries == 3
        assert client.get_health().status == "ok"


# --------------------------------------------------------------------------- seed 000


def test_seed_000_basic_usage(live: ServerProcess) -> None:
    async def main() -> str:
        async with AsyncTaskQueueClient(live.url) as client:
            health = await client.get_health()
            assert health.status == "ok"
            task = await client.create_task(
                name=unique("spam-classifier"),
                command="echo classified",
                description="Classify emails",
            )
            result = await client.wait_for_completion(task.id)
            return f"Result: {result.status.value}"

    assert asyncio.run(main()) == "Result: Completed"


def test_seed_000_error_handling(live: ServerProcess) -> None:
    printed: list[str] = []
    taken = unique("seed-taken")

    async def attempt(url: str, call: Any) -> None:
        try:
            async with AsyncTaskQueueClient(url, retry_attempts=0) as client:
                await call(client)
        except ValidationError as exc:
            printed.append(f"Validation failed: {exc.errors}")
        except TQConnectionError as exc:
            printed.append(f"Connection failed: {exc.original_exception!r}")
        except TaskQueueError as exc:
            printed.append(f"API error: {exc.status_code}")

    asyncio.run(attempt(live.url, lambda c: c.create_task(name="", command="true")))
    unreachable = f"http://127.0.0.1:{free_port()}"
    asyncio.run(attempt(unreachable, lambda c: c.create_task(name="x", command="true")))
    asyncio.run(attempt(live.url, lambda c: c.create_project(taken)))
    asyncio.run(attempt(live.url, lambda c: c.create_project(taken)))  # the name is taken
    assert printed[0].startswith("Validation failed: [{'loc': ['name']")
    assert printed[1].startswith("Connection failed: ConnectionRefusedError(")
    assert printed[2:] == ["API error: 409"]
