"""``contactsync status ID``: where one record stands at each provider."""

from __future__ import annotations

import asyncio
import json
import time

import typer

from pipeline.cli import app, load_catalog, load_settings
from pipeline.cli.text_table import format_table
from pipeline.ops.record_status import status_document, status_from_changelog, status_from_worker
from schemas.status import RecordStatus


@app.command()
def status(
    record_id: str = typer.Argument(..., help="The record's id (the CDC key)."),
    url: str = typer.Option(None, help="Ask this worker (e.g. http://127.0.0.1:6066) instead of reading Kafka."),
    as_json: bool = typer.Option(False, "--json", help="Print the record's status as one JSON object."),
) -> None:
    """Per provider: state, version, attempts, time, provider id and last error. Exit 1: unknown record."""
    settings = load_settings()
    if url:
        found = asyncio.run(status_from_worker(settings.admin, url, record_id))
    else:
        catalog = load_catalog(settings)
        changelog = catalog.record_status_changelog
        found = asyncio.run(status_from_changelog(
            settings.bootstrap_servers, changelog, catalog.providers, catalog.partitions, record_id,
        ))
    if found is None:
        typer.echo(f"record {record_id}: no status yet (the pipeline has no outcome for it)", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(status_document(record_id, found)))
    else:
        typer.echo("\n".join(status_lines(record_id, found)))


def status_lines(record_id: str, found: RecordStatus) -> list[str]:
    """The table, then one line per field the pipeline dropped from the contact, saying why."""
    rows: list[list[object]] = [
        [name, row.state, row.version, row.attempts,
         time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.at_ms / 1000)),
         row.provider_id or "-", ",".join(d.field for d in row.dropped_fields) or "-", row.last_error or "-"]
        for name, row in sorted(found.providers.items())
    ]
    headers = ["PROVIDER", "STATE", "VERSION", "ATTEMPTS", "AT", "PROVIDER ID", "DROPPED", "LAST ERROR"]
    dropped = dict.fromkeys(d for row in found.providers.values() for d in row.dropped_fields)
    notes = [f"{d.field} dropped from the contact: {d.reason}" for d in dropped]
    return [f"record {record_id}", *format_table(headers, rows), *notes]
