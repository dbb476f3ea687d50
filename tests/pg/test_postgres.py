"""PostgreSQL-specific promises, each proven with real processes on a real cluster.

* ``taskqueue db upgrade`` builds the schema on an empty database, and running it again changes
  nothing and loses nothing.
* Workers started together on an empty database all come up: the migrations serialise on an
  advisory lock instead of racing.
* A task created through the API is run by an idle standalone worker in another process (the
  worker hears of it through LISTEN/NOTIFY, and says so if notifications did not arrive).
* A cancel through the API stops a command running in a standalone worker.
* The password of a ``postgresql://user:password@...`` URL is never printed, by the server,
  the worker or ``db upgrade``, whether the database answers or not.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
import sqlalchemy

from taskqueue.store.migrate import head_revision
from tests.conftest import BIN, PgDatabases, ServerProcess, query_db, wait_status, wait_until
from tests.pg.conftest import StartWorker

MakeServer = Callable[..., ServerProcess]

#: The tables the migrations create (besides alembic_version).
TABLES = {
    "projects",
    "tasks",
    "task_deps",
    "attempts",
    "output_chunks",
    "events",
    "idempotency_keys",
}

NO_NOTIFICATIONS = "notifications from PostgreSQL do not arrive"


def _tables(url: str) -> set[str]:
    rows = query_db(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {str(r[0]) for r in rows}


def _revision(url: str) -> list[str]:
    return [str(r[0]) for r in query_db(url, "SELECT version_num FROM alembic_version")]


def _upgrade(url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "db", "upgrade", "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ----------------------------------------------------------------------------- migrations


def test_db_upgrade_builds_an_empty_database_and_a_second_run_is_harmless(
    pg: PgDatabases, tmp_path: Path, make_server: MakeServer
) -> None:
    url = pg.create(migrated=False)
    try:
        assert _tables(url) == set()
        first = _upgrade(url)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "is up to date" in first.stdout
        assert _tables(url) >= TABLES | {"alembic_version"}
        assert _revision(url) == [head_revision()]

        server = make_server("--workers", "2", db=url)
        with httpx.Client(base_url=server.url, timeout=30) as api:
            created = api.post("/api/tasks", json={"name": "kept", "command": "echo kept"})
            assert created.status_code == 201, created.text
            done = wait_status(api, created.json()["id"])
            assert done["status"] == "Completed"
        server.stop()  # before the drop below

        second = _upgrade(url)
        assert second.returncode == 0, second.stdout + second.stderr
        assert _revision(url) == [head_revision()]
        rows = query_db(url, "SELECT name, status FROM tasks")
        assert rows == [("kept", "Completed")]
        assert query_db(url, "SELECT count(*) FROM attempts") == [(1,)]
    finally:
        pg.drop(url)


def test_workers_started_together_on_an_empty_database_all_come_up(
    pg: PgDatabases, start_worker: StartWorker, make_server: MakeServer
) -> None:
    url = pg.create(migrated=False)
    server: ServerProcess | None = None
    workers = [start_worker(url, "--concurrency", "2") for _ in range(3)]
    try:
        ids = [w.wait_up() for w in workers]
        assert len(set(ids)) == 3
        assert _revision(url) == [head_revision()]
        for worker in workers:
            assert worker.process.poll() is None, worker.output()
            assert "Traceback" not in worker.output()

        # The schema they built together works: every worker takes part in running tasks.
        server = make_server("--workers", "0", db=url)
        with httpx.Client(base_url=server.url, timeout=30) as api:
            batch = [{"name": f"t{i}", "command": "sleep 0.2"} for i in range(12)]
            created = api.post("/api/tasks/batch", json={"tasks": batch})
            assert created.status_code == 201, created.text
            for task in created.json()["tasks"]:
                assert wait_status(api, task["id"])["status"] == "Completed"
        attempts = query_db(url, "SELECT task_id, number, worker_id, status, error FROM attempts")
        assert len(attempts) == 12, "\n".join(map(str, attempts))
        assert {str(a[2]) for a in attempts} <= set(ids)
    finally:
        for worker in workers:
            worker.stop()
        if server is not None:
            server.stop()
        pg.drop(url)


# ----------------------------------------------------------------------------- notifications


def test_an_idle_standalone_worker_runs_a_task_created_through_the_api(
    make_server: MakeServer, start_worker: StartWorker, db_url: str
) -> None:
    server = make_server("--workers", "0")
    worker = start_worker(db_url, "--concurrency", "2")
    worker_id = worker.wait_up()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        # The worker is idle (its database is empty) when the API creates each task.
        for round_ in range(3):
            task = api.post(
                "/api/tasks", json={"name": f"wake-{round_}", "command": f"echo woke {round_}"}
            ).json()
            done = wait_status(api, task["id"])
            assert done["status"] == "Completed"
            assert done["result"]["stdout_tail"] == f"woke {round_}\n"
            attempts = api.get(f"/api/tasks/{task['id']}/attempts").json()["attempts"]
            assert [a["worker_id"] for a in attempts] == [worker_id]
    # Both processes listen on the database and heard their notification probe: neither fell
    # back to polling.
    listening = query_db(
        db_url,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query ILIKE 'LISTEN %'",
    )
    assert listening == [(2,)]
    assert NO_NOTIFICATIONS not in worker.output()
    assert server.log is not None
    assert NO_NOTIFICATIONS not in server.log.read_text()


def test_cancel_through_the_api_stops_a_command_in_a_standalone_worker(
    make_server: MakeServer, start_worker: StartWorker, tmp_path: Path
) -> None:
    server = make_server("--workers", "0")
    assert isinstance(server.db, str)
    start_worker(server.db, "--concurrency", "2").wait_up()
    pidfile = tmp_path / "pid"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        task = api.post(
            "/api/tasks",
            json={
                "name": "long",
                "command": f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; sleep 300 & wait",
            },
        ).json()
        wait_until(pidfile.exists, 30, "the task to start")
        pid = int(pidfile.read_text())
        assert _alive(pid)
        reply = api.post(f"/api/tasks/{task['id']}/cancel")
        assert reply.status_code == 200
        assert reply.json()["status"] == "Cancelled"
        wait_until(lambda: not _alive(pid), 15, "the cancelled command to die")
        attempts = api.get(f"/api/tasks/{task['id']}/attempts").json()["attempts"]
        assert [a["status"] for a in attempts] == ["Cancelled"]
        assert api.get(f"/api/tasks/{task['id']}").json()["status"] == "Cancelled"
        # The worker goes on: a task after the cancel runs.
        after = api.post("/api/tasks", json={"name": "after", "command": "true"}).json()
        assert wait_status(api, after["id"])["status"] == "Completed"


def test_without_notifications_everything_still_works_by_polling(
    make_server: MakeServer, start_worker: StartWorker, db_url: str, tmp_path: Path
) -> None:
    """--no-notify (what a transaction-pooling PgBouncer forces): nobody LISTENs, and tasks
    still start, end, wake long-polls and get cancelled, by polling."""
    server = make_server("--workers", "0", "--no-notify")
    worker = start_worker(db_url, "--concurrency", "2", "--no-notify")
    worker.wait_up()
    pidfile = tmp_path / "pid"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        quick = api.post("/api/tasks", json={"name": "polled", "command": "echo polled"}).json()
        done = wait_status(api, quick["id"])  # the server's long-poll hears by polling too
        assert done["status"] == "Completed"
        assert done["result"]["stdout_tail"] == "polled\n"
        long = api.post(
            "/api/tasks",
            json={
                "name": "long",
                "command": f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 300",
            },
        ).json()
        wait_until(pidfile.exists, 30, "the long task to start")
        pid = int(pidfile.read_text())
        assert api.post(f"/api/tasks/{long['id']}/cancel").json()["status"] == "Cancelled"
        wait_until(lambda: not _alive(pid), 15, "the cancelled command to die")
    listening = query_db(
        db_url,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query ILIKE 'LISTEN %'",
    )
    assert listening == [(0,)]


# ----------------------------------------------------------------------------- passwords


@pytest.fixture
def secret_role(pg: PgDatabases) -> Iterator[tuple[str, str]]:
    """A login role with a password (pg_hba trusts it anyway); dropped after the test."""
    role = f"tq_role_{uuid.uuid4().hex[:8]}"
    password = f"secret-{uuid.uuid4().hex}"
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")  # type: ignore[arg-type]
    yield role, password
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")  # type: ignore[arg-type]


def _with_user(url: str, user: str, password: str, **changes: object) -> str:
    parsed = sqlalchemy.engine.make_url(url).set(username=user, password=password, **changes)
    return parsed.render_as_string(hide_password=False)


def test_the_password_of_the_database_url_is_never_printed(
    pg: PgDatabases,
    secret_role: tuple[str, str],
    start_worker: StartWorker,
    make_server: MakeServer,
    tmp_path: Path,
) -> None:
    role, password = secret_role
    empty = pg.create(migrated=False)
    name = sqlalchemy.engine.make_url(empty).database
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} OWNER TO {role}")  # type: ignore[arg-type]
    url = _with_user(empty, role, password)
    assert password in url
    printed: dict[str, str] = {}
    try:
        upgraded = _upgrade(url)
        printed["db upgrade"] = upgraded.stdout + upgraded.stderr
        assert upgraded.returncode == 0, printed["db upgrade"]

        server = make_server("--workers", "1", db=url)
        worker = start_worker(url, "--concurrency", "1")
        worker.wait_up()
        # The same URL through the environment instead of --db.
        with (tmp_path / "env-worker.log").open("wb") as handle:
            by_env = subprocess.Popen(
                [str(BIN), "worker", "--concurrency", "1", "--log-level", "debug"],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TASKQUEUE_DATABASE_URL": url},
                start_new_session=True,
            )
        try:
            wait_until(
                lambda: "taskqueue worker " in (tmp_path / "env-worker.log").read_text(),
                60,
                "the worker configured through TASKQUEUE_DATABASE_URL to start",
            )
            with httpx.Client(base_url=server.url, timeout=30) as api:
                batch = [{"name": f"p{i}", "command": "echo ok"} for i in range(6)]
                created = api.post("/api/tasks/batch", json={"tasks": batch}).json()["tasks"]
                for task in created:
                    assert wait_status(api, task["id"])["status"] == "Completed"
                health = api.get("/api/health")
                printed["health"] = health.text
        finally:
            by_env.terminate()
            by_env.wait(30)
        worker.stop()
        server.stop()
        printed["worker"] = worker.output()
        printed["env worker"] = (tmp_path / "env-worker.log").read_text()
        assert server.log is not None
        printed["server"] = server.log.read_text()

        # Failures print the database they could not reach: still without the password.
        missing = _with_user(empty, role, password, database="tq_no_such_database")
        refused = _with_user(empty, role, password, port=1)
        for label, bad in (("missing database", missing), ("refused", refused)):
            for argv in (
                ["worker", "--db", bad],
                ["server", "--workers", "0", "--port", "0", "--db", bad],
                ["db", "upgrade", "--db", bad],
            ):
                result = subprocess.run(
                    [str(BIN), *argv], capture_output=True, text=True, timeout=120
                )
                key = f"{argv[0]} ({label})"
                printed[key] = result.stdout + result.stderr
                assert result.returncode != 0, f"{key} should fail:\n{printed[key]}"
    finally:
        pg.drop(empty)
    leaked = [label for label, text in printed.items() if password in text]
    assert not leaked, "the password was printed by: " + ", ".join(
        f"{label}:\n{printed[label]}" for label in leaked
    )
    # The outputs did name the database (so the check above looked at real output).
    assert any(role in text for text in printed.values())
