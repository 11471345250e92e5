"""``GET /lag`` (JSON) and ``GET /lag/page`` (HTML): the group's lag, sampled from the broker.

Every worker samples the whole group's lag every few seconds, so that commit ages and the chart's
history build up; the views serve the newest sample.
"""

from __future__ import annotations

import structlog
from aiokafka.errors import KafkaError
from faust.web import Request, Response, View

from pipeline.app import app, context
from pipeline.errors import ConfigError
from pipeline.kafka.stage_inputs import stage_inputs
from pipeline.ops.lag import LagReport, LagSampler, lag_reader
from pipeline.ops.lag_page import render_lag_page

SAMPLE_INTERVAL_S = 5.0

log = structlog.get_logger(__name__)
sampler = LagSampler(context.settings.app_id)
INPUTS = stage_inputs(context.topics.catalog, context.settings.providers.enabled())


async def read_lag() -> LagReport:
    async with lag_reader(context.settings.bootstrap_servers, sampler, INPUTS) as reader:
        return await reader.read()


@app.timer(interval=SAMPLE_INTERVAL_S)  # type: ignore[untyped-decorator]  # Faust types it loosely
async def sample_lag() -> None:
    """Take one sample; a broker that does not answer costs this sample, never the worker."""
    try:
        await read_lag()
    except (KafkaError, ConfigError, TimeoutError) as exc:
        log.warning("lag sample failed", error_class=type(exc).__name__, error=str(exc))


async def latest_lag() -> LagReport:
    return sampler.latest or await read_lag()


@app.page("/lag")
async def lag_json(view: View, request: Request) -> Response:
    return view.json((await latest_lag()).to_json())


@app.page("/lag/page")
async def lag_page(view: View, request: Request) -> Response:
    report = await latest_lag()
    return view.html(render_lag_page(report, list(sampler.history)))
