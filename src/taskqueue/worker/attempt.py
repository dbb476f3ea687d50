"""What one attempt's command gets and what its end means.

Its environment (the worker's, less the secrets), the files it reads its input from and
writes its result to, and the :class:`~taskqueue.store.Outcome` its exit makes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskqueue.models import FailureReason
from taskqueue.security import RunAs
from taskqueue.store import Outcome
from taskqueue.worker.limits import limit_failure
from taskqueue.worker.process import CommandResult, OutputCapture

__all__ = [
    "PRIVATE_VARIABLES",
    "attempt_files",
    "is_private",
    "outcome_of",
    "private_tmpdir",
    "write_input",
]

#: Variables of the worker's environment that its commands do not inherit: the database URL
#: (it carries a password), where it is kept, the API key, and libpq's own secrets.
PRIVATE_VARIABLES = frozenset(
    {
        "TASKQUEUE_DATABASE_URL",
        "TASKQUEUE_DATABASE_URL_FILE",
        "TASKQUEUE_API_KEY",
        "TASKQUEUE_API_KEY_FILE",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSSLPASSWORD",
    }
)
#: Any other ``TASKQUEUE_`` variable whose name says it holds a secret is kept back as well.
_SECRET_NAME = re.compile(r"TASKQUEUE_\w*(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIALS?)(_FILE)?")


def is_private(name: str) -> bool:
    """Whether the worker's variable ``name`` is a secret its commands must not inherit."""
    return name in PRIVATE_VARIABLES or _SECRET_NAME.fullmatch(name) is not None


def attempt_files(run_as: RunAs | None) -> tuple[Path, Path]:
    """The directory of the commands' input files, and the one they write results in.

    Inputs are the worker's: a command may read them (by name, when it runs as another user)
    but not replace them. Results are written by commands, in a directory of their own inside
    the first, which a command running as another user owns; it cannot move or replace that
    directory, so the worker never follows a path a command made up.
    """
    files = Path(tempfile.mkdtemp(prefix="taskqueue-worker-"))
    outputs = files / "out"
    outputs.mkdir(mode=0o700)
    if run_as is not None:
        files.chmod(0o711)
        os.chown(outputs, run_as.uid, run_as.gid)
    return files, outputs


def private_tmpdir(files: Path, stem: str, run_as: RunAs | None) -> Path:
    """A temporary directory for one attempt (its ``$TMPDIR``), the command's alone.

    Made afresh inside the worker's files (0700, owned by the user commands run as), and
    removed with everything in it when the attempt ends.
    """
    path = files / f"{stem}.tmp"
    shutil.rmtree(path, ignore_errors=True)  # a leftover of an attempt this worker lost
    path.mkdir(mode=0o700)
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)
    return path


def write_input(path: Path, text: str, run_as: RunAs | None) -> None:
    """Write a command's input file afresh, following no link left where it goes."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o640 if run_as is not None else 0o600)
    with os.fdopen(fd, "w") as handle:
        if run_as is not None:
            os.fchown(handle.fileno(), -1, run_as.gid)
        handle.write(text)


def outcome_of(
    result: CommandResult,
    timeout: int | None,
    output: Any,
    output_error: str | None,
    captures: tuple[OutputCapture, OutputCapture],
    duration_ms: int,
    limits: Mapping[str, Any] | None = None,
) -> Outcome:
    """How the attempt ended, from how its command ended and the result file it left.

    A failure put down to one of the ``limits`` it ran with is named by that limit.
    """
    error: str | None = None
    reason: FailureReason | None = None
    hit = None
    if not result.timed_out and limits:
        hit = limit_failure(
            limits, result.exit_code, result.cpu_seconds, captures[1].summary_tail()
        )
    if hit is not None:
        reason, error = hit
    elif result.timed_out:
        error, reason = f"timed out after {timeout}s", FailureReason.TIMEOUT
    elif result.exit_code < 0:
        error, reason = f"killed by signal {-result.exit_code}", FailureReason.SIGNAL
    elif result.exit_code != 0:
        error, reason = f"exit code {result.exit_code}", FailureReason.EXIT_CODE
    elif output_error is not None:
        error, reason = output_error, FailureReason.OUTPUT_INVALID
    return Outcome(
        success=error is None,
        exit_code=result.exit_code,
        output=output,
        error=error,
        reason=reason,
        stdout_tail=captures[0].summary_tail(),
        stderr_tail=captures[1].summary_tail(),
        duration_ms=duration_ms,
    )
