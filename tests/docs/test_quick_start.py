"""The README's quick start leaves a ``taskqueue`` command that works from any shell."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from taskqueue import __version__

ROOT = Path(__file__).resolve().parents[2]


def _link(home: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": path}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "link-command")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_the_command_is_linked_into_a_bin_directory_on_path(tmp_path: Path) -> None:
    local_bin = tmp_path / ".local" / "bin"
    local_bin.mkdir(parents=True)
    path = f"{local_bin}:/usr/bin:/bin"
    result = _link(tmp_path, path)
    assert result.returncode == 0, result.stderr
    link = local_bin / "taskqueue"
    assert link.resolve() == (ROOT / ".venv" / "bin" / "taskqueue").resolve()
    # A new shell with only that PATH finds it, as the README's examples expect.
    version = subprocess.run(
        ["bash", "-c", "taskqueue --version"],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": path},
        timeout=30,
        check=False,
    )
    assert version.returncode == 0, version.stderr
    assert __version__ in version.stdout
    # Running it again changes nothing and succeeds.
    assert _link(tmp_path, path).returncode == 0
    assert link.resolve() == (ROOT / ".venv" / "bin" / "taskqueue").resolve()


def test_someone_elses_taskqueue_is_left_alone(tmp_path: Path) -> None:
    local_bin = tmp_path / ".local" / "bin"
    local_bin.mkdir(parents=True)
    theirs = local_bin / "taskqueue"
    theirs.write_text("#!/bin/sh\necho theirs\n")
    before = theirs.read_text()
    result = _link(tmp_path, f"{local_bin}:/usr/bin:/bin")
    assert theirs.read_text() == before
    assert "left alone" in result.stderr


def test_without_a_bin_directory_on_path_it_says_how(tmp_path: Path) -> None:
    result = _link(tmp_path, "/usr/bin:/bin")
    assert result.returncode == 0
    assert f'export PATH="{ROOT}/.venv/bin:$PATH"' in result.stderr
    assert not (tmp_path / ".local" / "bin").exists()
    assert os.access(ROOT / ".venv" / "bin" / "taskqueue", os.X_OK)
