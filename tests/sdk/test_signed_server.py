"""The SDK's signed requests against the real server, which checks every signature.

A key pair is made on a fresh database (``taskqueue keys create --pair --db``), a real
``taskqueue server`` serves it, and both clients, the CLI and a client configured only by an
accounts file sign in with it. A wrong secret is refused, and calls repeated within one second
are not taken for replays.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskqueue import AsyncTaskQueueClient, AuthenticationError, TaskQueueClient
from tests.conftest import BIN, ServerProcess, free_port


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str, str]]:
    """A server whose database has one admin key pair, and that pair."""
    root = tmp_path_factory.mktemp("signed-server")
    db = root / "tq.db"
    made = subprocess.run(
        [str(BIN), "keys", "create", "--admin", "--pair", "--name", "sdk", "--db", str(db),
         "-o", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = json.loads(made.stdout)
    server = ServerProcess(db=db, port=free_port(), args=["--workers", "0"], log=root / "log")
    server.start()
    try:
        yield server, key["public_key"], key["secret_key"]
    finally:
        server.stop()
    assert key["secret_key"] not in (root / "log").read_text()


@pytest.fixture(autouse=True)
def no_outside_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API", "PUBLIC", "SECRET"):
        monkeypatch.delenv(f"TASKQUEUE_{name}_KEY", raising=False)
    for name in ("TASKQUEUE_PROFILE", "TASKQUEUE_ACCOUNT", "TASKQUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def test_the_sync_client_signs_in(signed: tuple[ServerProcess, str, str]) -> None:
    server, public, secret = signed
    with TaskQueueClient(server.url, public_key=public, secret_key=secret) as client:
        project = client.create_project("signed sync ✓", description="a:b")
        assert client.get_project(project.id).name == "signed sync ✓"
        names = [p.name for p in client.list_projects(limit=50)]
        assert "signed sync ✓" in names
        for _ in range(5):  # the same request, five times in a second or two
            assert client.get_project(project.id).id == project.id
        task = client.create_task(name="t", command="true", project_id=project.id)
        assert client.list_tasks(project_id=project.id, status="Pending")[0].id == task.id
        assert client.delete_project(project.id, cascade=True) is True


def test_the_async_client_signs_in(signed: tuple[ServerProcess, str, str]) -> None:
    server, public, secret = signed

    async def main() -> list[str]:
        async with AsyncTaskQueueClient(server.url, public_key=public, secret_key=secret) as c:
            project = await c.create_project("signed async")
            # Ten identical calls at once: each must carry a signature of its own.
            answers = await asyncio.gather(*(c.get_project(project.id) for _ in range(10)))
            return [a.name for a in answers]

    assert asyncio.run(main()) == ["signed async"] * 10


def test_a_wrong_secret_is_refused(signed: tuple[ServerProcess, str, str]) -> None:
    server, public, _ = signed
    wrong = "tqs_" + "x" * 43
    with TaskQueueClient(server.url, public_key=public, secret_key=wrong) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.list_projects()
    assert caught.value.status_code == 401
    assert "signature is not valid" in str(caught.value)
    assert wrong not in str(caught.value)


def test_an_accounts_file_alone_signs_in(signed: tuple[ServerProcess, str, str]) -> None:
    server, public, secret = signed
    accounts = Path("accounts.csv")
    accounts.write_text(f"# made by keys create\n{public},{secret},sdk\n")
    accounts.chmod(0o600)
    with TaskQueueClient(server.url) as client:
        assert client.public_key == public
        assert isinstance(client.list_projects(), list)


def test_the_cli_signs_in_from_the_environment(signed: tuple[ServerProcess, str, str]) -> None:
    server, public, secret = signed
    env = {
        "PATH": str(BIN.parent),
        "HOME": str(Path.cwd()),
        "TASKQUEUE_URL": server.url,
        "TASKQUEUE_PUBLIC_KEY": public,
        "TASKQUEUE_SECRET_KEY": secret,
        "NO_COLOR": "1",
    }
    # A request of its own: the same signed request (the test above lists projects too) within
    # the same second is a replay by design, whichever client sends it.
    listed = subprocess.run(
        [str(BIN), "projects", "list", "--limit", "99", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    unsigned = subprocess.run(
        [str(BIN), "projects", "list"],
        env={k: v for k, v in env.items() if "_KEY" not in k},
        capture_output=True,
        text=True,
    )
    assert unsigned.returncode != 0  # the server needs a key now that one exists
