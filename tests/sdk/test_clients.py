"""Every SDK method, through both clients, against a real server process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import taskqueue
from taskqueue import (
    AsyncTaskQueueClient,
    ConflictError,
    ProjectNotFoundError,
    TaskNotFoundError,
    TaskPriority,
    TaskQueueClient,
    TaskQueueConnectionError,
    TaskQueueTimeoutError,
    TaskStatus,
    ValidationError,
)
from taskqueue.models import Attempt, LogPage, Project, Task
from tests.conftest import ServerProcess, free_port
from tests.sdk.blocking import Blocking

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, live: ServerProcess) -> Iterator[Any]:
    if request.param == "sync":
        with TaskQueueClient(live.url, retry_attempts=0) as sync_client:
            yield sync_client
        return
    loop = asyncio.new_event_loop()
    async_client = AsyncTaskQueueClient(live.url, retry_attempts=0)
    try:
        yield Blocking(async_client, loop)
    finally:
        loop.run_until_complete(async_client.close())
        loop.close()


def unique(prefix: str) -> str:
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- parity


def test_sync_and_async_clients_have_the_same_methods_and_signatures() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        members = {}
        for klass in reversed(cls.__mro__[:-1]):  # the core, then the client; not object
            members.update(vars(klass))
        return {
            name: inspect.signature(member)
            for name, member in members.items()
            if callable(member)
            and (
                not name.startswith("_")
                or name in ("__init__", "__aenter__", "__aexit__", "__enter__", "__exit__")
            )
        }

    sync_methods, async_methods = public(TaskQueueClient), public(AsyncTaskQueueClient)
    renames = {"__aenter__": "__enter__", "__aexit__": "__exit__"}
    assert {renames.get(n, n) for n in async_methods} == set(sync_methods)
    for name, signature in async_methods.items():
        other = sync_methods[renames.get(name, name)]
        assert list(signature.parameters) == list(other.parameters), name
        for param, value in signature.parameters.items():
            assert value.default == other.parameters[param].default, (name, param)
            assert value.kind == other.parameters[param].kind, (name, param)
        for method in (
            getattr(AsyncTaskQueueClient, name),
            getattr(TaskQueueClient, renames.get(name, name)),
        ):
            assert method.__doc__, f"{name} has no docstring"


def test_the_sdk_is_exported_from_the_package() -> None:
    assert taskqueue.TaskQueueClient is TaskQueueClient
    assert taskqueue.AsyncTaskQueueClient is AsyncTaskQueueClient


# --------------------------------------------------------------------------- methods


def test_health(client: Any) -> None:
    health = client.get_health()
    assert health.status == "ok"
    assert health.database == "sqlite"
    assert health.version == taskqueue.__version__


def test_project_lifecycle(client: Any) -> None:
    name = unique("etl")
    project = client.create_project(
        name, description="nightly loads", tags=["a", "b"], metadata={"team": "data"}
    )
    assert isinstance(project, Project)
    assert (project.name, project.tags, project.metadata) == (name, ["a", "b"], {"team": "data"})
    assert client.get_project(project.id) == project
    assert project.id in {p.id for p in client.list_projects(limit=1000)}
    assert project.id in {p.id for p in client.iter_projects(page_size=2)}
    renamed = client.update_project(project.id, description="changed", status="Active")
    assert (renamed.description, renamed.status) == ("changed", "Active")
    with pytest.raises(ConflictError) as duplicate:
        client.create_project(name)
    assert duplicate.value.status_code == 409
    assert client.delete_project(project.id) is True
    with pytest.raises(ProjectNotFoundError) as missing:
        client.get_project(project.id)
    assert missing.value.request_id


def test_task_lifecycle_and_output(client: Any) -> None:
    project = client.create_project(unique("p"))
    task = client.create_task(
        unique("hello"),
        "echo out; echo err >&2",
        project.id,
        priority="High",
        timeout=60,
        retry_attempts=2,
        environment={"GREETING": "hi"},
        metadata={"k": 1},
    )
    assert isinstance(task, Task)
    assert task.priority is TaskPriority.HIGH
    assert task.timeout == 60
    done = client.wait_for_completion(task.id, timeout=30)
    assert done.status is TaskStatus.COMPLETED
    assert done.result is not None
    assert done.result.exit_code == 0
    assert client.get_task(task.id).status is TaskStatus.COMPLETED
    page = client.get_logs(task.id)
    assert isinstance(page, LogPage)
    assert [(c.stream, c.data) for c in page.chunks] == [("stdout", "out\n"), ("stderr", "err\n")]
    assert page.complete
    assert client.get_logs(task.id, stream="stderr").chunks[0].data == "err\n"
    assert [c.data for c in client.follow_logs(task.id)] == ["out\n", "err\n"]
    attempts = client.get_attempts(task.id)
    assert [a.number for a in attempts] == [1]
    assert isinstance(attempts[0], Attempt)
    listed = client.list_tasks(project_id=project.id)
    assert [t.id for t in listed] == [task.id]
    assert [t.id for t in client.iter_tasks(project_id=project.id, page_size=1)] == [task.id]
    with pytest.raises(ConflictError):
        client.cancel_task(task.id)
    assert client.delete_project(project.id, cascade=True) is True
    with pytest.raises(TaskNotFoundError):
        client.get_task(task.id)


def test_update_cancel_retry_delete(client: Any) -> None:
    parked = client.create_task(unique("parked"), "true", queue="parked")
    updated = client.update_task(
        parked.id, command="echo changed", priority="Low", description="later"
    )
    assert (updated.command, updated.priority, updated.description) == (
        "echo changed",
        TaskPriority.LOW,
        "later",
    )
    cancelled = client.cancel_task(parked.id)
    assert cancelled.status is TaskStatus.CANCELLED
    retried = client.retry_task(parked.id)
    assert retried.status is TaskStatus.PENDING
    assert client.delete_task(parked.id) is True
    assert client.delete_task(parked.id) is False  # nothing left to delete
    with pytest.raises(TaskNotFoundError):
        client.get_task(parked.id)


def test_failures_retries_and_filters(client: Any) -> None:
    queue = unique("q")
    failing = client.create_task(unique("fail"), "exit 3", retry_attempts=1, retry_delay=0)
    done = client.wait_for_completion(failing.id, timeout=30)
    assert done.status is TaskStatus.FAILED
    assert done.result is not None
    assert done.result.exit_code == 3
    assert [a.exit_code for a in client.get_attempts(failing.id)] == [3, 3]
    assert failing.id in {t.id for t in client.iter_tasks(status="Failed")}
    parked = client.create_task(unique("parked"), "true", queue=queue)
    assert [t.id for t in client.list_tasks(queue=queue, status=TaskStatus.PENDING)] == [parked.id]
    client.cancel_task(parked.id)


def test_create_tasks_with_dependencies(client: Any) -> None:
    tasks = client.create_tasks(
        [
            {"ref": "a", "name": unique("a"), "command": "true"},
            {"ref": "b", "name": unique("b"), "command": "true", "dependencies": ["a"]},
            {"name": unique("c"), "command": "true", "dependencies": [{"ref": "b"}]},
        ]
    )
    assert len(tasks) == 3
    assert tasks[2].dependencies == [tasks[1].id]
    finished = [client.wait_for_completion(t.id, timeout=30) for t in tasks]
    assert all(t.status is TaskStatus.COMPLETED for t in finished)
    assert finished[1].started_at is not None
    assert finished[0].finished_at is not None
    assert finished[1].started_at >= finished[0].finished_at


def test_input_and_output_round_trip(client: Any, tmp_path: Path) -> None:
    task = client.create_task(
        unique("io"),
        'cat > /dev/null; cp "$TASKQUEUE_INPUT" "$TASKQUEUE_OUTPUT"',
        input={"rows": [1, 2, 3]},
    )
    done = client.wait_for_completion(task.id, timeout=30)
    assert done.result is not None
    assert done.result.output == {"rows": [1, 2, 3]}


def test_wait_times_out_with_the_task_attached(client: Any) -> None:
    parked = client.create_task(unique("slow"), "true", queue="parked")
    with pytest.raises(TaskQueueTimeoutError) as waited:
        client.wait_for_completion(parked.id, timeout=0.3)
    assert waited.value.response_data["status"] == "Pending"
    client.cancel_task(parked.id)


def test_bad_input_fails_before_any_request(client: Any) -> None:
    with pytest.raises(ValidationError) as bad:
        client.create_task("x", "true", priority="Urgent")
    assert bad.value.status_code is None
    assert bad.value.details[0]["loc"] == ["priority"]
    with pytest.raises(ValidationError):
        client.update_task(MISSING, nonsense=1)
    with pytest.raises(ValidationError):
        client.list_tasks(limit=0)


def test_server_side_refusals_carry_the_fields(client: Any) -> None:
    # Well formed, but the dependency is not there: a conflict with what is stored (409).
    with pytest.raises(ConflictError) as bad:
        client.create_task("x", "true", dependencies=[MISSING])
    assert bad.value.status_code == 409
    assert bad.value.details[0]["loc"] == ["dependencies", 0]
    assert "does not exist" in str(bad.value)


def test_unreachable_server_is_a_connection_error() -> None:
    with TaskQueueClient(f"http://127.0.0.1:{free_port()}", retry_attempts=0) as client:
        with pytest.raises(TaskQueueConnectionError) as failed:
            client.get_health()
    assert "cannot reach" in str(failed.value)
    assert not isinstance(failed.value, ConnectionError)  # the builtin is not shadowed


def test_with_options_shares_the_pool(live: ServerProcess) -> None:
    with TaskQueueClient(live.url) as client:
        quick = client.with_options(timeout=5, retry_attempts=0)
        assert quick._http is client._http
        assert (quick.timeout, quick.retry.max_retries) == (5, 0)
        assert (client.timeout, client.retry.max_retries) == (30.0, 3)
        assert quick.get_health().status == "ok"


# --------------------------------------------------------------------------- concurrency


def test_sync_client_inside_a_running_event_loop(live: ServerProcess) -> None:
    async def main() -> str:
        with TaskQueueClient(live.url) as client:  # as in a notebook cell
            task = client.create_task(unique("in-loop"), "true")
            return client.wait_for_completion(task.id, timeout=30).status.value

    assert asyncio.run(main()) == "Completed"


def test_sync_client_from_sixteen_threads_at_once(live: ServerProcess) -> None:
    with TaskQueueClient(live.url) as client:

        def work(i: int) -> str:
            task = client.create_task(unique(f"thread{i}"), f"echo {i}")
            done = client.wait_for_completion(task.id, timeout=60)
            return client.get_logs(done.id).chunks[0].data

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            outputs = list(pool.map(work, range(48)))
    assert outputs == [f"{i}\n" for i in range(48)]


def test_async_client_with_many_coroutines(live: ServerProcess) -> None:
    async def main() -> list[str]:
        async with AsyncTaskQueueClient(live.url) as client:
            created = await asyncio.gather(
                *[client.create_task(unique(f"co{i}"), "true") for i in range(50)]
            )
            done = await asyncio.gather(
                *[client.wait_for_completion(t.id, timeout=60) for t in created]
            )
            return [t.status.value for t in done]

    assert asyncio.run(main()) == ["Completed"] * 50


def test_transport_can_be_injected(live: ServerProcess) -> None:
    seen: list[str] = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.url.path)
            return super().handle_request(request)

    with TaskQueueClient(live.url, transport=Recording()) as client:
        client.get_health()
    assert seen == ["/api/health"]


def test_http2_without_h2_is_a_clear_configuration_error() -> None:
    import importlib.util

    if importlib.util.find_spec("h2") is not None:  # pragma: no cover - h2 is not a dependency
        with TaskQueueClient("http://127.0.0.1:1", http2=True) as client:
            assert client._http is not None
        return
    with pytest.raises(taskqueue.TaskQueueConfigError, match="needs the h2 package"):
        TaskQueueClient("http://127.0.0.1:1", http2=True)


def test_models_dump_exactly_the_json_the_api_sends(live: ServerProcess) -> None:
    with TaskQueueClient(live.url) as client:
        task = client.create_task(
            unique("json"),
            "echo hi",
            input={"a": [1, 2.5, None]},
            metadata={"k": "v"},
            environment={"A": "1"},
        )
        client.wait_for_completion(task.id, timeout=30)
        project = client.create_project(unique("json-project"), tags=["x"])
    raw_task = httpx.get(f"{live.url}/api/tasks/{task.id}", timeout=10).json()
    raw_project = httpx.get(f"{live.url}/api/projects/{project.id}", timeout=10).json()
    assert Task.model_validate(raw_task).model_dump(mode="json") == raw_task
    assert Project.model_validate(raw_project).model_dump(mode="json") == raw_project
    assert raw_task["created_at"].endswith("Z")
