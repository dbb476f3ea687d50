"""Shared fixtures: a real ``taskqueue server`` process on a fresh SQLite file per test."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent / "taskqueue"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A ``taskqueue server`` subprocess and how to reach it."""

    db: Path
    port: int
    args: list[str] = field(default_factory=list)
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        assert self.log is not None
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [str(BIN), "server", "--db", str(self.db), "--port", str(self.port), *self.args],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers on demand: ``make_server(*args)``; all are stopped after the test."""
    started: list[ServerProcess] = []

    def make(*args: str, db: Path | None = None, port: int | None = None) -> ServerProcess:
        server = ServerProcess(
            db=db or tmp_path / "tq.db",
            port=port or free_port(),
            args=list(args),
            log=tmp_path / f"server-{len(started)}.log",
        )
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    """One running server with the default settings."""
    return make_server()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client on the running server's base URL."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail the test (naming ``what``) if it never does.

    The timeout is a guard against a hang, generous on purpose, never a speed requirement.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def wait_status(api: httpx.Client, task_id: str, timeout: float = 30.0) -> dict:
    """The task once terminal (through the server's long-poll), failing the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"task {task_id} did not finish in {timeout}s"
        response = api.get(f"/api/tasks/{task_id}/wait", params={"timeout": min(remaining, 30)})
        response.raise_for_status()
        task = response.json()
        if task["status"] in ("Completed", "Failed", "Cancelled"):
            return task


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a whole test module, for tests that keep to their own names and queues."""
    root = tmp_path_factory.mktemp("module-server")
    server = ServerProcess(
        db=root / "tq.db", port=free_port(), log=root / "server.log", args=["--drain-timeout", "1"]
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared(live: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client on the module's shared server."""
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client
