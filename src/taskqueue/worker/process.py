"""Running one command: its own process group, streamed and bounded output, group kills.

The command runs as ``/bin/sh -c COMMAND`` started with ``posix_spawn`` in a new session, so it
leads its own process group and every process it starts can be killed together with
``killpg``. Each command is followed by one thread running :func:`run_command`: a blocking loop
over ``poll`` on the command's two pipes and a pidfd. Blocking calls release the GIL, so the
threads wait in parallel with the event loop and with each other; ``posix_spawn`` is called
through ctypes for the same reason (vfork + exec costs the parent ~0.3 ms, and
``os.posix_spawn`` holds the GIL throughout).

Output is read in chunks as it comes. Each stream keeps its first ``limit/2`` bytes (streamed to
the store while the command runs) and its last ``limit/2`` bytes (a ring, stored at the end,
after a marker saying how much was dropped). However much a command prints, a stream never
holds more than ``limit`` bytes in memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskqueue.security import RunAs

__all__ = ["CommandResult", "OutputCapture", "kill_group", "run_command"]

#: Signals Python ignores that a command must get back at their default disposition.
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
#: Bytes of each stream's end kept for ``result.stdout_tail`` / ``stderr_tail``.
TAIL_BYTES = 4096
_READ_SIZE = 65536


def _whole_characters(data: bytes) -> int:
    """How much of ``data`` to send now: all of it but an unfinished UTF-8 character at its end.

    That character's first bytes wait for the rest, so every chunk stored ends between
    characters and decodes on its own to the text of the whole. Only the start of a sequence
    that could still be valid UTF-8 waits (at most 3 bytes); anything else goes as it is.
    """
    end = len(data)
    for back in range(1, min(3, end) + 1):
        byte = data[end - back]
        if 0x80 <= byte < 0xC0:  # a continuation byte: its lead is further back
            continue
        if 0xC2 <= byte <= 0xF4:  # a lead byte of a 2, 3 or 4-byte character
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end - back if length > back else end
        return end
    return end


class OutputCapture:
    """One stream's output: a head streamed out, a bounded tail ring, and a short summary tail.

    The head and the tail are sent as the bytes the command wrote; the summary tail is text.
    """

    def __init__(self, name: str, limit: int, sink: Callable[[str, bytes], None]) -> None:
        self.name: str = name
        self.head_limit: int = limit - limit // 2
        self.tail_limit: int = limit // 2
        self.total: int = 0
        self._sink = sink
        self._held = b""  # the first bytes of a character still being written
        self._ring: deque[bytes] = deque()
        self._ring_size = 0
        self._summary = bytearray()

    def feed(self, data: bytes) -> None:
        """Take the next piece of the stream."""
        self.total += len(data)
        self._summary += data
        if len(self._summary) > 2 * TAIL_BYTES:
            del self._summary[: len(self._summary) - TAIL_BYTES]
        before = self.total - len(data)
        if before < self.head_limit:
            keep = min(len(data), self.head_limit - before)
            head = self._held + data[:keep]
            # The head's last bytes all go once it is complete: no more of it will come.
            cut = len(head) if before + keep == self.head_limit else _whole_characters(head)
            if cut:
                self._sink(self.name, head[:cut])
            self._held = head[cut:]
            data = data[keep:]
        if data and self.tail_limit:
            self._ring.append(data)
            self._ring_size += len(data)
            while self._ring_size - len(self._ring[0]) >= self.tail_limit:
                self._ring_size -= len(self._ring.popleft())

    def close(self) -> None:
        """End of stream: emit the kept tail after a truncation marker, if anything was dropped."""
        if self._held:
            self._sink(self.name, self._held)
            self._held = b""
        if not self._ring:
            return
        tail = b"".join(self._ring)
        dropped = self.total - self.head_limit - min(len(tail), self.tail_limit)
        if len(tail) > self.tail_limit:
            tail = tail[-self.tail_limit :]
        if dropped > 0:
            self._sink(self.name, f"\n[... {dropped} bytes truncated ...]\n".encode())
        self._sink(self.name, tail)
        self._ring.clear()

    @property
    def truncated(self) -> bool:
        """Whether part of the stream was dropped."""
        return self.total > self.head_limit + self.tail_limit

    def summary_tail(self) -> str:
        """The last few KiB of the stream, for the task's result."""
        return bytes(self._summary[-TAIL_BYTES:]).decode("utf-8", errors="replace")


