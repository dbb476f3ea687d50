"""Where the server-side commands take their database from, and what they print of it.

* ``--database-url-file`` / ``TASKQUEUE_DATABASE_URL_FILE`` give the URL in a file, on every
  command that takes ``--db``; giving both, a missing file or an empty one is one clear line.
* A libpq keyword string (``host=... password=...``) is refused, naming the URL form to use,
  and no file of that name is made.
* No banner or error shows a password, whatever form it takes, even when the driver's own
  error would have echoed part of it.
* ``--run-as`` is refused for an unknown user, for root, and when taskqueue is not root.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import assert_one_clear_error, sub_env, tq
from tests.conftest import BIN, free_port
from tests.unprivileged import as_nobody

#: The commands that take ``--db``, with what makes each one stop at once after its checks.
DB_COMMANDS = (["db", "upgrade"], ["server", "--port", "1"], ["worker"])

SECRETS = ("S3cret", "PW", "Other", "hunter2")


def _errors(stderr: str) -> str:
    """Stderr without the warning a root process without ``--run-as`` prints first."""
    return "".join(
        line for line in stderr.splitlines(keepends=True) if "runs as root without" not in line
    )


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


def test_a_keyword_string_is_refused_and_makes_no_file(tmp_path: Path) -> None:
    dsn = "host=localhost port=5432 dbname=tq user=tq password=hunter2"
    work = tmp_path / "work"
    work.mkdir()
    for command in DB_COMMANDS:
        for env in ({}, {"TASKQUEUE_DATABASE_URL": dsn}):
            args = [*command] if env else [*command, "--db", dsn]
            result = tq(*args, env=sub_env(env), cwd=work)
            assert result.returncode == 2, (command, result.stderr)
            line = assert_one_clear_error(result.stderr, "libpq keyword string", "postgresql://")
            _no_secret(line)
            assert "password=***" in line
    assert list(work.iterdir()) == []


def test_the_url_can_come_from_a_file(tmp_path: Path) -> None:
    db = tmp_path / "from-file.db"
    url_file = tmp_path / "url"
    url_file.write_text(f"sqlite:///{db}\n")
    url_file.chmod(0o600)
    by_option = tq("db", "upgrade", "--database-url-file", str(url_file))
    assert by_option.returncode == 0, by_option.stderr
    assert by_option.stdout.strip() == f"database sqlite:///{db} is up to date"
    assert by_option.stderr == ""
    by_env = tq("db", "upgrade", env=sub_env({"TASKQUEUE_DATABASE_URL_FILE": str(url_file)}))
    assert by_env.returncode == 0, by_env.stderr
    assert db.exists()


def test_a_url_file_others_may_read_is_used_with_a_warning(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text(str(tmp_path / "shared.db"))
    url_file.chmod(0o644)
    result = tq("db", "upgrade", "--database-url-file", str(url_file))
    assert result.returncode == 0, result.stderr
    assert "can be read by other users (mode 644); chmod 600 it" in result.stderr


def test_bad_url_files_are_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    two = tmp_path / "two-lines"
    two.write_text("a.db\nb.db\n")
    missing = tmp_path / "missing"
    url_file = tmp_path / "url"
    url_file.write_text("x.db")
    cases = (
        (["--database-url-file", str(missing)], {}, "cannot read file", "No such file"),
        (["--database-url-file", str(empty)], {}, f"file '{empty}' is empty", ""),
        (["--database-url-file", str(two)], {}, "more than one line", ""),
        (["--database-url-file", str(tmp_path)], {}, "cannot read file", ""),
        (["--db", "a.db", "--database-url-file", str(url_file)], {}, "not both", ""),
        (["--db", "a.db"], {"TASKQUEUE_DATABASE_URL_FILE": str(url_file)}, "not both", ""),
        (
            ["--database-url-file", str(url_file)],
            {"TASKQUEUE_DATABASE_URL": "a.db"},
            "--db (or TASKQUEUE_DATABASE_URL) or --database-url-file",
            "not both",
        ),
    )
    work = tmp_path / "work"
    work.mkdir()
    for command in DB_COMMANDS:
        for args, env, *expected in cases:
            result = tq(*command, *args, env=sub_env(env), cwd=work)
            assert result.returncode == 2, (command, args, result.stderr)
            assert_one_clear_error(result.stderr, *[e for e in expected if e])
    assert list(work.iterdir()) == []


def test_no_password_shows_in_refusals_of_ambiguous_urls(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for url in (
        "postgresql://tq:S3cret@PW@127.0.0.1:1/db?password=Other",
        "postgresql://tq:hunter2/PW@127.0.0.1:1/db",
        "postgresql://tq:hunter2?PW@127.0.0.1:1/db",
        "postgresql://tq@127.0.0.1:1/db?password=Other&hunter2",
    ):
        for command in DB_COMMANDS:
            result = tq(*command, "--db", url, cwd=work)
            assert result.returncode == 2, (url, result.stderr)
            _no_secret(assert_one_clear_error(result.stderr, "postgresql://tq"))
            _no_secret(result.stdout)
    assert list(work.iterdir()) == []


def test_no_password_shows_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    # A closed port: the driver's error is printed, the password is not, in any form.
    port = free_port()
    url_file = tmp_path / "url"
    url_file.write_text(f"postgresql://tq:S3cret%40PW@127.0.0.1:{port}/db?password=Other")
    url_file.chmod(0o600)
    for command in DB_COMMANDS:
        result = tq(*command, "--database-url-file", str(url_file), cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        line = assert_one_clear_error(_errors(result.stderr), "cannot use the database")
        assert f"postgresql://tq:***@127.0.0.1:{port}/db?password=***" in line
        _no_secret(result.stderr)
        _no_secret(result.stdout)


def test_the_banner_masks_the_password(tmp_path: Path, pg_url_with_password: str) -> None:
    url_file = tmp_path / "url"
    url_file.write_text(pg_url_with_password)
    url_file.chmod(0o600)
    upgraded = tq("db", "upgrade", "--database-url-file", str(url_file))
    assert upgraded.returncode == 0, upgraded.stderr
    assert "postgresql://postgres:***@127.0.0.1" in upgraded.stdout
    assert "hunter2" not in upgraded.stdout + upgraded.stderr


@pytest.fixture
def pg_url_with_password(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of the session's cluster, its URL carrying a password (trust ignores it)."""
    import sqlalchemy

    databases = request.getfixturevalue("pg")
    url = databases.create(migrated=False)
    parsed = sqlalchemy.engine.make_url(url).set(password="hunter2-S3cret")
    yield parsed.render_as_string(hide_password=False)
    databases.drop(url)


