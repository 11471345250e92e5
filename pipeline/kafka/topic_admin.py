"""Make the broker match the topic catalog, and say where it does not.

``apply`` creates missing topics and aligns topic configs. A wrong partition count or replication
factor is never fixed: adding partitions moves keys to other partitions (breaking per-record order
and table co-partitioning) and removing them is impossible, so it is reported as drift and left to
a person.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.errors import ConfigError
from pipeline.kafka.clients import admin_client
from pipeline.kafka.topics import TopicCatalog, TopicSpec

__all__ = ["Applied", "Drift", "apply", "check", "partition_counts", "require_topics"]

_CLIENT_ID = "contactsync-topics"
_TOPIC_ALREADY_EXISTS = 36
_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source: set on the topic itself
_SETTLE_TIMEOUT_S = 30.0

DriftKind = Literal["missing", "partitions", "replication_factor", "config"]


@dataclass(frozen=True)
class Drift:
    """One difference between the catalog and the broker."""

    topic: str
    kind: DriftKind
    expected: str = ""
    actual: str = ""
    key: str = ""  # the config name, for kind "config"

    @property
    def fixable(self) -> bool:
        """Whether ``apply`` repairs it; partition and replication drift need a person."""
        return self.kind in ("missing", "config")

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"{self.topic}: missing"
        what = f"config {self.key}" if self.kind == "config" else self.kind.replace("_", " ")
        return f"{self.topic}: {what} is {self.actual}, topics.yaml says {self.expected}"


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did, and the drift it refused to fix."""

    created: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    refused: list[Drift] = field(default_factory=list)


@dataclass(frozen=True)
class _Actual:
    partitions: int
    replication_factor: int
    overrides: dict[str, str]  # configs set on the topic itself
    config: dict[str, str]  # every config's effective value


async def check(catalog: TopicCatalog, bootstrap: str) -> list[Drift]:
    """Every difference between the catalog's topics and the broker's."""
    async with admin_client(bootstrap, _CLIENT_ID) as admin:
        return _drift(catalog.specs(), await _describe(admin, catalog.specs()))


async def apply(catalog: TopicCatalog, bootstrap: str) -> Applied:
    """Create missing topics and align configs; return the partition and replication drift refused."""
    specs = {spec.name: spec for spec in catalog.specs()}
    async with admin_client(bootstrap, _CLIENT_ID) as admin:
        actual = await _describe(admin, list(specs.values()))
        drift = _drift(list(specs.values()), actual)
        created = [d.topic for d in drift if d.kind == "missing"]
        altered = sorted({d.topic for d in drift if d.kind == "config"})
        await _create(admin, [specs[name] for name in created])
        await _alter(admin, {name: {**actual[name].overrides, **specs[name].config} for name in altered})
        await _wait_applied(admin, [specs[name] for name in [*created, *altered]])
    return Applied(created, altered, [d for d in drift if not d.fixable])


async def partition_counts(bootstrap: str) -> dict[str, int]:
    """The partition count of every topic on the broker."""
    async with admin_client(bootstrap, _CLIENT_ID) as admin:
        return {topic["topic"]: len(topic["partitions"]) for topic in await admin.describe_topics()}


async def require_topics(bootstrap: str, *names: str) -> None:
    """ConfigError naming a missing topic (clients would wait for it, logging, until they time out)."""
    existing = await partition_counts(bootstrap)
    missing = [name for name in names if name not in existing]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(f"topic {missing[0]}{more} does not exist at {bootstrap}: run `contactsync topics apply`")


async def _describe(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> dict[str, _Actual]:
    """The partitions, replication and configs of those of ``specs`` that exist."""
    wanted = {spec.name for spec in specs}
    # Metadata for all topics: naming missing topics in a metadata request may auto-create them.
    topics = {t["topic"]: t["partitions"] for t in await admin.describe_topics() if t["topic"] in wanted}
    if not topics:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
    configs: dict[str, list[dict[str, Any]]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            _raise_for(resource, "describing the configs of")
            configs[resource["resource_name"]] = resource["config_entries"]
    return {
        name: _Actual(
            partitions=len(partitions),
            replication_factor=len(partitions[0]["replicas"]) if partitions else 0,
            overrides={
                e["config_names"]: e["config_value"]
                for e in configs[name]
                if e["config_source"] == _DYNAMIC_TOPIC_CONFIG
            },
            config={e["config_names"]: e["config_value"] for e in configs[name]},
        )
        for name, partitions in topics.items()
    }


def _drift(specs: list[TopicSpec], actual: dict[str, _Actual]) -> list[Drift]:
    drift: list[Drift] = []
    for spec in specs:
        found = actual.get(spec.name)
        if found is None:
            drift.append(Drift(spec.name, "missing"))
            continue
        if found.partitions != spec.partitions:
            drift.append(Drift(spec.name, "partitions", str(spec.partitions), str(found.partitions)))
        if found.replication_factor != spec.replication_factor:
            drift.append(
                Drift(spec.name, "replication_factor", str(spec.replication_factor), str(found.replication_factor))
            )
        for key, value in spec.config.items():
            if found.config.get(key) != value:
                drift.append(Drift(spec.name, "config", value, found.config.get(key, "(unset)"), key))
    return drift


async def _create(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    new_topics = [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.config) for s in specs]
    response = await admin.create_topics(new_topics)
    for topic, code, *rest in response.topic_errors:
        if code not in (0, _TOPIC_ALREADY_EXISTS):  # exists: another apply created it meanwhile
            raise ConfigError(f"creating topic {topic} failed: {rest[0] if rest else f'error code {code}'}")


async def _alter(admin: AIOKafkaAdminClient, configs: dict[str, dict[str, str]]) -> None:
    """Set each topic's configs; AlterConfigs replaces the whole set, so ``configs`` are complete."""
    if not configs:
        return
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=c) for name, c in configs.items()]
    for response in await admin.alter_configs(resources):
        for resource in response.to_object()["resources"]:
            _raise_for(resource, "altering the configs of")


async def _wait_applied(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    """Wait until the broker serves the new topics and configs, which lags their acceptance a little.

    Without it a producer or a ``check`` right after ``apply`` can find a topic missing or an old config.
    """
    deadline = asyncio.get_running_loop().time() + _SETTLE_TIMEOUT_S
    while pending := [d for d in _drift(specs, await _describe(admin, specs)) if d.fixable]:
        if asyncio.get_running_loop().time() > deadline:
            raise ConfigError(f"the broker did not apply the change within {_SETTLE_TIMEOUT_S:.0f}s: {pending[0]}")
        await asyncio.sleep(0.1)


def _raise_for(resource: dict[str, Any], doing: str) -> None:
    if resource["error_code"]:
        message = resource["error_message"] or f"error code {resource['error_code']}"
        raise ConfigError(f"{doing} topic {resource['resource_name']} failed: {message}")
