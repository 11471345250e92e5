"""``contactsync backfill --from FILE``: publish a snapshot file as CDC snapshot events, resumably."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from pipeline import backfill as snapshot
from pipeline.cli import app, load_catalog, load_settings
from pipeline.cli.when import parse_when
from pipeline.errors import ConfigError
from pipeline.snapshot_file import read_rows
from pipeline.topic_admin import require_topics


@app.command()
def backfill(
    from_: Path = typer.Option(..., "--from", help="A .jsonl or .csv file of contact rows (columns of the table)."),
    as_of: str = typer.Option(None, help="When the snapshot was taken (ISO or ago); default: the file's mtime."),
    lsn: int = typer.Option(None, help="The database LSN the snapshot was taken at, if known."),
) -> None:
    """Send every row as a snapshot (op r) event to the CDC topic; a rerun resumes where it stopped."""
    settings = load_settings()
    topic = load_catalog(settings).cdc
    if not from_.is_file():
        raise ConfigError(f"--from {from_}: no such file")
    source = snapshot.snapshot_source(from_, as_of_ms=parse_when(as_of, "--as-of") if as_of else None, lsn=lsn)
    state = snapshot.begin_or_resume(from_, source)
    total = sum(1 for _ in read_rows(from_))  # every row is checked before the first is sent
    if state.rows_done >= total:
        typer.echo(f"{from_}: all {total} rows were sent already; delete {snapshot.state_path(from_)} to send again")
        return
    if state.rows_done:
        typer.echo(f"resuming after {state.rows_done} of {total} rows")
    bootstrap = settings.bootstrap_servers
    asyncio.run(require_topics(bootstrap, topic))
    resumed_at = state.rows_done
    with typer.progressbar(length=total, label="backfill", show_pos=True) as bar:
        bar.update(resumed_at)
        state = asyncio.run(snapshot.backfill(bootstrap, topic, from_, state, bar.update))
    typer.echo(f"sent rows {resumed_at + 1} to {state.rows_done} of {from_} to {topic} as snapshot events")