def kill_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a whole process group; False if nothing was left to signal."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class _NativeSpawn:
    """``posix_spawn`` from libc through ctypes, which releases the GIL while it runs."""

    #: glibc's flags: reset the given signals to their default, set the signal mask, setsid().
    SETSIGDEF = 0x04
    SETSIGMASK = 0x08
    SETSID = 0x80
    #: Bytes reserved for posix_spawnattr_t / posix_spawn_file_actions_t (glibc uses 336 / 80).
    OPAQUE = 1024

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True) if name else None
        self.libc = libc if libc is not None and hasattr(libc, "posix_spawn") else None
        # glibc 2.34+: close every descriptor from 3 up in the child, whatever its flags.
        self.closefrom: Any = getattr(self.libc, "posix_spawn_file_actions_addclosefrom_np", None)
        # Python ignores SIGPIPE and SIGXFSZ, and "ignored" survives exec: a command like
        # `yes | head -1` would never end. The child gets them back at their defaults, and an
        # empty signal mask.
        self.sigdefault = ctypes.create_string_buffer(self.OPAQUE)
        self.sigmask = ctypes.create_string_buffer(self.OPAQUE)
        if self.libc is not None:
            self.libc.sigemptyset(self.sigdefault)
            for sig in RESET_SIGNALS:
                self.libc.sigaddset(self.sigdefault, int(sig))
            self.libc.sigemptyset(self.sigmask)

    def __call__(
        self, argv: list[str], env: Mapping[str, str], stdin_path: str, out_w: int, err_w: int
    ) -> int:
        libc = self.libc
        assert libc is not None
        attr = ctypes.create_string_buffer(self.OPAQUE)
        actions = ctypes.create_string_buffer(self.OPAQUE)
        libc.posix_spawnattr_init(attr)
        libc.posix_spawn_file_actions_init(actions)
        try:
            libc.posix_spawnattr_setflags(
                attr, ctypes.c_short(self.SETSID | self.SETSIGDEF | self.SETSIGMASK)
            )
            libc.posix_spawnattr_setsigdefault(attr, self.sigdefault)
            libc.posix_spawnattr_setsigmask(attr, self.sigmask)
            libc.posix_spawn_file_actions_addopen(
                actions, 0, os.fsencode(stdin_path), os.O_RDONLY, 0
            )
            libc.posix_spawn_file_actions_adddup2(actions, out_w, 1)
            libc.posix_spawn_file_actions_adddup2(actions, err_w, 2)
            if self.closefrom is not None:  # no descriptor of the worker's beyond 0, 1, 2
                self.closefrom(actions, 3)
            c_argv = (ctypes.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
            c_env = (ctypes.c_char_p * (len(env) + 1))(*_encode_env(env), None)
            pid = ctypes.c_int()
            error = libc.posix_spawn(ctypes.byref(pid), c_argv[0], actions, attr, c_argv, c_env)
        finally:
            libc.posix_spawn_file_actions_destroy(actions)
            libc.posix_spawnattr_destroy(attr)
        if error:
            raise OSError(error, f"cannot start /bin/sh: {os.strerror(error)}")
        return pid.value


_native = _NativeSpawn()

#: ``KEY=value`` bytes of environment entries seen before: the worker's own environment is the
#: same for every command, and encoding it anew cost more than the spawn itself.
_ENV_CACHE: dict[tuple[str, str], bytes] = {}
_ENV_CACHE_MAX = 4096


def _encode_env(env: Mapping[str, str]) -> list[bytes]:
    encoded: list[bytes] = []
    cache = _ENV_CACHE
    for item in env.items():
        entry = cache.get(item)
        if entry is None:
            entry = os.fsencode(item[0]) + b"=" + os.fsencode(item[1])
            if len(cache) < _ENV_CACHE_MAX and not item[0].startswith("TASKQUEUE_"):
                cache[item] = entry  # per-task variables change every time: not worth keeping
        encoded.append(entry)
    return encoded


def _spawn_blocking(
    argv: list[str], env: Mapping[str, str], stdin_path: str, out_w: int, err_w: int
) -> int:
    if _native.libc is not None:
        return _native(argv, env, stdin_path, out_w, err_w)
    return os.posix_spawn(  # pragma: no cover - libc without posix_spawn
        argv[0],
        argv,
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, stdin_path, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ],
        setsid=True,
        setsigdef=RESET_SIGNALS,
        setsigmask=(),
    )


def _spawn_as(
    argv: list[str],
    env: Mapping[str, str],
    stdin_path: str,
    out_w: int,
    err_w: int,
    run_as: RunAs,
) -> int:
    """Start ``argv`` as the unprivileged user ``run_as``; its pid.

    ``posix_spawn`` cannot change the user, so the child is forked: it takes the user's
    groups, group and user (as ``initgroups`` + ``setgid`` + ``setuid`` would), leads a new
    session, gets SIGPIPE and SIGXFSZ back at their defaults, and keeps no other descriptor.
    It starts in ``/``, never in the worker's directory; the command's own directory is
    entered by its shell, as the user, so the user's permissions decide whether it may.
    """
    stdin = os.open(stdin_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        child = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=out_w,
            stderr=err_w,
            env=dict(env),
            cwd="/",
            close_fds=True,
            restore_signals=True,
            start_new_session=True,
            user=run_as.uid,
            group=run_as.gid,
            extra_groups=list(run_as.groups),
        )
    finally:
        os.close(stdin)
    # The caller waits for the child itself (through a pidfd and waitpid): tell the Popen
    # object it has nothing left to reap, so it never reaps the pid behind the caller's back.
    child.returncode = 0
    return child.pid


