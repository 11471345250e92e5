"""The topic catalog read from topics.yaml: names, partitions and configs of every topic."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import ConfigError

_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"5s"`` → 5.0, ``"1m"`` → 60.0, ``"250ms"`` → 0.25."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 500ms, 5s, 1m or 2h")
    return int(match[1]) * _SECONDS_PER_UNIT[match[2]]


class TopicSpec(BaseModel):
    """One concrete topic as it must exist on the broker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


class _TopicTemplate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str  # what the code calls it (``TopicCatalog.ROLES``); the name is the file's alone
    name: str
    partitions: int | None = Field(default=None, gt=0)  # not record-keyed: Kafka Connect's config topic
    config: dict[str, str] = {}


class _CatalogFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    partitions: int = Field(gt=0)
    replication_factor: int = Field(gt=0)
    providers: list[str]
    retry_tiers: list[str]
    topics: list[_TopicTemplate]

    @field_validator("topics")
    @classmethod
    def _roles_known_and_once(cls, topics: list[_TopicTemplate]) -> list[_TopicTemplate]:
        roles = [topic.role for topic in topics]
        doubled = sorted({role for role in roles if roles.count(role) > 1})
        unknown = [role for role in roles if role not in TopicCatalog.ROLES]
        if doubled or unknown:
            known = ", ".join(TopicCatalog.ROLES)
            raise ValueError(f"each role once, one of {known}: twice {doubled}, unknown {unknown}")
        return topics

    @field_validator("retry_tiers")
    @classmethod
    def _tiers_grow(cls, tiers: list[str]) -> list[str]:
        delays = [parse_duration(tier) for tier in tiers]
        if delays != sorted(set(delays)):
            raise ValueError("retry tiers must grow strictly, for example [5s, 1m, 10m]")
        return tiers


class TopicCatalog:
    """Every topic name of the pipeline, as topics.yaml sets it, with the deployment's prefix applied."""

    # Each topic of topics.yaml has one of these roles; the code asks for topics by role only.
    ROLES = (
        "cdc", "validated", "transformed", "dispatch", "retry", "dlq", "dlq_handled", "outcomes", "faults",
        "last_known_changelog", "delivered_version_changelog", "record_status_changelog",
        "config_rules", "config_providers", "inbound", "changes_inbound", "field_clock_changelog",
        "connect_configs", "connect_offsets", "connect_status",
    )

    def __init__(self, catalog: _CatalogFile, prefix: str = "") -> None:
        self._catalog = catalog
        self._names = {topic.role: topic.name for topic in catalog.topics}
        self.prefix = prefix
        self.providers: tuple[str, ...] = tuple(catalog.providers)
        self.retry_tiers: tuple[str, ...] = tuple(catalog.retry_tiers)
        self.partitions = catalog.partitions

    @classmethod
    def load(cls, path: Path, prefix: str = "") -> TopicCatalog:
        try:
            raw = yaml.safe_load(path.read_text())
            return cls(_CatalogFile.model_validate(raw), prefix)
        except FileNotFoundError:
            raise ConfigError(f"topic catalog {path} not found; set CONTACTSYNC_KAFKA__TOPICS_FILE") from None
        except (yaml.YAMLError, ValidationError) as exc:
            first = str(exc).splitlines()[0:3]
            raise ConfigError(f"topic catalog {path} is invalid: {' '.join(first)}") from None

    def _name(self, name: str) -> str:
        return self.prefix + name

    def _named(self, role: str, **parts: str) -> str:
        if role not in self._names:
            raise ConfigError(f"topics.yaml has no topic with role {role!r}; add one (see the shipped topics.yaml)")
        name = self._names[role]
        for part, value in parts.items():
            name = name.replace(f"{{{part}}}", value)
        return self._name(name)

    @property
    def cdc(self) -> str:
        return self._named("cdc")

    @property
    def validated(self) -> str:
        return self._named("validated")

    @property
    def transformed(self) -> str:
        return self._named("transformed")

    @property
    def inbound(self) -> str:
        return self._named("inbound")

    @property
    def changes_inbound(self) -> str:
        return self._named("changes_inbound")

    @property
    def dlq(self) -> str:
        return self._named("dlq")

    @property
    def dlq_handled(self) -> str:
        return self._named("dlq_handled")

    @property
    def faults(self) -> str:
        return self._named("faults")

    @property
    def outcomes(self) -> str:
        return self._named("outcomes")

    @property
    def config_rules(self) -> str:
        return self._named("config_rules")

    @property
    def config_providers(self) -> str:
        return self._named("config_providers")

    def dispatch(self, provider: str) -> str:
        return self._named("dispatch", provider=provider)

    def retry(self, provider: str, tier: str) -> str:
        return self._named("retry", provider=provider, delay=tier)

    @property
    def last_known_changelog(self) -> str:
        return self._named("last_known_changelog")

    def delivered_version_changelog(self, provider: str) -> str:
        return self._named("delivered_version_changelog", provider=provider)

    @property
    def record_status_changelog(self) -> str:
        return self._named("record_status_changelog")

    @property
    def field_clock_changelog(self) -> str:
        return self._named("field_clock_changelog")

    def connect(self, kind: str) -> str:
        """Kafka Connect's own topic: ``configs``, ``offsets`` or ``status``."""
        return self._named(f"connect_{kind}")

    def record_batch_limit(self, most: int) -> int:
        """The largest record batch every topic takes, at most ``most`` bytes: the smallest
        ``max.message.bytes`` set here (a topic without one takes the broker's, 1 MiB by default).
        A record batch, not a message, is what the broker holds against that limit."""
        limits = [int(spec.config["max.message.bytes"]) for spec in self.specs() if "max.message.bytes" in spec.config]
        return min([most, *limits])

    def specs(self) -> list[TopicSpec]:
        """Every concrete topic, templates expanded per provider and retry tier."""
        specs: list[TopicSpec] = []
        for template in self._catalog.topics:
            for name in self._expand(template.name):
                specs.append(
                    TopicSpec(
                        name=self._name(name),
                        partitions=template.partitions or self._catalog.partitions,
                        replication_factor=self._catalog.replication_factor,
                        config=template.config,
                    )
                )
        return specs

    def _expand(self, name: str) -> list[str]:
        names = [name]
        if "{provider}" in name:
            names = [n.replace("{provider}", p) for n in names for p in self.providers]
        if "{delay}" in name:
            names = [n.replace("{delay}", d) for n in names for d in self.retry_tiers]
        return names
