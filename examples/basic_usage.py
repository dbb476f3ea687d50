"""Basic usage: a project, a task, its result and its output, with both clients.

Start a server first (``taskqueue server``), then run::

    TASKQUEUE_URL=http://localhost:8080 python examples/basic_usage.py
"""

from __future__ import annotations

import asyncio
import os
import uuid

from taskqueue import AsyncTaskQueueClient, Task, TaskPriority, TaskQueueClient, TaskStatus

BASE_URL = os.environ.get("TASKQUEUE_URL", "http://localhost:8080")


async def run_async() -> Task:
    """Create a project and a task with the async client, wait for it and read its output."""
    async with AsyncTaskQueueClient(BASE_URL) as client:
        health = await client.get_health()
        print(f"Server {BASE_URL} is {health.status} (version {health.version})")

        # Project names are unique, so give this run its own.
        project = await client.create_project(
            f"basic-usage-{uuid.uuid4().hex[:8]}", description="Made by examples/basic_usage.py"
        )
        print(f"Created project {project.name} ({project.id})")

        task = await client.create_task(
            "greet",
            "echo 'Hello from taskqueue'",
            project.id,
            priority=TaskPriority.HIGH,
            timeout=60,  # seconds the command may run
            retry_attempts=2,  # tries after the first one fails
            retry_delay=1,
        )
        print(f"Created task {task.name} ({task.id}): {task.status.value}")

        done = await client.wait_for_completion(task.id, timeout=60)
        exit_code = done.result.exit_code if done.result else None
        print(f"Task {done.name} finished: {done.status.value}, exit code {exit_code}")

        logs = await client.get_logs(task.id)
        output = "".join(chunk.data for chunk in logs.chunks if chunk.stream == "stdout")
        print(f"Output: {output.strip()}")
        return done


def run_sync(project_id: str) -> Task:
    """Do the same with the blocking client, then list the project's tasks."""
    with TaskQueueClient(BASE_URL) as client:
        task = client.create_task("count", "echo one; echo two", project_id)
        done = client.wait_for_completion(task.id, timeout=60)
        print(f"Sync task {done.name} finished: {done.status.value}")

        print(f"Tasks of project {project_id}:")
        for item in client.iter_tasks(project_id=project_id):
            exit_code = item.result.exit_code if item.result else None
            print(f"  {item.name:<8} {item.priority.value:<8} {item.status.value:<10} {exit_code}")
        return done


def main() -> int:
    """Run both halves; 0 when both tasks completed."""
    first = asyncio.run(run_async())
    second = run_sync(str(first.project_id))
    if first.status is not TaskStatus.COMPLETED or second.status is not TaskStatus.COMPLETED:
        print("A task did not complete.")
        return 1
    print("Done.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
