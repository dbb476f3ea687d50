"""Identifiers: time-ordered UUIDs (version 7) and lease tokens, from buffered randomness.

``os.urandom`` is a system call, and on some virtual machines a slow one (over 100 µs): one per
id would cost more than the rest of creating a task. The randomness is read 4 KiB at a time and
handed out in slices. Version 7 UUIDs start with the time in milliseconds, so new ids land at the
end of the primary-key index instead of at random places in it.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_id", "new_token", "random_bytes"]

_POOL_SIZE = 4096
_lock = threading.Lock()
_pool = b""
_offset = 0


def random_bytes(count: int) -> bytes:
    """``count`` bytes from the operating system's random source (count <= 4096)."""
    global _pool, _offset
    with _lock:
        if _offset + count > len(_pool):
            _pool = os.urandom(_POOL_SIZE)
            _offset = 0
        chunk = _pool[_offset : _offset + count]
        _offset += count
    return chunk


def new_id() -> str:
    """A new UUID version 7: 48 bits of Unix time in ms, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(random_bytes(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b: 62 bits
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_token() -> str:
    """A new random lease token (128 bits, hex)."""
    return random_bytes(16).hex()
