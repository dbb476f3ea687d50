"""Batch creation: a small fetch -> transform -> load pipeline made in one request.

Items of a batch may carry a ``ref``; later items name earlier refs in ``dependencies``, and a
task runs only once everything it depends on has completed. Run it against a server::

    TASKQUEUE_URL=http://localhost:8080 python examples/batch.py
"""

from __future__ import annotations

import asyncio
import os
import uuid

from taskqueue import AsyncTaskQueueClient, TaskStatus

BASE_URL = os.environ.get("TASKQUEUE_URL", "http://localhost:8080")


async def main() -> int:
    """Create the pipeline, follow the last step's output, and print a summary."""
    async with AsyncTaskQueueClient(BASE_URL) as client:
        project = await client.create_project(f"pipeline-{uuid.uuid4().hex[:8]}")
        print(f"Created project {project.name} ({project.id})")

        # All or none: if one item is invalid, no task is created.
        tasks = await client.create_tasks(
            [
                {
                    "ref": "fetch",
                    "name": "fetch",
                    "command": "echo 'fetched 3 rows'",
                    "project_id": str(project.id),
                },
                {
                    "ref": "transform",
                    "name": "transform",
                    "command": "echo 'transformed 3 rows'",
                    "project_id": str(project.id),
                    "dependencies": ["fetch"],
                },
                {
                    "name": "load",
                    "command": "echo 'loading 3 rows'; echo 'loaded 3 rows'",
                    "project_id": str(project.id),
                    "dependencies": ["transform"],
                    "priority": "High",
                },
            ]
        )
        print(f"Created {len(tasks)} tasks in one batch")
        # Tasks come back in the order given; refs became the ids of the tasks they name.
        names = {task.id: task.name for task in tasks}
        for task in tasks:
            after = ", ".join(names[dep] for dep in task.dependencies) or "nothing"
            print(f"  {task.name} ({task.id}) runs after {after}")
        load = tasks[-1]

        # Stream the last step's output as it is written; this ends when the task ends.
        print(f"Following the output of {load.name}:")
        async for chunk in client.follow_logs(load.id):
            for line in chunk.data.splitlines():
                print(f"  [{chunk.stream}] {line}")

        finished = await asyncio.gather(
            *(client.wait_for_completion(task.id, timeout=120) for task in tasks)
        )

    print()
    print(f"{'TASK':<10} {'STATUS':<10} {'EXIT':>4} {'MS':>6}")
    for task in finished:
        result = task.result
        exit_code = "-" if result is None or result.exit_code is None else result.exit_code
        duration = "-" if result is None or result.duration_ms is None else result.duration_ms
        print(f"{task.name:<10} {task.status.value:<10} {exit_code:>4} {duration:>6}")

    completed = sum(task.status is TaskStatus.COMPLETED for task in finished)
    print(f"{completed}/{len(finished)} tasks completed")
    return 0 if completed == len(finished) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
