"""Shared fixtures. The broker helpers live in tests/kafka_harness.py; add other groups (simulators,
workers) below the Kafka ones, each with a one-line docstring."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.dev.demo import free_port
from pipeline.dev.local_postgres import MISSING, postgres_server, server_bin
from pipeline.kafka import topic_admin
from pipeline.kafka.topics import TopicCatalog
from pipeline.settings import KafkaSettings, Settings
from tests.kafka_harness import SessionBroker, fresh_prefix, kafka_broker
from tests.postgres_harness import create_contacts_table, fresh_table_name

# --- Kafka ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def session_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionBroker]:
    """The session's broker (see tests/kafka_harness.py for which one, and when a test may restart it)."""
    with kafka_broker(Settings().local_kafka, tmp_path_factory.mktemp("kafka-run")) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(session_broker: SessionBroker) -> str:
    """The bootstrap address of the session's broker."""
    return session_broker.bootstrap


@pytest.fixture
def restartable_broker(session_broker: SessionBroker) -> SessionBroker:
    """The session's broker for a test that stops and starts it: skipped, saying why, when the
    harness does not run the broker itself."""
    if reason := session_broker.cannot_restart():
        pytest.skip(f"needs a broker restart, and {reason}")
    return session_broker


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix of this test's own, e.g. ``t1a2b3c4d.``."""
    return fresh_prefix()


@pytest.fixture
async def catalog(kafka_bootstrap: str, topic_prefix: str) -> TopicCatalog:
    """topics.yaml under this test's prefix, with every topic created on the broker."""
    catalog = TopicCatalog.load(KafkaSettings().topics_file, topic_prefix)
    applied = await topic_admin.apply(catalog, kafka_bootstrap)
    assert not applied.refused, applied.refused
    return catalog


# --- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of the session's throwaway PostgreSQL cluster (see pipeline/dev/local_postgres.py)."""
    bin_dir = server_bin()
    if bin_dir is None:
        pytest.fail(f"{MISSING} (as .ci/run does)")
    with postgres_server(bin_dir) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def logical_postgres_dsn() -> Iterator[str]:
    """The DSN of a throwaway cluster with ``wal_level=logical``, on 127.0.0.1 (Debezium connects over TCP)."""
    bin_dir = server_bin()
    if bin_dir is None:
        pytest.fail(f"{MISSING} (as .ci/run does)")
    with postgres_server(bin_dir, logical_port=free_port()) as dsn:
        yield dsn


@pytest.fixture
def contacts_table(postgres_dsn: str) -> str:
    """The name of an empty contacts table of this test's own in the session's cluster."""
    table = fresh_table_name()
    create_contacts_table(postgres_dsn, table)
    return table
