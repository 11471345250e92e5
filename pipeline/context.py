"""What a worker holds while it runs, built once from the settings: the Faust app, its topics and
tables, the provider lanes, the run-time configuration, the fault book and the outcome counters.

``pipeline.app`` builds the one context of a worker process (Faust's worker imports the app by name);
agents and views take what they need from it. A test builds its own with ``build_context(settings)``,
without importing the app.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from pipeline.delivery.rate_limit import ProviderLane
from pipeline.kafka.rocksdb_store import WorkerRocksDBMemory, table_store_url
from pipeline.kafka.tables import StageTables, TableManager, create_tables
from pipeline.kafka.topics import TopicCatalog
from pipeline.kafka.worker_faults import FaultBook
from pipeline.ops.metrics import OutcomeCounts, WebhookCounts
from pipeline.runtime_config import RuntimeConfig
from pipeline.settings import Settings
from pipeline.web.access import access_middleware


@dataclass(frozen=True)
class StageTopics:
    """Faust topic objects for the stages, all raw bytes: agents decode with pydantic themselves,
    so a value that does not decode is dead-lettered by us instead of dropped by Faust."""

    catalog: TopicCatalog
    cdc: faust.TopicT
    validated: faust.TopicT
    transformed: faust.TopicT
    conflict: faust.TopicT  # contacts.transformed and contacts.inbound, read by one stage (agents/conflict.py)
    dispatch: dict[str, faust.TopicT]
    retry: dict[str, dict[str, faust.TopicT]]


def create_app(settings: Settings) -> tuple[faust.App, StageTopics, StageTables]:
    catalog = TopicCatalog.load(settings.kafka.topics_file, settings.kafka.topic_prefix)
    app = faust.App(
        settings.app_id,
        broker=f"contactsync://{settings.bootstrap_servers}",  # Kafka, see pipeline/kafka/transport.py
        store=table_store_url(settings.table_store),  # RocksDB: see pipeline/kafka/rocksdb_store.py
        datadir=str(settings.data_dir),
        autodiscover=["agents", "pipeline.web"],  # and no origin: Faust would scan all of pipeline/ too
        env={},  # Faust's own variables (WEB_BIND, WEB_PORT, APP_WEB_*_ENABLED, ...) do not apply: Settings does
        web_port=settings.web_port,
        web_host=settings.web_host,
        web_bind=settings.web_host,  # listen where other workers reach us, not on every interface
        canonical_url=settings.web_canonical_url or None,
        web_application_options={"middlewares": [access_middleware(settings.admin)]},  # Faust's views too
        topic_partitions=catalog.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 4,
        table_cleanup_interval=60.0,
        table_standby_replicas=settings.standby_replicas,
        # A stage's inbox (pipeline/kafka/inbox.py) pauses fetching its partitions once it holds
        # this many messages, and resumes at half: two batches of batch_max, one taken while the next
        # arrives (one, for a Mailchimp dispatch that gathers its requests); the rest waits in
        # Kafka. What a worker holds fetched and taken sets its peak memory (8,192 before: the
        # bottleneck stage's inbox filled to it; benchmarks/README.md, "Tenth session").
        stream_buffer_maxsize=2 * settings.batch_max,
        broker_max_poll_records=500,
        # One record batch of a partition's outputs (pipeline/kafka/producing.py), not one per 16 KiB
        # (Faust's default): aiokafka sends one batch per partition per request and waits for the
        # answer before the next, so a stage's 1,000 outputs went out in ~7 round trips, and the next
        # stage fetched them in as many small pieces (batches of 26-100 events). At the consumer's
        # fetch size per partition (below), and within every topic's max.message.bytes.
        producer_max_batch_size=catalog.record_batch_limit(256 * 1024),
        # What one fetch may bring of each partition (Faust's default 1 MiB), held until the stages
        # take it; a larger message still comes whole. 256 KiB: see benchmarks/README.md, "Memory".
        consumer_max_fetch_size=256 * 1024,
        TableManager=TableManager,  # without Faust's fixed second at start (pipeline/kafka/tables.py)
    )

    def raw_topic(*names: str) -> faust.TopicT:
        return app.topic(
            *names,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=catalog.partitions,
        )

    providers = tuple(settings.providers.enabled())
    topics = StageTopics(
        catalog=catalog,
        cdc=raw_topic(catalog.cdc),
        validated=raw_topic(catalog.validated),
        transformed=raw_topic(catalog.transformed),
        conflict=raw_topic(catalog.transformed, catalog.inbound),
        dispatch={name: raw_topic(catalog.dispatch(name)) for name in providers},
        retry={
            name: {tier: raw_topic(catalog.retry(name, tier)) for tier in catalog.retry_tiers}
            for name in providers
        },
    )
    memory = WorkerRocksDBMemory.of_mib(settings.table_block_cache_mib, settings.table_write_buffers_mib)
    return app, topics, create_tables(app, catalog, memory)



@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    app: faust.App
    topics: StageTopics
    tables: StageTables
    lanes: dict[str, ProviderLane]  # per enabled provider: rate limit share, pauses, breaker
    runtime: RuntimeConfig  # rules and lane limits as changed at run time
    faults: FaultBook  # worker stops counted against messages (contacts.faults)
    outcome_counts: OutcomeCounts  # filled where outcomes are recorded (pipeline.delivery.outcomes), shown by /metrics
    webhook_counts: WebhookCounts  # filled by the webhook receivers and the conflict stage, shown by /metrics


def build_context(settings: Settings) -> WorkerContext:
    """The app and everything a worker holds, for ``settings``."""
    app, topics, tables = create_app(settings)
    lanes = {name: ProviderLane(name, lane) for name, lane in settings.providers.enabled().items()}
    return WorkerContext(
        settings=settings,
        app=app,
        topics=topics,
        tables=tables,
        lanes=lanes,
        runtime=RuntimeConfig(settings, lanes, topics.catalog),
        faults=FaultBook(settings.bootstrap_servers, topics.catalog, settings.worker_fault_stops),
        outcome_counts=OutcomeCounts(),
        webhook_counts=WebhookCounts(),
    )
