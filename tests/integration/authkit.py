"""What the API-key tests share: keys made with ``taskqueue keys ... --db``, a server that needs
them, clients that present them from an address of their own.

Failed attempts are limited per client address (10, then one per 6 s), so a test that sends
many refused requests sends each group of them from a new loopback address (``127.x.y.z``: every
one of them reaches a server listening on 127.0.0.1), and a test of that limit has an address no
other test uses.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BIN, ServerProcess, free_port, module_database, query_db

_ADDRESSES = itertools.count(1)
#: Every server's options: the default limit on failed attempts, whatever the environment says.
SERVER_ARGS = ("--drain-timeout", "1", "--failed-auth-burst", "10")


def fresh_address() -> str:
    """A loopback address no other client of this test process has used."""
    n = next(_ADDRESSES)
    return f"127.{10 + os.getpid() % 200}.{(n >> 8) & 255}.{n & 255}"


def cli_env() -> dict[str, str]:
    """The environment for a ``taskqueue`` command: none of the caller's TASKQUEUE_ settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKQUEUE_")}


def run_keys(db: str, secret: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``taskqueue keys ARGS --db DB --secret-file SECRET``, checked."""
    done = subprocess.run(
        [str(BIN), "keys", *args, "--db", db, "--secret-file", str(secret)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert done.returncode == 0, f"taskqueue keys {' '.join(args)}: {done.stderr}"
    return done


@dataclass
class AuthServer:
    """A server whose database has keys, the keys the tests made, and an admin key."""

    db: str
    secret: Path
    process: ServerProcess
    admin: str = ""
    #: Every secret made (bearer keys and pair secrets): none may ever be seen again.
    secrets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.process.url

    def make_key(self, name: str, *args: str) -> dict[str, Any]:
        """A key made on the database (``keys create -o json``): the whole answer."""
        done = run_keys(self.db, self.secret, "create", "--name", name, *args, "-o", "json")
        made: dict[str, Any] = json.loads(done.stdout)
        for secret in (made.get("key"), made.get("secret_key")):
            if secret:
                self.secrets.append(secret)
        return made

    def bearer(self, name: str, *args: str) -> str:
        """A bearer key made on the database, as ``keys create`` prints it (alone on stdout)."""
        done = run_keys(self.db, self.secret, "create", "--name", name, *args)
        key = done.stdout.strip()
        assert key.startswith("tq_"), done.stdout
        assert "\n" not in key, done.stdout
        self.secrets.append(key)
        return key

    def api_key(self, name: str, **fields: Any) -> dict[str, Any]:
        """A key made by ``POST /api/keys`` with the admin key (the server knows it at once)."""
        with self.admin_client() as admin:
            made = admin.post("/api/keys", json={"name": name, **fields})
        assert made.status_code == 201, made.text
        return self.remember(made.json())

    def client(self, key: str | None = None, address: str | None = None) -> httpx.Client:
        """A client presenting ``key`` (if any) as a bearer key, from ``address``."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        transport = httpx.HTTPTransport(local_address=address or fresh_address())
        return httpx.Client(base_url=self.url, headers=headers, transport=transport, timeout=30)

    def admin_client(self) -> httpx.Client:
        return self.client(self.admin)

    def remember(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Note the secrets of a key made through the API."""
        for name in ("key", "secret_key", "secret"):
            if answer.get(name):
                self.secrets.append(answer[name])
        return answer

    def log(self) -> str:
        assert self.process.log is not None
        return self.process.log.read_text(errors="replace")

    def rows(self, table: str, skip: tuple[str, ...] = ()) -> list[tuple[object, ...]]:
        """Every row of ``table``, read straight from the database, less the ``skip`` columns."""
        columns = [c for c in table_columns(self.db, table) if c not in skip]
        return sorted(query_db(self.db, f"SELECT {', '.join(columns)} FROM {table}"), key=repr)

    def state(self) -> dict[str, list[tuple[object, ...]]]:
        """The tasks, projects and keys as the database holds them (less last-used times, which
        the server writes in the background)."""
        return {
            "tasks": self.rows("tasks"),
            "projects": self.rows("projects"),
            "api_keys": self.rows("api_keys", skip=("last_used_at",)),
            # Less what the dispatcher changes as it delivers (or fails to).
            "webhooks": self.rows("webhooks", skip=_DELIVERY_STATE),
        }


#: The columns of ``webhooks`` the dispatcher writes on its own.
_DELIVERY_STATE = (
    "position",
    "failures",
    "failing_since",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
)


def table_columns(db: str, table: str) -> list[str]:
    if "://" in db:
        rows = query_db(
            db,
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_name = '{table}' ORDER BY ordinal_position",
        )
        return [str(r[0]) for r in rows]
    return [str(r[1]) for r in query_db(db, f"PRAGMA table_info({table})")]


@contextlib.contextmanager
def auth_server(
    request: pytest.FixtureRequest,
    backend: str,
    root: Path,
    *server_args: str,
    prepare: Callable[[AuthServer], dict[str, str] | None] | None = None,
) -> Iterator[AuthServer]:
    """A server on a fresh database that already has an admin key (so every request needs one).

    ``prepare(server)`` runs before the server starts (to make keys it knows from its start);
    the variables it returns are in the server's environment.
    """
    with module_database(request, backend, root) as db:
        secret = root / "pepper.secret"
        process = ServerProcess(
            db=db,
            port=free_port(),
            log=root / "server.log",
            args=[*SERVER_ARGS, "--secret-file", str(secret), *server_args],
        )
        server = AuthServer(db=db, secret=secret, process=process)
        server.admin = server.bearer("admin", "--admin")
        env = prepare(server) if prepare is not None else None
        with pytest.MonkeyPatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            process.start()
        try:
            yield server
        finally:
            process.stop()


def assert_no_secret(text: str, secrets: list[str], where: str) -> None:
    """Fail if any of ``secrets`` (or its part after the prefix) is in ``text``."""
    for secret in secrets:
        body = secret.split("_", 1)[1]
        assert secret not in text, f"a key's secret is in {where}"
        assert body[8:] not in text, f"a key's secret (less its prefix) is in {where}"
