"""Exponential backoff with equal jitter, for the server's task retries and the SDK's requests.

One formula for both sides. It imports only the standard library, so the client side may use
it without the server side.
"""

from __future__ import annotations

import random

__all__ = ["equal_jitter_delay"]


def equal_jitter_delay(
    retry_number: int, base: float, *, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``retry_number`` (1 for the first retry).

    The ideal delay ``base * 2**(n-1)``, capped at ``cap``, is halved, and a random amount up to
    the other half is added: the result is always within ``[ideal / 2, ideal]``, so retries
    spread out but never come sooner than half the ideal. A ``base`` of zero or less means no
    wait at all.
    """
    if retry_number < 1:
        raise ValueError("retry_number starts at 1")
    if base <= 0:
        return 0.0
    ideal = min(cap, base * 2.0 ** min(retry_number - 1, 62))
    half = ideal / 2
    jitter: float = (rng or random).uniform(0, half)
    return half + jitter
