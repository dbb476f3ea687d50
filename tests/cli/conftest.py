"""Fixtures of the CLI tests: one real server per module, and no real home directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import LEAKY
from tests.conftest import ServerProcess


@pytest.fixture(scope="module")
def api(live: ServerProcess) -> Iterator[httpx.Client]:
    """Plain HTTP on the module's server: what the API says, to check the CLI against."""
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the real user's config: a temp XDG home, HOME (for
    ``~/.taskqueue/accounts.csv``) and working directory."""
    home = tmp_path / "xdg"
    home.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    for name in LEAKY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(work)
    return home
