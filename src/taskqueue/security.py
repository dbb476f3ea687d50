"""Keeping a taskqueue process's secrets from the commands it runs.

A command runs on the same machine as the server or worker that started it, so whatever that
process can reach, a command running as the same user can reach too. This module holds what
closes the gaps:

* :func:`make_undumpable` marks the process non-dumpable, so no other process of the same user
  (a command) may read its memory or ``/proc/PID/environ``; commands themselves are ordinary
  processes again once they exec.
* :class:`RunAs` names the unprivileged user commands run as when the process runs as root.
* :func:`read_secret_file` reads a secret (the database URL) from a file instead of the
  environment or the command line, which every process on the host can read.
* :func:`redact_logs` keeps known secrets out of every log line.

Nothing here imports the server, the store or the worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import pwd
import re
import stat
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RunAs",
    "is_dumpable",
    "make_undumpable",
    "read_secret_file",
    "redact",
    "redact_logs",
    "resolve_run_as",
    "running_as_root",
]

_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4
#: Secrets shorter than this are not scrubbed from log lines: they would match everywhere.
_MIN_SECRET = 2
#: Secrets shorter than this are scrubbed only where they stand as a whole word.
_WHOLE_WORD_BELOW = 8


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    return getattr(libc, "prctl", None)


def make_undumpable() -> bool:
    """Mark this process non-dumpable (Linux); whether it now is.

    A non-dumpable process's ``/proc/PID/environ``, ``mem``, ``maps`` and ``fd`` are closed to
    every other process of its user (only root with ``CAP_SYS_PTRACE`` may still look), it
    cannot be ptrace-attached, and it leaves no core dump. The flag is inherited by a fork but
    reset by ``execve``, so the commands a worker starts are ordinary, dumpable processes: the
    orphan sweep can still read their environment. Elsewhere than Linux this does nothing.
    """
    prctl = _prctl()
    if prctl is None:
        return False
    return bool(prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)


def is_dumpable() -> bool | None:
    """Whether this process is dumpable (None: not Linux)."""
    prctl = _prctl()
    if prctl is None:
        return None
    return bool(prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0))


def running_as_root() -> bool:
    """Whether this process has root's effective user id."""
    return os.geteuid() == 0


@dataclass(frozen=True)
class RunAs:
    """The unprivileged user commands run as (``--run-as``): ids, groups and home."""

    name: str
    uid: int
    gid: int
    #: Every group the user is a member of (as ``initgroups`` would set them).
    groups: tuple[int, ...]
    #: The home directory of the passwd entry (``$HOME`` of its commands).
    home: str

    @property
    def start_directory(self) -> str:
        """Where a command without a working directory starts: home, or ``/``.

        Home only if the user may reach it: a directory, it and every directory above it
        searchable by the user, its group or everyone, as their owners and groups say.
        """
        path = os.path.abspath(self.home)
        if not os.path.isdir(path):
            return "/"
        while True:
            if not self._may_search(path):
                return "/"
            parent = os.path.dirname(path)
            if parent == path:
                return os.path.abspath(self.home)
            path = parent

    def _may_search(self, directory: str) -> bool:
        try:
            info = os.stat(directory)
        except OSError:
            return False
        if info.st_uid == self.uid:
            return bool(info.st_mode & stat.S_IXUSR)
        if info.st_gid == self.gid or info.st_gid in self.groups:
            return bool(info.st_mode & stat.S_IXGRP)
        return bool(info.st_mode & stat.S_IXOTH)

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` as a login of this user would have it: ``HOME``, ``USER``, ``LOGNAME``."""
        changed = {k: v for k, v in env.items() if k not in ("XDG_RUNTIME_DIR", "MAIL")}
        changed.update(HOME=self.home, USER=self.name, LOGNAME=self.name)
        return changed


def resolve_run_as(user: str) -> RunAs:
    """The :class:`RunAs` of ``user`` (a name or a numeric id), or ValueError saying why not.

    Only root can run commands as another user, and running them as root is what ``--run-as``
    avoids, so both are refused.
    """
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        raise ValueError(f"there is no user {user!r} on this host") from None
    if entry.pw_uid == 0:
        raise ValueError(f"{user!r} is root: give an unprivileged user to run commands as")
    if not running_as_root():
        raise ValueError(
            f"running commands as {entry.pw_name!r} needs root, and taskqueue runs as uid "
            f"{os.geteuid()}: start it as root with --run-as, or as {entry.pw_name!r} "
            "without it"
        )
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    return RunAs(
        name=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=tuple(sorted(set(groups))),
        home=entry.pw_dir or "/",
    )


#: The largest secret file read.
_SECRET_FILE_MAX = 1024 * 1024


def _read_all(path: str) -> tuple[bytes, int]:
    """The first bytes (up to one past the limit) of ``path``, ``-`` being standard input."""
    fd = 0 if path == "-" else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory")
        data = b""
        while len(data) <= _SECRET_FILE_MAX:
            piece = os.read(fd, _SECRET_FILE_MAX + 1 - len(data))
            if not piece:
                break
            data += piece
        return data, mode
    finally:
        if fd != 0:
            os.close(fd)


def read_secret_file(path: str, what: str = "file") -> tuple[str, str | None]:
    """The secret held in the file at ``path``, and a warning if others may read the file.

    ``-`` reads standard input, so the secret need be in no file at all. The file holds the
    secret alone (surrounding whitespace and a final newline are dropped). Raises ValueError,
    calling the file ``what``, when it cannot be read, is empty, or holds more than one line;
    the secret itself is never in the message.
    """
    name = "standard input" if path == "-" else f"{what} {path!r}"
    try:
        data, mode = _read_all(path)
    except OSError as exc:
        raise ValueError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > _SECRET_FILE_MAX:
        raise ValueError(f"{name} is larger than 1 MiB")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{name} is empty")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{name} holds more than one line; put the secret alone in it")
    warning = None
    if stat.S_ISREG(mode) and mode & 0o077:
        warning = f"{name} can be read by other users (mode {stat.S_IMODE(mode):o}); chmod 600 it"
    return text, warning


# ---------------------------------------------------------------------------- log redaction

_SECRETS: set[str] = set()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret (and every one of ``secrets``) replaced by ``***``.

    A short secret (a piece of a password a driver might echo on its own) is replaced only
    where it stands as a whole word, so it does not eat into the words around it.
    """
    every = {s for s in (*_SECRETS, *secrets) if len(s) >= _MIN_SECRET}
    for secret in sorted(every, key=len, reverse=True):
        if secret not in text:
            continue
        if len(secret) >= _WHOLE_WORD_BELOW:
            text = text.replace(secret, "***")
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text


def redact_logs(secrets: Iterable[str]) -> None:
    """Keep ``secrets`` out of every log record made from now on, in every logger.

    The message is formatted when the record is made, and a traceback with it, so no handler
    or formatter (the CLI's, uvicorn's) ever sees a secret.
    """
    fresh = {s for s in secrets if len(s) >= _MIN_SECRET}
    if not fresh:
        return
    first = not _SECRETS
    _SECRETS.update(fresh)
    if first:
        logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))


def _redacting(make: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = make(*args, **kwargs)
        with contextlib.suppress(Exception):  # a broken format string: logging reports it
            message = record.getMessage()
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text)
        return record

    return factory
