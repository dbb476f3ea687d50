"""The layout's promises: the client side of the package imports nothing from the server side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SERVER_ONLY = (
    "sqlalchemy",
    "alembic",
    "starlette",
    "uvicorn",
    "taskqueue.server",
    "taskqueue.store",
    "taskqueue.worker",
    "taskqueue.engine",
    "taskqueue.integrations",
)


def test_the_client_side_imports_no_server_module() -> None:
    code = (
        "import sys, taskqueue, taskqueue.models, taskqueue.errors, taskqueue.cli, taskqueue.nats\n"
        f"loaded = [m for m in {SERVER_ONLY!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_api_alone_imports_no_worker_module(tmp_path: Path) -> None:
    # Importing the server side is not enough to pull in the worker...
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import taskqueue.server, sys; "
            "assert not any(m.startswith('taskqueue.worker') for m in sys.modules), "
            "sorted(m for m in sys.modules if m.startswith('taskqueue.worker'))",
        ],
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr
    # ...and neither is serving a request with an app built without services.
    code = (
        "import asyncio, sys, httpx\n"
        "from taskqueue.server import ServerSettings, create_app\n"
        "from taskqueue.store import Store\n"
        "async def main():\n"
        "    store = Store(sys.argv[1])\n"
        "    app = create_app(ServerSettings(), store)\n"
        "    store.start()\n"
        "    transport = httpx.ASGITransport(app=app)\n"
        "    async with httpx.AsyncClient(transport=transport, base_url='http://127.0.0.1') as c:\n"
        "        reply = await c.get('/api/health')\n"
        "    await store.close()\n"
        "    print(reply.status_code, reply.json()['workers'])\n"
        "asyncio.run(main())\n"
        "print(','.join(m for m in sys.modules if m.startswith('taskqueue.worker')))\n"
    )
    served = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "api.db")],
        capture_output=True,
        text=True,
    )
    assert served.returncode == 0, served.stderr
    assert served.stdout.splitlines() == ["200 0", ""]
