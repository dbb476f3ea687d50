"""Running taskqueue as an unprivileged user from tests that run as root.

The tests run as root; to prove what a taskqueue process running as an ordinary user keeps from
its commands, they start it as ``nobody`` through ``setpriv``, the way ``tests/pg_cluster.py``
runs PostgreSQL. One thing stands in the way: the interpreter may live under a directory only
root may enter (pyenv under ``/root``). Then the process gets a private mount namespace in
which that directory is replaced by one anyone may traverse, holding just the way to the
interpreter (a bind mount of the real one): nothing else of it is visible, and nothing changes
outside the namespace. The process itself runs with no privilege at all.
"""

from __future__ import annotations

import atexit
import functools
import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["NOBODY", "as_nobody", "give_to_nobody"]

#: The unprivileged user of the tests.
NOBODY = pwd.getpwnam("nobody")


def _closed_ancestor(path: Path) -> tuple[Path, Path] | None:
    """The topmost directory on the way to ``path`` that others may not enter, and its child."""
    parts = path.parents
    for ancestor in reversed(parts):
        if ancestor == Path("/"):
            continue
        if not os.stat(ancestor).st_mode & 0o001:
            child = next(p for p in [*reversed(parts), path] if p.parent == ancestor)
            return ancestor, child
    return None


@functools.cache
def _shim(name: str) -> Path:
    """An empty directory anyone may traverse, holding an empty ``name`` to mount onto."""
    shim = Path(tempfile.mkdtemp(prefix="taskqueue-shim-"))
    shim.chmod(0o711)
    (shim / name).mkdir()
    atexit.register(shutil.rmtree, shim, True)
    return shim


def as_nobody(argv: list[str]) -> list[str]:
    """``argv`` run as ``nobody`` (with no supplementary groups and no capability)."""
    drop = [
        "setpriv",
        f"--reuid={NOBODY.pw_uid}",
        f"--regid={NOBODY.pw_gid}",
        "--clear-groups",
        "--",
        *argv,
    ]
    closed = _closed_ancestor(Path(os.path.realpath(sys.executable)))
    if closed is None:
        return drop
    blocked, child = closed
    shim = _shim(child.name)
    script = 'mount --bind "$1" "$2" && mount --rbind "$3" "$4" && shift 4 && exec "$@"'
    return [
        *("unshare", "--mount", "--propagation", "private", "--"),
        *("sh", "-c", script, "sh", str(child), str(shim / child.name), str(shim), str(blocked)),
        *drop,
    ]


def give_to_nobody(path: Path, mode: int = 0o700) -> Path:
    """Make ``path`` (a file or directory) belong to ``nobody`` with ``mode``; return it."""
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    path.chmod(mode)
    return path
