"""Helpers of the CLI tests: run the CLI in and out of process, read its output."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result

from taskqueue.cli import main
from tests.conftest import BIN

MISSING = "00000000-0000-0000-0000-000000000000"

#: Any ANSI escape sequence (colour, cursor movement).
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: The client's retry backoff in every CLI run of the tests: retries still happen, at once.
QUICK_RETRIES = {"TASKQUEUE_RETRY_BACKOFF": "0.001"}

#: Variables of the outer environment that would change which server or file the CLI uses.
LEAKY = (
    "TASKQUEUE_URL",
    "TASKQUEUE_API_KEY",
    "TASKQUEUE_PROFILE",
    "TASKQUEUE_PUBLIC_KEY",
    "TASKQUEUE_SECRET_KEY",
    "TASKQUEUE_CA_BUNDLE",
    "TASKQUEUE_ACCOUNT",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "COLUMNS",
)


def cli(
    url: str | None,
    *args: str,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Result:
    """The CLI in process (Click's runner), pointed at ``url`` unless it is None; retries
    do not wait."""
    runner = CliRunner()
    full = ["--base-url", url, *args] if url is not None else list(args)
    return runner.invoke(
        main,
        full,
        input=input,
        env={"NO_COLOR": "1", "COLUMNS": "200", **QUICK_RETRIES, **(env or {})},
        prog_name="taskqueue",
    )


def sub_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: this one (already isolated), without colour, and
    with retries that do not wait."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    env.update(QUICK_RETRIES)
    env.update(extra or {})
    return env


def tq(
    *args: str,
    url: str | None = None,
    timeout: float = 60,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real ``taskqueue`` process."""
    full = [str(BIN), *(["--base-url", url] if url is not None else []), *args]
    return subprocess.run(
        full,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        env=env if env is not None else sub_env(),
        cwd=cwd,
        check=False,
    )


def as_json(result: Result | subprocess.CompletedProcess[str]) -> Any:
    """The JSON a command printed on stdout."""
    return json.loads(result.stdout)


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that state an error (Click's usage lines and hints left out)."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(("Usage:", "Try '", "hint:"))
    ]


def assert_one_clear_error(stderr: str, *expected: str) -> str:
    """Stderr holds exactly one error line, with each expected text in it, and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    line = lines[0]
    assert line.startswith(("error: ", "Error: ")), line
    for text in expected:
        assert text in line, f"{text!r} not in {line!r}"
    return line


def task_count(api: httpx.Client) -> int:
    """How many tasks the server holds."""
    response = api.get("/api/tasks", params={"limit": 1})
    response.raise_for_status()
    return int(response.json()["total"])


def project_count(api: httpx.Client) -> int:
    """How many projects the server holds."""
    response = api.get("/api/projects", params={"limit": 1})
    response.raise_for_status()
    return int(response.json()["total"])


def get(api: httpx.Client, path: str, params: Mapping[str, Any] | None = None) -> Any:
    """``GET path`` on the API, as JSON (asserting 200)."""
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a Rich table printed without colour, as stripped cells."""
    rows = []
    for line in text.splitlines():
        if "│" in line:
            rows.append([cell.strip() for cell in line.split("│")])
    return rows


def header(text: str) -> list[str]:
    """The header cells of a Rich table."""
    for line in text.splitlines():
        if "┃" in line:
            return [cell.strip() for cell in line.split("┃")]
    raise AssertionError(f"no table header in:\n{text}")


def names_in(text: str, column: str = "NAME") -> list[str]:
    """The values of one column of a table, in order."""
    index = header(text).index(column)
    return [row[index] for row in table_rows(text)]


def make_task(api: httpx.Client, name: str, command: str = "true", **fields: Any) -> dict[str, Any]:
    """A task created through the API (``queue`` defaults to one no worker serves: it stays
    Pending); the API's JSON of it."""
    body = {"name": name, "command": command, "queue": "parked", **fields}
    response = api.post("/api/tasks", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_project(api: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    """A project created through the API; the API's JSON of it."""
    response = api.post("/api/projects", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def answer_on_a_terminal(args: Sequence[str], answer: str) -> tuple[int, str, str]:
    """Run the CLI with stdin on a pseudo-terminal and type ``answer`` into it.

    The exit code, stdout and stderr.
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(BIN), *args],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=sub_env(),
    )
    os.close(slave)
    try:
        os.write(master, answer.encode())
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return process.returncode, out, err


def on_a_pty(
    args: Sequence[str], env: Mapping[str, str], stream: str = "stdout", timeout: float = 60
) -> tuple[int, str, str]:
    """Run the CLI with ``stream`` (``stdout`` or ``stderr``) on a pseudo-terminal.

    Its exit code, the other stream (a pipe), and what the terminal showed.
    """
    master, slave = pty.openpty()
    on_pty = {"stdout": slave} if stream == "stdout" else {"stderr": slave}
    piped = {"stderr": subprocess.PIPE} if stream == "stdout" else {"stdout": subprocess.PIPE}
    process = subprocess.Popen(
        [str(BIN), *args],
        env=dict(env),
        text=True,
        **on_pty,
        **piped,  # type: ignore[call-overload]
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(5)
        os.close(master)
    other = err if stream == "stdout" else out
    return process.returncode, other or "", b"".join(chunks).decode("utf-8", "replace")
