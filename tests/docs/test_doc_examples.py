"""Every example in README.md and docs/*.md, run as written against one real server.

A fenced ``bash`` block is run by bash, each document's blocks in order in one shell (so a
variable set in one block is there in the next), with ``set -e``: an example that fails fails
the test. A ``python`` block is run as a script, and all of them are type-checked with
``mypy --strict`` as a user's own code would be. ``toml``, ``yaml`` and ``json`` blocks must
parse. The server's address is the one the docs use (``localhost:8080``, ``127.0.0.1:8080``),
mapped to the test server's port; ``TASKQUEUE_URL`` points there too.

A comment line just before a fence can say:

* ``<!-- example: skip, REASON -->``: not run (a long-running server, a syntax summary, a host
  that does not exist here); the reason is required.
* ``<!-- example: file NAME -->``: the block is the content of file NAME in the examples'
  working directory (a submit file, a config file), written before the document's shell runs.

Every document runs against the same server, one after the other, so examples that would
collide when a user follows them all (two projects of one name) fail here too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, ServerProcess, free_port

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!-- example: (skip|file)\b[ ,]*(.*?)\s*-->$")
CHECKED = {"bash", "sh", "python", "toml", "yaml", "json"}
#: Blocks that are not examples: trees, syntax summaries, excerpts of the implementation.
NOT_EXAMPLES = {"", "text", "sql"}


@dataclass
class Block:
    """One fenced code block of a document."""

    doc: Path
    line: int
    language: str
    text: str
    skip: str | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks_of(doc: Path) -> list[Block]:
    """The fenced blocks of ``doc``, with the directive before each (if any)."""
    found: list[Block] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        start = index
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
        block = Block(doc, start + 1, match.group(1), "\n".join(lines[start + 1 : end]) + "\n")
        before = lines[start - 1] if start > 0 else ""
        directive = DIRECTIVE.match(before.strip())
        if directive and directive.group(1) == "skip":
            block.skip = directive.group(2)
        elif directive:
            block.file = directive.group(2)
        found.append(block)
        index = end + 1
    return found


ALL = [block for doc in DOCS for block in blocks_of(doc)]


def _localised(text: str, port: int) -> str:
    return re.sub(r"\b(localhost|127\.0\.0\.1):8080\b", f"127.0.0.1:{port}", text)


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("docs-server")
    server = ServerProcess(
        db=root / "tq.db", port=free_port(), log=root / "server.log", args=["--drain-timeout", "1"]
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the examples run: a directory with a copy of examples/, as a checkout has."""
    work = tmp_path_factory.mktemp("docs-work")
    shutil.copytree(ROOT / "examples", work / "examples")
    return work


def _env(server: ServerProcess, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQUEUE_")}
    env.update(
        {
            "PATH": f"{BIN.parent}:{env.get('PATH', '/usr/bin:/bin')}",
            "TASKQUEUE_URL": server.url,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def test_every_directive_is_well_formed() -> None:
    for block in ALL:
        if block.skip is not None:
            assert block.skip, f"{block.where}: a skipped example must say why"
        if block.file is not None:
            assert re.fullmatch(r"[\w.-]+", block.file), f"{block.where}: bad file name"


@pytest.mark.parametrize(
    "block",
    [b for b in ALL if b.language in ("toml", "yaml", "json") and b.skip is None],
    ids=lambda b: b.where,
)
def test_data_examples_parse(block: Block) -> None:
    parse = {"toml": tomllib.loads, "yaml": yaml.safe_load, "json": json.loads}[block.language]
    parse(block.text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_the_examples_of_each_document_run(
    doc: Path, docs_server: ServerProcess, workdir: Path, tmp_path: Path
) -> None:
    blocks = [b for b in ALL if b.doc == doc and b.skip is None]
    for block in blocks:
        if block.file is not None:
            (workdir / block.file).write_text(_localised(block.text, docs_server.port))
    env = _env(docs_server, tmp_path)
    shell = [b for b in blocks if b.language in ("bash", "sh") and b.file is None]
    if shell:
        script = "set -euo pipefail\n" + "".join(
            f"echo '>>> {b.where}' >&2\n{_localised(b.text, docs_server.port)}" for b in shell
        )
        ran = subprocess.run(
            ["bash", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert ran.returncode == 0, f"{doc.name}: exit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
        assert "Traceback" not in ran.stderr, ran.stderr
    for block in (b for b in blocks if b.language == "python"):
        path = tmp_path / f"example_{block.line}.py"
        path.write_text(_localised(block.text, docs_server.port))
        ran = subprocess.run(
            [sys.executable, str(path)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert ran.returncode == 0, f"{block.where}:\n{ran.stdout}\n{ran.stderr}"


def test_the_python_examples_type_check(tmp_path: Path) -> None:
    """A user's ``mypy --strict`` accepts the SDK examples as they are written."""
    blocks = [b for b in ALL if b.language == "python" and b.skip is None]
    assert blocks
    for block in blocks:
        name = f"{block.doc.stem.lower()}_{block.line}.py"
        (tmp_path / name).write_text(block.text)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_checked_languages_cover_every_runnable_block() -> None:
    """A block in a language this test does not run must say why it is not checked."""
    for block in ALL:
        if block.language not in CHECKED | NOT_EXAMPLES and block.skip is None:
            raise AssertionError(f"{block.where}: ```{block.language} is neither run nor skipped")
