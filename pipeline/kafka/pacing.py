"""Sending at a steady rate: chunks of about a tenth of a second's worth, each one started no earlier
than the rate allows, counted from the start (so a slow chunk is made up by the next ones)."""

from __future__ import annotations

import asyncio
import time

CHUNKS_PER_SECOND = 10  # with a rate: how finely sending is paced


def chunk_size(rate: float | None, largest: int) -> int:
    """How many messages to send before waiting: ``largest`` without a rate, else a tenth of a second's worth."""
    return largest if rate is None else max(1, min(largest, int(rate / CHUNKS_PER_SECOND)))


class Pace:
    """``await pace.until(sent)`` waits until ``sent`` messages are due at ``rate`` a second (no wait without one)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be above 0 messages per second, got {rate}")
        self._rate = rate
        self._started = time.monotonic()

    async def until(self, sent: int) -> None:
        if self._rate is not None:
            await asyncio.sleep(max(0.0, self._started + sent / self._rate - time.monotonic()))
