"""What a command reads of its dependencies: ``$TASKQUEUE_DEPENDENCIES``, on a real server.

A diamond of four tasks made in one batch: the last reads both middle ones' outputs, by id
and by the refs it named them with, and its own output says what it read.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ServerProcess, wait_status

#: Writes {"name": <its name>, "sum": <sum of its dependencies' "sum" outputs> + 1}.
SUM = (
    "import json, os\n"
    "deps = json.load(open(os.environ['TASKQUEUE_DEPENDENCIES']))\n"
    "by_id = {k: v for k, v in deps.items() if v['id'] == k}\n"
    "total = sum(v['output']['sum'] for v in by_id.values()) + 1\n"
    "json.dump({'sum': total, 'seen': deps}, open(os.environ['TASKQUEUE_OUTPUT'], 'w'))\n"
)


def _item(name: str, *deps: str) -> dict[str, Any]:
    return {
        "name": name,
        "ref": name,
        "language": "python3",
        "code": SUM,
        "dependencies": list(deps),
    }


def test_a_diamond_reads_what_its_dependencies_produced(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as api:
        made = api.post(
            "/api/tasks/batch",
            json={
                "tasks": [
                    _item("top"),
                    _item("left", "top"),
                    _item("right", "top"),
                    _item("bottom", "left", {"ref": "right"}),
                ]
            },
        )
        assert made.status_code == 201, made.text
        top, left, right, bottom = (t["id"] for t in made.json()["tasks"])
        done = wait_status(api, bottom)
        assert done["status"] == "Completed", done
        output = done["result"]["output"]
        assert output["sum"] == 5  # top 1, left 2, right 2, bottom 2 + 2 + 1
        seen = output["seen"]
        assert set(seen) == {left, right, "left", "right"}
        assert seen["left"] == seen[left]
        assert seen[left]["name"] == "left"
        assert (seen[left]["status"], seen[left]["ref"]) == ("Completed", "left")
        assert seen[right]["output"]["sum"] == 2
        assert seen[right]["output"]["seen"][top]["output"]["sum"] == 1
        first = wait_status(api, top)["result"]["output"]
        assert first == {"sum": 1, "seen": {}}  # no dependencies: an empty map


def test_a_dependency_named_by_id_is_keyed_by_id_only(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as api:
        write = 'echo \'{"answer": 42}\' > "$TASKQUEUE_OUTPUT"'
        first = api.post("/api/tasks", json={"name": "first", "command": write}).json()
        after = api.post(
            "/api/tasks",
            json={
                "name": "after",
                "command": 'cp "$TASKQUEUE_DEPENDENCIES" "$TASKQUEUE_OUTPUT"',
                "dependencies": [first["id"]],
            },
        ).json()
        done = wait_status(api, after["id"])
        assert done["status"] == "Completed", done
        assert done["result"]["output"] == {
            first["id"]: {
                "id": first["id"],
                "ref": None,
                "name": "first",
                "status": "Completed",
                "output": {"answer": 42},
            }
        }
