"""What a command can see of the server that runs it: none of its secrets.

A command runs the probe an attacker would: it reads the environment and command line of its
parent and of every process above it, then lists and reads the database file. The server holds
an API key in its environment and its database URL (with a password) in a file given by
``--database-url-file``; neither may appear in what the probe prints, and the database file
must be unreadable.

* As an unprivileged server user (``nobody``), with commands running as that same user: the
  server is non-dumpable, so its ``/proc/PID/environ`` (and memory) is closed to them. A child
  of the command can still read its own siblings' environment, as the orphan sweep needs.
* As root, with ``--run-as nobody``: the commands run as ``nobody``, cannot read root's
  processes, and cannot open the database file, which the server made ``0600``.

How an unprivileged server is started from a root test run is in ``tests/unprivileged.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from tests.conftest import BIN, PgDatabases, ServerProcess, free_port, wait_status, wait_until
from tests.unprivileged import NOBODY, as_nobody, give_to_nobody

API_KEY = "tq-api-key-Zq81xWv2"
PASSWORD = "pw-S3cret-Hx72@PW"
CANARY = "canary-in-the-database-Jr41"


def probe(db_file: str | None, url_file: str) -> str:
    """The command: everything it can read of its ancestors, the database and its URL.

    It walks up from its parent to this test's own process, which started the server. NULs
    are printed as other characters: what is read must reach the log on every backend.
    """
    files = [url_file] + ([db_file, f"{db_file}-wal"] if db_file else [])
    return "\n".join(
        [
            "p=$PPID",
            'while [ "$p" -gt 1 ]; do',
            '  echo "== process $p"',
            "  tr '\\0' '\\n' < /proc/$p/environ",
            "  cat /proc/$p/environ | tr '\\0' '|'; echo",
            "  tr '\\0' ' ' < /proc/$p/cmdline; echo",
            "  head -c 4096 /proc/$p/mem | od -An -c | head -n 4",
            f'  [ "$p" = {os.getpid()} ] && break',
            "  p=$(awk '/^PPid:/ {print $2}' /proc/$p/status)",
            "done",
            # cat's refusal goes down the same pipe as its output, so the line stays whole.
            *(f"ls -l {f}; cat {f} 2>&1 | tr '\\0' '.'; echo" for f in files),
            'echo "uid=$(id -u)"',
            # A command's own children are ordinary processes: the sweep can read them.
            "sleep 30 & sibling=$!",
            "until [ \"$(tr '\\0' ' ' < /proc/$sibling/cmdline)\" = 'sleep 30 ' ]; do :; done",
            "tr '\\0' '\\n' < /proc/$sibling/environ | grep -c '^TASKQUEUE_TASK_ID='",
            'kill "$sibling"',
            "echo probe-done",
        ]
    )


def output_of(api: httpx.Client, task_id: str) -> str:
    """Everything the task printed, both streams."""
    text, offset = "", 0
    while True:
        page = api.get(f"/api/tasks/{task_id}/logs", params={"offset": offset}).json()
        if not page["chunks"]:
            return text
        text += "".join(chunk["data"] for chunk in page["chunks"])
        offset = page["next_offset"]


def start_server(
    argv: list[str], env: Mapping[str, str], log: Path, cwd: Path, port: int, stdin: str = ""
) -> subprocess.Popen[bytes]:
    """A server started with ``argv`` (``stdin`` written to its input), once it answers."""
    with log.open("ab") as handle:
        process = subprocess.Popen(
            argv,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    assert process.stdin is not None
    process.stdin.write(stdin.encode())
    process.stdin.close()

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the server exited {process.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, 60, f"the server to answer (its log: {log})")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not stop."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_probe(port: int, db_file: str | None, url_file: str) -> tuple[dict[str, Any], str]:
    """Store the canary, run the probe as a task; the finished task and what it printed."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
        made = api.post("/api/projects", json={"name": "canary", "description": CANARY})
        assert made.status_code == 201, made.text
        task = api.post(
            "/api/tasks", json={"name": "probe", "command": probe(db_file, url_file)}
        ).json()
        done = wait_status(api, task["id"], timeout=60)
        return done, output_of(api, task["id"])


