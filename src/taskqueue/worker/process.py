"""Running one command: its own process group, streamed and bounded output, group kills.

The command runs as ``/bin/sh -c COMMAND`` started with ``posix_spawn`` in a new session, so it
leads its own process group and every process it starts can be killed together with
``killpg``. ``posix_spawn`` (vfork + exec) is several times cheaper than ``fork`` from a large
Python process, and exit is watched through a pidfd on the event loop, so no thread waits on a
child. ``posix_spawn`` is called through ctypes from a small thread pool: a foreign call releases
the GIL, so the ~0.3 ms the parent spends in vfork + exec does not stop the event loop, and
several spawns proceed at once (``os.posix_spawn`` holds the GIL throughout).

Output is read in chunks as it comes. Each stream keeps its first ``limit/2`` bytes (streamed to
the store while the command runs) and its last ``limit/2`` bytes (a ring, stored at the end,
after a marker saying how much was dropped). However much a command prints, a stream never
holds more than ``limit`` bytes in memory.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import ctypes.util
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

__all__ = ["OutputCapture", "SpawnedProcess", "drain_streams", "kill_group", "spawn"]

#: Bytes of each stream's end kept for ``result.stdout_tail`` / ``stderr_tail``.
TAIL_BYTES = 4096
_READ_SIZE = 65536


class OutputCapture:
    """One stream's output: a head streamed out, a bounded tail ring, and a short summary tail."""

    def __init__(self, name: str, limit: int, sink: Callable[[str, str], None]) -> None:
        self.name = name
        self.head_limit = limit - limit // 2
        self.tail_limit = limit // 2
        self.total = 0
        self._sink = sink
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
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
            text = self._decoder.decode(data[:keep])
            if text:
                self._sink(self.name, text)
            data = data[keep:]
        if data and self.tail_limit:
            self._ring.append(data)
            self._ring_size += len(data)
            while self._ring_size - len(self._ring[0]) >= self.tail_limit:
                self._ring_size -= len(self._ring.popleft())

    def close(self) -> None:
        """End of stream: emit the kept tail after a truncation marker, if anything was dropped."""
        rest = self._decoder.decode(b"", final=True)
        if rest:
            self._sink(self.name, rest)
        if not self._ring:
            return
        tail = b"".join(self._ring)
        dropped = self.total - self.head_limit - min(len(tail), self.tail_limit)
        if len(tail) > self.tail_limit:
            tail = tail[-self.tail_limit :]
        if dropped > 0:
            self._sink(self.name, f"\n[... {dropped} bytes truncated ...]\n")
        self._sink(self.name, tail.decode("utf-8", errors="replace"))
        self._ring.clear()

    @property
    def truncated(self) -> bool:
        """Whether part of the stream was dropped."""
        return self.total > self.head_limit + self.tail_limit

    def summary_tail(self) -> str:
        """The last few KiB of the stream, for the task's result."""
        return bytes(self._summary[-TAIL_BYTES:]).decode("utf-8", errors="replace")


@dataclass
class SpawnedProcess:
    """A started command: its pid (also its process group id) and how to follow it."""

    pid: int
    exited: asyncio.Future[int] = field(repr=False)
    streams_closed: asyncio.Future[None] = field(repr=False)
    abandon_streams: Callable[[], None] = field(repr=False)


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

    #: glibc's flag for "call setsid() in the child".
    SETSID = 0x80
    #: Bytes reserved for posix_spawnattr_t / posix_spawn_file_actions_t (glibc uses 336 / 80).
    OPAQUE = 1024

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True) if name else None
        self.libc = libc if libc is not None and hasattr(libc, "posix_spawn") else None

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
            libc.posix_spawnattr_setflags(attr, ctypes.c_short(self.SETSID))
            libc.posix_spawn_file_actions_addopen(
                actions, 0, os.fsencode(stdin_path), os.O_RDONLY, 0
            )
            libc.posix_spawn_file_actions_adddup2(actions, out_w, 1)
            libc.posix_spawn_file_actions_adddup2(actions, err_w, 2)
            c_argv = (ctypes.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
            c_env = (ctypes.c_char_p * (len(env) + 1))(
                *[os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()], None
            )
            pid = ctypes.c_int()
            error = libc.posix_spawn(ctypes.byref(pid), c_argv[0], actions, attr, c_argv, c_env)
        finally:
            libc.posix_spawn_file_actions_destroy(actions)
            libc.posix_spawnattr_destroy(attr)
        if error:
            raise OSError(error, f"cannot start /bin/sh: {os.strerror(error)}")
        return pid.value


_native = _NativeSpawn()


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
    )


async def spawn(
    command: str,
    env: Mapping[str, str],
    stdin_path: str,
    captures: tuple[OutputCapture, OutputCapture],
    cwd: str | None = None,
    executor: Executor | None = None,
) -> SpawnedProcess:
    """Start ``command`` in a new process group, wiring its output to ``captures``."""
    loop = asyncio.get_running_loop()
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    if cwd is None:
        argv = ["/bin/sh", "-c", command]
    else:
        # posix_spawn cannot chdir; a first shell does, then becomes the command's shell.
        argv = ["/bin/sh", "-c", 'cd -- "$1" || exit 126; exec /bin/sh -c "$2"', "sh", cwd, command]
    try:
        pid = await loop.run_in_executor(
            executor, _spawn_blocking, argv, env, stdin_path, out_w, err_w
        )
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    pidfd = os.pidfd_open(pid)
    exited: asyncio.Future[int] = loop.create_future()
    streams_closed: asyncio.Future[None] = loop.create_future()
    open_streams = {out_r: captures[0], err_r: captures[1]}

    def on_readable(fd: int) -> None:
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:  # pragma: no cover - spurious wake-up
            return
        except OSError:
            data = b""
        if data:
            open_streams[fd].feed(data)
            return
        loop.remove_reader(fd)
        os.close(fd)
        open_streams.pop(fd).close()
        if not open_streams and not streams_closed.done():
            streams_closed.set_result(None)

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        # The exited leader is a zombie until reaped, so its group id cannot be reused yet:
        # this kills exactly the processes the command left behind, nothing else.
        kill_group(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
        if not exited.done():
            exited.set_result(_exit_code(status))

    def abandon_streams() -> None:
        for fd in list(open_streams):
            loop.remove_reader(fd)
            os.close(fd)
            open_streams.pop(fd).close()
        if not streams_closed.done():
            streams_closed.set_result(None)

    for fd in open_streams:
        os.set_blocking(fd, False)
        loop.add_reader(fd, on_readable, fd)
    loop.add_reader(pidfd, on_exit)
    return SpawnedProcess(pid, exited, streams_closed, abandon_streams)


async def drain_streams(process: SpawnedProcess, timeout: float) -> None:
    """Wait for the streams to reach their end, at most ``timeout`` seconds.

    A process that escaped the group (``setsid`` of its own) may hold a pipe open forever;
    the worker stops waiting for it rather than hang.
    """
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(process.streams_closed), timeout)
    process.abandon_streams()
