"""Per-access-token rate limiting in fixed windows (Clio's 60 seconds; shorter for fast tests), on the
sandbox clock.

Every API response carries ``X-RateLimit-Limit`` (requests per window), ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (unix time the window ends); over the limit, 429 with ``Retry-After`` (seconds,
rounded up) until the window ends.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

WINDOW = 60.0


@dataclass
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # unix seconds
    retry_after: int  # seconds, when not allowed

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    def __init__(self, limit: int, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[str, tuple[float, int]] = {}  # token -> (window start, count)
        self._lock = threading.Lock()

    def hit(self, token: str, now: float, *, force_limited: bool = False) -> Verdict:
        with self._lock:
            start, count = self._windows.get(token, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            reset = start + self.window
            if force_limited or count >= self.limit:
                self._windows[token] = (start, count)
                retry = max(1, math.ceil(reset - now))
                return Verdict(False, self.limit, 0, math.ceil(reset), retry)
            count += 1
            self._windows[token] = (start, count)
            return Verdict(True, self.limit, self.limit - count, math.ceil(reset), 0)

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
