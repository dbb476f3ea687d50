"""Webhook endpoints for tests: the SDK's receiver in a subprocess, and one that never answers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

RECEIVER = Path(__file__).resolve().parent / "webhook_receiver.py"


@dataclass
class Receiver:
    """A ``tests/webhook_receiver.py`` subprocess and what its handlers wrote."""

    process: subprocess.Popen[bytes]
    url: str
    out: Path
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        """Every handler call so far, in order."""
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def handled(self, event_id: int) -> list[str]:
        """The handlers that ran for the event ``event_id``, in order (``!`` if one failed)."""
        return [
            line["handler"] + ("" if line["ok"] else "!")
            for line in self.lines()
            if line["event"]["id"] == event_id
        ]

    def events(self, handler: str = "*") -> list[dict[str, Any]]:
        """The events ``handler`` ran for, in the order they arrived (``*``: every event)."""
        return [line["event"] for line in self.lines() if line["handler"] == handler]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)


def start_receiver(root: Path, port: int, *args: str) -> Receiver:
    """Serve the receiver on ``port`` (flags as ``webhook_receiver.py`` takes them)."""
    root.mkdir(parents=True, exist_ok=True)
    out, log = root / f"received-{port}.jsonl", root / f"receiver-{port}.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, str(RECEIVER), "--port", str(port), "--out", str(out), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    receiver = Receiver(process, f"http://127.0.0.1:{port}/", out, log)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError("the receiver exited:\n" + log.read_text())
        if time.monotonic() > deadline:
            receiver.stop()
            raise RuntimeError("the receiver did not start:\n" + log.read_text())
        try:
            if httpx.get(receiver.url, timeout=1).status_code == 405:
                return receiver
        except httpx.TransportError:
            time.sleep(0.05)


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A URL whose server takes connections and never answers (a hung endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # never accepted: connections wait in the backlog, unanswered
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
