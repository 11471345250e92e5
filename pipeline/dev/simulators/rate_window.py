"""A rolling request window: at most ``limit`` admitted requests in any ``seconds``-long span.

The one limiter behind HubSpot's ten-second and daily limits, Salesforce's 24-hour allocation and
Mailchimp's optional requests-per-second limit. Refused requests do not count.
"""

from __future__ import annotations

from collections import deque


class RollingWindow:
    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._admitted: deque[float] = deque()

    def reconfigure(self, limit: int) -> None:
        self.limit = limit

    def reset(self) -> None:
        self._admitted.clear()

    def try_admit(self, now: float) -> bool:
        """Count a request at ``now`` if the window has room; False (and nothing counted) if not."""
        self._expire(now)
        if len(self._admitted) >= self.limit:
            return False
        self._admitted.append(now)
        return True

    def used(self, now: float) -> int:
        self._expire(now)
        return len(self._admitted)

    def remaining(self, now: float) -> int:
        return max(0, self.limit - self.used(now))

    def _expire(self, now: float) -> None:
        horizon = now - self.seconds
        while self._admitted and self._admitted[0] <= horizon:
            self._admitted.popleft()
