"""The provider lane: circuit breaker states and the rate limit share."""

from __future__ import annotations

import asyncio
import time

from pipeline.delivery.rate_limit import CircuitBreaker, ProviderLane
from pipeline.settings import HubSpotSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_a_run_of_failures_and_probes_after_cool_off() -> None:
    """Closed → open after N failures → one probe when half-open → closed on success."""
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cool_off_s=10, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record(ok=False)
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 4
    assert breaker.probe_in == 6  # records meeting the open breaker wait this long in the retry chain
    clock.now = 10
    assert breaker.state == "half_open" and breaker.probe_in == 0
    assert breaker.allow() and not breaker.allow()  # only one probe at a time
    breaker.record(ok=True)
    assert breaker.state == "closed" and breaker.allow()


def test_failed_probe_reopens_the_breaker() -> None:
    """A probe that fails starts a new cool-off."""
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cool_off_s=5, clock=clock)
    breaker.record(ok=False)
    clock.now = 5
    assert breaker.allow()
    breaker.record(ok=False)
    assert breaker.state == "open"


async def test_lane_never_starts_more_than_burst_plus_rate_times_window() -> None:
    """With rate 20/s and burst 5, at most 5 + 20*T calls start in T seconds (T = 0.5)."""
    lane = ProviderLane("hubspot", HubSpotSettings(rate_per_second=20, burst=5, max_in_flight=50))
    starts: list[float] = []

    async def request() -> None:
        await lane.admit_request()
        starts.append(time.monotonic())

    began = time.monotonic()
    await asyncio.gather(*(request() for _ in range(15)))
    within_half_second = sum(1 for t in starts if t - began <= 0.5)
    assert within_half_second <= 5 + 20 * 0.5 + 1  # +1: the bucket's edge at exactly T


async def test_half_share_halves_the_rate() -> None:
    """A worker holding half the partitions takes half the limit."""
    lane = ProviderLane("hubspot", HubSpotSettings(rate_per_second=20, burst=2, max_in_flight=50))
    lane.set_share(0.5)
    began = time.monotonic()
    await asyncio.gather(*(lane.admit_request() for _ in range(11)))
    # burst 1 then 10 more at 10/s: about one second, never faster than the half rate allows
    assert time.monotonic() - began >= 0.9


def test_a_number_of_requests_takes_the_workers_share_of_the_rate() -> None:
    """How long a lane takes to start N requests: N ÷ (rate × this worker's share)."""
    lane = ProviderLane("hubspot", HubSpotSettings(rate_per_second=2))
    assert lane.seconds_for(40) == 20.0
    lane.set_share(0.5)
    assert lane.seconds_for(40) == 40.0


async def test_pause_holds_calls_until_it_is_over() -> None:
    """After a throttling answer no call starts before the pause ends."""
    lane = ProviderLane("hubspot", HubSpotSettings(rate_per_second=100, burst=10))
    lane.pause(0.3)
    began = time.monotonic()
    await lane.admit_request()
    assert time.monotonic() - began >= 0.29 and lane.stats.throttled == 1


async def test_reconfigured_lane_admits_at_the_new_rate_and_keeps_its_pause() -> None:
    """Lowering the rate slows the very next requests; a pause in progress and the counters stay."""
    lane = ProviderLane("hubspot", HubSpotSettings(rate_per_second=100, burst=10, max_in_flight=4))
    await asyncio.gather(*(lane.admit_request() for _ in range(3)))
    lane.pause(0.05)
    lane.reconfigure(HubSpotSettings(rate_per_second=10, burst=1, max_in_flight=2))
    began = time.monotonic()
    await asyncio.gather(*(lane.admit_request() for _ in range(4)))
    # after the pause: burst 1, then 3 more at 10/s
    assert time.monotonic() - began >= 0.05 + 0.29
    assert (lane.generation, lane.stats.calls, lane.stats.throttled) == (1, 7, 1)
    assert lane.transport() is not None and lane.settings.max_in_flight == 2


def test_reconfiguring_with_the_same_settings_changes_nothing() -> None:
    """Applying the settings a lane already has does not count as a change (no new client)."""
    lane = ProviderLane("hubspot", HubSpotSettings())
    lane.reconfigure(HubSpotSettings())
    assert lane.generation == 0


def test_lane_counts_failed_calls_and_tells_the_breaker() -> None:
    """A delivery that failed as a whole counts in failed_calls (GET /providers, /metrics) and
    towards the breaker; a successful one counts nowhere and closes the run of failures."""
    lane = ProviderLane("hubspot", HubSpotSettings(), breaker_threshold=2)
    lane.record_call(ok=False)
    lane.record_call(ok=True)
    lane.record_call(ok=False)
    assert (lane.stats.failed_calls, lane.breaker.state) == (2, "closed")
    lane.record_call(ok=False)
    assert (lane.stats.failed_calls, lane.breaker.state) == (3, "open")
