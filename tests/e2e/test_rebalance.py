"""Changes that arrive while workers join, rebalance and leave are neither lost nor left uncommitted."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.dev.cdc_generator import generate_events

# Mailchimp archives a deleted member with a GET and a DELETE; at the lane's default 10 requests/s
# the deletes still took 35 s after the last rebalance (2026-12-07), time in which nothing this test
# is about happens. The simulator limits connections (10), not requests per second.
AFTER_THE_REBALANCES = {"CONTACTSYNC_PROVIDERS__MAILCHIMP__RATE_PER_SECOND": "40"}


@pytest.mark.timeout(420)
async def test_changes_published_during_rebalances_all_arrive(pipeline) -> None:
    """Two workers start while the changes pour in (no wait for them to be ready), a third joins
    mid-run and the first leaves: every provider ends with the newest version of every record and
    the group commits every stage's input to its end (nothing acknowledged without being handled)."""
    harness, exits = pipeline
    await harness.start(exits, workers=0, env=AFTER_THE_REBALANCES)
    harness.start_worker()
    harness.start_worker()
    events = list(generate_events(4000, records=800, seed=7))
    publishing = asyncio.create_task(harness.publish(events, rate=400))
    await asyncio.sleep(6)
    harness.start_worker()
    await asyncio.sleep(4)
    await harness.workers[0].shutdown()
    await publishing

    verdict = await harness.settle(events, timeout_s=240)
    assert (verdict.lost, verdict.stale) == ([], []), (verdict.lost[:3], verdict.stale[:3], harness.logs())
    assert verdict.version_regressions == 0, harness.report_regressions(await harness.regressions())
    report = await harness.settled_lag()
    assert report.lag == 0, (report.to_json(), harness.logs())
