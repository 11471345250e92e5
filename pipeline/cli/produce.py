"""``contactsync produce``: publish generated change events to the CDC topic."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Annotated

import typer
from aiokafka.errors import KafkaError

from pipeline.cli import app, load_settings
from pipeline.dev.cdc_generator import GeneratedEvent, generate_events
from pipeline.dev.cdc_publisher import publish
from pipeline.errors import ConfigError
from pipeline.kafka.topic_admin import require_topics
from pipeline.kafka.topics import TopicCatalog
from pipeline.logging import configure_logging


@app.command()
def produce(
    count: Annotated[int, typer.Option(help="Messages to send, tombstones included.")],
    records: Annotated[int, typer.Option(help="How many distinct records the changes are about.")] = 1000,
    rate: Annotated[float | None, typer.Option(help="Messages per second; as fast as possible if omitted.")] = None,
    invalid_ratio: Annotated[float, typer.Option(help="Share of invalid events, 0 to 1.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Random seed; the same seed gives the same changes.")] = None,
    plain: Annotated[bool, typer.Option(help="The plain {op, id, ts, data} form instead of Debezium.")] = False,
) -> None:
    """Generate realistic contact changes (Debezium JSON) and send them, keyed by record id."""
    if rate is not None and rate <= 0:
        raise ConfigError(f"--rate must be above 0 messages per second, got {rate}")
    settings = load_settings()
    configure_logging(settings.log_level)
    seed = random.randrange(2**32) if seed is None else seed
    topic = TopicCatalog.load(settings.kafka.topics_file, settings.kafka.topic_prefix).cdc
    bootstrap = settings.bootstrap_servers
    started = time.perf_counter()
    try:
        events = generate_events(count, records=records, seed=seed, invalid_ratio=invalid_ratio, plain=plain)
        sent = asyncio.run(_publish_to_existing(events, bootstrap, topic, rate, settings.kafka.retry_deadline_s))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except KafkaError as exc:
        raise ConfigError(f"cannot publish to {topic} at {bootstrap}: {exc}") from None
    elapsed = time.perf_counter() - started
    typer.echo(f"sent {sent} messages to {topic} in {elapsed:.2f}s ({sent / elapsed:.0f}/s, seed {seed})")


async def _publish_to_existing(
    events: Iterator[GeneratedEvent], bootstrap: str, topic: str, rate: float | None, retry_deadline_s: float
) -> int:
    """Publish, after checking the topic exists (a producer would wait for it and log every 100 ms)."""
    await require_topics(bootstrap, topic)
    return await publish(events, bootstrap, topic, rate=rate, retry_deadline_s=retry_deadline_s)
