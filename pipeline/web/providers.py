"""``GET /providers``: each provider lane of this worker: its limits, its share, what it has done."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from pipeline.app import app, context
from pipeline.delivery.rate_limit import ProviderLane


def lane_document(lane: ProviderLane) -> dict[str, Any]:
    """Configured limits (for all workers together), this worker's share of them, and its counters."""
    limits = lane.settings
    stats = lane.stats
    return {
        "limit": {
            "rate_per_second": limits.rate_per_second, "burst": limits.burst,
            "batch_size": limits.batch_size, "max_in_flight": limits.max_in_flight,
        },
        "share": lane.share,
        "calls": stats.calls,
        "throttled": stats.throttled,
        "failed_calls": stats.failed_calls,
        "in_flight": stats.in_flight,
        "paused_for_s": round(lane.paused_for, 3),
        "breaker": lane.breaker.state,
    }


@app.page("/providers")
async def providers(view: View, request: Request) -> Response:
    return view.json({name: lane_document(lane) for name, lane in context.lanes.items()})
