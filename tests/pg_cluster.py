"""A throwaway PostgreSQL cluster for the tests, run by an unprivileged user.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to
``nobody`` and every server command runs through ``setpriv``. The cluster listens on a free port
of every address (``pg_hba.conf`` lets in only loopback and the test networks) and keeps its
socket in its own directory. It runs with ``fsync=on``: the durability tests mean it.

Run by hand: ``python tests/pg_cluster.py DIR`` starts one and prints its URL.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

#: Networks the tests' network namespaces use (see tests/pg/test_netns.py).
TEST_NETWORK = "10.231.0.0/16"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:  # Debian keeps the server's programs off PATH
        candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{binary}"))
        path = str(candidates[-1]) if candidates else None
    if path is None:
        raise RuntimeError(
            f"{binary} is not on PATH: the tests need a PostgreSQL server installed "
            "(Debian: apt-get install postgresql)"
        )
    return path


class PgCluster:
    """One PostgreSQL data directory and the server running on it."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = port or _free_port()
        self.as_root = os.geteuid() == 0

    # ------------------------------------------------------------------ commands

    def _as_owner(self, argv: list[str]) -> list[str]:
        if not self.as_root:
            return argv
        user = pwd.getpwnam("nobody")
        return [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            "--",
            *argv,
        ]

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._as_owner(argv),
            check=check,
            capture_output=True,
            text=True,
            cwd="/",
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )

    @property
    def url(self) -> str:
        """The URL of the ``postgres`` database over TCP on loopback."""
        return self.url_for("postgres")

    def url_for(self, database: str, host: str = "127.0.0.1") -> str:
        """The URL of ``database`` on this cluster, reached at ``host``."""
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    # ------------------------------------------------------------------ lifecycle

    def init(self) -> None:
        """Create the data directory (owned by the unprivileged user)."""
        initdb = _require("initdb")
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            user = pwd.getpwnam("nobody")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.root.chmod(0o755)
        result = self._run(
            [initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
            f"host all all {TEST_NETWORK} trust\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\n"
                "listen_addresses = '*'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "max_connections = 300\n"
                "shared_buffers = 128MB\n"
                "fsync = on\n"
                "synchronous_commit = on\n"
                "log_min_messages = warning\n"
            )

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections."""
        pg_ctl = _require("pg_ctl")
        result = self._run(
            [
                pg_ctl,
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{result.stdout}{result.stderr}\n{log}")
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the server answers a query."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions and disconnect everyone)."""
        self._run([_require("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def restart(self, mode: str = "fast") -> None:
        """Stop then start the server."""
        self.stop(mode)
        self.start()

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` (optionally as a copy of ``template``) and return its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            clause = f" TEMPLATE {template}" if template else ""
            conn.execute(f"CREATE DATABASE {name}{clause}")  # type: ignore[arg-type]
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting anyone still on it."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


def start_cluster(root: Path) -> PgCluster:
    """Initialise and start a fresh cluster under ``root``."""
    cluster = PgCluster(root)
    cluster.init()
    cluster.start()
    return cluster


if __name__ == "__main__":
    where = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/taskqueue-pg")
    if where.exists():
        shutil.rmtree(where)
    started = start_cluster(where)
    print(started.url)
