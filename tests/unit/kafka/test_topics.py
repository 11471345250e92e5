"""The topic catalog: expansion of topics.yaml into concrete topics, prefixes and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.kafka.topics import TopicCatalog, parse_duration
from pipeline.settings import KafkaSettings

_SMALL = """
partitions: 4
replication_factor: 1
providers: [alpha, beta]
retry_tiers: [5s, 1m]
topics:
  - role: cdc
    name: contacts.cdc
    config: {cleanup.policy: delete, retention.ms: "1000"}
  - role: dispatch
    name: contacts.dispatch.{provider}
  - role: retry
    name: contacts.retry.{provider}.{delay}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(text)
    return path


def test_templates_expand_per_provider_and_tier(tmp_path: Path) -> None:
    """Each {provider} and {delay} template becomes one topic per provider (and per retry tier)."""
    catalog = TopicCatalog.load(_write(tmp_path, _SMALL))

    assert [spec.name for spec in catalog.specs()] == [
        "contacts.cdc",
        "contacts.dispatch.alpha",
        "contacts.dispatch.beta",
        "contacts.retry.alpha.5s",
        "contacts.retry.alpha.1m",
        "contacts.retry.beta.5s",
        "contacts.retry.beta.1m",
    ]
    assert {(spec.partitions, spec.replication_factor) for spec in catalog.specs()} == {(4, 1)}
    assert catalog.specs()[0].config == {"cleanup.policy": "delete", "retention.ms": "1000"}


def test_prefix_applies_to_every_name(tmp_path: Path) -> None:
    """The deployment's prefix is on every concrete topic and on every named accessor."""
    catalog = TopicCatalog.load(_write(tmp_path, _SMALL), prefix="t1234.")

    assert all(spec.name.startswith("t1234.contacts.") for spec in catalog.specs())
    assert catalog.cdc == "t1234.contacts.cdc"
    assert catalog.dispatch("beta") == "t1234.contacts.dispatch.beta"
    assert catalog.retry("alpha", "1m") == "t1234.contacts.retry.alpha.1m"


def test_shipped_catalog_names_every_stage() -> None:
    """The repository's topics.yaml loads and declares every stage topic the accessors name, all co-partitioned
    (but Kafka Connect's config topic, which must have one partition), and the run-time config topics compacted."""
    catalog = TopicCatalog.load(KafkaSettings().topics_file)
    names = {spec.name for spec in catalog.specs()}

    expected = {catalog.cdc, catalog.validated, catalog.transformed, catalog.dlq, catalog.outcomes}
    expected |= {catalog.dispatch(p) for p in catalog.providers}
    expected |= {catalog.retry(p, t) for p in catalog.providers for t in catalog.retry_tiers}
    expected |= {catalog.config_rules, catalog.config_providers}
    assert expected <= names
    compacted = {spec.name for spec in catalog.specs() if spec.config.get("cleanup.policy") == "compact"}
    assert {catalog.config_rules, catalog.config_providers} <= compacted
    partitions = {spec.name: spec.partitions for spec in catalog.specs()}
    assert partitions.pop(catalog.connect("configs")) == 1
    assert set(partitions.values()) == {catalog.partitions}  # co-partitioned
    assert {catalog.connect("configs"), catalog.connect("offsets"), catalog.connect("status")} <= compacted


@pytest.mark.parametrize(
    "text",
    [
        "partitions: [oops",  # not YAML
        _SMALL.replace("partitions: 4", "partitions: 0"),
        _SMALL.replace("topics:", "unknown_key: 1\ntopics:"),
        _SMALL.replace("[5s, 1m]", "[1m, 5s]"),  # retry tiers must grow
        _SMALL.replace("[5s, 1m]", "[5s, 5s]"),
        _SMALL.replace("[5s, 1m]", "[5 seconds]"),
    ],
    ids=["not-yaml", "zero-partitions", "unknown-key", "shrinking-tiers", "equal-tiers", "bad-duration"],
)
def test_bad_catalog_is_one_line_config_error(tmp_path: Path, text: str) -> None:
    """An invalid topics.yaml raises a ConfigError whose message is a single line naming the file."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        TopicCatalog.load(path)

    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_catalog_says_which_setting(tmp_path: Path) -> None:
    """A missing topics.yaml is a ConfigError naming the setting that points at it."""
    with pytest.raises(ConfigError, match="CONTACTSYNC_KAFKA__TOPICS_FILE"):
        TopicCatalog.load(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("5s", 5.0), ("1m", 60.0), ("10m", 600.0), ("2h", 7200.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    """Durations in ms, s, m and h convert to seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1d", "-5s", "1.5s", "5 s"])
def test_parse_duration_rejects_other_forms(text: str) -> None:
    """Anything but an integer with a unit of ms, s, m or h is refused."""
    with pytest.raises(ValueError):
        parse_duration(text)


def test_names_come_from_the_file_by_role(tmp_path: Path) -> None:
    """Renaming a topic in topics.yaml renames it everywhere; a role the file lacks is one ConfigError."""
    catalog = TopicCatalog.load(_write(tmp_path, _SMALL.replace("name: contacts.cdc", "name: crm.changes")), "p.")

    assert catalog.cdc == "p.crm.changes"
    with pytest.raises(ConfigError, match="topics.yaml has no topic with role 'outcomes'"):
        catalog.outcomes  # noqa: B018


def test_a_role_twice_or_unknown_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"twice \['cdc'\], unknown \['cdc_v2'\]"):
        TopicCatalog.load(_write(tmp_path, _SMALL + "  - role: cdc\n    name: x\n  - role: cdc_v2\n    name: y\n"))


def test_a_record_batch_is_no_larger_than_the_smallest_topic_limit(tmp_path: Path) -> None:
    """The producer's record batches fit every topic: the smallest max.message.bytes in the file, if below."""
    assert TopicCatalog.load(_write(tmp_path, _SMALL)).record_batch_limit(262_144) == 262_144
    limited = _SMALL.replace('retention.ms: "1000"}', 'retention.ms: "1000", max.message.bytes: "20000"}')
    assert TopicCatalog.load(_write(tmp_path, limited)).record_batch_limit(262_144) == 20_000
