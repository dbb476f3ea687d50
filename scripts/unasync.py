"""Generate the sync client from the async one, or check that the generated file is current.

python scripts/unasync.py          # write src/taskqueue/client/_sync_client.py
python scripts/unasync.py --check  # fail if it is stale, or if a rule no longer applies
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src/taskqueue/client/_async_client.py"
TARGET = ROOT / "src/taskqueue/client/_sync_client.py"

#: (pattern, replacement), applied in order. Every rule must match at least once.
RULES: list[tuple[str, str]] = [
    (
        r'^"""The async client: the source the sync client is generated from .*"""',
        '"""The sync client, GENERATED from ``_async_client.py`` by ``scripts/unasync.py``."""',
    ),
    (r"^import asyncio\n", ""),
    (r"\bAsyncTaskQueueClient\b", "TaskQueueClient"),
    (r"\bhttpx\.AsyncClient\b", "httpx.Client"),
    (r"\bhttpx\.AsyncBaseTransport\b", "httpx.BaseTransport"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAwaitable\[((?:[^\[\]]|\[[^\[\]]*\])*)\]", r"\1"),  # Awaitable[list[T]]: list[T]
    (r"\bAwaitable, ", ""),
    (r"\basync def __aenter__", "def __enter__"),
    (r"\basync def __aexit__", "def __exit__"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r"\.aclose\(\)", ".close()"),
    (r"\.aread\(\)", ".read()"),
    (r"\.aiter_bytes\(\)", ".iter_bytes()"),
    (r"\basyncio\.sleep\(", "time.sleep("),
    (
        r"Async client for the taskqueue API\.",
        "Sync client for the taskqueue API: the async client's methods, blocking.",
    ),
]


def generate() -> tuple[str, list[str]]:
    """The sync source, and the rules that matched nothing."""
    text = SOURCE.read_text()
    unused = []
    for pattern, replacement in RULES:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        if count == 0:
            unused.append(pattern)
    # Imports sorted and code formatted as the rest of the code is (renaming can unsort an
    # import line), so `ruff check`, `ruff format --check` and `--check` agree.
    for ruff in (["check", "--select", "I", "--fix", "--quiet"], ["format"]):
        text = subprocess.run(
            [sys.executable, "-m", "ruff", *ruff, "--stdin-filename", str(TARGET), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    return text, unused


def main() -> int:
    text, unused = generate()
    if unused:
        print(f"unasync: rules that match nothing (remove or fix them): {unused}")
        return 1
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"unasync: {TARGET.relative_to(ROOT)} is stale; run python scripts/unasync.py")
            return 1
        print("unasync: the sync client is current")
        return 0
    TARGET.write_text(text)
    print(f"unasync: wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
