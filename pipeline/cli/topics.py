"""``contactsync topics apply|check|list``: the broker's topics against topics.yaml.

Exit codes: 0 in sync, 1 drift that needs a person (or, for check, any drift), 2 bad settings or
an unreachable broker.
"""

from __future__ import annotations

import asyncio

import typer

from pipeline.cli import app, load_catalog, load_settings
from pipeline.kafka import topic_admin

topics_app = typer.Typer(
    no_args_is_help=True,
    help="Make the broker's topics match topics.yaml, or name where they differ. Exit 1: drift; 2: error.",
)
app.add_typer(topics_app, name="topics")


@topics_app.command("apply")
def apply_() -> None:
    """Create missing topics and align configs; partition-count drift is refused (exit 1)."""
    settings = load_settings()
    applied = asyncio.run(topic_admin.apply(load_catalog(settings), settings.bootstrap_servers))
    for name in applied.created:
        typer.echo(f"created {name}")
    for name in applied.altered:
        typer.echo(f"altered the configs of {name}")
    for drift in applied.refused:
        typer.echo(f"refused: {drift} (fix by hand: recreate the topic or change topics.yaml)", err=True)
    if applied.refused:
        raise typer.Exit(1)
    typer.echo(f"topics match topics.yaml at {settings.bootstrap_servers}")


@topics_app.command()
def check() -> None:
    """Name every drift between the broker and topics.yaml; exit 1 if there is any."""
    settings = load_settings()
    drift = asyncio.run(topic_admin.check(load_catalog(settings), settings.bootstrap_servers))
    for item in drift:
        typer.echo(f"drift: {item}")
    if drift:
        raise typer.Exit(1)
    typer.echo(f"no drift: topics match topics.yaml at {settings.bootstrap_servers}")


@topics_app.command("list")
def list_() -> None:
    """List the catalog's topics with their declared size, configs and partitions on the broker."""
    settings = load_settings()
    on_broker = asyncio.run(topic_admin.partition_counts(settings.bootstrap_servers))
    for spec in load_catalog(settings).specs():
        found = on_broker.get(spec.name)
        state = "missing" if found is None else f"{found} partitions on broker"
        configs = " ".join(f"{key}={value}" for key, value in sorted(spec.config.items()))
        typer.echo(f"{spec.name}  partitions={spec.partitions} rf={spec.replication_factor} {configs}  [{state}]")
