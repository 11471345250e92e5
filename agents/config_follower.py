"""Every worker follows the run-time rules and provider settings (``pipeline.runtime_config``).

Not a stage: a task that reads the two compacted config topics whole, in no consumer group, and puts
each document in force. The stages wait for it to have read what was stored before the worker started,
so no event is handled under rules that were already replaced. If it cannot go on, the worker stops
(a worker must not keep running on configuration it can no longer see change).
"""

from __future__ import annotations

from pipeline.app import app, context
from pipeline.kafka.producing import fail_stop

STAGE = "runtime-config"


@app.task  # type: ignore[untyped-decorator]  # Faust types it loosely
async def follow_runtime_config() -> None:
    try:
        await context.runtime.follow(context.settings.bootstrap_servers, f"{context.settings.app_id}-{STAGE}")
    except Exception as exc:  # noqa: BLE001  (a fault of the worker: stop, commit nothing)
        fail_stop(STAGE, exc)
