"""Every worker follows the stops recorded against messages (``pipeline.kafka.worker_faults``).

Not a stage: a task that reads ``contacts.faults`` whole, in no consumer group, and again to its end
after each partition assignment; the stages wait for it before they handle a batch. If it cannot go
on, the worker stops (it would otherwise crash again and again on a message it should give up on).
"""

from __future__ import annotations

from pipeline.app import app, context
from pipeline.kafka.producing import fail_stop

STAGE = "faults"

app.on_partitions_assigned.connect(context.faults.on_partitions_assigned)


@app.task  # type: ignore[untyped-decorator]  # Faust types it loosely
async def follow_faults() -> None:
    try:
        await context.faults.follow(f"{context.settings.app_id}-{STAGE}")
    except Exception as exc:  # noqa: BLE001  (a fault of the worker: stop, commit nothing)
        fail_stop(STAGE, exc)
