"""``contactsync apply --to-postgres DSN --table T``: platform changes into the contacts table."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Awaitable, Callable

import typer

from pipeline.cli import app, load_catalog, load_settings
from pipeline.errors import ConfigError
from pipeline.kafka.topic_admin import require_topics
from pipeline.logging import configure_logging
from pipeline.stages.source_mapping import load_source_mapping

OUTCOMES = (
    "inserted", "updated", "deleted", "older", "changed_in_table", "not_in_table", "unmapped", "dead_lettered",
)


@app.command()
def apply(
    to_postgres: str = typer.Option(
        ..., help="The contacts database's DSN ('host=db dbname=app user=sync' or postgresql://...); the password "
        "is best left to PGPASSWORD or ~/.pgpass.",
    ),
    table: str = typer.Option(
        ..., help="The contacts table (schema.table), its columns named by the source mapping "
        "(CONTACTSYNC_SOURCE__MAPPING, by default pipeline/mappings/source.yaml), as CDC and backfill read it.",
    ),
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Stop once every partition is applied to its end (scripts, tests); "
        "default: run until SIGINT or SIGTERM.",
    ),
    group: str = typer.Option(
        None, help="The consumer group, whose committed offsets say where to resume; default: "
        "<app id>-apply-<table>. A new group applies the topic from its start: what the table has is a no-op.",
    ),
    clock_table: str = typer.Option(
        "contactsync_applied", help="The table, in the contacts table's schema, of each field's applied time; "
        "created if missing.",
    ),
) -> None:
    """Apply contacts.changes.inbound (changes made at the platforms that won) to TABLE: only the fields each
    change carries, a contact created at a platform inserted, never an older change over a newer one."""
    settings = load_settings()
    configure_logging(settings.log_level)
    catalog = load_catalog(settings)
    mapping = load_source_mapping(settings.source.mapping)
    try:
        from pipeline.ops.apply.applier import ApplierTopics, run_applier
        from pipeline.ops.apply.table import ContactsTable
        from pipeline.ops.backfill.from_postgres import connect
    except ImportError:
        raise ConfigError("--to-postgres needs psycopg: pip install 'contactsync[postgres]'") from None
    topics = ApplierTopics(catalog.changes_inbound, catalog.dlq)
    bootstrap, group = settings.bootstrap_servers, group or f"{settings.app_id}-apply-{table}"
    with connect(to_postgres) as connection:
        target = ContactsTable(connection, table, mapping, clock_table, settings.routing.default_phone_region)
        asyncio.run(require_topics(bootstrap, topics.changes, topics.dlq))
        counts = asyncio.run(_until_stopped(lambda stop: run_applier(
            target, bootstrap, topics, group, stop, until_idle=until_idle,
            retry_deadline_s=settings.kafka.retry_deadline_s,
        )))
    summary = ", ".join(f"{counts[outcome]} {outcome.replace('_', ' ')}" for outcome in OUTCOMES)
    typer.echo(f"applied {sum(counts.values())} changes from {topics.changes} to {table}: {summary}")


async def _until_stopped(run: Callable[[asyncio.Event], Awaitable[Counter[str]]]) -> Counter[str]:
    """``run`` with an event that SIGINT and SIGTERM set: it stops between batches."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await run(stop)
