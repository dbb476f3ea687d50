"""Which languages this worker can run code in: found by probing, never assumed.

At start the worker looks for each language's program on ``PATH`` and asks it its version
(with a short timeout); a language whose program is missing, fails or hangs is not offered.
A code task's code is written to a private file in a private directory (both removed after
the attempt) and run through the language's command line, as a command would be.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from taskqueue.languages import LANGUAGES, Language, language_named
from taskqueue.security import RunAs

__all__ = ["PROBE_TIMEOUT_S", "code_command", "probe_languages", "remove_code"]

log: logging.Logger = logging.getLogger(__name__)

#: How long a toolchain may take to say its version before it is taken as absent.
PROBE_TIMEOUT_S = 5.0


def _probe(language: Language) -> str | None:
    """The version ``language``'s toolchain reports (its first line), or None if it cannot run."""
    program = shutil.which(language.program)
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, *language.version[1:]],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("language %s not offered: %s", language.name, exc)
        return None
    if done.returncode != 0:
        log.info("language %s not offered: its version probe exited %d", language.name,
                 done.returncode)  # fmt: skip
        return None
    text = (done.stdout or done.stderr).decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else language.program


def probe_languages(only: Iterable[str] | None = None) -> dict[str, str]:
    """Every language this machine can run (of ``only``, if given), with its version.

    Raises ValueError naming an entry of ``only`` that is no language of the table.
    """
    wanted = list(LANGUAGES)
    if only is not None:
        wanted = []
        for name in only:
            language = language_named(name)
            if language is None:
                known = ", ".join(lang.name for lang in LANGUAGES)
                raise ValueError(f"unknown language {name!r}; known languages: {known}")
            if language not in wanted:
                wanted.append(language)
    found: dict[str, str] = {}
    for language in wanted:
        version = _probe(language)
        if version is not None:
            found[language.name] = version
    return found


def code_command(language_name: str, code: str, run_as: RunAs | None) -> tuple[str, Path]:
    """Write ``code`` to a private file; the shell command running it, and its directory.

    The directory (0700) and the file (0600) belong to the worker, or to ``run_as`` when
    commands run as another user; the caller removes the directory (:func:`remove_code`).
    """
    language = language_named(language_name)
    if language is None:
        raise ValueError(f"this worker cannot run {language_name!r} code")
    directory = Path(tempfile.mkdtemp(prefix="taskqueue-code-"))
    path = directory / f"main{language.extensions[0]}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(code)
        if run_as is not None:
            os.fchown(handle.fileno(), run_as.uid, run_as.gid)
    if run_as is not None:
        os.chown(directory, run_as.uid, run_as.gid)
    command = language.run.format(file=shlex.quote(str(path)), dir=shlex.quote(str(directory)))
    return command, directory


def remove_code(directory: Path) -> None:
    """Remove a code task's private directory and whatever was left in it."""
    with contextlib.suppress(OSError):
        shutil.rmtree(directory)
