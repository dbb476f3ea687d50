"""Shared fixtures: a real ``taskqueue server`` process on a fresh database per test.

The database is a fresh SQLite file or a fresh database on a real PostgreSQL cluster the session
starts (``tests/pg_cluster.py``), as the ``backend`` fixture says. Every test under
``tests/integration`` and ``tests/e2e`` that uses a database runs once on each backend, as
``test_x[sqlite]`` and ``test_x[postgresql]``, so the same tests prove the same promises on both
in one run; a test marked ``sqlite_only`` runs on SQLite alone, ``postgres_only`` on PostgreSQL
alone. Tests elsewhere get SQLite (the
PostgreSQL-only ones in ``tests/pg`` say otherwise). ``TASKQUEUE_TEST_PG_URL`` points the tests at
an existing server instead of starting one (the URL of a database whose user may create
databases).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from taskqueue.store import Store
from tests.pg_cluster import PgCluster, start_cluster

BIN = Path(sys.executable).parent / "taskqueue"

T = TypeVar("T")


def _shared_default_tls() -> None:
    """Give every httpx client of the tests one default TLS context instead of one each.

    httpx loads certifi's bundle into a new context for each client it makes (about 60 ms of
    CPU), and the tests make thousands (every ``httpx.get`` of a poll is one). The context
    is the same for all; a test that passes its own (``verify=``) keeps it.
    """
    from httpx._transports import default  # the transports' name for it

    make = default.create_ssl_context
    shared: dict[bool, ssl.SSLContext] = {}

    def create_ssl_context(
        verify: ssl.SSLContext | str | bool = True, cert: Any = None, trust_env: bool = True
    ) -> ssl.SSLContext:
        if verify is not True or cert is not None:
            return make(verify=verify, cert=cert, trust_env=trust_env)
        if trust_env not in shared:
            shared[trust_env] = make(verify=True, trust_env=trust_env)
        return shared[trust_env]

    default.create_ssl_context = create_ssl_context  # type: ignore[assignment]


_shared_default_tls()

#: The backends the database tests of ``tests/integration`` and ``tests/e2e`` each run on.
BACKENDS = ("sqlite", "postgresql")

#: The test directories whose database tests run on every backend.
_ON_EVERY_BACKEND = ("integration", "e2e")


#: The test files that take longest (minutes of servers, partitions, fuzzing), longest first.
#: They are handed out first: ``--dist loadfile --no-loadscope-reorder`` gives each worker whole
#: files in collection order (without the flag, files with the most tests go first, and a long
#: file of one test, handed out last, keeps one worker busy while the other sits idle).
SLOW_FILES = (
    "integration/test_schemathesis.py",
    "pg/test_netns.py",
    "cli/test_database_options.py",
    "pg/test_chaos.py",
    "docs/test_doc_examples.py",
    "integration/test_promises.py",
    "integration/test_schedules.py",
    "cli/test_server_commands.py",
    "integration/test_remote_serving.py",
    "integration/test_workflow_gates.py",
    "pg/test_postgres.py",
    "integration/test_webhooks.py",
    "integration/test_auth.py",
    "integration/test_nats.py",
    "integration/test_hostile_input.py",
    "integration/test_workers_and_housekeeping.py",
    "integration/test_functions.py",
    "e2e/test_cli.py",
    "integration/test_webhooks_durability.py",
    "pg/test_restart.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the tests of :data:`SLOW_FILES` first, in that order (the rest keep theirs)."""
    root = Path(__file__).parent
    rank = {name: i for i, name in enumerate(SLOW_FILES)}

    def key(item: pytest.Item) -> int:
        try:
            name = item.path.relative_to(root).as_posix()
        except ValueError:  # pragma: no cover - a test outside tests/
            return len(rank)
        return rank.get(name, len(rank))

    items.sort(key=key)  # stable: each file's tests keep their order


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each database test of the integration and e2e suites once per backend.

    The parameter is module-scoped, so a module's shared server (``live``) is started once per
    backend, and pytest runs a module's SQLite tests, then its PostgreSQL ones.
    """
    if "backend" not in metafunc.fixturenames:
        return
    where = metafunc.definition.path.relative_to(Path(__file__).parent).parts
    if where[0] not in _ON_EVERY_BACKEND:
        return
    sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") is not None
    postgres_only = metafunc.definition.get_closest_marker("postgres_only") is not None
    backends = ["sqlite"] if sqlite_only else list(BACKENDS)
    if postgres_only:
        backends = ["postgresql"]
    metafunc.parametrize("backend", backends, indirect=True, scope="module")


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test's database: a parameter in the integration and e2e suites,
    SQLite elsewhere."""
    return str(getattr(request, "param", "sqlite"))


