"""Token buckets: per API key (its rate and burst), per client address (failed attempts)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FAILED_AUTH_BURST", "FAILED_AUTH_RATE", "Bucket", "Buckets"]

#: Failed authentication attempts a client address may make at once...
FAILED_AUTH_BURST = 10
#: ...and how many more per second after that (one every six seconds).
FAILED_AUTH_RATE = 1 / 6
#: Addresses or keys tracked at most; the oldest are forgotten past it.
MAX_TRACKED = 100_000


@dataclass
class Bucket:
    """Tokens refilled at ``rate`` per second up to ``burst``; each request takes one."""

    rate: float
    burst: int
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take a token; 0.0 if one was there, else the seconds until one will be."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else math.inf

    def headers(self, wait: float) -> dict[str, str]:
        """``RateLimit-*`` headers (IETF draft) for an answer given after :meth:`take`."""
        reset = wait if wait else (self.burst - self.tokens) / self.rate if self.rate else 0
        return {
            "RateLimit-Limit": str(self.burst),
            "RateLimit-Remaining": str(int(self.tokens)),
            "RateLimit-Reset": str(max(0, math.ceil(reset))),
            "RateLimit-Policy": f"{self.burst};w={max(1, round(self.burst / self.rate))}"
            if self.rate
            else str(self.burst),
        }


class Buckets:
    """A bucket per name (a key id, a client address), made on first use."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._clock = clock

    def take(self, name: str, rate: float, burst: int) -> tuple[float, Bucket]:
        """Take a token from ``name``'s bucket; the wait (0.0: allowed) and the bucket."""
        now = self._clock()
        bucket = self._buckets.get(name)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            if len(self._buckets) >= MAX_TRACKED:
                self._buckets.pop(next(iter(self._buckets)))
            bucket = self._buckets[name] = Bucket(rate, burst, float(burst), now)
        return bucket.take(now), bucket

    def exhausted(self, name: str) -> float:
        """Seconds until ``name`` may try again without taking a token (0.0: it may now)."""
        bucket = self._buckets.get(name)
        if bucket is None:
            return 0.0
        now = self._clock()
        tokens = min(float(bucket.burst), bucket.tokens + (now - bucket.stamp) * bucket.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / bucket.rate
