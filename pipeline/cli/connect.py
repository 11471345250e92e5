"""``contactsync connect start|stop|status|register``: Kafka Connect with the Debezium PostgreSQL
connector, writing a table's changes onto ``contacts.cdc``."""

from __future__ import annotations

import asyncio

import typer

from pipeline.cli import app, load_catalog, load_settings
from pipeline.dev.local_connect import LocalConnect
from pipeline.errors import ConfigError
from pipeline.kafka.topic_admin import require_topics
from pipeline.stages.source_mapping import load_source_mapping

connect_app = typer.Typer(
    no_args_is_help=True,
    help="Kafka Connect with the Debezium PostgreSQL connector: a table's changes to contacts.cdc.",
)
app.add_typer(connect_app, name="connect")

_NAME = typer.Option("contactsync-contacts", "--name", help="The connector's name; its slot and publication "
                     "are named after it (contactsync_contacts).")


@connect_app.command()
def start() -> None:
    """Start the local Connect worker (fetching its jars on first use) against the configured broker."""
    settings = load_settings()
    catalog = load_catalog(settings)
    worker = LocalConnect(settings.local_connect, settings.local_kafka)
    asyncio.run(require_topics(settings.bootstrap_servers, catalog.connect("configs")))
    state = worker.start(settings.bootstrap_servers, catalog, f"{settings.app_id}-connect")
    verb = "already running" if state.already_running else "started"
    typer.echo(f"Kafka Connect {verb} at {state.url} (pid {state.pid}, log {worker.log_file})")


@connect_app.command()
def stop() -> None:
    """Stop the local Connect worker (its connectors resume from their offsets at the next start)."""
    settings = load_settings()
    worker = LocalConnect(settings.local_connect, settings.local_kafka)
    stopped = worker.stop()
    typer.echo("Kafka Connect stopped" if stopped else f"Kafka Connect was not running (run dir {worker.run_dir})")


@connect_app.command()
def register(
    dsn: str = typer.Option(
        ..., help="The database, as libpq takes it ('host=db port=5432 dbname=app user=cdc'); the password "
        "from the DSN or PGPASSWORD. Debezium connects over TCP.",
    ),
    table: str = typer.Option(..., help="The contacts table, schema.table (default schema public)."),
    name: str = _NAME,
    url: str = typer.Option(None, help="The Connect REST API (default: the local worker's)."),
    schemas_enable: bool = typer.Option(False, help="Write the JSON with its schema (both decode)."),
) -> None:
    """Register (or update) the connector for TABLE: its columns are checked against the source mapping
    first, one line per problem; registering again changes nothing."""
    from pipeline.ops import cdc_connector  # here, not at the top: psycopg (see main)

    settings = load_settings()
    mapping = load_source_mapping(settings.source.mapping)
    problems = cdc_connector.table_problems(dsn, table, mapping)
    if problems:
        raise ConfigError("\n".join(f"source mapping: {problem}" for problem in problems))
    config = cdc_connector.connector_config(dsn, table, mapping, load_catalog(settings).cdc, name,
                                            schemas_enable=schemas_enable)
    target = url or LocalConnect(settings.local_connect, settings.local_kafka).url
    created = cdc_connector.register(target, name, config)
    verb = "registered" if created else "updated"
    typer.echo(f"connector {name} {verb}: {table} -> {config['transforms.route.replacement']}")


@connect_app.command()
def status(
    name: str = _NAME,
    dsn: str = typer.Option(None, help="With the database's DSN, the replication slot's lag in bytes too."),
    url: str = typer.Option(None, help="The Connect REST API (default: the local worker's)."),
) -> None:
    """The worker, the connector's and its tasks' states, and the slot's lag; exit 1 unless all run."""
    from pipeline.ops import cdc_connector  # here, not at the top: psycopg (see main)

    settings = load_settings()
    worker = LocalConnect(settings.local_connect, settings.local_kafka)
    state = worker.status()
    if url is None and state is None:
        typer.echo(f"Kafka Connect is down (run dir {worker.run_dir})")
        raise typer.Exit(1)
    found = cdc_connector.connector_status(url or worker.url, name)
    if found is None:
        typer.echo(f"connector {name}: not registered (contactsync connect register)")
        raise typer.Exit(1)
    states = [found["connector"]["state"], *(task["state"] for task in found.get("tasks", []))]
    typer.echo(f"connector {name}: {found['connector']['state']}")
    for task in found.get("tasks", []):
        trace = task.get("trace", "").splitlines()
        typer.echo(f"  task {task['id']}: {task['state']}{': ' + trace[0] if trace else ''}")
    if dsn:
        lag = cdc_connector.slot_lag_bytes(dsn, name)
        slot = cdc_connector.slot_name(name)
        typer.echo(f"  slot {slot}: " + ("none" if lag is None else f"{lag} bytes behind"))
    if any(state != "RUNNING" for state in states) or len(states) < 2:
        raise typer.Exit(1)
