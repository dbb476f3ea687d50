"""The layout's promises: the client side of the package imports nothing from the server side."""

from __future__ import annotations

import subprocess
import sys

SERVER_ONLY = (
    "sqlalchemy",
    "alembic",
    "starlette",
    "uvicorn",
    "taskqueue.server",
    "taskqueue.store",
    "taskqueue.worker",
    "taskqueue.engine",
)


def test_the_client_side_imports_no_server_module() -> None:
    code = (
        "import sys, taskqueue, taskqueue.models, taskqueue.errors, taskqueue.cli\n"
        f"loaded = [m for m in {SERVER_ONLY!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
