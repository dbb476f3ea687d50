"""``taskqueue keys ...``: the first key with no server, keys through the API, the secret file.

Most tests share one server on a database that has an admin key (``keyed``); the bootstrap and
the secret-file tests make their own databases. Refused requests count against the server's
failed-authentication limit per address (a burst of 10), so the shared server sees few of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import Result

from taskqueue.apikeys import PepperError
from taskqueue.service import check_keys
from tests.cli.helpers import (
    assert_one_clear_error,
    cli,
    header,
    make_project,
    names_in,
    sub_env,
    table_rows,
    tq,
)
from tests.conftest import BIN, ServerProcess, free_port, query_db, wait_until

#: A bearer key as ``keys create`` prints it.
BEARER = re.compile(r"^tq_[0-9A-Za-z]{43}$")


@dataclass
class Keyed:
    """The shared server, its database, and the admin key made on that database."""

    server: ServerProcess
    db: Path
    root: str

    @property
    def url(self) -> str:
        return self.server.url

    def admin(self, *args: str) -> Result:
        """The CLI in process, against the server, with the admin key."""
        return with_key(self.url, self.root, *args)

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def listed(self) -> list[dict[str, Any]]:
        """Every key, as the API lists it."""
        with self.http(self.root) as client:
            response = client.get("/api/keys")
        assert response.status_code == 200, response.text
        return list(response.json()["keys"])

    def key(self, name: str) -> dict[str, Any]:
        [found] = [k for k in self.listed() if k["name"] == name]
        return found

    def make(self, name: str, *args: str) -> str:
        """A new key made through the CLI and the API; its secret."""
        made = self.admin("keys", "create", "--name", name, *args)
        assert made.exit_code == 0, made.output
        key = made.stdout.strip()
        assert BEARER.match(key), made.stdout
        return key


def with_key(url: str, key: str, *args: str) -> Result:
    """The CLI in process against ``url`` with ``key`` (in TASKQUEUE_API_KEY, as advised)."""
    return cli(url, *args, env={"TASKQUEUE_API_KEY": key})


def status_with(keyed: Keyed, key: str, path: str = "/api/tasks") -> int:
    with keyed.http(key) as client:
        return client.get(path).status_code


def assert_refused(result: Result, code: int | None, *expected: str) -> str:
    """A failed in-process run: the exit code, one clear error line, no exception escaped."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return assert_one_clear_error(result.stderr, *expected)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    root = tmp_path_factory.mktemp("keyed")
    db = root / "tq.db"
    made = cli(None, "keys", "create", "--admin", "--name", "root", "--db", str(db))
    assert made.exit_code == 0, made.output
    server = ServerProcess(
        db=db, port=free_port(), args=["--workers", "0"], log=root / "server.log"
    )
    server.start()
    try:
        yield Keyed(server, db, made.stdout.strip())
    finally:
        server.stop()


# ------------------------------------------------------------------ the first key


def test_the_first_key_is_made_on_the_database_with_no_server(tmp_path: Path) -> None:
    work = Path.cwd()  # isolated_config's empty working directory
    env = {k: v for k, v in sub_env().items() if k != "TASKQUEUE_DATABASE_URL"}

    fresh = ServerProcess(
        db=tmp_path / "fresh.db", port=free_port(), args=["--workers", "0"], log=tmp_path / "f.log"
    )
    fresh.start()
    try:
        assert httpx.get(f"{fresh.url}/api/tasks").status_code == 200  # no keys: no key needed
    finally:
        fresh.stop()
    assert "taskqueue keys create --admin --name" in (tmp_path / "f.log").read_text()

    made = tq("keys", "create", "--admin", "--name", "first", env=env, cwd=work)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert made.stdout == key + "\n", made.stdout  # the key alone
    assert BEARER.match(key), made.stdout
    assert "taskqueue.db" in made.stderr
    assert "only time" in made.stderr
    assert "Traceback" not in made.stderr
    secret = work / "taskqueue.db.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert key not in secret.read_text()
    assert not [row for row in query_db(work / "taskqueue.db", "SELECT * FROM api_keys")
                if any(key in str(v) for v in row)]  # fmt: skip

    server = ServerProcess(
        db=work / "taskqueue.db", port=free_port(), args=["--workers", "0"], log=tmp_path / "s.log"
    )
    server.start()
    try:
        assert httpx.get(f"{server.url}/api/tasks").status_code == 401
        bearer = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{server.url}/api/tasks", headers=bearer).status_code == 200
        assert httpx.get(f"{server.url}/api/tasks", headers={"X-API-Key": key}).status_code == 200
        listed = with_key(server.url, key, "keys", "list")
        assert listed.exit_code == 0, listed.output
        assert names_in(listed.stdout) == ["first"]
    finally:
        server.stop()
    assert key not in (tmp_path / "s.log").read_text()


