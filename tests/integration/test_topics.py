"""topic_admin against the real broker: apply creates, check names drift, partitions are never fixed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.kafka import topic_admin
from pipeline.kafka.topic_admin import Drift
from pipeline.kafka.topics import TopicCatalog
from pipeline.settings import KafkaSettings

pytestmark = pytest.mark.kafka


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A raw admin client, to change the broker behind topic_admin's back."""
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


def _catalog(prefix: str) -> TopicCatalog:
    return TopicCatalog.load(KafkaSettings().topics_file, prefix)


async def _alter_by_hand(admin: AIOKafkaAdminClient, topic: str, configs: dict[str, str]) -> None:
    """Set a topic's configs as an operator would, and wait until the broker serves them."""
    await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    async with asyncio.timeout(10):
        while not configs.items() <= (await _topic_configs(admin, topic)).items():
            await asyncio.sleep(0.05)


async def _topic_configs(admin: AIOKafkaAdminClient, name: str) -> dict[str, str]:
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    [resource] = response.to_object()["resources"]
    return {entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]}


async def test_apply_creates_every_topic_as_declared(
    kafka_bootstrap: str, topic_prefix: str, admin: AIOKafkaAdminClient
) -> None:
    """apply creates every catalog topic with its declared partitions and configs, and check then finds no drift."""
    catalog = _catalog(topic_prefix)

    applied = await topic_admin.apply(catalog, kafka_bootstrap)

    specs = catalog.specs()
    assert sorted(applied.created) == sorted(spec.name for spec in specs)
    assert applied.altered == [] and applied.refused == []
    partitions = await topic_admin.partition_counts(kafka_bootstrap)
    for spec in specs:
        assert partitions[spec.name] == spec.partitions
        configs = await _topic_configs(admin, spec.name)
        assert {key: configs[key] for key in spec.config} == spec.config
    assert await topic_admin.check(catalog, kafka_bootstrap) == []


async def test_apply_twice_changes_nothing(kafka_bootstrap: str, topic_prefix: str) -> None:
    """A second apply on an aligned broker creates and alters nothing."""
    catalog = _catalog(topic_prefix)
    await topic_admin.apply(catalog, kafka_bootstrap)

    again = await topic_admin.apply(catalog, kafka_bootstrap)

    assert (again.created, again.altered, again.refused) == ([], [], [])


async def test_drift_is_named_configs_fixed_partitions_refused(
    kafka_bootstrap: str, topic_prefix: str, admin: AIOKafkaAdminClient
) -> None:
    """A wrong partition count and a config changed by hand are both drift; apply fixes only the config."""
    catalog = _catalog(topic_prefix)
    cdc_spec = next(spec for spec in catalog.specs() if spec.name == catalog.cdc)
    await admin.create_topics([NewTopic(catalog.cdc, 2, 1, topic_configs=cdc_spec.config)])
    await topic_admin.apply(catalog, kafka_bootstrap)
    await _alter_by_hand(admin, catalog.dlq, {"retention.ms": "60000", "cleanup.policy": "delete"})

    drift = await topic_admin.check(catalog, kafka_bootstrap)

    partitions = Drift(catalog.cdc, "partitions", expected=str(catalog.partitions), actual="2")
    retention = Drift(catalog.dlq, "config", expected="2592000000", actual="60000", key="retention.ms")
    assert drift == [partitions, retention]
    assert "retention.ms is 60000, topics.yaml says 2592000000" in str(retention)

    applied = await topic_admin.apply(catalog, kafka_bootstrap)

    assert applied.created == [] and applied.altered == [catalog.dlq]
    assert applied.refused == [partitions]
    assert await topic_admin.check(catalog, kafka_bootstrap) == [partitions]
    assert (await topic_admin.partition_counts(kafka_bootstrap))[catalog.cdc] == 2


async def test_apply_keeps_other_topic_overrides(
    kafka_bootstrap: str, topic_prefix: str, admin: AIOKafkaAdminClient
) -> None:
    """Aligning a drifted config keeps the topic's other hand-set configs that topics.yaml does not declare."""
    catalog = _catalog(topic_prefix)
    await topic_admin.apply(catalog, kafka_bootstrap)
    hand_set = {"retention.ms": "60000", "cleanup.policy": "delete", "max.message.bytes": "2097152"}
    await _alter_by_hand(admin, catalog.outcomes, hand_set)

    await topic_admin.apply(catalog, kafka_bootstrap)

    configs = await _topic_configs(admin, catalog.outcomes)
    assert configs["retention.ms"] == "604800000"
    assert configs["max.message.bytes"] == "2097152"
