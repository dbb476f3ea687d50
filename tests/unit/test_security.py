"""The pieces that keep a taskqueue process's secrets from its commands, one at a time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from taskqueue.security import RunAs, read_secret_file, resolve_run_as
from taskqueue.worker.attempt import is_private
from tests.unprivileged import NOBODY


def test_a_process_made_undumpable_stays_so_and_its_children_do_not() -> None:
    script = (
        "import subprocess; from taskqueue.security import is_dumpable, make_undumpable;"
        "print(is_dumpable()); print(make_undumpable()); print(is_dumpable());"
        "subprocess.run(['grep', '-c', '', '/proc/self/environ'], check=True,"
        " stdout=subprocess.DEVNULL)"  # a child reads its own environ: an ordinary process
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "False"]


def test_run_as_names_an_unprivileged_user_of_this_host() -> None:
    nobody = resolve_run_as("nobody")
    assert (nobody.uid, nobody.gid, nobody.home) == (NOBODY.pw_uid, NOBODY.pw_gid, NOBODY.pw_dir)
    assert NOBODY.pw_gid in nobody.groups
    assert resolve_run_as(str(NOBODY.pw_uid)) == nobody
    with pytest.raises(ValueError, match="there is no user 'no-such-user-here'"):
        resolve_run_as("no-such-user-here")
    with pytest.raises(ValueError, match="is root"):
        resolve_run_as("0")


def test_a_run_as_command_starts_at_home_only_if_it_may_reach_it(tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="taskqueue-home-"))  # under /tmp: anyone may enter
    try:
        shared.chmod(0o755)
        home = shared / "home"
        home.mkdir(mode=0o700)  # root's
        user = RunAs("nobody", NOBODY.pw_uid, NOBODY.pw_gid, (NOBODY.pw_gid,), str(home))
        assert user.start_directory == "/"
        home.chmod(0o711)
        assert user.start_directory == str(home)
        shared.chmod(0o700)  # the way there is closed
        assert user.start_directory == "/"
    finally:
        shutil.rmtree(shared)
    hidden = tmp_path / "home"  # pytest's directories are closed to other users
    hidden.mkdir(mode=0o755)
    assert RunAs("nobody", NOBODY.pw_uid, NOBODY.pw_gid, (), str(hidden)).start_directory == "/"
    assert RunAs("x", 1, 1, (1,), str(tmp_path / "missing")).start_directory == "/"
    env = user.environment({"HOME": "/root", "USER": "root", "XDG_RUNTIME_DIR": "/run/0", "A": "b"})
    assert env == {"HOME": str(home), "USER": "nobody", "LOGNAME": "nobody", "A": "b"}


def test_a_secret_file_holds_the_secret_alone(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("  postgresql://u:pw@h/d \n")
    secret.chmod(0o600)
    assert read_secret_file(str(secret)) == ("postgresql://u:pw@h/d", None)
    secret.chmod(0o640)
    _, warning = read_secret_file(str(secret))
    assert warning is not None
    assert "mode 640" in warning
    secret.write_text("pw-one\npw-two\n")
    with pytest.raises(ValueError, match="more than one line") as refused:
        read_secret_file(str(secret))
    assert "pw-" not in str(refused.value)


def test_secret_looking_variables_are_withheld_from_commands() -> None:
    for name in (
        "TASKQUEUE_DATABASE_URL",
        "TASKQUEUE_DATABASE_URL_FILE",
        "TASKQUEUE_API_KEY",
        "TASKQUEUE_API_KEY_FILE",
        "TASKQUEUE_WEBHOOK_SECRET",
        "TASKQUEUE_S3_TOKEN",
        "PGPASSWORD",
        "PGPASSFILE",
    ):
        assert is_private(name), name
    for name in ("TASKQUEUE_URL", "TASKQUEUE_RUN_AS", "PATH", "HOME", "PGHOST", "KEYBOARD"):
        assert not is_private(name), name
