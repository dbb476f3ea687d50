"""Generate the sync client from the async one, or check that the generated files are current.

python scripts/unasync.py          # write src/taskqueue/client/_sync_*.py from _async_*.py
python scripts/unasync.py --check  # fail if one is stale, or if a rule no longer applies
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "src/taskqueue/client"
#: (async source, generated sync file)
FILES: list[tuple[Path, Path]] = [
    (CLIENT / "_async_core.py", CLIENT / "_sync_core.py"),
    (CLIENT / "_async_events.py", CLIENT / "_sync_events.py"),
    (CLIENT / "_async_webhooks.py", CLIENT / "_sync_webhooks.py"),
    (CLIENT / "_async_code.py", CLIENT / "_sync_code.py"),
    (CLIENT / "_async_functions.py", CLIENT / "_sync_functions.py"),
    (CLIENT / "_async_schedules.py", CLIENT / "_sync_schedules.py"),
    (CLIENT / "_async_workflows.py", CLIENT / "_sync_workflows.py"),
    (CLIENT / "_async_client.py", CLIENT / "_sync_client.py"),
]

#: (pattern, replacement), applied in order to every file. Every rule must match at least once
#: in one of them.
RULES: list[tuple[str, str]] = [
    (
        r'^"""The async client: the source the sync client is generated from .*"""',
        '"""The sync client, GENERATED from ``_async_client.py`` by ``scripts/unasync.py``."""',
    ),
    (
        r'^"""The async client.s core: .*"""',
        '"""The sync client\'s core, GENERATED from ``_async_core.py`` by scripts/unasync.py."""',
    ),
    (
        r'^"""The async client.s event methods: .*"""',
        '"""The sync client\'s event methods, GENERATED from ``_async_events.py`` by unasync."""',
    ),
    (
        r'^"""The async client.s webhook methods: .*"""',
        '"""The sync client\'s webhook methods, GENERATED from ``_async_webhooks.py``."""',
    ),
    (
        r'^"""The async client.s code methods: .*"""',
        '"""The sync client\'s code methods, GENERATED from ``_async_code.py`` by unasync."""',
    ),
    (
        r'^"""The async client.s function methods: .*"""',
        '"""The sync client\'s function methods, GENERATED from ``_async_functions.py``."""',
    ),
    (r"\bfrom taskqueue\.client\._async_core\b", "from taskqueue.client._sync_core"),
    (
        r'^"""The async client.s schedule methods: .*"""',
        '"""The sync client\'s schedule methods, GENERATED from ``_async_schedules.py``."""',
    ),
    (r"\bfrom taskqueue\.client\._async_schedules\b", "from taskqueue.client._sync_schedules"),
    (r"\bAsyncSchedulesMixin\b", "SyncSchedulesMixin"),
    (
        r'^"""The async client.s workflow methods: .*"""',
        '"""The sync client\'s workflow methods, GENERATED from ``_async_workflows.py``."""',
    ),
    (r"\bfrom taskqueue\.client\._async_workflows\b", "from taskqueue.client._sync_workflows"),
    (r"\bAsyncWorkflowsMixin\b", "SyncWorkflowsMixin"),
    (r"\bfrom taskqueue\.client\._async_code\b", "from taskqueue.client._sync_code"),
    (r"\bAsyncCodeMixin\b", "SyncCodeMixin"),
    (r"\bfrom taskqueue\.client\._async_functions\b", "from taskqueue.client._sync_functions"),
    (r"\bAsyncFunctionsMixin\b", "SyncFunctionsMixin"),
    (r"\bfrom taskqueue\.client\._async_events\b", "from taskqueue.client._sync_events"),
    (r"\bfrom taskqueue\.client\._async_webhooks\b", "from taskqueue.client._sync_webhooks"),
    (r"\bAsyncEventsMixin\b", "SyncEventsMixin"),
    (r"\bAsyncWebhooksMixin\b", "SyncWebhooksMixin"),
    (r"\bAsyncClientCore\b", "SyncClientCore"),
    (r"^import asyncio\n", "import time\n"),  # for time.sleep (ruff merges a repeated import)
    (r"\bAsyncTaskQueueClient\b", "TaskQueueClient"),
    # Each client has its own HTTP/1.1 transport: on asyncio, on sockets (``_connect.py``).
    (r"\bopen_async_transport\b", "open_sync_transport"),
    (r"\bAsyncTransport\b", "SyncTransport"),
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
    (r"\.aiter_lines\(\)", ".iter_lines()"),
    (r"\basyncio\.sleep\(", "time.sleep("),
    (
        r"Async client for the taskqueue API\.",
        "Sync client for the taskqueue API: the async client's methods, blocking.",
    ),
    (r"Requests go over HTTP/1\.1 on asyncio\n", "Requests go over HTTP/1.1 on sockets\n"),
]


def generate(source: Path, target: Path, matched: set[str]) -> str:
    """The sync twin of ``source``; adds the rules that matched something to ``matched``."""
    text = source.read_text()
    for pattern, replacement in RULES:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        if count:
            matched.add(pattern)
    # Imports sorted and code formatted as the rest of the code is (renaming can unsort an
    # import line), so `ruff check`, `ruff format --check` and `--check` agree.
    for ruff in (["check", "--select", "I", "--fix", "--quiet"], ["format"]):
        text = subprocess.run(
            [sys.executable, "-m", "ruff", *ruff, "--stdin-filename", str(target), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    return text


def main() -> int:
    matched: set[str] = set()
    texts = {target: generate(source, target, matched) for source, target in FILES}
    unused = [pattern for pattern, _ in RULES if pattern not in matched]
    if unused:
        print(f"unasync: rules that match nothing (remove or fix them): {unused}")
        return 1
    if "--check" in sys.argv[1:]:
        stale = [t for t, text in texts.items() if not t.exists() or t.read_text() != text]
        for target in stale:
            print(f"unasync: {target.relative_to(ROOT)} is stale; run python scripts/unasync.py")
        if not stale:
            print("unasync: the sync client is current")
        return 1 if stale else 0
    for target, text in texts.items():
        target.write_text(text)
        print(f"unasync: wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
