"""``db upgrade``, ``server`` and ``worker``: the service the client commands talk to."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from taskqueue.worker import WorkerSettings
from tests.cli.helpers import cli, get, sub_env, tq
from tests.conftest import BIN, ServerProcess, free_port, wait_until


def test_api_only_server_and_a_separate_worker(tmp_path: Path) -> None:
    db = tmp_path / "split.db"
    upgraded = tq("db", "upgrade", "--db", str(db))
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"database {db} is up to date"

    api_only = ServerProcess(
        db=db, port=free_port(), args=["--workers", "0"], log=tmp_path / "server.log"
    )
    api_only.start()
    worker: subprocess.Popen[str] | None = None
    try:
        with httpx.Client(base_url=api_only.url, timeout=30) as api:
            detached = tq("run", "-d", "--", "echo", "from the worker", url=api_only.url)
            assert detached.returncode == 0, detached.stderr
            task_id = detached.stdout.strip()
            special = cli(api_only.url, "run", "-d", "--queue", "special", "--", "true")
            assert special.exit_code == 0, special.output
            special_id = special.stdout.strip()
            time.sleep(0.5)
            assert get(api, f"/api/tasks/{task_id}")["status"] == "Pending"  # no worker yet

            worker = subprocess.Popen(
                [str(BIN), "worker", "--db", str(db), "--concurrency", "2", "--queue", "default"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=sub_env(),
            )
            waited = tq("tasks", "wait", task_id, "--timeout", "30", url=api_only.url)
            assert waited.returncode == 0, waited.stderr
            logs = tq("tasks", "logs", task_id, url=api_only.url)
            assert logs.stdout == "from the worker\n"
            ran = tq("run", "--", "sh", "-c", "echo live; exit 6", url=api_only.url)
            assert ran.stdout == "live\n"
            assert ran.returncode == 6
            # The worker serves only the queues it was given.
            assert get(api, f"/api/tasks/{special_id}")["status"] == "Pending"

            worker.send_signal(signal.SIGTERM)
            _, err = worker.communicate(timeout=30)
            assert worker.returncode == 0, err
            assert "taskqueue worker" in err
            assert "concurrency 2, queues default" in err
            assert "Traceback" not in err
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        api_only.stop()
    assert api_only.process is not None
    assert api_only.process.returncode == 0
    assert "taskqueue" in (tmp_path / "server.log").read_text()


def test_server_announces_itself_and_stops_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(
        db=tmp_path / "s.db", port=free_port(), args=["--workers", "3"], log=tmp_path / "s.log"
    )
    server.start()
    try:
        health = cli(server.url, "health", "-o", "json")
        assert health.exit_code == 0
    finally:
        code = server.terminate()
    assert code == 0
    log = (tmp_path / "s.log").read_text()
    assert f"serving http://127.0.0.1:{server.port}" in log
    assert "3 worker slot(s)" in log
    # What to do next: a first task (against this port), the API, how to stop.
    assert f"try it:  taskqueue --base-url {server.url} run -- echo hello" in log
    assert f"the API: {server.url}/openapi.json" in log
    assert "stop:    Ctrl-C" in log
    assert "Traceback" not in log


def test_server_option_errors(tmp_path: Path) -> None:
    for args, expected in (
        (["server", "--port", "70000"], "--port"),
        (["server", "--workers", "-1"], "--workers"),
        (["worker", "--concurrency", "0"], "--concurrency"),
        (["server", "--log-level", "loud"], "--log-level"),
        (["worker", "--queue", "bad queue!"], "--queue"),
        (["worker", "--queue", "a" * 101], "--queue"),
        (["worker", "--retention-hours", "-1"], "--retention-hours"),
        (["worker", "--presence-interval", "0"], "--presence-interval"),
        (["server", "--presence-interval", "-1"], "--presence-interval"),
        (["server", "--housekeeping-interval", "soon"], "--housekeeping-interval"),
        (["worker", "--housekeeping-interval", "inf"], "--housekeeping-interval"),
    ):
        result = tq(*args, "--db", str(tmp_path / "never.db"))
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "never.db").exists()


def test_a_bad_beat_interval_from_the_environment_is_one_line(tmp_path: Path) -> None:
    for command in ("server", "worker"):
        result = tq(
            command,
            "--db",
            str(tmp_path / "never.db"),
            env=sub_env({"TASKQUEUE_PRESENCE_INTERVAL": "nan"}),
        )
        assert result.returncode == 2, result.stderr
        [error] = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert "TASKQUEUE_PRESENCE_INTERVAL='nan' is not a positive number of seconds" in error
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "never.db").exists()


class _Built(Exception):
    """Stops a command once it has built what it would run."""


def test_the_beat_intervals_reach_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import taskqueue.service

    built: dict[str, WorkerSettings | None] = {}

    def build_server(options: taskqueue.service.ServerOptions) -> None:
        built["server"] = options.worker
        raise _Built

    def build_worker(db: str, settings: WorkerSettings, *, listen: bool = True) -> None:
        built["worker"] = settings
        raise _Built

    monkeypatch.setattr(taskqueue.service, "build_server", build_server)
    monkeypatch.setattr(taskqueue.service, "build_worker", build_worker)
    db = str(tmp_path / "never.db")

    def intervals(kind: str, *args: str, env: dict[str, str] | None = None) -> tuple[float, float]:
        port = ["--port", "0"] if kind == "server" else []  # the server binds before it builds
        result = cli(None, kind, "--db", db, *port, *args, env=env)
        assert isinstance(result.exception, _Built), result.output
        settings = built.pop(kind)
        assert settings is not None
        return settings.presence_interval, settings.housekeeping_interval

    assert intervals("server") == (5.0, 60.0)
    assert intervals("worker") == (5.0, 60.0)
    assert intervals("server", "--presence-interval", "0.25") == (0.25, 60.0)
    assert intervals("worker", "--housekeeping-interval", "0.1") == (5.0, 0.1)
    env = {"TASKQUEUE_PRESENCE_INTERVAL": "0.5", "TASKQUEUE_HOUSEKEEPING_INTERVAL": "2"}
    assert intervals("worker", env=env) == (0.5, 2.0)
    assert intervals("server", env=env) == (0.5, 2.0)
    # The option wins over the environment.
    assert intervals("server", "--presence-interval", "1", env=env) == (1.0, 2.0)


def test_a_busy_port_is_one_line_and_its_own_exit_code(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = tq("server", "--db", str(tmp_path / "never.db"), "--port", str(port))
    assert result.returncode == 7, result.stderr
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(is another server running? pick another --port)"
    ]
    assert not (tmp_path / "never.db").exists()  # refused before the database is touched


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN), "server", "--db", str(tmp_path / "s.db"), "--workers", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=sub_env(env),
    )


def _announced(process: subprocess.Popen[str]) -> str:
    """The server's first line on stderr after its warnings: its announcement (or why it
    stopped)."""
    assert process.stderr is not None
    line = process.stderr.readline()
    while line.startswith("warning: "):
        line = process.stderr.readline()
    return line.strip()


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_the_server_serves_on_ipv6_loopback(tmp_path: Path, host: str) -> None:
    port = free_port()
    process = _serve(tmp_path, "--host", host, "--port", str(port))
    try:
        line = _announced(process)
        assert f"serving http://[::1]:{port} " in line, line
        response = httpx.get(f"http://[::1]:{port}/api/health", timeout=30)
        assert response.status_code == 200
        cancelled = httpx.post(
            f"http://[::1]:{port}/api/tasks/00000000-0000-4000-8000-000000000000/cancel",
            headers={"Origin": f"http://[::1]:{port}"},
            timeout=30,
        )
        assert cancelled.status_code == 404  # the server's own origin passes the guard
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_port_zero_announces_the_port_it_got(tmp_path: Path) -> None:
    process = _serve(tmp_path, "--port", "0")
    try:
        line = _announced(process)
        port = int(line.split("serving http://127.0.0.1:")[1].split()[0])
        assert port > 0
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_allowed_origins_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {"TASKQUEUE_ALLOW_ORIGINS": " https://a.example , HTTPS://B.example:8443,"}
    process = _serve(tmp_path, "--port", str(port), env=env)
    try:
        assert "serving" in _announced(process)
        for origin, allowed in (
            ("https://a.example", True),
            ("https://b.example:8443", True),
            ("https://c.example", False),
        ):
            response = httpx.options(
                f"http://127.0.0.1:{port}/api/tasks",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
                timeout=30,
            )
            assert response.status_code == (204 if allowed else 403), (origin, response.text)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*", "would let any web page"),
        ("null", "would let any web page"),
        ("ftp://files.example", "is not an origin"),
        ("https://dash.example/app", "is not an origin"),
        ("dash.example", "is not an origin"),
        ("https://user@dash.example", "is not an origin"),
    ],
)
def test_a_bad_allowed_origin_is_a_usage_error(tmp_path: Path, value: str, expected: str) -> None:
    for args, env in (
        (["--allow-origin", value], None),
        ([], {"TASKQUEUE_ALLOW_ORIGINS": f"https://fine.example,{value}"}),
    ):
        result = tq("server", "--db", str(tmp_path / "never.db"), *args, env=sub_env(env))
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert "--allow-origin" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_every_log_line_has_one_format_uvicorns_too(tmp_path: Path, log_format: str) -> None:
    server = ServerProcess(
        db=tmp_path / "s.db",
        port=free_port(),
        args=["--log-format", log_format, "--drain-timeout", "0.2"],
        log=tmp_path / "s.log",
    )
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
            raw.sendall(b"GARBAGE\r\n\r\n")  # uvicorn itself logs this one
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
        task = httpx.post(
            f"{server.url}/api/tasks", json={"name": "nap", "command": "sleep 30"}, timeout=30
        ).json()
        wait_until(
            lambda: (
                httpx.get(f"{server.url}/api/tasks/{task['id']}", timeout=30).json()["status"]
                == "Running"
            ),
            15,
            "the task to start",
        )
    finally:
        assert server.terminate() == 0
    logged = [
        line
        for line in (tmp_path / "s.log").read_text().splitlines()
        if line and not line.startswith(("warning: ", "taskqueue ", "  "))  # the announcement
    ]
    assert any("Invalid HTTP request received." in line for line in logged), logged
    assert any("stopped: 0 task(s) finished while draining" in line for line in logged), logged
    for line in logged:
        if log_format == "json":
            record = json.loads(line)
            assert set(record) >= {"time", "level", "logger", "message"}, record
        else:
            assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ", line), line
