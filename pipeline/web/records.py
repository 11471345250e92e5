"""``GET /records/{id}``: one record's status at each provider; ``POST /records/{id}/retry``: send its
newest change through the pipeline again (see ``pipeline.ops.resend``).

Any worker answers: Faust forwards the request to the worker holding the record's partition of the
record-status table, which merges the record's rows there (``pipeline.ops.record_status``).
"""

from __future__ import annotations

from faust.web import Request, Response, View

from pipeline.app import app, context
from pipeline.ops.record_status import status_document, status_from_table
from pipeline.ops.resend import resend_newest_change


@app.page("/records/{id}")
@app.table_route(table=context.tables.status, match_info="id")
async def record_status(view: View, request: Request, id: str) -> Response:  # noqa: A002  (the route's name)
    status = status_from_table(context.tables.status, context.topics.catalog.providers, id)
    if status is None:
        return view.json({"error": "no status for this record", "record_id": id}, status=404)
    return view.json(status_document(id, status))


@app.table_route(table=context.tables.status, match_info="id")
async def retry_record(view: View, request: Request, id: str) -> Response:  # noqa: A002
    resent = await resend_newest_change(
        context.settings.bootstrap_servers, context.topics.catalog, id, context.settings.kafka.retry_deadline_s
    )
    if resent is None:
        return view.json({"error": "no change event for this record in the CDC topic", "record_id": id}, status=404)
    where = {"topic": resent.topic, "partition": resent.partition, "offset": resent.offset}
    return view.json({"record_id": id, "resent": where}, status=202)


@app.page("/records/{id}/retry")
class RecordRetry(View):
    post = retry_record
