"""``contactsync kafka start|stop|status``: the local Apache Kafka for development and the demo."""

from __future__ import annotations

import typer

from pipeline.cli import app, load_settings
from pipeline.dev.local_kafka import LocalKafka, jars_cached, with_free_ports

kafka_app = typer.Typer(
    no_args_is_help=True, help="Start, stop and inspect the local Apache Kafka (development and demo)."
)
app.add_typer(kafka_app, name="kafka")


@kafka_app.command()
def start(
    free_ports: bool = typer.Option(False, "--free-ports", help="Pick free ports instead of the configured ones."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the broker's data first."),
) -> None:
    """Start the local broker (fetching its jars on first use) and print its bootstrap address."""
    settings = load_settings()
    local = settings.local_kafka
    broker = LocalKafka(with_free_ports(local) if free_ports else local)
    if broker.status() is None and not jars_cached(local):
        typer.echo(f"fetching the Kafka {local.version} jars with Maven into {local.cache_dir} (first start only)")
    state = broker.start(fresh=fresh)
    verb = "already running" if state.already_running else "started"
    typer.echo(f"Kafka {verb} at {state.bootstrap} (pid {state.pid}, run dir {state.run_dir})")
    if state.bootstrap != settings.bootstrap_servers:
        typer.echo(f"to use it: export KAFKA_BOOTSTRAP_SERVERS={state.bootstrap}")


@kafka_app.command()
def stop() -> None:
    """Stop the local broker: a controlled shutdown, killed if it takes longer than 30 s."""
    broker = LocalKafka(load_settings().local_kafka)
    typer.echo("Kafka stopped" if broker.stop() else f"Kafka was not running (run dir {broker.run_dir})")


@kafka_app.command()
def status() -> None:
    """Say whether the local broker runs and where; exit code 1 when it does not."""
    broker = LocalKafka(load_settings().local_kafka)
    state = broker.status()
    if state is None:
        typer.echo(f"Kafka is down (run dir {broker.run_dir})")
        raise typer.Exit(1)
    typer.echo(f"Kafka is up at {state.bootstrap} (pid {state.pid}, run dir {state.run_dir})")
