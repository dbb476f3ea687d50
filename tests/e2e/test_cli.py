"""The ``taskqueue`` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from tests.conftest import BIN, EmptyDatabase, free_port, query_db


def tq(
    *args: str, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )


def test_version() -> None:
    from taskqueue import __version__

    result = tq("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"taskqueue, version {__version__}"


def test_db_upgrade_creates_the_schema(empty_database: EmptyDatabase, backend: str) -> None:
    db = empty_database()
    result = tq("db", "upgrade", "--db", db)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    if backend == "sqlite":
        listed = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        listed = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    assert {
        "tasks",
        "projects",
        "attempts",
        "output_chunks",
        "events",
        "idempotency_keys",
        "task_deps",
        "alembic_version",
    } <= {r[0] for r in query_db(db, listed)}
    if backend == "sqlite":
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_database_url_from_the_environment(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    result = subprocess.run(
        [str(BIN), "db", "upgrade"],
        capture_output=True,
        text=True,
        env={"TASKQUEUE_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"},
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert db.exists()


def test_server_refuses_no_auth_beyond_loopback(tmp_path: Path) -> None:
    result = tq("server", "--host", "0.0.0.0", "--no-auth", "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2
    assert "--no-auth is refused with --host 0.0.0.0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_bad_database_arguments_get_one_clear_line(tmp_path: Path) -> None:
    missing = tq("worker", "--db", str(tmp_path / "no" / "such" / "dir.db"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    memory = tq("db", "upgrade", "--db", "sqlite://")
    assert memory.returncode == 2
    assert "in-memory" in memory.stderr
    other = tq("server", "--db", "mysql://u@h/db", "--port", str(free_port()))
    assert other.returncode == 2
    assert "unsupported database 'mysql'" in other.stderr
    for result in (missing, memory, other):
        assert "Traceback" not in result.stderr


def test_unknown_options_are_usage_errors() -> None:
    result = tq("server", "--frobnicate")
    assert result.returncode == 2
    assert "No such option" in result.stderr


def test_a_port_in_use_is_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = tq("server", "--port", str(port), "--db", str(tmp_path / "p.db"), "--workers", "0")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
