"""``contactsync demo``: run the whole pipeline locally and print what happened."""

from __future__ import annotations

import asyncio
import json

import typer

from pipeline.cli import app, load_settings
from pipeline.dev.demo import DemoOptions, run_demo
from pipeline.logging import configure_logging


@app.command()
def demo(
    events: int = typer.Option(2000, min=1, help="How many CDC events to publish."),
    records: int = typer.Option(500, min=1, help="How many distinct contacts they are about."),
    invalid_ratio: float = typer.Option(0.01, min=0.0, max=1.0, help="Share of poison events."),
    seed: int = typer.Option(7, help="Seed of the event generator."),
    timeout: float = typer.Option(180.0, min=1.0, help="Seconds to wait for every change to settle."),
    steady_rate: float = typer.Option(
        20.0, min=0.1, help="Changes a second offered once the burst settled: latency when the pipeline keeps up."
    ),
    steady_seconds: float = typer.Option(10.0, min=0.0, help="How long to offer them (0: the burst only)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
) -> None:
    """Publish generated changes through a local pipeline into the provider simulators."""
    settings = load_settings()
    configure_logging("WARNING")
    options = DemoOptions(events, records, invalid_ratio, seed, timeout, steady_rate, steady_seconds)
    summary = asyncio.run(run_demo(settings, options))
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for name, value in summary.items():
            typer.echo(f"{name:>22}: {value}")
    if not summary["reconciled"]:  # lost, stale, or timed out before every change was accounted for
        raise typer.Exit(1)
