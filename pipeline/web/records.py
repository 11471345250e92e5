"""``GET /records/{id}``: one record's status at each provider, from the worker that owns it.

Any worker answers: Faust forwards the request to the worker holding the record's partition of the
record-status table.
"""

from __future__ import annotations

from faust.web import Request, Response, View

from pipeline.app import app, tables
from pipeline.record_status import status_document
from schemas.status import RecordStatus


@app.page("/records/{id}")
@app.table_route(table=tables.status, match_info="id")
async def record_status(view: View, request: Request, id: str) -> Response:  # noqa: A002  (the route's name)
    stored = tables.status.get(id.encode())
    if stored is None:
        return view.json({"error": "no status for this record", "record_id": id}, status=404)
    return view.json(status_document(id, RecordStatus.model_validate_json(stored)))