class PgDatabases:
    """Fresh databases on one cluster, each a copy of a migrated template."""

    def __init__(self, admin_url: str, cluster: PgCluster | None) -> None:
        self.admin_url = admin_url
        self.cluster = cluster
        self._count = 0
        self._template: str | None = None

    def url_for(self, name: str, host: str = "127.0.0.1") -> str:
        import sqlalchemy

        url = sqlalchemy.engine.make_url(self.admin_url).set(database=name, host=host)
        return url.render_as_string(hide_password=False)

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def create(self, migrated: bool = True) -> str:
        """A new empty database (with taskqueue's tables when ``migrated``); its URL."""
        self._count += 1
        name = f"tq_{os.getpid()}_{self._count}"
        if migrated and self._template is None:
            template = f"tq_template_{os.getpid()}"
            self._admin(f"CREATE DATABASE {template}")
            subprocess.run(
                [str(BIN), "db", "upgrade", "--db", self.url_for(template)],
                check=True,
                capture_output=True,
            )
            self._template = template
        clause = f" TEMPLATE {self._template}" if migrated else ""
        self._admin(f"CREATE DATABASE {name}{clause}")
        return self.url_for(name)

    def drop(self, url: str) -> None:
        """Drop a database made by :meth:`create`, whoever is still connected."""
        import sqlalchemy

        name = sqlalchemy.engine.make_url(url).database
        with contextlib.suppress(Exception):
            self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgDatabases]:
    """A PostgreSQL server for the session: started here unless TASKQUEUE_TEST_PG_URL is set."""
    given = os.environ.get("TASKQUEUE_TEST_PG_URL")
    if given:
        yield PgDatabases(given, None)
        return
    root = Path("/tmp") / f"taskqueue-test-pg-{os.getpid()}"
    if root.exists():
        import shutil

        shutil.rmtree(root)
    cluster = start_cluster(root)
    try:
        yield PgDatabases(cluster.url, cluster)
    finally:
        cluster.stop("immediate")
        import shutil

        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """The database of one test: a SQLite file path, or a fresh PostgreSQL database URL."""
    with module_database(request, backend, tmp_path) as url:
        yield url


EmptyDatabase = Callable[[], str]


@pytest.fixture
def empty_database(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> Iterator[EmptyDatabase]:
    """``empty_database()``: a new database with no tables at all, on the test's backend (a new
    SQLite path, or an empty database on the session's PostgreSQL cluster)."""
    made: list[str] = []

    def make() -> str:
        if backend == "sqlite":
            made.append(str(tmp_path / f"empty-{len(made)}.db"))
        else:
            databases: PgDatabases = request.getfixturevalue("pg")
            made.append(databases.create(migrated=False))
        return made[-1]

    yield make
    if backend == "postgresql":
        databases = request.getfixturevalue("pg")
        for url in made:
            databases.drop(url)


def run_store(db: str, body: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``body`` with a started :class:`Store` on ``db`` (in process), then close it."""

    async def main() -> T:
        store = Store(db)
        store.start()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def query_db(db: str | Path, statement: str) -> list[tuple[object, ...]]:
    """Rows of a read-only statement on a test's database, whichever the backend."""
    if "://" in str(db):
        import psycopg

        with psycopg.connect(str(db)) as conn:
            return [tuple(r) for r in conn.execute(statement)]  # type: ignore[arg-type]
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [tuple(r) for r in conn.execute(statement)]


def execute_db(db: str | Path, statement: str) -> int:
    """Run one write on a test's database, whichever the backend; the rows it changed."""
    if "://" in str(db):
        import psycopg

        with psycopg.connect(str(db), autocommit=True) as conn:
            return conn.execute(statement).rowcount  # type: ignore[arg-type]
    import sqlite3

    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        return conn.execute(statement).rowcount


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A ``taskqueue server`` subprocess and how to reach it."""

    db: Path | str
    port: int
    args: list[str] = field(default_factory=list)
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    #: How the tests reach it: ``https`` for a server given a certificate, another address
    #: for one listening elsewhere, the CA bundle (``verify``) its certificate is checked with.
    scheme: str = "http"
    host: str = "127.0.0.1"
    verify: ssl.SSLContext | bool = True
    #: The health statuses that mean "it serves" (401 too where every request needs a key).
    up_statuses: tuple[int, ...] = (200,)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait until it serves."""
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
                health = httpx.get(f"{self.url}/api/health", timeout=1, verify=self.verify)
                if health.status_code in self.up_statuses:
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
def make_server(tmp_path: Path, db_url: str) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers on demand: ``make_server(*args)``; all are stopped after the test."""
    started: list[ServerProcess] = []

    def make(
        *args: str, db: Path | str | None = None, port: int | None = None, **how: Any
    ) -> ServerProcess:
        """``how``: :class:`ServerProcess` fields (``scheme``, ``host``, ``verify``, ...)."""
        server = ServerProcess(
            db=db or db_url,
            port=port or free_port(),
            args=list(args),
            log=tmp_path / f"server-{len(started)}.log",
            **how,
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


@contextlib.contextmanager
def module_database(request: pytest.FixtureRequest, backend: str, root: Path) -> Iterator[str]:
    """A fresh database of ``backend``: a file under ``root`` (SQLite), or a migrated database
    on the session's cluster (PostgreSQL, which the first such database starts)."""
    if backend == "sqlite":
        yield str(root / "tq.db")
        return
    assert backend == "postgresql", backend
    databases: PgDatabases = request.getfixturevalue("pg")
    url = databases.create()
    try:
        yield url
    finally:
        databases.drop(url)


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server for a whole test module (per backend), for tests that keep to their own names
    and queues."""
    root = tmp_path_factory.mktemp("module-server")
    with module_database(request, backend, root) as db:
        server = ServerProcess(
            db=db, port=free_port(), log=root / "server.log", args=["--drain-timeout", "1"]
        )
        server.start()
        yield server
        server.stop()


@pytest.fixture(scope="module")
def shared(live: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client on the module's shared server."""
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


# The network namespaces of the "other machines" tests (tests/pg/test_netns.py and
# tests/e2e/test_remote_netns.py), made and removed by the fixture.
from tests.netns import namespaces  # noqa: E402, F401