# ------------------------------------------------------------------ through the API


def test_create_through_the_api_resolves_a_project_name(keyed: Keyed) -> None:
    with keyed.http(keyed.root) as client:
        project = make_project(client, "keys-etl")
        make_project(client, "keys-other")
    made = keyed.admin(
        "keys", "create", "--name", "ci", "--scope", "write", "--project", "keys-etl"
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert BEARER.match(key), made.stdout
    assert "'ci'" in made.stderr
    assert key not in made.stderr
    stored = keyed.key("ci")
    assert stored["scopes"] == ["write"]
    assert stored["projects"] == [project["id"]]
    assert stored["prefix"] == key[:11]
    assert stored["status"] == "active"
    with keyed.http(key) as client:
        seen = client.get("/api/projects").json()["projects"]
        assert [p["name"] for p in seen] == ["keys-etl"]  # the key sees its project alone
        assert client.get("/api/keys").status_code == 403  # write is not admin


def test_a_key_pair_is_printed_as_two_variables_and_listed_without_its_secret(
    keyed: Keyed,
) -> None:
    made = keyed.admin("keys", "create", "--name", "signer", "--pair", "--scope", "write")
    assert made.exit_code == 0, made.output
    lines = made.stdout.splitlines()
    assert len(lines) == 2, made.stdout
    assert re.fullmatch(r"TASKQUEUE_PUBLIC_KEY=tqp_[0-9A-Za-z]{16}", lines[0])
    assert re.fullmatch(r"TASKQUEUE_SECRET_KEY=tqs_[0-9A-Za-z]{43}", lines[1])
    public, secret = (line.split("=", 1)[1] for line in lines)
    stored = keyed.key("signer")
    assert stored["kind"] == "pair"
    assert stored["prefix"] == public
    listed = keyed.admin("--format", "json", "keys", "list")
    assert public in listed.stdout
    assert secret not in listed.stdout
    assert not [row for row in query_db(keyed.db, "SELECT * FROM api_keys")
                if any(secret in str(v) for v in row)]  # fmt: skip


def test_list_shows_every_field_and_never_a_secret(keyed: Keyed) -> None:
    key = keyed.make("lister", "--scope", "read", "--expires-in", "30d", "--rate-limit", "50")
    assert keyed.key("lister")["last_used_at"] is None
    before = datetime.now(timezone.utc)
    assert status_with(keyed, key) == 200

    def last_used() -> str | None:
        return keyed.key("lister")["last_used_at"]

    wait_until(lambda: last_used() is not None, 10, "the key's last use to be recorded")
    after = datetime.now(timezone.utc)
    when = datetime.fromisoformat(str(last_used()).replace("Z", "+00:00"))
    # The time recorded is that of the use (same clock, this machine), not of anything else.
    assert before <= when <= after

    table = keyed.admin("keys", "list")
    assert table.exit_code == 0, table.output
    columns = header(table.stdout)
    for column in ("NAME", "PREFIX", "SCOPES", "PROJECTS", "STATUS", "LAST USED", "EXPIRES"):
        assert column in columns, columns
    [row] = [r for r in table_rows(table.stdout) if r[columns.index("NAME")] == "lister"]
    assert row[columns.index("PREFIX")] == key[:11]
    assert row[columns.index("SCOPES")] == "read"
    assert row[columns.index("PROJECTS")] == "all"
    assert row[columns.index("STATUS")] == "active"
    assert row[columns.index("LAST USED")] not in ("", "never")
    [root_row] = [r for r in table_rows(table.stdout) if r[columns.index("NAME")] == "root"]
    assert root_row[columns.index("SCOPES")] == "admin"

    as_json_ = keyed.admin("--format", "json", "keys", "list")
    as_yaml = keyed.admin("--format", "yaml", "keys", "list")
    assert as_json_.exit_code == 0
    assert as_yaml.exit_code == 0
    assert json.loads(as_json_.stdout) == yaml.safe_load(as_yaml.stdout)
    listed = {k["name"]: k for k in json.loads(as_json_.stdout)}
    assert listed["lister"]["rate_limit"] == 50
    assert listed["lister"]["expires_at"]
    assert listed["lister"]["last_used_at"] is not None
    for result in (table, as_json_, as_yaml):
        for secret in (key, keyed.root):
            assert secret not in result.stdout
            assert secret not in result.stderr
        assert "hash" not in result.stdout
    assert keyed.server.log is not None
    assert key not in keyed.server.log.read_text()


def test_revoke_by_prefix_and_by_the_start_of_the_id(keyed: Keyed) -> None:
    first = keyed.make("revoke-a")
    second = keyed.make("revoke-b")
    assert status_with(keyed, first) == 200
    assert status_with(keyed, second) == 200

    by_prefix = keyed.admin("keys", "revoke", first[:11])
    assert by_prefix.exit_code == 0, by_prefix.output
    assert "revoked revoke-a" in by_prefix.stdout
    assert status_with(keyed, first) == 401  # this server: at once
    assert status_with(keyed, second) == 200

    start = keyed.key("revoke-b")["id"][:23]
    by_id = keyed.admin("keys", "revoke", start)
    assert by_id.exit_code == 0, by_id.output
    assert status_with(keyed, second) == 401
    listed = {k["name"]: k for k in keyed.listed()}
    assert listed["revoke-a"]["status"] == listed["revoke-b"]["status"] == "revoked"
    assert listed["revoke-b"]["revoked_at"]
    assert listed["root"]["status"] == "active"


def test_revoke_refuses_a_part_of_the_id_that_several_keys_share(keyed: Keyed) -> None:
    keyed.make("shared-start-1")
    keyed.make("shared-start-2")
    before = keyed.listed()
    ids = [k["id"] for k in before]
    common = next(
        (ids[0][:n] for n in range(36, 0, -1) if all(i[:n] == ids[0][:n] for i in ids)), ""
    )
    if len(common) < 4:  # pragma: no cover - keys made more than ~a minute apart
        pytest.skip("the keys' ids share fewer than 4 characters")
    result = keyed.admin("keys", "revoke", common[:8])
    assert_refused(result, None, "matches", "keys")
    assert [k["status"] for k in keyed.listed()] == [k["status"] for k in before]
    unknown = keyed.admin("keys", "revoke", "tq_NotAKey0")
    assert_refused(unknown, None, "no key", "tq_NotAKey0")
    assert [k["status"] for k in keyed.listed()] == [k["status"] for k in before]


def test_rotate_makes_a_new_key_and_the_old_one_works_for_the_grace(keyed: Keyed) -> None:
    old = keyed.make("rotating", "--scope", "write")
    rotated = keyed.admin("keys", "rotate", old[:11], "--grace", "1h")
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip()
    assert BEARER.match(new)
    assert new != old
    assert status_with(keyed, new) == 200
    assert status_with(keyed, old) == 200  # within its grace
    both = [k for k in keyed.listed() if k["name"] == "rotating"]
    assert len(both) == 2
    assert {k["scopes"][0] for k in both} == {"write"}
    [was] = [k for k in both if k["prefix"] == old[:11]]
    expires = datetime.fromisoformat(was["expires_at"].replace("Z", "+00:00"))
    left = expires - datetime.now(timezone.utc)
    assert timedelta(minutes=55) < left <= timedelta(hours=1)

    again = keyed.admin("keys", "rotate", new[:11], "--grace", "1s")
    assert again.exit_code == 0, again.output
    newest = again.stdout.strip()
    assert status_with(keyed, newest) == 200
    wait_until(lambda: status_with(keyed, new) == 401, 10, "the rotated key to expire")
    [expired] = [k for k in keyed.listed() if k["prefix"] == new[:11]]
    assert expired["status"] == "expired"
    assert status_with(keyed, newest) == 200
    bad = keyed.admin("keys", "rotate", new[:11], "--grace", "soon")
    assert_refused(bad, 2, "--grace", "not a duration")


def test_rotate_keeps_an_expiring_key_expiring(keyed: Keyed) -> None:
    old = keyed.make("rotating-expiring", "--expires-in", "30d", "--rate-limit", "5")
    rotated = keyed.admin("--format", "json", "keys", "rotate", old[:11], "--grace", "1h")
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)
    assert new["rate_limit"] == 5
    assert new["expires_at"] is not None


