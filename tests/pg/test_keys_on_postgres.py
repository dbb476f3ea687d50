"""API keys on PostgreSQL: one secret file for every server of a database, and revocations
that reach every server.

Beside a SQLite file the secret file has a default place; a PostgreSQL database has none, so
``keys create --db URL`` needs ``--secret-file``, and so does every server once keys exist (a
fingerprint of the pepper in ``meta`` catches a server given another file).
"""

from __future__ import annotations

import secrets
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from taskqueue.apikeys import PepperError
from taskqueue.service import check_keys
from tests.cli.helpers import assert_one_clear_error, cli, sub_env
from tests.conftest import BIN, ServerProcess, free_port, query_db, wait_until

MakeServer = Callable[..., ServerProcess]

#: The environment of the in-process CLI: no secret file from outside.
NO_SECRET_ENV: dict[str, str | None] = {"TASKQUEUE_SECRET_FILE": None}


def _stored(db_url: str) -> int:
    return len(query_db(db_url, "SELECT id FROM api_keys"))


def _make_key(db_url: str, secret_file: Path, name: str) -> str:
    made = cli(
        None,
        "keys",
        "create",
        "--admin",
        "--name",
        name,
        "--db",
        db_url,
        "--secret-file",
        str(secret_file),
        env=NO_SECRET_ENV,
    )
    assert made.exit_code == 0, made.output
    return made.stdout.strip()


def _server_refuses(db_url: str, *args: str) -> str:
    """Start a server that must refuse to start; its one error line."""
    env = {k: v for k, v in sub_env().items() if k != "TASKQUEUE_SECRET_FILE"}
    result = subprocess.run(
        [str(BIN), "server", "--db", db_url, "--port", str(free_port()), "--workers", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith(("Error: ", "error: "))]
    return line


def with_key(url: str, key: str, *args: str) -> Result:
    """The CLI in process against ``url`` with ``key`` (in TASKQUEUE_API_KEY)."""
    return cli(url, *args, env={**NO_SECRET_ENV, "TASKQUEUE_API_KEY": key})


def _status(url: str, key: str) -> int:
    return httpx.get(f"{url}/api/tasks", headers={"X-API-Key": key}, timeout=10).status_code


def test_keys_on_postgres_need_the_secret_file(db_url: str, tmp_path: Path) -> None:
    refused = cli(
        None, "keys", "create", "--admin", "--name", "a", "--db", db_url, env=NO_SECRET_ENV
    )
    assert refused.exit_code != 0
    assert_one_clear_error(refused.stderr, "--secret-file")
    assert refused.stdout == ""
    assert _stored(db_url) == 0

    secret_file = tmp_path / "pg.secret"
    _make_key(db_url, secret_file, "root")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert _stored(db_url) == 1

    line = _server_refuses(db_url)
    assert "has API keys" in line
    assert "--secret-file" in line
    other = tmp_path / "other.secret"
    other.write_text(secrets.token_hex(32) + "\n")
    other.chmod(0o600)
    assert "is not the one" in _server_refuses(db_url, "--secret-file", str(other))
    missing = tmp_path / "missing.secret"
    with pytest.raises(PepperError, match="does not exist"):
        check_keys(db_url, missing)  # what a server checks before it serves
    assert not missing.exists()  # no pepper made that could check none of the keys


def test_two_servers_share_keys_and_revocations(
    db_url: str, tmp_path: Path, make_server: MakeServer
) -> None:
    secret_file = tmp_path / "shared.secret"
    root = _make_key(db_url, secret_file, "root")
    # The polls below are refused until each server has read the new key (or its
    # revocation): more failed attempts than one address may make by default.
    polled = ("--failed-auth-burst", "100000")
    one = make_server("--workers", "0", "--secret-file", str(secret_file), *polled)
    two = make_server("--workers", "0", "--secret-file", str(secret_file), *polled)

    made = with_key(one.url, root, "keys", "create", "--name", "shared", "--scope", "write")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert _status(one.url, key) == 200
    wait_until(lambda: _status(two.url, key) == 200, 10, "the other server to accept the key")
    assert _status(two.url, "tq_" + "x" * 43) == 401

    revoked = with_key(two.url, root, "keys", "revoke", key[:11])
    assert revoked.exit_code == 0, revoked.output
    assert _status(two.url, key) == 401
    wait_until(lambda: _status(one.url, key) == 401, 10, "the other server to refuse the key")
    assert _status(one.url, root) == 200
    listed = with_key(one.url, root, "--format", "json", "keys", "list")
    assert listed.exit_code == 0, listed.output
    assert key not in listed.stdout
