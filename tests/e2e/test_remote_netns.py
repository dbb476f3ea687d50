"""Two machines for real: the server in one network namespace, the CLI and SDK in another.

The server runs in the root namespace, listening on its end of a veth pair (10.231.x.1) with
HTTPS (a certificate made in the test for that address, by a CA made in the test) and API keys
required, as ``--host`` beyond loopback makes it. The clients run in a namespace whose only way
to the server is the link: the server's loopback is not theirs, which the test checks first.

* With the CA (``SSL_CERT_FILE``) and an admin key (``taskqueue keys create``), the CLI runs a
  task and the SDK creates one and waits for it; each task's output says it ran in the
  server's namespace, not the client's.
* The same clients without the key are refused with 401, and without the CA they do not get
  through the TLS handshake.

Needs root and iproute2 (the namespace), like ``tests/pg/test_netns.py``; SQLite is enough.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import sub_env
from tests.conftest import BIN, ServerProcess, free_port
from tests.netns import MakeNamespaces, Namespace
from tests.tls import Tls, make_tls

pytestmark = pytest.mark.sqlite_only

#: A command's proof of where it ran: its network namespace.
WHERE = 'echo "ran in $(readlink /proc/self/ns/net)"'

#: What the SDK does on the client machine: one task, created and waited for; or the error.
SDK_SCRIPT = """
import json, sys
from taskqueue.client import TaskQueueClient
from taskqueue.errors import APIError, TaskQueueConnectionError
try:
    with TaskQueueClient(base_url=sys.argv[1], retry_attempts=0) as client:
        task = client.create_task(name="from-the-sdk", command=sys.argv[2])
        done = client.wait_for_completion(task.id, timeout=120)
        print(json.dumps({"status": done.status, "stdout": done.result.stdout_tail}))
except APIError as exc:
    print(json.dumps({"error": type(exc).__name__, "status_code": exc.status_code}))
except TaskQueueConnectionError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


def _in(ns: Namespace, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``argv`` run inside ``ns``, with ``env``."""
    return subprocess.run(
        [*ns.exec_prefix(), *argv],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )


def _admin_key(db: Path) -> str:
    """An admin API key on ``db``, made as an operator would: ``taskqueue keys create``."""
    made = subprocess.run(
        [str(BIN), "keys", "create", "--admin", "--name", "remote-test", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env=sub_env(),
        check=False,
    )
    if made.returncode != 0:
        pytest.fail(
            "`taskqueue keys create --admin --name NAME --db DB` failed (API keys come from "
            f"the authentication work on main): exit {made.returncode}: {made.stderr.strip()}"
        )
    key = made.stdout.strip()
    assert key.startswith("tq_"), made.stdout
    return key


def _serve(tmp_path: Path, ns: Namespace, tls: Tls) -> ServerProcess:
    https = ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    server = ServerProcess(
        db=tmp_path / "remote.db",
        port=free_port(),
        args=["--host", ns.host_address, *https, "--workers", "2"],
        log=tmp_path / "server.log",
        scheme="https",
        host=ns.host_address,
        verify=tls.context(),
        up_statuses=(200, 401),
    )
    server.start(timeout=60)
    return server


@pytest.mark.timeout(300)
def test_cli_and_sdk_on_another_machine_need_the_ca_and_a_key(
    tmp_path: Path, namespaces: MakeNamespaces
) -> None:
    (ns,) = namespaces(1)
    tls = make_tls(tmp_path / "tls", [ns.host_address])
    server = _serve(tmp_path, ns, tls)
    try:
        assert server.log is not None
        assert f"serving {server.url} " in server.log.read_text()
        key = _admin_key(tmp_path / "remote.db")
        trusted = sub_env({"SSL_CERT_FILE": str(tls.ca), "TASKQUEUE_API_KEY": key})
        tq = [str(BIN), "--base-url", server.url]

        # Another machine: the server's loopback is not the client's.
        local = _in(
            ns, [str(BIN), "--base-url", f"http://127.0.0.1:{server.port}", "health"], trusted
        )
        assert local.returncode == 4, local.stderr

        # With the CA and the key, the CLI and the SDK work, and tasks run on the server.
        ran = _in(ns, [*tq, "run", "--", "sh", "-c", WHERE], trusted)
        assert ran.returncode == 0, ran.stderr
        server_ns = f"ran in net:[{os.stat('/proc/self/ns/net').st_ino}]"
        assert ran.stdout.strip() == server_ns, (ran.stdout, ns.inode)
        sdk = _in(ns, [sys.executable, "-c", SDK_SCRIPT, server.url, WHERE], trusted)
        assert sdk.returncode == 0, sdk.stderr
        assert json.loads(sdk.stdout) == {"status": "Completed", "stdout": server_ns + "\n"}

        # Without the key: refused, 401, and nothing runs.
        keyless = sub_env({"SSL_CERT_FILE": str(tls.ca)})
        refused = _in(ns, [*tq, "run", "--", "sh", "-c", WHERE], keyless)
        assert refused.returncode != 0, refused.stdout
        assert "401" in refused.stderr or "API key" in refused.stderr, refused.stderr
        sdk = _in(ns, [sys.executable, "-c", SDK_SCRIPT, server.url, WHERE], keyless)
        assert json.loads(sdk.stdout) == {"error": "AuthenticationError", "status_code": 401}

        # Without the CA: no TLS handshake, key or not.
        no_ca = sub_env({"TASKQUEUE_API_KEY": key})
        blind = _in(ns, [*tq, "health"], no_ca)
        assert blind.returncode == 4, blind.stderr
        assert "certificate" in blind.stderr.lower()
        sdk = _in(ns, [sys.executable, "-c", SDK_SCRIPT, server.url, WHERE], no_ca)
        answer = json.loads(sdk.stdout)
        assert answer["error"] == "TaskQueueConnectionError", answer
        assert "CERTIFICATE_VERIFY_FAILED" in answer["message"]
    finally:
        server.stop()