def test_run_as_is_refused_for_unknown_users_and_root(tmp_path: Path) -> None:
    db = str(tmp_path / "never.db")
    for command in (["server", "--port", str(free_port())], ["worker"]):
        unknown = tq(*command, "--db", db, "--run-as", "no-such-user-here")
        assert unknown.returncode == 2, unknown.stderr
        assert_one_clear_error(unknown.stderr, "--run-as", "no user 'no-such-user-here'")
        env = sub_env({"TASKQUEUE_RUN_AS": "root"})
        root = tq(*command, "--db", db, env=env)
        assert root.returncode == 2, root.stderr
        assert_one_clear_error(root.stderr, "'root' is root: give an unprivileged user")
    assert not Path(db).exists()


def test_run_as_is_refused_when_taskqueue_is_not_root(tmp_path: Path) -> None:
    for command in (["server", "--port", str(free_port())], ["worker"]):
        result = subprocess.run(
            as_nobody([str(BIN), *command, "--db", "/tmp/never.db", "--run-as", "daemon"]),
            capture_output=True,
            text=True,
            env=sub_env(),
            cwd="/",
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        # Under the test command, coverage (not taskqueue) then fails to save its data as
        # nobody and says so after the command's own words: those are what is checked.
        said = result.stderr.split("Exception ignored in atexit callback")[0]
        assert_one_clear_error(said, "needs root", "runs as uid")
    assert not os.path.exists("/tmp/never.db")
