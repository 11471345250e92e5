"""A provider lane's traffic control: rate limit share, throttle pauses, in-flight cap, circuit breaker.

One ``ProviderLane`` per provider per worker, shared by everything in the worker that calls that
provider. The provider's limit holds for all workers together: each worker takes the share of the
limit that it holds of the provider's dispatch partitions (``set_share`` on every rebalance).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from aiolimiter import AsyncLimiter

from pipeline.providers.http import http_transport
from pipeline.settings import ProviderSettings


@dataclass
class LaneStats:
    """What the lane has done, for the providers view and metrics."""

    calls: int = 0  # HTTP requests
    throttled: int = 0  # throttling answers
    failed_calls: int = 0  # deliveries that failed as a whole (timeout, connection error, 5xx)
    in_flight: int = 0
    started_at: float = field(default_factory=time.monotonic)


class CircuitBreaker:
    """Opens after ``threshold`` failed calls in a row; lets one probe through after ``cool_off_s``."""

    def __init__(self, threshold: int, cool_off_s: float, clock: Callable[[], float] = time.monotonic):
        self._threshold = threshold
        self._cool_off_s = cool_off_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self._cool_off_s else "open"

    @property
    def probe_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it is not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cool_off_s - self._clock())

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open state, only one probe at a time)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def record(self, ok: bool) -> None:
        self._probing = False
        if ok:
            self._failures, self._opened_at = 0, None
            return
        self._failures += 1
        if self._failures >= self._threshold:
            self._opened_at = self._clock()


class ProviderLane:
    def __init__(
        self,
        name: str,
        settings: ProviderSettings,
        *,
        breaker_threshold: int = 5,
        breaker_cool_off_s: float = 30.0,
    ) -> None:
        self.name = name
        self.settings = settings
        self.generation = 0  # counts reconfigurations: a client built for an older one is rebuilt
        self.share = 1.0
        self.stats = LaneStats()
        self.breaker = CircuitBreaker(breaker_threshold, breaker_cool_off_s)
        self._paused_until = 0.0
        self._limiter = self._new_limiter()

    def reconfigure(self, settings: ProviderSettings) -> None:
        """New limits from now on: the next request waits in a bucket of the new rate and burst; the
        dispatcher builds a new client (with the new in-flight cap) for its next batch. A pause, the
        breaker and the counters stay."""
        if settings == self.settings:
            return
        self.settings = settings
        self._limiter = self._new_limiter()
        self.generation += 1

    def _new_limiter(self) -> AsyncLimiter:
        """A leaky bucket of ``burst`` requests draining at ``rate_per_second``, both times the share.

        In any window of T seconds at most ``burst + rate * T`` requests start, for all workers together.
        """
        rate = self.settings.rate_per_second * self.share
        burst = max(1.0, self.settings.burst * self.share)
        return AsyncLimiter(burst, burst / rate)

    def set_share(self, share: float) -> None:
        if share > 0 and share != self.share:
            self.share = share
            self._limiter = self._new_limiter()

    def record_call(self, *, ok: bool) -> None:
        """The end of one delivery: a failed one (every record a retryable error) is counted, and
        the breaker hears of both."""
        if not ok:
            self.stats.failed_calls += 1
        self.breaker.record(ok=ok)

    def pause(self, seconds: float) -> None:
        """The provider throttled us: no call starts before ``seconds`` from now."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self.stats.throttled += 1

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    def seconds_for(self, requests: int) -> float:
        """How long this worker's share of the rate takes to start ``requests`` requests."""
        return requests / (self.settings.rate_per_second * self.share)

    @property
    def saturated(self) -> bool:
        """Whether a request started now would have to wait: the lane is paused, or its share of the
        rate is used up for the moment."""
        return self.paused_for > 0 or not self._limiter.has_capacity()

    async def admit_request(self) -> None:
        """Wait until one more HTTP request may start: after any throttle pause, within the rate."""
        while (wait := self.paused_for) > 0:
            await asyncio.sleep(wait)
        await self._limiter.acquire()
        self.stats.calls += 1

    def transport(self) -> httpx.AsyncBaseTransport:
        """An HTTP transport whose every request is admitted by this lane first. (How many requests
        are under way at once is capped by the adapter's client, ``pipeline.providers.http``.)"""
        return _AdmittedTransport(self, http_transport())


class _AdmittedTransport(httpx.AsyncBaseTransport):
    """Counts every request against the lane's limit, however many one delivery makes."""

    def __init__(self, lane: ProviderLane, inner: httpx.AsyncBaseTransport) -> None:
        self._lane = lane
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._lane.admit_request()
        self._lane.stats.in_flight += 1
        try:
            return await self._inner.handle_async_request(request)
        finally:
            self._lane.stats.in_flight -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()