def assert_nothing_leaked(output: str, server_pid: int) -> None:
    """The probe ran to its end, through the server and the test process, and found no secret."""
    assert "probe-done" in output, output
    assert f"== process {server_pid}" in output
    assert f"== process {os.getpid()}" in output
    for secret in (API_KEY, PASSWORD, "S3cret", "Hx72", CANARY):
        assert secret not in output, f"{secret!r} leaked:\n{output}"
    assert f"uid={NOBODY.pw_uid}" in output
    # The parent's environment, memory and the database could not be opened...
    assert "Permission denied" in output
    # ...while the command's own child could be read, as the orphan sweep reads it.
    assert "\n1\n" in output, output


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory under /tmp that every user may enter: only file modes protect what is in
    it (pytest's own temporary directories are closed to other users)."""
    path = Path(tempfile.mkdtemp(prefix="taskqueue-what-commands-see-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _pg_url_with_password(url: str) -> str:
    # The test cluster trusts loopback, so the password is carried but never checked.
    parsed = sqlalchemy.engine.make_url(url).set(password=PASSWORD)
    return parsed.render_as_string(hide_password=False)


def test_an_unprivileged_server_keeps_its_secrets_from_its_commands(
    pg: PgDatabases, shared_dir: Path, tmp_path: Path
) -> None:
    url = pg.create()
    home = shared_dir / "home"  # the server user's own directory
    home.mkdir()
    give_to_nobody(home)
    port = free_port()
    env = {**os.environ, "TASKQUEUE_API_KEY": API_KEY, "HOME": str(home)}
    env.pop("TASKQUEUE_DATABASE_URL", None)
    # Commands run as the server's own user here, so they may read any file it may: the URL
    # comes through a pipe (``-``: standard input), and is never in a file at all.
    argv = [str(BIN), "server", "--port", str(port), "--database-url-file", "-"]
    server = start_server(
        as_nobody(argv), env, tmp_path / "server.log", home, port, stdin=_pg_url_with_password(url)
    )
    try:
        done, output = run_probe(port, None, f"/proc/{server.pid}/fd/0")
    finally:
        stop(server)
        pg.drop(url)
    assert done["status"] == "Completed", done
    assert_nothing_leaked(output, server.pid)


def test_a_root_server_runs_commands_as_the_run_as_user(
    backend: str, db_url: str, shared_dir: Path, tmp_path: Path
) -> None:
    if backend == "sqlite":
        db_file: str | None = str(shared_dir / "tq.db")
        url = f"sqlite:///{db_file}"
    else:
        db_file, url = None, _pg_url_with_password(db_url)
    url_file = shared_dir / "database-url"
    url_file.write_text(url)
    url_file.chmod(0o600)
    port = free_port()
    env = {**os.environ, "TASKQUEUE_API_KEY": API_KEY, "PGPASSWORD": PASSWORD}
    env.pop("TASKQUEUE_DATABASE_URL", None)
    argv = [
        *(str(BIN), "server", "--port", str(port)),
        *("--database-url-file", str(url_file), "--run-as", "nobody"),
    ]
    log = tmp_path / "server.log"
    server = start_server(argv, env, log, tmp_path, port)
    try:
        done, output = run_probe(port, db_file, str(url_file))
    finally:
        stop(server)
    assert done["status"] == "Completed", done
    assert_nothing_leaked(output, server.pid)
    if db_file is not None:
        for name in (db_file, f"{db_file}-wal"):
            assert re.search(rf"-rw------- 1 root root .* {re.escape(name)}\n", output)
            assert f"cat: {name}: Permission denied" in output
    assert "runs as root without --run-as" not in log.read_text()


@pytest.mark.sqlite_only
def test_run_as_commands_get_their_home_their_files_and_their_permissions(
    make_server: Callable[..., ServerProcess], shared_dir: Path
) -> None:
    open_dir = shared_dir / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    closed_dir = shared_dir / "closed"  # root's alone: the command may not enter it
    closed_dir.mkdir(mode=0o700)
    server = make_server("--run-as", "nobody", "--workers", "2")
    with httpx.Client(base_url=server.url, timeout=30) as api:

        def run(**fields: Any) -> tuple[dict[str, Any], str]:
            body = {"name": "as-nobody", "retry_attempts": 0, **fields}
            task = api.post("/api/tasks", json=body).json()
            return wait_status(api, task["id"]), output_of(api, task["id"])

        done, output = run(
            command='echo "$(id -un) home=$HOME user=$USER pwd=$(pwd)"; cat "$TASKQUEUE_INPUT";'
            ' echo; echo \'{"answer": 42}\' > "$TASKQUEUE_OUTPUT"',
            input={"question": "six by nine"},
        )
        assert done["status"] == "Completed", done
        assert f"nobody home={NOBODY.pw_dir} user=nobody pwd=/\n" in output
        assert '{"question": "six by nine"}' in output
        assert done["result"]["output"] == {"answer": 42}

        done, output = run(command="pwd; touch made-here", working_directory=str(open_dir))
        assert done["status"] == "Failed"  # it may enter the directory, not write in it
        assert f"{open_dir}\n" in output
        assert "Permission denied" in output

        done, output = run(command="pwd", working_directory=str(closed_dir))
        assert done["status"] == "Failed"
        assert done["result"]["exit_code"] == 126
        assert str(closed_dir) in output  # the shell says it cannot enter it
    log = (server.log or Path()).read_text()
    assert "runs as root without --run-as" not in log