def _spawn(
    argv: list[str],
    env: Mapping[str, str],
    stdin_path: str,
    outputs: tuple[int, int],
    run_as: RunAs | None,
) -> int:
    """Start ``argv`` in a session of its own, as ``run_as`` if given; its pid."""
    if run_as is None:
        return _spawn_blocking(argv, env, stdin_path, *outputs)
    return _spawn_as(argv, env, stdin_path, *outputs, run_as)


def _argv(
    command: str, cwd: str | None, prelude: str = "", prefix: Sequence[str] = ()
) -> list[str]:
    """The argv of a command: its shell, after a first one that applies limits and its cwd."""
    steps = [prelude] if prelude else []
    if cwd is not None:
        # posix_spawn cannot chdir; a first shell does, then becomes the command's shell.
        steps.append('cd -- "$1" || exit 126')
    if not steps:
        return [*prefix, "/bin/sh", "-c", command]
    script = "; ".join(steps) + '; exec /bin/sh -c "$2"'
    return [*prefix, "/bin/sh", "-c", script, "sh", cwd or "/", command]


@dataclass
class CommandResult:
    """How a command ended."""

    exit_code: int  # negative: killed by that signal
    timed_out: bool
    #: CPU seconds (user + system) the command and the children it waited for used.
    cpu_seconds: float = 0.0


def run_command(
    command: str,
    env: Mapping[str, str],
    stdin_path: str,
    captures: tuple[OutputCapture, OutputCapture],
    *,
    cwd: str | None = None,
    timeout: float | None = None,
    grace: float = 5.0,
    should_stop: Callable[[], bool] = lambda: False,
    check_interval: float = 0.2,
    run_as: RunAs | None = None,
    prelude: str = "",
    prefix: Sequence[str] = (),
) -> CommandResult:
    """Run ``command`` to its end, blocking; meant for a thread of its own.

    On timeout or when ``should_stop()`` turns true (checked every ``check_interval``), the
    whole process group gets SIGTERM, then SIGKILL after ``grace`` seconds. When the shell
    exits, whatever it left running in its group is killed (while the exited shell is still a
    zombie, so its group id cannot have been reused), and the pipes are read to their end; a
    process that escaped the group by starting its own session may hold a pipe open, so that
    wait is bounded too. With ``run_as``, the command runs as that user (see
    :func:`_spawn_as`). ``prelude`` (shell commands, such as ``ulimit``) runs in the
    command's first shell before it becomes the command's; ``prefix`` comes before the shell
    in its argv (``unshare --net --``).
    """
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = _spawn(_argv(command, cwd, prelude, prefix), env, stdin_path, (out_w, err_w), run_as)
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    streams = {out_r: captures[0], err_r: captures[1]}
    for fd in (out_r, err_r, pidfd):
        poller.register(fd, select.POLLIN)
    now = time.monotonic()
    deadline = now + timeout if timeout is not None else math.inf
    next_check = now + check_interval
    phase = "running"  # then "terminating" (SIGTERM sent), then "killed" (SIGKILL sent)
    kill_at = drain_until = math.inf
    status: int | None = None
    cpu = 0.0
    timed_out = False
    try:
        while status is None or streams:
            now = time.monotonic()
            if status is None and phase == "running":
                timed_out = now >= deadline
                stop = timed_out
                if not stop and now >= next_check:
                    next_check = now + check_interval
                    stop = should_stop()  # cancel, lost lease, shutdown
                if stop:
                    kill_group(pid, signal.SIGTERM)
                    phase, kill_at = "terminating", now + grace
            elif status is None and phase == "terminating" and now >= kill_at:
                kill_group(pid, signal.SIGKILL)
                phase = "killed"
            elif status is not None and now >= drain_until:
                break
            if status is not None:
                wake = drain_until
            elif phase == "running":
                wake = min(deadline, next_check)
            elif phase == "terminating":
                wake = kill_at
            else:
                wake = now + check_interval
            for fd, _ in poller.poll(max(0.0, wake - now) * 1000):
                if fd == pidfd:
                    kill_group(pid, signal.SIGKILL)  # leftovers of a command that is done
                    _, status, usage = os.wait4(pid, 0)
                    cpu = usage.ru_utime + usage.ru_stime
                    poller.unregister(pidfd)
                    drain_until = time.monotonic() + 2.0
                    continue
                data = os.read(fd, _READ_SIZE)
                if data:
                    streams[fd].feed(data)
                else:
                    poller.unregister(fd)
                    os.close(fd)
                    streams.pop(fd).close()
    finally:
        for fd, capture in streams.items():
            os.close(fd)
            capture.close()
        if status is None:  # interrupted: never leave the command behind
            kill_group(pid, signal.SIGKILL)
            status = os.waitpid(pid, 0)[1]
        os.close(pidfd)
    return CommandResult(_exit_code(status), timed_out, cpu)
