"""Fixtures of the PostgreSQL-only tests: every test here runs on the session's real cluster.

Here the ``backend`` is PostgreSQL alone, so ``db_url`` (and so ``make_server``) gives a fresh
database on that cluster, and ``start_worker`` runs standalone ``taskqueue worker`` processes on
it. Nothing here skips: a missing PostgreSQL fails the test that needs it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BIN, PgDatabases, wait_until
from tests.pg_cluster import PgCluster

#: The first line a standalone worker prints once its database is open.
_BANNER = re.compile(r"taskqueue worker (\S+) on ")


@pytest.fixture(scope="module")
def backend() -> str:
    """Every test here is about PostgreSQL: ``db_url`` is a fresh, migrated database on the
    session's cluster."""
    return "postgresql"


def require_cluster(pg: PgDatabases) -> PgCluster:
    """The cluster the session started; fail (never skip) when the tests were given a URL."""
    if pg.cluster is None:
        pytest.fail(
            "this test stops, starts or reaches PostgreSQL over other addresses, so it needs "
            "the cluster the tests start themselves: unset TASKQUEUE_TEST_PG_URL"
        )
    return pg.cluster


@dataclass
class WorkerProcess:
    """A standalone ``taskqueue worker`` subprocess and its log."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_id(self) -> str | None:
        """The id the worker announced (``host:pid:random``), once it is up."""
        found = _BANNER.search(self.output())
        return found.group(1) if found else None

    def wait_up(self, timeout: float = 60.0) -> str:
        """Wait until the worker has opened its database; its worker id."""

        def up() -> bool:
            if self.process.poll() is not None:
                pytest.fail(
                    f"worker {self.pid} exited with {self.process.returncode}:\n{self.output()}"
                )
            return self.worker_id() is not None

        wait_until(up, timeout, f"worker {self.pid} to open its database")
        worker_id = self.worker_id()
        assert worker_id is not None
        return worker_id

    def kill9(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """``start_worker(db, *args, prefix=[...])`` runs a worker; all are stopped after the test.

    ``prefix`` goes before the command (``["ip", "netns", "exec", "ns1"]``, say).
    """
    started: list[WorkerProcess] = []

    def start(
        db: str, *args: str, prefix: list[str] | None = None, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("ab") as handle:
            process = subprocess.Popen(
                [*(prefix or []), str(BIN), "worker", "--db", db, *args],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        worker = WorkerProcess(process, log)
        started.append(worker)
        return worker

    yield start
    # In parallel: each may take up to its drain timeout.
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for worker in started:
        try:
            worker.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
