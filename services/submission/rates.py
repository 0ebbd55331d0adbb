"""Per-sender rate limits (HTTP 429 with Retry-After), on the `limits` library's moving
window. Counted per service instance: with n instances a sender gets at most n times the
limit, which still bounds what one sender can make the system do."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimit:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._item = parse(spec)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def take(self, key: str) -> int | None:
        """Count one request of `key`: None when allowed, else the seconds to wait."""
        if self._limiter.hit(self._item, key):
            return None
        return self.retry_after(key)

    def exceeded(self, key: str) -> int | None:
        """Without counting: None when `key` may go on, else the seconds to wait."""
        if self._limiter.test(self._item, key):
            return None
        return self.retry_after(key)

    def retry_after(self, key: str) -> int:
        reset_at, _ = self._limiter.get_window_stats(self._item, key)
        return max(1, math.ceil(reset_at - time.time()))
