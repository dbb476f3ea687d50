"""The API keeps to its OpenAPI document, as a fuzzer sees it.

Schemathesis (pinned in the dev extra) runs against a real ``taskqueue server`` on a fresh SQLite
file: every operation of ``/openapi.json``, every check (no 5xx, status codes, content types,
headers and bodies as documented, schema-valid requests accepted and invalid ones refused, 405s
with a right ``Allow``, ...), the coverage, fuzzing and stateful phases, with the fixed seed
and bounded examples of ``schemathesis.toml``. Any failure it reports fails this test, so a
change to an endpoint that breaks the document fails the suite.

The server runs no worker (``--workers 0``): the fuzzer's commands are never executed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, free_port

CONFIG = Path(__file__).with_name("schemathesis.toml")
CLI = Path(sys.executable).parent / "schemathesis"


@pytest.mark.timeout(900)
def test_the_api_keeps_to_its_openapi_document(tmp_path: Path) -> None:
    if not CLI.exists():
        pytest.fail(f"schemathesis is not installed ({CLI}): run `bash scripts/setup dev`")
    db = tmp_path / "tq.db"
    # With a key in the database every request needs one: the fuzzer sends this admin key,
    # and its unauthenticated probes check that every operation but two refuses without it.
    made = subprocess.run(
        [str(Path(sys.executable).parent / "taskqueue"), "keys", "create", "--admin",
         "--name", "fuzzer", "--db", str(db)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = made.stdout.strip()
    server = ServerProcess(
        db=db,
        port=free_port(),
        args=["--workers", "0", "--failed-auth-burst", "1000000", "--max-request-wait", "0"],
        log=tmp_path / "server.log",
    )
    server.start()
    try:
        document = httpx.get(f"{server.url}/openapi.json").json()
        assert key not in str(document)
        result = subprocess.run(
            [
                str(CLI),
                "--config-file",
                str(CONFIG),
                "run",
                f"{server.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {key}",
                "--no-color",
            ],
            cwd=tmp_path,
            # The fuzzer is not measured: only the server is taskqueue's code.
            env={k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")},
            capture_output=True,
            text=True,
            timeout=840,
            check=False,
        )
    finally:
        server.stop()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-30_000:]
    operations = sum(len(methods) for methods in document["paths"].values())
    assert f"Selected: {operations}/{operations}" in output, output[-5_000:]
    assert f"Tested: {operations}" in output, output[-5_000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}\b", output), f"the {phase} phase did not pass:\n{output}"
    assert "No issues found" in output, output[-5_000:]
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log
    assert key not in log
