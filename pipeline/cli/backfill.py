"""``contactsync backfill``: publish a snapshot file or a Postgres table as CDC snapshot events, resumably."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from pipeline.cli import app, load_catalog, load_settings
from pipeline.cli.when import parse_when
from pipeline.errors import ConfigError
from pipeline.kafka.topic_admin import require_topics
from pipeline.logging import configure_logging
from pipeline.ops.backfill import publish as snapshot
from pipeline.ops.backfill.from_file import FileRows
from pipeline.stages.source_mapping import SourceMapping, load_source_mapping

INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT


@app.command()
def backfill(
    from_: Path = typer.Option(None, "--from", help="A .jsonl or .csv file of contact rows (columns of the table)."),
    from_postgres: str = typer.Option(
        None, help="A Postgres DSN ('host=db dbname=app user=sync' or postgresql://...); the password is best "
        "left to PGPASSWORD or ~/.pgpass. Needs the postgres extra: pip install 'contactsync\\[postgres]'.",
    ),
    table: str = typer.Option(
        None, help="With --from-postgres: the table or view, as named in the catalog (contacts, crm.contacts). "
        "The columns the source mapping names are read (CONTACTSYNC_SOURCE__MAPPING, by default "
        "pipeline/mappings/source.yaml), in key order; NULL is a missing value (false for the flags).",
    ),
    as_of: str = typer.Option(
        None, help="When the snapshot was taken (ISO or ago); default: the file's mtime, or the server's clock."
    ),
    lsn: int = typer.Option(
        None, help="The database LSN the snapshot was taken at; default for a table: the server's WAL position "
        "when the backfill begins, which orders it before any later CDC change.",
    ),
    rate: float = typer.Option(
        None, help="Rows per second at most, so that live changes are not buried; default: no limit."
    ),
    state: Path = typer.Option(
        None, help="Where the progress is kept; default: FILE.backfill.json beside --from, or "
        "./DATABASE.TABLE.backfill.json for a table.",
    ),
) -> None:
    """Send every row as a snapshot (op r) event to the CDC topic, by key order for a table; a rerun resumes
    where it stopped (SIGINT stops after the rows in flight are acknowledged and saved)."""
    if rate is not None and rate <= 0:
        raise ConfigError(f"--rate must be above 0 rows per second, got {rate}")
    settings = load_settings()
    configure_logging(settings.log_level)
    topic = load_catalog(settings).cdc
    as_of_ms = parse_when(as_of, "--as-of") if as_of else None
    mapping = load_source_mapping(settings.source.mapping)
    with _row_source(from_, from_postgres, table, mapping) as rows:
        state_file = state or rows.state_file
        progress = snapshot.begin_or_resume(rows, state_file, as_of_ms=as_of_ms, lsn=lsn)
        remaining = rows.remaining(progress)
        total = progress.rows_done + remaining
        if not remaining:
            typer.echo(f"{rows.label}: all {total} rows were sent already; delete {state_file} to send again")
            return
        if progress.rows_done:
            typer.echo(f"resuming after {progress.rows_done} of {total} rows")
        bootstrap = settings.bootstrap_servers
        asyncio.run(require_topics(bootstrap, topic))
        resumed_at = progress.rows_done
        with typer.progressbar(length=total, label="backfill", show_pos=True) as bar:
            bar.update(resumed_at)
            progress, finished = asyncio.run(
                snapshot.backfill(bootstrap, topic, rows, progress, state_file, rate=rate, on_sent=bar.update,
                                  retry_deadline_s=settings.kafka.retry_deadline_s)
            )
    if not finished:
        typer.echo(f"stopped after row {progress.rows_done} of {total}; run the same command again to resume")
        raise typer.Exit(INTERRUPTED)
    typer.echo(f"sent rows {resumed_at + 1} to {progress.rows_done} of {rows.label} to {topic} as snapshot events")


@contextmanager
def _row_source(
    path: Path | None, dsn: str | None, table: str | None, mapping: SourceMapping
) -> Iterator[snapshot.RowSource]:
    """The file's rows, or the table's over a connection held open until the backfill ends."""
    if path is not None and dsn is None:
        if table is not None:
            raise ConfigError("--table goes with --from-postgres, not --from")
        yield FileRows(path, mapping)
        return
    if path is not None or dsn is None:
        raise ConfigError("give either --from FILE or --from-postgres DSN --table TABLE")
    if not table:
        raise ConfigError("--from-postgres needs --table TABLE")
    try:
        from pipeline.ops.backfill import from_postgres as snapshot_table
    except ImportError:
        raise ConfigError("--from-postgres needs psycopg: pip install 'contactsync[postgres]'") from None
    with snapshot_table.connect(dsn) as connection:
        yield snapshot_table.TableRows(connection, table, mapping)