# ------------------------------------------------------------------ refused, nothing stored

BAD_INPUT = {
    "unknown project": (["--project", "no-such-project"], 3, "no-such-project"),
    "bad duration": (["--expires-in", "3x"], 2, "--expires-in"),
    "duration of 0": (["--expires-in", "0"], 2, "--expires-in"),
    "non-ASCII digits": (["--expires-in", "²"], 2, "--expires-in"),
    "too long": (["--expires-in", "99999999999999d"], 2, "100 years"),
    "rate of 0": (["--rate-limit", "0"], 2, "--rate-limit"),
    "burst of 0": (["--burst", "0"], 2, "--burst"),
    "unknown scope": (["--scope", "root"], 2, "--scope"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_is_one_clear_error_and_stores_nothing(keyed: Keyed, case: str) -> None:
    args, code, text = BAD_INPUT[case]
    before = len(keyed.listed())
    result = keyed.admin("keys", "create", "--name", f"bad {case}", *args)
    assert_refused(result, code, text)
    assert result.stdout == ""
    assert len(keyed.listed()) == before


def test_bad_input_on_the_database_is_one_clear_error_and_stores_nothing(keyed: Keyed) -> None:
    before = len(keyed.listed())
    result = cli(None, "keys", "create", "--name", "x", "--project", "nope", "--db", str(keyed.db))
    assert_refused(result, None, "nope")
    unknown = cli(None, "keys", "revoke", "no-such-key", "--db", str(keyed.db))
    assert_refused(unknown, None, "no-such-key")
    assert len(keyed.listed()) == before


def test_a_read_key_cannot_make_keys(keyed: Keyed) -> None:
    reader = keyed.make("reader")
    assert status_with(keyed, reader) == 200
    before = len(keyed.listed())
    for extra in ([], ["--admin"]):  # --admin with a key goes to the API too, never the file
        result = with_key(keyed.url, reader, "keys", "create", "--name", "more", *extra)
        assert_refused(result, None, "'reader'", "admin")
    assert len(keyed.listed()) == before
    with keyed.http(reader) as client:
        assert client.post("/api/tasks", json={"name": "x", "command": "true"}).status_code == 403


def test_a_project_limited_admin_key_cannot_manage_keys(keyed: Keyed) -> None:
    with keyed.http(keyed.root) as client:
        make_project(client, "keys-limited")
    limited = keyed.make("limited-admin", "--admin", "--project", "keys-limited")
    victim = keyed.make("victim")
    before = keyed.listed()
    for args in (["create", "--name", "wider", "--admin"], ["list"], ["revoke", victim[:11]]):
        result = with_key(keyed.url, limited, "keys", *args)
        assert_refused(result, None, "limited to some projects")
    assert keyed.listed() == before
    assert status_with(keyed, victim) == 200


# ------------------------------------------------------------------ the secret file


def _server_refuses(db: Path, *args: str) -> str:
    """Start a server that must refuse to start; its one error line."""
    result = subprocess.run(
        [str(BIN), "server", "--db", str(db), "--port", str(free_port()), "--workers", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=sub_env(),
        check=False,
    )
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith(("Error: ", "error: "))]
    return line


def test_the_secret_file(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    secret = tmp_path / "s.db.secret"
    old = os.umask(0o022)
    try:
        made = cli(None, "keys", "create", "--admin", "--name", "a", "--db", str(db))
    finally:
        os.umask(old)
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", secret.read_text())

    def stored() -> int:
        return len(query_db(db, "SELECT id FROM api_keys"))

    secret.chmod(0o644)
    open_file = cli(None, "keys", "create", "--admin", "--name", "b", "--db", str(db))
    assert_refused(open_file, None, "readable by others", f"chmod 600 {secret}")
    assert stored() == 1
    with pytest.raises(PepperError, match=f"chmod 600 {secret}"):
        check_keys(str(db), None)  # what a server checks before it serves
    secret.chmod(0o600)

    other = tmp_path / "other.secret"
    other.write_text(secrets.token_hex(32) + "\n")
    other.chmod(0o600)
    assert "is not the one" in _server_refuses(db, "--secret-file", str(other))
    wrong = cli(None, "keys", "list", "--db", str(db), "--secret-file", str(other))
    assert_refused(wrong, None, "is not the one")

    secret.rename(tmp_path / "kept")
    with pytest.raises(PepperError, match="does not exist"):
        check_keys(str(db), None)
    assert not secret.exists()  # no new pepper was made beside it
    missing = cli(None, "keys", "create", "--admin", "--name", "c", "--db", str(db))
    assert_refused(missing, None, "does not exist")
    assert not secret.exists()
    assert stored() == 1


def test_a_background_re_read_never_puts_back_a_key_a_request_just_changed() -> None:
    """What makes ``keys revoke`` (and a new key) take effect at once on the server that did it:
    the ring's background re-read, begun before the change, is dropped if it ends after the
    request's own re-read."""
    from taskqueue.server.keyring import Keyring

    def row(revoked_at: int | None) -> dict[str, Any]:
        return {"id": "k", "name": "k", "prefix": "tq_abcdefgh", "kind": "bearer", "hash": "0",
                "scopes": '["read"]', "projects": None, "rate_limit": None, "burst": None,
                "expires_at": None, "revoked_at": revoked_at}  # fmt: skip

    class Store:
        url = ":memory:"

        def __init__(self) -> None:
            self.stored = [row(None)]
            self.hold: asyncio.Event | None = None
            self.keys = self  # the store's keys: store.keys.rows()

        async def rows(self) -> list[dict[str, Any]]:
            rows, hold = list(self.stored), self.hold
            if hold is not None:
                await hold.wait()  # a slow read: it returns what it saw when it began
            return rows

    async def main() -> None:
        store = Store()
        ring = Keyring(store, None)  # type: ignore[arg-type]
        await ring.refresh()
        store.hold = asyncio.Event()
        background = asyncio.create_task(ring.refresh())  # begins before the revocation
        await asyncio.sleep(0)
        store.stored, hold, store.hold = [row(1)], store.hold, None
        await ring.refresh()  # the revoking request's own re-read
        hold.set()
        await background
        assert ring._by_prefix["tq_abcdefgh"].revoked_at == 1

    asyncio.run(main())
