"""Command output is stored byte for byte, and every reader sees the same text, on each backend.

Output chunks are stored as bytes (BLOB on SQLite, BYTEA on PostgreSQL, whose text columns
cannot hold a NUL byte). The wire carries them as UTF-8 text, decoded the way ``stdout_tail``
is: a NUL byte arrives as ``\\u0000``, a byte that is not UTF-8 as U+FFFD. Each test reads the
output through the logs endpoint, its followed stream, the SDK and the CLI, and reads the
stored bytes straight from the database.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx

from taskqueue.client import TaskQueueClient
from tests.conftest import BIN, ServerProcess, query_db, wait_status

#: Retries in the SDK and the CLI happen at once (none are expected).
QUICK = {"TASKQUEUE_RETRY_BACKOFF": "0.001"}


def run(api: httpx.Client, command: str, **fields: Any) -> dict[str, Any]:
    """Create a task running ``command`` and return it once it has finished."""
    response = api.post("/api/tasks", json={"name": "output", "command": command, **fields})
    assert response.status_code == 201, response.text
    return wait_status(api, response.json()["id"])


def page_text(api: httpx.Client, task_id: str) -> str:
    """The task's stdout as the logs endpoint pages it."""
    response = api.get(f"/api/tasks/{task_id}/logs", params={"stream": "stdout"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["complete"] is True
    return "".join(chunk["data"] for chunk in body["chunks"])


def followed_text(api: httpx.Client, task_id: str) -> str:
    """The task's stdout as the followed NDJSON stream sends it (lines split on \\n only)."""
    with api.stream(
        "GET", f"/api/tasks/{task_id}/logs", params={"follow": "true", "stream": "stdout"}
    ) as response:
        assert response.status_code == 200
        body = response.read()
    *lines, end = [json.loads(line) for line in body.split(b"\n") if line]
    assert end["event"] == "end"
    # Between the chunks, a followed task that was still to start says so in status lines.
    return "".join(line["data"] for line in lines if "event" not in line)


def sdk_texts(server: ServerProcess, task_id: str) -> tuple[str, str]:
    """The task's stdout through the SDK: paged, then followed."""
    with TaskQueueClient(server.url) as client:
        paged = "".join(c.data for c in client.get_logs(task_id, stream="stdout").chunks)
        followed = "".join(c.data for c in client.follow_logs(task_id, stream="stdout"))
    return paged, followed


def cli_bytes(server: ServerProcess, task_id: str, *extra: str) -> bytes:
    """What ``taskqueue tasks logs`` writes to its stdout."""
    result = subprocess.run(
        [str(BIN), "--base-url", server.url, "tasks", "logs", task_id, *extra],
        capture_output=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", **QUICK},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def stored(server: ServerProcess, task_id: str) -> bytes:
    """The task's stored stdout chunks, joined, straight from the database."""
    rows = query_db(
        server.db,
        "SELECT data FROM output_chunks"
        f" WHERE task_id = '{task_id}' AND stream = 'stdout' ORDER BY seq",
    )
    assert all(isinstance(row[0], bytes) for row in rows), rows
    return b"".join(bytes(row[0]) for row in rows)  # type: ignore[arg-type]


def assert_every_reader_sees(
    api: httpx.Client, server: ServerProcess, task_id: str, text: str
) -> None:
    """The logs page, the followed stream, the SDK (both ways) and the CLI all show ``text``."""
    assert page_text(api, task_id) == text
    assert followed_text(api, task_id) == text
    assert sdk_texts(server, task_id) == (text, text)
    assert cli_bytes(server, task_id).decode() == text
    assert cli_bytes(server, task_id, "--follow").decode() == text


def test_output_with_a_nul_byte_is_kept(shared: httpx.Client, live: ServerProcess) -> None:
    task = run(shared, "printf 'a\\000b'; echo done")
    assert task["status"] == "Completed", task
    assert task["result"]["stdout_tail"] == "a\x00bdone\n"
    assert stored(live, task["id"]) == b"a\x00bdone\n"
    assert_every_reader_sees(shared, live, task["id"], "a\x00bdone\n")


def test_bytes_that_are_not_utf8_are_stored_as_they_came(
    shared: httpx.Client, live: ServerProcess
) -> None:
    task = run(shared, "printf 'x\\377\\376y\\n'")
    assert task["status"] == "Completed", task
    assert stored(live, task["id"]) == b"x\xff\xfey\n"
    # On the wire, as in stdout_tail, each byte that is not UTF-8 reads as U+FFFD.
    assert task["result"]["stdout_tail"] == "x\ufffd\ufffdy\n"
    assert_every_reader_sees(shared, live, task["id"], "x\ufffd\ufffdy\n")


def test_a_character_split_between_writes_arrives_whole(
    shared: httpx.Client, live: ServerProcess
) -> None:
    # "✓" is E2 9C 93: its first two bytes are written, then the last one after a pause long
    # enough for the first write to be read (and flushed) on its own.
    task = run(shared, "printf 'ok \\342\\234'; sleep 0.3; printf '\\223\\n'")
    assert task["status"] == "Completed", task
    assert stored(live, task["id"]) == "ok ✓\n".encode()
    assert_every_reader_sees(shared, live, task["id"], "ok ✓\n")


def test_line_separators_in_output_do_not_split_followed_lines(
    shared: httpx.Client, live: ServerProcess
) -> None:
    # U+2028, U+2029 and U+0085 end a line for str.splitlines, but not for NDJSON.
    task = run(shared, "printf 'a\\342\\200\\250b\\342\\200\\251c\\302\\205d\\n'")
    assert task["status"] == "Completed", task
    assert_every_reader_sees(shared, live, task["id"], "a\u2028b\u2029c\u0085d\n")
