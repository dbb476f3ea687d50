"""The SDK-only install (``pip install taskqueue-sdk``) pulls in no server dependency."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
#: What only the server and workers use.
SERVER_PACKAGES = {
    "sqlalchemy",
    "alembic",
    "starlette",
    "uvicorn",
    "orjson",
    "psycopg",
    "psycopg-pool",
    "uvloop",
    "httptools",
}


def _name(requirement: str) -> str:
    match = re.match(r"^[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def test_the_base_dependencies_are_client_only_with_lower_bounds() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    base = project["dependencies"]
    names = {_name(r) for r in base}
    server = {_name(r) for r in project["optional-dependencies"]["server"]}
    assert names.isdisjoint(server | SERVER_PACKAGES), names & (server | SERVER_PACKAGES)
    for requirement in base:
        assert ">=" in requirement, f"{requirement}: give a lower bound"
