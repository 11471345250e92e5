"""``contactsync demo``: run the whole pipeline locally and print what happened."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Any

import typer

from pipeline.cli import app, load_settings
from pipeline.errors import ConfigError
from pipeline.logging import configure_logging
from pipeline.settings import Settings


class Source(StrEnum):
    generated = "generated"
    postgres = "postgres"


@app.command()
def demo(
    source: Source = typer.Option(Source.generated, help="generated: CDC events made up and published; postgres: "
                                  "SQL changes to a table of a local Postgres, through Kafka Connect and Debezium."),
    events: int = typer.Option(2000, min=1, help="How many CDC events to publish (generated)."),
    records: int = typer.Option(500, min=1, help="How many distinct contacts they are about (generated)."),
    invalid_ratio: float = typer.Option(0.01, min=0.0, max=1.0, help="Share of poison events (generated)."),
    rows: int = typer.Option(200, min=0, help="Rows before the connector starts: its snapshot (postgres)."),
    changes: int = typer.Option(800, min=0, help="INSERT/UPDATE/DELETE statements written afterwards (postgres)."),
    rate: float = typer.Option(50.0, min=0.1, help="Statements per second (postgres)."),
    seed: int = typer.Option(7, help="Seed of the event generator."),
    timeout: float = typer.Option(180.0, min=1.0, help="Seconds to wait for every change to settle."),
    steady_rate: float = typer.Option(
        20.0, min=0.1, help="Changes a second after the burst settled: latency when the pipeline keeps up (generated)."
    ),
    steady_seconds: float = typer.Option(10.0, min=0.0, help="How long to offer them (0: the burst only; generated)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
) -> None:
    """Changes through a local pipeline into the provider simulators; exit 1 unless all are accounted for."""
    settings = load_settings()
    configure_logging("WARNING")
    if source is Source.postgres:
        summary = _postgres_demo(settings, rows, changes, rate, seed, timeout)
    else:
        from pipeline.dev.demo import DemoOptions, run_demo  # here, not at the top: jsonschema (see main)

        options = DemoOptions(events, records, invalid_ratio, seed, timeout, steady_rate, steady_seconds)
        summary = asyncio.run(run_demo(settings, options))
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for name, value in summary.items():
            typer.echo(f"{name:>22}: {value}")
    if not summary["reconciled"]:  # lost, stale, or timed out before every change was accounted for
        raise typer.Exit(1)


def _postgres_demo(
    settings: Settings, rows: int, changes: int, rate: float, seed: int, timeout: float
) -> dict[str, Any]:
    try:
        from pipeline.dev.postgres_demo import PostgresDemoOptions, run_postgres_demo
    except ModuleNotFoundError as missing:
        if missing.name != "psycopg":
            raise
        raise ConfigError("--source postgres needs psycopg: pip install 'contactsync[postgres]'") from None
    return asyncio.run(run_postgres_demo(settings, PostgresDemoOptions(rows, changes, rate, seed, timeout)))
